"""Claim: the weights' inertia is SGD momentum in continuous time.

`dynlearn.Inertia(tau)` (used by `AlwaysOn(..., inertia=)`) moves the weights with a
velocity v that low-pass filters the rate u their rule asks for: tau dv/dt = u - v,
dtheta/dt = v. `AlwaysOn.with_momentum(beta, batch_size)` sets tau = Delta / ln(1/beta),
Delta the stream time of one batch. Checked with synapses whose rate is the presented
signal, one value g_k per batch held for Delta (float64, batches streamed one after the
other by the mode, the velocity carried from batch to batch, beta = 0.9):
- at the end of each batch the velocity is momentum's moving average,
  v_{k+1} = beta_E v_k + (1 - beta_E) g_k, exactly (< 1e-12) with Euler's per-batch
  factor beta_E = (1 - dt/tau)^(Delta/dt), and beta_E -> beta = e^(-Delta/tau) as dt -> 0
  with an error proportional to dt (log-log slope 1 +- 0.05);
- once the drive stops the weights have moved by Delta sum_k g_k, exactly what
  `optax.sgd(Delta (1 - beta), momentum=beta)` moves them by on the same sequence
  (relative difference < 1e-9), i.e. the same effective step;
- along the way the two differ only by when each gradient's share arrives (in continuous
  time a gradient starts acting within its own batch): the largest gap between the two
  trajectories is below 0.2 Delta max|g| (measured: 0.091 fast, 0.113 full).

Run: `python -m theory.inertia_momentum [--fast]` or `dynlearn check inertia_momentum`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

import dynlearn
from theory.rms_plasticity import DrivenSynapses  # synapses whose rate is the signal

CLAIM = "inertia = SGD momentum: the velocity is momentum's moving average, same total step"
BETA, DELTA = 0.9, 1.0


def stream(drive: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """`(weights, velocity)` after each batch, for drive (batches, synapses), one batch of
    one sample per step of the mode, with the inertia of momentum BETA."""
    presentation = dynlearn.Presentation(t_pres=DELTA, dt=dt, streams=1)
    mode = dynlearn.AlwaysOn(presentation).with_momentum(BETA, batch_size=1)
    circuit = DrivenSynapses(jnp.zeros(drive.shape[1]))
    state = mode.init(circuit)
    step = jax.jit(mode.step)
    weights, velocity = [], []
    for k, g in enumerate(jnp.asarray(drive)):
        circuit, state, _ = step(circuit, state, g[None], g[None], jax.random.key(k))
        weights.append(np.asarray(circuit.weights))
        velocity.append(np.asarray(state["velocity"].weights))
    return np.array(weights), np.array(velocity)


def sgd_momentum(drive: np.ndarray) -> np.ndarray:
    """The weights after each batch under `optax.sgd(Delta (1 - beta), momentum=beta)`
    stepping up the same drive (optax descends: it is given -g)."""
    optimizer = optax.sgd(DELTA * (1 - BETA), momentum=BETA)
    theta = jnp.zeros(drive.shape[1])
    state = optimizer.init(theta)
    path = []
    for g in jnp.asarray(drive):
        update, state = optimizer.update(-g, state)
        theta = optax.apply_updates(theta, update)
        path.append(np.asarray(theta))
    return np.array(path)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    driven, quiet = (20, 400) if fast else (60, 600)
    dts = np.array([0.1, 0.05, 0.025]) if fast else np.array([0.1, 0.05, 0.025, 0.0125])
    tau = DELTA / np.log(1 / BETA)
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        drive = np.concatenate([rng.normal(size=(driven, 4)), np.zeros((quiet, 4))])
        ema_errors, factor_errors = [], []
        for dt in dts:
            weights, velocity = stream(drive, float(dt))
            beta_e = (1 - dt / tau) ** round(DELTA / dt)
            expected, v = np.zeros_like(velocity), np.zeros(drive.shape[1])
            for k, g in enumerate(drive):
                v = beta_e * v + (1 - beta_e) * g
                expected[k] = v
            ema_errors.append(np.abs(velocity - expected).max())
            factor_errors.append(abs(beta_e - BETA))
        sgd = sgd_momentum(drive)
    total = DELTA * drive.sum(axis=0)
    total_error = np.abs(weights[-1] / total - 1).max()
    sgd_total_error = np.abs(sgd[-1] / total - 1).max()
    gap = np.abs(weights - sgd).max() / (DELTA * np.abs(drive).max())
    slope = float(np.polyfit(np.log(dts), np.log(factor_errors), 1)[0])
    ds = xr.Dataset(
        {
            "moving_average_error": ("dt", np.array(ema_errors)),
            "factor_error": ("dt", np.array(factor_errors)),
            "weight": (("batch", "synapse"), weights),
            "sgd_momentum_weight": (("batch", "synapse"), sgd),
        },
        coords={"dt": dts, "batch": np.arange(1, len(drive) + 1), "synapse": np.arange(4)},
        attrs={
            "beta": BETA,
            "tau": tau,
            "factor_slope": slope,
            "total_error": float(total_error),
            "sgd_total_error": float(sgd_total_error),
            "largest_gap": float(gap),
        },
    )
    ds = dynlearn.describe(
        ds,
        moving_average_error=("max |v_k - momentum's moving average|", "1"),
        factor_error=("|Euler's per-batch factor - beta|", "1"),
        weight=("weight after each batch, with inertia (smallest dt)", "1"),
        sgd_momentum_weight=("weight after each batch, optax.sgd with momentum", "1"),
        dt=("Euler step", "1"),
        batch=("batch", "1"),
    )
    print(f"moving average: max error {max(ema_errors):.1e}; |beta_E - beta| slope {slope:.3f}")
    print(f"total step: inertia {total_error:.1e}, SGD momentum {sgd_total_error:.1e} from")
    print(f"Delta sum g; largest gap between the paths {gap:.3f} Delta max|g|")
    passed = max(ema_errors) < 1e-12 and abs(slope - 1) < 0.05
    passed &= total_error < 1e-9 and sgd_total_error < 1e-9 and gap < 0.2
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "Inertia (continuous) vs SGD momentum (discrete), one synapse"
    with dynlearn.plot.figure(path, figsize=(5.2, 3.4), title=title) as ax:
        shown = ds.isel(synapse=0, batch=slice(0, 80))
        ax.plot(shown.batch, shown.weight, "-", label="inertia, tau dv/dt = u - v")
        ax.plot(shown.batch, shown.sgd_momentum_weight, "o", ms=3, label="optax.sgd, momentum")
        ax.set(xlabel="batch", ylabel="weight")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("inertia_momentum", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
