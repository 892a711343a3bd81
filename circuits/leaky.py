"""Layered leaky rate neurons driven by a stimulus.

For layers l = 1..L with input rate r_0 = x(t):

    tau du_l/dt = -u_l + W_l r_{l-1} + b_l,    r_l = phi(u_l).

A single layer with `W = I`, `b = 0` is the leaky integrator `tau du/dt = -u + I(t)`.
Each layer follows the one below with a lag of about `tau` (which prospective coding,
Haider et al. 2021, removes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

import dynlearn

__all__ = ["LeakyNetwork", "demo"]


class LeakyNetwork(dynlearn.AbstractDynamics):
    """Feed-forward leaky rate network; state `{name: {"u": (n_l,)}}` per layer.

    `args` is the input: an array (constant) or any stimulus, e.g. a
    `dynlearn.StimulusStream`. Layer names: `hidden1, hidden2, ..., output`.

    **Arguments:**
    - `weights`: list of `(n_l, n_{l-1})` arrays; `biases`: list of `(n_l,)` (default 0).
    - `tau`: membrane time constant; `activation`: `phi`, default `tanh`.
    """

    weights: list[Array]
    biases: list[Array]
    tau: float = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)

    def __init__(self, weights, biases=None, *, tau: float = 10.0, activation=jnp.tanh):
        weights = [jnp.asarray(w) for w in weights]
        if not weights:
            raise ValueError("weights: need at least one layer.")
        for i, (w_prev, w) in enumerate(zip(weights, weights[1:]), start=1):
            if w.ndim != 2 or w.shape[1] != w_prev.shape[0]:
                raise ValueError(
                    f"weights[{i}] must have shape (n_{i + 1}, {w_prev.shape[0]}) to follow "
                    f"layer {i}; got {w.shape}."
                )
        if biases is None:
            biases = [jnp.zeros(w.shape[0], w.dtype) for w in weights]
        biases = [jnp.asarray(b) for b in biases]
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if b.shape != (w.shape[0],):
                raise ValueError(f"biases[{i}] must have shape ({w.shape[0]},); got {b.shape}.")
        if not tau > 0:
            raise ValueError(f"tau must be > 0; got {tau}.")
        self.weights = weights
        self.biases = biases
        self.tau = float(tau)
        self.activation = activation

    @classmethod
    def random(cls, sizes: Sequence[int], key: PRNGKeyArray, **kwargs) -> LeakyNetwork:
        """Weights ~ N(0, 1/n_in) for layer sizes `(n_in, n_1, ..., n_L)`."""
        keys = jax.random.split(key, len(sizes) - 1)
        weights = [
            jax.random.normal(k, (n_out, n_in)) / jnp.sqrt(n_in)
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
        ]
        return cls(weights, **kwargs)

    @property
    def layer_names(self) -> list[str]:
        n = len(self.weights)
        return [f"hidden{i}" for i in range(1, n)] + ["output"]

    def init_state(self, x=None) -> dict:
        """The resting state u = 0 (the input `x` is switched on from there)."""
        return {
            name: {"u": jnp.zeros(w.shape[0], w.dtype)}
            for name, w in zip(self.layer_names, self.weights)
        }

    def vector_field(self, t, y, args):
        rate = dynlearn.as_stimulus(args)(t)
        out = {}
        for name, w, b in zip(self.layer_names, self.weights, self.biases):
            u = y[name]["u"]
            out[name] = {"u": (-u + w @ rate + b) / self.tau}
            rate = self.activation(u)
        return out


def demo(run_dir: Path, quick: bool = False) -> list[dict]:
    """Stream digits through a 64-32-10 leaky network; save and plot the responses."""
    from sklearn.datasets import load_digits

    n_samples = 5 if quick else 20
    digits = load_digits()
    x = jnp.asarray(digits.data[:n_samples] / 16.0, jnp.float32)
    stream = dynlearn.StimulusStream(x, t_pres=20.0, tau_filter=2.0)
    net = LeakyNetwork.random([64, 32, 10], jax.random.key(0), tau=5.0)
    ts = jnp.arange(0.0, stream.t1, 0.5)
    start = time.perf_counter()
    traj = dynlearn.simulate(net, net.init_state(), 0.0, stream.t1, args=stream, dt=0.05, ts=ts)
    jax.block_until_ready(traj.ys)
    seconds = time.perf_counter() - start
    ds = dynlearn.to_dataset(
        traj,
        system=net,
        time_unit="ms",
        seed=0,
        attrs={"stimulus": f"{n_samples} sklearn digits, 20 ms each, input filter tau 2 ms"},
    )
    dynlearn.save_netcdf(ds, run_dir / "leaky.nc")
    dynlearn.plot.trajectory(
        ds,
        ["hidden1_u", "output_u"],
        run_dir / "leaky.png",
        title=f"leaky network 64-32-10 (tau 5 ms), {n_samples} digits streamed for 20 ms each",
    )
    steps = int(traj.num_steps)
    return [
        {
            "demo": "leaky",
            "what": f"{n_samples} digits streamed through 64-32-10 (Euler)",
            "result": f"{steps} steps, output range [{float(np.min(ds.output_u)):.2f}, "
            f"{float(np.max(ds.output_u)):.2f}]",
            "seconds": seconds,
        },
    ]
