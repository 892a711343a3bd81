"""Studies on a dask.distributed cluster (`experiments._cluster`): the cases of
`tests/cluster_cases.py` (the dispatched study equals the serial one cell for cell; a worker
killed mid-cell loses nothing finished; two tasks racing for one cell compute it once; the
`--cluster` option's errors), run by a pytest of their own in a child process. A dask
scheduler and client live in the process that runs them: kept out of the test workers, which
go on to compile and run everything else."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_cluster_cases_pass_in_a_process_of_their_own():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "cluster_cases.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
