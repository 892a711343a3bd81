"""The learning-rule plumbing: what `fit` asks of a circuit, and the two ways to learn.

A learner is an `equinox.Module` that can `predict` a batch. It learns in one of two modes:

- `SettleThenUpdate` (the literature's baseline): `learner.updates(x, y, key)` settles the
  circuit on a batch and returns `(updates, metrics)`, the updates a pytree shaped like the
  learner with a *gradient-like* sign (optax subtracts a multiple of it), read from the
  settled state by the circuit's local rule. An `optax` optimizer advances the weights.
- `AlwaysOn` (phase-free): `learner.learn_online(x, y, key)` streams the batch through one
  simulation in which the weights are part of the state and move under their own local
  dynamics; it returns `(new_learner, metrics)`. No optimizer is involved.

`metrics` is a dict with the batch's `"loss"` (a scalar) and, optionally, `"output"`: the
circuit's outputs for the batch (used for the training accuracy; without it `fit` calls
`predict`, which for some circuits costs a second settling).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

__all__ = ["AbstractLearner", "AbstractMode", "SettleThenUpdate", "AlwaysOn"]


class AbstractLearner(eqx.Module):
    """A circuit that `fit` can train and evaluate."""

    @abc.abstractmethod
    def predict(self, x: Float[Array, "batch n_in"]) -> Float[Array, "batch n_out"]:
        """Outputs for a batch; the predicted class is the arg-max."""

    def updates(
        self, x: Float[Array, "batch n_in"], y: Float[Array, "batch n_out"], key: PRNGKeyArray
    ) -> tuple[PyTree, dict[str, Array]]:
        """`(updates, metrics)` for settle-then-update learning (gradient-like sign)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no settle-then-update rule; use mode=AlwaysOn()."
        )

    def learn_online(
        self, x: Float[Array, "batch n_in"], y: Float[Array, "batch n_out"], key: PRNGKeyArray
    ) -> tuple[AbstractLearner, dict[str, Array]]:
        """`(new_learner, metrics)` after streaming the batch through always-on learning."""
        raise NotImplementedError(
            f"{type(self).__name__} has no always-on rule; use mode=SettleThenUpdate()."
        )

    def trainable(self) -> PyTree[bool]:
        """Filter of the leaves an optimizer may change (default: every float array)."""
        return jax.tree.map(eqx.is_inexact_array, self)

    def prunable(self) -> PyTree[bool]:
        """Filter of the weight matrices that magnitude pruning acts on (see
        `dynlearn.prune`). Default: the trainable arrays with two or more dimensions;
        circuits with other matrices (feedback, interneurons) narrow it to their forward
        weights."""
        return jax.tree.map(
            lambda leaf: eqx.is_inexact_array(leaf) and leaf.ndim >= 2,
            eqx.filter(self, self.trainable()),
            is_leaf=lambda leaf: leaf is None,
        )


class AbstractMode(eqx.Module):
    """How one batch changes a learner."""

    uses_optimizer: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def step(self, learner, opt_state, optimizer, x, y, key):
        """`(learner, opt_state, metrics)` after one batch."""


class SettleThenUpdate(AbstractMode):
    """Settle, read the local update, let `optax` apply it."""

    uses_optimizer: ClassVar[bool] = True

    def step(self, learner, opt_state, optimizer, x, y, key):
        updates, metrics = learner.updates(x, y, key)
        spec = learner.trainable()
        params = eqx.filter(learner, spec)
        updates = eqx.filter(updates, spec)
        updates, opt_state = optimizer.update(updates, opt_state, params)
        return eqx.apply_updates(learner, updates), opt_state, metrics


class AlwaysOn(AbstractMode):
    """Weights are state: one simulation over the streamed batch is the learning."""

    uses_optimizer: ClassVar[bool] = False

    def step(self, learner, opt_state, optimizer, x, y, key):
        learner, metrics = learner.learn_online(x, y, key)
        return learner, opt_state, metrics
