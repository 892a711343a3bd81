"""`kill -9` at random moments loses nothing, and resuming reproduces an uninterrupted run
bit for bit: for `dynlearn.fit` (`run_dir`, `resume=True`) and for the constraints study
(`python -m experiments.constraints --run-dir DIR`, which resumes a study in DIR).

Each scenario trains a small run in a subprocess that is never interrupted (the reference),
then runs the same training in a new folder, SIGKILLs it a seeded random delay after it has
saved something new (a checkpoint, a cell), restarts it in that folder, kills it again, and
lets the last restart finish. The tests compare the outcome with the reference: metrics,
results and saved learners must be exactly equal, and what was finished before a kill must
not be redone. A kill can land mid-epoch, mid-cell or in the middle of an atomic write, which
leaves a `.NAME.*.tmp` file behind: allowed, as long as the next run is not disturbed by it
(such files are also planted before the last restart, so this case is always covered).

Speed (a 2-core machine): the two scenarios run at once, in two threads of a module fixture,
each process on its own core. The reference fills a JAX persistent compilation cache of its
own, which the killed and resumed runs then read (so they do not compile again); reading
compiled programs from the cache does not change results, and the resumed runs are still
compared with the reference bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300.0  # seconds any one run (or a wait for its progress) may take
POLL = 0.005  # seconds between looks at a run's folder
KILLS = 2  # kill/restart rounds before the run that finishes

FIT_EPOCHS = 10
# A Kolen-Pollack MLP (its checkpoint holds forward weights, learned feedback matrices, a
# PRNG key and Adam's state) on 960 Yin-Yang samples; one batch per dispatch, so an epoch
# is dozens of dispatches and a kill can land anywhere in it.
FIT_CHILD = """
import sys

import jax

import dynlearn
from dynlearn import registry

run_dir, epochs = sys.argv[1], int(sys.argv[2])
data = dynlearn.data.load("yinyang", n_train=960, n_test=200)
recipe = registry.load("rules", "kp")([data.n_features, 16, data.n_classes], jax.random.key(0))
dynlearn.fit(
    recipe.learner,
    data,
    recipe.mode,
    epochs=epochs,
    batch_size=recipe.batch_size,
    seed=1,
    run_dir=run_dir,
    resume=True,
    progress=False,
    updates_per_dispatch=1,
)
"""
FIT_METRICS = ("train_loss", "train_accuracy", "test_accuracy")  # not wall_time

STUDY = [
    "-m",
    "experiments.constraints",
    "--quick",
    "--rules",
    "bp",
    "--fractions",
    "1",
    "--sparsities",
    "0.5",
    "--noise-stds",
    "0",
    "0.3",
]
STUDY_CELLS = ("fraction-1.nc", "sparsity.nc", "noise.nc")  # in the order they are computed
STUDY_TIMING = ("seconds",)  # timing variables, the only ones allowed to differ


# -- running, killing, inspecting --------------------------------------------------------


@dataclass
class Job:
    """Runs of `python args...` appending to `log`, with the JAX compilation cache `cache`."""

    args: list[str]
    log: Path
    cache: Path

    def start(self) -> subprocess.Popen:
        env = dict(os.environ)
        env.update(
            JAX_PLATFORMS="cpu",
            JAX_COMPILATION_CACHE_DIR=str(self.cache),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        )
        with open(self.log, "ab") as out:
            out.write(f"\n=== start {time.strftime('%H:%M:%S')}\n".encode())
            return subprocess.Popen(
                [sys.executable, *self.args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def finish(self, proc: subprocess.Popen) -> None:
        """Wait for `proc`; fail (with its output) unless it succeeded."""
        try:
            code = proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"run did not finish in {TIMEOUT:.0f} s:\n{self.tail()}")
        if code != 0:
            pytest.fail(f"run failed (exit code {code}):\n{self.tail()}")

    def run(self) -> None:
        self.finish(self.start())

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def stat_key(path: Path):
    """Identity of the file at `path` (a new one after every atomic replace), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def leftovers(folder: Path) -> set[str]:
    """Temporary files left by writes that a kill interrupted."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*.tmp")}


def plant_leftovers(folder: Path, names) -> list[Path]:
    """Leave, beside each of `names` in `folder`, the temporary file a kill in the middle of
    its atomic write would leave (`.NAME.*.tmp`, holding a partial copy)."""
    planted = []
    for name in names:
        real = folder / name
        partial = real.read_bytes()[: real.stat().st_size // 2] if real.exists() else b"part"
        tmp = folder / f".{name}.killed.tmp"
        tmp.write_bytes(partial)
        planted.append(tmp)
    return planted


def kill_at_random(job: Job, progress, delays, after_kill) -> list[int]:
    """For each delay: start `job`, wait until `progress()` changes (it saved something
    new), sleep `delay` s, then SIGKILL it; `after_kill()` inspects the folder each time.
    Returns the exit codes: -SIGKILL, or 0 when the run finished before the kill."""
    codes = []
    for delay in delays:
        before = progress()
        proc = job.start()
        try:
            deadline = time.monotonic() + TIMEOUT
            while progress() == before and proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"no progress in {TIMEOUT:.0f} s:\n{job.tail()}")
                time.sleep(POLL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)  # nothing if it has finished
            code = proc.wait(TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code not in (0, -signal.SIGKILL):
            pytest.fail(f"resumed run crashed (exit code {code}):\n{job.tail()}")
        codes.append(code)
        after_kill()
    return codes


@dataclass
class Outcome:
    """A reference run, and the run killed `codes` times and finished in `run_dir`."""

    ref_dir: Path
    run_dir: Path
    job: Job
    codes: list[int]
    delays: np.ndarray
    kept: dict = field(default_factory=dict)  # what was finished at the kills
    leftovers: set[str] = field(default_factory=set)

    def assert_killed_mid_run(self) -> None:
        assert -signal.SIGKILL in self.codes, (
            f"no run was still going when it was killed (exit codes {self.codes}), so nothing "
            f"was tested; the runs are too quick for the kill delays:\n{self.job.tail()}"
        )


# -- the two scenarios -----------------------------------------------------------------


def fit_scenario(root: Path) -> Outcome:
    """`fit` with `run_dir` and `resume=True`: reference, 2 kills, completion."""
    cache = root / "jax-cache"
    ref_dir, run_dir = root / "reference", root / "killed"
    Job(["-c", FIT_CHILD, str(ref_dir), str(FIT_EPOCHS)], root / "reference.log", cache).run()
    wall_time = xr.load_dataset(ref_dir / "metrics.nc", engine="netcdf4").wall_time.values
    epoch_s = float(np.median(wall_time[1:]))  # the first epoch compiles
    delays = np.random.default_rng(0).uniform(0.0, 2.0, size=KILLS) * epoch_s  # <= 2 epochs
    job = Job(["-c", FIT_CHILD, str(run_dir), str(FIT_EPOCHS)], root / "killed.log", cache)
    out = Outcome(ref_dir, run_dir, job, [], delays)

    def after_kill():
        info = run_dir / "checkpoint.json"  # written just after the .eqx: one behind at worst
        epoch = json.loads(info.read_text())["epoch"] if info.exists() else 0
        if epoch:
            metrics = xr.load_dataset(run_dir / "metrics.nc", engine="netcdf4")
            assert metrics.sizes["epoch"] >= epoch, "metrics miss checkpointed epochs"
            out.kept[epoch] = metrics.wall_time.values[:epoch].copy()
        out.leftovers |= leftovers(run_dir)

    def progress():
        return stat_key(run_dir / "checkpoint.eqx")

    out.codes = kill_at_random(job, progress, delays, after_kill)
    planted = plant_leftovers(run_dir, ["checkpoint.eqx", "checkpoint.json", "metrics.nc"])
    job.run()  # the last restart runs to the end, beside those leftovers
    assert all(p.exists() for p in planted)
    return out


def study_scenario(root: Path) -> Outcome:
    """The constraints study with `--run-dir`: reference, 2 kills, completion."""
    cache = root / "jax-cache"
    ref_dir, run_dir = root / "reference", root / "killed"
    Job([*STUDY, "--run-dir", str(ref_dir)], root / "reference.log", cache).run()
    delays = np.random.default_rng(0).uniform(0.0, 0.4, size=KILLS)  # a warm cell: 0.5-3 s
    job = Job([*STUDY, "--run-dir", str(run_dir)], root / "killed.log", cache)
    out = Outcome(ref_dir, run_dir, job, [], delays)
    cells = run_dir / "cells" / "bp"
    watched = [cells / "checkpoint.eqx", *(cells / c for c in STUDY_CELLS)]
    watched.append(run_dir / "constraints.nc")

    def progress():
        return frozenset(p.name for p in watched if p.exists())

    def after_kill():
        for name in STUDY_CELLS:
            key = stat_key(cells / name)
            if key is not None:
                xr.load_dataset(cells / name, engine="netcdf4")  # complete, readable
                out.kept.setdefault(name, key)
        out.leftovers |= leftovers(run_dir)

    out.codes = kill_at_random(job, progress, delays, after_kill)
    planted = plant_leftovers(run_dir, ["study.json", "constraints.nc"])
    planted += plant_leftovers(cells, ["checkpoint.eqx", *STUDY_CELLS])
    job.run()  # the last restart runs to the end, beside those leftovers
    assert all(p.exists() for p in planted)
    return out


SCENARIOS = {"fit_outcome": fit_scenario, "study_outcome": study_scenario}


@pytest.fixture(scope="module")
def scenarios(request, tmp_path_factory):
    """The scenarios that the selected tests use, all started at once (one thread each)."""
    wanted = [
        name
        for name in SCENARIOS
        if any(
            name in getattr(item, "fixturenames", ())
            for item in request.session.items
            if getattr(item, "module", None) is request.module
        )
    ]
    with ThreadPoolExecutor(max(len(wanted), 1)) as pool:
        yield {name: pool.submit(SCENARIOS[name], tmp_path_factory.mktemp(name)) for name in wanted}


def result(future: Future, name: str) -> Outcome:
    """The scenario's outcome (its failure, if it failed), reported."""
    out = future.result()
    print(
        f"{name}: exit codes {out.codes}, delays {np.round(out.delays, 3)} s, finished at "
        f"the kills {sorted(out.kept)}, leftovers of killed writes {sorted(out.leftovers)}"
    )
    return out


@pytest.fixture(scope="module")
def fit_outcome(scenarios) -> Future:
    return scenarios["fit_outcome"]


@pytest.fixture(scope="module")
def study_outcome(scenarios) -> Future:
    return scenarios["study_outcome"]


# -- the claims ------------------------------------------------------------------------


def test_fit_survives_sigkill_and_resumes_bit_identically(fit_outcome):
    """Claim: `dynlearn.fit(..., run_dir=D, resume=True)` killed with SIGKILL at random
    moments (after a checkpoint, mid-epoch or mid-write) and restarted until it completes
    gives exactly the metrics (`train_loss`, `train_accuracy`, `test_accuracy`) and the final
    checkpoint (learner, feedback matrices, PRNG key, optimizer state: the same bytes) of a
    run never interrupted; and no finished epoch is lost: the epochs checkpointed before a
    kill are not trained again (their logged `wall_time` survives unchanged). Leftover
    `.NAME.*.tmp` files of interrupted writes do not disturb the run that resumes."""
    out = result(fit_outcome, "fit")
    ref_dir, run_dir = out.ref_dir, out.run_dir
    out.assert_killed_mid_run()
    ref = xr.load_dataset(ref_dir / "metrics.nc", engine="netcdf4")
    got = xr.load_dataset(run_dir / "metrics.nc", engine="netcdf4")
    np.testing.assert_array_equal(got.epoch.values, np.arange(1, FIT_EPOCHS + 1))
    np.testing.assert_array_equal(got.epoch.values, ref.epoch.values)
    for name in FIT_METRICS:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    config = attrs_as_lists(ref.attrs, keep=lambda k: k.startswith("config_"))
    assert config and attrs_as_lists(got.attrs, keep=lambda k: k.startswith("config_")) == config
    assert (run_dir / "checkpoint.eqx").read_bytes() == (ref_dir / "checkpoint.eqx").read_bytes()
    assert json.loads((run_dir / "checkpoint.json").read_text()) == json.loads(
        (ref_dir / "checkpoint.json").read_text()
    )
    for epoch, wall_time in out.kept.items():  # resumed, not redone
        np.testing.assert_array_equal(got.wall_time.values[:epoch], wall_time)


def attrs_as_lists(attrs: dict, keep) -> dict:
    """Attributes comparable with `==` (array attributes as lists)."""
    return {k: np.asarray(v).tolist() for k, v in attrs.items() if keep(k)}


def test_constraints_study_survives_sigkill_and_resumes_bit_identically(study_outcome):
    """Claim: the constraints study (`python -m experiments.constraints --quick ...
    --run-dir D`) killed with SIGKILL at random moments (mid-cell, between a cell's
    checkpoint and its file, mid-write, while assembling) and run again with the same
    `--run-dir` until it completes writes a `constraints.nc` whose results (every variable
    but the timing `seconds`, coordinates and attributes) equal those of a study never
    interrupted, and the same trained learners (`cells/bp/checkpoint.eqx`, same bytes); and
    no finished cell is lost: a cell file present after a kill is never rewritten. Leftover
    `.NAME.*.tmp` files of interrupted writes do not disturb the run that resumes."""
    out = result(study_outcome, "study")
    ref_dir, run_dir = out.ref_dir, out.run_dir
    out.assert_killed_mid_run()
    ref = xr.load_dataset(ref_dir / "constraints.nc", engine="netcdf4")
    got = xr.load_dataset(run_dir / "constraints.nc", engine="netcdf4")
    results = sorted(set(ref.data_vars) - set(STUDY_TIMING))
    assert sorted(set(got.data_vars) - set(STUDY_TIMING)) == results
    assert "accuracy" in results
    for name in results:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
        assert got[name].dims == ref[name].dims
    for name in ref.coords:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    provenance = {"created", "command", "code_revision"}  # when and how, not what
    assert attrs_as_lists(got.attrs, keep=lambda k: k not in provenance) == attrs_as_lists(
        ref.attrs, keep=lambda k: k not in provenance
    )
    ckpt = Path("cells", "bp", "checkpoint.eqx")
    assert (run_dir / ckpt).read_bytes() == (ref_dir / ckpt).read_bytes()
    for name, key in out.kept.items():  # loaded, not recomputed
        assert stat_key(run_dir / "cells" / "bp" / name) == key, f"{name} computed again"
