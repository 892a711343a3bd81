"""Stimuli: data entering a system as functions of time.

A stimulus is an `equinox.Module` called as `stimulus(t)`. It rides in a system's `args`,
so the same circuit runs on a constant input, a stream of samples, or anything else.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

__all__ = [
    "AbstractStimulus",
    "Constant",
    "StimulusStream",
    "Presentation",
    "as_stimulus",
    "input_and_target",
    "jump_times",
]


class AbstractStimulus(eqx.Module):
    """A time-dependent input `x(t)`."""

    @abc.abstractmethod
    def __call__(self, t) -> Array: ...

    @property
    def jump_ts(self) -> Array | None:
        """Times at which `x(t)` (or its derivative) jumps; declared to adaptive solvers."""
        return None


class Constant(AbstractStimulus):
    """A constant input `x(t) = value`."""

    value: Array

    def __init__(self, value: ArrayLike):
        self.value = jnp.asarray(value)

    def __call__(self, t) -> Array:
        return self.value


class StimulusStream(AbstractStimulus):
    """Samples presented one after another, each for `t_pres`, with a matching target stream.

    Sample `k` is shown on `[t0 + k t_pres, t0 + (k+1) t_pres)`; after the last onset the last
    sample stays on. With `tau_filter`, input and target are low-pass filtered,
    `tau_filter dx_f/dt = x(t) - x_f`, starting from zero at `t0` (the stimulus was off
    before); the filter is evaluated in closed form, so the right-hand side of the driven
    system is continuous.

    **Arguments:**
    - `samples`: `(n_samples, ...)`; any trailing shape (e.g. `(n, batch, features)`).
    - `t_pres`: presentation time of one sample (> 0).
    - `targets`: optional `(n_samples, ...)`, read with `stream.target(t)`.
    - `tau_filter`: optional low-pass time constant (> 0).
    - `t0`: onset of the first sample.
    """

    samples: Float[Array, "n_samples ..."]
    targets: Float[Array, "n_samples ..."] | None
    t_pres: float = eqx.field(static=True)
    tau_filter: float | None = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    _samples_at_onset: Array | None
    _targets_at_onset: Array | None

    def __init__(self, samples, t_pres: float, targets=None, *, tau_filter=None, t0=0.0):
        samples = jnp.asarray(samples)
        if samples.ndim < 1 or samples.shape[0] == 0:
            raise ValueError(
                f"samples must have a leading sample axis with at least one sample; got "
                f"shape {samples.shape}."
            )
        if not t_pres > 0:
            raise ValueError(f"t_pres must be > 0; got {t_pres}.")
        if tau_filter is not None and not tau_filter > 0:
            raise ValueError(f"tau_filter must be > 0 or None; got {tau_filter}.")
        if targets is not None:
            targets = jnp.asarray(targets)
            if targets.shape[0] != samples.shape[0]:
                raise ValueError(
                    f"targets must have one row per sample: samples has {samples.shape[0]}, "
                    f"targets has {targets.shape[0]}."
                )
        self.samples = samples
        self.targets = targets
        self.t_pres = float(t_pres)
        self.tau_filter = None if tau_filter is None else float(tau_filter)
        self.t0 = float(t0)
        self._samples_at_onset = self._filtered_onsets(samples)
        self._targets_at_onset = None if targets is None else self._filtered_onsets(targets)

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    @property
    def t1(self) -> float:
        """End of the last presentation."""
        return self.t0 + self.n_samples * self.t_pres

    @property
    def jump_ts(self) -> Array:
        return self.t0 + self.t_pres * jnp.arange(1, self.n_samples)

    def index(self, t) -> Int[Array, ""]:
        """Index of the sample on at time `t` (clipped to the stream)."""
        k = jnp.floor((t - self.t0) / self.t_pres).astype(jnp.int32)
        return jnp.clip(k, 0, self.n_samples - 1)

    def elapsed(self, t) -> Array:
        """Time since the onset of the sample on at `t` (within `[0, t_pres)`; it keeps
        growing after the last onset)."""
        return t - (self.t0 + self.index(t) * self.t_pres)

    def __call__(self, t) -> Array:
        return self.input(t)

    def input(self, t) -> Array:
        """The (filtered) input at time `t`."""
        return self._read(self.samples, self._samples_at_onset, t)

    def target(self, t) -> Array:
        """The (filtered) target at time `t`."""
        if self.targets is None:
            raise ValueError("This StimulusStream has no targets; pass targets=... to build one.")
        return self._read(self.targets, self._targets_at_onset, t)

    def input_and_target(self, t) -> tuple[Array, Array | None]:
        """`(input(t), target(t))` from one look-up of the sample on at `t`."""
        k = self.index(t)
        x = self._read(self.samples, self._samples_at_onset, t, k)
        if self.targets is None:
            return x, None
        return x, self._read(self.targets, self._targets_at_onset, t, k)

    def _read(self, values, at_onset, t, k=None):
        k = self.index(t) if k is None else k
        x = values[k]
        if self.tau_filter is None:
            return x
        # Exact solution of the filter ODE within presentation k.
        decay = jnp.exp(-jnp.maximum(t - (self.t0 + k * self.t_pres), 0.0) / self.tau_filter)
        return x + (at_onset[k] - x) * decay.astype(x.dtype)

    def _filtered_onsets(self, values):
        """Filter state at every onset: f_{k+1} = x_k + (f_k - x_k) exp(-t_pres/tau)."""
        if self.tau_filter is None:
            return None
        decay = jnp.exp(-self.t_pres / self.tau_filter).astype(values.dtype)
        _, onsets = jax.lax.scan(_filter_step, (jnp.zeros_like(values[0]), decay), values)
        return onsets


class Presentation(eqx.Module):
    """How an always-on circuit sees a batch (`dynlearn.AlwaysOn`): `streams` parallel
    streams of samples, each sample on for `t_pres`, integrated with Euler steps of `dt`.

    A batch of `n` samples becomes `streams` streams of `n / streams` consecutive samples
    each (stream `s` shows samples `s m ... (s+1) m - 1`, `m = n / streams`); parallel
    streams share the circuit's weights, whose updates are averaged over them.

    **Arguments:**
    - `t_pres`: presentation time of one sample (> 0).
    - `dt`: Euler step (> 0, at most `t_pres`).
    - `streams`: number of parallel streams (divides the batch size).
    - `tau_filter`: optional low-pass time constant of input and target (see
      `StimulusStream`).
    """

    t_pres: float = eqx.field(static=True, default=1.0)
    dt: float = eqx.field(static=True, default=0.1)
    streams: int = eqx.field(static=True, default=1)
    tau_filter: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not (self.dt > 0 and self.t_pres >= self.dt):
            raise ValueError(
                f"Presentation: need 0 < dt <= t_pres; got dt={self.dt}, t_pres={self.t_pres}."
            )
        if not (isinstance(self.streams, int) and self.streams >= 1):
            raise ValueError(f"Presentation: streams must be an int >= 1; got {self.streams!r}.")

    @property
    def steps_per_sample(self) -> int:
        return round(self.t_pres / self.dt)

    def stream(self, x: Array, y: Array | None = None) -> StimulusStream:
        """The batch `x` (and targets `y`), `(n, ...)`, as a stream of `(n / streams,
        streams, ...)` samples."""
        n = x.shape[0]
        if n % self.streams:
            raise ValueError(
                f"Presentation: the batch of {n} samples does not split into {self.streams} "
                "equal streams; choose a batch size that is a multiple of streams."
            )

        def parallel(a):
            a = a.reshape((self.streams, n // self.streams) + a.shape[1:])
            return jnp.swapaxes(a, 0, 1)

        return StimulusStream(
            parallel(x),
            self.t_pres,
            None if y is None else parallel(y),
            tau_filter=self.tau_filter,
        )


def _filter_step(carry, x):
    f, decay = carry
    return (x + (f - x) * decay, decay), f


def as_stimulus(x) -> AbstractStimulus:
    """Wrap an array as a `Constant`; pass stimuli and callables through."""
    if isinstance(x, AbstractStimulus) or callable(x):
        return x
    return Constant(x)


def input_and_target(stimulus, t) -> tuple[Array, Array | None]:
    """`(x(t), y(t))` from a drive: a `StimulusStream` with targets gives both; any other
    stimulus (or array, see `as_stimulus`) gives the input and `None` (no teacher)."""
    if isinstance(stimulus, StimulusStream):
        return stimulus.input_and_target(t)
    return as_stimulus(stimulus)(t), None


def jump_times(args) -> Array | None:
    """All jump times declared by the stimuli inside `args`, sorted; None if there are none."""
    stimuli = [
        leaf
        for leaf in jax.tree.leaves(args, is_leaf=lambda x: isinstance(x, AbstractStimulus))
        if isinstance(leaf, AbstractStimulus) and leaf.jump_ts is not None
    ]
    if not stimuli:
        return None
    return jnp.sort(jnp.concatenate([s.jump_ts for s in stimuli]))
