"""Claim: the microcircuit learns its self-predicting state, and the closed form is a fixed point.

Sacramento et al. 2018: with no target, the interneuron plasticity (W^IP predicts the layer
above, W^PI cancels the top-down input) drives every apical potential to zero, where
W^PI_k = -B_k and W^IP_k = g_B (g_l + g_D) / (g_D G_{k+1}) W_{k+1}.

Setting: a 30-20-10-5 prospective microcircuit (tanh rates, forward weights U(-3, 3)/sqrt(n_in)
and fixed, fixed random feedback B), interneuron weights random, inputs U(-1, 1) streamed
for 10 ms each (Euler, dt = 0.1 ms), eta_IP = eta_PI = 0.5. Pass when, for every hidden
layer,
1. the mean |v_A| of the settled free network on 64 probe inputs falls more than 100x from
   the random start to the end of learning;
2. the cosine between the learned and the closed-form W^IP and W^PI is above 0.99;
3. at the closed form (float64), with the somata at their feed-forward values and silent
   apical dendrites, every rate of change — neurons and weights — is below 1e-12: an exact
   fixed point.

Run: `python -m theory.mc_self_predicting [--fast]` or `dynlearn check mc_self_predicting`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.microcircuit import Microcircuit, self_predicting

CLAIM = "the microcircuit learns the self-predicting state (|v_A| down >100x, cos > 0.99)"
SIZES = [30, 20, 10, 5]
T_PRES, DT = 10.0, 0.1


def make_circuit(key) -> Microcircuit:
    circuit = Microcircuit(
        SIZES,
        key,
        eta=0.0,
        eta_inter=0.5,
        eta_lateral=0.5,
        activation="tanh",
        dt=DT,
    )
    return eqx.tree_at(lambda c: c.weights, circuit, [3.0 * w for w in circuit.weights])


@eqx.filter_jit
def apical_magnitude(circuit: Microcircuit, x) -> jax.Array:
    """Mean |v_A| per hidden layer of the free network settled on inputs `x`."""
    neurons = circuit.settle(x, t_settle=50.0)
    names = circuit.layer_names[:-1]
    return jnp.stack([jnp.mean(jnp.abs(neurons[n]["v_apical"])) for n in names])


def _to_float64(leaf):
    return leaf.astype(jnp.float64) if eqx.is_inexact_array(leaf) else leaf


def fixed_point_residual(circuit: Microcircuit, x) -> float:
    """max |d/dt| over neurons and weights at the closed form's fixed point (float64)."""
    with jax.enable_x64(True):
        return float(_residual(jax.tree.map(_to_float64, circuit), x.astype(jnp.float64)))


@eqx.filter_jit
def _residual(circuit, x):
    circuit = self_predicting(circuit)
    state = circuit.init_state(x)  # feed-forward somata, silent apical dendrites
    d_neurons = circuit.vector_field(0.0, state, x)
    d_weights = eqx.filter(circuit.plasticity(0.0, state, x), circuit.trainable())
    return jnp.max(jnp.abs(dynlearn.analysis.flatten((d_neurons, d_weights))))


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    n_samples = 800 if fast else 3000
    key = jax.random.key(0)
    circuit = make_circuit(key)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (n_samples, 1, SIZES[0]), minval=-1.0)
    probe = jax.random.uniform(jax.random.fold_in(key, 2), (64, SIZES[0]), minval=-1.0)
    stream = dynlearn.StimulusStream(x, T_PRES)
    names = circuit.layer_names[:-1]
    ts = T_PRES * (1 + jnp.arange(n_samples)) - DT / 2

    def observe(state):
        return jnp.stack([jnp.mean(jnp.abs(state["neurons"][n]["v_apical"])) for n in names])

    @eqx.filter_jit
    def learn(circuit):
        system = dynlearn.Learning(circuit)  # neurons and weights evolve together
        trajectory = dynlearn.simulate(
            system,
            system.init_state(x[0]),
            0.0,
            stream.t1,
            args=stream,
            dt=DT,
            ts=ts,
            variables=observe,
            check=False,
        )
        return system.learned(trajectory.y1), trajectory.ys

    learned, during = learn(circuit)
    closed = self_predicting(learned)
    before = np.asarray(apical_magnitude(circuit, probe))
    after = np.asarray(apical_magnitude(learned, probe))
    cos_inter = [
        float(dynlearn.analysis.cosine_similarity(a, b))
        for a, b in zip(learned.inter_weights, closed.inter_weights)
    ]
    cos_lateral = [
        float(dynlearn.analysis.cosine_similarity(a, b))
        for a, b in zip(learned.lateral_weights, closed.lateral_weights)
    ]
    residual = fixed_point_residual(circuit, probe[:8])
    ds = xr.Dataset(
        {
            "apical_before": ("layer", before),
            "apical_after": ("layer", after),
            "reduction": ("layer", before / after),
            "cos_inter_weights": ("layer", cos_inter),
            "cos_lateral_weights": ("layer", cos_lateral),
            "fixed_point_residual": ((), residual),
            "apical_during_learning": (("time", "layer"), np.asarray(during)),
        },
        coords={"layer": names, "time": np.asarray(ts)},
    )
    probed = "mean |v_A| of the settled free network on 64 probe inputs"
    ds = dynlearn.describe(
        ds,
        apical_before=(f"{probed}, random initial interneuron weights", "1"),
        apical_after=(f"{probed}, after learning", "1"),
        reduction=("reduction of the mean apical potential |v_A| by learning, before / after", "1"),
        cos_inter_weights=(
            "cosine similarity between learned and closed-form interneuron weights W^IP",
            "1",
        ),
        cos_lateral_weights=(
            "cosine similarity between learned and closed-form interneuron-to-pyramidal "
            "weights W^PI",
            "1",
        ),
        fixed_point_residual=(
            "max |d/dt| over neurons and weights at the closed-form self-predicting state "
            "(float64)",
            "ms-1",
        ),
        apical_during_learning=(
            "mean |v_A| over the layer at the end of each sample during learning",
            "1",
        ),
        time=("time", "ms"),
    )
    ds.layer.attrs["long_name"] = "hidden layer"
    passed = (
        bool(np.all(before / after > 100))
        and min(cos_inter + cos_lateral) > 0.99
        and residual < 1e-12
    )
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "learning the self-predicting state: apical potentials (no target)"
    looks = dynlearn.plot.styles(ds.layer.values)
    every = max(1, ds.sizes["time"] // 10)
    with dynlearn.plot.figure(path, figsize=(6.2, 3.4), title=title) as ax:
        for layer in ds.layer.values:
            ax.semilogy(
                ds.time,
                ds.apical_during_learning.sel(layer=layer),
                **looks[layer],
                markevery=every,
                lw=0.8,
                label=layer,
            )
        ax.set(
            xlabel=dynlearn.plot.axis_label(ds.time),
            ylabel="mean |v_A| (end of each sample)",
        )
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("mc_self_predicting", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
