r"""Spiking neurons in the engine's terms: integrate-and-fire populations, events, spike trains.

A population of (leaky) integrate-and-fire neurons (`LIF`) with input current $I(t)$,

$$
\tau_m \frac{dv}{dt} = -v + I
$$

(leaky; `leak=False`: $\tau_m\, dv/dt = I$, a perfect integrator), outside its refractory
period, during which $v$ is held. A neuron fires when $v$ reaches $v_\mathrm{th}$ (`v_th`; an
engine event, `dynlearn.AbstractEvent`: located by root finding with an adaptive solver,
within one step with fixed steps); then $v \to v_\mathrm{reset}$ (`reset="zero"`) or
$v \to v - (v_\mathrm{th} - v_\mathrm{reset})$ (`reset="subtract"`, which keeps the
overshoot), the refractory clock restarts at $t_\mathrm{ref}$, the spike count grows by one
and the trace $x$ jumps by one, $\tau_\mathrm{trace}\, dx/dt = -x$ between spikes (the
pre/post traces of STDP rules). With constant $I > v_\mathrm{th}$ a leaky neuron resetting to
0 fires every

$$
T = t_\mathrm{ref} + \tau_m \ln \frac{I}{I - v_\mathrm{th}}
$$

(`theory/lif_interval.py` checks it). A population's state is a dict `{"v", "refractory",
"trace", "count"}` (`LIF.init`); `Population` is the smallest system (one population driven
by a stimulus); `PopulationEvent` is the event of a system whose state is one population's,
`SpikeEvent` that of any number of populations in one state dict. Inputs:
`poisson_spikes` and `regular_spikes` (rate coding), fed to a circuit as `SpikeTrain`, a
stimulus of pulses $s_k/dt$ (unit area per spike). Saved spike counts become a raster
Dataset with `raster` (and a figure with `dynlearn.plot.raster`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ._dynamics import AbstractDynamics
from ._events import AbstractEvent
from ._metadata import describe
from ._stimulus import AbstractStimulus, as_stimulus

__all__ = [
    "LIF",
    "Population",
    "SpikeEvent",
    "PopulationEvent",
    "SpikeTrain",
    "poisson_spikes",
    "regular_spikes",
    "raster",
]

RESETS = ("zero", "subtract")


class LIF(eqx.Module):
    r"""Integrate-and-fire neuron parameters (see the module docstring for the equations).

    **Arguments:**
    - `tau_m`: membrane time constant (> 0).
    - `v_th`: threshold (> 0 and > `v_reset`).
    - `v_reset`: the potential after a spike with `reset="zero"` (default 0).
    - `reset`: `"zero"` (to `v_reset`) or `"subtract"` (by `v_th - v_reset`).
    - `t_ref`: refractory period (>= 0): `v` held at its reset value.
    - `tau_trace`: time constant of the spike trace (> 0).
    - `leak`: False for a perfect (non-leaky) integrator, $\tau_m\, dv/dt = I$.
    """

    tau_m: float = 10.0
    v_th: float = 1.0
    v_reset: float = 0.0
    reset: str = eqx.field(static=True, default="zero")
    t_ref: float = 0.0
    tau_trace: float = 20.0
    leak: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        for name in ("tau_m", "tau_trace"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"LIF.{name}: expected a time constant > 0; got {value!r}.")
        if not self.v_th > 0:
            raise ValueError(
                f"LIF.v_th: expected a positive threshold; got {self.v_th}. Shift the "
                "potentials so that rest is 0 and the threshold above it."
            )
        if not self.v_th > self.v_reset:
            raise ValueError(
                f"LIF.v_reset: expected a reset below the threshold v_th={self.v_th}; got "
                f"{self.v_reset}."
            )
        if not self.t_ref >= 0:
            raise ValueError(f"LIF.t_ref: expected a refractory period >= 0; got {self.t_ref}.")
        if self.reset not in RESETS:
            raise ValueError(f"LIF.reset: expected one of {RESETS}; got {self.reset!r}.")

    def init(self, shape: tuple[int, ...], dtype=None) -> dict[str, Array]:
        """Neurons at rest (v = 0), not refractory, no spikes yet."""
        zeros = jnp.zeros(shape, dtype or jnp.result_type(float))
        return {"v": zeros, "refractory": zeros, "trace": zeros, "count": zeros}

    def drift(self, state: dict[str, Array], current: Array) -> dict[str, Array]:
        """d/dt of a population's state under input current `current`."""
        v, clock = state["v"], state["refractory"]
        dv = (current - v if self.leak else current) / self.tau_m
        return {
            "v": jnp.where(clock > 0, 0.0, dv),
            "refractory": -(clock > 0).astype(v.dtype),
            "trace": -state["trace"] / self.tau_trace,
            "count": jnp.zeros_like(v),
        }

    def condition(self, state: dict[str, Array]) -> Array:
        """`v - v_th` (refractory neurons cannot fire)."""
        return jnp.where(state["refractory"] > 0, -1.0, state["v"] - self.v_th)

    def fire(self, state: dict[str, Array], fired: Array) -> dict[str, Array]:
        """The state right after the neurons in `fired` spiked."""
        v = state["v"]
        after = self.v_reset if self.reset == "zero" else v - (self.v_th - self.v_reset)
        return {
            "v": jnp.where(fired, after, v),
            "refractory": jnp.where(fired, self.t_ref, state["refractory"]),
            "trace": state["trace"] + fired,
            "count": state["count"] + fired,
        }

    def interval(self, current: ArrayLike) -> Array:
        r"""Closed-form inter-spike interval at constant current (reset to 0 from rest; inf
        when the current never reaches threshold):
        $t_\mathrm{ref} + \tau_m \ln(I/(I - v_\mathrm{th}))$ (leaky) or
        $t_\mathrm{ref} + \tau_m v_\mathrm{th}/I$ (perfect integrator)."""
        current = jnp.asarray(current)
        climb = self.v_th - self.v_reset
        if self.leak:
            reach = current - self.v_reset
            gap = jnp.where(current > self.v_th, current - self.v_th, 1.0)
            time = self.tau_m * jnp.log(reach / gap)
        else:
            time = self.tau_m * climb / jnp.where(current > 0, current, 1)
        never = current <= (self.v_th if self.leak else 0.0)
        return jnp.where(never, jnp.inf, self.t_ref + time)

    def time_constants(self) -> dict[str, float]:
        return {"tau_m": self.tau_m, "tau_trace": self.tau_trace}

    def check_presentation(self, t_pres: float) -> None:
        """Refuse a refractory period longer than the presentation of one sample (no neuron
        could fire twice, most not once)."""
        if self.t_ref >= t_pres:
            raise ValueError(
                f"LIF.t_ref={self.t_ref} is not shorter than the presentation t_pres="
                f"{t_pres}; use t_ref < t_pres."
            )


class SpikeEvent(AbstractEvent):
    """The event of populations `neurons[name]` whose states are `y[name]` (other entries of
    `y` are untouched by spikes)."""

    neurons: dict[str, LIF]

    def condition(self, t, y, args):
        return jnp.concatenate([n.condition(y[k]).ravel() for k, n in self.neurons.items()])

    def jump(self, t, y, args, fired):
        out, start = dict(y), 0
        for key, neurons in self.neurons.items():
            shape = y[key]["v"].shape
            size = int(np.prod(shape))
            out[key] = neurons.fire(y[key], fired[start : start + size].reshape(shape))
            start += size
        return out


class Population(AbstractDynamics):
    """One population driven by an input current: `args` is the current (an array or an
    `AbstractStimulus`, `I(t)`), the state `neurons.init(shape)`."""

    neurons: LIF

    def vector_field(self, t, y, args):
        return self.neurons.drift(y, as_stimulus(args)(t))

    def event(self):
        return PopulationEvent(self.neurons)

    def time_constants(self) -> dict[str, float]:
        return self.neurons.time_constants()


class PopulationEvent(AbstractEvent):
    """The event of a system whose whole state is one population's (`LIF.init`)."""

    neurons: LIF

    def condition(self, t, y, args):
        return self.neurons.condition(y)

    def jump(self, t, y, args, fired):
        return self.neurons.fire(y, fired)


class SpikeTrain(AbstractStimulus):
    r"""Spikes `spikes[k]` (counts per bin, shape `(steps, ...)`) in bins of width `dt` from
    `t0`, as a current of pulses: $x(t) = s_k/\Delta t$ on bin $k$ ($s_k$ = `spikes[k]`,
    $\Delta t$ = `dt`; each spike delivers a unit charge), zero after the last bin."""

    spikes: Array
    dt: float
    t0: float = 0.0

    def __call__(self, t) -> Array:
        k = jnp.floor((t - self.t0) / self.dt).astype(int)
        inside = (k >= 0) & (k < self.spikes.shape[0])
        value = self.spikes[jnp.clip(k, 0, self.spikes.shape[0] - 1)] / self.dt
        return jnp.where(inside, value, 0.0)

    @property
    def jump_ts(self) -> Array:
        return self.t0 + self.dt * jnp.arange(self.spikes.shape[0] + 1)


def _check_rates(rates, dt, steps):
    rates = jnp.asarray(rates)
    if not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"steps: expected a positive number of time bins; got {steps!r}.")
    if not dt > 0:
        raise ValueError(f"dt: expected a bin width > 0; got {dt}.")
    if isinstance(rates, jax.core.Tracer):  # under jit: no values to check
        return rates
    values = np.asarray(rates)  # numpy: no traced comparisons inside a jit of the caller
    if np.any(values < 0) or np.any(values * dt > 1):
        raise ValueError(
            f"rates: expected rates in [0, 1/dt] = [0, {1 / dt:.4g}] (at most one spike per "
            f"bin); got values in [{values.min():.4g}, {values.max():.4g}]."
        )
    return rates


def poisson_spikes(key: PRNGKeyArray, rates: ArrayLike, dt: float, steps: int) -> Array:
    """Poisson rate coding: a spike in each bin of width `dt` with probability `rate dt`;
    returns 0/1 counts of shape `(steps, *rates.shape)` (`rates` in spikes per time unit)."""
    rates = _check_rates(rates, dt, steps)
    draws = jax.random.uniform(key, (steps, *rates.shape), rates.dtype)
    return (draws < rates * dt).astype(rates.dtype)


def regular_spikes(rates: ArrayLike, dt: float, steps: int) -> Array:
    """Deterministic rate coding: a phase `rate t` accumulates and a spike is emitted in the
    bin where it passes a whole number (`floor(rate t)` spikes by time t, exactly). Both
    coders run under `jax.jit`; the range of `rates` is checked where its values are known."""
    rates = _check_rates(rates, dt, steps)
    times = jnp.arange(steps + 1).reshape(-1, *([1] * rates.ndim))
    edges = jnp.floor(rates * dt * times + 1e-6)
    return jnp.diff(edges, axis=0)


def raster(counts: ArrayLike, ts: ArrayLike, *, time_unit: str = "ms") -> xr.Dataset:
    """Spike raster from spike counts saved at times `ts` (the `"count"` state of a
    population, shape `(time, ...)`): `spikes` per bin `(ts[k], ts[k+1]]`, labelled by the
    bin's end, and each unit's mean `rate` over the span."""
    counts, ts = np.asarray(counts), np.asarray(ts)
    if counts.shape[0] != ts.shape[0] or ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(
            f"counts, ts: expected counts of shape (time, ...) saved at >= 2 times ts; got "
            f"counts {counts.shape} and ts {ts.shape}."
        )
    spikes = np.diff(counts, axis=0).reshape(len(ts) - 1, -1)
    span = ts[-1] - ts[0]
    ds = xr.Dataset(
        {
            "spikes": (("time", "unit"), spikes.astype(np.int32)),
            "rate": ("unit", spikes.sum(axis=0) / span),
        },
        coords={"time": ts[1:], "unit": np.arange(spikes.shape[1])},
    )
    ds.time.attrs["units"] = time_unit
    return describe(
        ds,
        spikes=("spikes in the bin ending at time", "1"),
        rate=("mean firing rate", f"1/{time_unit}" if time_unit != "1" else "1"),
        unit=("neuron index", "1"),
    )
