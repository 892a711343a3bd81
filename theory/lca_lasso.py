"""Claim: the LCA's fixed point is the LASSO solution; spiking-LCA rates converge to it.

For random overcomplete dictionaries (16 inputs, 32 unit-norm atoms) and sparse inputs
`x = Phi a_0 + noise`, lambda = 0.1 (`circuits.lca`):
(1) the rate LCA settled (float64, `dynlearn.equilibrate`, |du/dt| < 1e-12) equals
    scikit-learn's `Lasso` (`alpha = lambda / m`, no intercept, tol 1e-12) to 1e-6 (max
    abs difference), and with the one-sided threshold `Lasso(positive=True)`;
(2) the spiking LCA's firing rates `N_i(t) / t` approach the non-negative LASSO solution
    as t grows (relative error falls at every step of t, and its log-log slope is below
    -0.7: an O(1/t) approach, Tang, Lin & Davies 2017), Euler steps of 0.005.

Run: `python -m theory.lca_lasso [--fast]` or `dynlearn check lca_lasso`.
"""

from __future__ import annotations

import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from sklearn.linear_model import Lasso

import dynlearn
from circuits.lca import RateLCA, SpikingLCA, unit_columns

CLAIM = "LCA fixed point = LASSO (< 1e-6); spiking-LCA rates -> non-negative LASSO as O(1/t)"
INPUTS, ATOMS, LAM = 16, 32, 0.1


def problem(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A dictionary and an input made of 4 of its atoms (positive weights) plus noise."""
    rng = np.random.default_rng(seed)
    phi = np.asarray(unit_columns(jnp.asarray(rng.normal(size=(INPUTS, ATOMS)))))
    a0 = np.zeros(ATOMS)
    a0[rng.choice(ATOMS, 4, replace=False)] = rng.uniform(0.5, 1.5, 4)
    return phi, phi @ a0 + 0.01 * rng.normal(size=INPUTS)


def lasso(phi, x, positive: bool) -> np.ndarray:
    """scikit-learn's solution of |x - Phi a|^2 / 2 + lambda |a|_1 (its objective is that
    divided by m: alpha = lambda / m)."""
    model = Lasso(
        alpha=LAM / INPUTS, fit_intercept=False, tol=1e-14, max_iter=1_000_000, positive=positive
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would void the comparison
        return model.fit(phi, x).coef_


def settled(phi, x, non_negative: bool) -> np.ndarray:
    lca = RateLCA(jnp.asarray(phi), LAM, non_negative=non_negative)
    eq = dynlearn.equilibrate(lca, lca.init_state(), jnp.asarray(x), rtol=1e-12, atol=1e-12)
    return np.asarray(lca.code(eq.y))


def spiking_rates(phi, x, times) -> np.ndarray:
    """Firing rates N(t) / t at each of `times` (one run, counts saved)."""
    lca = SpikingLCA(jnp.asarray(phi), LAM)
    traj = dynlearn.simulate(
        lca, lca.init_state(), 0.0, float(times[-1]), args=jnp.asarray(x), dt=0.005,
        ts=jnp.asarray(times), variables=["count"],
    )  # fmt: skip
    return np.asarray(traj.ys["count"]) / np.asarray(times)[:, None]


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    seeds = [0, 1, 2] if fast else list(range(8))
    times = np.array([12.5, 25.0, 50.0, 100.0] if fast else [25.0, 50.0, 100.0, 200.0, 400.0])
    rate_error, positive_error, spiking_error, active = [], [], [], []
    with jax.enable_x64(True):
        for seed in seeds:
            phi, x = problem(seed)
            signed, positive = lasso(phi, x, False), lasso(phi, x, True)
            rate_error.append(np.abs(settled(phi, x, False) - signed).max())
            positive_error.append(np.abs(settled(phi, x, True) - positive).max())
            rates = spiking_rates(phi, x, times)
            spiking_error.append(
                np.linalg.norm(rates - positive, axis=1) / np.linalg.norm(positive)
            )
            active.append(int(np.sum(positive > 0)))
    spiking_error = np.array(spiking_error)
    mean_error = spiking_error.mean(axis=0)
    slope = float(np.polyfit(np.log(times), np.log(mean_error), 1)[0])
    ds = xr.Dataset(
        {
            "rate_lca_error": ("seed", np.array(rate_error)),
            "non_negative_lca_error": ("seed", np.array(positive_error)),
            "spiking_error": (("seed", "time"), spiking_error),
            "active_atoms": ("seed", np.array(active)),
        },
        coords={"seed": seeds, "time": times},
        attrs={"spiking_slope": slope, "lam": LAM, "inputs": INPUTS, "atoms": ATOMS},
    )
    ds.time.attrs["units"] = "1"
    ds = dynlearn.describe(
        ds,
        rate_lca_error=("max |a_LCA - a_Lasso|, soft threshold", "1"),
        non_negative_lca_error=("max |a_LCA - a_Lasso(positive)|, one-sided threshold", "1"),
        spiking_error=("|N(t)/t - a_Lasso(positive)| / |a_Lasso(positive)|", "1"),
        active_atoms=("non-zero coefficients of the non-negative LASSO solution", "1"),
        time=("simulated time, units of the synaptic time constant", "1"),
    )
    passed = bool(max(rate_error) < 1e-6 and max(positive_error) < 1e-6)
    passed &= bool(np.all(np.diff(mean_error) < 0)) and slope < -0.7
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "LCA vs LASSO (float64)"
    with dynlearn.plot.figure(path, figsize=(9.6, 3.4), title=title, ncols=2) as (left, right):
        left.semilogy(ds.seed, ds.rate_lca_error + 1e-17, "o", label="soft threshold")
        left.semilogy(ds.seed, ds.non_negative_lca_error + 1e-17, "s", label="one-sided")
        left.axhline(1e-6, color="grey", ls=":", label="tolerance")
        left.set(xlabel="problem (seed)", ylabel="max |a_LCA - a_Lasso|")
        left.legend(fontsize="small")
        mean = ds.spiking_error.mean("seed")
        right.loglog(ds.time, mean, "o-", label="spiking LCA rates")
        right.loglog(ds.time, mean[0] * ds.time[0] / ds.time, "k:", label="1 / t")
        right.set(xlabel=dynlearn.plot.axis_label(ds.time), ylabel="relative error of the rates")
        right.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        right.set_xticks(ds.time.values, [f"{t:g}" for t in ds.time.values])
        right.legend(fontsize="small")


main = dynlearn.validation.script_main("lca_lasso", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
