"""Claim: in the self-predicting state with B = W^T, the microcircuit's updates approach backprop.

Sacramento et al. 2018: with interneurons cancelling the top-down input, the apical
potentials carry only the error that the output nudge sends down, so the Urbanczik-Senn
updates of every layer follow BP's gradient of the equivalent feed-forward network
(u_k = (g_B / G_k) W_k r_{k-1}, r_k = phi(u_k), loss 1/2 |y - r_L|^2) as the nudge weakens.

Setting (float64): a 5-20-10-20-5 microcircuit (logistic hidden rates, linear output,
forward weights U(-3, 3)/sqrt(n_in)), closed-form self-predicting state, B_k = W_{k+1}^T,
4 input/target pairs as parallel streams, the free-of-learning network equilibrated
(Euler, dt = 0.1 ms, to |dy/dt| < 1e-12) with output nudging conductance g_nudge in
{1, 0.1, 0.01, 0.001}; cosine similarity per layer between the instantaneous updates dW_k/dt
and -dL/dW_k. Pass when every layer's cosine exceeds 0.999 at g_nudge = 0.001 and 1 - cos
falls as the nudge weakens (both for prospective and ordinary rates).

Run: `python -m theory.mc_vs_bp [--fast]` or `dynlearn check mc_vs_bp`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.feedback import WeightTransport
from circuits.microcircuit import Conductances, Microcircuit, self_predicting

CLAIM = "microcircuit updates -> BP gradient as the nudge weakens (cos > 0.999 at g = 1e-3)"
SIZES = [5, 20, 10, 20, 5]
NUDGES = [1.0, 0.1, 0.01, 0.001]


@eqx.filter_jit
def cosines(circuit: Microcircuit, x, y) -> jax.Array:
    """Per-layer cosine between the settled microcircuit's dW/dt and BP's -dL/dW."""
    attenuations = circuit.attenuations()

    def loss(weights):
        rate = x
        for w, a, phi in zip(weights, attenuations, circuit.phis):
            rate = phi(a * (rate @ w.T))
        return 0.5 * jnp.mean(jnp.sum((y - rate) ** 2, axis=-1))

    gradient = jax.grad(loss)(circuit.weights)
    stream = dynlearn.StimulusStream(x[None], 1.0, y[None])
    # The circuit itself: its neurons with the weights fixed.
    neurons = dynlearn.equilibrate(
        circuit, circuit.init_state(x), args=stream, dt=0.1, rtol=1e-12, atol=1e-12
    ).y
    rates = circuit.plasticity(0.0, neurons, stream)
    return jnp.stack(
        [dynlearn.analysis.cosine_similarity(-g, d) for g, d in zip(gradient, rates.weights)]
    )


def measure(nudge: float, prospective: bool) -> np.ndarray:
    key = jax.random.key(0)
    circuit = Microcircuit(
        SIZES,
        key,
        conductances=Conductances(nudge=nudge),
        feedback=WeightTransport(),
        prospective=prospective,
    )
    circuit = eqx.tree_at(lambda c: c.weights, circuit, [3.0 * w for w in circuit.weights])
    circuit = self_predicting(jax.tree.map(_to_float64, circuit))
    x = jax.random.uniform(jax.random.fold_in(key, 1), (4, SIZES[0]), jnp.float64)
    y = jax.random.uniform(jax.random.fold_in(key, 2), (4, SIZES[-1]), jnp.float64)
    return np.asarray(cosines(circuit, x, y))


def _to_float64(leaf):
    return leaf.astype(jnp.float64) if eqx.is_inexact_array(leaf) else leaf


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    modes = [True] if fast else [True, False]
    nudges = NUDGES[1:] if fast else NUDGES
    with jax.enable_x64(True):
        cos = np.array([[measure(g, p) for g in nudges] for p in modes])
    layers = [f"W{k}" for k in range(1, len(SIZES))]
    ds = xr.Dataset(
        {"cosine": (("prospective", "nudge", "layer"), cos)},
        coords={"prospective": modes, "nudge": nudges, "layer": layers},
    )
    ds = dynlearn.describe(
        ds,
        cosine=(
            "cosine similarity between the microcircuit's update dW_k/dt and BP's -dL/dW_k",
            "1",
        ),
        nudge=("output nudging conductance g_nudge", "1"),
    )
    ds.prospective.attrs["long_name"] = "prospective rates, else ordinary rates"
    ds.layer.attrs["long_name"] = "forward weight matrix W_k"
    gap = 1 - cos
    passed = bool(np.all(cos[:, -1] > 0.999) and np.all(np.diff(gap, axis=1) < 0))
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "microcircuit vs backprop (self-predicting, B = W^T, prospective rates)"
    looks = dynlearn.plot.styles(ds.layer.values)
    with dynlearn.plot.figure(path, figsize=(5.8, 3.4), title=title) as ax:
        for layer in ds.layer.values:
            gap = 1 - ds.cosine.sel(prospective=True, layer=layer)
            ax.loglog(ds.nudge, gap, **looks[layer], label=layer)
        ax.set(xlabel=dynlearn.plot.axis_label(ds.nudge), ylabel="1 - cos(dW_k/dt, -dL/dW_k)")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("mc_vs_bp", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
