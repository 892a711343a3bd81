"""Sparse coding by a locally competitive algorithm (LCA): rate and spiking versions.

A dictionary `Phi` (m x K, unit-norm columns) codes an input `x` by the sparse `a` that
minimises the LASSO energy `E(a) = |x - Phi a|^2 / 2 + lambda |a|_1`. The LCA (Rozell,
Johnson, Baraniuk & Olshausen 2008) finds it with neurons that integrate their match to the
input and inhibit each other in proportion to their features' overlap:

    tau du/dt = b - u - (G - I) a,    b = Phi^T x,   G = Phi^T Phi,   a = T_lambda(u)

with the soft threshold `T_lambda(u) = sign(u) max(|u| - lambda, 0)` (`non_negative=True`:
`max(u - lambda, 0)`). At a fixed point `u - a = Phi^T (x - Phi a)` lies in `lambda d|a|_1`
(G_ii = 1): the LASSO's optimality condition, so the code is the LASSO solution (the
non-negative LASSO's with the one-sided threshold).

**Spiking LCA** (Tang, Lin & Davies 2017, "Sparse coding by spiking neural networks:
convergence theory and computational results"): each neuron is a perfect integrate-and-fire
unit (`dynlearn.spiking.LIF(leak=False)`, threshold 1, reset by subtraction) driven by its
soma current minus the threshold,

    dv_i/dt = mu_i(t) - lambda,    mu_i(t) = b_i - sum_{j != i} G_ij sigma_j(t),

where `sigma_j` is neuron j's spike train filtered by a unit-area kernel `e^{-t/tau_s} /
tau_s` (its spike trace over `tau_s`). Its firing rate over `[0, t]`, `a_i(t) = N_i(t) / t`,
converges to the non-negative LASSO solution (the average current `u_i(t)` to the LCA's
fixed point), with an error of order 1/t (`theory/lca_lasso.py`).

Dictionary learning (Olshausen & Field 1997's rule on the settled code): `dPhi ∝ (x - Phi
a) a^T`, then every column renormalised (`SparseCoder.dictionary_update`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from dynlearn.spiking import LIF

__all__ = ["RateLCA", "SpikingLCA", "SparseCoder", "soft_threshold", "unit_columns"]


def soft_threshold(u: Array, lam: float, non_negative: bool = False) -> Array:
    """`T_lambda(u) = sign(u) max(|u| - lambda, 0)` (non-negative: `max(u - lambda, 0)`)."""
    if non_negative:
        return jnp.maximum(u - lam, 0.0)
    return jnp.sign(u) * jnp.maximum(jnp.abs(u) - lam, 0.0)


def unit_columns(phi: Array) -> Array:
    """`phi` with every column scaled to unit norm."""
    return phi / jnp.linalg.norm(phi, axis=0, keepdims=True)


def _check(phi: Array, lam: float) -> None:
    if phi.ndim != 2:
        raise ValueError(f"phi: expected a dictionary of shape (inputs, atoms); got {phi.shape}.")
    if not lam > 0:
        raise ValueError(f"lam: expected a sparsity penalty lambda > 0; got {lam}.")


class RateLCA(dynlearn.AbstractDynamics):
    """The LCA's rate dynamics for one input `args = x` (shape (inputs,)), state `u`."""

    phi: Array
    lam: float
    tau: float = 1.0
    non_negative: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check(self.phi, self.lam)

    def code(self, u: Array) -> Array:
        """The sparse code `a = T_lambda(u)`."""
        return soft_threshold(u, self.lam, self.non_negative)

    def init_state(self, x: Array | None = None) -> Array:
        return jnp.zeros(self.phi.shape[1], self.phi.dtype)

    def vector_field(self, t, u, x):
        a = self.code(u)
        inhibition = self.phi.T @ (self.phi @ a) - a  # (G - I) a, without forming G
        return (self.phi.T @ x - u - inhibition) / self.tau

    def time_constants(self) -> dict[str, float]:
        return {"tau": self.tau}


class SpikingLCA(dynlearn.AbstractDynamics):
    """Spiking LCA for one input `args = x`: K perfect integrate-and-fire neurons whose
    spike traces (time constant `tau_s`) inhibit each other through `G - I`. State: the
    neurons' `dynlearn.spiking.LIF` state; rates are `count / t`."""

    phi: Array
    lam: float
    tau_s: float = eqx.field(static=True, default=1.0)  # builds the neurons: kept static

    def __check_init__(self):
        _check(self.phi, self.lam)

    @property
    def neurons(self) -> LIF:
        return LIF(tau_m=1.0, v_th=1.0, reset="subtract", leak=False, tau_trace=self.tau_s)

    def init_state(self, x: Array | None = None) -> dict[str, Array]:
        return self.neurons.init((self.phi.shape[1],), self.phi.dtype)

    def current(self, y: dict[str, Array], x: Array) -> Array:
        """Soma currents `mu = b - (G - I) sigma`, `sigma = trace / tau_s`."""
        sigma = y["trace"] / self.tau_s
        self_weight = jnp.sum(self.phi**2, axis=0)  # diag(G), without forming G
        return self.phi.T @ (x - self.phi @ sigma) + self_weight * sigma

    def vector_field(self, t, y, x):
        return self.neurons.drift(y, self.current(y, x) - self.lam)

    def event(self):
        return dynlearn.spiking.PopulationEvent(self.neurons)

    def time_constants(self) -> dict[str, float]:
        return {"tau_s": self.tau_s}


class SparseCoder(eqx.Module):
    """A dictionary and its rate LCA: `code(x)` settles a batch of inputs (vmapped) to
    their sparse codes, `dictionary_update(x, codes)` is the local dictionary-learning step.

    **Arguments:**
    - `inputs`, `atoms`: dictionary shape (m, K); `key` draws it (unit-norm Gaussian columns).
    - `lam`: sparsity penalty lambda. `non_negative`: one-sided threshold.
    - `settle_time`, `dt`: Euler settling of the LCA (in units of its time constant).
    """

    phi: Array
    lam: float
    non_negative: bool = eqx.field(static=True)
    settle_time: float
    dt: float

    def __init__(
        self,
        inputs: int,
        atoms: int,
        key: PRNGKeyArray,
        *,
        lam: float = 0.1,
        non_negative: bool = False,
        settle_time: float = 50.0,
        dt: float = 0.2,
    ):
        self.phi = unit_columns(jax.random.normal(key, (inputs, atoms)))
        _check(self.phi, lam)
        self.lam, self.non_negative = lam, non_negative
        self.settle_time, self.dt = settle_time, dt

    @property
    def lca(self) -> RateLCA:
        return RateLCA(self.phi, self.lam, non_negative=self.non_negative)

    def code(self, x: Array) -> Array:
        """Settled sparse codes `a` of a batch `x` (batch, inputs)."""
        lca = self.lca

        def one(sample):
            end = dynlearn.simulate(
                lca, lca.init_state(), 0.0, self.settle_time, args=sample, dt=self.dt, check=False
            ).y1
            return lca.code(end)

        return jax.vmap(one)(x)

    def dictionary_update(self, x: Array, codes: Array) -> Array:
        """The Hebbian-like step `-(x - Phi a) a^T` averaged over the batch (a gradient of
        `|x - Phi a|^2 / 2` with respect to Phi at the settled `a`, for optax to descend)."""
        residual = x - codes @ self.phi.T
        return -(residual.T @ codes) / x.shape[0]

    def with_dictionary(self, phi: Array) -> SparseCoder:
        """This coder with dictionary `phi`, columns renormalised."""
        return eqx.tree_at(lambda c: c.phi, self, unit_columns(phi))
