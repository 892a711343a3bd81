"""The continuous-time delta rule: the smallest always-on learner.

A linear layer whose weights are state (Widrow & Hoff 1960, in continuous time):

    tau   du/dt = -u + W x(t) + b
    dW/dt = eta (y(t) - u) x(t)^T,     db/dt = eta (y(t) - u)

with `x(t)`, `y(t)` a `StimulusStream` of samples and targets. While `u` tracks `W x + b`
(tau much shorter than the presentation time T), `dW/dt = -eta dL/dW` for the squared error
`L = 1/2 |y - W x - b|^2`: one presentation moves W by about `-eta T dL/dW` (checked in
`theory/delta_rule.py`). Learning is phase-free: one `simulate` over the stream.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

import dynlearn

__all__ = ["DeltaRule"]


class DeltaRule(dynlearn.AbstractDynamics, dynlearn.AbstractLearner):
    """Always-on linear learner; state `{"output": {"u", "W", "b"}}`, args a stream.

    **Arguments:**
    - `n_in`, `n_out`: sizes; `key`: initialisation of W (small Gaussian).
    - `tau`: neuron time constant; `eta`: learning rate per unit time; `t_pres`:
      presentation time per sample when learning through `fit` (`AlwaysOn`); `dt`: step.
    """

    weights: Array
    bias: Array
    tau: float = eqx.field(static=True)
    eta: float = eqx.field(static=True)
    t_pres: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, n_in, n_out, key, *, tau=0.1, eta=0.5, t_pres=1.0, dt=0.05):
        if not (tau > 0 and eta > 0 and t_pres > 0 and dt > 0):
            raise ValueError(
                f"tau, eta, t_pres and dt must be > 0; got {tau}, {eta}, {t_pres}, {dt}."
            )
        if dt > tau:
            raise ValueError(f"dt={dt} must not exceed tau={tau} (Euler is unstable beyond).")
        self.weights = 0.01 * jax.random.normal(key, (n_out, n_in))
        self.bias = jnp.zeros(n_out)
        self.tau, self.eta, self.t_pres, self.dt = float(tau), float(eta), float(t_pres), dt

    def init_state(self) -> dict:
        n_out = self.weights.shape[0]
        return {"output": {"u": jnp.zeros(n_out), "W": self.weights, "b": self.bias}}

    def vector_field(self, t, y, args):
        out = y["output"]
        x, target = args.input(t), args.target(t)
        error = target - out["u"]
        return {
            "output": {
                "u": (-out["u"] + out["W"] @ x + out["b"]) / self.tau,
                "W": self.eta * jnp.outer(error, x),
                "b": self.eta * error,
            }
        }

    def predict(self, x):
        return x @ self.weights.T + self.bias

    def learn_online(self, x, y, key):
        """Stream the batch (each sample for `t_pres`); weights carry over, `u` starts at 0."""
        output = self.predict(x)
        stream = dynlearn.StimulusStream(x, t_pres=self.t_pres, targets=y)
        end = dynlearn.simulate(
            self, self.init_state(), 0.0, stream.t1, args=stream, dt=self.dt, check=False
        ).y1["output"]
        learned = eqx.tree_at(lambda m: (m.weights, m.bias), self, (end["W"], end["b"]))
        loss = 0.5 * jnp.mean(jnp.sum((y - output) ** 2, axis=-1))
        return learned, {"loss": loss, "output": output}
