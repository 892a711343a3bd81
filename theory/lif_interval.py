"""Claim: the engine's integrate-and-fire neurons fire at the closed-form interval.

A leaky integrate-and-fire neuron (`dynlearn.spiking.LIF`, `tau_m dv/dt = -v + I`, reset to
0 at `v_th`, refractory for `t_ref`) under a constant current `I > v_th` fires every

    T = t_ref + tau_m ln(I / (I - v_th)),

a perfect integrator (`tau_m dv/dt = I`) every `t_ref + tau_m v_th / I`. Checked in float64:
(1) with an adaptive solver (spike times located by root finding) the measured interval
equals T to 1e-6 for both neuron kinds, with and without a refractory period, and with reset
by subtraction (which, located exactly, leaves no overshoot); (2) with fixed Euler steps the
error is of first order in dt: at most 1.5 dt and falling with dt (a spike is known to
within a step; the grid aliases the exact times, so the log-log slope is reported, not
asserted);
(3) rate coding: deterministic trains hold exactly floor(rate t) spikes by time t, Poisson
trains' counts are within 4 standard deviations of rate t.

Run: `python -m theory.lif_interval [--fast]` or `dynlearn check lif_interval`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from dynlearn.spiking import LIF, Population, poisson_spikes, regular_spikes

CLAIM = (
    "LIF inter-spike intervals equal the closed form (adaptive: < 1e-6; Euler: <= 1.5 dt); "
    "rate codes hold their rates"
)
CURRENTS = np.array([1.2, 1.5, 2.0, 4.0])
NEURONS = {
    "leaky": LIF(tau_m=10.0),
    "leaky, refractory 2": LIF(tau_m=10.0, t_ref=2.0),
    "leaky, subtract": LIF(tau_m=10.0, reset="subtract"),
    "perfect, refractory 1": LIF(tau_m=10.0, t_ref=1.0, leak=False),
}
STEPS = [0.1, 0.03, 0.01, 0.003]


def interval_from_state(neurons: LIF, t1: float, **solve) -> np.ndarray:
    """Interval from the end state: from rest, the k-th spike is at `t_k = k T - t_ref`
    (no refractory period before the first), so the count n and the trace
    `x = sum_k e^{-(t1 - t_k) / tau_trace}` determine T (x grows with T: bisection)."""
    traj = dynlearn.simulate(
        Population(neurons), neurons.init(CURRENTS.shape), 0.0, t1,
        args=jnp.asarray(CURRENTS), **solve,
    )  # fmt: skip
    count, trace = np.asarray(traj.y1["count"]), np.asarray(traj.y1["trace"])
    tau, t_ref = neurons.tau_trace, neurons.t_ref
    out = []
    for n, x in zip(count, trace):
        k = np.arange(1, int(n) + 1)
        lo, hi = 1e-9, (t1 + t_ref) / n
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            value = np.sum(np.exp(-(t1 - (mid * k - t_ref)) / tau))
            lo, hi = (mid, hi) if value < x else (lo, mid)
        out.append(0.5 * (lo + hi))
    return np.array(out)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    t1 = 60.0 if fast else 200.0
    steps = [0.1, 0.01] if fast else STEPS
    with jax.enable_x64(True):
        closed = np.stack([np.asarray(n.interval(CURRENTS)) for n in NEURONS.values()])
        adaptive = np.stack(
            [interval_from_state(n, t1, rtol=1e-10, atol=1e-12, dt=0.05) for n in NEURONS.values()]
        )
        leaky = NEURONS["leaky"]
        euler = np.stack([interval_from_state(leaky, t1, dt=dt) for dt in steps])
        rates = jnp.array([0.01, 0.05, 0.2])  # spikes per ms
        n_bins = 20000
        regular = np.asarray(regular_spikes(rates, 0.1, n_bins).sum(axis=0))
        poisson = np.asarray(
            poisson_spikes(jax.random.key(0), jnp.tile(rates, (50, 1)), 0.1, n_bins).sum(axis=0)
        )
    expected = np.asarray(rates) * 0.1 * n_bins
    adaptive_error = np.abs(adaptive - closed)
    euler_error = np.abs(euler - closed[0]).max(axis=1)
    slope = float(np.polyfit(np.log(steps), np.log(euler_error), 1)[0])
    z = (poisson.mean(axis=0) - expected) / np.sqrt(expected / poisson.shape[0])
    ds = xr.Dataset(
        {
            "closed_form": (("neuron", "current"), closed),
            "adaptive_error": (("neuron", "current"), adaptive_error),
            "euler_error": ("dt", euler_error),
            "regular_count": ("rate", regular),
            "poisson_z": ("rate", z),
        },
        coords={
            "neuron": list(NEURONS),
            "current": CURRENTS,
            "dt": steps,
            "rate": np.asarray(rates),
        },
        attrs={"euler_slope": slope, "t1": t1},
    )
    ds = dynlearn.describe(
        ds,
        closed_form=("closed-form inter-spike interval", "ms"),
        adaptive_error=("|measured - closed-form| interval, adaptive solver", "ms"),
        euler_error=("largest |measured - closed-form| interval, Euler steps (leaky)", "ms"),
        regular_count=("spikes of the deterministic train in 2000 ms", "1"),
        poisson_z=("Poisson count's deviation from rate t, in standard errors", "1"),
        current=("constant input current I (units of the threshold's potential)", "1"),
        dt=("Euler step", "ms"),
        rate=("coded rate", "1/ms"),
    )
    ds.neuron.attrs["long_name"] = "neuron kind"
    passed = bool(adaptive_error.max() < 1e-6)
    passed &= bool(np.all(euler_error <= 1.5 * np.asarray(steps)))
    passed &= bool(np.all(np.diff(euler_error) < 0))
    passed &= bool(np.array_equal(regular, np.floor(expected + 1e-6)))
    passed &= bool(np.all(np.abs(z) < 4))
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "LIF inter-spike interval vs closed form (float64)"
    with dynlearn.plot.figure(path, figsize=(9.6, 3.4), title=title, ncols=2) as (left, right):
        looks = dynlearn.plot.styles(ds.neuron.values)
        for name in ds.neuron.values:
            left.semilogy(
                ds.current, ds.adaptive_error.sel(neuron=name) + 1e-16, **looks[name], label=name
            )
        left.axhline(1e-6, color="grey", ls=":", label="tolerance")
        left.set(
            xlabel=dynlearn.plot.axis_label(ds.current), ylabel="interval error, adaptive (ms)"
        )
        left.legend(fontsize="small")
        right.loglog(ds.dt, ds.euler_error, "o-", label="Euler")
        right.loglog(ds.dt, 1.5 * ds.dt, "k:", label="bound 1.5 dt")
        right.set(xlabel=dynlearn.plot.axis_label(ds.dt), ylabel="interval error, Euler (ms)")
        right.legend(fontsize="small")


main = dynlearn.validation.script_main("lif_interval", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
