"""Does `equilibrate`'s steady-state stop fire? A sweep over random stable systems.

48 random stable 16-d linear systems `dy/dt = -A y + b` (symmetric part with eigenvalues
log-uniform in [0.1, 10], plus a random skew part), integrated from 0 by Tsit5 and Heun
until `||dy/dt|| < tol (1 + ||y||)`, with the PID step-size controller at `factor * tol`
for factors 1 (the controller and the stop share one tolerance), 1/3, 1/10 (the default,
`dynlearn.equilibrate`'s `CONTROLLER_FACTOR`), 1/30, 1/100. Prints, per setting, how many
systems settled within 5000 steps, the median and largest step counts, and the largest
distance to the exact fixed point relative to tol.

Run: `python -m experiments.bench_steady_state` (or `dynlearn bench steady-state`; float32,
tol 1e-3..1e-5) and `... --float64` (tol 1e-6..1e-10), a few minutes each; `--quick` for a
smoke run (8 systems, Tsit5 at 1e-3, factors 1 and 1/10).
"""

from __future__ import annotations

import argparse
import sys

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import dynlearn

FACTORS = (1.0, 0.3, 0.1, 0.03, 0.01)


class LinearFlow(dynlearn.AbstractDynamics):
    """dy/dt = -A y + b, with A and b given as args (so a batch of systems is one vmap)."""

    def vector_field(self, t, y, args):
        a, b = args
        return -a @ y + b


def random_stable_systems(n_systems: int, n: int, dtype, seed: int = 0):
    """`(A, b)` stacks: A's symmetric part has eigenvalues log-uniform in [0.1, 10] (a
    condition number up to 100), plus a skew part (a rotation); stable by design."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for _ in range(n_systems):
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        skew = 0.3 * rng.normal(size=(n, n))
        eigenvalues = np.exp(rng.uniform(np.log(0.1), np.log(10), n))
        a.append(q @ np.diag(eigenvalues) @ q.T + skew - skew.T)
        b.append(rng.normal(size=n))
    return jnp.asarray(np.stack(a), dtype), jnp.asarray(np.stack(b), dtype)


def sweep(
    dtype, tolerances, solvers=("tsit5", "heun"), factors=FACTORS, n_systems=48, max_steps=5000
):
    """Rows `(solver, tol, factor, settled, median steps, max steps, max |y - y*| / tol)`."""
    a, b = random_stable_systems(n_systems, 16, dtype, seed=1)
    exact = jnp.linalg.solve(a, b[..., None])[..., 0]
    rows = []
    for solver in solvers:
        for tol in tolerances:
            for factor in factors:
                controller = diffrax.PIDController(rtol=factor * tol, atol=factor * tol)

                def settle(a, b, solver=solver, tol=tol, controller=controller):
                    eq = dynlearn.equilibrate(
                        LinearFlow(), jnp.zeros(16, dtype), (a, b), solver=solver, rtol=tol,
                        atol=tol, stepsize_controller=controller, max_steps=max_steps,
                        throw=False,
                    )  # fmt: skip
                    return eq.settled, eq.num_steps, eq.y

                settled, steps, y = jax.vmap(settle)(a, b)
                error = float(jnp.max(jnp.abs(y - exact))) / tol
                rows.append(
                    (solver, tol, factor, int(settled.sum()), int(jnp.median(steps)),
                     int(steps.max()), error)
                )  # fmt: skip
                print(
                    f"{solver:6s} tol {tol:.0e} controller x{factor:<5g} settled "
                    f"{rows[-1][3]:2d}/{n_systems}  steps median {rows[-1][4]:5d} max "
                    f"{rows[-1][5]:5d}  max |y - y*| / tol {error:.2g}",
                    flush=True,
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dynlearn bench steady-state", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--float64", action="store_true", help="float64, tol 1e-6..1e-10")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 8 systems, Tsit5, 1e-3, factors 1 and 0.1"
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        sweep(jnp.float32, (1e-3,), ("tsit5",), (1.0, 0.1), n_systems=8, max_steps=500)
    elif opts.float64:
        jax.config.update("jax_enable_x64", True)
        sweep(jnp.float64, (1e-6, 1e-8, 1e-10))
    else:
        sweep(jnp.float32, (1e-3, 1e-4, 1e-5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
