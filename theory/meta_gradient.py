"""Claim: the meta-gradient through simulated learning dynamics is exact — jax.grad of the
loss after a plasticity episode (`dynlearn.simulate`) equals finite differences.

Meta-learned plasticity (`circuits.meta_plasticity`, Shervani-Tabar & Rosenbaum 2023)
tunes the coefficients theta of a plasticity rule and its learning rate by descending the
query loss *after* an episode in which the weights evolve by that rule, sample by sample:
L(theta) = CE(query | W(T; theta)), dW/dt = rule(W, x(t), y(t); theta). `jax.grad`
differentiates through the whole solve (diffrax's Euler steps, one per sample). Checked
in float64 on random networks (12-8-6-3 and 20-10-4, episodes of 10-15 samples, theta drawn
with std 0.01 — larger Hebbian coefficients can make W run away within the episode — and
lr 0.2), against central differences with step 1e-6: the relative
difference of every component (theta_1..5, log_lr) must be below 1e-5 of the gradient's
norm. The fast version checks one network.

Run: `python -m theory.meta_gradient [--fast]` or `dynlearn check meta_gradient`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.meta_plasticity import TERMS, PlasticityRule, init_weights, meta_loss

CLAIM = "jax.grad through a simulated plasticity episode = finite differences (float64)"
NETWORKS = {"12-8-6-3": ([12, 8, 6, 3], 10), "20-10-4": ([20, 10, 4], 15)}
STEP = 1e-6
TOLERANCE = 1e-5
PARAMETERS = [*TERMS, "log_lr"]


def measure(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(autodiff gradient, central differences) over theta_1..5 and log_lr."""
    sizes, n = NETWORKS[name]
    keys = jax.random.split(jax.random.key(seed), 6)
    classes = sizes[-1]
    support = (
        jax.random.uniform(keys[0], (n, sizes[0])),
        jax.nn.one_hot(jax.random.randint(keys[1], (n,), 0, classes), classes),
    )
    query = (
        jax.random.uniform(keys[2], (n, sizes[0])),
        jax.nn.one_hot(jax.random.randint(keys[3], (n,), 0, classes), classes),
    )
    weights = init_weights(sizes, keys[4], jnp.float64)
    theta = 0.01 * jax.random.normal(keys[5], (len(TERMS),))  # Hebbian terms can run away
    rule = PlasticityRule(sizes, jax.random.key(seed + 100), theta=theta, log_lr=np.log(0.2))

    def loss(params):
        r = eqx.tree_at(lambda r: (r.theta, r.log_lr), rule, (params[:-1], params[-1]))
        return meta_loss(r, weights, support, query)[0]

    params = jnp.concatenate([rule.theta, rule.log_lr[None]])
    gradient = np.asarray(jax.jit(jax.grad(loss))(params))
    loss = jax.jit(loss)
    eye = np.eye(len(params))
    numeric = np.array(
        [float(loss(params + STEP * e) - loss(params - STEP * e)) / (2 * STEP) for e in eye]
    )
    return gradient, numeric


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    names = list(NETWORKS)[:1] if fast else list(NETWORKS)
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        values = np.array([[measure(n, s) for s in seeds] for n in names])
    dims = ("network", "seed", "parameter")
    ds = xr.Dataset(
        {"autodiff": (dims, values[:, :, 0]), "finite_difference": (dims, values[:, :, 1])},
        coords={"network": names, "seed": seeds, "parameter": PARAMETERS},
    )
    norm = np.linalg.norm(ds.autodiff.values, axis=-1, keepdims=True)
    ds["relative_difference"] = (dims, np.abs(values[:, :, 0] - values[:, :, 1]) / norm)
    ds = dynlearn.describe(
        ds,
        autodiff=("jax.grad of the query loss after the episode", "1"),
        finite_difference=(f"central difference of the query loss, step {STEP}", "1"),
        relative_difference=("|autodiff - finite difference| / |autodiff gradient|", "1"),
    )
    worst = float(ds.relative_difference.max())
    ds.attrs["worst_relative_difference"] = worst
    return ds, bool(worst < TOLERANCE)


def plot(ds: xr.Dataset, path) -> None:
    title = "meta-gradient through the plasticity episode vs finite differences"
    looks = dynlearn.plot.styles([str(n) for n in ds.network.values])
    with dynlearn.plot.figure(path, figsize=(6.4, 3.4), title=title) as ax:
        positions = np.arange(ds.sizes["parameter"])
        for name in ds.network.values:
            diff = ds.relative_difference.sel(network=name).max("seed")
            ax.semilogy(positions, diff, **looks[str(name)], label=str(name))
        ax.axhline(TOLERANCE, color="grey", ls=":", label="tolerance")
        ax.set_xticks(positions, [str(p) for p in ds.parameter.values], rotation=30, fontsize=7)
        ax.set(xlabel="meta-parameter", ylabel="relative difference")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("meta_gradient", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
