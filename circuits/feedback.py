"""Feedback pathways: how a layered circuit sends errors down.

A hidden layer l (1 <= l < L) receives a top-down signal through a feedback matrix B_l: of
shape `(n_l, n_{l+1})`, applied to the signal of the layer above (an error, or in the
microcircuit the rates of the layer above), or, for a *direct* pathway, of shape
`(n_l, n_L)`, applied to the output error. Backprop uses B_l = W_{l+1}^T ("weight
transport"); bio-plausible circuits replace it. A pathway is a field of the circuit, so
comparing pathways is one argument:

- `WeightTransport()`: B_l = W_{l+1}^T (backprop's pathway).
- `FeedbackAlignment(key)`: fixed random B_l (Lillicrap et al. 2016, Nat. Commun.).
- `SignSymmetry()`: B_l = sign(W_{l+1}^T) times the mean |W_{l+1}| (Liao, Leibo & Poggio
  2016, AAAI): the signs are transported, the magnitudes are not.
- `DirectFeedbackAlignment(key)`: fixed random B_l from the output error straight to layer l
  (Nøkland 2016, NeurIPS).
- `circuits.pal.PAL(key, ...)`: B_l learned from exploration noise (Max et al. 2024).
- `KolenPollack(key, decay)`: B_l starts random and receives the transposed update of
  W_{l+1}; both decay at the same rate, so B_l - W_{l+1}^T shrinks as exp(-decay t)
  (Kolen & Pollack 1994; Akrout et al. 2019, NeurIPS).

Pathways are `equinox.Module`s. A circuit calls `bind(sizes)` once (random pathways draw
their matrices there) and `matrices(weights)` whenever it needs B. Plastic pathways
(`plastic = True`) keep their matrices in `params()`, which a circuit makes part of its
always-on state, and say how they move with `rate(...)`; `by_name` builds any of them from
its name (for command lines).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import dynlearn

__all__ = [
    "AbstractFeedback",
    "AbstractRandomFeedback",
    "WeightTransport",
    "FeedbackAlignment",
    "SignSymmetry",
    "DirectFeedbackAlignment",
    "KolenPollack",
    "PATHWAYS",
    "by_name",
    "alignment_angles",
]


class AbstractFeedback(eqx.Module):
    """A feedback pathway: the matrices B_l that carry signals down to hidden layer l."""

    direct: ClassVar[bool] = False  # B_l acts on the output error, not the layer above
    plastic: ClassVar[bool] = False  # B_l learns (its matrices are state)

    def bind(self, sizes: Sequence[int]) -> AbstractFeedback:
        """This pathway for a circuit of layer sizes `(n_0, ..., n_L)` (draws matrices)."""
        return self

    def matrices(self, weights: Sequence[Array]) -> list[Array]:
        """B_1 ... B_{L-1} given the forward weights W_1 ... W_L."""
        raise NotImplementedError

    def params(self) -> list[Array] | None:
        """The plastic matrices (None for a fixed pathway)."""
        return None

    def with_params(self, params) -> AbstractFeedback:
        return self

    def rate(self, weights, weight_rates, state=None, rates_above=None) -> list[Array] | None:
        """dB_l/dt given the forward weights and their rates of change (plastic only), and
        for pathways with a state of their own that state and the rates of the layers
        above each hidden layer."""
        return None

    # A pathway may carry a state of its own (PAL: exploration noise and filters), which
    # circuits keep beside their neurons, perturbing each hidden layer's top-down
    # compartment with `perturbation(state)`.
    def init_state(self, weights, rates_above) -> dict | None:
        """The pathway's state for the current rates of the layers above hidden layers."""
        return None

    def state_rates(self, state, rates_above, weight_rates) -> dict | None:
        """d state/dt (drift); `weight_rates` is None when the circuit is not learning."""
        return None

    def state_noise(self, state) -> dict | None:
        """Diagonal noise amplitudes for the state (a pytree prefix; None: none)."""
        return None

    def perturbation(self, state) -> list[Array] | None:
        """What each hidden layer's top-down compartment receives on top of its input."""
        return None

    def forward_rates(self, state, weight_rates) -> list[Array]:
        """The forward-weight rates the circuit applies (PAL: low-pass filtered)."""
        return weight_rates

    def decay(self) -> float:
        """Weight decay the circuit applies to its forward weights (Kolen-Pollack)."""
        return 0.0

    def time_constants(self) -> dict[str, float]:
        """Time constants of the pathway's own dynamics (bounds on a circuit's dt)."""
        return {}


class WeightTransport(AbstractFeedback):
    """B_l = W_{l+1}^T: the forward weights, transported (what backprop assumes)."""

    def matrices(self, weights):
        return [w.T for w in weights[1:]]


class SignSymmetry(AbstractFeedback):
    """B_l = sign(W_{l+1}^T) mean|W_{l+1}| (Liao et al. 2016): signs, not magnitudes."""

    def matrices(self, weights):
        return [jnp.sign(w.T) * jnp.mean(jnp.abs(w)) for w in weights[1:]]


class AbstractRandomFeedback(AbstractFeedback):
    """A pathway whose matrices are drawn at `bind` (U(-scale, scale)/sqrt(fan-in)) unless
    given as `feedback`."""

    key: eqx.AbstractVar[PRNGKeyArray]
    scale: eqx.AbstractVar[float]
    feedback: eqx.AbstractVar[list[Array] | None]

    def shapes(self, sizes) -> list[tuple[int, int]]:
        above = [sizes[-1]] * (len(sizes) - 2) if self.direct else list(sizes[2:])
        return list(zip(sizes[1:-1], above))

    def bind(self, sizes):
        sizes = list(sizes)
        if self.feedback is not None:
            got = [tuple(b.shape) for b in self.feedback]
            if got != self.shapes(sizes):
                raise ValueError(
                    f"{type(self).__name__}: feedback matrices must have shapes "
                    f"{self.shapes(sizes)} for layer sizes {sizes}; got {got}."
                )
            return self
        keys = jax.random.split(self.key, max(len(sizes) - 2, 1))
        feedback = [
            self.scale * jax.random.uniform(k, shape, minval=-1.0, maxval=1.0) / jnp.sqrt(shape[1])
            for k, shape in zip(keys, self.shapes(sizes))
        ]
        return eqx.tree_at(lambda p: p.feedback, self, feedback, is_leaf=lambda x: x is None)

    def matrices(self, weights):
        if self.feedback is None:
            raise ValueError(
                f"{type(self).__name__}: its matrices are drawn by bind(sizes); pass the "
                "pathway to a circuit (which binds it) or call bind first."
            )
        return list(self.feedback)


class FeedbackAlignment(AbstractRandomFeedback):
    """Fixed random feedback, B_l ~ U(-scale, scale) / sqrt(n_{l+1}) (Lillicrap et al. 2016).

    **Arguments:**
    - `key`: draws the matrices (at `bind`); `scale`: width of the uniform distribution.
    - `feedback`: explicit matrices instead (shapes are checked at `bind`).
    """

    key: PRNGKeyArray
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None


class DirectFeedbackAlignment(AbstractRandomFeedback):
    """Fixed random B_l of shape `(n_l, n_L)` from the output error to every hidden layer
    (Nøkland 2016). Arguments as `FeedbackAlignment`."""

    direct: ClassVar[bool] = True
    key: PRNGKeyArray
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None


class KolenPollack(AbstractRandomFeedback):
    """B_l learns the transposed update of W_{l+1}; both decay (Akrout et al. 2019):

        dB_l/dt = (dW_{l+1}/dt)^T - decay B_l,    dW_{l+1}/dt += -decay W_{l+1}

    so d(B_l - W_{l+1}^T)/dt = -decay (B_l - W_{l+1}^T): B aligns with W^T at rate `decay`.
    In settle-then-update learning the same holds per optimizer step (`updates_for`).
    """

    plastic: ClassVar[bool] = True
    key: PRNGKeyArray
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None
    weight_decay: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        if not self.weight_decay >= 0:
            raise ValueError(f"KolenPollack: weight_decay must be >= 0; got {self.weight_decay}.")

    def params(self):
        return list(self.feedback)

    def with_params(self, params):
        return eqx.tree_at(lambda p: p.feedback, self, list(params))

    def rate(self, weights, weight_rates, state=None, rates_above=None):
        return [d.T - self.weight_decay * b for d, b in zip(weight_rates[1:], self.feedback)]

    def decay(self):
        return self.weight_decay


PATHWAYS: dict[str, Callable[[PRNGKeyArray], AbstractFeedback]] = {
    "bp": lambda key: WeightTransport(),
    "fa": lambda key: FeedbackAlignment(key),
    "sign": lambda key: SignSymmetry(),
    "dfa": lambda key: DirectFeedbackAlignment(key),
    "kp": lambda key: KolenPollack(key),
}


def by_name(name: str, key: PRNGKeyArray) -> AbstractFeedback:
    """A pathway from its short name (`PATHWAYS`), for command lines."""
    if name not in PATHWAYS:
        raise ValueError(f"feedback: unknown pathway {name!r}; known: {sorted(PATHWAYS)}.")
    return PATHWAYS[name](key)


def alignment_angles(feedback: Sequence[Array], weights: Sequence[Array]) -> Array:
    """Angle in degrees between each B_l and W_{l+1}^T (0: backprop's pathway)."""
    return jnp.stack([dynlearn.analysis.angle_deg(b, w.T) for b, w in zip(feedback, weights[1:])])
