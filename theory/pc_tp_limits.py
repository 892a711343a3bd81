"""Claim: predictive coding's inference equilibrium interpolates between backprop (weak
output precision) and target propagation (strong output precision).

PC (`circuits.pc.PCNetwork`, output clamped to y) settles to the minimum of
`F = sum_l Pi_l / 2 |x_l - mu_l|^2`, `mu_l = W_l f(x_{l-1}) + b_l`. With geometric
precisions `Pi_l = rho^(l-1)` (variances `rho^(1-l)`), one number moves it between two
known algorithms (Millidge, Song, Salvatori, Lukasiewicz & Bogacz 2023, "A theoretical
framework for inference and learning in predictive coding networks"):
- rho -> 0 (the output's precision weakest): the activities stay at the feed-forward pass
  and the precision-weighted errors `Pi_l eps_l / Pi_L` are backprop's deltas of
  `1/2 |y - y_hat|^2`; the relative error falls as O(rho);
- rho -> infinity (each layer's precision dominating the one below): every hidden layer
  sits at target propagation's target, the exact inverse of the layers above applied to
  the clamped output, `t_{l-1} = f^{-1}(W_l^{-1}(t_l - b_l))`, `t_L = y`; the distance,
  relative to `|t_l - h_l|`, falls as O(1 / rho).
Setting (float64): a linear network 4-6-6-6 and a tanh one of the same sizes (W_1 random,
the square W_2, W_3 with singular values 0.6-1.5, so the inverses exist and W^{-1} is not
W^T), 8 inputs ~ N(0, 0.25), targets y = y_hat + 0.1 u (u random unit vectors); the
equilibrium by Newton's method on the circuit's own energy `PCNetwork.energy`, continued
from one rho to the next, rho from 1e-5 to 1e5. Asserted for both networks: the BP error
<= 1e-3 at rho = 1e-5 with log-log slope >= 0.9 over rho <= 1e-2, and the TP error <= 1e-3
at rho = 1e5 with slope <= -0.9 over rho >= 1e2. Measured: BP slopes 0.99 (linear) and
0.98 (tanh), errors 1.9e-5; TP slopes -1.00 and -0.97, errors 2.3e-5 and 1.1e-4. The
equilibrium's shift `x* - h` turns from BP's direction (cos 1 with -delta, 0.72 / 0.64
with t - h) to the TP target's (the reverse) as rho grows.
Fast version: rho 1e-3, 1e-2, 1, 1e2, 1e3, the bounds at the ends 2e-2 (measured
1.6e-3 and 1.1e-2).

Run: `python -m theory.pc_tp_limits [--fast]` or `dynlearn check pc_tp_limits`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree

import dynlearn
from circuits.pc import PCDrive, PCNetwork

CLAIM = "PC's equilibrium: backprop's deltas as output precision -> 0, TP's targets as it grows"
SIZES, BATCH = [4, 6, 6, 6], 8


def equilibrium(net: PCNetwork, x, y, start: dict, steps: int = 30) -> dict:
    """The free state minimising F: Newton's method on the flattened state from `start`,
    compiled as one loop."""
    drive = PCDrive(x, y)
    flat, unravel = ravel_pytree(start)

    def energy(v):
        return net.energy(unravel(v), drive)

    def newton(_, v):
        return v - jnp.linalg.solve(jax.hessian(energy)(v), jax.grad(energy)(v))

    return unravel(jax.jit(lambda v: jax.lax.fori_loop(0, steps, newton, v))(flat))


def network(activation: str, variances=None) -> PCNetwork:
    """The check's network: W_1 random, the square W_2..W_L with singular values 0.6-1.5
    (well conditioned, so the exact inverses exist and are tame), biases std 0.1."""
    k_net, k_w, k_b = jax.random.split(jax.random.key(0), 3)
    net = PCNetwork(SIZES, k_net, activation=activation, variances=variances)
    orthogonal = jax.nn.initializers.orthogonal()
    gains = jnp.linspace(0.6, 1.5, SIZES[-1])  # singular values: W^{-1} is not W^T
    square = [
        orthogonal(k1, (n, n)) * gains @ orthogonal(k2, (n, n))
        for (k1, k2), n in zip(jax.random.split(k_w, (2, 2)), SIZES[2:])
    ]
    biases = [0.1 * jax.random.normal(k, (n,)) for k, n in zip(jax.random.split(k_b, 3), SIZES[1:])]
    return eqx.tree_at(lambda m: (m.weights, m.biases), net, (net.weights[:1] + square, biases))


def measure(activation: str, rhos) -> dict[str, np.ndarray]:
    k_x, k_u = jax.random.split(jax.random.key(1))
    base = network(activation)
    x = 0.5 * jax.random.normal(k_x, (BATCH, SIZES[0]))
    h = base.feedforward(x)
    u = jax.random.normal(k_u, h[-1].shape)
    y = h[-1] + 0.1 * u / jnp.linalg.norm(u, axis=1, keepdims=True)
    n_hidden = len(SIZES) - 2
    # backprop's -dl/dmu_l for l = 1/2 |y - y_hat|^2, with PC's conventions
    minus_delta = [y - h[-1]]
    for i in range(n_hidden, 0, -1):
        slope = jax.jvp(base.phi, (h[i - 1],), (jnp.ones_like(h[i - 1]),))[1]
        minus_delta.insert(0, slope * (minus_delta[0] @ base.weights[i]))
    # target propagation through the exact inverses of the layers above
    inverse = jnp.arctanh if activation == "tanh" else (lambda a: a)
    targets = [y]
    for i in range(n_hidden, 0, -1):
        w, b = base.weights[i], base.biases[i]
        targets.insert(0, inverse(jnp.linalg.solve(w, (targets[0] - b).T).T))

    def rel(a, b):
        return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))

    cos = dynlearn.analysis.cosine_similarity

    out = {k: [] for k in ("bp_error", "tp_error", "cos_bp", "cos_tp")}
    state = base.init_state(x)  # continuation: each rho starts from the previous equilibrium
    for rho in rhos:
        variances = [float(rho) ** -i for i in range(len(SIZES) - 1)]
        net = network(activation, variances)
        state = equilibrium(net, x, y, state)
        xs = [state[name]["x"] for name in net.layer_names[:-1]]
        rates = [x] + [net.phi(v) for v in xs]
        mus = [r @ w.T + b for r, w, b in zip(rates, net.weights, net.biases)]
        weighted = [(v - mu) * variances[-1] / s for v, mu, s in zip(xs, mus, variances)]
        shifts = [v - hv for v, hv in zip(xs, h)]
        out["bp_error"].append(max(rel(weighted[i], minus_delta[i]) for i in range(n_hidden)))
        out["tp_error"].append(max(rel(xs[i] - h[i], targets[i] - h[i]) for i in range(n_hidden)))
        out["cos_bp"].append(np.mean([float(cos(s, d)) for s, d in zip(shifts, minus_delta)]))
        out["cos_tp"].append(
            np.mean([float(cos(s, t - hv)) for s, t, hv in zip(shifts, targets, h)])
        )
    return {k: np.array(v) for k, v in out.items()}


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    top = 3 if fast else 5
    rhos = np.logspace(-top, top, 4 * 2 * top + 1)
    if fast:  # two points for each slope and the middle
        rhos = np.array([1e-3, 1e-2, 1.0, 1e2, 1e3])
    activations = ("linear", "tanh")
    with jax.enable_x64(True):
        results = [measure(a, rhos) for a in activations]
    ds = xr.Dataset(
        {k: (("network", "rho"), np.array([r[k] for r in results])) for k in results[0]},
        coords={"network": list(activations), "rho": rhos},
    )
    ds = dynlearn.describe(
        ds,
        bp_error=("max over hidden layers of |Pi_l eps_l / Pi_L + delta_l| / |delta_l|", "1"),
        tp_error=("max over hidden layers of |x_l* - t_l| / |t_l - h_l|", "1"),
        cos_bp=("cos(x* - h, -delta), mean over hidden layers", "1"),
        cos_tp=("cos(x* - h, t - h), mean over hidden layers", "1"),
        rho=("precision ratio between successive layers, Pi_l = rho^(l-1)", "1"),
        network=("activation of the hidden layers", ""),
    )
    weak, strong = rhos <= 1e-2, rhos >= 1e2
    bound = 2e-2 if fast else 1e-3  # fast: the ends are rho = 1e-3 and 1e3
    passed = True
    for network in activations:
        r = ds.sel(network=network)
        s_bp, s_tp = (
            dynlearn.analysis.loglog_slope(rhos[weak], r.bp_error[weak]),
            dynlearn.analysis.loglog_slope(rhos[strong], r.tp_error[strong]),
        )
        ds.attrs[f"slope_bp_{network}"], ds.attrs[f"slope_tp_{network}"] = s_bp, s_tp
        print(f"{network}: BP error slope {s_bp:.2f}, TP error slope {s_tp:.2f}")
        passed &= bool(
            r.bp_error[0] <= bound and s_bp >= 0.9 and r.tp_error[-1] <= bound and s_tp <= -0.9
        )
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    with dynlearn.plot.figure(path, figsize=(5.8, 3.6), title=ds.attrs["claim"]) as ax:
        i = 0
        for network in ds.network.values:
            for name, label in (("bp_error", "to BP"), ("tp_error", "to TP")):
                v = np.maximum(ds[name].sel(network=network).values, 1e-17)
                ax.loglog(ds.rho, v, label=f"{network}: {label}", **dynlearn.plot.style(i))
                i += 1
        ax.set(
            xlabel="precision ratio rho (output weak <- -> output strong)",
            ylabel="relative distance",
        )
        ax.legend(fontsize=7)


main = dynlearn.validation.script_main("pc_tp_limits", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
