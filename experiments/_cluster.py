"""A study's cells on a dask.distributed cluster, one task each (`--cluster` of `dynlearn run
constraints` and `dynlearn run hardware`).

A study (`experiments.constraints.Study`, and those built the same way) is a set of cells,
each written to its own file in `<run-dir>/cells/` as it finishes. `run` sends each cell to
the cluster as one task, after the tasks of the cells it needs (a rule's pruning and noise
cells after its 100% cell). A worker re-creates the study from its folder and configuration
and computes the cell, or loads it if it is on disk. The client then assembles the results
with the serial code, which finds every cell on disk: the results equal a serial run's, cell
for cell.

Clusters (`--cluster`):
- `local`: a `distributed.LocalCluster` on this machine, one worker process (one thread)
  per core; `local:N`: N workers.
- a scheduler's address, `tcp://HOST:8786`: a running cluster. Start `dask scheduler` on one
  machine and `dask worker tcp://HOST:8786 --nthreads 1` on the others, in the same
  environment (this package installed, `DYNLEARN_DATA` set). On SLURM, dask-jobqueue (not a
  dependency: `pip install dask-jobqueue`) starts the workers as jobs, e.g.
  `SLURMCluster(cores=1, processes=1, memory="8GB", walltime="04:00:00")` and
  `cluster.scale(jobs=16)`; pass its `cluster.scheduler_address` to `--cluster`.
Every worker must see the run folder at the same path (a shared file system such as NFS or
Lustre): the cells are files there, and their locks are named after those paths.

A cell is computed once. A worker holds a `distributed.Lock` named after the cell's file
while it looks for the file and, if absent, computes and writes it (atomically, as the serial
study does); a task that wants the same cell meanwhile (the study sent twice, a task
retried) waits for the lock, then finds the file and loads it. A worker that dies holding a
lock has written nothing of its cell; the scheduler gives the task to another worker, which
gets the lock once the dead worker's lease expires and computes the cell. Finished files
are never rewritten. The lease timeout (`distributed.scheduler.locks.lease-timeout`, 30 s by
default; set `DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT=120s` in the workers'
environment to change it) is a trade-off: the holder's event loop renews its lease every
fifth of it, so a live worker cut off from the scheduler for longer (or a task holding
Python's GIL that long) loses its lease, and a second worker could compute the same cell.
The locks live in the scheduler: two runs on one run folder at once must share a scheduler
(the serial study takes no lock at all).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import distributed

# dask and distributed are imported where a cluster is used: importing the studies (every
# test that builds one) does not load them.

__all__ = ["Cell", "option", "connect", "run", "submit", "gather", "compute"]


class Cell(NamedTuple):
    """One cell of a study, `getattr(study, method)(*args)`, computed after the cells in
    `after`."""

    method: str
    args: tuple
    after: tuple = ()

    def __str__(self) -> str:
        return f"{self.method}({', '.join(map(str, self.args))})"


def option(text: str) -> str:
    """`--cluster`'s value, checked: `local`, `local:N` (N >= 1 workers) or a scheduler's
    address (`tcp://HOST:PORT`, any `scheme://`)."""
    workers = text.removeprefix("local:")
    if text == "local" or "://" in text or (workers.isdigit() and int(workers) > 0):
        return text
    raise argparse.ArgumentTypeError(
        "expected local, local:N (N worker processes) or a scheduler's address such as "
        f"tcp://HOST:8786; got {text!r}"
    )


@contextlib.contextmanager
def connect(cluster: str) -> Iterator[distributed.Client]:
    """A client of `cluster` (see `option`); a local cluster is shut down with it."""
    import distributed

    if "://" in cluster:
        try:
            client = distributed.Client(cluster)
        except OSError as err:
            raise ValueError(
                f"--cluster: no dask scheduler answers at {cluster} ({err}); start one with "
                f"`dask scheduler` and workers with `dask worker {cluster}`, or use "
                "--cluster local."
            ) from None
        with client:
            yield client
        return
    n_workers = int(cluster.removeprefix("local").removeprefix(":") or 0) or None
    # One thread per worker: a cell is one JAX program at a time, and XLA has its own threads.
    # Workers on one GPU must not each take most of its memory up front.
    with (
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


def run(cluster: str, study, cells: list[Cell], log=print) -> list[str]:
    """Compute the `cells` of `study` on `cluster` (see `option`); returns the cells computed
    (as `study.computed` names them; the others were on disk)."""
    with connect(cluster) as client:
        workers = len(client.scheduler_info()["workers"])
        log(f"dask cluster {client.scheduler.address}: {workers} worker(s), {len(cells)} cells")
        return gather(submit(client, study, cells), log)


def submit(client: distributed.Client, study, cells: list[Cell]) -> dict[Cell, distributed.Future]:
    """One task per cell (and per cell they need), run after the tasks of the cells it
    needs. A task's key names the study and the cell: the same study submitted twice to one
    scheduler is one set of tasks."""
    run_dir = str(Path(study.run_dir).absolute())
    import dask.base

    token = dask.base.tokenize(type(study).__qualname__, run_dir, study.config)
    futures: dict[Cell, distributed.Future] = {}

    def task(cell: Cell) -> distributed.Future:
        if cell not in futures:
            after = [task(needed) for needed in cell.after]
            futures[cell] = client.submit(
                compute, type(study), run_dir, study.config, cell, *after, key=f"{cell}-{token}"
            )
        return futures[cell]

    for cell in cells:
        task(cell)
    return futures


def gather(futures: dict[Cell, distributed.Future], log=print) -> list[str]:
    """Wait for the tasks (a task's error is raised here), logging the workers' lines as
    each task finishes; the cells computed. (A finished task whose worker died is re-run
    and finds its cell on disk: that cell is not counted.)"""
    import distributed

    computed = []
    for future in distributed.as_completed(list(futures.values())):
        done, lines = future.result()
        computed += done
        for line in lines:
            log(line)
    return computed


def compute(kind: type, run_dir: str, config: dict, cell: Cell, *after) -> tuple[list, list]:
    """On a worker: `cell` of the study `kind(run_dir, config)`, computed under the cell's
    lock or loaded (`after`: the results of the tasks it waited for, unused). Returns the
    cells computed (the cell, and a cell it needed if that was not on disk) and the lines
    logged."""
    lines: list[str] = []
    study = kind(Path(run_dir), config, log=lines.append, lock=Locks())
    getattr(study, cell.method)(*cell.args)
    return study.computed, lines


class Locks:
    """`with locks(path):` holds the cluster-wide lock of the file `path`; re-entrant (a
    cell that computes a cell it needs, `Study._trained`, takes that cell's lock inside)."""

    def __init__(self):
        self.held: set[str] = set()

    @contextlib.contextmanager
    def __call__(self, path: Path) -> Iterator[None]:
        name = os.path.abspath(path)
        if name in self.held:
            yield
            return
        with _lock(name):
            self.held.add(name)
            try:
                yield
            finally:
                self.held.discard(name)


@functools.cache
def _lock(name: str) -> distributed.Lock:
    # one per file and worker process: a Lock renews its leases with a periodic callback
    import distributed

    return distributed.Lock(name)
