"""Magnitude pruning of a learner, and re-training with the pruned weights held at 0.

`prune(learner, sparsity)` zeroes the smallest-magnitude entries over all of the learner's
`prunable()` weight matrices together (one global threshold; `scope="layer"`: one per
matrix) and returns a `Pruned` learner that `fit` trains like any other while keeping those
entries at zero.
"""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, PyTree

from ._learner import AbstractLearner
from .analysis import prune_global, prune_per_layer

__all__ = ["Pruned", "prune", "apply_masks", "unwrap", "rewrap"]

# one threshold over all prunable weights together, or one per weight matrix
SCOPES = {"global": prune_global, "layer": prune_per_layer}


class Pruned(AbstractLearner):
    """`learner` with a fixed sparsity mask on its `prunable()` weights.

    `masks` holds one 0/1 array per prunable leaf (in `jax.tree.leaves` order). Both modes
    keep the pruned entries exactly at zero:
    - settle-then-update: the updates of pruned entries are zeroed before the optimizer,
      and the pruned entries reset to zero after its step (an optimizer with momentum from
      before the pruning, e.g. under `GradualPruning`, would move them otherwise);
    - always-on: the rates of pruned weights are zero in the joint dynamics of neurons and
      weights (`dynlearn.Learning`).
    """

    learner: AbstractLearner
    masks: list[Array]

    @property
    def sizes(self) -> list[int]:
        return self.learner.sizes

    def predict(self, x):
        return self.learner.predict(x)

    def trainable(self):
        return Pruned(self.learner.trainable(), [False] * len(self.masks))

    def prunable(self):
        return Pruned(self.learner.prunable(), [False] * len(self.masks))


def apply_masks(tree: PyTree, learner: AbstractLearner, masks: list[Array] | None) -> PyTree:
    """`tree` (shaped like `learner`, or a filtered part of it) with its `prunable()` leaves
    multiplied by `masks` (None: unchanged)."""
    if masks is None:
        return tree
    selected, rest = eqx.partition(tree, learner.prunable(), is_leaf=lambda x: x is None)
    leaves, treedef = jax.tree.flatten(selected)
    if len(leaves) != len(masks):
        raise ValueError(
            f"Pruned: {len(leaves)} prunable arrays in the learner's tree, "
            f"{len(masks)} masks; expected one mask per prunable weight matrix."
        )
    masked = [leaf * mask for leaf, mask in zip(leaves, masks)]
    return eqx.combine(jax.tree.unflatten(treedef, masked), rest)


def unwrap(learner: AbstractLearner) -> tuple[AbstractLearner, list[Array] | None]:
    """`(circuit, masks)` of a `Pruned` learner; `(learner, None)` of any other."""
    if isinstance(learner, Pruned):
        return learner.learner, learner.masks
    return learner, None


def rewrap(tree: PyTree, masks: list[Array] | None) -> PyTree:
    """The inverse of `unwrap`: `Pruned(tree, masks)`, or `tree` without masks."""
    return tree if masks is None else Pruned(tree, masks)


def prune(
    learner: AbstractLearner, sparsity: float, *, scope: str = "global", min_per_layer: int = 0
) -> AbstractLearner:
    """Magnitude pruning: zero the `round(sparsity * n)` smallest-magnitude entries of all
    `learner.prunable()` weights together (n = their total size; `scope="global"`), or of
    each weight matrix on its own (`scope="layer"`: every matrix reaches the sparsity, for
    layers on different scales).

    A `Pruned` learner is pruned again from its underlying learner (its zeros count as the
    smallest entries, so sparsity only grows).

    `min_per_layer`: every weight matrix keeps at least this many of its largest entries
    (Gupta et al.'s minimum threshold for global magnitude pruning: at high sparsity one
    global threshold can empty a layer whose weights are all small, cutting the network),
    the others losing more so the total sparsity is still reached where it can be.

    A learner on analog devices (`dynlearn.hardware.OnDevice`) stays on them, its weights
    pruned (`OnDevice(Pruned(...))`).

    **Returns:** a `Pruned` learner; `fit` it to re-train with the pruned entries held at 0.
    """
    from .hardware import OnDevice  # here: the hardware module builds on this one

    if isinstance(learner, OnDevice):  # prune the weights on the devices, keep the devices
        return eqx.tree_at(
            lambda d: d.learner,
            learner,
            prune(learner.learner, sparsity, scope=scope, min_per_layer=min_per_layer),
        )
    if isinstance(learner, Pruned):
        learner = learner.learner
    if not isinstance(learner, AbstractLearner):
        raise ValueError(f"learner: expected a dynlearn.AbstractLearner; got {type(learner)}.")
    selected, rest = eqx.partition(learner, learner.prunable())
    leaves, treedef = jax.tree.flatten(selected)
    if not leaves:
        raise ValueError(
            f"learner: {type(learner).__name__}.prunable() selects no weight matrices to prune."
        )
    if scope not in SCOPES:
        raise ValueError(f"scope: expected one of {sorted(SCOPES)}; got {scope!r}.")
    pruned, masks = SCOPES[scope](leaves, sparsity, min_per_layer)
    return Pruned(eqx.combine(jax.tree.unflatten(treedef, pruned), rest), masks)
