"""Several seeds of one learner trained at once: stacked learners, `vmap` over the stack.

`stack([learner_0, learner_1, ...])` puts the seeds on a leading axis of every array (the
static configuration must be the same); `fit_seeds` trains the stack with the batches and
keys `fit(seed=s)` would use for each seed, as one vmapped program.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _batches as batches
from ._checkpoint import load_checkpoint, save_checkpoint
from ._fit import has_resumable_checkpoint, run_config
from ._learner import AbstractLearner
from ._modes import AbstractMode
from ._runs import check_writable
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
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> tuple[AbstractLearner, np.ndarray]:
    """Train a stack of learners (one per seed, see `stack`) at once, vmapped over seeds.

    Seed `s` sees exactly the batches and per-batch keys of `fit(..., seed=s)`; only the
    execution is shared. If one seed's dynamics diverge the whole call raises (vmap runs
    the seeds as one program): fall back to `fit` per seed to keep the others.

    `devices` split the seeds (the stack, its batches and keys) over devices (see `fit`;
    None: every device, as many as divide `len(seeds)`); each device trains whole seeds.

    With a `run_dir`, the stack, the mode's states and the accuracies so far are saved
    atomically after every epoch; `resume=True` continues from that checkpoint (refused if
    it was made with other settings) and gives what an uninterrupted call gives. One
    process only (the stack is gathered to write it).

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
    one = unstack(learners, 0)
    batches.check_fit_args(one, data, mode, epochs, batch_size)
    mesh = data_mesh(devices, len(seeds), "len(seeds)")
    states = eqx.filter_vmap(mode.init)(learners)
    accuracy = np.full((len(seeds), epochs), np.nan)
    start = 0
    if run_dir is not None:
        run_dir = Path(run_dir)
        _check_one_process(run_dir)
        check_writable(run_dir, "run_dir")
        config = run_config(one, mode, unstack(states, 0), data, batch_size, seeds=seeds)
        config["epochs"] = epochs  # the saved accuracies have one column per epoch
        if has_resumable_checkpoint(run_dir, resume, config):
            like = (learners, states, accuracy, np.asarray(0))
            (learners, states, saved, start), _ = load_checkpoint(run_dir, like)
            accuracy, start = np.array(saved), int(start)
    learners, states = split((learners, states), mesh, 0)
    x, x_test = np.asarray(data.x_train), np.asarray(data.x_test)
    labels, labels_test = np.asarray(data.y_train), np.asarray(data.y_test)
    targets = np.eye(data.n_classes, dtype=x.dtype)[labels]
    n_batches = len(x) // batch_size
    for epoch in range(start, epochs):
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
        if run_dir is not None:
            state = (learners, states, accuracy.copy(), np.asarray(epoch + 1))
            save_checkpoint(run_dir, state, {"epoch": epoch + 1, "config": config})
    return learners, accuracy


def _check_one_process(run_dir: Path) -> None:
    if jax.process_count() > 1:
        raise ValueError(
            f"run_dir: fit_seeds checkpoints ({run_dir}) in one process only, and "
            f"{jax.process_count()} take part; leave run_dir out in a distributed run."
        )


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
