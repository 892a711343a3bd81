"""How a batch changes a learner: the two learning modes, each carrying its settings.

- `SettleThenUpdate(optimizer)`: the circuit settles on the batch, its local rule gives an
  update (`AbstractBatchLearner.updates`), and an optax optimizer applies it — the
  literature's baseline.
- `AlwaysOn(presentation)`: the batch streams through `Learning(circuit)`, in which neurons
  and weights evolve together; one simulation is the learning (phase-free).

`fit` and `fit_seeds` call `check` before any work, `init` once, and `step` per batch.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._dynamics import all_time_constants, check_step
from ._learner import AbstractBatchLearner, AbstractLearner, squared_error
from ._plastic import AbstractPlastic, Inertia, Learning, RMSNormalised, check_inertia
from ._pruning import apply_masks, rewrap, unwrap
from ._simulate import simulate
from ._stimulus import Presentation
from .hardware import convert, unwrap_device

__all__ = ["AbstractMode", "SettleThenUpdate", "AlwaysOn", "Recipe", "inverse_time"]


class AbstractMode(eqx.Module):
    """How one batch changes a learner."""

    @abc.abstractmethod
    def check(self, learner: AbstractLearner, batch_size: int) -> None:
        """Raise a `ValueError` if this mode cannot train `learner` in batches of
        `batch_size` (called before any work)."""

    @abc.abstractmethod
    def init(self, learner: AbstractLearner) -> PyTree:
        """The mode's own state for `learner` (e.g. the optimizer's)."""

    @abc.abstractmethod
    def step(
        self, learner: AbstractLearner, state: PyTree, x: Array, y: Array, key: PRNGKeyArray
    ) -> tuple[AbstractLearner, PyTree, dict[str, Array]]:
        """`(learner, state, metrics)` after one batch."""

    @abc.abstractmethod
    def config(self, learner) -> dict[str, Any]:
        """The settings for `learner`, as JSON-ready values (recorded with metrics and
        checkpoints, and compared when a run resumes)."""

    def split_size(self, batch_size: int) -> int:
        """The length of the batch's axis that `fit(devices=...)` splits over devices: its
        samples (this default), or what else its step treats independently."""
        return batch_size


PROBE_STEPS = 8  # how many updates SettleThenUpdate.probe waits for the optimizer to move


class SettleThenUpdate(AbstractMode):
    """Settle, read the local update, let an `optax` optimizer apply it.

    **Arguments:**
    - `optimizer`: an `optax.GradientTransformation` (e.g. `optax.adam(1e-3)`); the
      learner's updates have a gradient's sign, so optax's usual conventions hold.
    """

    optimizer: optax.GradientTransformation

    def __check_init__(self):
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise ValueError(
                f"optimizer: expected an optax.GradientTransformation (e.g. optax.adam(1e-3)); "
                f"got {type(self.optimizer).__name__}."
            )

    def check(self, learner, batch_size):
        circuit, _ = unwrap(unwrap_device(learner)[1])
        if not isinstance(circuit, AbstractBatchLearner):
            raise ValueError(
                f"mode: {type(circuit).__name__} has no settle-then-update rule (it is not a "
                "dynlearn.AbstractBatchLearner); train it with AlwaysOn(presentation)."
            )
        self.probe(learner)

    def probe(self, learner) -> None:
        """The optimizer's updates of a gradient of ones at the learner's weights must be
        finite, descend (optax subtracts the gradient) and move within `PROBE_STEPS` steps:
        catches a NaN, zero or negative learning rate, also inside a chain or a schedule (a
        warm-up from zero or `optax.MultiSteps` accumulating a few steps is fine)."""
        for leaves in self.updates_of_ones(learner, PROBE_STEPS):
            if not leaves:
                return
            if not all(bool(jnp.all(jnp.isfinite(u))) for u in leaves):
                raise ValueError(
                    "optimizer: its update of a gradient of ones is NaN or inf; check the "
                    "learning rate and the optimizer's settings."
                )
            slope = sum(float(jnp.sum(u)) for u in leaves)
            if slope > 0:
                raise ValueError(
                    "optimizer: it steps up the gradient (is the learning rate negative?); "
                    "updates have a gradient's sign and optax's optimizers subtract them, so "
                    "give a positive learning rate, e.g. optax.adam(1e-3)."
                )
            if slope < 0:
                return
        raise ValueError(
            f"optimizer: its first {PROBE_STEPS} updates of a gradient of ones are zero (is "
            "the learning rate 0?); give a positive learning rate, e.g. optax.adam(1e-3)."
        )

    def updates_of_ones(self, learner, steps: int):
        """The optimizer's first `steps` updates (each a list of arrays) of a gradient of ones
        at `learner`'s weights: what `probe` judges and `config` records."""
        params = eqx.filter(learner, learner.trainable())
        grads = jax.tree.map(jnp.ones_like, params)
        state = self.optimizer.init(params)
        for _ in range(steps):
            updates, state = self.optimizer.update(grads, state, params)
            yield [jnp.asarray(u) for u in jax.tree.leaves(updates)]

    def init(self, learner):
        _, learner = unwrap_device(learner)
        return self.optimizer.init(eqx.filter(learner, learner.trainable()))

    def step(self, learner, state, x, y, key):
        """Settle on the batch, read the local updates, apply the optimizer's step; on a
        device (`dynlearn.hardware`) the circuit settles on the read (noisy) weights and
        inputs after the DAC, and the step is written as pulses."""
        device, learner, reading, x = read_on_device(learner, x, key)
        circuit, masks = unwrap(reading)
        updates, metrics = circuit.updates(x, y, key)
        updates = rewrap(apply_masks(updates, circuit, masks), masks)
        spec = learner.trainable()
        updates, state = self.optimizer.update(
            eqx.filter(updates, spec), state, eqx.filter(learner, spec)
        )
        learned = eqx.apply_updates(learner, updates)
        if masks is not None:  # held at zero whatever the optimizer's state (e.g. momentum)
            learned = rewrap(apply_masks(learned.learner, learned.learner, masks), masks)
        if device is not None:
            learned = device.write(learned, jax.random.fold_in(key, 2))
        return learned, state, metrics

    def config(self, learner):
        """The optimizer's name and its response: the summed updates of its first three
        steps on a gradient of ones at `learner`'s weights, which tells one learning rate,
        schedule or momentum from another (optax keeps them in closures)."""
        update = getattr(self.optimizer, "update", None)
        name = getattr(update, "__qualname__", type(self.optimizer).__name__)
        response = [
            float(f"{sum(np.sum(np.asarray(u, np.float64)) for u in leaves):.6g}")
            for leaves in self.updates_of_ones(learner, 3)
        ]
        return {"optimizer": name.split(".<locals>")[0], "optimizer_response": response}


class AlwaysOn(AbstractMode):
    r"""Weights are state: one simulation over the streamed batch is the learning.

    The batch becomes `presentation.streams` parallel streams of samples, each shown for
    `t_pres` (see `Presentation`), integrated with Euler steps of `dt` from the circuit's
    `init_state` for the first samples, with the weights carried over from batch to batch;
    nothing is reset between the samples of a batch. The metrics are those of the circuit
    before the batch (its `predict`, scored by `loss`).

    With a `gain` schedule every plasticity rate is multiplied by `gain(n)`, $n$ the number
    of training samples presented before the batch (the mode's state, checkpointed with the
    learner): a slow global plasticity gain, e.g. annealed as $g(n) = 1/(1 + n/n_0)$
    (`inverse_time(n_0)`), the solution of the slow dynamics $dg/dn = -g^2/n_0$. Any optax
    schedule works (`optax.exponential_decay(1.0, 5000, 0.5)`, ...). A constant rate keeps
    moving the weights on a long stream; a decaying one lets them settle (stochastic
    approximation: $\sum_n g(n) = \infty$, $\sum_n g(n)^2 < \infty$ for the $1/n$ decay).

    With `rms` (`dynlearn.RMSNormalised(tau, lr)`) every synapse's rate is divided by the
    running RMS of its own rates (RMSprop as slow synaptic dynamics, see `RMSNormalised`);
    that state is carried from batch to batch with the weights (the mode's state) and the
    gain, if any, scales the normalised rates.

    With `inertia` (`dynlearn.Inertia(tau)`) the weights move with a velocity that low-pass
    filters their rates, $\tau\, dv/dt = u - v$, $d\theta/dt = v$ (heavy-ball momentum as
    slow synaptic dynamics), carried from batch to batch like `rms`'s state. With batches
    of stream time $\Delta$ (`t_pres` times the samples per stream) it matches SGD momentum
    $\beta = e^{-\Delta/\tau}$ (0.9: $\tau \approx 9.5\,\Delta$; `with_momentum`). On
    analog devices it keeps a saturating device from decaying under updates that cancel
    (`dynlearn.hardware.OnDevice.drift`).

    **Arguments:**
    - `presentation`: a `dynlearn.Presentation`.
    - `loss`: `loss(output, target)` for the reported training loss (default: the
      squared error).
    - `gain`: optional schedule, `gain(n) -> multiplier >= 0` (default: none, i.e. 1).
    - `rms`: optional `dynlearn.RMSNormalised` (default: none, the circuit's own rates).
    - `inertia`: optional `dynlearn.Inertia` (default: none, the weights follow the rates
      at once).
    """

    presentation: Presentation
    loss: Callable[[Array, Array], Array] = eqx.field(static=True, default=squared_error)
    gain: Callable[[Array], Array] | None = eqx.field(static=True, default=None)
    rms: RMSNormalised | None = None
    inertia: Inertia | None = None

    def __check_init__(self):
        if not isinstance(self.presentation, Presentation):
            raise ValueError(
                f"presentation: expected a dynlearn.Presentation; got "
                f"{type(self.presentation).__name__}."
            )
        if self.gain is not None:
            if not callable(self.gain):
                raise ValueError(
                    f"gain: expected a schedule, a callable n -> multiplier (e.g. "
                    f"dynlearn.inverse_time(5000)); got {type(self.gain).__name__}."
                )
            values = self.gain_response()
            if not all(np.isfinite(v) and v >= 0 for v in values):
                raise ValueError(
                    f"gain: the schedule must give finite multipliers >= 0; at n = "
                    f"{list(GAIN_PROBES)} samples it gives {values}."
                )
        if self.rms is not None and not isinstance(self.rms, RMSNormalised):
            raise ValueError(
                f"rms: expected a dynlearn.RMSNormalised(tau, lr); got {type(self.rms).__name__}."
            )
        check_inertia(self.inertia)

    def after(self, samples: int) -> AlwaysOn:
        """This mode for a learner that has already been trained on `samples` samples: its
        gain continues from there, g(samples + n), instead of starting again at g(0) (e.g.
        to re-train a pruned network at the plasticity it had reached). Without a gain, the
        mode itself."""
        if not (isinstance(samples, (int, np.integer)) and samples >= 0):
            raise ValueError(f"samples: expected an int >= 0; got {samples!r}.")
        if self.gain is None or samples == 0:
            return self
        return dataclasses.replace(self, gain=_Continued(self.gain, int(samples)))

    def with_momentum(self, beta: float, batch_size: int, scope: str = "trainable") -> AlwaysOn:
        r"""This mode with the `Inertia(tau, scope)` that matches SGD momentum `beta` at
        `batch_size`: $\tau = -\Delta / \ln \beta$, $\Delta$ = `t_pres * batch_size /
        streams`, the stream time of one batch (so the velocity keeps $\beta$ of itself
        from one batch to the next)."""
        if not (isinstance(beta, int | float) and 0 < beta < 1):
            raise ValueError(f"beta: expected a momentum in (0, 1); got {beta!r}.")
        streams = self.presentation.streams
        if (
            not (isinstance(batch_size, int | np.integer) and batch_size > 0)
            or batch_size % streams
        ):
            raise ValueError(
                f"batch_size: expected a positive multiple of presentation.streams={streams}; "
                f"got {batch_size!r}."
            )
        batch_time = self.presentation.t_pres * batch_size / streams
        return dataclasses.replace(self, inertia=Inertia(-batch_time / math.log(beta), scope))

    def gain_response(self) -> list[float]:
        """The gain at `GAIN_PROBES` samples (what `config` records)."""
        return [float(f"{float(self.gain(jnp.asarray(n))):.6g}") for n in GAIN_PROBES]

    def check(self, learner, batch_size):
        circuit, _ = unwrap(unwrap_device(learner)[1])
        if not isinstance(circuit, AbstractPlastic):
            raise ValueError(
                f"mode: {type(circuit).__name__} has no always-on plasticity (it is not a "
                "dynlearn.AbstractPlastic); train it with SettleThenUpdate(optimizer)."
            )
        streams = self.presentation.streams
        if batch_size % streams:
            raise ValueError(
                f"batch_size: {batch_size} samples do not split into {streams} equal streams; "
                f"choose a multiple of presentation.streams={streams}."
            )
        inertia = {} if self.inertia is None else {"inertia": self.inertia.tau}
        check_step(
            self.presentation.dt, all_time_constants(circuit) | inertia, type(circuit).__name__
        )

    def split_size(self, batch_size):
        """Its parallel streams: split over devices, each device streams whole streams."""
        return self.presentation.streams

    def init(self, learner):
        """No state, or with a `gain` the number of samples presented so far; with `rms`
        or `inertia`, `{"samples": that, "rms": the synapses' normalisation state,
        "velocity": the weights' velocity}` (the last two only when asked for)."""
        samples = None if self.gain is None else jnp.zeros((), jnp.int32)
        if self.rms is None and self.inertia is None:
            return samples
        circuit, _ = unwrap(unwrap_device(learner)[1])
        params = eqx.filter(circuit, circuit.trainable())
        state = {"samples": samples}
        if self.rms is not None:
            state["rms"] = self.rms.init(self.rms.split(circuit, params)[0])
        if self.inertia is not None:
            state["velocity"] = self.inertia.init(circuit, params)
        return state

    def _slow_state(self) -> tuple[str, ...]:
        """The names of the slow states carried from batch to batch besides the samples."""
        kept = {"rms": self.rms is not None, "velocity": self.inertia is not None}
        return tuple(name for name, on in kept.items() if on)

    def step(self, learner, state, x, y, key):
        """Stream the batch through `Learning(circuit)`; on a device (`dynlearn.hardware`)
        the stream starts from the read (noisy) weights and inputs after the DAC, the
        weights move as the devices let them at every step (`Learning(..., device=)`), and
        the per-write noise is added at the end of the batch."""
        device, learner, reading, x = read_on_device(learner, x, key)
        circuit, masks = unwrap(reading)
        output = circuit.predict(x)
        if y.shape != output.shape:
            raise ValueError(
                f"y: expected targets of shape {output.shape} (the outputs of "
                f"{type(circuit).__name__}); got {y.shape}."
            )
        slow = self._slow_state()
        samples = state["samples"] if slow else state
        gain = None
        if self.gain is not None:
            gain = jnp.asarray(self.gain(samples), x.dtype)
            samples = samples + x.shape[0]
        system = Learning(circuit, masks, gain, self.rms, device, self.inertia)
        stream = self.presentation.stream(x, y)
        start = system.init_state(stream.samples[0]) | {name: state[name] for name in slow}
        end = simulate(
            system,
            start,
            0.0,
            stream.t1,
            args=stream,
            dt=self.presentation.dt,
            key=key,
            check=False,
        ).y1
        learned = rewrap(system.learned(end), masks)
        if device is not None:
            if device.device.read_noise > 0:  # the change over the batch, from the read weights
                spec = learner.trainable()
                change = jax.tree.map(
                    jnp.subtract, eqx.filter(learned, spec), eqx.filter(reading, spec)
                )
                learned = eqx.apply_updates(learner, change)
            learned = device.after_stream(learned, jax.random.fold_in(key, 2), end.get("travel"))
        state = {"samples": samples} | {name: end[name] for name in slow} if slow else samples
        return learned, state, {"loss": self.loss(output, y), "output": output}

    def config(self, learner):
        p = self.presentation
        gain = "none" if self.gain is None else self.gain_response()
        settings = {"t_pres": p.t_pres, "dt": p.dt, "streams": p.streams}
        settings |= {"tau_filter": p.tau_filter, "gain": gain}
        if self.rms is not None:
            rms = self.rms
            settings["rms"] = {"tau": rms.tau, "lr": rms.lr, "eps": rms.eps, "scope": rms.scope}
            if rms.per != "synapse":  # (recorded only when not the default: older runs resume)
                settings["rms"]["per"] = rms.per
        if self.inertia is not None:  # (likewise)
            settings["inertia"] = {"tau": self.inertia.tau, "scope": self.inertia.scope}
        return settings


def read_on_device(learner, x, key):
    """`(device wrapper or None, the learner inside, the learner as read, x after the DAC)`:
    on analog devices (`dynlearn.hardware.OnDevice`) a batch sees the weights with read
    noise (key folded with 1; the write uses 2) and inputs after the DAC."""
    device, learner = unwrap_device(learner)
    if device is None:
        return None, learner, learner, x
    reading = device.read(jax.random.fold_in(key, 1))
    return device, learner, reading, convert(x, device.device.dac_bits)


GAIN_PROBES = (0, 1_000, 10_000, 100_000)  # sample counts at which a gain is checked


class _Continued(NamedTuple):
    """A gain schedule shifted by the samples already seen: `gain(samples + n)` (a named
    tuple, so equal schedules compare equal and a mode's compiled program is reused)."""

    gain: Callable[[Array], Array]
    samples: int

    def __call__(self, n):
        return self.gain(n + self.samples)


class InverseTime(NamedTuple):
    r"""The gain $g(n) = 1/(1 + n/n_0)$; see `inverse_time` (a named tuple: equal gains
    compare equal, so modes built from the same settings share one compiled program)."""

    n_0: float

    def __call__(self, n):
        return 1.0 / (1.0 + n / self.n_0)


def inverse_time(n_0: float) -> InverseTime:
    r"""The plasticity gain after $n$ samples (for `AlwaysOn(..., gain=)`),

    $$
    g(n) = \frac{1}{1 + n/n_0},
    $$

    halved after $n_0$ samples: the $1/n$ decay of stochastic approximation (Robbins &
    Monro 1951) that lets streamed weights converge, and the solution of the slow dynamics
    $dg/dn = -g^2/n_0$, $g(0) = 1$."""
    if not n_0 > 0:
        raise ValueError(f"n_0: expected the number of samples to halve the gain, > 0; got {n_0}.")
    return InverseTime(float(n_0))


class Recipe(NamedTuple):
    """What a registered rule factory returns (`dynlearn.rules`): a learner, the mode that
    trains it, and its batch size; unpack it as `learner, mode, batch_size = recipe`."""

    learner: AbstractLearner
    mode: AbstractMode
    batch_size: int
