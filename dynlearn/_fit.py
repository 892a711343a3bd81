"""`fit`: train a learner on a dataset, with metrics, atomic checkpoints and resume."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ._batches import (
    check_fit_args,
    epoch_batches,
    epoch_keys,
    padded_chunks,
    predict_classes,
    train_chunk,
)
from ._checkpoint import CheckpointMismatch, checkpoint_info, load_checkpoint, save_checkpoint
from ._dataset import config_of, load_netcdf, save_netcdf
from ._learner import AbstractLearner
from ._metadata import fill_known, native_attrs
from ._modes import AbstractMode
from ._runs import check_writable
from ._sharding import Devices, data_mesh, is_main_process, replicate, split, to_host

__all__ = ["FitResult", "fit", "evaluate", "accuracy_curve"]

METRICS = "metrics.nc"


class FitResult(eqx.Module):
    """What `fit` returns: the trained learner, the mode's state (the optimizer's, for
    `SettleThenUpdate`), per-epoch metrics."""

    learner: AbstractLearner
    state: Any
    metrics: xr.Dataset = eqx.field(static=True)
    run_dir: Path | None = eqx.field(static=True)


def fit(
    learner: AbstractLearner,
    data,
    mode: AbstractMode,
    *,
    epochs: int = 1,
    batch_size: int = 64,
    seed: int = 0,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    updates_per_dispatch: int = 50,
    on_epoch: Callable[[int, AbstractLearner, dict], Any] | None = None,
    devices: Devices = None,
) -> FitResult:
    """Train `learner` on `data` for `epochs`, one `mode` step per batch.

    Each epoch shuffles the training set (seeded by `seed` and the epoch number, so a
    resumed run sees the same batches), runs the batches as compiled `lax.scan`s of
    `updates_per_dispatch` batches each (few dispatches, live progress between them),
    evaluates test accuracy, and with a `run_dir` writes `metrics.nc` and an atomic
    checkpoint. `resume=True` continues from the last complete checkpoint in `run_dir` and
    reproduces the metrics of an uninterrupted run.

    **Arguments:**
    - `learner`: an `AbstractLearner` (a circuit).
    - `data`: an object with `x_train, y_train, x_test, y_test` (labels as class indices)
      and `n_classes`, e.g. from `dynlearn.data.load`.
    - `mode`: `SettleThenUpdate(optimizer)` or `AlwaysOn(presentation)`; it is checked
      against the learner and the batch size before any work.
    - `epochs`, `batch_size`, `seed`: the budget and the randomness (shuffling and the
      per-batch keys given to the learner).
    - `run_dir`: folder for metrics and checkpoints (None: keep nothing on disk).
    - `resume`: continue from `run_dir`'s checkpoint instead of refusing to overwrite it.
    - `progress`: show a rich progress bar with live loss and accuracy.
    - `on_epoch`: called as `on_epoch(epoch, learner, row)` after every epoch (`row`: that
      epoch's metrics), e.g. to log quantities of the learner itself.
    - `devices`: the devices each batch is split over (data parallel, `jax.sharding`): its
      samples, or with `AlwaysOn` its parallel streams; the learner and the mode's state
      are replicated and the results equal one device's to float32 round-off. None (the
      default): every device (`jax.devices()`, in one process as many as divide the
      split axis); an int (the first that many), a list of devices or a one-axis
      `jax.sharding.Mesh`. In a distributed run (`jax.distributed.initialize`) every
      process calls `fit` alike, sends only its own shards, and process 0 alone writes
      `run_dir` and shows progress.

    **Returns:** a `FitResult`; `metrics` has dim `epoch` and variables `train_loss`,
    `train_accuracy`, `test_accuracy`, `wall_time` (seconds per epoch).
    """
    check_fit_args(learner, data, mode, epochs, batch_size, seed)
    mesh = data_mesh(devices, mode.split_size(batch_size), _split_name(mode, batch_size))
    if run_dir is not None:
        check_writable(run_dir, "run_dir")
    x_train, x_test = np.asarray(data.x_train), np.asarray(data.x_test)
    labels_train, labels_test = np.asarray(data.y_train), np.asarray(data.y_test)
    targets_train = np.eye(data.n_classes, dtype=x_train.dtype)[labels_train]
    state = mode.init(learner)
    config = run_config(learner, mode, state, data, batch_size, seed=seed)
    run_dir = None if run_dir is None else Path(run_dir)
    start_epoch, history = 0, []
    if run_dir is not None:
        learner, state, start_epoch, history = _restore(run_dir, resume, learner, state, config)
    learner, state = replicate((learner, state), mesh)
    writes = run_dir is not None and is_main_process()

    train = (x_train, targets_train, labels_train)
    n_batches = len(x_train) // batch_size
    saved_epoch = start_epoch
    try:
        with _progress(progress and is_main_process()) as bar:
            task = bar.add_task("fit", total=epochs * n_batches, completed=saved_epoch * n_batches)
            for epoch in range(start_epoch, epochs):
                tic = time.perf_counter()

                def show(loss, accuracy, advance, epoch=epoch):
                    text = f"epoch {epoch + 1}/{epochs} loss {loss:.4f} acc {accuracy:.3f}"
                    bar.update(task, advance=advance, description=text)

                learner, state, loss, accuracy = _train_epoch(
                    mode,
                    learner,
                    state,
                    train,
                    batch_size,
                    seed,
                    epoch,
                    updates_per_dispatch,
                    show,
                    mesh,
                )
                history.append(
                    {
                        "epoch": epoch + 1,
                        "train_loss": loss,
                        "train_accuracy": accuracy,
                        "test_accuracy": _accuracy(learner, x_test, labels_test, 1000, mesh),
                        "wall_time": time.perf_counter() - tic,
                    }
                )
                if writes:
                    save_netcdf(_metrics_dataset(history, config), run_dir / METRICS)
                    checkpoint = (learner, state, jnp.asarray(epoch + 1))
                    save_checkpoint(run_dir, checkpoint, {"epoch": epoch + 1, "config": config})
                    saved_epoch = epoch + 1
                if on_epoch is not None:
                    on_epoch(epoch + 1, learner, history[-1])
    except KeyboardInterrupt:
        if run_dir is not None:
            print(
                f"interrupted: the last complete checkpoint (epoch {saved_epoch}) is in "
                f"{run_dir}; continue with resume=True."
            )
        raise
    return FitResult(learner, state, _metrics_dataset(history, config), run_dir)


def _split_name(mode: AbstractMode, batch_size: int) -> str:
    if mode.split_size(batch_size) == batch_size:
        return "batch_size"
    return "the batch's parallel streams (presentation.streams)"


def _train_epoch(mode, learner, state, train, batch_size, seed, epoch, per_call, show, mesh):
    """One epoch: a seeded shuffle, then compiled scans over `per_call` batches at a time
    (each batch split over `mesh` along its samples, if one is given).

    Returns `(learner, state, mean loss, training accuracy)`; the accuracy counts the
    circuit's outputs on each batch as it is learned.
    """
    x, targets, labels = train
    n_batches = len(x) // batch_size
    order = epoch_batches(len(x), batch_size, seed, epoch)
    keys = epoch_keys(seed, epoch, n_batches)
    losses, correct = [], 0
    for lo in range(0, n_batches, per_call):
        idx = order[lo : lo + per_call]
        learner, state, loss, n_ok = train_chunk(
            mode,
            learner,
            state,
            *(split(a[idx], mesh, 1) for a in (x, targets, labels)),
            replicate(keys[lo : lo + len(idx)], mesh),
        )
        losses.append(to_host(loss))
        correct += int(to_host(n_ok))
        show(float(loss.mean()), correct / ((lo + len(idx)) * batch_size), len(idx))
    return learner, state, float(np.concatenate(losses).mean()), correct / order.size


def accuracy_curve(
    learner: AbstractLearner, data, mode: AbstractMode, *, epochs: int, **fit_kwargs
) -> np.ndarray:
    """Test accuracy after each of `epochs` epochs of `fit`; when the run diverges (the
    engine raises), the finished epochs are kept and the rest are NaN.

    For comparisons in which a rule that blows up is a result, not a crash. `fit_kwargs`
    go to `fit` (its progress bar off, metrics kept in a temporary folder)."""
    with tempfile.TemporaryDirectory() as run_dir:
        try:
            fit(learner, data, mode, epochs=epochs, progress=False, run_dir=run_dir, **fit_kwargs)
        except eqx.EquinoxRuntimeError:  # diverged: keep the epochs that finished
            pass
        return finished_accuracy(run_dir, epochs)


def finished_accuracy(run_dir: str | Path, epochs: int) -> np.ndarray:
    """Test accuracy per epoch from the metrics `fit` wrote to `run_dir` (finished or cut
    short), NaN after its last epoch."""
    accuracy = np.full(epochs, np.nan)
    saved = Path(run_dir) / METRICS
    if saved.exists():
        done = load_netcdf(saved).test_accuracy.values[:epochs]
        accuracy[: len(done)] = done
    return accuracy


def evaluate(
    learner: AbstractLearner, x, labels, *, batch_size: int = 1000, devices: Devices = None
) -> float:
    """Classification accuracy of `learner.predict` (batches padded to one compiled shape,
    each split over `devices` as in `fit`)."""
    size = min(batch_size, len(x))
    return _accuracy(learner, x, labels, batch_size, data_mesh(devices, size, "batch_size"))


def _accuracy(learner, x, labels, batch_size, mesh) -> float:
    multiple = 1 if mesh is None else mesh.size  # chunks that split evenly over the devices
    chunks = split(padded_chunks(x, batch_size, multiple), mesh, 1)
    predicted = to_host(predict_classes(replicate(learner, mesh), chunks))
    return float(np.mean(predicted.reshape(-1)[: len(labels)] == np.asarray(labels)))


def _restore(run_dir: Path, resume: bool, learner, state, config):
    if not has_resumable_checkpoint(run_dir, resume, config):
        return learner, state, 0, []
    (learner, state, epoch), _ = load_checkpoint(run_dir, (learner, state, jnp.asarray(0)))
    epoch = int(epoch)
    history = []
    if (run_dir / METRICS).exists():
        ds = load_netcdf(run_dir / METRICS)
        for i in range(min(epoch, ds.sizes["epoch"])):
            row = {"epoch": int(ds.epoch[i])}
            row.update({v: float(ds[v][i]) for v in ds.data_vars})
            history.append(row)
    return learner, state, epoch, history


def run_config(learner, mode: AbstractMode, state, data, batch_size: int, **seeds) -> dict:
    """The settings a checkpoint is saved with (and resumed only under): the learner's,
    the mode's and its state's kinds, the data, the batches and `seeds`."""
    return {
        "learner": config_of(learner),
        "mode": type(mode).__name__,
        **mode.config(learner),
        "mode_state": _state_kinds(state),
        "dataset": getattr(data, "name", type(data).__name__),
        "n_train": len(data.x_train),
        "batch_size": batch_size,
        **seeds,
    }


def has_resumable_checkpoint(run_dir: Path, resume: bool, config: dict) -> bool:
    """Whether `run_dir` holds a checkpoint to continue: False if it holds none; a
    `ValueError` if it holds one and `resume` is off, a `CheckpointMismatch` if it holds one
    made with other settings than `config` (the JSON-like configuration saved in its info)."""
    info = checkpoint_info(run_dir)
    if info is None:
        return False
    if not resume:
        raise ValueError(
            f"run_dir: {run_dir} already holds a checkpoint; pass resume=True to continue it "
            "or choose another run_dir (nothing was overwritten)."
        )
    changed = config_differences(info.get("config", {}), config)
    if changed:
        raise CheckpointMismatch(
            f"resume: the checkpoint in {run_dir} was made with other settings ("
            + "; ".join(changed[:8] + [f"{len(changed) - 8} more"] * (len(changed) > 8))
            + "); resume with the same learner, mode, optimizer, data and batches, or "
            "choose another run_dir (nothing was loaded or overwritten)."
        )
    return True


def config_differences(saved: Any, now: Any) -> list[str]:
    """Where configuration `now` differs from `saved` (both JSON-like), as
    `"path: saved -> now"` lines; keys `saved` lacks (written by older versions) are skipped."""

    def walk(old, new, path):
        if isinstance(old, dict) and isinstance(new, dict):
            for key in new:
                if key in old:
                    yield from walk(old[key], new[key], f"{path}.{key}" if path else key)
        elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new)):
                yield from walk(a, b, f"{path}[{i}]")
        elif old != new:
            yield f"{path}: {old!r} -> {new!r}"

    return list(walk(saved, json.loads(json.dumps(now)), ""))


def _state_kinds(state) -> str:
    """The classes of a mode's state (e.g. an optax optimizer's `ScaleByAdamState`), to tell
    one optimizer from another in a checkpoint's configuration."""

    def is_named(x):
        return isinstance(x, tuple) and hasattr(x, "_fields")

    nodes = jax.tree.leaves(state, is_leaf=is_named)
    return "+".join(type(node).__name__ for node in nodes if is_named(node)) or "none"


def _metrics_dataset(history: list[dict], config: dict) -> xr.Dataset:
    epochs = np.array([row["epoch"] for row in history], dtype=np.int32)
    names = ("train_loss", "train_accuracy", "test_accuracy", "wall_time")
    ds = xr.Dataset(
        {name: ("epoch", np.array([row[name] for row in history], np.float64)) for name in names},
        coords={"epoch": epochs},
    )
    ds = fill_known(ds)  # epoch, losses and accuracies (fractions in [0, 1])
    ds.wall_time.attrs.update(
        long_name="wall-clock time of the epoch (training and test evaluation)", units="s"
    )
    ds.attrs.update(native_attrs({"config": config}))
    ds.attrs["seed"] = int(config["seed"])
    return ds


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
