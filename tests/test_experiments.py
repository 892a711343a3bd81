"""Every experiment and benchmark runs end to end in its `--quick` configuration as
`python -m experiments.NAME` (a fresh process, not through the `dynlearn` command), exits 0
and writes its files. The quick configurations are sized to take seconds each."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Experiments take `--run-dir`; these files must be in it afterwards.
EXPERIMENTS = {
    "bp_baseline": ["metrics.nc", "checkpoint.eqx", "learning_curves.png"],
    "pc_vs_bp": ["results.nc", "table.md", "learning_curves.png"],
    "ep_mnist": ["results.nc", "table.md", "learning_curves.png"],
    "microcircuit": ["microcircuit.nc", "microcircuit.md", "microcircuit.png"],
    "feedback_comparison": [
        "feedback_comparison.nc",
        "feedback_comparison.md",
        "feedback_comparison.png",
    ],
    "constraints": [
        "study.json",
        "constraints.nc",
        "constraints.md",
        "constraints-data.png",
        "constraints-epochs.png",
        "constraints-sparsity.png",
        "constraints-noise.png",
    ],
}
# Benchmarks write nothing; under --quick they print their ratios without judging timings.
BENCHMARKS = {
    "bench_engine": "peak memory",
    "bench_pc": "ratio",
    "bench_ep": "ratio",
    "bench_microcircuit": "max rel diff",
    "bench_seeds": "vmapped s",
}


def run_module(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", f"experiments.{name}", "--quick", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"python -m experiments.{name} --quick exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_quick(name, tmp_path):
    run_dir = tmp_path / name
    run_module(name, "--run-dir", str(run_dir))
    missing = [f for f in EXPERIMENTS[name] if not (run_dir / f).is_file()]
    assert not missing, f"{name}: missing {missing} in {sorted(p.name for p in run_dir.iterdir())}"
    for f in EXPERIMENTS[name]:
        assert (run_dir / f).stat().st_size > 0, f


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_quick(name):
    result = run_module(name)
    assert BENCHMARKS[name] in result.stdout, result.stdout
