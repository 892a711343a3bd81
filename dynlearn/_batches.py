"""Batches, keys and compiled training chunks shared by `fit` and `fit_seeds`."""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._learner import AbstractLearner
from ._modes import AbstractMode
from .data import check_seed

__all__ = [
    "epoch_batches",
    "epoch_keys",
    "padded_chunks",
    "train_chunk",
    "predict_classes",
    "check_fit_args",
]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Sample indices of every batch of one epoch, `(n // batch_size, batch_size)`: a
    permutation seeded by `(seed, epoch)` (so a resumed run sees the same batches), the
    last incomplete batch dropped."""
    n_batches = n // batch_size
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[: n_batches * batch_size].reshape(n_batches, batch_size)


def epoch_keys(seed: int, epoch: int, n_batches: int):
    """The PRNG key given to the learner with each batch of one epoch (noise, sampling)."""
    return _epoch_keys(seed, epoch, n_batches)


@functools.partial(jax.jit, static_argnums=2)
def _epoch_keys(seed, epoch, n_batches):
    # One compiled call per epoch instead of three eager dispatches (key, fold_in, split).
    return jax.random.split(jax.random.fold_in(jax.random.key(seed), epoch), n_batches)


def padded_chunks(x, batch_size: int, multiple: int = 1):
    """`x` as equal chunks `(n_chunks, size, ...)`, zero-padded at the end (one compiled
    shape for every chunk; drop the padding's outputs with `[:len(x)]`); `size` is
    `min(batch_size, len(x))` rounded up to a multiple of `multiple` (e.g. the number of
    devices the chunks are split over)."""
    x = np.asarray(x)
    n = len(x)
    size = -(-min(batch_size, n) // multiple) * multiple
    n_chunks = math.ceil(n / size)
    padded = np.concatenate([x, np.zeros((n_chunks * size - n, *x.shape[1:]), x.dtype)])
    return jnp.asarray(padded.reshape(n_chunks, size, *x.shape[1:]))


@eqx.filter_jit
def predict_classes(learner, xs):
    """Arg-max predictions for chunks `(n_chunks, size, n_in)`."""
    return jax.lax.map(lambda x: jnp.argmax(learner.predict(x), axis=-1), xs)


@eqx.filter_jit
def train_chunk(mode, learner, state, xs, ys, labels, keys):
    """A compiled scan of `mode.step` over a chunk of batches: `(learner, state, losses,
    number of correct training outputs)`.

    Module-level, so repeated calls with an equal mode (the same optimizer object) and the
    same shapes reuse the compiled program.
    """
    params, static = eqx.partition((learner, state), eqx.is_array)

    def body(carry, batch):
        learner, state = eqx.combine(carry, static)
        x, y, label, key = batch
        learner, state, metrics = mode.step(learner, state, x, y, key)
        output = metrics.get("output")
        if output is None:
            output = learner.predict(x)
        n_ok = jnp.sum(jnp.argmax(output, axis=-1) == label)
        return eqx.filter((learner, state), eqx.is_array), (metrics["loss"], n_ok)

    params, (loss, n_ok) = jax.lax.scan(body, params, (xs, ys, labels, keys))
    learner, state = eqx.combine(params, static)
    return learner, state, loss, jnp.sum(n_ok)


def check_labels(labels, n_classes: int, what: str) -> None:
    """Labels must be class indices: a 1-D integer array with values in [0, n_classes)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == n_classes:
        raise ValueError(
            f"{what}: got one-hot targets of shape {labels.shape}; expected class indices "
            f"(shape (n,)): use labels.argmax(axis=1)."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{what}: expected class indices, a 1-D integer array; got shape {labels.shape} "
            f"and dtype {labels.dtype}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{what}: labels must lie in [0, n_classes) = [0, {n_classes}); got values from "
            f"{labels.min()} to {labels.max()}."
        )


def check_fit_args(learner, data, mode, epochs, batch_size, seed=0) -> None:
    """Validate `fit`'s arguments before any work, with errors that name the argument."""
    if not isinstance(learner, AbstractLearner):
        raise ValueError(
            f"learner: expected a dynlearn.AbstractLearner; got {type(learner).__name__}."
        )
    if not isinstance(mode, AbstractMode):
        raise ValueError(
            "mode: expected SettleThenUpdate(optimizer) or AlwaysOn(presentation); got "
            f"{type(mode).__name__}."
        )
    for name in ("x_train", "y_train", "x_test", "y_test", "n_classes"):
        if not hasattr(data, name):
            raise ValueError(f"data: expected an object with {name} (see dynlearn.data.load).")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an integer >= 1; got {epochs!r}.")
    check_seed(seed, "seed")
    for name in ("x_train", "x_test"):
        values = np.asarray(getattr(data, name))
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            raise ValueError(f"data: {name} contains NaN or inf; expected finite inputs.")
    for name in ("y_train", "y_test"):
        check_labels(getattr(data, name), data.n_classes, f"data.{name}")
    n = len(data.x_train)
    if not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(
            f"batch_size must be an integer between 1 and the number of training samples "
            f"({n}); got {batch_size!r}."
        )
    mode.check(learner, batch_size)
    x = np.asarray(data.x_train[:batch_size])
    try:
        shape = eqx.filter_eval_shape(learner.predict, x).shape
    except ValueError as err:
        raise ValueError(f"data: the learner cannot take x_train's samples: {err}") from err
    if shape != (batch_size, data.n_classes):
        raise ValueError(
            f"data: {type(learner).__name__}.predict gives outputs of shape {shape} for a batch "
            f"of {batch_size}, but the data set has n_classes={data.n_classes}; choose the "
            f"output width {data.n_classes}."
        )
