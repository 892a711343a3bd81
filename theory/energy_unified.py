"""Claim: PC, EP and CHL are one theorem about energy-based models (Millidge et al. 2023).

Take any circuit that declares an energy E(theta, s) (input clamped), its free equilibrium
s_0 = argmin_s E and a loss L(s) read from the output. Perturb the equilibrium by beta:
- nudged (PC, EP): s_beta = argmin_s E + beta L;
- clamped (CHL): the output state held at s_o^0 - beta dL/ds_o (the target moved a fraction
  beta from the free output: the "infinitesimal inference limit"), the rest at the
  minimum of E.
Then the one-sided estimate g_beta = (1/beta)[dE/dtheta(s_beta) - dE/dtheta(s_0)] and the
centred one (1/(2 beta))[dE/dtheta(s_beta) - dE/dtheta(s_-beta)] tend, with errors O(beta)
and O(beta^2), to E_theta,s ds/dbeta (implicit differentiation at s_0, H = d^2E/ds^2):
- nudged: ds/dbeta = -H^{-1} dL/ds, so the limit is dL/dtheta, the gradient of the loss
  through the equilibrium (= BP's gradient for PC, whose free equilibrium is the
  feed-forward pass; recurrent backprop for EP);
- clamped: ds/dbeta = -[H^{-1}]_{:,o} S dL/ds_o with S = ([H^{-1}]_oo)^{-1} the Schur
  complement of the output block, so the limit is (ds_o/dtheta)^T S dL/ds_o: the gradient
  of the loss measured in the energy's own output metric S (CHL is exact gradient descent
  on the contrastive energy gap E(s^c) - E(s^0) ~ 1/2 beta^2 dL^T S dL; Movellan 1991).
  It equals BP's gradient only where S = I; the script reports how far it is (cosine).

The check needs nothing but each circuit's `energy` (the `EnergyModel` below): equilibria
by Newton's method on dE/ds (optimistix), float64. PC and EP/CHL use the same layer sizes
(6-6-6-3, tanh) and initialisation; EP and CHL are literally the same network. Tolerances,
the same for all three: log-log slope of the relative error 1 +- 0.15 (one-sided) and
2 +- 0.25 (centred), relative error below 5e-3 (one-sided) and 2e-5 (centred) at
beta = 1e-3; every equilibrium a minimum (H positive definite).

Run: `python -m theory.energy_unified [--fast]` or `dynlearn check energy_unified`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree

import dynlearn
from circuits._layers import SquaredError
from circuits.backprop import BackpropMLP
from circuits.ep import EPDrive, EPNetwork, EulerPhases
from circuits.pc import PCDrive, PCNetwork

CLAIM = (
    "energy-based circuits (PC, EP, CHL): (1/beta)[dE/dtheta(s_beta) - dE/dtheta(s_0)] -> "
    "dL/dtheta with error O(beta), O(beta^2) centred"
)
BETAS = np.array([0.1, 0.03, 0.01, 0.003, 0.001])
SLOPE_TOL = {"one_sided": (1.0, 0.15), "centred": (2.0, 0.25)}
ERROR_AT_SMALLEST = {"one_sided": 5e-3, "centred": 2e-5}
SIZES = [6, 6, 6, 3]
NEWTON_STEPS = 30


class EnergyModel(NamedTuple):
    """What the unified check needs of a circuit.

    - `network`: the parameters theta (an equinox Module; every inexact array is one);
    - `energy(network, state)`: E with the input bound in (the circuit's own `energy`);
    - `state`: the free equilibrium s_0 or a state near it (Newton polishes it);
    - `loss(state)`: L read from the output;
    - `output`: the state entry the loss reads, `(layer, variable)`;
    - `clamped`: True for CHL's perturbation (output held), False for a nudge.
    """

    network: eqx.Module
    energy: Callable
    state: dict
    loss: Callable
    output: tuple[str, str]
    clamped: bool


def _flat(model: EnergyModel):
    """The state as one vector, its inverse, and the output's entries (a boolean mask)."""
    vector, unravel = ravel_pytree(model.state)
    layer, var = model.output
    marks = jax.tree.map(jnp.zeros_like, model.state)
    marks[layer][var] = jnp.ones_like(model.state[layer][var])
    mask = np.asarray(ravel_pytree(marks)[0]) > 0
    return vector, unravel, mask


@eqx.filter_jit
def _minimise(fn: Callable, v0, args=None):
    """argmin over v of a smooth `fn(v, args)` near `v0`: Newton's method, to float64
    round-off (30 steps; the solves start at or next to the minimum)."""

    def step(_, v):
        return v - jnp.linalg.solve(jax.hessian(fn)(v, args), jax.grad(fn)(v, args))

    return jax.lax.fori_loop(0, NEWTON_STEPS, step, v0)


def equilibria(model: EnergyModel, betas) -> tuple:
    """s_0 and s_beta for each beta (and -beta) as flat vectors, with the state's unravel,
    the output mask, the smallest Hessian eigenvalue over every equilibrium and the largest
    residual |dE/ds| of s_0 (Newton converged: ~1e-15)."""
    v0, unravel, mask = _flat(model)
    energy = lambda v: model.energy(model.network, unravel(v))  # noqa: E731
    loss = lambda v: model.loss(unravel(v))  # noqa: E731
    s0 = _minimise(lambda v, _: energy(v), v0)
    free, out = np.flatnonzero(~mask), np.flatnonzero(mask)
    step = -jax.grad(loss)(s0)[out]  # the clamp's direction: down the loss

    def nudged(v, beta):
        return energy(v) + beta * loss(v)

    def whole(h, beta):
        return s0.at[free].set(h).at[out].set(s0[out] + beta * step)

    def clamped(h, beta):
        return energy(whole(h, beta))

    def perturbed(beta):
        beta = jnp.asarray(beta)  # one compiled solve serves every beta
        if not model.clamped:
            return _minimise(nudged, s0, beta)
        return whole(_minimise(clamped, s0[free], beta), beta)

    states = {float(sign * b): perturbed(sign * b) for b in betas for sign in (1, -1)}
    hessian = jax.jit(jax.hessian(energy))
    curvature = [np.linalg.eigvalsh(np.asarray(hessian(s)))[0] for s in [s0, *states.values()]]
    residual = float(jnp.max(jnp.abs(jax.grad(energy)(s0))))
    return s0, states, unravel, mask, float(min(curvature)), residual


def limit(model: EnergyModel, s0, unravel, mask):
    """E_theta,s ds/dbeta at s_0: dL/dtheta for a nudge, (ds_o/dtheta)^T S dL/ds_o for a
    clamp (see the module docstring), shaped like the network."""
    return _limit(model, s0, unravel, tuple(int(i) for i in np.flatnonzero(mask)))


@eqx.filter_jit
def _limit(model: EnergyModel, s0, unravel, out: tuple[int, ...]):
    energy = lambda net, v: model.energy(net, unravel(v))  # noqa: E731
    hessian = jax.hessian(energy, argnums=1)(model.network, s0)
    dloss = jax.grad(lambda v: model.loss(unravel(v)))(s0)
    out = np.array(out)
    if model.clamped:
        inverse = jnp.linalg.inv(hessian)
        schur = jnp.linalg.inv(inverse[np.ix_(out, out)])
        ds = -inverse[:, out] @ (schur @ dloss[out])
    else:
        ds = -jnp.linalg.solve(hessian, dloss)
    return eqx.filter_grad(lambda net: jnp.vdot(jax.grad(energy, argnums=1)(net, s0), ds))(
        model.network
    )


def estimates(model: EnergyModel, s0, states, unravel, betas):
    """The one-sided and centred estimates at each beta."""

    @jax.jit
    def de_dtheta(v):
        return eqx.filter_grad(lambda net: model.energy(net, unravel(v)))(model.network)

    at_0 = de_dtheta(s0)
    one_sided, centred = [], []
    for b in betas:
        plus, minus = de_dtheta(states[float(b)]), de_dtheta(states[float(-b)])
        one_sided.append(jax.tree.map(lambda p, z: (p - z) / b, plus, at_0))
        centred.append(jax.tree.map(lambda p, m: (p - m) / (2 * b), plus, minus))
    return one_sided, centred


def _params(tree):
    return (tree.weights, tree.biases)


def circuits(seed: int, batch: int) -> dict[str, EnergyModel]:
    """PC, EP and CHL on the same layer sizes, initialisation and data."""
    key = jax.random.key(seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), (batch, SIZES[0]))
    y = 0.5 * jax.random.normal(jax.random.fold_in(key, 2), (batch, SIZES[-1]))
    pc = PCNetwork(SIZES, key, activation="tanh")
    pc_state = {name: {"x": v} for name, v in zip(pc.layer_names, pc.feedforward(x))}
    ep = EPNetwork(SIZES, key, activation="tanh", phases=EulerPhases(n_free=200))
    ep_state = jax.vmap(ep.free_phase)(x, y)  # its own free phase; Newton polishes it
    ep_energy = lambda net, s: net.energy(s, EPDrive(x, y, 0.0))  # noqa: E731
    ep_loss = lambda s: ep.cost(s, y)  # noqa: E731
    out = ep.layer_names[-1]
    return {
        "PC": EnergyModel(
            pc,
            lambda net, s: net.energy(s, PCDrive(x, None)),
            pc_state,
            lambda s: 0.5 * jnp.sum((s["output"]["x"] - y) ** 2),
            ("output", "x"),
            False,
        ),
        "EP": EnergyModel(ep, ep_energy, ep_state, ep_loss, (out, "u"), False),
        "CHL": EnergyModel(ep, ep_energy, ep_state, ep_loss, (out, "u"), True),
    }, (x, y, key)


def measure(seed: int, batch: int = 4) -> dict:
    """Relative errors and cosines (vs the limit and vs BP) for each circuit and beta."""
    models, (x, y, key) = circuits(seed, batch)
    bp = BackpropMLP(SIZES, key, activation="tanh", loss=SquaredError())
    backprop = _params(eqx.filter_grad(lambda m: m.loss(x, y) * x.shape[0])(bp))
    error = dynlearn.analysis.relative_error
    rows = {}
    for name, model in models.items():
        s0, states, unravel, mask, curvature, residual = equilibria(model, BETAS)
        reference = _params(limit(model, s0, unravel, mask))
        gradient = _params(limit(model._replace(clamped=False), s0, unravel, mask))
        one_sided, centred = estimates(model, s0, states, unravel, BETAS)
        rows[name] = {
            "one_sided": [float(error(_params(g), reference)) for g in one_sided],
            "centred": [float(error(_params(g), reference)) for g in centred],
            "curvature": curvature,
            "residual": residual,
            "cosine": float(dynlearn.analysis.cosine_similarity(reference, gradient)),
        }
        if name == "PC":  # PC's free equilibrium is the feed-forward pass: dL/dtheta is BP's
            rows[name]["bp_error"] = float(error(gradient, backprop))
    return rows


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        results = [measure(s) for s in seeds]
    names = list(results[0])
    errors = np.array(
        [[[r[n][kind] for n in names] for r in results] for kind in ("one_sided", "centred")]
    )
    ds = xr.Dataset(
        {
            "relative_error": (("estimator", "seed", "circuit", "beta"), errors),
            "min_curvature": (
                ("seed", "circuit"),
                np.array([[r[n]["curvature"] for n in names] for r in results]),
            ),
            "residual": (
                ("seed", "circuit"),
                np.array([[r[n]["residual"] for n in names] for r in results]),
            ),
            "cosine_limit_gradient": (
                ("seed", "circuit"),
                np.array([[r[n]["cosine"] for n in names] for r in results]),
            ),
            "pc_vs_bp": ("seed", np.array([r["PC"]["bp_error"] for r in results])),
        },
        coords={
            "estimator": ["one_sided", "centred"],
            "seed": seeds,
            "circuit": names,
            "beta": BETAS,
        },
    )
    ds = dynlearn.describe(
        ds,
        relative_error=("relative error of the estimate vs its beta -> 0 limit", "1"),
        min_curvature=("smallest eigenvalue of d2E/ds2 over all equilibria", "1"),
        residual=("largest |dE/ds| at the free equilibrium", "1"),
        cosine_limit_gradient=(
            "cosine similarity of the beta -> 0 limit with dL/dtheta through the equilibrium",
            "1",
        ),
        pc_vs_bp=("relative error of PC's dL/dtheta vs BP's gradient", "1"),
        beta=("perturbation strength beta (nudge, or fraction of the way to the target)", "1"),
    )
    mean = ds.relative_error.mean("seed")
    passed = (
        bool(ds.min_curvature.min() > 0)
        and float(ds.residual.max()) < 1e-10
        and float(ds.pc_vs_bp.max()) < 1e-10
    )
    for kind, (slope, tol) in SLOPE_TOL.items():
        for name in names:
            measured = dynlearn.analysis.loglog_slope(BETAS, mean.sel(estimator=kind, circuit=name))
            ds.attrs[f"slope_{kind}_{name}"] = round(measured, 3)
            passed &= abs(measured - slope) <= tol
        smallest = float(ds.relative_error.sel(estimator=kind, beta=BETAS[-1]).max())
        passed &= smallest < ERROR_AT_SMALLEST[kind]
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "one energy-based theorem: PC, EP, CHL (solid one-sided, dashed centred)"
    looks = dynlearn.plot.styles([str(c) for c in ds.circuit.values])
    with dynlearn.plot.figure(path, figsize=(6.0, 3.6), title=title) as ax:
        for circuit in ds.circuit.values:
            for kind, ls in (("one_sided", "-"), ("centred", "--")):
                style = {**looks[str(circuit)], "linestyle": ls}
                err = ds.relative_error.sel(estimator=kind, circuit=circuit).mean("seed")
                label = f"{circuit} ({kind.replace('_', '-')})"
                ax.loglog(ds.beta, err, **style, label=label)
        ax.loglog(ds.beta, ds.beta, ls=":", color="grey", label="slope 1")
        ax.loglog(ds.beta, ds.beta**2, ls="-.", color="grey", label="slope 2")
        ax.set(xlabel=dynlearn.plot.axis_label(ds.beta), ylabel="relative error vs the limit")
        ax.legend(fontsize="x-small", ncol=2)


main = dynlearn.validation.script_main("energy_unified", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
