"""Claim: EP's free phase settles to a minimum of the Hopfield energy.

For random layered Hopfield networks (sigmoid and tanh, float64), the free phase
(beta = 0) run by `equilibrate` ends where the vector field's RMS norm is below 1e-10, the
energy E is non-increasing along the Euler trajectory (step 0.1; every step, up to 1e-12
round-off), and small random perturbations of the fixed point do not lower E (a minimum,
not a saddle; 20 perturbations of size 1e-4, allowing 1e-12 round-off).

Smooth rho only, where the free phase is the gradient flow du/dt = -dE/du. With the hard
sigmoid (the default) `EPNetwork` integrates a different flow, the box-constrained
tau du/dt = clip(u - dE~/du, 0, 1) - u (see `circuits/ep.py`): its fixed points are the
box-constrained minima of the primitive-function form, but it is not E's gradient flow, so
"E never increases along the trajectory" is not its claim and is not checked here. Training
with the hard sigmoid uses fixed Euler phases, as in the literature.

Run: `python -m theory.ep_free_phase [--fast]` or `dynlearn check ep_free_phase`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.ep import EPDrive, EPNetwork

CLAIM = "EP free phase: stationary, energy non-increasing, a local minimum"
DT = 0.1  # Euler step of the recorded trajectory (units of the time constant)


def measure(activation: str, seed: int, t_end: float = 40.0, dt: float = DT):
    sizes = [6, 10, 8, 4]
    key = jax.random.key(seed)
    net = EPNetwork(sizes, key, activation=activation)
    net = eqx.tree_at(lambda m: m.weights, net, [2.0 * w for w in net.weights])
    # One sample as one stream (a leading axis of 1: the state convention of plastic circuits).
    x = jax.random.uniform(jax.random.fold_in(key, 1), (1, 6))
    drive = EPDrive(x, jnp.zeros((1, 4)), 0.0)
    state0 = net.init_state(x)  # zeros
    eq = dynlearn.equilibrate(net, state0, drive, rtol=1e-12, atol=1e-12, max_time=1e4)
    stationarity = float(dynlearn.tree_norm(net.vector_field(0.0, eq.y, drive)))
    ts = jnp.arange(0.0, t_end + dt / 2, dt)
    traj = dynlearn.simulate(net, state0, 0.0, t_end, args=drive, dt=dt, ts=ts)
    energy = np.asarray(jax.vmap(lambda s: net.energy(s, drive))(traj.ys))
    e_star = net.energy(eq.y, drive)
    kicks = jax.random.normal(jax.random.fold_in(key, 2), (20, sum(net.sizes[1:])))

    def kicked(v):
        parts = jnp.split(1e-4 * v, np.cumsum(net.sizes[1:-1]))
        state = {n: {"u": eq.y[n]["u"] + p} for n, p in zip(net.layer_names, parts)}
        return net.energy(state, drive) - e_star

    drop = float(jnp.min(jax.vmap(kicked)(kicks)))
    return stationarity, float(np.max(np.diff(energy))), drop, energy


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    activations = ["sigmoid", "tanh"]
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        rows = [[measure(a, s) for s in seeds] for a in activations]
    get = lambda i: np.array([[r[i] for r in row] for row in rows])  # noqa: E731
    dims = ("activation", "seed")
    energy = np.stack([np.stack([r[3] for r in row]) for row in rows])
    ds = xr.Dataset(
        {
            "stationarity": (dims, get(0)),
            "max_energy_increase": (dims, get(1)),
            "min_energy_change_when_perturbed": (dims, get(2)),
            "energy": (dims + ("step",), energy),
        },
        coords={
            "activation": activations,
            "seed": seeds,
            "step": np.arange(energy.shape[-1]),
            "time": ("step", DT * np.arange(energy.shape[-1])),
        },
    )
    ds = dynlearn.describe(
        ds,
        stationarity=("RMS norm of the vector field du/dt at the settled free phase", "1"),
        max_energy_increase=(
            "largest increase of the energy E from one Euler step to the next",
            "1",
        ),
        min_energy_change_when_perturbed=(
            "smallest change E(u* + kick) - E(u*) over 20 random kicks of size 1e-4",
            "1",
        ),
        energy=(f"Hopfield energy E along the free phase (Euler, dt = {DT:g} tau)", "1"),
        step=(f"Euler step of the free phase (dt = {DT:g} tau)", "1"),
        time=("time", "1"),  # in units of tau
    )
    ds.activation.attrs["long_name"] = "activation function rho"
    passed = (
        float(ds.stationarity.max()) < 1e-10
        and float(ds.max_energy_increase.max()) <= 1e-12
        and float(ds.min_energy_change_when_perturbed.min()) >= -1e-12
    )
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    seed = int(ds.seed[0])
    title = f"EP free phase: energy above its minimum (seed {seed} of {ds.sizes['seed']})"
    looks = dynlearn.plot.styles(ds.activation.values)
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title=title) as ax:
        for a in ds.activation.values:
            e = ds.energy.sel(activation=a, seed=seed)
            ax.plot(ds.time, e - e.min() + 1e-12, **looks[a], markevery=40, label=a)
        ax.set(
            yscale="log",
            xlabel="time (units of tau)",
            ylabel="E - min E (+ 1e-12)",
        )
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("ep_free_phase", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
