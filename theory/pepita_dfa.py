"""Claim: PEPITA's first-layer update is, to first order in |F e|, a direct-feedback-
alignment update with the adaptive feedback matrix W_1 F.

PEPITA (`circuits.forward_only`, Dellaferrera & Kreiman 2022) modulates the input by the
output error, x~ = x - F e, and updates the first layer by (h_1 - h~_1) x~^T. Expanding
the second pass, h_1 - h~_1 = f'(a_1) * (W_1 F e) + O(|F e|^2), so

    dW_1 = [f'(a_1) * (e (W_1 F)^T)]^T x + O(|F e|^2),

DFA's update with B_1 = W_1 F. On random networks (784-256-10 ReLU / 20-16-16-5 tanh,
batches of 32, float64), with F scaled by s from 1e-1 to 1e-6, the remainder |dW_1 -
dW_1^DFA| must fall as s^2 (log-log slope 2 +- 0.1, fitted for s <= 1e-3) and the
relative remainder be below 1e-4 at the smallest s (the update itself is O(s)). ReLU's
kink: a unit whose drive crosses zero between the two passes adds a term outside the
expansion; at s = 1e-2 the ReLU network's remainder is 440-2400 times its value at 1e-3
(s^2 alone would give 100), hence the fit from 1e-3 down. The tanh network has no kink.

Run: `python -m theory.pepita_dfa [--fast]` or `dynlearn check pepita_dfa`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits._layers import phi_of, slope
from circuits.forward_only import PEPITANetwork

CLAIM = "PEPITA's first-layer update = DFA with feedback W_1 F + O(|F e|^2)"
SCALES = np.array([1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
FIT = SCALES <= 1e-3  # where no ReLU drive crosses zero between the passes (see above)
NETWORKS = {"relu": ([784, 256, 10], "relu"), "tanh": ([20, 16, 16, 5], "tanh")}
BATCH = 32


def measure(name: str, seed: int) -> tuple[list[float], list[float]]:
    sizes, activation = NETWORKS[name]
    key = jax.random.key(seed)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (BATCH, sizes[0]))
    y = jax.nn.one_hot(
        jax.random.randint(jax.random.fold_in(key, 2), (BATCH,), 0, sizes[-1]), sizes[-1]
    )
    base = PEPITANetwork(sizes, key, activation=activation, projection_scale=1.0)
    absolute, relative = [], []
    for s in SCALES:
        net = eqx.tree_at(lambda n: n.projection, base, s * base.projection)
        grads, _ = net.updates(x, y, key)
        e = net.passes(x)[-1] - y
        feedback = net.weights[0] @ net.projection  # (n_1, n_out)
        a_1 = x @ net.weights[0].T
        delta = slope(phi_of(activation), a_1) * (e @ feedback.T)
        dfa = delta.T @ x / BATCH
        gap = float(jnp.linalg.norm(grads.weights[0] - dfa))
        absolute.append(gap)
        relative.append(gap / float(jnp.linalg.norm(dfa)))
    return absolute, relative


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    names = ["tanh"] if fast else list(NETWORKS)
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        values = np.array([[measure(n, s) for s in seeds] for n in names])
    dims = ("network", "seed", "scale")
    ds = xr.Dataset(
        {"remainder": (dims, values[:, :, 0]), "relative_remainder": (dims, values[:, :, 1])},
        coords={"network": names, "seed": seeds, "scale": SCALES},
    )
    ds = dynlearn.describe(
        ds,
        remainder=("|dW_1 (PEPITA) - dW_1 (DFA, B = W_1 F)|", "1"),
        relative_remainder=("remainder / |dW_1 (DFA, B = W_1 F)|", "1"),
        scale=("scale s of the projection F", "1"),
    )
    passed = True
    for name in names:
        measured = dynlearn.analysis.loglog_slope(
            SCALES[FIT], ds.remainder.sel(network=name).mean("seed")[FIT]
        )
        ds.attrs[f"slope_{name}"] = round(measured, 3)
        passed &= abs(measured - 2) <= 0.1
    passed &= float(ds.relative_remainder.sel(scale=SCALES[-1]).max()) < 1e-4
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "PEPITA vs DFA with feedback W_1 F (first layer)"
    looks = dynlearn.plot.styles([str(n) for n in ds.network.values])
    with dynlearn.plot.figure(path, figsize=(5.6, 3.4), title=title) as ax:
        for name in ds.network.values:
            err = ds.remainder.sel(network=name).mean("seed")
            ax.loglog(ds.scale, err, **looks[str(name)], label=f"{name} network")
        ref = ds.remainder.isel(scale=0).mean().item() * (ds.scale / ds.scale[0]) ** 2
        ax.loglog(ds.scale, ref, ls=":", color="grey", label="slope 2")
        ax.set(xlabel=dynlearn.plot.axis_label(ds.scale), ylabel="|PEPITA - DFA| (first layer)")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("pepita_dfa", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
