"""Claim: continual EP's summed weight updates approach the one-shot EP update as eta -> 0,
for the one-sided and for the symmetric estimator.

One sample, sigmoid network, float64. One-sided: from the free fixed point u^0, the nudged
phase (beta = 0.1, duration 10) is integrated with the weights moving continuously,
dtheta/dt = -(eta/beta) d/dt[dF/dtheta] (C-EP, Ernoult et al. 2020, in continuous time:
`dynlearn.Learning` of an `EPNetwork` with `t_free = 0`; adaptive Tsit5 so that time
discretisation does not blur the limit), compared with the one-shot update
-(1/beta)[dF/dtheta(u^beta) - dF/dtheta(u^0)] of the same nudged duration with frozen
weights. Symmetric (`EPNetwork(estimator=Symmetric())`, the default of rule `ep-continual`):
the presentation is nudged by -beta for 10 (no learning), then by +beta for 10 with
dtheta/dt = -(eta/(2 beta)) d/dt[dF/dtheta], compared with the one-shot symmetric update
-(1/(2 beta))[dF/dtheta(u^beta) - dF/dtheta(u^-beta)] of the same two legs, frozen. For
each, the relative error of Delta theta / eta must fall in proportion to eta (log-log slope
1 +- 0.2) and be below 5e-3 at eta = 1e-3 (the O(eta) constant is about 2 for these order-1
weights: the limit, not the constant, is the claim). Fast version (pytest): one seed, the
slope from eta = 1e-2 and 1e-3 only (measured 1.007 one-sided, 1.003 symmetric).

Run: `python -m theory.ep_continual [--fast]` or `dynlearn check ep_continual`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.ep import EPDrive, EPNetwork, OneSided, Symmetric

CLAIM = "continual EP (one-sided, symmetric): summed updates -> one-shot EP update, error O(eta)"
ESTIMATORS = {"one_sided": OneSided(), "symmetric": Symmetric()}
ETAS = np.array([1e-1, 1e-2, 1e-3])
T_NUDGE, BETA = 10.0, 0.1


def measure(seed: int, eta: float, estimator: str) -> float:
    sizes = [5, 7, 3]
    key = jax.random.key(seed)
    symmetric = estimator == "symmetric"
    # Continual EP learning from the start of the nudge: t_free = 0 (one-sided), or after
    # the -beta leg (symmetric).
    t_free = T_NUDGE if symmetric else 0.0
    net = EPNetwork(
        sizes, key, activation="sigmoid", beta=BETA, estimator=ESTIMATORS[estimator], eta=eta,
        t_free=t_free,
    )  # fmt: skip
    net = eqx.tree_at(lambda m: m.weights, net, [3.0 * w for w in net.weights])
    # One sample on one stream: x (1, 5), y (1, 3), states (1, n) per layer.
    x = jax.random.uniform(jax.random.fold_in(key, 1), (1, 5))
    y = jax.random.uniform(jax.random.fold_in(key, 2), (1, 3))
    u0 = dynlearn.equilibrate(net, net.init_state(x), EPDrive(x, y, 0.0), rtol=1e-12, atol=1e-13).y
    tol = {"rtol": 1e-11, "atol": 1e-13}

    def frozen(state, beta):  # a nudged leg of T_NUDGE with frozen weights
        return dynlearn.simulate(net, state, 0.0, T_NUDGE, args=EPDrive(x, y, beta), **tol).y1

    def grad_at(state, beta):
        return eqx.filter_grad(lambda m: m.energy(state, EPDrive(x, y, beta)))(net)

    def params(tree):
        return (tree.weights, tree.biases)  # no read-out with squared error

    start = frozen(u0, -BETA) if symmetric else u0  # where the learning leg starts
    u_beta = frozen(start, BETA)
    scale = 0.5 / BETA if symmetric else 1.0 / BETA
    one_shot = jax.tree.map(
        lambda a, b: -(a - b) * scale, params(grad_at(u_beta, BETA)), params(grad_at(start, BETA))
    )
    # Continual: the same legs with the weights learning on the +beta one, as
    # `dynlearn.Learning(net)` driven by a one-sample stream with targets.
    t_pres = t_free + T_NUDGE
    stream = dynlearn.StimulusStream(x[None], t_pres=t_pres, targets=y[None])
    system = dynlearn.Learning(net)
    y0 = {"neurons": u0, "params": system.params()}
    end = dynlearn.simulate(system, y0, 0.0, t_pres, args=stream, **tol).y1
    moved = jax.tree.map(lambda a, b: (a - b) / eta, params(system.learned(end)), params(net))
    return float(dynlearn.analysis.relative_error(moved, one_shot))


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    seeds = [0] if fast else [0, 1, 2]
    etas = ETAS[1:] if fast else ETAS  # fast: the slope from the two smaller rates
    names = list(ESTIMATORS)
    with jax.enable_x64(True):
        errors = np.array(
            [[[measure(s, float(e), name) for e in etas] for s in seeds] for name in names]
        )
    ds = xr.Dataset(
        {"relative_error": (("estimator", "seed", "eta"), errors)},
        coords={"estimator": names, "seed": seeds, "eta": etas},
    )
    ds = dynlearn.describe(
        ds,
        relative_error=(
            "relative error of continual EP's summed update vs the one-shot EP update, "
            "|Delta theta / eta - dtheta_EP| / |dtheta_EP|",
            "1",
        ),
        eta=("learning rate eta of continual EP (per unit time, time in units of tau)", "1"),
        estimator=("EP gradient estimator: one-sided or symmetric nudging", ""),
    )
    passed = True
    for i, name in enumerate(names):
        slope = float(np.polyfit(np.log(etas), np.log(errors[i].mean(0)), 1)[0])
        ds.attrs[f"slope_{name}"] = slope
        print(f"{name}: slope {slope:.3f}, error at eta {etas[-1]:g}: {errors[i, :, -1].max():.2e}")
        passed &= bool(abs(slope - 1) <= 0.2 and errors[i, :, -1].max() < 5e-3)
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    n = ds.sizes["seed"]
    title = f"continual EP vs one-shot EP (mean over {n} seed{'s' if n > 1 else ''})"
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title=title) as ax:
        for i, name in enumerate(ds.estimator.values):
            error = ds.relative_error.sel(estimator=name).mean("seed")
            ax.loglog(ds.eta, error, **dynlearn.plot.style(i), label=str(name).replace("_", "-"))
        first = ds.relative_error.isel(estimator=0).mean("seed")[0]
        ax.loglog(ds.eta, ds.eta * float(first / ds.eta[0]), color="grey", ls=":", label="slope 1")
        ax.set(xlabel="learning rate eta", ylabel="relative error vs one-shot EP update")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("ep_continual", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
