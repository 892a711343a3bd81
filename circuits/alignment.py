"""Feedback pathways that learn to align with W^T: weight mirrors and alignment rules.

Kunin, Nayebi, Sagastuy-Brena, Ganguli, Bloom & Yamins 2020 (ICML), "Two routes to scalable
credit assignment without weight symmetry"; Akrout, Wilson, Humphreys, Lillicrap & Tweed
2019 (NeurIPS), "Deep learning without weight transport".

B_l, of shape `(n_l, n_{l+1})`, carries signals from layer l+1 down to hidden layer l. Let x
be activity of layer l and r = W_{l+1} x the drive it causes in layer l+1 (both ends of
B_l's synapses see these). Kunin et al. build each rule as gradient descent on a layer-local
regulariser, a weighted sum of primitives (our notation; means over the batch or streams):

    P_amp   = -<x^T B r>          dP/dB = -<x r^T>       (Hebbian: reads x and r)
    P_null  = 1/2 <|B r|^2>        dP/dB = B <r r^T>       (anti-Hebbian: reads B r and r)
    P_decay = 1/2 |B|^2            dP/dB = B               (local)
    P_self  = -tr(B W)             dP/dB = -W^T            (reads W: non-local)

    dB_l/dt = -eta dR/dB_l,   R = amp P_amp + null P_null + decay P_decay + self P_self.

The rules here (a pathway is one argument of every host: `circuits.feedback_mlp`,
`circuits.latent_equilibrium`, `circuits.microcircuit`):

- `WeightMirror` (Akrout et al.'s weight mirror; Kunin et al.'s "WM" = amp + decay): x is
  white noise of standard deviation `sigma` sent through W_{l+1} (a mirror population
  beside the network), so <x r^T> = sigma^2 W_{l+1}^T and B_l -> (sigma^2 / decay)
  W_{l+1}^T: a *weight estimate* from noise. With `sigma=None` x is the layer's own rates,
  centred over the batch or streams (no extra population; B_l -> C_l W_{l+1}^T / decay
  with C_l their covariance, aligned with W^T only as far as C_l is isotropic: on Yin-Yang,
  whose hidden rates span few dimensions, it stayed 56-77 degrees from W^T).
- `InformationAlignment` (Kunin et al.'s "IA" = amp + null + decay): amp + null =
  -<(x - B r) r^T> is the gradient of 1/2 <|x - B r|^2>: B learns to reconstruct x from
  the drive it causes above, B -> C W^T (W C W^T + decay)^{-1} — a regularised inverse of
  W, aligned with W^T when W's rows are near-orthogonal. x as for the weight mirror (noise
  by default, or the layer's centred rates).
- `SymmetricAlignment` (Kunin et al.'s "SA" = self + decay): dB = eta (W^T - decay B), B ->
  W^T / decay, reading W directly (non-local "weight estimation"; `noise` adds Gaussian
  noise of that standard deviation to each estimate of W, the paper's noisy-update case).

The Kolen-Pollack pathway (`circuits.feedback.KolenPollack`) transports W's *updates*
instead. In settle-then-update hosts the rate is the pathway's gradient for the optimizer
(so with Adam `eta` only weighs B's gradient against nothing: keep it 1); in always-on hosts
it is dB/dt per ms. The weight mirror's noise is drawn at each update from the key the host
passes (`Signals.key`): always-on hosts, which pass none, take `sigma=None` (the network's
own rates) — a clear error says so.

The primitives' definitions are our reading of Kunin et al. (the full text was not readable
here: only its abstract and summaries); the weight mirror's noise estimate is Akrout et
al.'s.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from circuits.feedback import AbstractRandomFeedback, Signals, learned_matrices

__all__ = [
    "AbstractAlignment",
    "AbstractMirror",
    "WeightMirror",
    "InformationAlignment",
    "SymmetricAlignment",
]


class AbstractAlignment(AbstractRandomFeedback):
    """A pathway whose B_l descends a regulariser of the primitives (module docstring).

    Subclasses say which primitives they use (`coefficients`) and where x comes from
    (`presynaptic`); B starts random (as `FeedbackAlignment`).
    """

    eta: eqx.AbstractVar[float]
    decay: eqx.AbstractVar[float]

    def __check_init__(self):
        for name, value in self.coefficients().items():
            if not value >= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be >= 0; got {value}.")
        if not self.eta >= 0:
            raise ValueError(f"{type(self).__name__}: eta must be >= 0; got {self.eta}.")

    def coefficients(self) -> dict[str, float]:
        """The weights of the primitives (amp, null, decay, self)."""
        return {"decay": self.decay}

    def presynaptic(self, signals: Signals, layer: int, key) -> Array:
        """x for hidden layer `layer` (rules that read it say how: `AbstractMirror`)."""
        raise NotImplementedError(f"{type(self).__name__} reads no presynaptic activity.")

    def trainable(self):
        return learned_matrices(self)

    def plasticity(self, t, state, signals: Signals):
        c = self.coefficients()
        keys = [None] * len(self.feedback)
        if signals.key is not None:
            keys = list(jax.random.split(signals.key, len(self.feedback)))
        rates = []
        for layer, (b, w, key) in enumerate(zip(self.feedback, signals.weights[1:], keys)):
            gradient = c["decay"] * b
            if c.get("self", 0.0):
                gradient = gradient - c["self"] * self.estimate(w, key).T
            if c.get("amp", 0.0) or c.get("null", 0.0):
                x = self.presynaptic(signals, layer, key)
                r = x @ w.T
                n = x.shape[0]
                gradient = gradient - c.get("amp", 0.0) * (x.T @ r) / n
                gradient = gradient + c.get("null", 0.0) * b @ (r.T @ r) / n
            rates.append(-self.eta * gradient)
        return eqx.tree_at(lambda p: p.feedback, self, rates)

    def estimate(self, w: Array, key) -> Array:
        """W as the pathway sees it (exact by default)."""
        return w


def rates_below(pathway, signals: Signals) -> list[Array]:
    if signals.rates_below is None:
        raise ValueError(
            f"{type(pathway).__name__}: the host passes no rates of the hidden layers "
            "(Signals.rates_below); use it in FeedbackMLP, LENetwork or Microcircuit."
        )
    return signals.rates_below


class AbstractMirror(AbstractAlignment):
    """An alignment rule whose x is white noise of std `sigma` sent through W_{l+1} (a
    mirror population beside the network, drawn at each update from the host's key), or,
    with `sigma=None`, the layer's own rates centred over the batch (or streams)."""

    sigma: eqx.AbstractVar[float | None]

    def __check_init__(self):
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"{type(self).__name__}: sigma must be > 0 or None; got {self.sigma}.")

    def presynaptic(self, signals, layer, key):
        rates = rates_below(self, signals)[layer]
        if self.sigma is None:
            return rates - jnp.mean(rates, axis=0, keepdims=True)
        if key is None:
            raise ValueError(
                f"{type(self).__name__}: mirroring from noise (sigma set) needs a host that "
                "passes a key at each update (FeedbackMLP); in always-on hosts use "
                "sigma=None (the layer's own rates drive it)."
            )
        return self.sigma * jax.random.normal(key, rates.shape, rates.dtype)


class WeightMirror(AbstractMirror):
    """dB_l = eta (<x (W_{l+1} x)^T> - decay B_l), x white noise of std `sigma` (Akrout et
    al. 2019): B_l -> sigma^2 W_{l+1}^T / decay. `sigma=None`: x = the layer's own rates,
    centred (`AbstractMirror`): B_l -> C W^T / decay, C their covariance.

    **Arguments:** `key` (initial random B), `sigma` (> 0, or None), `decay` (> 0), `eta`,
    `scale`, `feedback` (as `FeedbackAlignment`).
    """

    key: PRNGKeyArray
    sigma: float | None = eqx.field(static=True, default=1.0)
    decay: float = eqx.field(static=True, default=1.0)
    eta: float = eqx.field(static=True, default=1.0)
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None

    def coefficients(self):
        return {"amp": 1.0, "decay": self.decay}


class InformationAlignment(AbstractMirror):
    """dB_l = eta (<(x - B_l r) r^T> - decay B_l), r = W_{l+1} x (Kunin et al. 2020): B_l
    learns to reconstruct x from r, B_l -> C W^T (W C W^T + decay)^{-1} with C = <x x^T>.

    **Arguments:** `key`, `sigma` (x: noise of this std, or None: the layer's centred
    rates; as `AbstractMirror`), `null` (weight of the anti-Hebbian term, 1 = the exact
    reconstruction gradient), `decay`, `eta`, `scale`, `feedback`.
    """

    key: PRNGKeyArray
    sigma: float | None = eqx.field(static=True, default=1.0)
    null: float = eqx.field(static=True, default=1.0)
    decay: float = eqx.field(static=True, default=0.1)
    eta: float = eqx.field(static=True, default=1.0)
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None

    def coefficients(self):
        return {"amp": 1.0, "null": self.null, "decay": self.decay}


class SymmetricAlignment(AbstractAlignment):
    """dB_l = eta (W~_{l+1}^T - decay B_l), W~ = W + noise (Kunin et al. 2020): B_l -> W^T /
    decay by reading W (non-local weight estimation).

    **Arguments:** `key` (initial B, and the estimates' noise), `noise` (std of the noise on
    each estimate of W, >= 0; needs a host key when > 0), `decay`, `eta`, `scale`, `feedback`.
    """

    key: PRNGKeyArray
    noise: float = eqx.field(static=True, default=0.0)
    decay: float = eqx.field(static=True, default=1.0)
    eta: float = eqx.field(static=True, default=1.0)
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None

    def __check_init__(self):
        if not self.noise >= 0:
            raise ValueError(f"SymmetricAlignment: noise must be >= 0; got {self.noise}.")

    def coefficients(self):
        return {"self": 1.0, "decay": self.decay}

    def estimate(self, w, key):
        if not self.noise:
            return w
        if key is None:
            raise ValueError(
                "SymmetricAlignment: noisy estimates (noise > 0) need a host that passes a "
                "key at each update (FeedbackMLP)."
            )
        return w + self.noise * jax.random.normal(key, w.shape, w.dtype)
