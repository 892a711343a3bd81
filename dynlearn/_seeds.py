"""Several seeds of one learner trained at once: stacked learners, `vmap` over the stack.

`stack([learner_0, learner_1, ...])` puts the seeds on a leading axis of every array (the
static configuration must be the same); `fit_seeds` trains the stack with the batches and
keys `fit(seed=s)` would use for each seed, as one vmapped program.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _batches as batches
from ._learner import AbstractLearner
from ._modes import AbstractMode
from ._sharding import Devices, data_mesh, mesh_of, replicate, split, to_host
from .data import check_seed

__all__ = ["stack", "unstack", "fit_seeds", "evaluate_seeds"]


def stack(trees: Sequence) -> object:
    """One pytree whose arrays gain a leading axis over `trees` (same structure and static
    fields required, e.g. the same circuit built with different keys)."""
    if not trees:
        raise ValueError("trees: expected at least one pytree to stack.")
    arrays = [eqx.filter(tree, eqx.is_array) for tree in trees]
    statics = [eqx.partition(tree, eqx.is_array)[1] for tree in trees]
    first = jax.tree.structure(statics[0])
    for i, static in enumerate(statics[1:], start=1):
        if jax.tree.structure(static) != first or jax.tree.leaves(static) != jax.tree.leaves(
            statics[0]
        ):
            raise ValueError(
                f"trees: entry {i} differs from entry 0 in its static configuration; only "
                "arrays (e.g. initial weights) may differ between stacked seeds."
            )
        shapes = [np.shape(leaf) for leaf in jax.tree.leaves(arrays[i])]
        if shapes != [np.shape(leaf) for leaf in jax.tree.leaves(arrays[0])]:
            raise ValueError(
                f"trees: entry {i} has arrays of other shapes than entry 0 ({shapes}); "
                "stacked seeds need the same layer sizes."
            )
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *arrays)
    return eqx.combine(stacked, statics[0])


def unstack(tree, index: int):
    """Entry `index` of a stacked pytree (see `stack`)."""
    return jax.tree.map(lambda leaf: leaf[index] if eqx.is_array(leaf) else leaf, tree)


def fit_seeds(
    learners: AbstractLearner,
    data,
    mode: AbstractMode,
    *,
    seeds: Sequence[int],
    epochs: int = 1,
    batch_size: int = 64,
    updates_per_dispatch: int = 50,
    devices: Devices = None,
) -> tuple[AbstractLearner, np.ndarray]:
    """Train a stack of learners (one per seed, see `stack`) at once, vmapped over seeds.

    Seed `s` sees exactly the batches and per-batch keys of `fit(..., seed=s)`; only the
    execution is shared. If one seed's dynamics diverge the whole call raises (vmap runs
    the seeds as one program): fall back to `fit` per seed to keep the others.

    `devices` split the seeds (the stack, its batches and keys) over devices (see `fit`;
    None: every device, as many as divide `len(seeds)`); each device trains whole seeds.

    **Returns:** `(trained stack, test accuracy of shape (len(seeds), epochs))`.
    """
    for seed in seeds:
        check_seed(seed, "seeds")
    seeds = [int(s) for s in seeds]
    sizes = {np.shape(leaf)[0] for leaf in jax.tree.leaves(eqx.filter(learners, eqx.is_array))}
    if sizes != {len(seeds)}:
        raise ValueError(
            f"learners: expected a stack with a leading axis of len(seeds) = {len(seeds)} on "
            f"every array (see dynlearn.stack); found leading sizes {sorted(sizes)}."
        )
    batches.check_fit_args(unstack(learners, 0), data, mode, epochs, batch_size)
    mesh = data_mesh(devices, len(seeds), "len(seeds)")
    learners = split(learners, mesh, 0)
    x, x_test = np.asarray(data.x_train), np.asarray(data.x_test)
    labels, labels_test = np.asarray(data.y_train), np.asarray(data.y_test)
    targets = np.eye(data.n_classes, dtype=x.dtype)[labels]
    states = eqx.filter_vmap(mode.init)(learners)
    n_batches = len(x) // batch_size
    accuracy = np.full((len(seeds), epochs), np.nan)
    for epoch in range(epochs):
        orders = np.stack([batches.epoch_batches(len(x), batch_size, s, epoch) for s in seeds])
        keys = jnp.stack([batches.epoch_keys(s, epoch, n_batches) for s in seeds])
        for lo in range(0, n_batches, updates_per_dispatch):
            idx = orders[:, lo : lo + updates_per_dispatch]
            learners, states = _train_chunk_seeds(
                mode,
                learners,
                states,
                *(split(a[idx], mesh, 0) for a in (x, targets, labels)),
                split(keys[:, lo : lo + updates_per_dispatch], mesh, 0),
            )
        accuracy[:, epoch] = evaluate_seeds(learners, x_test, labels_test)
    return learners, accuracy


def evaluate_seeds(learners: AbstractLearner, x, labels, *, batch_size: int = 1000) -> np.ndarray:
    """Classification accuracy of each learner in a stack, shape `(n_seeds,)` (the stack
    may be split over devices, see `fit_seeds`)."""
    chunks = replicate(batches.padded_chunks(x, batch_size), mesh_of(learners))
    predicted = to_host(_predict_classes_seeds(learners, chunks))
    predicted = predicted.reshape(len(predicted), -1)[:, : len(labels)]
    return np.mean(predicted == np.asarray(labels), axis=1)


@eqx.filter_jit
def _predict_classes_seeds(learners, xs):
    return eqx.filter_vmap(lambda learner: batches.predict_classes(learner, xs))(learners)


@eqx.filter_jit
def _train_chunk_seeds(mode, learners, states, xs, ys, labels, keys):
    def one(learner, state, x, y, label, key):
        learner, state, _, _ = batches.train_chunk(mode, learner, state, x, y, label, key)
        return learner, state

    return eqx.filter_vmap(one)(learners, states, xs, ys, labels, keys)
