"""Small systems used by several tests."""

import jax.numpy as jnp

import dynlearn


class OrnsteinUhlenbeck(dynlearn.AbstractDynamics):
    """du = -u/tau dt + sigma dW; stationary variance sigma^2 tau / 2."""

    tau: float = 1.0
    sigma: float = 0.5

    def vector_field(self, t, y, args):
        return {"x": {"u": -y["x"]["u"] / self.tau}}

    def diffusion(self, t, y, args):
        return {"x": {"u": self.sigma * jnp.ones_like(y["x"]["u"])}}


class Quadratic(dynlearn.AbstractEnergyDynamics):
    """E = 1/2 |a - c|^2 + 1/2 |b - a|^2 with `c` from args; `b` may be clamped."""

    tau: float = 1.0
    clamp_b: bool = False

    def energy(self, y, args):
        a, b = y["a"]["u"], y["b"]["u"]
        return 0.5 * jnp.sum((a - args) ** 2) + 0.5 * jnp.sum((b - a) ** 2)

    def free(self, y, args):
        return {"a": True, "b": not self.clamp_b}
