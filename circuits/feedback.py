"""Feedback pathways: how a layered circuit sends errors down.

A hidden layer l (1 <= l < L) receives a top-down signal through a feedback matrix B_l of
shape `(n_l, n_{l+1})`, applied to the signal of the layer above (an error, or in the
microcircuit the rates of the layer above). Backprop uses B_l = W_{l+1}^T ("weight
transport"); bio-plausible circuits replace it. A pathway is a field of the circuit, so
comparing pathways is one argument:

- `WeightTransport()`: B_l = W_{l+1}^T (backprop's pathway).
- `FeedbackAlignment(key)`: fixed random B_l (Lillicrap et al. 2016, Nat. Commun.).

Pathways are `equinox.Module`s. A circuit calls `bind(sizes)` once (random pathways draw
their matrices there) and `matrices(weights)` whenever it needs B.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import dynlearn

__all__ = [
    "AbstractFeedback",
    "WeightTransport",
    "FeedbackAlignment",
    "alignment_angles",
]


class AbstractFeedback(eqx.Module):
    """A feedback pathway: the matrices B_l that carry signals down to hidden layer l."""

    def bind(self, sizes: Sequence[int]) -> AbstractFeedback:
        """This pathway for a circuit of layer sizes `(n_0, ..., n_L)` (draws matrices)."""
        return self

    @abc.abstractmethod
    def matrices(self, weights: Sequence[Array]) -> list[Array]:
        """B_1 ... B_{L-1}, each `(n_l, n_{l+1})`, given forward weights W_1 ... W_L."""


class WeightTransport(AbstractFeedback):
    """B_l = W_{l+1}^T: the forward weights, transported (what backprop assumes)."""

    def matrices(self, weights):
        return [w.T for w in weights[1:]]


class FeedbackAlignment(AbstractFeedback):
    """Fixed random feedback, B_l ~ U(-scale, scale) / sqrt(n_{l+1}) (Lillicrap et al. 2016).

    **Arguments:**
    - `key`: draws the matrices (at `bind`).
    - `scale`: width of the uniform distribution (before the 1/sqrt(fan-in) factor).
    """

    key: PRNGKeyArray
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None

    def bind(self, sizes):
        if self.feedback is not None:
            _check_shapes(self.feedback, sizes, type(self).__name__)
            return self
        sizes = list(sizes)
        keys = jax.random.split(self.key, max(len(sizes) - 2, 1))
        feedback = [
            self.scale
            * jax.random.uniform(k, (n, n_above), minval=-1.0, maxval=1.0)
            / jnp.sqrt(n_above)
            for k, n, n_above in zip(keys, sizes[1:-1], sizes[2:])
        ]
        return FeedbackAlignment(self.key, self.scale, feedback)

    def matrices(self, weights):
        if self.feedback is None:
            raise ValueError(
                "FeedbackAlignment: its matrices are drawn by bind(sizes); pass the pathway "
                "to a circuit (which binds it) or call bind first."
            )
        return list(self.feedback)


def _check_shapes(feedback: Sequence[Array], sizes: Sequence[int], name: str) -> None:
    expected = [(n, n_above) for n, n_above in zip(sizes[1:-1], sizes[2:])]
    got = [tuple(b.shape) for b in feedback]
    if got != expected:
        raise ValueError(
            f"{name}: feedback matrices must have shapes {expected} (n_l, n_(l+1)) for layer "
            f"sizes {list(sizes)}; got {got}."
        )


def alignment_angles(feedback: Sequence[Array], weights: Sequence[Array]) -> Array:
    """Angle in degrees between each B_l and W_{l+1}^T (0: backprop's pathway)."""
    return jnp.stack([dynlearn.analysis.angle_deg(b, w.T) for b, w in zip(feedback, weights[1:])])
