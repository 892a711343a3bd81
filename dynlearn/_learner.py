"""What `fit` asks of a circuit: a learner predicts, and learns in one of two ways.

- `AbstractBatchLearner` (settle-then-update, the literature's baseline):
  `learner.updates(x, y, key)` settles the circuit on a batch and returns `(updates,
  metrics)`, the updates a pytree shaped like the learner with a *gradient-like* sign
  (optax subtracts a multiple of it), read from the settled state by the circuit's local
  rule. The `SettleThenUpdate(optimizer)` mode applies them.
- `dynlearn.AbstractPlastic` (phase-free): the circuit's neurons and its synapses evolve in
  one system of equations; the `AlwaysOn(presentation)` mode streams a batch through it.

`metrics` is a dict with the batch's `"loss"` (a scalar) and, optionally, `"output"`: the
circuit's outputs for the batch (used for the training accuracy; without it `fit` calls
`predict`, which for some circuits costs a second settling).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._solvers import check_finite

__all__ = ["AbstractLearner", "AbstractBatchLearner", "squared_error", "check_batch"]


class AbstractLearner(eqx.Module):
    """A circuit that `fit` can train and evaluate."""

    @abc.abstractmethod
    def predict(self, x: Float[Array, "batch n_in"]) -> Float[Array, "batch n_out"]:
        """Outputs for a batch; the predicted class is the arg-max."""

    def trainable(self) -> PyTree[bool]:
        """Filter of the leaves that learn (default: every float array)."""
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


class AbstractBatchLearner(AbstractLearner):
    """A learner with a settle-then-update rule (used by `SettleThenUpdate`)."""

    @abc.abstractmethod
    def updates(
        self, x: Float[Array, "batch n_in"], y: Float[Array, "batch n_out"], key: PRNGKeyArray
    ) -> tuple[PyTree, dict[str, Array]]:
        """`(updates, metrics)`: updates shaped like the learner, with a gradient's sign."""


def squared_error(output: Array, target: Array) -> Array:
    """`1/2 |target - output|^2` summed over units, averaged over the batch."""
    return 0.5 * jnp.mean(jnp.sum((target - output) ** 2, axis=-1))


def check_batch(x, y, n_in: int, n_out: int | None = None, *, what: str = "layer sizes"):
    """A batch `x` `(batch, n_in)` and targets `y` `(batch, n_out)` (or None): shapes at
    trace time, with errors naming the argument; finiteness on eager calls only (`fit`
    checks its data set once)."""
    if jnp.ndim(x) != 2 or jnp.shape(x)[-1] != n_in:
        raise ValueError(
            f"x: expected a batch (batch, {n_in}) for {what}; got shape {jnp.shape(x)}."
        )
    if y is not None and n_out is not None and jnp.shape(y) != (jnp.shape(x)[0], n_out):
        raise ValueError(
            f"y: expected targets of shape ({jnp.shape(x)[0]}, {n_out}) for output width "
            f"{n_out}; got {jnp.shape(y)}."
        )
    return check_finite((x, y), "inputs (x, y)", when_traced=False)
