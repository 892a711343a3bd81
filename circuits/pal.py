r"""Phaseless Alignment Learning (PAL): feedback weights learned from neuronal noise.

Max, Kriener, García Martínez, ... Senn & Petrovici 2024, "Learning efficient
backprojections across cortical hierarchies in real time" (Nature Machine Intelligence).
Each hidden layer $l$ gets Ornstein-Uhlenbeck noise $\xi_l$ in the compartment that receives
the top-down signal (the apical dendrite of the microcircuit),

$$
\tau_\xi\, d\xi_l = -\xi_l\, dt + \sigma \sqrt{2 \tau_\xi}\, dW
\qquad \text{(stationary std } \sigma),
$$

which travels up through $W_{l+1}$. The layer above high-pass filters its rates,
$r_\mathrm{HP} = r - r_\mathrm{LP}$ with $\tau_\mathrm{HP}\, dr_\mathrm{LP}/dt = r - r_\mathrm{LP}$
(equivalently $dr_\mathrm{HP}/dt = dr/dt - r_\mathrm{HP}/\tau_\mathrm{HP}$), and the feedback
weights learn, always on, the correlation of the two:

$$
\frac{dB_l}{dt} = \eta \left[\xi_l\, r_{\mathrm{HP},l+1}^\top - \alpha B_l\right].
$$

Averaged over the noise, $\xi_l r_\mathrm{HP}^\top$ is proportional to $\mathrm{diag}(\phi_l')\,
W_{l+1}^\top\, \mathrm{diag}(\phi_{l+1}')$, so $B_l$ aligns with $W_{l+1}^\top$ without weight
transport; $\alpha$ sets $B$'s scale. Nothing is switched: neurons, noise, filters and all weights
evolve together. In the paper the noise also reaches the errors of the layers below and the host's
forward-weight updates are low-pass filtered (tau_LO) so that it averages out: those are the host's
options (`tau_lo` of `circuits.latent_equilibrium.LENetwork` and
`circuits.microcircuit.Microcircuit`; the LE host keeps the noise out of its errors unless
`noise_in_errors=True`, which learns better here: see its docstring and rule `pal`).

PAL is a sub-system of its host (`circuits.feedback`): its state (the noise xi and the
low-passed rates above) lives under the host's state key `"pathway"`, its noise is composed
into the host's by the engine, and the host passes it the rates of the layers above.

Reference settings (dt 0.01 ms): tau_xi = tau_HP = 10 dt, tau_LO = 1e4 dt, noise scale
0.01-0.05, alpha 1e-5-1e-6. `sigma` here is the noise's *stationary standard deviation*; the
paper's "noise scale" s, in its discrete scheme, gives a stationary standard deviation of
s / sqrt(2): its 0.01-0.05 are sigma = 0.007-0.035 here (0.05 -> 0.035, the setting of its
Fig. 3abc; see SCIENCE.md). The defaults here (dt = 0.1 ms: tau_xi = tau_HP = 10 dt,
sigma 0.1, eta 10, alpha 1e-3) were tuned on `theory/pal_alignment.py` in LE networks and
microcircuits; with a much smaller alpha B grows large, and in the microcircuit, where the
interneurons must keep cancelling B r above, a large fast-moving B made the apical loop
diverge (sigma 0.05, eta 100, alpha 2e-5 did).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from circuits.feedback import AbstractRandomFeedback, learned_matrices

__all__ = ["PAL"]


class PAL(AbstractRandomFeedback):
    """The PAL feedback pathway (plastic, with a noisy state of its own).

    **Arguments:**
    - `key`: draws the initial (random) B.
    - `sigma`: stationary standard deviation of the exploration noise (>= 0).
    - `tau_xi`, `tau_hp`: noise correlation time and high-pass time constant (ms).
    - `alpha`: the regulariser (sets B's scale: B ~ <xi r_HP^T> / alpha).
    - `eta`: feedback learning rate (per ms).
    - `scale`, `feedback`: as `FeedbackAlignment` (initial B).
    """

    key: PRNGKeyArray
    sigma: float = eqx.field(static=True, default=0.1)
    tau_xi: float = eqx.field(static=True, default=1.0)
    tau_hp: float = eqx.field(static=True, default=1.0)
    alpha: float = eqx.field(static=True, default=1e-3)
    eta: float = eqx.field(static=True, default=10.0)
    scale: float = eqx.field(static=True, default=1.0)
    feedback: list[Array] | None = None

    def __check_init__(self):
        if not self.sigma >= 0:
            raise ValueError(f"PAL: sigma (noise amplitude) must be >= 0; got {self.sigma}.")
        for name in ("tau_xi", "tau_hp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PAL: {name} must be > 0; got {getattr(self, name)}.")
        if not (self.alpha >= 0 and self.eta >= 0):
            raise ValueError(f"PAL: alpha and eta must be >= 0; got {self.alpha}, {self.eta}.")

    def time_constants(self):
        return {"PAL tau_xi": self.tau_xi, "PAL tau_hp": self.tau_hp}

    # -------------------------------------------------------------- plasticity of B
    def trainable(self):
        return learned_matrices(self)

    def plasticity(self, t, state, signals):
        n = state["xi"][0].shape[0]
        rates = [
            self.eta * ((xi.T @ (r - lp)) / n - self.alpha * b)
            for xi, r, lp, b in zip(
                state["xi"], signals.rates_above, state["rate_lp"], self.feedback
            )
        ]
        return eqx.tree_at(lambda p: p.feedback, self, rates)

    # -------------------------------------------------------------- its own state
    def init_state(self, signals):
        """Silent noise, and the low-pass filters at the current rates (so r_HP = 0)."""
        return {
            "xi": [
                jnp.zeros((r.shape[0], w.shape[1]), r.dtype)
                for r, w in zip(signals.rates_above, signals.weights[1:])
            ],
            "rate_lp": list(signals.rates_above),
        }

    def vector_field(self, t, state, signals):
        return {
            "xi": [-xi / self.tau_xi for xi in state["xi"]],
            "rate_lp": [
                (r - lp) / self.tau_hp for r, lp in zip(signals.rates_above, state["rate_lp"])
            ],
        }

    def diffusion(self, t, state, args):
        amplitude = self.sigma * jnp.sqrt(2.0 / self.tau_xi)
        return {"xi": [amplitude for _ in state["xi"]], "rate_lp": None}

    def perturbation(self, state):
        return state["xi"]
