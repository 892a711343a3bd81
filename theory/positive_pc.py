"""Claim: positive PC keeps every firing rate >= 0 and still computes BP's gradient in the
infinitesimal inference limit; how far its clamped update strays from BP, vs depth.

Positive PC (`circuits.pc.positive`, after Alonso & Neftci 2021): rates x_l >= 0 by a
projected inference flow, errors in two non-negative populations, one-way feedback
synapses (mirrored here). On random networks (width 8, ReLU hidden, sigmoid output, inputs
in [0, 1], one-hot targets) of depth 2-5 in float64, settled by 20,000 Euler steps to
|dx/dt| < 1e-12 (asserted):
- every value neuron of every settled state is >= 0 (exactly: the flow is projected);
- with a nudged output (beta = 1e-4) the update divided by beta has cosine > 0.999 with
  BP's gradient of the same network (relative error < 1e-2), at every depth. (Why 1e-4: a
  rate within beta |dL/dx| of zero is held at 0 by the projection, a kink rather than a
  smooth response, and its error departs from BP's at first order; at beta = 1e-3 one of
  the 12 networks had such a unit: relative error 0.065, cosine 0.998. At 1e-4: 1.1e-4.)
Reported, not asserted (the literature's training setting, output clamped to the target):
the cosine of the clamped update with BP vs depth, for positive PC and, on the same
sizes, for standard PC (`circuits.pc`, ReLU hidden, linear output), each against its own
network's BP gradient.

Run: `python -m theory.positive_pc [--fast]` or `dynlearn check positive_pc`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits._layers import SquaredError
from circuits.backprop import BackpropMLP
from circuits.pc import Clamped, EulerInference, Nudged, PCNetwork
from circuits.pc.positive import PositivePCNetwork

CLAIM = "positive PC: rates >= 0 at equilibrium; nudged update -> BP (cosine > 0.999)"
BETA = 1e-4
# Euler to the fixed point (the projected flow's kinks at x = 0 and ReLU's at a = 0 stall
# adaptive solvers at tight tolerances); the residual |dx/dt| is measured and asserted.
SETTLE = EulerInference(n_steps=20_000, dt=0.5)
WIDTH, N_OUT, BATCH = 8, 3, 8


def _data(seed: int):
    key = jax.random.key(seed)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (BATCH, WIDTH))
    y = jax.nn.one_hot(jax.random.randint(jax.random.fold_in(key, 2), (BATCH,), 0, N_OUT), N_OUT)
    return key, x, y


def _compare(updates, reference) -> tuple[float, float]:
    got, ref = (updates.weights, updates.biases), (reference.weights, reference.biases)
    return (
        float(dynlearn.analysis.cosine_similarity(got, ref)),
        float(dynlearn.analysis.relative_error(got, ref)),
    )


def measure(depth: int, seed: int) -> dict:
    key, x, y = _data(seed)
    sizes = [WIDTH] * depth + [N_OUT]
    out = {}
    for task, label in ((Nudged(BETA), "nudged"), (Clamped(), "clamped")):
        net = PositivePCNetwork(sizes, key, task=task, inference=SETTLE)
        updates, _ = net.updates(x, y, key)
        reference = eqx.filter_grad(lambda n: SquaredError()(n.feedforward(x)[-1], y))(net)
        out[f"{label}_cosine"], out[f"{label}_error"] = _compare(updates, reference)
        states, drive = net.settle(x, y)
        out[f"{label}_min_rate"] = min(float(jnp.min(v)) for v in jax.tree.leaves(states))
        flow = jax.vmap(lambda s, d: net.vector_field(0.0, s, d))(states, drive)
        out[f"{label}_residual"] = max(float(jnp.max(jnp.abs(v))) for v in jax.tree.leaves(flow))
    standard = PCNetwork(sizes, key, activation="relu", inference=SETTLE)
    updates, _ = standard.updates(x, y, key)
    bp = BackpropMLP(sizes, key, activation="relu", loss=SquaredError())
    reference = eqx.filter_grad(lambda m: m.loss(x, y))(bp)
    out["standard_cosine"], _ = _compare(updates, reference)
    return out


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    depths = [2, 4] if fast else [2, 3, 4, 5]
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        rows = [[measure(d, s) for s in seeds] for d in depths]
    names = list(rows[0][0])
    ds = xr.Dataset(
        {n: (("depth", "seed"), np.array([[r[n] for r in row] for row in rows])) for n in names},
        coords={"depth": depths, "seed": seeds},
    )
    ds = dynlearn.describe(
        ds,
        nudged_cosine=(f"cosine of positive PC's update / beta with BP (beta = {BETA})", "1"),
        nudged_error=("relative error of positive PC's update / beta vs BP", "1"),
        nudged_min_rate=("smallest value neuron over the settled states (nudged)", "1"),
        clamped_cosine=("cosine of positive PC's clamped-output update with BP", "1"),
        clamped_error=("relative error of positive PC's clamped-output update vs BP", "1"),
        clamped_min_rate=("smallest value neuron over the settled states (clamped)", "1"),
        nudged_residual=("largest |dx/dt| tau at the settled states (nudged)", "1"),
        clamped_residual=("largest |dx/dt| tau at the settled states (clamped)", "1"),
        standard_cosine=("cosine of standard PC's clamped-output update with BP", "1"),
        depth=("number of weight layers", "1"),
    )
    passed = (
        float(ds.nudged_min_rate.min()) >= 0
        and float(ds.clamped_min_rate.min()) >= 0
        and float(ds.nudged_cosine.min()) > 0.999
        and float(ds.nudged_error.max()) < 1e-2
        and float(max(ds.nudged_residual.max(), ds.clamped_residual.max())) < 1e-12
    )
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "positive vs standard PC: cosine of the update with BP"
    with dynlearn.plot.figure(path, figsize=(5.6, 3.4), title=title) as ax:
        for name, label, marker in (
            ("nudged_cosine", f"positive PC, nudged (beta {BETA})", "o"),
            ("clamped_cosine", "positive PC, clamped output", "s"),
            ("standard_cosine", "standard PC, clamped output", "^"),
        ):
            mean = ds[name].mean("seed")
            ax.errorbar(ds.depth, mean, yerr=ds[name].std("seed"), marker=marker, label=label)
        ax.set(xlabel="number of weight layers", ylabel="cosine with BP's gradient")
        ax.set_xticks(ds.depth.values)
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("positive_pc", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
