"""Claim: continual EP's summed weight updates approach the one-shot EP update as eta -> 0.

One sample, sigmoid network, float64. From the free fixed point u^0, the nudged phase
(beta = 0.1, duration 10) is integrated with the weights moving continuously,
dtheta/dt = -(eta/beta) d/dt[dF/dtheta] (C-EP, Ernoult et al. 2020, in continuous time:
`dynlearn.Learning` of an `EPNetwork` with `t_free = 0`; adaptive Tsit5 so that time
discretisation does not blur the limit). The total change Delta theta / eta is compared
with the one-shot update -(1/beta)[dF/dtheta(u^beta) - dF/dtheta(u^0)] of the same nudged
duration with frozen weights: the relative error must fall in proportion to eta (log-log
slope 1 +- 0.2) and be below 5e-3 at eta = 1e-3 (the O(eta) constant is about 2 for these
order-1 weights: the limit, not the constant, is the claim).

Run: `python -m theory.ep_continual [--fast]` or `dynlearn check ep_continual`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.ep import EPDrive, EPNetwork, OneSided

CLAIM = "continual EP: summed updates -> one-shot EP update with error O(eta)"
ETAS = np.array([1e-1, 1e-2, 1e-3])
T_NUDGE, BETA = 10.0, 0.1


def measure(seed: int, eta: float) -> float:
    sizes = [5, 7, 3]
    key = jax.random.key(seed)
    # Continual EP with t_free = 0: nudged (and learning) from the start of the presentation.
    net = EPNetwork(
        sizes, key, activation="sigmoid", beta=BETA, estimator=OneSided(), eta=eta, t_free=0.0
    )
    net = eqx.tree_at(lambda m: m.weights, net, [3.0 * w for w in net.weights])
    # One sample on one stream: x (1, 5), y (1, 3), states (1, n) per layer.
    x = jax.random.uniform(jax.random.fold_in(key, 1), (1, 5))
    y = jax.random.uniform(jax.random.fold_in(key, 2), (1, 3))
    u0 = dynlearn.equilibrate(net, net.init_state(x), EPDrive(x, y, 0.0), rtol=1e-12, atol=1e-13).y
    tol = {"rtol": 1e-11, "atol": 1e-13}
    # One-shot: the nudged phase with frozen weights for the same duration.
    u_beta = dynlearn.simulate(net, u0, 0.0, T_NUDGE, args=EPDrive(x, y, BETA), **tol).y1

    def grad_at(state, beta):
        return eqx.filter_grad(lambda m: m.energy(state, EPDrive(x, y, beta)))(net)

    def params(tree):
        return (tree.weights, tree.biases)  # no read-out with squared error

    one_shot = jax.tree.map(
        lambda a, b: -(a - b) / BETA, params(grad_at(u_beta, BETA)), params(grad_at(u0, BETA))
    )
    # Continual: the same phase with the weights learning throughout (t_free = 0), as
    # `dynlearn.Learning(net)` driven by a one-sample stream with targets.
    stream = dynlearn.StimulusStream(x[None], t_pres=T_NUDGE, targets=y[None])
    system = dynlearn.Learning(net)
    y0 = {"neurons": u0, "params": system.params()}
    end = dynlearn.simulate(system, y0, 0.0, T_NUDGE, args=stream, **tol).y1
    moved = jax.tree.map(lambda a, b: (a - b) / eta, params(system.learned(end)), params(net))
    return float(dynlearn.analysis.relative_error(moved, one_shot))


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        errors = np.array([[measure(s, float(e)) for e in ETAS] for s in seeds])
    ds = xr.Dataset(
        {"relative_error": (("seed", "eta"), errors)}, coords={"seed": seeds, "eta": ETAS}
    )
    ds = dynlearn.describe(
        ds,
        relative_error=(
            "relative error of continual EP's summed update vs the one-shot EP update, "
            "|Delta theta / eta - dtheta_EP| / |dtheta_EP|",
            "1",
        ),
        eta=("learning rate eta of continual EP (per unit time, time in units of tau)", "1"),
    )
    slope = float(np.polyfit(np.log(ETAS), np.log(errors.mean(0)), 1)[0])
    ds.attrs["slope"] = slope
    print(f"slope {slope:.3f}")
    return ds, bool(abs(slope - 1) <= 0.2 and errors[:, -1].max() < 5e-3)


def plot(ds: xr.Dataset, path) -> None:
    n = ds.sizes["seed"]
    title = f"continual EP vs one-shot EP (mean over {n} seed{'s' if n > 1 else ''})"
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title=title) as ax:
        ax.loglog(
            ds.eta, ds.relative_error.mean("seed"), **dynlearn.plot.style(0), label="measured"
        )
        ax.loglog(
            ds.eta,
            ds.eta * float(ds.relative_error.mean("seed")[0] / ds.eta[0]),
            color="grey",
            ls=":",
            label="slope 1",
        )
        ax.set(xlabel="learning rate eta", ylabel="relative error vs one-shot EP update")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("ep_continual", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
