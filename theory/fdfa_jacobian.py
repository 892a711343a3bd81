"""Claim: FDFA's feedback matrices converge to the expected output Jacobians, and its update
varies less than forward gradients do.

FDFA (`circuits.forward_only.FDFANetwork`, Bacho & Chu 2022) injects random tangents u_l at
the hidden layers during the forward pass and moves each feedback matrix towards
mean(d u_l^T), d = sum_k J_k u_k the output's directional derivative; in expectation that
is E[J_l], the Jacobian of the output with respect to layer l, averaged over the data.
On a random tanh network 10-16-16-4 (float64, a fixed batch of 64; the weights held fixed):
- with the running mean (rate 1/t) the relative error |B_l - E[J_l]| / |E[J_l]| falls as
  t^(-1/2) (log-log slope -0.5 +- 0.1 over 10-10,000 steps; 10-1,000 with `--fast`) and
  the cosine exceeds 0.99 at the last, in both hidden layers;
- the first layer's update, over 100 independent draws, has a smaller relative variance
  E|g - mean g|^2 / |mean g|^2 with FDFA (B from 200 steps) than with either forward
  gradient: weight-perturbed (Baydin et al. 2022: (grad L . v) v, v over every parameter)
  and activity-perturbed (Ren et al. 2022: the tangent at the layer's activity).
Reported: each estimator's cosine with BP's gradient (FDFA is biased: E[J] replaces the
per-sample Jacobian; the forward gradients are unbiased).

Run: `python -m theory.fdfa_jacobian [--fast]` or `dynlearn check fdfa_jacobian`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

import dynlearn
from circuits._layers import CrossEntropy, phi_of, slope
from circuits.forward_only import FDFANetwork

CLAIM = "FDFA: B_l -> E[J_l] as t^-1/2; its update varies less than forward gradients"
SIZES = [10, 16, 16, 4]
BATCH, DRAWS, WARM = 64, 100, 200
ESTIMATORS = ("fdfa", "forward_gradient_weights", "forward_gradient_activity")


def setup(seed: int):
    key = jax.random.key(seed)
    net = FDFANetwork(SIZES, key)
    x = jax.random.normal(jax.random.fold_in(key, 1), (BATCH, SIZES[0]))
    y = jax.nn.one_hot(
        jax.random.randint(jax.random.fold_in(key, 2), (BATCH,), 0, SIZES[-1]), SIZES[-1]
    )
    return net, x, y


def expected_jacobians(net: FDFANetwork, x) -> list[Array]:
    """mean over the batch of d out / d h_l, exactly (forward mode, per sample)."""
    zeros = [jnp.zeros(b.shape[1]) for b in net.feedback]

    def per_sample(xi):
        return jax.jacfwd(lambda offs: net.forward(xi[None], [o[None] for o in offs])[0][-1][0])(
            zeros
        )

    return [jnp.mean(j, axis=0) for j in jax.vmap(per_sample)(x)]


@eqx.filter_jit
def running_mean(net: FDFANetwork, x, key, steps):
    """B after `steps` updates with rate 1/t (the running mean of mean(d u^T))."""

    def step(t, feedback):
        d, us = eqx.tree_at(lambda n: n.feedback, net, feedback).directional_derivatives(
            x, jax.random.fold_in(key, t)
        )
        sample = [d.T @ u / (x.shape[0] * net.tangent_std**2) for u in us]
        return [b + (s - b) / (t + 1) for b, s in zip(feedback, sample)]

    return jax.lax.fori_loop(0, steps, step, net.feedback)


def first_layer(net, x, y, feedback):
    """FDFA's first-layer weight update with feedback matrices `feedback`."""
    drives, _ = net.forward(x)
    e = jax.nn.softmax(drives[-1], axis=-1) - y
    delta = (e @ feedback[0]) * slope(phi_of(net.activation), drives[0])
    return delta.T @ x / x.shape[0]


def loss(net, x, y):
    return CrossEntropy()(net.forward(x)[0][-1], y)


def estimates(net, x, y, key) -> dict[str, np.ndarray]:
    """DRAWS independent first-layer updates per estimator, flattened."""
    params, unravel = ravel_pytree(eqx.filter(net, eqx.is_inexact_array))
    static = eqx.filter(net, eqx.is_inexact_array, inverse=True)

    def fdfa_all(keys):  # DRAWS feedback estimates, each the mean of WARM samples
        def sample(k):
            d, us = net.directional_derivatives(x, k)
            return [d.T @ u / (BATCH * net.tangent_std**2) for u in us]

        samples = jax.vmap(sample)(keys)
        feedback = [m.reshape(DRAWS, WARM, *m.shape[1:]).mean(axis=1) for m in samples]
        return jax.vmap(lambda *fb: first_layer(net, x, y, list(fb)).ravel())(*feedback)

    def weights(k):
        v = jax.random.normal(k, params.shape)
        _, dd = jax.jvp(lambda p: loss(eqx.combine(unravel(p), static), x, y), (params,), (v,))
        return (dd * unravel(v).weights[0]).ravel()

    def activity(k):
        u = jax.random.normal(k, (BATCH, SIZES[1]))
        drives, _ = net.forward(x)
        rest = [jnp.zeros((BATCH, n)) for n in SIZES[2:-1]]

        def per_sample_losses(offset):  # sample i's loss depends on row i of the offset only
            out = net.forward(x, [offset, *rest])[0][-1]
            return -jnp.sum(y * jax.nn.log_softmax(out, axis=-1), axis=-1)

        _, dd = jax.jvp(per_sample_losses, (jnp.zeros_like(u),), (u,))
        delta = (dd[:, None] * u) * slope(phi_of(net.activation), drives[0])
        return (delta.T @ x / BATCH).ravel()

    keys = jax.random.split(key, DRAWS)
    out = {"fdfa": np.asarray(jax.jit(fdfa_all)(jax.random.split(key, DRAWS * WARM)))}
    for name, fn in zip(ESTIMATORS[1:], (weights, activity)):
        out[name] = np.asarray(jax.jit(jax.vmap(fn))(keys))
    return out


def measure(seed: int, steps: list[int]) -> dict:
    net, x, y = setup(seed)
    truth = expected_jacobians(net, x)
    key = jax.random.key(1000 + seed)
    errors, cosines = [], []
    for t in steps:
        feedback = running_mean(net, x, key, jnp.asarray(t))  # one compilation for every t
        errors.append(
            [float(jnp.linalg.norm(b - j) / jnp.linalg.norm(j)) for b, j in zip(feedback, truth)]
        )
        cosines.append(
            [float(dynlearn.analysis.cosine_similarity(b, j)) for b, j in zip(feedback, truth)]
        )
    draws = estimates(net, x, y, jax.random.fold_in(key, 1))
    bp = eqx.filter_grad(loss)(net, x, y).weights[0].ravel()
    variance, cos_bp = [], []
    for name in ESTIMATORS:
        mean = draws[name].mean(axis=0)
        variance.append(float(np.mean(np.sum((draws[name] - mean) ** 2, axis=1)) / np.sum(mean**2)))
        cos_bp.append(float(mean @ bp / (np.linalg.norm(mean) * np.linalg.norm(bp))))
    return {"error": errors, "cosine": cosines, "variance": variance, "cos_bp": cos_bp}


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    steps = [10, 100, 1000] if fast else [10, 100, 1000, 10_000]
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        rows = [measure(s, steps) for s in seeds]
    layers = [f"hidden{i}" for i in range(1, len(SIZES) - 1)]
    ds = xr.Dataset(
        {
            "feedback_error": (("seed", "steps", "layer"), np.array([r["error"] for r in rows])),
            "feedback_cosine": (("seed", "steps", "layer"), np.array([r["cosine"] for r in rows])),
            "relative_variance": (("seed", "estimator"), np.array([r["variance"] for r in rows])),
            "cosine_with_bp": (("seed", "estimator"), np.array([r["cos_bp"] for r in rows])),
        },
        coords={"seed": seeds, "steps": steps, "layer": layers, "estimator": list(ESTIMATORS)},
    )
    ds = dynlearn.describe(
        ds,
        feedback_error=("|B_l - E[J_l]| / |E[J_l]|", "1"),
        feedback_cosine=("cosine of B_l with E[J_l]", "1"),
        relative_variance=("E|g - mean g|^2 / |mean g|^2 of the first layer's update", "1"),
        cosine_with_bp=("cosine of the mean update with BP's gradient", "1"),
        steps=("feedback updates (running mean)", "1"),
    )
    passed = float(ds.feedback_cosine.sel(steps=steps[-1]).min()) > 0.99
    for layer in layers:
        measured = dynlearn.analysis.loglog_slope(
            steps, ds.feedback_error.sel(layer=layer).mean("seed")
        )
        ds.attrs[f"slope_{layer}"] = round(measured, 3)
        passed &= abs(measured + 0.5) <= 0.1
    variance = ds.relative_variance.mean("seed")
    passed &= bool(variance.sel(estimator="fdfa") < variance.drop_sel(estimator="fdfa").min())
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "FDFA: feedback -> expected Jacobian (running mean)"
    looks = dynlearn.plot.styles([str(name) for name in ds.layer.values])
    with dynlearn.plot.figure(path, figsize=(5.6, 3.4), title=title) as ax:
        for layer in ds.layer.values:
            err = ds.feedback_error.sel(layer=layer).mean("seed")
            ax.loglog(ds.steps, err, **looks[str(layer)], label=str(layer))
        ref = ds.feedback_error.isel(steps=0).mean().item() * (ds.steps / ds.steps[0]) ** -0.5
        ax.loglog(ds.steps, ref, ls=":", color="grey", label="slope -1/2")
        ax.set(xlabel=dynlearn.plot.axis_label(ds.steps), ylabel="|B - E[J]| / |E[J]|")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("fdfa_jacobian", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
