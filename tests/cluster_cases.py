"""Run by `tests/test_cluster.py` in a pytest of its own (a child process, so that no dask
scheduler, client or worker ever lives in a test worker that goes on to run other tests).

Studies on a dask.distributed cluster (`experiments._cluster`): the dispatched study equals
the serial one cell for cell, a worker killed mid-cell loses nothing finished, two tasks
racing for one cell compute it once, and the `--cluster` option's errors."""

import collections
import json
import os
import signal
import socket
import time

import dask
import pytest
import xarray as xr
from distributed import Client, LocalCluster

import dynlearn
from experiments import _cluster, constraints, hardware

# Yin-Yang, 2 epochs, 1 seed, sparsities 0.5 and 0.9, noise 0 and 0.3; three cells
QUICK = ["--quick", "--rules", "bp", "--fractions", "1"]
CELLS = ["fraction-1", "sparsity", "noise"]
# a cell's provenance and timing differ from run to run; its values and the rest may not
VOLATILE = ("seconds", "created", "command")


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each (as `--cluster local:2`). Leases of 3 s (renewed
    every 0.6 s), not 30 s, so that the lock a killed worker held is free again within
    seconds (the scheduler, in this process, and the workers take the configuration set
    when the cluster starts)."""
    leases = {
        "distributed.scheduler.locks.lease-timeout": "3s",
        "distributed.scheduler.locks.lease-validation-interval": "0.2s",
    }
    with (
        dask.config.set(leases),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},  # on a GPU: share it
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The study run serially: the reference."""
    run_dir = tmp_path_factory.mktemp("serial")
    assert constraints.main(QUICK + ["--run-dir", str(run_dir)]) == 0
    return run_dir


def quick_config(run_dir) -> dict:
    return json.loads((run_dir / "study.json").read_text())


def assert_same_cells(run_dir, reference):
    """Every cell of `reference` is in `run_dir` with the same values, coordinates and
    attributes (bit for bit: the same code runs on the same CPU, in another process)."""
    names = sorted(p.relative_to(reference) for p in reference.glob("cells/*/*.nc"))
    assert sorted(p.relative_to(run_dir) for p in run_dir.glob("cells/*/*.nc")) == names
    for name in names:
        ours, theirs = (dynlearn.load_netcdf(d / name) for d in (run_dir, reference))
        for ds in (ours, theirs):
            ds.attrs = {k: v for k, v in ds.attrs.items() if k not in VOLATILE}
        xr.testing.assert_identical(ours, theirs)


def loading_only(monkeypatch):
    """Make the assembly in this process fail if it had to compute a cell."""
    cached = constraints.Study._cached

    def load(study, rule, name, compute):
        assert study.cell(rule, name).exists(), f"{rule} {name} was not computed on the cluster"
        return cached(study, rule, name, compute)

    monkeypatch.setattr(constraints.Study, "_cached", load)


def test_the_dispatched_study_equals_the_serial_one_cell_for_cell(
    client, serial, tmp_path, monkeypatch, capsys
):
    loading_only(monkeypatch)
    address = client.scheduler.address
    assert constraints.main(QUICK + ["--run-dir", str(tmp_path), "--cluster", address]) == 0
    assert "3 cell(s) computed" in capsys.readouterr().out
    assert_same_cells(tmp_path, serial)
    ours, theirs = (dynlearn.load_netcdf(d / "constraints.nc") for d in (tmp_path, serial))
    xr.testing.assert_equal(ours.drop_vars("seconds"), theirs.drop_vars("seconds"))


class Stalling(constraints.Study):
    """The study, its noise cell stalling the first time, after writing its worker's pid;
    each cell computed (past the stall) is logged."""

    def _cached(self, rule, name, compute):
        def stalled():
            marker = self.run_dir / "stalled.pid"
            if name == "noise" and not marker.exists():
                marker.write_text(str(os.getpid()))
                time.sleep(30)  # killed long before
            with open(self.run_dir / "computed.log", "a") as log:
                log.write(f"{rule} {name}\n")
            return compute()

        return super()._cached(rule, name, stalled)


def test_killing_a_worker_mid_cell_loses_nothing_finished(client, serial, tmp_path):
    """SIGKILL the worker computing the noise cell (after the 100% cell it needs): the
    scheduler gives the task to another worker, which waits for the dead worker's lease on
    the cell to expire and computes it; the finished files are untouched, no cell is
    computed twice, and the assembled study equals the serial one."""
    config = quick_config(serial)
    study = Stalling(tmp_path, config)
    futures = _cluster.submit(client, study, constraints.cells(config, ["bp"]))
    marker = tmp_path / "stalled.pid"
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline, "the noise cell never started"
        time.sleep(0.05)
    finished = {  # the cell files and checkpoint written so far (not a write in progress)
        p: (p.stat().st_mtime_ns, p.read_bytes())
        for p in tmp_path.glob("cells/*/*")
        if not p.name.startswith(".")
    }
    os.kill(int(marker.read_text()), signal.SIGKILL)

    _cluster.gather(futures, log=lambda line: None)
    # (a task's list of the cells it computed is lost with its worker, and the task re-run
    # elsewhere finds its cell on disk: the study's own log counts the computations)
    computed = (tmp_path / "computed.log").read_text().splitlines()
    assert collections.Counter(computed) == collections.Counter(f"bp {c}" for c in CELLS)
    assert tmp_path / "cells" / "bp" / "fraction-1.nc" in finished
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in finished} == finished
    constraints.run_study(study, ["bp"])
    assert study.computed == []  # everything was on disk
    assert_same_cells(tmp_path, serial)


class Napping(constraints.Study):
    """A study of one slow cell that logs who looked for it (and whether it was on disk
    then) and who computed it."""

    def nap(self, rule):
        def compute():
            self._note("computed")
            time.sleep(2)  # long enough for the other task to ask for the cell meanwhile
            ds = xr.Dataset({"rested": ((), 1.0, {"long_name": "rested", "units": "1"})})
            return ds

        self._note(f"asked {self.cell(rule, 'nap').exists()}")
        return self._cached(rule, "nap", compute)

    def _note(self, what):
        with open(self.run_dir / "naps.log", "a") as log:
            log.write(f"{os.getpid()} {what}\n")


def test_two_racing_tasks_compute_a_cell_once(client, tmp_path):
    """The same cell submitted twice at once (as two clients or a retried task would), one
    task on each worker: both find no file, one computes it, the other waits and loads it."""
    config = {"dataset": "yinyang", "quick": True, "hidden": [4], "seeds": [0]}
    Napping(tmp_path, config)  # writes study.json
    client.wait_for_workers(2)  # the worker killed above is back
    workers = sorted(client.scheduler_info()["workers"])
    client.run(__import__, "tests.cluster_cases")  # both start at once, not after an import
    cell = _cluster.Cell("nap", ("bp",))
    futures = [
        client.submit(
            _cluster.compute, Napping, str(tmp_path), config, cell, workers=[w], pure=False
        )
        for w in workers
    ]
    results = client.gather(futures)
    assert sorted(len(computed) for computed, _ in results) == [0, 1]
    notes = (tmp_path / "naps.log").read_text().split("\n")[:-1]
    asked = [note.split()[0] for note in notes if note.endswith("asked False")]
    assert len(set(asked)) == 2  # two processes raced for the missing cell
    assert sum(note.endswith("computed") for note in notes) == 1
    assert float(dynlearn.load_netcdf(tmp_path / "cells" / "bp" / "nap.nc").rested) == 1.0


def test_the_cluster_option_and_its_errors(tmp_path, capsys):
    for good in ("local", "local:3", "tcp://10.0.0.1:8786", "tls://scheduler:8786"):
        assert _cluster.option(good) == good
    for main in (constraints.main, hardware.main):
        for bad in ("locale", "local:0", "10.0.0.1:8786"):
            with pytest.raises(SystemExit):
                main(["--cluster", bad])
            assert "argument --cluster: expected local, local:N" in capsys.readouterr().err
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = QUICK + ["--run-dir", str(tmp_path), "--cluster", f"tcp://127.0.0.1:{port}"]
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}),
        pytest.raises(ValueError, match=r"--cluster: no dask scheduler answers at tcp://"),
    ):
        constraints.main(argv)


def test_a_local_cluster_has_the_workers_asked_for():
    with _cluster.connect("local:1") as local:
        (worker,) = local.scheduler_info()["workers"].values()
        assert worker["nthreads"] == 1
    assert local.status == "closed"
