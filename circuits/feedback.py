"""Feedback pathways: how a layered circuit sends signals down, as sub-systems it composes.

A hidden layer l (1 <= l < L) receives a top-down signal through a feedback matrix B_l: of
shape `(n_l, n_{l+1})`, applied to the signal of the layer above (an error, or in the
microcircuit the rates of the layer above), or, for a *direct* pathway, of shape
`(n_l, n_L)`, applied to the output. Backprop uses B_l = W_{l+1}^T ("weight transport");
bio-plausible circuits replace it. A pathway is a field of the circuit, so comparing
pathways is one argument:

- `WeightTransport()`: B_l = W_{l+1}^T (backprop's pathway).
- `FeedbackAlignment(key)`: fixed random B_l (Lillicrap et al. 2016, Nat. Commun.).
- `SignSymmetry()`: B_l = sign(W_{l+1}^T) times the mean |W_{l+1}| (Liao, Leibo & Poggio
  2016, AAAI): the signs are transported, the magnitudes are not.
- `DirectFeedbackAlignment(key)`: fixed random B_l from the output straight to layer l
  (Nøkland 2016, NeurIPS).
- `KolenPollack(key, weight_decay)`: B_l starts random and receives the transposed update
  of W_{l+1}; both decay at the same rate, so B_l - W_{l+1}^T shrinks as exp(-decay t)
  (Kolen & Pollack 1994; Akrout et al. 2019, NeurIPS).
- `circuits.pal.PAL(key, ...)`: B_l learned from exploration noise (Max et al. 2024).
- `circuits.alignment.WeightMirror`, `InformationAlignment`, `SymmetricAlignment`: B_l
  learned by layer-local alignment rules (Akrout et al. 2019; Kunin et al. 2020).
- `InitialTransport()`: B_l = W_{l+1}(0)^T, the forward weights at birth, frozen: equal to
  backprop's pathway in the infinite-width (lazy, NTK) limit, where W(t) - W(0) vanishes
  relative to W(0) (the input-weight alignment rules, after Boopathy & Fiete 2022).

A pathway is a small dynamical system of its own (`dynlearn.AbstractDynamics`) that a host
circuit composes: the host binds it to its layer sizes and initial weights once (`bind`,
`at_birth`), asks it for B
(`matrices`), adds its `perturbation` to the top-down compartments, passes it `Signals`
(the rates of the layers above, the forward weights and their rates) for its drift and its
`plasticity`, and lists it in `components()` under the state key `"pathway"` so that the
engine composes its noise. Fixed, stateless pathways have no state, no noise and no
plasticity (the defaults here).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

import dynlearn

__all__ = [
    "Signals",
    "AbstractFeedback",
    "AbstractRandomFeedback",
    "WeightTransport",
    "FeedbackAlignment",
    "SignSymmetry",
    "DirectFeedbackAlignment",
    "KolenPollack",
    "InitialTransport",
    "PATHWAYS",
    "by_name",
    "bind_pathway",
    "alignment_angles",
]


class Signals(eqx.Module):
    """What a host passes its pathway.

    - `weights`: the forward weights W_1 ... W_L.
    - `rates_above`: for each hidden layer l, the rates of the layer its top-down signal
      comes from (l + 1, or the output for direct pathways), `(streams, n)`.
    - `weight_rates`: dW_l/dt of the forward weights by the host's own rule (None when the
      host is not learning).
    - `rates_below`: for each hidden layer l its own rates r_l (the layer B_l projects to),
      `(streams, n_l)` (None when the host does not pass them).
    - `key`: randomness for a pathway that samples noise at an update (hosts that learn
      settle-then-update pass one; always-on hosts pass None: their noise is a state).
    """

    weights: list[Array]
    rates_above: list[Array] | None = None
    weight_rates: list[Array] | None = None
    rates_below: list[Array] | None = None
    key: PRNGKeyArray | None = None


class AbstractFeedback(dynlearn.AbstractDynamics):
    """A feedback pathway: the matrices B_l that carry signals down to hidden layer l.

    Required: `bind(sizes)` and `matrices(weights)`. A pathway with plastic matrices also
    overrides `trainable` and `plasticity` (and `forward_decay` if the host's forward
    weights must decay with it); one with a state of its own overrides `init_state`,
    `vector_field`, `perturbation` and, if noisy, `diffusion`.
    """

    direct: ClassVar[bool] = False  # B_l acts on the output, not on the layer above

    @abc.abstractmethod
    def bind(self, sizes: Sequence[int]) -> AbstractFeedback:
        """This pathway for a circuit of layer sizes `(n_0, ..., n_L)` (draws matrices)."""

    @abc.abstractmethod
    def matrices(self, weights: Sequence[Array]) -> list[Array]:
        """B_1 ... B_{L-1} given the forward weights W_1 ... W_L."""

    # ---------------------------------------------- defaults: fixed and stateless
    def at_birth(self, weights: Sequence[Array]) -> AbstractFeedback:
        """This pathway for a host whose forward weights start as `weights` (default: itself;
        `bind_pathway` calls it after `bind`)."""
        return self

    def trainable(self) -> PyTree[bool]:
        """Which leaves of the pathway learn (default: none)."""
        return jax.tree.map(lambda _: False, self)

    @property
    def plastic(self) -> bool:
        """Whether any of the pathway's leaves learn."""
        return any(jax.tree.leaves(self.trainable()))

    def plasticity(self, t, state, signals: Signals) -> PyTree:
        """dB/dt as a pytree shaped like the pathway (default: nothing learns)."""
        return eqx.filter(self, lambda _: False)

    @property
    def forward_decay(self) -> float:
        """Decay rate the host applies to its forward weights along with the pathway's."""
        return 0.0

    def init_state(self, signals: Signals) -> PyTree | None:
        """The pathway's own state for the host's current signals (default: none)."""
        return None

    def vector_field(self, t, state, signals: Signals) -> PyTree | None:
        """d state/dt (default: no state)."""
        return None

    def perturbation(self, state) -> list[Array] | None:
        """What each hidden layer's top-down compartment receives on top of its input."""
        return None


class WeightTransport(AbstractFeedback):
    """B_l = W_{l+1}^T: the forward weights, transported (what backprop assumes)."""

    def bind(self, sizes):
        return self

    def matrices(self, weights):
        return [w.T for w in weights[1:]]


class SignSymmetry(AbstractFeedback):
    """B_l = sign(W_{l+1}^T) mean|W_{l+1}| (Liao et al. 2016): signs, not magnitudes."""

    def bind(self, sizes):
        return self

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


def learned_matrices(pathway: AbstractRandomFeedback) -> PyTree[bool]:
    """The `trainable()` filter of a pathway whose matrices `feedback` learn (`True` in
    their place while they are not drawn yet)."""
    spec = jax.tree.map(lambda _: False, pathway)
    learn = True if pathway.feedback is None else [True] * len(pathway.feedback)
    return eqx.tree_at(lambda p: p.feedback, spec, learn, is_leaf=lambda x: x is None)


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
    """Fixed random B_l of shape `(n_l, n_L)` from the output straight to every hidden layer
    (Nøkland 2016). Arguments as `FeedbackAlignment`."""

    direct: ClassVar[bool] = True
    key: PRNGKeyArray
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None


class KolenPollack(AbstractRandomFeedback):
    """B_l learns the transposed update of W_{l+1}; both decay (Akrout et al. 2019):

        dB_l/dt = (dW_{l+1}/dt)^T - decay B_l,    dW_{l+1}/dt += -decay W_{l+1}

    so d(B_l - W_{l+1}^T)/dt = -decay (B_l - W_{l+1}^T): B aligns with W^T at rate `decay`.
    In settle-then-update learning the same holds per optimizer step.
    """

    key: PRNGKeyArray
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None
    weight_decay: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        if not self.weight_decay >= 0:
            raise ValueError(f"KolenPollack: weight_decay must be >= 0; got {self.weight_decay}.")

    def trainable(self):
        return learned_matrices(self)

    def plasticity(self, t, state, signals):
        rates = [
            d.T - self.weight_decay * b for d, b in zip(signals.weight_rates[1:], self.feedback)
        ]
        return eqx.tree_at(lambda p: p.feedback, self, rates)

    @property
    def forward_decay(self):
        return self.weight_decay


class InitialTransport(AbstractFeedback):
    """B_l = W_{l+1}(0)^T: the forward weights at birth, frozen (no transport afterwards).

    In a network of width n trained in the lazy (NTK) regime the weights move by
    |W(t) - W(0)| / |W(0)| = O(n^-1/2) (Jacot et al. 2018; Lee et al. 2019), so this pathway
    carries backprop's errors in the infinite-width limit: each layer's update is its
    error-weighted input correlation, -e_l r_{l-1}^T, with e_l brought down through the
    time-zero weights (the input-weight alignment view of Boopathy & Fiete 2022; see
    `circuits.feedback_mlp.rule_align_zero`). A developmental symmetry, then none.
    `theory/ntk_alignment.py` checks the width limit.

    **Arguments:** `feedback`: explicit matrices (default: captured by `at_birth`).
    """

    feedback: list[Array] | None = None

    def bind(self, sizes):
        return self

    def at_birth(self, weights):
        if self.feedback is not None:
            return self
        return InitialTransport([jax.lax.stop_gradient(w.T) for w in weights[1:]])

    def matrices(self, weights):
        if self.feedback is None:
            raise ValueError(
                "InitialTransport: its matrices are the host's weights at birth; pass the "
                "pathway to a circuit (which calls at_birth) or call at_birth(weights) first."
            )
        got = [tuple(b.shape) for b in self.feedback]
        want = [tuple(w.T.shape) for w in weights[1:]]
        if got != want:
            raise ValueError(f"InitialTransport: feedback shapes {got} do not fit W^T {want}.")
        return list(self.feedback)


# Short names for command lines (experiments' --rules); code passes pathway objects.
PATHWAYS: dict[str, Callable[[PRNGKeyArray], AbstractFeedback]] = {
    "bp": lambda key: WeightTransport(),
    "fa": lambda key: FeedbackAlignment(key),
    "sign": lambda key: SignSymmetry(),
    "dfa": lambda key: DirectFeedbackAlignment(key),
    "kp": lambda key: KolenPollack(key),
    "initial": lambda key: InitialTransport(),
    "wm": lambda key: _alignment().WeightMirror(key),
    "ia": lambda key: _alignment().InformationAlignment(key),
    "sa": lambda key: _alignment().SymmetricAlignment(key),
}


def _alignment():
    """`circuits.alignment`, imported when first asked for (it builds on this module)."""
    import circuits.alignment

    return circuits.alignment


def bind_pathway(
    feedback, sizes: Sequence[int], weights: Sequence[Array] | None = None
) -> AbstractFeedback:
    """`feedback.bind(sizes).at_birth(weights)` for a host circuit (whose forward weights
    start as `weights`), with a clear error for anything that is not a pathway (a name such
    as `"fa"` included: random pathways need their own key)."""
    if not isinstance(feedback, AbstractFeedback):
        hint = (
            f" (for a name, use circuits.feedback.by_name({feedback!r}, key))"
            if isinstance(feedback, str)
            else ""
        )
        raise ValueError(
            f"feedback: expected a pathway such as WeightTransport() or "
            f"FeedbackAlignment(key); got {feedback!r}{hint}; known names: {sorted(PATHWAYS)}."
        )
    bound = feedback.bind(sizes)
    return bound if weights is None else bound.at_birth(weights)


def by_name(name: str, key: PRNGKeyArray) -> AbstractFeedback:
    """A pathway from its short name (`PATHWAYS`), for command lines."""
    if name not in PATHWAYS:
        raise ValueError(f"feedback: unknown pathway {name!r}; known: {sorted(PATHWAYS)}.")
    return PATHWAYS[name](key)


def alignment_angles(feedback: Sequence[Array], weights: Sequence[Array]) -> Array:
    """Angle in degrees between each B_l and W_{l+1}^T (0: backprop's pathway)."""
    return jnp.stack([dynlearn.analysis.angle_deg(b, w.T) for b, w in zip(feedback, weights[1:])])
