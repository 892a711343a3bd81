"""Claim: averaged over the noise, PAL's feedback update is c W^T - alpha B (closed form c).

In a linear prospective network the noise xi_l reaches the layer above at once,
r_{l+1} = W_{l+1} (r_l + xi_l) + ..., so the high-pass filtered rate carries W_{l+1} HP(xi_l)
and <xi_l r_HP^T> = <xi HP(xi)> W_{l+1}^T. For Ornstein-Uhlenbeck noise of variance sigma^2
and correlation time tau_xi, a first-order high-pass with tau_HP passes
<xi HP(xi)> = sigma^2 tau_HP / (tau_HP + tau_xi). Hence E[dB_l/dt] = eta (c W_{l+1}^T - alpha
B_l) with c = sigma^2 tau_HP / (tau_HP + tau_xi) — proportional to the transposed forward
weights plus the regulariser.

Setting: a linear 6-8-5 LE network, forward and feedback weights frozen (B is not learned:
only the correlation is measured), 16 parallel streams of constant inputs, PAL noise sigma
0.2, tau_xi = tau_HP = 1 ms, Euler dt = 0.05 ms; the time average of xi r_HP^T over T
(after a 5 ms burn-in). Pass when its cosine with W^T exceeds 0.95 for the longest T and
its scale is within 20% of c (Euler with dt = tau / 20 and finite averaging leave a few %).

Run: `python -m theory.pal_mechanism [--fast]` or `dynlearn check pal_mechanism`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.latent_equilibrium import LENetwork
from circuits.pal import PAL

CLAIM = "<xi r_HP^T> = c W^T with c = sigma^2 tau_HP/(tau_HP + tau_xi) (cos > 0.95, scale +-20%)"
SIGMA, TAU, DT, STREAMS, BURN_IN = 0.2, 1.0, 0.05, 16, 5.0


def correlation(durations: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Time averages of xi r_HP^T (mean over streams) up to each duration; and W^T."""
    key = jax.random.key(0)
    pal = PAL(jax.random.fold_in(key, 1), sigma=SIGMA, tau_xi=TAU, tau_hp=TAU, eta=0.0)
    net = LENetwork(
        [6, 8, 5], key, activation="linear", eta=0.0, beta=0.0, tau_error=DT, feedback=pal
    )
    x = jax.random.uniform(jax.random.fold_in(key, 2), (STREAMS, 6), minval=-1)
    t1 = BURN_IN + max(durations)
    ts = jnp.arange(BURN_IN, t1, DT)

    @eqx.filter_jit
    def run(net):
        system = dynlearn.Learning(net)  # weights as state (eta = 0: they stay put)
        trajectory = dynlearn.simulate(
            system,
            system.init_state(x),
            0.0,
            t1,
            args=x,
            dt=DT,
            ts=ts,
            key=jax.random.fold_in(key, 3),
            check=False,
        )
        ys = trajectory.ys

        def outer(i):
            state = jax.tree.map(lambda a: a[i], ys)
            pathway = state["neurons"]["pathway"]
            # r_HP = r - r_LP = tau_HP d r_LP/dt: read from the filter's own drift.
            drift = net.vector_field(ts[i], state["neurons"], x)
            high_pass = TAU * drift["pathway"]["rate_lp"][0]
            return pathway["xi"][0].T @ high_pass / STREAMS

        return jax.lax.map(outer, jnp.arange(len(ts)))

    products = np.asarray(run(net))
    counts = [round(d / DT) for d in durations]
    means = np.stack([products[:n].mean(axis=0) for n in counts])
    return means, np.asarray(net.weights[1].T)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    durations = [50.0, 200.0] if fast else [50.0, 200.0, 1000.0]
    means, w_t = correlation(durations)
    c = SIGMA**2 * TAU / (TAU + TAU)
    cosines = np.array([float(dynlearn.analysis.cosine_similarity(m, w_t)) for m in means])
    scales = np.array([float(np.sum(m * w_t) / np.sum(w_t * w_t)) for m in means])
    ds = xr.Dataset(
        {"cosine_with_WT": ("duration", cosines), "scale_over_c": ("duration", scales / c)},
        coords={"duration": durations},
    )
    ds = dynlearn.describe(
        ds,
        cosine_with_WT=(
            "cosine similarity between the time average <xi r_HP^T> and W^T",
            "1",
        ),
        scale_over_c=(
            "projection of <xi r_HP^T> on W^T, <xi r_HP^T> : W^T / |W^T|^2, divided by "
            "c = sigma^2 tau_HP / (tau_HP + tau_xi)",
            "1",
        ),
        duration=(f"averaging time T (after a {BURN_IN:g} ms burn-in)", "ms"),
    )
    ds.attrs["c"] = c
    passed = cosines[-1] > 0.95 and abs(scales[-1] / c - 1) < 0.2
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    looks = dynlearn.plot.styles(["cosine", "scale"])
    title = f"PAL: <xi r_HP^T> vs c W^T (linear network, {STREAMS} streams)"
    with dynlearn.plot.figure(path, figsize=(6.0, 3.2), title=title) as ax:
        ax.semilogx(
            ds.duration, ds.cosine_with_WT, **looks["cosine"], label="cos(<xi r_HP^T>, W^T)"
        )
        ax.semilogx(ds.duration, ds.scale_over_c, **looks["scale"], label="scale / c")
        ax.axhline(0.95, color="grey", ls=":", lw=0.8)
        ax.axhline(1.0, color="grey", ls="--", lw=0.8)
        ax.set(
            xlabel=dynlearn.plot.axis_label(ds.duration),
            ylabel="cosine; scale / c",
            ylim=(0, 1.3),
        )
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("pal_mechanism", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
