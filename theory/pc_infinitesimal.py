"""Claim: predictive coding's equilibrium update tends to backprop's gradient as beta -> 0.

With the output softly nudged (F + beta/2 |x_L - y|^2), the weight update at the PC
equilibrium divided by beta, (1/beta) dF/dtheta, tends to BP's gradient of
L = 1/2 |y - x_L^ff|^2 (Whittington & Bogacz 2017; Millidge et al. 2022, the
"infinitesimal inference limit"). On random tanh networks of depth 2-4 in float64, settled
with an adaptive solver to |dx/dt| < 1e-14: the relative error must shrink in proportion
to beta (log-log slope 1 +- 0.2), be below 1e-2 at beta = 1e-3, with cosine similarity
above 0.999 there.

Run: `python -m theory.pc_infinitesimal [--fast]` or `dynlearn check pc_infinitesimal`.
"""

from __future__ import annotations

import sys

import diffrax
import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits._layers import SquaredError
from circuits.backprop import BackpropMLP
from circuits.pc import Nudged, PCNetwork, SteadyStateInference

CLAIM = "nudged PC: (1/beta) dF/dtheta -> dL/dtheta (BP) with error O(beta)"
BETAS = np.array([1.0, 0.1, 0.01, 0.001])
SETTLE = SteadyStateInference(rtol=1e-12, atol=1e-14, solver=diffrax.Tsit5(), max_time=1e5)


def measure(depth: int, seed: int, beta: float, width: int = 6, batch: int = 4):
    sizes = [width] * depth + [3]
    key = jax.random.key(seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), (batch, width))
    y = jax.random.normal(jax.random.fold_in(key, 2), (batch, 3))
    bp = BackpropMLP(sizes, key, activation="tanh", loss=SquaredError())
    reference = eqx.filter_grad(lambda m: m.loss(x, y))(bp)
    pc = PCNetwork(sizes, key, activation="tanh", task=Nudged(float(beta)), inference=SETTLE)
    updates, _ = pc.updates(x, y, key)
    ref = (reference.weights, reference.biases)
    got = (updates.weights, updates.biases)
    return (
        float(dynlearn.analysis.relative_error(got, ref)),
        float(dynlearn.analysis.cosine_similarity(got, ref)),
    )


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    depths = [3] if fast else [2, 3, 4]  # fast (pytest): the middle depth only
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        values = np.array([[[measure(d, s, b) for b in BETAS] for s in seeds] for d in depths])
    dims = ("depth", "seed", "beta")
    ds = xr.Dataset(
        {"relative_error": (dims, values[..., 0]), "cosine": (dims, values[..., 1])},
        coords={"depth": depths, "seed": seeds, "beta": BETAS},
    )
    ds = dynlearn.describe(
        ds,
        relative_error=(
            "relative error of the nudged-PC update vs BP's gradient, "
            "|(1/beta) dF/dtheta - dL/dtheta| / |dL/dtheta|",
            "1",
        ),
        cosine=("cosine similarity between (1/beta) dF/dtheta and BP's dL/dtheta", "1"),
        depth=("number of weight layers", "1"),
        beta=("output nudging strength beta", "1"),
    )
    mean_error = ds.relative_error.mean("seed")
    slopes = [np.polyfit(np.log(BETAS), np.log(mean_error.sel(depth=d)), 1)[0] for d in depths]
    for d, s in zip(depths, slopes):
        ds.attrs[f"slope_depth{d}"] = round(float(s), 3)
    at_smallest = ds.sel(beta=BETAS[-1])
    passed = (
        all(abs(s - 1) <= 0.2 for s in slopes)
        and float(at_smallest.relative_error.max()) < 1e-2
        and float(at_smallest.cosine.min()) > 0.999
    )
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    n = ds.sizes["seed"]
    title = f"nudged PC vs backprop (mean over {n} seed{'s' if n > 1 else ''})"
    looks = dynlearn.plot.styles([str(d) for d in ds.depth.values])
    with dynlearn.plot.figure(path, figsize=(5.6, 3.4), title=title) as ax:
        for depth in ds.depth.values:
            ax.loglog(
                ds.beta,
                ds.relative_error.sel(depth=depth).mean("seed"),
                **looks[str(depth)],
                label=f"depth {depth}",
            )
        ax.loglog(ds.beta, ds.beta, ls=":", color="grey", label="slope 1")
        ax.set(
            xlabel=dynlearn.plot.axis_label(ds.beta),
            ylabel="relative error of the update vs BP",
        )
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("pc_infinitesimal", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
