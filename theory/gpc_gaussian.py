"""Claim: generalised PC with fixed-variance Gaussian nodes is standard PC (to 1e-10), and
its categorical and Bernoulli energies are the KL divergences they claim to be.

Generalised PC (`circuits.pc.generalised`, Pinchetti et al. 2022) sums KL(q_v || p_v) over
nodes. For Gaussians of fixed variance s_v that is |m_v - mu_v|^2 / (2 s_v), standard PC's
energy (`circuits.pc`). On random tanh chains (depths 2-4, variances 1 / 2 / 0.5 ..., the
output clamped to a target) in float64, with the same weights in both networks:
- the energies at random states agree to 1e-10 (relative);
- 20 Euler steps of inference from the feed-forward state give the same states (1e-10),
  states that moved (relative change > 1e-2: the comparison is not vacuous);
- the weight updates at the settled states agree (relative error < 1e-10).
And per family, at random parameters: the categorical KL of a clamped one-hot target is
optax's softmax cross-entropy, the Bernoulli KL equals sum p log(p/q) + (1-p) log((1-p)/
(1-q)) computed directly, and every KL is zero at q = p (all to 1e-10).

Run: `python -m theory.gpc_gaussian [--fast]` or `dynlearn check gpc_gaussian`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

import dynlearn
from circuits.pc import PCDrive, PCNetwork
from circuits.pc.generalised import Bernoulli, Categorical, Dense, Gaussian, GPCNetwork, Node

CLAIM = "generalised PC with Gaussian nodes = standard PC; its KLs are the stated divergences"
TOLERANCE = 1e-10
WIDTH, N_OUT, BATCH = 5, 3, 4


def as_generalised(pc: PCNetwork) -> GPCNetwork:
    """The same chain as a generalised PC graph: node l predicts W_l f(m_{l-1}) + b_l."""
    nodes, parent = {}, "input"
    for i, (name, w, b, s) in enumerate(zip(pc.layer_names, pc.weights, pc.biases, pc.variances)):
        dense = Dense(
            w.shape[1], w.shape[0], jax.random.key(0), "linear" if i == 0 else pc.activation
        )
        dense = eqx.tree_at(lambda d: (d.weight, d.bias), dense, (w, b))
        nodes[name] = Node(dense, (parent,), Gaussian(s))
        parent = name
    return GPCNetwork(nodes, (pc.sizes[0],), inference=pc.inference)


def relative(a, b) -> float:
    return float(dynlearn.analysis.relative_error(a, b))


def chain(depth: int, seed: int) -> dict:
    key = jax.random.key(seed)
    sizes = [WIDTH] * depth + [N_OUT]
    variances = [(1.0, 2.0, 0.5)[i % 3] for i in range(depth)]
    pc = PCNetwork(sizes, key, activation="tanh", variances=variances)
    gpc = as_generalised(pc)
    x = jax.random.normal(jax.random.fold_in(key, 1), (BATCH, WIDTH))
    y = jax.random.normal(jax.random.fold_in(key, 2), (BATCH, N_OUT))
    names = pc.layer_names[:-1]
    random = {
        n: jax.random.normal(jax.random.fold_in(key, 10 + i), (BATCH, WIDTH))
        for i, n in enumerate(names)
    }
    pc_energy = pc.energy({n: {"x": v} for n, v in random.items()}, PCDrive(x, y))
    gpc_energy = jnp.sum(jax.vmap(gpc.energy)(random, PCDrive(x, y)))
    pc_grads, _ = pc.updates(x, y, key)
    gpc_grads, _ = gpc.updates(x, y, key)
    pc_states = jax.vmap(pc.settle)(x, y)
    gpc_states, _ = gpc.settle(x, y)
    start = jax.vmap(gpc.init_state)(x)
    return {
        "moved": relative([gpc_states[n] for n in names], [start[n] for n in names]),
        "energy": abs(float(pc_energy - gpc_energy)) / abs(float(pc_energy)),
        "states": relative([gpc_states[n] for n in names], [pc_states[n]["x"] for n in names]),
        "updates": relative(
            [(n.predict.weight, n.predict.bias) for n in gpc_grads.nodes.values()],
            list(zip(pc_grads.weights, pc_grads.biases)),
        ),
    }


def families(seed: int) -> dict:
    key = jax.random.key(100 + seed)
    mu, z = jax.random.normal(key, (2, 6)) * 2
    p, q = jax.nn.sigmoid(z), jax.nn.sigmoid(mu)
    direct = jnp.sum(p * jnp.log(p / q) + (1 - p) * jnp.log((1 - p) / (1 - q)))
    target = jax.nn.one_hot(seed % 6, 6)
    return {
        "categorical_vs_ce": abs(
            float(Categorical().kl(target, mu) - optax.softmax_cross_entropy(mu, target))
        ),
        "bernoulli_vs_direct": abs(float(Bernoulli().kl(p, mu) - direct)),
        "kl_at_equality": max(
            abs(float(f.kl(f.mean(mu), mu))) for f in (Gaussian(2.0), Categorical(), Bernoulli())
        ),
    }


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    depths = [3] if fast else [2, 3, 4]
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        rows = [[chain(d, s) for s in seeds] for d in depths]
        kls = [families(s) for s in seeds]
    data = {
        (k if k == "moved" else f"{k}_error"): (
            ("depth", "seed"),
            np.array([[r[k] for r in row] for row in rows]),
        )
        for k in rows[0][0]
    }
    data |= {k: ("seed", np.array([r[k] for r in kls])) for k in kls[0]}
    ds = xr.Dataset(data, coords={"depth": depths, "seed": seeds})
    ds = dynlearn.describe(
        ds,
        moved=("relative change of the states during inference (not vacuous: > 1e-2)", "1"),
        energy_error=("relative difference of the energies at random states", "1"),
        states_error=("relative difference of the settled states", "1"),
        updates_error=("relative difference of the weight updates", "1"),
        categorical_vs_ce=("|categorical KL of a one-hot target - softmax cross-entropy|", "nat"),
        bernoulli_vs_direct=("|Bernoulli KL - the direct formula|", "nat"),
        kl_at_equality=("largest |KL(p || p)| over the three families", "nat"),
        depth=("number of weight layers", "1"),
    )
    differences = [name for name in ds.data_vars if name != "moved"]
    passed = all(float(ds[name].max()) < TOLERANCE for name in differences)
    passed &= float(ds.moved.min()) > 1e-2  # inference did move: the comparison is not vacuous
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "generalised PC (Gaussian nodes) vs standard PC"
    names = ["energy_error", "states_error", "updates_error"]
    with dynlearn.plot.figure(path, figsize=(5.6, 3.4), title=title) as ax:
        for name, marker in zip(names, "os^"):
            ax.semilogy(
                ds.depth, np.maximum(ds[name].max("seed"), 1e-18), marker=marker, label=name
            )
        ax.axhline(TOLERANCE, ls=":", color="grey", label="tolerance")
        ax.set(xlabel="number of weight layers", ylabel="largest relative difference")
        ax.set_xticks(ds.depth.values)
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("gpc_gaussian", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
