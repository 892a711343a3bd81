"""Claim: the always-on delta rule performs gradient descent on the squared error.

For `circuits.delta.DeltaRule` learning in `dynlearn.Learning` (weights as state) on one
presentation of length T with `u` starting at its steady state, `Delta W / (eta T)` equals
`-dL/dW` (L = 1/2 |y - W x - b|^2) up to O(eta T |x|^2) (the weights move during the
presentation). Measured in float64 on random problems: the relative error must fall in
proportion to eta T (log-log slope 1 +- 0.2) and be below 1e-2 at eta T = 1e-3; cosine
similarity above 0.9999 there.

Run: `python -m theory.delta_rule [--fast]` or `dynlearn check delta_rule`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.delta import DeltaRule

CLAIM = "delta rule: Delta W / (eta T) -> -dL/dW with error O(eta T)"


def _one(eta_t: float, seed: int):
    key_x, key_y, key_w = jax.random.split(jax.random.key(seed), 3)
    n_in, n_out, t_pres = 6, 3, 1.0
    net = DeltaRule(n_in, n_out, key_w, tau=0.01, eta=eta_t / t_pres)
    net = jax.tree.map(lambda w: w * 30.0, net)  # O(1) weights, not the small init
    x = jax.random.uniform(key_x, (1, n_in))
    y = jax.random.normal(key_y, (1, n_out))
    # One sample on one stream: samples (1, streams=1, n_in).
    stream = dynlearn.StimulusStream(x[None], t_pres=t_pres, targets=y[None])
    system = dynlearn.Learning(net)
    y0 = system.init_state(x)
    y0["neurons"]["output"]["u"] = net.predict(x)  # start at the neuron's steady state
    end = dynlearn.simulate(system, y0, 0.0, t_pres, args=stream, rtol=1e-10, atol=1e-12).y1
    delta = (system.learned(end).weights - net.weights) / (net.eta * t_pres)
    grad = jax.grad(lambda w: 0.5 * jnp.sum((y[0] - w @ x[0] - net.bias) ** 2))(net.weights)
    return (
        float(dynlearn.analysis.relative_error(delta, -grad)),
        float(dynlearn.analysis.cosine_similarity(delta, -grad)),
    )


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    with jax.enable_x64(True):
        seeds = range(2 if fast else 5)
        eta_ts = np.array([1e-1, 1e-2, 1e-3])
        results = np.array([[_one(float(e), s) for s in seeds] for e in eta_ts])
    rel, cos = results[..., 0], results[..., 1]
    ds = xr.Dataset(
        {"relative_error": (("eta_T", "seed"), rel), "cosine": (("eta_T", "seed"), cos)},
        coords={"eta_T": eta_ts, "seed": np.arange(len(seeds))},
    )
    ds = dynlearn.describe(
        ds,
        relative_error=(
            "relative error of the delta rule's update vs the gradient, "
            "|Delta W / (eta T) + dL/dW| / |dL/dW|",
            "1",
        ),
        cosine=("cosine similarity between Delta W / (eta T) and -dL/dW", "1"),
        eta_T=("learning rate times presentation length, eta T", "1"),
    )
    slope = np.polyfit(np.log(eta_ts), np.log(rel.mean(axis=1)), 1)[0]
    ds.attrs["slope"] = float(slope)
    passed = bool(abs(slope - 1) <= 0.2 and rel[-1].max() < 1e-2 and cos[-1].min() > 0.9999)
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = f"delta rule vs gradient descent (mean over {ds.sizes['seed']} seeds)"
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title=title) as ax:
        ax.loglog(
            ds.eta_T,
            ds.relative_error.mean("seed"),
            **dynlearn.plot.style(0),
            label="measured",
        )
        ax.loglog(
            ds.eta_T,
            ds.eta_T * float(ds.relative_error[0].mean() / ds.eta_T[0]),
            color="grey",
            ls=":",
            label="slope 1",
        )
        ax.set(
            xlabel=dynlearn.plot.axis_label(ds.eta_T),
            ylabel="relative error of Delta W / (eta T) vs -dL/dW",
        )
        ax.legend()


main = dynlearn.validation.script_main("delta_rule", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
