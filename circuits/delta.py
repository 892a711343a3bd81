"""The continuous-time delta rule: the smallest always-on learner.

A linear layer whose weights learn while samples stream by (Widrow & Hoff 1960, in
continuous time):

    tau   du/dt = -u + W x(t) + b
    dW/dt = eta (y(t) - u) x(t)^T,     db/dt = eta (y(t) - u)

with `x(t)`, `y(t)` a `StimulusStream` of samples and targets. While `u` tracks `W x + b`
(tau much shorter than the presentation time T), `dW/dt = -eta dL/dW` for the squared error
`L = 1/2 |y - W x - b|^2`: one presentation moves W by about `-eta T dL/dW` (checked in
`theory/delta_rule.py`). The circuit writes these two equations; `dynlearn.Learning` makes
the weights state and `dynlearn.AlwaysOn` streams a batch through it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

import dynlearn

__all__ = ["DeltaRule"]


class DeltaRule(dynlearn.AbstractPlastic):
    """Always-on linear learner; state `{"output": {"u": (streams, n_out)}}`, args a stream
    with targets.

    **Arguments:**
    - `n_in`, `n_out`: sizes; `key`: initialisation of W (small Gaussian).
    - `tau`: neuron time constant; `eta`: learning rate per unit time.
    """

    weights: Array
    bias: Array
    tau: float = eqx.field(static=True)
    eta: float = eqx.field(static=True)

    def __init__(self, n_in, n_out, key, *, tau=0.1, eta=0.5):
        if not (tau > 0 and eta > 0):
            raise ValueError(f"tau and eta must be > 0; got tau={tau}, eta={eta}.")
        self.weights = 0.01 * jax.random.normal(key, (n_out, n_in))
        self.bias = jnp.zeros(n_out)
        self.tau, self.eta = float(tau), float(eta)

    @property
    def sizes(self) -> list[int]:
        return [self.weights.shape[1], self.weights.shape[0]]

    def time_constants(self):
        return {"tau": self.tau}

    def init_state(self, x=None) -> dict:
        streams = 1 if x is None else x.shape[0]
        return {"output": {"u": jnp.zeros((streams, self.weights.shape[0]))}}

    def vector_field(self, t, y, args):
        x, _ = dynlearn.input_and_target(args, t)
        u = y["output"]["u"]
        return {"output": {"u": (-u + x @ self.weights.T + self.bias) / self.tau}}

    def plasticity(self, t, y, args):
        x, target = dynlearn.input_and_target(args, t)
        error = target - y["output"]["u"]
        rates = (self.eta * error.T @ x / x.shape[0], self.eta * jnp.mean(error, axis=0))
        return eqx.tree_at(lambda m: (m.weights, m.bias), self, rates)

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0], what=f"sizes {self.sizes}")
        return x @ self.weights.T + self.bias
