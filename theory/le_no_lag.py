"""Claim: prospective (LE) neurons answer without lag; ordinary leaky neurons lag ~ tau per layer.

Haider et al. 2021: with no error, the prospective voltage ubreve_l = u_l + tau du_l/dt of a
Latent-Equilibrium network equals the instantaneous feed-forward value W_l r_{l-1}(t) + b_l
at every time, whatever tau; with ordinary leaky neurons (r = phi(u)) the network low-pass
filters its input and lags by about tau per layer.

Setting (float64): 2-8-...-8-2 tanh networks of L = 1..4 weight layers, no target, no
learning, input x(t) = (sin(2 pi t / P), cos(2 pi t / 1.3 P)) with period P = 20 tau, Euler
over 3 periods, tau in {1, 10}. The prospective voltages are measured from the *saved
trajectory*, not from the vector field (which holds u + tau du/dt = W r + b by
construction): ubreve = u + tau (u(t + dt) - u(t - dt)) / (2 dt) on the voltages saved at
every step, compared with a feed-forward pass of x(t) computed independently
(`circuits._layers.feedforward`). The integrated trajectory carries Euler's O(dt) error, so
the claim is about convergence: with dt = tau / 100 the deviation (absolute, max over
layers and time) is below 2e-3 (measured at most 4.4e-4), and it halves with dt (ratio
1.7-2.3 from dt = tau / 100 to tau / 200, first order; measured 2.000). The lag of the
output layer is the delay d that best matches its seen voltage with the feed-forward output
at t - d (grid of tau / 20). Pass when, in addition, LE's lag is 0 at every depth and tau,
and the ordinary network's lag grows with depth and lies within 0.5-1.5 L tau (the ordinary
network here is `LENetwork(..., prospective=False)` without a target: leaky layers whose
lag, u_{l+1} - W_{l+1} r_l - b_{l+1}, is also sent down as an error through W^T, so not a
plain low-pass chain; measured 1.0 / 2.2 / 3.5 / 5.1 tau for L = 1-4).

Run: `python -m theory.le_no_lag [--fast]` or `dynlearn check le_no_lag`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits._layers import feedforward
from circuits.latent_equilibrium import LENetwork

CLAIM = "LE's prospective voltages have no lag (error O(dt) -> 0); ordinary layers lag ~ L tau"
DEVIATION_TOL = 2e-3  # at dt = tau / 100 (measured: at most 4.4e-4)
ORDER_RANGE = (1.7, 2.3)  # deviation(dt) / deviation(dt / 2): first order
PERIODS = 3


class Sinusoid(dynlearn.AbstractStimulus):
    """x(t) = (sin(2 pi t / P), cos(2 pi t / (1.3 P)))."""

    period: float

    def __call__(self, t):
        return jnp.stack(
            [jnp.sin(2 * jnp.pi * t / self.period), jnp.cos(2 * jnp.pi * t / (1.3 * self.period))]
        )[None]


@eqx.filter_jit
def measure(net: LENetwork, tau: float, steps_per_tau: int = 100):
    """(max |seen - feed-forward| over layers and time, output lag / tau, traces), the
    voltages read from the trajectory saved at every Euler step (after the first period)."""
    stimulus = Sinusoid(20 * tau)
    dt = tau / steps_per_tau
    n_steps = PERIODS * 20 * steps_per_tau
    ts = dt * jnp.arange(20 * steps_per_tau, n_steps + 1)  # every step after the first period
    system = dynlearn.Learning(net)  # weights as state (eta = 0: they stay put)
    trajectory = dynlearn.simulate(
        system,
        system.init_state(stimulus(0.0)),
        0.0,
        dt * n_steps,
        args=stimulus,
        dt=dt,
        ts=ts,
        check=False,
    )
    u = [trajectory.ys["neurons"][name]["u"] for name in net.layer_names]
    inner = ts[1:-1]
    if net.prospective:  # ubreve from the stored voltages: central differences
        seen = [v[1:-1] + tau * (v[2:] - v[:-2]) / (2 * dt) for v in u]
    else:
        seen = [v[1:-1] for v in u]
    ff = jax.vmap(lambda t: feedforward(net.weights, net.biases, net.phis, stimulus(t)))(inner)
    deviation = jnp.max(jnp.stack([jnp.max(jnp.abs(s - f)) for s, f in zip(seen, ff)]))
    delays = jnp.arange(0, 2 * len(net.weights) * tau + tau / 40, tau / 20)

    def mismatch(d):
        delayed = jax.vmap(
            lambda t: feedforward(net.weights, net.biases, net.phis, stimulus(t - d))[-1]
        )(inner)
        return jnp.mean((seen[-1] - delayed) ** 2)

    lag = delays[jnp.argmin(jax.vmap(mismatch)(delays))]
    every = steps_per_tau // 20  # traces at tau / 20
    trace = (inner[::every], seen[-1][::every, 0, 0], ff[-1][::every, 0, 0])
    return deviation, lag / tau, trace


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    depths = [1, 3] if fast else [1, 2, 3, 4]
    taus = [10.0] if fast else [1.0, 10.0]
    shape = (2, len(taus), len(depths))
    deviation, lag = np.zeros(shape), np.zeros(shape)
    halved = np.zeros(shape[1:])  # LE's deviation with dt = tau / 200
    traces = {}
    with jax.enable_x64(True):
        for i, prospective in enumerate([True, False]):
            for j, tau in enumerate(taus):
                for k, depth in enumerate(depths):
                    net = LENetwork(
                        [2] + [8] * (depth - 1) + [2],
                        jax.random.key(depth),
                        activation="tanh",
                        tau=tau,
                        tau_error=tau / 100,
                        beta=0.0,
                        eta=0.0,
                        prospective=prospective,
                    )
                    dev, lg, trace = measure(net, tau)
                    deviation[i, j, k], lag[i, j, k] = float(dev), float(lg)
                    if prospective:
                        halved[j, k] = float(measure(net, tau, 200)[0])
                    if j == len(taus) - 1 and depth == depths[-1]:
                        traces[prospective] = [np.asarray(a) for a in trace]
    ts, le_out, ff_out = traces[True]
    ds = xr.Dataset(
        {
            "max_deviation_from_feedforward": (("prospective", "tau", "depth"), deviation),
            "output_lag_over_tau": (("prospective", "tau", "depth"), lag),
            "le_deviation_dt_halved": (("tau", "depth"), halved),
            "le_order_ratio": (("tau", "depth"), deviation[0] / halved),
            "trace_feedforward": ("time", ff_out),
            "trace_le": ("time", le_out),
            "trace_ordinary": ("time", traces[False][1]),
        },
        coords={"prospective": [True, False], "tau": taus, "depth": depths, "time": ts},
    )
    traced = f"output unit 1, L = {depths[-1]}, tau = {taus[-1]:g} ms"
    ds = dynlearn.describe(
        ds,
        max_deviation_from_feedforward=(
            "max over layers and time of |voltage seen downstream - feed-forward value| "
            "(LE: ubreve from the saved voltages by central differences; ordinary: u), "
            "Euler dt = tau / 100",
            "1",
        ),
        le_deviation_dt_halved=(
            "the same for LE with Euler dt = tau / 200",
            "1",
        ),
        le_order_ratio=(
            "LE's deviation at dt = tau / 100 over that at tau / 200 (2 = first order)",
            "1",
        ),
        output_lag_over_tau=(
            "lag of the output voltage behind the feed-forward output, in units of tau",
            "1",
        ),
        trace_feedforward=(f"feed-forward output W_L r_(L-1) + b_L ({traced})", "1"),
        trace_le=(f"prospective voltage ubreve of the LE network ({traced})", "1"),
        trace_ordinary=(f"voltage u of the ordinary leaky network ({traced})", "1"),
        tau=("membrane time constant tau", "ms"),
        depth=("number of weight layers L", "1"),
        time=("time", "ms"),
    )
    ds.prospective.attrs["long_name"] = "prospective (LE) neurons, else ordinary leaky ones"
    ratio = deviation[0] / halved
    le_ok = (
        deviation[0].max() < DEVIATION_TOL
        and np.all((ratio >= ORDER_RANGE[0]) & (ratio <= ORDER_RANGE[1]))
        and np.all(lag[0] == 0)
    )
    ordinary = lag[1]
    depth_arr = np.array(depths)
    ordinary_ok = np.all(np.diff(ordinary, axis=-1) > 0) and np.all(
        (ordinary >= 0.5 * depth_arr) & (ordinary <= 1.5 * depth_arr)
    )
    return ds, bool(le_ok and ordinary_ok)


def plot(ds: xr.Dataset, path) -> None:
    depth, tau = int(ds.depth.values[-1]), float(ds.tau.values[-1])
    title = f"output voltage vs feed-forward output (L = {depth}, tau = {tau:g} ms, unit 1)"
    looks = dynlearn.plot.styles(["feed-forward", "LE", "ordinary"])
    every = max(1, ds.sizes["time"] // 16)
    with dynlearn.plot.figure(path, figsize=(6.8, 3.4), title=title) as ax:
        ax.plot(
            ds.time,
            ds.trace_feedforward,
            **looks["feed-forward"] | {"color": "k"},
            lw=2.5,
            alpha=0.4,
            markevery=every,
            label="feed-forward",
        )
        ax.plot(
            ds.time,
            ds.trace_le,
            **looks["LE"] | {"linestyle": "--"},
            markevery=(every // 2, every),
            label="LE (prospective ubreve)",
        )
        ax.plot(
            ds.time,
            ds.trace_ordinary,
            **looks["ordinary"],
            markevery=every,
            label="ordinary leaky (u)",
        )
        ax.set(xlabel=dynlearn.plot.axis_label(ds.time), ylabel="output voltage (unit 1)")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("le_no_lag", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
