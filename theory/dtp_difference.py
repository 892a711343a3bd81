"""Claim: DTP's difference correction propagates targets exactly through an exact inverse,
and cancels an approximate inverse's reconstruction error to first order.

Difference target propagation (Lee et al. 2015; `circuits.target_prop`) sends a target down
as `t_{l-1} = h_{l-1} + g_l(t_l) - g_l(h_l)`; plain target propagation as `t_{l-1} =
g_l(t_l)`. A propagated target is exact when the layers above map it back onto the top
target: `E = |f_L(...f_2(t_1)) - t_L|` (batch mean). Setting (float64): 4 square tanh layers
of 8 units (random orthogonal weights, biases std 0.1), 16 inputs ~ N(0, 0.25), top
targets `t_L = h_L + delta u` with random unit directions u, delta from 1e-1 to 1e-5.
- exact inverse `g_l(t) = W_l^{-1}(artanh t - b_l)`: DTP's E <= 1e-12 at every delta;
- approximate inverse `g_l = f_l^{-1} + r_l`, a smooth residual `r_l(t) = c_l + 0.1
  tanh(A_l t)` (what a trained decoder leaves): DTP's E falls with delta with log-log slope
  >= 1 (the correction cancels `r_l(h_l)`, leaving `(J_f J_g - I) delta`), while plain TP's
  E stays at the reconstruction error (slope ~0, reported);
- fast version: the same, delta 1e-1 .. 1e-3.

Run: `python -m theory.dtp_difference [--fast]` or `dynlearn check dtp_difference`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn

CLAIM = "DTP's difference correction propagates targets exactly (exact inverse), slope >= 1"
N, DEPTH, BATCH = 8, 4, 16


def layers(key):
    k_w, k_b, k_c, k_a = jax.random.split(key, 4)
    orthogonal = jax.nn.initializers.orthogonal()
    ws = [orthogonal(k, (N, N)) for k in jax.random.split(k_w, DEPTH)]
    bs = [0.1 * jax.random.normal(k, (N,)) for k in jax.random.split(k_b, DEPTH)]
    cs = [0.05 * jax.random.normal(k, (N,)) for k in jax.random.split(k_c, DEPTH)]
    As = [jax.random.normal(k, (N, N)) / N**0.5 for k in jax.random.split(k_a, DEPTH)]
    return ws, bs, cs, As


def errors(deltas, approximate: bool) -> tuple[np.ndarray, np.ndarray]:
    """`(E_DTP, E_TP)` per delta."""
    ws, bs, cs, As = layers(jax.random.key(0))
    k_x, k_u = jax.random.split(jax.random.key(1))

    def f(layer, h):  # layer = 1..DEPTH
        return jnp.tanh(h @ ws[layer - 1].T + bs[layer - 1])

    def g(layer, t):  # from layer to layer - 1
        inverse = jnp.linalg.solve(ws[layer - 1], (jnp.arctanh(t) - bs[layer - 1]).T).T
        residual = cs[layer - 1] + 0.05 * jnp.tanh(t @ As[layer - 1].T)
        return inverse + residual if approximate else inverse

    h = [0.5 * jax.random.normal(k_x, (BATCH, N))]
    for layer in range(1, DEPTH + 1):
        h.append(f(layer, h[-1]))
    u = jax.random.normal(k_u, (BATCH, N))
    u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    e_dtp, e_tp = [], []
    for delta in deltas:
        top = h[DEPTH] + delta * u
        t_dtp, t_tp = top, top
        for layer in range(DEPTH, 1, -1):
            t_dtp = h[layer - 1] + g(layer, t_dtp) - g(layer, h[layer])
            t_tp = g(layer, t_tp)
        for name, t, out in (("dtp", t_dtp, e_dtp), ("tp", t_tp, e_tp)):
            for layer in range(2, DEPTH + 1):
                t = f(layer, t)
            out.append(float(jnp.mean(jnp.linalg.norm(t - top, axis=1))))
    return np.array(e_dtp), np.array(e_tp)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    deltas = np.logspace(-1, -3 if fast else -5, 5 if fast else 9)
    with jax.enable_x64(True):
        exact = errors(deltas, approximate=False)
        approx = errors(deltas, approximate=True)
    ds = xr.Dataset(
        {"error": (("inverse", "rule", "delta"), np.array([exact, approx]))},
        coords={"inverse": ["exact", "approximate"], "rule": ["DTP", "TP"], "delta": deltas},
    )
    ds = dynlearn.describe(
        ds,
        error=("|f_L(..f_2(t_1)) - t_L|, batch mean", "1"),
        delta=("size of the top target's step |t_L - h_L|", "1"),
        inverse=("feedback map: exact inverse or with a smooth residual", ""),
        rule=("difference target propagation or plain target propagation", ""),
    )
    ds.attrs["slope_dtp_approximate"] = dynlearn.analysis.loglog_slope(deltas, approx[0])
    ds.attrs["slope_tp_approximate"] = dynlearn.analysis.loglog_slope(deltas, approx[1])
    ds.attrs["max_error_dtp_exact"] = float(exact[0].max())
    print(
        f"slopes with the approximate inverse: DTP {ds.attrs['slope_dtp_approximate']:.2f}, "
        f"TP {ds.attrs['slope_tp_approximate']:.2f}; exact inverse, DTP's largest error "
        f"{ds.attrs['max_error_dtp_exact']:.1e}"
    )
    passed = bool(
        ds.attrs["max_error_dtp_exact"] <= 1e-12 and ds.attrs["slope_dtp_approximate"] >= 1.0
    )
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    with dynlearn.plot.figure(path, figsize=(5.4, 3.6), title=ds.attrs["claim"]) as ax:
        i = 0
        for inverse in ds.inverse.values:
            for rule in ds.rule.values:
                v = np.maximum(ds.error.sel(inverse=inverse, rule=rule).values, 1e-17)
                ax.loglog(ds.delta, v, label=f"{rule}, {inverse} inverse", **dynlearn.plot.style(i))
                i += 1
        ax.set(xlabel="top target step delta", ylabel="propagated target error")
        ax.legend(fontsize=8)


main = dynlearn.validation.script_main("dtp_difference", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
