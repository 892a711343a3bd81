"""Claim: the registered `pc` rule's 20 Euler steps of 0.1 stop short of PC's equilibrium,
far short in deep networks.

PC's theory (and the docs) describe the update at the inference equilibrium; the rule
`pc`, like much of the literature, stops inference after 20 Euler steps of 0.1 (2 time
constants). On random tanh networks (width 20, output variance 10 and 1 below, as the rule;
32 samples, float64) the relative difference between the 20-step weight update and the
update at the equilibrium (`SteadyStateInference`, Tsit5, rtol 1e-12) is measured per
depth (weight layers). Measured (3 seeds): 7.6-8.0% with one hidden layer, 25-26% with two,
33-38% with three, 28-40% with five. Holds when the gap is below 15% with one hidden layer
and above 20% with every deeper network: the thresholds sit well inside the measured values
because the claim is qualitative — the 20-step rule is a different learning rule from the
equilibrium one in deep networks, not a close approximation (report both side by side).

Run: `python -m theory.pc_inference_steps [--fast]` or `dynlearn check pc_inference_steps`.
"""

from __future__ import annotations

import sys

import diffrax
import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.pc import EulerInference, PCNetwork, SteadyStateInference

CLAIM = "rule pc's 20 Euler steps: update gap to the equilibrium < 15% at depth 2, > 20% deeper"
EQUILIBRIUM = SteadyStateInference(rtol=1e-12, atol=1e-14, solver=diffrax.Tsit5(), max_time=1e5)
WIDTH, N_OUT, BATCH = 20, 10, 32


def measure(depth: int, seed: int) -> float:
    sizes = [WIDTH] * depth + [N_OUT]
    key = jax.random.key(seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), (BATCH, WIDTH))
    y = jax.random.normal(jax.random.fold_in(key, 2), (BATCH, N_OUT))
    options = {"activation": "tanh", "variances": [1.0] * (depth - 1) + [10.0]}
    steps = PCNetwork(sizes, key, inference=EulerInference(20, 0.1), **options)
    settled = PCNetwork(sizes, key, inference=EQUILIBRIUM, **options)
    got, _ = steps.updates(x, y, key)
    ref, _ = settled.updates(x, y, key)
    return float(
        dynlearn.analysis.relative_error((got.weights, got.biases), (ref.weights, ref.biases))
    )


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    depths = [2, 3] if fast else [2, 3, 4, 6]
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        gaps = np.array([[measure(d, s) for s in seeds] for d in depths])
    ds = xr.Dataset(
        {"update_gap": (("depth", "seed"), gaps)}, coords={"depth": depths, "seed": seeds}
    )
    ds = dynlearn.describe(
        ds,
        update_gap=(
            "relative difference of the 20-step and the equilibrium PC weight updates, "
            "|dW_20 - dW_eq| / |dW_eq|",
            "1",
        ),
        depth=("number of weight layers", "1"),
    )
    mean = gaps.mean(axis=1)
    passed = bool(mean[0] < 0.15 and np.all(mean[1:] > 0.20))
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = f"rule pc: 20 Euler steps vs equilibrium (mean over {ds.sizes['seed']} seed(s))"
    with dynlearn.plot.figure(path, figsize=(5.2, 3.4), title=title) as ax:
        ax.plot(ds.depth, 100 * ds.update_gap.mean("seed"), **dynlearn.plot.style(0), label="tanh")
        ax.set(xlabel="depth (weight layers)", ylabel="update gap to the equilibrium (%)")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("pc_inference_steps", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
