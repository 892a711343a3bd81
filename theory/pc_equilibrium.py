"""Claim: PC inference settles to a stationary point of F, and F never increases on the way.

For random tanh networks (input and output clamped; float64): (1) the state returned by
`equilibrate` has |dF/dx| (RMS) below 1e-10; (2) along the Euler inference trajectory
(step 0.05) F is non-increasing (every step, up to 1e-12 round-off) and ends within 1e-6
of the settled value.

Run: `python -m theory.pc_equilibrium [--fast]` or `dynlearn check pc_equilibrium`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.pc import PCDrive, PCNetwork

CLAIM = "PC inference: stationary fixed point, F non-increasing along the trajectory"
DT = 0.05  # Euler step of the recorded trajectory (units of the time constant)


def measure(depth: int, seed: int, t_end: float = 60.0, dt: float = DT):
    sizes = [8] * depth + [3]
    key = jax.random.key(seed)
    net = PCNetwork(sizes, key, activation="tanh")
    x = jax.random.normal(jax.random.fold_in(key, 1), (8,))
    y = 2.0 * jax.random.normal(jax.random.fold_in(key, 2), (3,))
    # One sample as one stream (a leading axis of 1: the state convention of plastic circuits).
    x, y = x[None], y[None]
    drive = PCDrive(x, y)
    state0 = net.init_state(x)
    eq = dynlearn.equilibrate(net, state0, drive, rtol=1e-12, atol=1e-12, max_time=1e5)
    stationarity = float(dynlearn.tree_norm(net.vector_field(0.0, eq.y, drive)))
    ts = jnp.arange(0.0, t_end + dt / 2, dt)
    traj = dynlearn.simulate(net, state0, 0.0, t_end, args=drive, dt=dt, ts=ts)
    energy = np.asarray(jax.vmap(lambda s: net.energy(s, drive))(traj.ys))
    return (
        stationarity,
        float(np.max(np.diff(energy))),
        float(energy[-1] - net.energy(eq.y, drive)),
        energy,
    )


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    depths = [2, 3] if fast else [2, 3, 4, 5]
    seeds = [0] if fast else [0, 1, 2]
    with jax.enable_x64(True):
        rows = [[measure(d, s) for s in seeds] for d in depths]
    get = lambda i: np.array([[r[i] for r in row] for row in rows])  # noqa: E731
    dims = ("depth", "seed")
    energy = np.stack([np.stack([r[3] for r in row]) for row in rows])
    ds = xr.Dataset(
        {
            "stationarity": (dims, get(0)),
            "max_energy_increase": (dims, get(1)),
            "final_energy_gap": (dims, get(2)),
            "energy": (("depth", "seed", "step"), energy),
        },
        coords={
            "depth": depths,
            "seed": seeds,
            "step": np.arange(energy.shape[-1]),
            "time": ("step", DT * np.arange(energy.shape[-1])),
        },
    )
    ds = dynlearn.describe(
        ds,
        stationarity=("RMS norm of the vector field dx/dt = -dF/dx at the settled state", "1"),
        max_energy_increase=(
            "largest increase of the free energy F from one Euler step to the next",
            "1",
        ),
        final_energy_gap=(
            "F at the end of the Euler trajectory minus F at the settled state",
            "1",
        ),
        energy=(f"free energy F along the inference trajectory (Euler, dt = {DT:g})", "1"),
        depth=("number of weight layers", "1"),
        step=(f"Euler step of inference (dt = {DT:g})", "1"),
        time=("time", "1"),  # in units of the inference time constant
    )
    passed = (
        float(ds.stationarity.max()) < 1e-10
        and float(ds.max_energy_increase.max()) <= 1e-12
        and float(abs(ds.final_energy_gap).max()) < 1e-6
    )
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    seed = int(ds.seed[0])
    title = f"PC inference: free energy F (seed {seed} of {ds.sizes['seed']})"
    looks = dynlearn.plot.styles([str(d) for d in ds.depth.values])
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title=title) as ax:
        for depth in ds.depth.values:
            ax.plot(
                ds.time,
                ds.energy.sel(depth=depth, seed=seed),
                **looks[str(depth)],
                markevery=ds.sizes["step"] // 12,
                label=f"depth {depth}",
            )
        ax.set(
            xlabel="time (units of the inference time constant)",
            ylabel="free energy F",
            yscale="log",
        )
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("pc_equilibrium", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
