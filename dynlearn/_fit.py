"""`fit`: train a learner on a dataset, with metrics, atomic checkpoints and resume."""

from __future__ import annotations

import functools
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ._checkpoint import load_checkpoint, save_checkpoint
from ._dataset import config_of, load_netcdf, save_netcdf
from ._learner import AbstractLearner, AbstractMode, SettleThenUpdate

__all__ = ["FitResult", "fit", "evaluate", "epoch_batches", "accuracy_curve"]

METRICS = "metrics.nc"


class FitResult(eqx.Module):
    """What `fit` returns: the trained learner, the optimizer state, per-epoch metrics."""

    learner: AbstractLearner
    opt_state: Any
    metrics: xr.Dataset = eqx.field(static=True)
    run_dir: Path | None = eqx.field(static=True)


def fit(
    learner: AbstractLearner,
    data,
    *,
    optimizer: optax.GradientTransformation | None = None,
    mode: AbstractMode = SettleThenUpdate(),
    epochs: int = 1,
    batch_size: int = 64,
    seed: int = 0,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    updates_per_dispatch: int = 50,
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
    - `optimizer`: an optax transformation (required by `SettleThenUpdate`).
    - `mode`: `SettleThenUpdate()` or `AlwaysOn()`.
    - `epochs`, `batch_size`, `seed`: the budget and the randomness (shuffling and the
      per-batch keys given to the learner).
    - `run_dir`: folder for metrics and checkpoints (None: keep nothing on disk).
    - `resume`: continue from `run_dir`'s checkpoint instead of refusing to overwrite it.
    - `progress`: show a rich progress bar with live loss and accuracy.

    **Returns:** a `FitResult`; `metrics` has dim `epoch` and variables `train_loss`,
    `train_accuracy`, `test_accuracy`, `wall_time` (seconds per epoch).
    """
    _check_fit_args(learner, data, optimizer, mode, epochs, batch_size)
    x_train, x_test = np.asarray(data.x_train), np.asarray(data.x_test)
    labels_train, labels_test = np.asarray(data.y_train), np.asarray(data.y_test)
    targets_train = np.eye(data.n_classes, dtype=x_train.dtype)[labels_train]
    opt_state = optimizer.init(eqx.filter(learner, learner.trainable())) if optimizer else None
    config = {
        "learner": config_of(learner),
        "mode": type(mode).__name__,
        "optimizer": repr(optimizer) if optimizer is None else _optimizer_name(optimizer),
        "dataset": getattr(data, "name", type(data).__name__),
        "n_train": len(x_train),
        "batch_size": batch_size,
        "seed": seed,
    }
    run_dir = None if run_dir is None else Path(run_dir)
    start_epoch, history = 0, []
    if run_dir is not None:
        learner, opt_state, start_epoch, history = _restore(
            run_dir, resume, learner, opt_state, config
        )

    train_chunk = functools.partial(_train_chunk, mode, optimizer)
    train = (x_train, targets_train, labels_train)
    n_batches = len(x_train) // batch_size
    saved_epoch = start_epoch
    try:
        with _progress(progress) as bar:
            task = bar.add_task("fit", total=epochs * n_batches, completed=saved_epoch * n_batches)
            for epoch in range(start_epoch, epochs):
                tic = time.perf_counter()

                def show(loss, accuracy, advance, epoch=epoch):
                    text = f"epoch {epoch + 1}/{epochs} loss {loss:.4f} acc {accuracy:.3f}"
                    bar.update(task, advance=advance, description=text)

                learner, opt_state, loss, accuracy = _train_epoch(
                    train_chunk,
                    learner,
                    opt_state,
                    train,
                    batch_size,
                    seed,
                    epoch,
                    updates_per_dispatch,
                    show,
                )
                history.append(
                    {
                        "epoch": epoch + 1,
                        "train_loss": loss,
                        "train_accuracy": accuracy,
                        "test_accuracy": evaluate(learner, x_test, labels_test),
                        "wall_time": time.perf_counter() - tic,
                    }
                )
                if run_dir is not None:
                    save_netcdf(_metrics_dataset(history, config), run_dir / METRICS)
                    state = (learner, opt_state, jnp.asarray(epoch + 1))
                    save_checkpoint(run_dir, state, {"epoch": epoch + 1, "config": config})
                    saved_epoch = epoch + 1
    except KeyboardInterrupt:
        if run_dir is not None:
            print(
                f"interrupted: the last complete checkpoint (epoch {saved_epoch}) is in "
                f"{run_dir}; continue with resume=True."
            )
        raise
    return FitResult(learner, opt_state, _metrics_dataset(history, config), run_dir)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Sample indices of every batch of one epoch, `(n // batch_size, batch_size)`: a
    permutation seeded by `(seed, epoch)` (so a resumed run sees the same batches), the
    last incomplete batch dropped."""
    n_batches = n // batch_size
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[: n_batches * batch_size].reshape(n_batches, batch_size)


def epoch_keys(seed: int, epoch: int, n_batches: int):
    """The PRNG key given to the learner with each batch of one epoch (noise, sampling)."""
    return jax.random.split(jax.random.fold_in(jax.random.key(seed), epoch), n_batches)


def _train_epoch(train_chunk, learner, opt_state, train, batch_size, seed, epoch, per_call, show):
    """One epoch: a seeded shuffle, then compiled scans over `per_call` batches at a time.

    Returns `(learner, opt_state, mean loss, training accuracy)`; the accuracy counts the
    circuit's outputs on each batch as it is learned.
    """
    x, targets, labels = train
    n_batches = len(x) // batch_size
    order = epoch_batches(len(x), batch_size, seed, epoch)
    keys = epoch_keys(seed, epoch, n_batches)
    losses, correct = [], 0
    for lo in range(0, n_batches, per_call):
        idx = order[lo : lo + per_call]
        learner, opt_state, loss, n_ok = train_chunk(
            learner,
            opt_state,
            jnp.asarray(x[idx]),
            jnp.asarray(targets[idx]),
            jnp.asarray(labels[idx]),
            keys[lo : lo + len(idx)],
        )
        losses.append(np.asarray(loss))
        correct += int(n_ok)
        show(float(loss.mean()), correct / ((lo + len(idx)) * batch_size), len(idx))
    return learner, opt_state, float(np.concatenate(losses).mean()), correct / order.size


def accuracy_curve(learner: AbstractLearner, data, *, epochs: int, **fit_kwargs) -> np.ndarray:
    """Test accuracy after each of `epochs` epochs of `fit`; when the run diverges (the
    engine raises), the finished epochs are kept and the rest are NaN.

    For comparisons in which a rule that blows up is a result, not a crash. `fit_kwargs`
    go to `fit` (its progress bar off, metrics kept in a temporary folder)."""
    accuracy = np.full(epochs, np.nan)
    with tempfile.TemporaryDirectory() as run_dir:
        try:
            done = fit(
                learner, data, epochs=epochs, progress=False, run_dir=run_dir, **fit_kwargs
            ).metrics.test_accuracy.values
        except eqx.EquinoxRuntimeError:  # diverged: keep the epochs that finished
            saved = Path(run_dir) / METRICS
            done = load_netcdf(saved).test_accuracy.values if saved.exists() else []
    accuracy[: len(done)] = done
    return accuracy


def evaluate(learner: AbstractLearner, x, labels, *, batch_size: int = 1000) -> float:
    """Classification accuracy of `learner.predict` (batches padded to one compiled shape)."""
    chunks = padded_chunks(x, batch_size)
    predicted = np.asarray(_predict_classes(learner, chunks)).reshape(-1)[: len(labels)]
    return float(np.mean(predicted == np.asarray(labels)))


def padded_chunks(x, batch_size: int):
    """`x` as equal chunks `(n_chunks, size, ...)`, zero-padded at the end (one compiled
    shape for every chunk; drop the padding's outputs with `[:len(x)]`)."""
    x = np.asarray(x)
    n = len(x)
    size = min(batch_size, n)
    n_chunks = math.ceil(n / size)
    padded = np.concatenate([x, np.zeros((n_chunks * size - n, *x.shape[1:]), x.dtype)])
    return jnp.asarray(padded.reshape(n_chunks, size, *x.shape[1:]))


@eqx.filter_jit
def _predict_classes(learner, xs):
    return jax.lax.map(lambda x: jnp.argmax(learner.predict(x), axis=-1), xs)


@eqx.filter_jit
def _train_chunk(mode, optimizer, learner, opt_state, xs, ys, labels, keys):
    """A compiled scan of `mode.step` over a chunk of batches.

    Module-level, so repeated `fit` calls with the same mode, optimizer object and shapes
    reuse the compiled program.
    """
    params, static = eqx.partition((learner, opt_state), eqx.is_array)

    def body(carry, batch):
        learner, opt_state = eqx.combine(carry, static)
        x, y, label, key = batch
        learner, opt_state, metrics = mode.step(learner, opt_state, optimizer, x, y, key)
        output = metrics.get("output")
        if output is None:
            output = learner.predict(x)
        n_ok = jnp.sum(jnp.argmax(output, axis=-1) == label)
        return eqx.filter((learner, opt_state), eqx.is_array), (metrics["loss"], n_ok)

    params, (loss, n_ok) = jax.lax.scan(body, params, (xs, ys, labels, keys))
    learner, opt_state = eqx.combine(params, static)
    return learner, opt_state, loss, jnp.sum(n_ok)


def _check_fit_args(learner, data, optimizer, mode, epochs, batch_size) -> None:
    if not isinstance(learner, AbstractLearner):
        raise ValueError(
            f"learner: expected a dynlearn.AbstractLearner; got {type(learner).__name__}."
        )
    if not isinstance(mode, AbstractMode):
        raise ValueError(
            f"mode: expected SettleThenUpdate() or AlwaysOn(); got {type(mode).__name__}."
        )
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"optimizer: expected an optax.GradientTransformation (e.g. optax.adam(1e-3)); "
            f"got {type(optimizer).__name__}."
        )
    if mode.uses_optimizer and optimizer is None:
        raise ValueError(f"optimizer: {type(mode).__name__} needs one, e.g. optax.adam(1e-3).")
    for name in ("x_train", "y_train", "x_test", "y_test", "n_classes"):
        if not hasattr(data, name):
            raise ValueError(f"data: expected an object with {name} (see dynlearn.data.load).")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an integer >= 1; got {epochs!r}.")
    for name in ("x_train", "x_test"):
        values = np.asarray(getattr(data, name))
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            raise ValueError(f"data: {name} contains NaN or inf; expected finite inputs.")
    n = len(data.x_train)
    if not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(
            f"batch_size must be an integer between 1 and the number of training samples "
            f"({n}); got {batch_size!r}."
        )


def _optimizer_name(optimizer) -> str:
    update = getattr(optimizer, "update", None)
    return getattr(update, "__qualname__", type(optimizer).__name__).split(".<locals>")[0]


def _restore(run_dir: Path, resume: bool, learner, opt_state, config):
    found = load_checkpoint(run_dir, (learner, opt_state, jnp.asarray(0)))
    if found is None:
        return learner, opt_state, 0, []
    if not resume:
        raise ValueError(
            f"run_dir: {run_dir} already holds a checkpoint; pass resume=True to continue it "
            "or choose another run_dir (nothing was overwritten)."
        )
    (learner, opt_state, epoch), info = found
    saved = info.get("config", {})
    for key in ("mode", "dataset", "n_train", "batch_size", "seed"):
        if key in saved and saved[key] != config[key]:
            raise ValueError(
                f"resume: the checkpoint in {run_dir} was made with {key}={saved[key]!r}, "
                f"this call has {key}={config[key]!r}; resume with the same settings."
            )
    epoch = int(epoch)
    history = []
    if (run_dir / METRICS).exists():
        ds = load_netcdf(run_dir / METRICS)
        for i in range(min(epoch, ds.sizes["epoch"])):
            row = {"epoch": int(ds.epoch[i])}
            row.update({v: float(ds[v][i]) for v in ds.data_vars})
            history.append(row)
    return learner, opt_state, epoch, history


def _metrics_dataset(history: list[dict], config: dict) -> xr.Dataset:
    epochs = np.array([row["epoch"] for row in history], dtype=np.int32)
    names = ("train_loss", "train_accuracy", "test_accuracy", "wall_time")
    ds = xr.Dataset(
        {name: ("epoch", np.array([row[name] for row in history], np.float64)) for name in names},
        coords={"epoch": epochs},
    )
    ds.wall_time.attrs["units"] = "s"
    ds.attrs["config"] = json.dumps(config)
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
