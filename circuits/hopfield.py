"""A continuous Hopfield network: the smallest energy-based circuit.

Energy (Hopfield 1984, in the form used by Scellier & Bengio 2017):

    E(u) = 1/2 |u|^2 - 1/2 rho(u)^T W rho(u) - (b + I)^T rho(u),

with `W` symmetric, zero diagonal, and `I` an external input. Its gradient flow
`tau du/dt = -dE/du = -u + rho'(u) * (W rho(u) + b + I)` (derived by
`dynlearn.AbstractEnergyDynamics`, nothing hand-written) never increases E and settles
to a fixed point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

import dynlearn

__all__ = ["HopfieldNetwork", "demo"]


class HopfieldNetwork(dynlearn.AbstractEnergyDynamics):
    """Continuous Hopfield network; state `{"neurons": {"u": (n,)}}`, input `args` (n,).

    **Arguments:**
    - `weights`: `(n, n)`; symmetrised and its diagonal zeroed (the energy sees only the
      symmetric part anyway).
    - `bias`: `(n,)`, default zeros.
    - `tau`: time constant.
    - `activation`: `rho`, default `tanh` (smooth, so implicit gradients are exact).
    """

    weights: Float[Array, "n n"]
    bias: Float[Array, " n"]
    tau: float = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)

    def __init__(self, weights, bias=None, *, tau: float = 1.0, activation=jnp.tanh):
        weights = jnp.asarray(weights)
        if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
            raise ValueError(f"weights must be square (n, n); got shape {weights.shape}.")
        n = weights.shape[0]
        bias = jnp.zeros(n, weights.dtype) if bias is None else jnp.asarray(bias)
        if bias.shape != (n,):
            raise ValueError(f"bias must have shape ({n},) to match weights; got {bias.shape}.")
        if not tau > 0:
            raise ValueError(f"tau must be > 0; got {tau}.")
        sym = 0.5 * (weights + weights.T)
        self.weights = sym - jnp.diag(jnp.diag(sym))
        self.bias = bias
        self.tau = float(tau)
        self.activation = activation

    @classmethod
    def random(cls, n: int, key: PRNGKeyArray, *, gain: float = 0.5, **kwargs):
        """Random symmetric weights with spectral scale about `gain` (stable for gain < 1)."""
        w = jax.random.normal(key, (n, n)) * gain / jnp.sqrt(n)
        return cls(w, **kwargs)

    @property
    def n(self) -> int:
        return self.weights.shape[0]

    def init_state(self, x=None) -> dict:
        """The resting state u = 0 (the same for any input `x`)."""
        return {"neurons": {"u": jnp.zeros(self.n, self.weights.dtype)}}

    def energy(self, y, args):
        u = y["neurons"]["u"]
        r = self.activation(u)
        drive = self.bias if args is None else self.bias + dynlearn.as_stimulus(args)(0.0)
        return 0.5 * jnp.sum(u**2) - 0.5 * r @ self.weights @ r - drive @ r


def demo(run_dir: Path, quick: bool = False) -> list[dict]:
    """Settle a random Hopfield network; save its trajectory and energy curve."""
    n = 32 if quick else 128
    net = HopfieldNetwork.random(n, jax.random.key(0), gain=0.9)
    y0 = {"neurons": {"u": jax.random.normal(jax.random.key(1), (n,))}}
    inputs = 0.1 * jax.random.normal(jax.random.key(2), (n,))
    start = time.perf_counter()
    eq = dynlearn.equilibrate(net, y0, inputs, rtol=1e-6, atol=1e-6)
    seconds = time.perf_counter() - start
    traj = dynlearn.simulate(
        net, y0, 0.0, float(eq.t), args=inputs, dt=0.01, ts=jnp.linspace(0.0, float(eq.t), 200)
    )
    energy = jax.vmap(lambda y: net.energy(y, inputs))(traj.ys)
    ds = dynlearn.to_dataset(traj, system=net, time_unit="1", seed=0)
    ds["energy"] = ("time", np.asarray(energy))
    ds = dynlearn.describe(
        ds, time=("time in units of tau", "1"), energy=("Hopfield energy E(u)", "1")
    )
    dynlearn.save_netcdf(ds, run_dir / "hopfield.nc")
    dynlearn.plot.trajectory(
        ds,
        ["energy", "neurons_u"],
        run_dir / "hopfield.png",
        title=f"continuous Hopfield network, {n} neurons settling from a random state",
    )
    # float32: allow round-off relative to the energy's scale on the flat tail.
    energy = np.asarray(energy)
    decreasing = bool(np.all(np.diff(energy) <= 1e-6 * max(1.0, np.abs(energy).max())))
    return [
        {
            "demo": "hopfield",
            "what": f"settled {n} neurons (Tsit5, steady-state stop)",
            "result": f"t*={float(eq.t):.1f} tau, {int(eq.num_steps)} steps, "
            f"|du/dt|={float(eq.residual):.1e}, energy non-increasing: {decreasing}",
            "seconds": seconds,
        },
    ]
