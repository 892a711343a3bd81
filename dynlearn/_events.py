"""Discontinuities: a threshold crossing and the reset it triggers (spikes, resets, jumps).

A system declares one with `event() -> AbstractEvent`; `simulate` then integrates piecewise:
- fixed steps: after every step, the units whose condition has reached zero are reset by a
  masked `jump` inside the compiled loop (spike times are known to within one step, so
  quantities such as an inter-spike interval are accurate to O(dt));
- adaptive steps: diffrax stops at the first crossing, located by a root finder on the
  solver's dense output (to the solver's tolerance), the jump is applied there, and the
  solve restarts from the event; one segment per event, up to `max_events`.
Saved times `ts` are filled from every segment (before a jump: the value at a saved time
equal to an event time is the one just after the reset).
"""

from __future__ import annotations

import abc
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, PyTree

__all__ = ["AbstractEvent"]


class AbstractEvent(eqx.Module):
    """A threshold and its reset.

    - `condition(t, y, args)`: an array, one entry per unit that can fire (e.g.
      `V - V_threshold`); a unit fires when its entry reaches zero from below.
    - `jump(t, y, args, fired)`: the state right after the event; `fired` is a boolean
      array shaped like the condition (reset those units, count their spikes, start a
      refractory period, ...). Units that did not fire must be left unchanged.
    """

    @abc.abstractmethod
    def condition(self, t, y: PyTree, args: Any) -> Array: ...

    @abc.abstractmethod
    def jump(self, t, y: PyTree, args: Any, fired: Bool[Array, ...]) -> PyTree: ...


def _fire(event, t, y, args):
    """Jump the units whose condition is >= 0 (after a fixed step). The masked jump is
    applied unconditionally (it leaves the other units unchanged): a `lax.cond` on "any
    unit fired" would keep XLA from fusing the reset into the step and copy the state
    through the branch, which made a 784-400-10 LIF network 2x slower than a hand-written
    scan (`dynlearn bench spiking`)."""
    fired = event.condition(t, y, args) >= 0
    return event.jump(t, y, args, fired)


def step_times(t0, t1, n_steps: int):
    """`time(i) = t0 + i h`, h = (t1 - t0) / n_steps computed once: the step times of a
    fixed-step solve. (Not `t0 + (t1 - t0) i / n_steps`: in float32 XLA may multiply by a
    rounded 1/n_steps, and step i then starts a rounding error before i h, which for
    h = 1 put it in the previous bin of a `SpikeTrain`.)"""
    h = (t1 - t0) / n_steps

    def time(i):
        return t0 + i * h

    return time


def fixed_steps_with_event(terms, solver, event, t0, t1, n_steps, y0, args, ts, selector):
    """`n_steps` equal steps with a masked reset after each; returns `(y_end, saved)` where
    `saved` holds `selector(y)` at `ts` (linear interpolation within a step, the solver's
    order at the step ends; None without `ts`)."""
    system, drive = args
    time = step_times(t0, t1, n_steps)

    y0 = _fire(event, t0, y0, drive)
    state = solver.init(terms, t0, time(1), y0, args)
    saved = None
    if ts is not None:
        first = selector(t0, y0, drive)
        saved = jax.tree.map(lambda a: jnp.broadcast_to(a, ts.shape + a.shape), first)

    def write(saved, i, y_old, y_stepped, y_reset):
        """Rows j with time(i) < ts[j] < time(i+1): interpolated between the state at the
        step's start and the stepped state (before any reset); rows at time(i+1) (to
        round-off): the state after the reset."""
        if saved is None:
            return saved
        lo, hi = time(i), time(i + 1)
        # a time "at" the step's end, to round-off: a millionth of a step, or a few units
        # in the last place of the time itself (float32 times above ~8 are coarser than
        # 1e-6 of a step of 1)
        ulps = 8 * jnp.finfo(jnp.result_type(ts, hi)).eps * jnp.abs(hi)
        tol = jnp.maximum(1e-6 * (hi - lo), ulps)
        old, new = selector(lo, y_old, drive), selector(hi, y_stepped, drive)
        after = selector(hi, y_reset, drive)
        inside = (ts > lo) & (ts < hi - tol)
        at_end = jnp.abs(ts - hi) <= tol
        weight = jnp.clip((ts - lo) / (hi - lo), 0.0, 1.0)

        def put(rows, a, b, c):
            w = weight.reshape(weight.shape + (1,) * a.ndim).astype(a.dtype)
            rows = jnp.where(inside.reshape(w.shape), a + w * (b - a), rows)
            return jnp.where(at_end.reshape(w.shape), c, rows)

        return jax.tree.map(put, saved, old, new, after)

    def step(i, carry):
        y, state, saved = carry
        y_new, _, _, state, _ = solver.step(terms, time(i), time(i + 1), y, args, state, False)
        y_reset = _fire(event, time(i + 1), y_new, drive)
        return y_reset, state, write(saved, i, y, y_new, y_reset)

    y, _, saved = jax.lax.fori_loop(0, n_steps, step, (y0, state, saved))
    return y, saved


def adaptive_with_event(
    terms, solver, event, t0, t1, dt0, y0, args, controller, tols, max_steps, ts, selector,
    max_events,
):  # fmt: skip
    """Adaptive solves from event to event: diffrax stops at the first upward zero crossing
    of `max(condition)` (located by Newton's method on the dense output), the jump resets
    the units at the maximum, and the next solve starts there. Returns `(y_end, saved,
    num_steps, result)`; `result` is diffrax's code of the last segment, or
    `max_steps_reached` when `max_events` segments did not reach `t1` or a jump left a fired
    unit's condition undiminished."""
    system, drive = args
    rtol, atol = tols
    root_finder = optx.Newton(rtol=rtol, atol=atol * 1e-2)

    def cond_fn(t, y, args, **kwargs):
        return jnp.max(event.condition(t, y, args[1]))

    diffrax_event = diffrax.Event(cond_fn, root_finder=root_finder, direction=True)
    y0 = _fire(event, t0, y0, drive)
    saved0 = None
    if ts is not None:
        first = selector(t0, y0, drive)
        saved0 = jax.tree.map(lambda a: jnp.full(ts.shape + a.shape, jnp.inf, a.dtype), first)

    def segment(carry):
        t_start, y, saved, n_events, steps, _ = carry
        subs = [diffrax.SubSaveAt(t1=True)]
        if ts is not None:
            subs.append(diffrax.SubSaveAt(ts=jnp.clip(ts, t_start, t1), fn=_Saver(selector)))
        sol = diffrax.diffeqsolve(
            terms,
            solver,
            t_start,
            t1,
            dt0,
            y,
            args=args,
            saveat=diffrax.SaveAt(subs=subs),
            stepsize_controller=controller,
            event=diffrax_event,
            max_steps=max_steps,
            throw=False,
        )
        t_end = sol.ts[0][0]
        y_end = jax.tree.map(lambda a: a[0], sol.ys[0])
        hit = sol.result == diffrax.RESULTS.event_occurred
        if ts is not None:
            keep = (ts >= t_start) & ((ts < t_end) | (~hit & (ts <= t_end)))

            def put(rows, new):
                mask = keep.reshape(keep.shape + (1,) * (rows.ndim - 1))
                return jnp.where(mask, new, rows)

            saved = jax.tree.map(put, saved, sol.ys[1])
        condition = event.condition(t_end, y_end, drive)
        fired = hit & (condition >= jnp.max(condition))
        y_next = jax.lax.cond(hit, lambda: event.jump(t_end, y_end, drive, fired), lambda: y_end)
        # A jump that leaves a fired unit's condition where it was (or higher) would fire
        # again at once, or not, by the last bit of the root's location: end the solve as
        # out of events either way (the caller's error says to check the jump).
        stuck = hit & jnp.any(fired & (event.condition(t_end, y_next, drive) >= condition))
        result = diffrax.RESULTS.where(stuck, diffrax.RESULTS.max_steps_reached, sol.result)
        return t_end, y_next, saved, n_events + 1, steps + sol.stats["num_steps"], result

    def more(carry):
        t_start, _, _, n_events, _, result = carry
        running = (result == diffrax.RESULTS.successful) | (
            result == diffrax.RESULTS.event_occurred
        )
        return (t_start < t1) & (n_events < max_events) & running

    start = (
        jnp.asarray(t0, dtype=jnp.result_type(float)),
        y0,
        saved0,
        jnp.asarray(0),
        jnp.asarray(0),
        diffrax.RESULTS.successful,
    )
    t_end, y, saved, n_events, steps, result = jax.lax.while_loop(more, segment, start)
    out_of_events = (t_end < t1) & (result == diffrax.RESULTS.event_occurred)
    result = diffrax.RESULTS.where(out_of_events, diffrax.RESULTS.max_steps_reached, result)
    return y, saved, steps, result


class _Saver(eqx.Module):
    selector: Any = eqx.field(static=True)

    def __call__(self, t, y, args):
        return self.selector(t, y, args[1])
