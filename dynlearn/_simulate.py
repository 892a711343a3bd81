"""`simulate`: integrate a system over [t0, t1] with diffrax, saving only what is asked."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from ._dynamics import AbstractDynamics, all_time_constants, check_step
from ._events import adaptive_with_event, fixed_steps_with_event, step_times
from ._solvers import (
    DiagonalNoise,
    check_finite,
    check_state_dtypes,
    check_system,
    drift,
    noise_shape,
    raise_if,
    resolve_solver,
)
from ._stimulus import jump_times

__all__ = ["Trajectory", "simulate", "select"]


class Trajectory(eqx.Module):
    """What `simulate` returns.

    - `ts`: saved times `(T,)` (None if no times were asked for).
    - `ys`: saved (selected) state, each leaf with a leading time axis (None if none).
    - `y1`: the full state at `t1` (None with `save_end=False`).
    - `num_steps`: solver steps taken.
    - `solver`, `dt`: how it was integrated (recorded in Datasets made from it).

    Under `jax.vmap` every field gains a leading batch axis (`ts` becomes `(batch, T)`).
    """

    ts: Array | None
    ys: PyTree | None
    y1: PyTree | None
    num_steps: Array
    solver: str = eqx.field(static=True, default="")
    dt: float | None = eqx.field(static=True, default=None)


def select(y: PyTree, variables: Sequence[str] | Callable | None) -> PyTree:
    """The part of a state to save.

    `variables` is None (everything), a callable `y -> subset`, or names of top-level
    entries (`"hidden"`) or nested ones (`"hidden/u"`) of a dict state.
    """
    if variables is None:
        return y
    if callable(variables):
        return variables(y)
    if isinstance(variables, str):
        variables = [variables]
    out: dict = {}
    for name in variables:
        node, dest = y, out
        keys = name.split("/")
        for i, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                known = sorted(node) if isinstance(node, dict) else []
                raise ValueError(
                    f"variables: unknown state variable {name!r} (no {key!r}; known at this "
                    f"level: {known})."
                )
            node = node[key]
            if i < len(keys) - 1:
                dest = dest.setdefault(key, {})
        dest[keys[-1]] = node
    return out


def simulate(
    system: AbstractDynamics,
    y0: PyTree,
    t0: float,
    t1: float,
    *,
    args: Any = None,
    dt: float | None = None,
    solver: diffrax.AbstractSolver | str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    ts: ArrayLike | None = None,
    save_end: bool = True,
    variables: Sequence[str] | Callable | None = None,
    key: PRNGKeyArray | None = None,
    max_steps: int | None = None,
    differentiable_noise: bool = False,
    adjoint: diffrax.AbstractAdjoint | None = None,
    check: bool = True,
    max_events: int = 10_000,
) -> Trajectory:
    """Integrate `dy/dt = f(t, y, args)` (+ `g dW`) from `t0` to `t1`.

    Fixed-step (default: Euler with step `dt`) or adaptive (`rtol`/`atol` given; default
    Tsit5, discontinuities of stimuli in `args` declared to the controller). Noisy systems
    (a `diffusion`) are SDEs driven by a Brownian path made from `key`: by default a fast
    path that draws fresh increments per step (fixed steps, no gradient through the noise);
    `differentiable_noise=True` (and any adaptive solve) uses a `VirtualBrownianTree`.

    Memory is flat in the number of steps: only the end (`save_end`) and the times `ts` are
    stored, and of those only `variables` (see `select`). Runs under `jax.jit`/`jax.vmap`.

    A fixed step longer than the fastest of the system's `time_constants()` is refused. A
    system with an `event()` (a threshold and its reset) is integrated piecewise: masked
    resets after each fixed step, or adaptive solves from one located crossing to the next
    (see `dynlearn.AbstractEvent`; not differentiable through the events).

    **Arguments:**
    - `system`, `y0`, `t0`, `t1`, `args`: the system, initial state, time span, drive.
    - `dt`: fixed step size (also the initial step of an adaptive solve).
    - `solver`: a diffrax solver (or a name from `dynlearn.SOLVERS`).
    - `rtol`, `atol`: tolerances; giving either makes the solve adaptive.
    - `ts`: times to save the (selected) state at; `save_end`: keep the full final state.
    - `key`: PRNG key for the noise (required for SDEs).
    - `max_steps`: defaults to the exact count for fixed steps, 100_000 for adaptive (per
      segment between events).
    - `max_events`: with an adaptive solve of a system with an `event()`, the most
      segments (events + 1) before giving up with an out-of-steps error.
    - `check`: validate state shapes and finiteness of `y0` and `args`.

    **Returns:** a `Trajectory`.
    """
    check_system(system)
    user_choices = (adjoint, max_steps)  # a solve configured by hand goes through diffrax
    adaptive = rtol is not None or atol is not None
    solver = resolve_solver(solver, adaptive=adaptive)
    _check_times(t0, t1, dt, adaptive)
    if not adaptive:
        check_step(dt, all_time_constants(system), type(system).__name__)
    if check:
        check_state_dtypes(y0)
        system.check_state(y0, args)
        y0 = check_finite(y0, "y0")
        args = check_finite(args, "args")
    if ts is not None:
        _check_save_times(ts, t0, t1)

    tols = (1e-3 if rtol is None else rtol, 1e-6 if atol is None else atol)
    if adaptive:
        controller = diffrax.PIDController(rtol=tols[0], atol=tols[1])
        jumps = jump_times(args)
        if jumps is not None and jumps.size:
            controller = diffrax.ClipStepSizeController(controller, jump_ts=jumps)
        max_steps = 100_000 if max_steps is None else max_steps
    else:
        controller = diffrax.ConstantStepSize()
        if max_steps is None:
            max_steps = _fixed_step_count(t0, t1, dt)

    terms: diffrax.AbstractTerm = diffrax.ODETerm(drift)
    shape = noise_shape(system, t0, y0, args)
    if shape is not None:
        if key is None:
            raise ValueError(
                f"key: {type(system).__name__} is noisy (it defines a diffusion); pass "
                "key=jax.random.key(seed) to draw its Brownian path."
            )
        if adaptive or differentiable_noise:
            tol = (dt or (t1 - t0) / 1000) / 8
            brownian = diffrax.VirtualBrownianTree(t0, t1, tol=tol, shape=shape, key=key)
        else:
            brownian = diffrax.UnsafeBrownianPath(shape=shape, key=key)
        terms = diffrax.MultiTerm(terms, DiagonalNoise(brownian))
        if adjoint is None and not (adaptive or differentiable_noise):
            adjoint = diffrax.DirectAdjoint()
    event = system.event()
    if event is not None:
        return _with_event(
            event, terms, solver, system, y0, args, t0, t1, dt, adaptive, controller, tols,
            max_steps, ts, variables, save_end, max_events,
        )  # fmt: skip
    if _can_scan(adaptive, ts, *user_choices, (system, y0, args), t0, t1, dt):
        n_steps = max(1, math.ceil((t1 - t0) / dt - 1e-9))
        y_end = _scan_fixed_steps(terms, solver, t0, t1, n_steps, y0, (system, args))
        if save_end:
            y_end = _raise_if_diverged(y_end)
        return Trajectory(
            ts=None,
            ys=None,
            y1=y_end if save_end else None,
            num_steps=jnp.asarray(n_steps),
            solver=type(solver).__name__,
            dt=dt,
        )
    if adjoint is None:
        adjoint = diffrax.RecursiveCheckpointAdjoint()

    subs = [diffrax.SubSaveAt(t1=True, fn=_end_fn if save_end else _nothing_fn)]
    if ts is not None:
        ts = jnp.asarray(ts)
        subs.append(diffrax.SubSaveAt(ts=ts, fn=_Selector(variables)))
    elif variables is not None:
        raise ValueError("variables: selecting variables needs save times; pass ts=... too.")

    sol = diffrax.diffeqsolve(
        terms,
        solver,
        t0,
        t1,
        dt,
        y0,
        args=(system, args),
        saveat=diffrax.SaveAt(subs=subs),
        stepsize_controller=controller,
        adjoint=adjoint,
        max_steps=max_steps,
        throw=False,
    )
    y_end = jax.tree.map(lambda x: x[0], sol.ys[0])
    ys = sol.ys[1] if ts is not None else None
    if save_end:
        y_end = _raise_on_failure(sol, y_end, y_end, max_steps, t1)
    elif ys is not None:
        ys = _raise_on_failure(sol, ys, ys, max_steps, t1)
    return Trajectory(
        ts=sol.ts[1] if ts is not None else None,
        ys=ys,
        y1=y_end if save_end else None,
        num_steps=sol.stats["num_steps"],
        solver=type(solver).__name__,
        dt=dt if isinstance(dt, (int, float)) else None,
    )


def _with_event(
    event, terms, solver, system, y0, args, t0, t1, dt, adaptive, controller, tols, max_steps,
    ts, variables, save_end, max_events,
) -> Trajectory:  # fmt: skip
    """`simulate` for a system with a discontinuity (see `dynlearn._events`)."""
    selector = _Selector(variables)
    if ts is None and variables is not None:
        raise ValueError("variables: selecting variables needs save times; pass ts=... too.")
    ts = None if ts is None else jnp.asarray(ts)
    if adaptive:
        y_end, saved, num_steps, result = adaptive_with_event(
            terms, solver, event, t0, t1, dt, y0, (system, args), controller, tols,
            max_steps, ts, selector, max_events,
        )  # fmt: skip
        y_end = raise_if(
            y_end,
            result == diffrax.RESULTS.max_steps_reached,
            f"simulate: the solver ran out of steps (max_steps={max_steps} per segment, "
            f"max_events={max_events}) before t1={t1}; increase them, or check that the "
            "event's jump moves the state below its threshold.",
        )
        y_end = raise_if(
            y_end,
            (result != diffrax.RESULTS.successful)
            & (result != diffrax.RESULTS.max_steps_reached)
            & (result != diffrax.RESULTS.event_occurred),
            "simulate: the solver failed (step size collapsed or non-finite values): the "
            "system probably diverged; reduce dt, tighten rtol/atol, or check the parameters.",
        )
    else:
        if not isinstance(dt, int | float) or not all(isinstance(x, int | float) for x in (t0, t1)):
            raise ValueError("dt: a system with an event needs concrete t0, t1 and dt.")
        n_steps = max(1, math.ceil((t1 - t0) / dt - 1e-9))
        y_end, saved = fixed_steps_with_event(
            terms, solver, event, t0, t1, n_steps, y0, (system, args), ts, selector
        )
        num_steps = jnp.asarray(n_steps)
    y_end = _raise_if_diverged(y_end)
    return Trajectory(
        ts=ts,
        ys=saved,
        y1=y_end if save_end else None,
        num_steps=num_steps,
        solver=type(solver).__name__,
        dt=dt if isinstance(dt, int | float) else None,
    )


class _Selector(eqx.Module):
    """`select` as a save function that compares equal across calls (no recompilation)."""

    variables: tuple | Callable | None = eqx.field(static=True)

    def __init__(self, variables):
        is_names = variables is not None and not callable(variables)
        if isinstance(variables, str):
            variables = (variables,)
        self.variables = tuple(variables) if is_names else variables

    def __call__(self, t, y, args):
        return select(y, self.variables)


def _end_fn(t, y, args):
    return y


def _nothing_fn(t, y, args):
    return jnp.zeros(())


def _check_times(t0, t1, dt, adaptive: bool) -> None:
    """Concrete times: finite, ordered, and a fixed step no longer than the span (a longer
    one would silently shrink to the span)."""
    for name, value in (("t0", t0), ("t1", t1), ("dt", dt)):
        if isinstance(value, (int, float)) and not math.isfinite(value):
            raise ValueError(f"{name} must be finite; got {value}.")
    concrete = all(isinstance(x, (int, float)) for x in (t0, t1))
    if concrete and not t1 > t0:
        raise ValueError(f"t1 must be greater than t0; got t0={t0}, t1={t1}.")
    if dt is None and not adaptive:
        raise ValueError(
            "dt: a fixed-step solve needs a step size dt (or pass rtol/atol for an adaptive solve)."
        )
    if isinstance(dt, (int, float)) and not dt > 0:
        raise ValueError(f"dt must be > 0; got {dt}.")
    if concrete and not adaptive and isinstance(dt, (int, float)):
        if dt > (t1 - t0) * (1 + 1e-9):
            raise ValueError(
                f"dt={dt} is longer than the span t1 - t0 = {t1 - t0:g}; the step would be "
                "cut to the span. Choose dt <= t1 - t0."
            )


def _check_save_times(ts, t0, t1) -> None:
    """Concrete save times: finite, non-decreasing, inside [t0, t1]."""
    if isinstance(ts, jax.core.Tracer) or not all(isinstance(x, (int, float)) for x in (t0, t1)):
        return
    values = np.asarray(ts, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"ts: expected a non-empty 1-D array of times; got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("ts: contains NaN or inf; expected finite save times.")
    if np.any(np.diff(values) < 0):
        raise ValueError("ts: save times must be non-decreasing.")
    slack = 1e-6 * max(abs(t0), abs(t1), t1 - t0)  # float32 round-off of computed times
    if values[0] < t0 - slack or values[-1] > t1 + slack:
        raise ValueError(
            f"ts: save times must lie in [t0, t1] = [{t0:g}, {t1:g}]; got "
            f"[{values[0]:g}, {values[-1]:g}]."
        )


def _fixed_step_count(t0, t1, dt) -> int:
    if not all(isinstance(x, (int, float)) for x in (t0, t1, dt)):
        raise ValueError(
            "max_steps: t0, t1 or dt is traced, so the number of steps is unknown at "
            "compile time; pass max_steps=... explicitly."
        )
    return math.ceil((t1 - t0) / dt * (1 + 1e-9)) + 1


def _can_scan(adaptive, ts, adjoint, max_steps, inputs, t0, t1, dt) -> bool:
    """Fixed steps, only the end saved, nobody differentiating: diffrax's solver is stepped
    by a `lax.fori_loop`, without diffeqsolve's per-step bookkeeping (step-size control,
    saving, events). Under `jax.grad` the general path keeps memory bounded by recursive
    checkpointing, so any JVP tracer in the inputs selects it."""
    if adaptive or ts is not None or adjoint is not None or max_steps is not None:
        return False
    if not all(isinstance(x, (int, float)) for x in (t0, t1, dt)):
        return False
    return not any(
        isinstance(leaf, jax.interpreters.ad.JVPTracer) for leaf in jax.tree.leaves(inputs)
    )


def _scan_fixed_steps(terms, solver, t0, t1, n_steps, y0, args):
    """`n_steps` equal steps of `solver` from t0 to t1, keeping only the state (the step
    times are computed in the loop, so nothing grows with the number of steps)."""
    time = step_times(t0, t1, n_steps)
    state = solver.init(terms, t0, time(1), y0, args)

    def step(i, carry):
        y, state = carry
        y, _, _, state, _ = solver.step(
            terms, time(i), time(i + 1), y, args, state, made_jump=False
        )
        return y, state

    y, _ = jax.lax.fori_loop(0, n_steps, step, (y0, state))
    return y


def _raise_if_diverged(y):
    """`y` with each floating leaf checked for NaN/inf on its own, so that a leaf the caller
    never reads (e.g. neuron state when only the learned weights are used) is not kept alive
    by the check and XLA can drop its computation.

    (Split over devices, `fit(devices=...)`, the check's host callback gathers the leaf to
    one device and back once per simulation. Passing only a scalar flag through it and
    selecting the leaf on the flag avoided that, but XLA's CPU compiler crashed now and then
    while compiling programs with that form, in three CI runs of the test suite; reverted
    until that is understood.)"""

    def check(x):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return x
        return raise_if(x, ~jnp.all(jnp.isfinite(x)), _DIVERGED)

    return jax.tree.map(check, y)


_DIVERGED = (
    "simulate: the state became NaN or inf, the system diverged: reduce dt (it must be well "
    "below the fastest time constant) or check the parameters for instability."
)


def _raise_on_failure(sol, out, checked, max_steps, t1):
    """Turn diffrax's result codes and a non-finite state into errors that teach the fix."""
    out = raise_if(
        out,
        sol.result == diffrax.RESULTS.max_steps_reached,
        f"simulate: the solver ran out of steps (max_steps={max_steps}) before t1={t1}; "
        "increase max_steps, increase dt, or loosen rtol/atol.",
    )
    out = raise_if(
        out,
        (sol.result != diffrax.RESULTS.successful)
        & (sol.result != diffrax.RESULTS.max_steps_reached),
        "simulate: the solver failed (step size collapsed or non-finite values): the system "
        "probably diverged; reduce dt, tighten rtol/atol, or check the parameters.",
    )
    leaves = [x for x in jax.tree.leaves(checked) if jnp.issubdtype(x.dtype, jnp.inexact)]
    if leaves:
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        out = raise_if(out, ~finite, _DIVERGED)
    return out
