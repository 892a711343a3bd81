"""Phaseless Alignment Learning (PAL): feedback weights learned from neuronal noise.

Max, Kriener, García Martínez, ... Senn & Petrovici 2024, "Learning efficient
backprojections across cortical hierarchies in real time" (Nature Machine Intelligence).
Each hidden layer l gets Ornstein-Uhlenbeck noise xi_l in the compartment that receives the
top-down signal (the apical dendrite of the microcircuit),

    tau_xi dxi_l = -xi_l dt + sigma sqrt(2 tau_xi) dW          (stationary std sigma),

which travels up through W_{l+1}. The layer above high-pass filters its rates,
r_HP = r - r_LP with tau_HP dr_LP/dt = r - r_LP (equivalently dr_HP/dt = dr/dt - r_HP/tau_HP),
and the feedback weights learn, always on, the correlation of the two:

    dB_l/dt = eta [xi_l r_HP,(l+1)^T - alpha B_l].

Averaged over the noise, xi_l r_HP^T is proportional to diag(phi_l') W_{l+1}^T
diag(phi_{l+1}'), so B_l aligns with W_{l+1}^T without weight transport; alpha sets B's
scale. Forward-weight updates are low-pass filtered (tau_LO) so the noise they carry averages
out. Nothing is switched: neurons, noise, filters and all weights evolve together.

Reference settings (dt 0.01 ms): tau_xi = tau_HP = 10 dt, tau_LO = 1e4 dt, sigma 0.01-0.05,
alpha 1e-5-1e-6. The defaults here (dt = 0.1 ms: tau_xi = tau_HP = 10 dt, sigma 0.1, eta 10,
alpha 1e-3) were tuned on `theory/pal_alignment.py` in LE networks and microcircuits; with a
much smaller alpha B grows large, and in the microcircuit, where the interneurons must keep
cancelling B r above, a large fast-moving B made the apical loop diverge (sigma 0.05, eta 100,
alpha 2e-5 did).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from circuits.feedback import AbstractRandomFeedback

__all__ = ["PAL"]


class PAL(AbstractRandomFeedback):
    """The PAL feedback pathway (plastic, with a noisy state of its own).

    **Arguments:**
    - `key`: draws the initial (random) B.
    - `sigma`: stationary standard deviation of the exploration noise (>= 0).
    - `tau_xi`, `tau_hp`: noise correlation time and high-pass time constant (ms).
    - `tau_lo`: low-pass time constant of the forward updates (ms; None: unfiltered).
    - `alpha`: the regulariser (sets B's scale: B ~ <xi r_HP^T> / alpha).
    - `eta`: feedback learning rate (per ms).
    - `scale`, `feedback`: as `FeedbackAlignment` (initial B).
    """

    plastic: ClassVar[bool] = True
    key: PRNGKeyArray
    sigma: float = eqx.field(static=True, default=0.1)
    tau_xi: float = eqx.field(static=True, default=1.0)
    tau_hp: float = eqx.field(static=True, default=1.0)
    tau_lo: float | None = eqx.field(static=True, default=100.0)
    alpha: float = eqx.field(static=True, default=1e-3)
    eta: float = eqx.field(static=True, default=10.0)
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None

    def __check_init__(self):
        if not self.sigma >= 0:
            raise ValueError(f"PAL: sigma (noise amplitude) must be >= 0; got {self.sigma}.")
        for name in ("tau_xi", "tau_hp", "tau_lo"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"PAL: {name} must be > 0; got {value}.")
        if not (self.alpha >= 0 and self.eta >= 0):
            raise ValueError(f"PAL: alpha and eta must be >= 0; got {self.alpha}, {self.eta}.")

    def time_constants(self):
        out = {"PAL tau_xi": self.tau_xi, "PAL tau_hp": self.tau_hp}
        if self.tau_lo is not None:
            out["PAL tau_lo"] = self.tau_lo
        return out

    # -------------------------------------------------------------- plasticity of B
    def params(self):
        return list(self.feedback)

    def with_params(self, params):
        return eqx.tree_at(lambda p: p.feedback, self, list(params))

    def rate(self, weights, weight_rates, state=None, rates_above=None):
        n = state["xi"][0].shape[0]
        return [
            self.eta * ((xi.T @ (r - lp)) / n - self.alpha * b)
            for xi, r, lp, b in zip(state["xi"], rates_above, state["rate_lp"], self.feedback)
        ]

    # -------------------------------------------------------------- its own state
    def init_state(self, weights, rates_above):
        state = {
            "xi": [jnp.zeros((r.shape[0], w.shape[1])) for r, w in zip(rates_above, weights[1:])],
            "rate_lp": list(rates_above),
        }
        if self.tau_lo is not None:
            state["forward"] = [jnp.zeros_like(w) for w in weights]
        return state

    def state_rates(self, state, rates_above, weight_rates):
        out = {
            "xi": [-xi / self.tau_xi for xi in state["xi"]],
            "rate_lp": [(r - lp) / self.tau_hp for r, lp in zip(rates_above, state["rate_lp"])],
        }
        if self.tau_lo is not None:
            if weight_rates is None:
                out["forward"] = [jnp.zeros_like(f) for f in state["forward"]]
            else:
                out["forward"] = [
                    (d - f) / self.tau_lo for d, f in zip(weight_rates, state["forward"])
                ]
        return out

    def state_noise(self, state):
        amplitude = self.sigma * jnp.sqrt(2.0 / self.tau_xi)
        out = {"xi": [amplitude for _ in state["xi"]], "rate_lp": None}
        if self.tau_lo is not None:
            out["forward"] = None
        return out

    def perturbation(self, state):
        return state["xi"]

    def forward_rates(self, state, weight_rates):
        return weight_rates if self.tau_lo is None else list(state["forward"])


def rule(sizes, key):
    """The registered rule `pal` (`dynlearn.rules`): an always-on LE network (as rule `le`)
    whose feedback weights are learned by PAL (sigma 0.03, eta 10, alpha 1e-4; the settings
    of `experiments/feedback_comparison.py`)."""
    from circuits.latent_equilibrium import always_on_rule

    k_net, k_fb = jax.random.split(key)
    return always_on_rule(sizes, k_net, PAL(k_fb, sigma=0.03, eta=10.0, alpha=1e-4))
