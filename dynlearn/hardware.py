r"""Learning on analog compute-in-memory hardware: a device model that wraps any learner.

`on_device(learner, device)` stores every forward weight matrix of a learner (its
`prunable()` leaves) in a crossbar of programmable conductances; biases and the rest stay
digital. A weight $w \in [-w_\max, w_\max]$ is the normalised conductance
$g = (G - G_\min)/(G_\max - G_\min) \in [0, 1]$ of one device (with a reference column):
$w = w_\max (2g - 1)$; $w_\max$ is `headroom * max|W|` of the matrix when it is programmed.

Weight updates are voltage pulses; each moves the conductance along the device's saturating
potentiation (LTP) or depression (LTD) curve (Chen et al. 2018, DNN+NeuroSim; the curve of
Yu's group, re-derived here from the published equations):

$$
g_\mathrm{LTP}(P) = b \left(1 - e^{-\mathrm{nl}\, P/N}\right), \quad
b = \frac{1}{1 - e^{-\mathrm{nl}}}, \quad P \in [0, N],
$$

$$
g_\mathrm{LTD}(P) = 1 - b_d \left(1 - e^{-\mathrm{nl}_d\, P/N_d}\right), \quad
b_d = \frac{1}{1 - e^{-\mathrm{nl}_d}}, \quad P \in [0, N_d].
$$

$N$ is the number of levels (pulses from one end of the range to the other) and
$\mathrm{nl}$ the nonlinearity, $\mathrm{nl} = N/A$ in the published form
$G(P) = B (1 - e^{-P/A}) + G_\min$ ($\mathrm{nl} \to 0$: linear; DNN+NeuroSim maps its
nonlinearity labels to $A$ with a lookup table that is not reproduced here: the presets use
the labels as `nl` directly, so their curves have the published labels' direction and
ordering, not their exact shapes). In settle-then-update
training an update $\Delta w$ (the optimizer's step) becomes

$$
\Delta P = \mathrm{round}\left(\frac{\Delta w}{\Delta w_\mathrm{pulse}}\right), \qquad
\Delta w_\mathrm{pulse} = \frac{2 w_\max}{N} \quad \text{(mean step per pulse)}
$$

(or stochastic rounding, `Device.rounding`) pulses applied from where the device is,
$g' = g_\mathrm{LTP}(\mathrm{clip}(g_\mathrm{LTP}^{-1}(g) + \Delta P, 0, N))$ (LTD likewise
for $\Delta P < 0$), so the same pulse count moves a weight less the nearer it is to the
end it moves to (the nonlinearity), and differently up and down (the asymmetry). A written
device gets cycle-to-cycle noise $\mathrm{c2c}\, \xi$ per write (DNN+NeuroSim) and
$\mathrm{c2c_{pulse}} \sqrt{|\Delta P|}\, \xi$ (independent per-pulse steps, as aihwkit's),
$\xi$ standard normal; `d2d` varies $\mathrm{nl}$ from device to device
($|\mathrm{nl} + \mathrm{d2d}\, \xi_{ij}|$, drawn once from the seed). Reads see the
conductance fluctuate by $\mathrm{read\_noise}\, (g + g_0)\, \xi$ per batch,
$g_0 = 1/(\mathrm{on\_off} - 1)$ the off-state conductance in range units (a low on/off
ratio raises the noise of small weights); inputs pass a DAC and outputs an ADC of the given
bits (signed, scaled to each batch's largest magnitude; only the network's input and
output: the circuits' internal layers are not touched).

In the always-on mode the weights move at every integration step as the device lets them:
the circuit's rate becomes a stream of stochastic pulses, in its diffusion limit (drift along
the curve, `OnDevice.drift`; shot noise of the finite levels and per-pulse noise, summed over
each streamed batch and added at its end, or with `stream_noise="step"` as the SDE's diffusion,
`OnDevice.pulse_noise`); the per-write noise `c2c` is added at the end of each streamed batch
to the devices its pulses wrote (probability $1 - e^{-\lambda}$,
$\lambda = \int |dw/dt|\, dt / d$ the pulses the stream held), and the stream starts from
the weights as read (the read noise's change is not stored). The rounding mode does not
apply there (pulse streams are stochastic).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._learner import AbstractLearner
from ._pruning import Pruned

__all__ = [
    "Device",
    "OnDevice",
    "on_device",
    "PRESETS",
    "same_always_on_training",
    "CostParameters",
    "training_cost",
    "IDEAL",
    "RRAM_AG_A_SI",
    "RRAM_AG_A_SI_STOCHASTIC",
    "SOFT_BOUNDS",
    "ltp",
    "ltd",
    "pulses_between",
]


@dataclasses.dataclass(frozen=True)
class Device:
    """One kind of analog synapse (see the module docstring for the equations).

    **Arguments:**
    - `levels_ltp`, `levels_ltd`: pulses N, N_d across the full range (None: continuous,
      no quantisation).
    - `nl_ltp`, `nl_ltd`: nonlinearities of the LTP and LTD curves (0: linear; the sign is
      ignored: the curves always saturate towards the end they move to).
    - `on_off`: G_max / G_min (> 1; sets the read-noise floor; None: infinite).
    - `c2c`: std of the conductance noise per write, as a fraction of the range.
    - `c2c_pulse`: std per pulse (summed over |dP| pulses), fraction of the range.
    - `d2d`: std of the nonlinearity from device to device.
    - `read_noise`: relative std of the conductance when read (per batch).
    - `dac_bits`, `adc_bits`: input / output converter resolution (None: ideal).
    - `rounding`: how an update becomes a whole number of pulses: `"nearest"` (DNN+NeuroSim;
      updates under half a pulse are lost) or `"stochastic"` (floor(dP + u), u ~ U[0, 1):
      the expected pulse count is the update, as with aihwkit's stochastic pulse trains).
    """

    levels_ltp: int | None = None
    levels_ltd: int | None = None
    nl_ltp: float = 0.0
    nl_ltd: float = 0.0
    on_off: float | None = None
    c2c: float = 0.0
    c2c_pulse: float = 0.0
    d2d: float = 0.0
    read_noise: float = 0.0
    dac_bits: int | None = None
    adc_bits: int | None = None
    rounding: str = "nearest"

    def check(self) -> Device:
        """This device, or a `ValueError` naming the first invalid parameter."""
        for name in ("levels_ltp", "levels_ltd", "dac_bits", "adc_bits"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, np.integer)) and value >= 2):
                raise ValueError(f"Device.{name}: expected an int >= 2 or None; got {value!r}.")
        if (self.levels_ltp is None) != (self.levels_ltd is None):
            raise ValueError(
                "Device.levels_ltp / levels_ltd: give both (a quantised device) or neither "
                f"(continuous); got {self.levels_ltp!r} and {self.levels_ltd!r}."
            )
        if self.on_off is not None and not self.on_off > 1:
            raise ValueError(f"Device.on_off: expected G_max / G_min > 1; got {self.on_off}.")
        for name in ("c2c", "c2c_pulse", "d2d", "read_noise"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"Device.{name}: expected a finite std >= 0; got {value!r}.")
        if self.rounding not in ROUNDINGS:
            raise ValueError(
                f"Device.rounding: expected one of {ROUNDINGS}; got {self.rounding!r}."
            )
        for name in ("nl_ltp", "nl_ltd"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"Device.{name}: expected a finite nonlinearity.")
        return self

    @property
    def quantised(self) -> bool:
        return self.levels_ltp is not None


ROUNDINGS = ("nearest", "stochastic")
IDEAL = Device()
# DNN+NeuroSim's Ag:a-Si RRAM (MLP_NeuroSim V3.0): 97 LTP / 100 LTD levels, NL +2.40/-4.88,
# G_max 38.46 nS / G_min 3.08 nS (on/off 12.5), cycle-to-cycle 3.5% of the range per write.
RRAM_AG_A_SI = Device(97, 100, 2.40, 4.88, on_off=12.5, c2c=0.035)
# the same device written with stochastic rounding: updates under half a pulse (the usual
# optimizers' steps at 97 levels) pass in expectation instead of being lost
RRAM_AG_A_SI_STOCHASTIC = dataclasses.replace(RRAM_AG_A_SI, rounding="stochastic")
# aihwkit-like soft-bounds device: steps proportional to the distance to the bound (the
# exponential curve with b ~ 1), dw_min = 1/1200 of the range at the centre (0.001 of
# +-0.6), 30% step noise per pulse and 30% device-to-device spread of the step (via nl).
SOFT_BOUNDS = Device(3000, 3000, 5.0, 5.0, c2c_pulse=0.3 / 1200, d2d=1.5, rounding="stochastic")
PRESETS = {
    "ideal": IDEAL,
    "rram-ag-a-si": RRAM_AG_A_SI,
    "rram-ag-a-si-stochastic": RRAM_AG_A_SI_STOCHASTIC,
    "soft-bounds": SOFT_BOUNDS,
}


def same_always_on_training(a: Device, b: Device) -> bool:
    """Whether always-on training on device `a` and on device `b` is the same computation:
    they differ at most in `rounding`, which only settle-then-update's writes (`OnDevice.write`)
    read; an always-on stream (`OnDevice.drift`, `pulse_noise`, `after_stream`) is a
    stochastic pulse stream on either."""
    return dataclasses.replace(a, rounding=b.rounding) == b


_LINEAR = 1e-6  # |nl| below which a curve is taken as linear


def _safe(nl):
    return jnp.where(jnp.abs(nl) < _LINEAR, 1.0, jnp.abs(nl))


def _slope(g, nl):
    """nl (b - g), b = 1 / (1 - e^{-nl}): the LTP curve's dg/dP at g over 1 / N (1 when
    nl -> 0)."""
    s = _safe(nl)
    return jnp.where(jnp.abs(nl) < _LINEAR, 1.0, s * (-1.0 / jnp.expm1(-s) - g))


def ltp(p, nl, n):
    r"""$g_\mathrm{LTP}(P) = b (1 - e^{-\mathrm{nl}\, P/N})$, $b = 1/(1 - e^{-\mathrm{nl}})$;
    $P/N$ when $\mathrm{nl} \to 0$."""
    s = _safe(nl)
    curved = jnp.expm1(-s * p / n) / jnp.expm1(-s)
    return jnp.where(jnp.abs(nl) < _LINEAR, p / n, curved)


def ltp_pulses(g, nl, n):
    r"""The inverse of `ltp`: $P = -(N/\mathrm{nl}) \ln(1 - g/b)$."""
    s = _safe(nl)
    curved = -(n / s) * jnp.log1p(g * jnp.expm1(-s))
    return jnp.where(jnp.abs(nl) < _LINEAR, g * n, curved)


def ltd(p, nl, n):
    r"""$g_\mathrm{LTD}(P) = 1 - g_\mathrm{LTP}(P)$: depression mirrors potentiation from the
    top."""
    return 1.0 - ltp(p, nl, n)


def ltd_pulses(g, nl, n):
    return ltp_pulses(1.0 - g, nl, n)


def pulses_between(g_from, g_to, nl, n):
    r"""Closed form: LTP pulses to move from `g_from` up to `g_to` on one curve,
    $P = (N/\mathrm{nl}) \ln((b - g_\mathrm{from})/(b - g_\mathrm{to}))$,
    $b = 1/(1 - e^{-\mathrm{nl}})$."""
    b = 1.0 / (1.0 - math.exp(-abs(nl)))
    return (n / abs(nl)) * math.log((b - g_from) / (b - g_to))


class OnDevice(AbstractLearner):
    """`learner` with its forward weights on analog devices (see `on_device`).

    `scales[i]` is w_max of the i-th prunable matrix, `nl_ltp[i]`, `nl_ltd[i]` its devices'
    nonlinearities (arrays of the matrix's shape with device-to-device variation `d2d`,
    else scalars); none of them learns.
    `stream_noise` says where the always-on mode puts the pulse streams' noise (see
    `on_device`).
    """

    learner: AbstractLearner
    device: Device = eqx.field(static=True)
    scales: list[Array]
    nl_ltp: list[Array]
    nl_ltd: list[Array]
    stream_noise: str = eqx.field(static=True, default="batch")

    @property
    def sizes(self):
        return self.learner.sizes

    def trainable(self):
        return OnDevice(self.learner.trainable(), self.device, *self._fixed(), self.stream_noise)

    def prunable(self):
        return OnDevice(self.learner.prunable(), self.device, *self._fixed(), self.stream_noise)

    def _fixed(self):
        n = len(self.scales)
        return [False] * n, [False] * n, [False] * n

    def predict(self, x):
        key = _batch_key(x)
        out = self.read(key).predict(convert(x, self.device.dac_bits))
        return convert(out, self.device.adc_bits)

    def read(self, key: PRNGKeyArray) -> AbstractLearner:
        """The learner as the periphery reads it: conductances with read noise."""
        if self.device.read_noise == 0:
            return self.learner
        on_off = self.device.on_off
        floor = 0.0 if on_off is None else 1.0 / (on_off - 1.0)
        keys = iter(jax.random.split(key, len(self.scales)))

        def noisy(w, scale):
            g = _to_g(w, scale)
            g = g + self.device.read_noise * (g + floor) * jax.random.normal(next(keys), w.shape)
            return _to_w(g, scale)

        leaves, treedef, rest = _split(self.learner)
        read = [noisy(w, scale) for w, scale in zip(leaves, self.scales)]
        return _rebuild(self.learner, read, treedef, rest)

    def write(self, learner: AbstractLearner, key: PRNGKeyArray) -> OnDevice:
        """This learner after its weights were asked to become `learner`'s: the device
        leaves move by the pulses nearest to the change, along their curves, with noise;
        the digital leaves take the new values as they are."""
        old = _device_leaves(self.learner)
        new, treedef, rest = _split(learner)
        keys = jax.random.split(key, len(old))
        written = [
            self._pulse(w, w_new, i, k) for i, (w, w_new, k) in enumerate(zip(old, new, keys))
        ]
        return OnDevice(_rebuild(learner, written, treedef, rest), *self._rest())

    def _rest(self):
        return self.device, self.scales, self.nl_ltp, self.nl_ltd, self.stream_noise

    def _pulse(self, w, target, i, key):
        """Device leaf `i` at weights `w` after the pulses nearest to `target - w`."""
        d, scale = self.device, self.scales[i]
        dw = target - w
        n_up = 1.0 if d.levels_ltp is None else float(d.levels_ltp)
        n_down = 1.0 if d.levels_ltd is None else float(d.levels_ltd)
        up = dw / (2.0 * scale) * n_up  # pulses, before rounding (range units x levels)
        down = -dw / (2.0 * scale) * n_down
        round_key, noise_key = jax.random.split(key)
        if d.quantised and d.rounding == "nearest":
            up, down = jnp.round(up), jnp.round(down)
        elif d.quantised:  # one uniform draw for both directions: only one of them is used
            u = jax.random.uniform(round_key, w.shape, w.dtype)
            up, down = jnp.floor(up + u), jnp.floor(down + u)
        count = jnp.maximum(jnp.maximum(up, down), 0.0)
        if self._linear_and_continuous():  # the curve is w + dw: no round trip through g
            w_new = jnp.clip(target, -scale, scale)
        else:
            g, nl_up, nl_down = _to_g(w, scale), self.nl_ltp[i], self.nl_ltd[i]
            g_up = ltp(jnp.clip(ltp_pulses(g, nl_up, n_up) + up, 0.0, n_up), nl_up, n_up)
            g_down = ltd(
                jnp.clip(ltd_pulses(g, nl_down, n_down) + down, 0.0, n_down), nl_down, n_down
            )
            w_new = _to_w(jnp.where(up > 0, g_up, jnp.where(down > 0, g_down, g)), scale)
        if d.c2c > 0 or d.c2c_pulse > 0:
            std = d.c2c * (count > 0) + d.c2c_pulse * jnp.sqrt(count)
            noise = 2.0 * scale * std * jax.random.normal(noise_key, w.shape, w.dtype)
            w_new = jnp.clip(w_new + noise, -scale, scale)
        return w_new.astype(w.dtype)

    # -- always-on: the device's response to a continuous stream of small pulses ----------

    def drift(self, weights: list[Array], rates: list[Array]) -> list[Array]:
        r"""$dw/dt$ of the devices asked for rates $dw/dt = r$: a stream of pulses, each moving
        $g$ along its curve, in the limit of many small pulses,

        $$
        \frac{dw}{dt} = r\, s(g), \qquad s_\mathrm{up}(g) = \mathrm{nl}\, (b - g), \qquad
        s_\mathrm{down}(g) = \mathrm{nl}_d\, (b_d - 1 + g)
        $$

        (the slope $dg/dP$ of the LTP or LTD curve at $g$ over the mean slope $1/N$; 1 for a
        linear device), zero past the end of the range it moves to. With equal nonlinearity
        both ways this is a scaled rate and a decay driven by the distance travelled,

        $$
        \frac{dw}{dt} = \mathrm{nl} \left(b - \tfrac12\right) r
            - \frac{\mathrm{nl}\, |r|}{2 w_\max}\, w,
        $$

        so updates that cancel (noise) pull a weight towards zero as
        $e^{-\mathrm{nl}\, \mathrm{travel} / (2 w_\max)}$: a soft-bounds device holds a weight
        only as far as its updates agree in sign."""
        out = []
        for i, (w, r) in enumerate(zip(weights, rates)):
            g = _to_g(w, self.scales[i])
            up = _slope(g, self.nl_ltp[i]) * (g < 1.0)
            down = _slope(1.0 - g, self.nl_ltd[i]) * (g > 0.0)
            out.append(r * jnp.where(r > 0, up, down))
        return out

    def pulse_noise(self, weights: list[Array], rates: list[Array]) -> list[Array] | None:
        """The diffusion of stochastic pulse streams delivering `drift`: pulses of the mean
        step `d = 2 w_max / N` at rate |dw/dt| / d give the variance rate |dw/dt| d (their
        count's shot noise, the finite levels), and per-pulse noise `c2c_pulse` adds
        |dw/dt| / d (2 w_max c2c_pulse)^2. None for a continuous device (no pulses)."""
        if not self.device.quantised:
            return None
        return [jnp.sqrt(self._pulse_variance(i, r, jnp.abs(r))) for i, r in enumerate(rates)]

    def _pulse_variance(self, i, direction, travel):
        """Variance of the change of device leaf `i` after pulse streams that travelled
        `travel` (sum of |dw|) in the direction of the sign of `direction`."""
        d = self.device
        step = self._pulse_step(i, direction)
        return travel * step + travel / step * (2.0 * self.scales[i] * d.c2c_pulse) ** 2

    def _pulse_step(self, i, direction):
        """The mean change of one pulse, `2 w_max / N` of the LTP (direction > 0) or LTD
        levels."""
        d = self.device
        levels = jnp.where(direction > 0, float(d.levels_ltp), float(d.levels_ltd))
        return 2.0 * self.scales[i] / levels

    def after_stream(
        self,
        learner: AbstractLearner,
        key: PRNGKeyArray,
        travel: list[Array] | None = None,
    ) -> OnDevice:
        """This learner after a stream moved its devices to `learner`'s weights (always-on).

        `travel[i]` is the distance each device of leaf i moved over the stream,
        `int |dw/dt| dt` (the `"travel"` state of `Learning(..., device=)`; default the net
        change `|dw|`). With `stream_noise="batch"` the streams' pulse noise (see
        `pulse_noise`) is added here, summed over the stream: variance `travel d + travel /
        d (2 w_max c2c_pulse)^2`, `d = 2 w_max / N`. A device is written (gets the per-write
        noise `c2c`) with the probability that its stream held at least one pulse,
        `1 - e^{-lambda}`, `lambda = travel / d` (every moved device for a continuous one).
        All stay in their range."""
        old = _device_leaves(self.learner)
        new, treedef, rest = _split(learner)
        if travel is None:
            travel = [jnp.abs(w_new - w) for w, w_new in zip(old, new)]
        keys = jax.random.split(key, len(old))
        d = self.device
        out = []
        for i, (w, w_new, moved, k) in enumerate(zip(old, new, travel, keys)):
            scale = self.scales[i]
            written_key, noise_key, pulse_key = jax.random.split(k, 3)
            direction = w_new - w
            if d.quantised and self.stream_noise == "batch":
                std = jnp.sqrt(self._pulse_variance(i, direction, moved))
                w_new = w_new + std * jax.random.normal(pulse_key, w.shape, w.dtype)
            if d.c2c > 0:
                if d.quantised:
                    pulses = moved / self._pulse_step(i, direction)
                    written = jax.random.uniform(written_key, w.shape) < -jnp.expm1(-pulses)
                else:
                    written = moved != 0
                noise = 2.0 * scale * d.c2c * jax.random.normal(noise_key, w.shape, w.dtype)
                w_new = w_new + noise * written
            out.append(jnp.clip(w_new, -scale, scale).astype(w.dtype))
        return OnDevice(_rebuild(learner, out, treedef, rest), *self._rest())

    def _linear_and_continuous(self) -> bool:
        d = self.device
        return not d.quantised and d.nl_ltp == 0 and d.nl_ltd == 0 and d.d2d == 0


def on_device(
    learner: AbstractLearner,
    device: Device,
    *,
    headroom: float = 2.0,
    seed: int = 0,
    stream_noise: str = "batch",
) -> OnDevice:
    """`learner` with its forward weights (`prunable()`) programmed onto `device`.

    Each matrix gets the range `w_max = headroom * max|W|` and its devices their
    nonlinearities (with the device-to-device spread drawn from `seed`); the weights are
    programmed to the nearest LTP level. Train the result with `fit` in either mode: the
    updates become pulses (see the module docstring). A `Pruned` learner keeps its masks
    (pruned devices stay at zero).

    `stream_noise` (always-on mode only): where the pulse streams' noise (the shot noise of
    the finite levels and `c2c_pulse`) enters. `"step"`: as the SDE's diffusion at every
    integration step (`OnDevice.pulse_noise`; one Gaussian draw per weight per step: in one
    measurement on LE, 3.8x the time of a noise-free stream and 1.4x that of `"batch"`);
    `"batch"` (default): summed over each streamed
    batch and added at its end (`OnDevice.after_stream`), the same variance for every
    weight's end-of-batch value, less the within-batch feedback of the noise on the
    neurons (whose rates change little within a batch).

    **Returns:** an `OnDevice` learner.
    """
    if isinstance(learner, OnDevice):
        raise ValueError("learner: it is already on a device; pass its .learner to re-program.")
    if not isinstance(learner, AbstractLearner):
        raise ValueError(f"learner: expected a dynlearn.AbstractLearner; got {type(learner)}.")
    if not isinstance(device, Device):
        raise ValueError(
            f"device: expected a dynlearn.hardware.Device (or one of {sorted(PRESETS)} via "
            f"hardware.PRESETS); got {type(device).__name__}."
        )
    device.check()
    if stream_noise not in ("batch", "step"):
        raise ValueError(f"stream_noise: expected 'batch' or 'step'; got {stream_noise!r}.")
    if not (headroom > 0 and np.isfinite(headroom)):
        raise ValueError(f"headroom: expected a finite factor > 0; got {headroom}.")
    leaves = _device_leaves(learner)
    if not leaves:
        raise ValueError(f"learner: {type(learner).__name__}.prunable() selects no weights.")
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    scales, nl_up, nl_down = [], [], []
    for w, key in zip(leaves, keys):
        largest = float(jnp.max(jnp.abs(w)))
        scales.append(jnp.asarray(headroom * (largest if largest > 0 else 1.0), w.dtype))
        # without device-to-device spread, one nonlinearity per matrix (a scalar): a
        # per-device array would be read at every step of an always-on stream for nothing
        shape = w.shape if device.d2d > 0 else ()
        spread = device.d2d * jax.random.normal(key, (2, *shape), w.dtype)
        nl_up.append(jnp.abs(device.nl_ltp) + spread[0])
        nl_down.append(jnp.abs(device.nl_ltd) + spread[1])
    placed = OnDevice(learner, device, scales, nl_up, nl_down, stream_noise)
    if not device.quantised:
        return placed
    n = float(device.levels_ltp)

    def program(w, i):
        g = _to_g(w, scales[i])
        return _to_w(ltp(jnp.round(ltp_pulses(g, nl_up[i], n)), nl_up[i], n), scales[i])

    programmed = [program(w, i) for i, w in enumerate(leaves)]
    _, treedef, rest = _split(learner)
    return OnDevice(_rebuild(learner, programmed, treedef, rest), *placed._rest())


def convert(x: Array, bits: int | None) -> Array:
    """A signed `bits`-bit converter scaled to the batch's largest magnitude (None: ideal)."""
    if bits is None:
        return x
    top = 2 ** (bits - 1) - 1
    scale = jnp.max(jnp.abs(x))
    scale = jnp.where(scale > 0, scale, 1.0)
    return jnp.round(x / scale * top) * scale / top


def unwrap_device(learner) -> tuple[OnDevice | None, AbstractLearner]:
    """`(the OnDevice wrapper, its learner)`, or `(None, learner)` for any other."""
    if isinstance(learner, OnDevice):
        return learner, learner.learner
    return None, learner


def _to_g(w, scale):
    return jnp.clip((w / scale + 1.0) / 2.0, 0.0, 1.0)


def _to_w(g, scale):
    return scale * (2.0 * g - 1.0)


def _split(learner: AbstractLearner) -> tuple[list[Array], PyTree, PyTree]:
    """`(device leaves, their treedef, the rest)` of a learner (through a `Pruned`)."""
    selected, rest = eqx.partition(learner, learner.prunable())
    leaves, treedef = jax.tree.flatten(selected)
    return leaves, treedef, rest


def _device_leaves(learner: AbstractLearner) -> list[Array]:
    return _split(learner)[0]


def _rebuild(learner: AbstractLearner, leaves: list[Array], treedef, rest) -> AbstractLearner:
    """`learner` with new device leaves; a `Pruned` learner's pruned entries stay zero."""
    if isinstance(learner, Pruned):
        leaves = [leaf * mask for leaf, mask in zip(leaves, learner.masks)]
    return eqx.combine(jax.tree.unflatten(treedef, leaves), rest)


def _batch_key(x: Array) -> PRNGKeyArray:
    """A read-noise key for an evaluation batch: reproducible, different for different
    batches (folded from the batch's sum; `predict` has no key of its own)."""
    bits = jax.lax.bitcast_convert_type(jnp.sum(x).astype(jnp.float32), jnp.uint32)
    return jax.random.fold_in(jax.random.key(0), bits)


# -- cost model --------------------------------------------------------------------------------

CREDITS = ("sequential", "sequential-separate", "direct", "forward-only", "settling", "local")


@dataclasses.dataclass(frozen=True)
class CostParameters:
    """Per-operation costs of a crossbar accelerator (illustrative orders of magnitude for
    RRAM compute-in-memory tiles; every figure derived from them says so).

    - `t_read`: one analog matrix-vector product of a layer's array (all rows at once), s.
    - `t_write`: one parallel outer-product write of a layer's array (a pulse train), s.
    - `e_mac`: energy per multiply-accumulate in the array, J.
    - `e_convert`: energy per ADC conversion (one per output line per read), J.
    - `e_write`: energy per written device per update, J.
    """

    t_read: float = 10e-9
    t_write: float = 100e-9
    e_mac: float = 1e-15
    e_convert: float = 2e-12
    e_write: float = 1e-12


def training_cost(
    sizes: list[int], credit: str, *, settle_steps: int = 0, params: CostParameters | None = None
) -> dict[str, float]:
    """Latency and energy of one training update (one sample) of a layered network `sizes`
    with L = len(sizes) - 1 weight arrays, by how its learning rule assigns credit:

    - `"sequential"` (backprop): after the L forward reads, for l = L..1 the array W_l is
      written and, for l > 1, read transposed for the next error: both on the same array,
      so 2L - 1 sequential steps (L writes, L - 1 reads);
    - `"sequential-separate"` (feedback alignment and kin: B_l in its own array): the
      L - 1 error reads are sequential, each array's write overlaps the next read: L steps;
    - `"direct"` (DFA, DRTP): every layer reads its own B_l e at once, then all write at
      once: 2 steps;
    - `"forward-only"` (PEPITA): a second forward pass of L reads, then all write: L + 1;
    - `"settling"` (PC, EP, microcircuits): `settle_steps` iterations of all arrays read
      forward and transposed at once (2 reads per step, in parallel over layers), then all
      write: 2 settle_steps + 1;
    - `"local"` (Hebbian, winner-take-all): all write after the forward pass: 1 step.

    Memory traffic: the weights never leave their arrays; what moves between arrays is
    one value per ADC conversion (activations, errors), counted as `transfers`.

    **Returns:** `{"forward_steps", "update_steps", "latency", "update_latency",
    "energy", "macs", "transfers"}` (seconds, joules, counts), steps counted in array
    operations.
    """
    if credit not in CREDITS:
        raise ValueError(f"credit: expected one of {CREDITS}; got {credit!r}.")
    if len(sizes) < 2 or any(not (isinstance(n, int) and n > 0) for n in sizes):
        raise ValueError(f"sizes: expected >= 2 positive layer widths; got {sizes}.")
    p = params or CostParameters()
    depth = len(sizes) - 1
    forward_macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    devices = forward_macs  # one device per weight
    reads, writes = {
        "sequential": (depth - 1, depth),
        "sequential-separate": (depth - 1, 1),
        "direct": (1, 1),
        "forward-only": (depth, 1),
        "settling": (2 * settle_steps, 1),
        "local": (0, 1),
    }[credit]
    backward_macs = {
        "sequential": forward_macs - sizes[0] * sizes[1],
        "sequential-separate": forward_macs - sizes[0] * sizes[1],
        "direct": sizes[-1] * sum(sizes[1:-1]),
        "forward-only": forward_macs,
        "settling": 2 * settle_steps * forward_macs,
        "local": 0,
    }[credit]
    macs = forward_macs + backward_macs
    hidden, outputs = sum(sizes[1:-1]), sum(sizes[1:])
    conversions = (
        outputs
        + {
            "sequential": hidden,
            "sequential-separate": hidden,
            "direct": hidden,
            "forward-only": outputs,
            "settling": settle_steps * (outputs + hidden),
            "local": 0,
        }[credit]
    )
    update_latency = reads * p.t_read + writes * p.t_write
    return {
        "forward_steps": depth,
        "update_steps": reads + writes,
        "latency": depth * p.t_read + update_latency,
        "update_latency": update_latency,
        "energy": macs * p.e_mac + conversions * p.e_convert + devices * p.e_write,
        "macs": float(macs),
        "transfers": float(conversions),
    }
