"""Claim: Z-IL / fixed-prediction PC computes exactly backprop's gradient.

From the feed-forward state, with the output clamped to the target, inference steps of size
1 (unit variances), and layer l's update read at inference step L - l (Song et al. 2020), the
PC updates dF/dtheta equal BP's gradient of 1/2 |y - x_L|^2. Checked in float64 for depths
2-5 and the activations linear, tanh, sigmoid, relu: relative error below 1e-6.

Run: `python -m theory.pc_zil [--fast]` or `dynlearn check pc_zil`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits._layers import SquaredError
from circuits.backprop import BackpropMLP
from circuits.pc import ZIL, PCNetwork

CLAIM = "Z-IL updates equal BP's gradient (relative error < 1e-6, float64)"
ACTIVATIONS = ["linear", "tanh", "sigmoid", "relu"]


def measure(depth: int, activation: str, seed: int = 0) -> float:
    sizes = [7] * depth + [4]
    key = jax.random.key(seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), (5, 7))
    y = jax.random.normal(jax.random.fold_in(key, 2), (5, 4))
    bp = BackpropMLP(sizes, key, activation=activation, loss=SquaredError())
    reference = eqx.filter_grad(lambda m: m.loss(x, y))(bp)
    pc = PCNetwork(sizes, key, activation=activation, rule=ZIL())
    updates, _ = pc.updates(x, y, key)
    return float(
        dynlearn.analysis.relative_error(
            (updates.weights, updates.biases), (reference.weights, reference.biases)
        )
    )


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    depths = [2, 4] if fast else [2, 3, 4, 5]
    activations = ["tanh", "relu"] if fast else ACTIVATIONS
    with jax.enable_x64(True):
        errors = np.array([[measure(d, a) for a in activations] for d in depths])
    ds = xr.Dataset(
        {"relative_error": (("depth", "activation"), errors)},
        coords={"depth": depths, "activation": activations},
    )
    ds = dynlearn.describe(
        ds,
        relative_error=(
            "relative error of the Z-IL update vs BP's gradient, "
            "|dF/dtheta - dL/dtheta| / |dL/dtheta|",
            "1",
        ),
        depth=("number of weight layers", "1"),
    )
    ds.activation.attrs["long_name"] = "activation function"
    return ds, bool(errors.max() < 1e-6)


def plot(ds: xr.Dataset, path) -> None:
    looks = dynlearn.plot.styles(ds.activation.values)
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title="Z-IL vs backprop (float64)") as ax:
        for act in ds.activation.values:
            ax.semilogy(ds.depth, ds.relative_error.sel(activation=act), **looks[act], label=act)
        ax.axhline(1e-6, color="grey", ls=":", label="tolerance")
        ax.set(
            xlabel=dynlearn.plot.axis_label(ds.depth),
            ylabel="relative error of the update vs BP",
        )
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("pc_zil", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
