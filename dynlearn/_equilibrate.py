"""`equilibrate`: integrate to a steady state, differentiate through the fixed point."""

from __future__ import annotations

import functools
import math
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._dynamics import AbstractDynamics
from ._solvers import (
    check_finite,
    check_state_dtypes,
    check_system,
    drift,
    raise_if,
    resolve_solver,
)

__all__ = ["CONTROLLER_FACTOR", "Equilibrium", "default_controller", "equilibrate", "tree_norm"]


class Equilibrium(eqx.Module):
    r"""What `equilibrate` returns: the fixed point and how it was reached.

    - `y`: the steady state.
    - `t`: the time at which the steady-state condition held.
    - `num_steps`: solver steps taken.
    - `residual`: $\|f(t, y, \text{args})\|$ (root mean square over all state
      elements).
    - `settled`: whether the steady-state condition was met before `max_time`.
    """

    y: PyTree
    t: Float[Array, ""]
    num_steps: Int[Array, ""]
    residual: Float[Array, ""]
    settled: Bool[Array, ""]


def tree_norm(tree: PyTree) -> Array:
    """Root-mean-square norm over all elements of a pytree (diffrax's default norm)."""
    leaves = jax.tree.leaves(tree)
    total = sum(jnp.sum(jnp.abs(x) ** 2) for x in leaves)
    return jnp.sqrt(total / sum(jnp.size(x) for x in leaves))


CONTROLLER_FACTOR = 0.1  # the default controller's tolerances, relative to the stop's


@functools.lru_cache(maxsize=64)
def default_controller(rtol: float, atol: float) -> diffrax.PIDController:
    """The PID controller `equilibrate` uses for the steady-state tolerances `rtol`, `atol`:
    `CONTROLLER_FACTOR` times tighter (one object per pair, so compiled solves are reused)."""
    return diffrax.PIDController(rtol=CONTROLLER_FACTOR * rtol, atol=CONTROLLER_FACTOR * atol)


def _check_settings(rtol, atol, max_time, max_steps) -> None:
    for name, value in (("rtol", rtol), ("atol", atol), ("max_time", max_time)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")
    if rtol < 0 or atol < 0 or rtol + atol == 0:
        raise ValueError(
            f"rtol and atol must be >= 0 and not both 0 (the steady-state test is "
            f"||dy/dt|| < atol + rtol ||y||); got rtol={rtol!r}, atol={atol!r}."
        )
    if max_time <= 0:
        raise ValueError(f"max_time must be > 0; got {max_time!r}.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1; got {max_steps!r}.")


@functools.lru_cache(maxsize=64)
def _steady_state_event(rtol: float, atol: float) -> diffrax.Event:
    """One Event object per tolerance pair: diffrax's compiled solve is cached on its
    static arguments, and a fresh condition function would force a recompilation on every
    eager call."""
    return diffrax.Event(diffrax.steady_state_event(rtol=rtol, atol=atol, norm=tree_norm))


def equilibrate(
    system: AbstractDynamics,
    y0: PyTree,
    args: Any = None,
    *,
    solver: diffrax.AbstractSolver | str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_time: float = 1e4,
    max_steps: int = 100_000,
    throw: bool = True,
    check: bool = True,
    adjoint_solver: lx.AbstractLinearSolver | None = None,
) -> Equilibrium:
    r"""Integrate $dy/dt = f(y, \text{args})$ from `y0` until the steady-state test
    $\|f\| < \text{atol} + \text{rtol}\, \|y\|$ holds.

    Gradients with respect to the system's parameters and `args` (together $\theta$) flow
    through the fixed point $y^*$ by implicit differentiation (implicit function theorem on
    $f(y^*, \theta) = 0$; recurrent backprop, Almeida 1987 / Pineda 1987),

    $$
    \frac{\partial y^*}{\partial \theta} = -\left(\frac{\partial f}{\partial y}\right)^{-1}
    \frac{\partial f}{\partial \theta},
    $$

    so they cost one linear solve and no stored trajectory. The steady-state test bounds
    $\|dy/dt\|$, not the distance to the fixed point: slow modes can be declared settled
    early, so the tolerance bounds the error of equilibrium-based gradients; use float64
    and tight tolerances for theory checks.

    **Arguments:**
    - `system`, `y0`, `args`: the system, the starting state, the drive (time-independent).
    - `solver`: default Tsit5 with a PID controller. With `dt`, steps are fixed (default
      solver Euler, the literature's setting) and the steady-state test still applies.
    - `rtol`, `atol`: the steady-state test, $\|f(y)\| < \text{atol} + \text{rtol}\, \|y\|$
      (RMS norms).
    - `stepsize_controller`: for adaptive solvers; default a PID controller with
      `CONTROLLER_FACTOR` (1/10) times the steady-state tolerances. It must be tighter
      than the test: near a stable fixed point an explicit solver's steps grow to its
      stability limit, where the state jitters at the size of the controller's local
      error, so with equal tolerances $\|f\|$ hovers at a few times the tolerance and the
      test rarely passes. Measured on 48 random stable 16-d linear systems, Tsit5 at
      1e-3..1e-5 (float32) and 1e-6..1e-10 (float64), Heun at 1e-3..1e-5 (float32): equal
      tolerances settled 3-15 of 48; 1/10 settled 48 of 48 in every setting (Tsit5 in a
      median of 33-429 steps, Heun 214-2171); 1/3 missed one; 1/30 and 1/100 cost more
      steps, and Heun at 1e-5 in float32 then settled only 35 and 4 of 48. In float32
      keep `rtol` >= 1e-5; for tight float64 tolerances use Tsit5 (Heun, second order,
      settled at most 35 of 48 within 5000 steps at 1e-6 and none at 1e-8, whatever the
      controller). (`dynlearn bench steady-state [--float64]`.)
    - `max_time`, `max_steps`: give up after this much model time / this many steps.
    - `adjoint_solver`: the `lineax` solver of the implicit-gradient linear system in
      $\partial f/\partial y$. Default: diffrax's (it materialises the Jacobian; exact, but
      cubic in the state's size). For large states use a matrix-free solver that needs only
      Jacobian-vector products and accepts diffrax's operator (its input carries the saved
      time axis, so it is not "square" to lineax): `lineax.LSMR(rtol=1e-6, atol=1e-6)`
      (the feedback SNN, 400 states x 32 samples: 31 ms per gradient instead of 1.9 s).
    - `throw`: raise an error if the state diverged (NaN or inf), or, naming the time
      reached and the residual, if no steady state was found. `throw=False` never
      raises; inspect `Equilibrium.settled` (use inside `jit` / `vmap` where one element
      must not abort the batch).

    **Returns:** an `Equilibrium`.
    """
    check_system(system)
    _check_settings(rtol, atol, max_time, max_steps)
    fixed = dt is not None
    if fixed and stepsize_controller is not None:
        raise ValueError(
            "stepsize_controller: fixed steps (dt) take no controller; pass dt=None for "
            "adaptive steps with this controller, or leave it None."
        )
    solver = resolve_solver(solver, adaptive=not fixed)
    if check:
        check_state_dtypes(y0)
        system.check_state(y0, args)
        y0 = check_finite(y0, "y0")
        args = check_finite(args, "args")
    if fixed:
        controller = diffrax.ConstantStepSize()
    elif stepsize_controller is None:
        controller = default_controller(rtol, atol)
    else:
        controller = stepsize_controller
    event = _steady_state_event(rtol, atol)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(drift),
        solver,
        0.0,
        max_time,
        dt,
        y0,
        args=(system, args),
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=controller,
        event=event,
        adjoint=diffrax.ImplicitAdjoint()
        if adjoint_solver is None
        else diffrax.ImplicitAdjoint(linear_solver=adjoint_solver),
        max_steps=max_steps,
        throw=False,
    )
    y = jax.tree.map(lambda x: x[0], sol.ys)
    t = sol.ts[0]
    residual = tree_norm(system.vector_field(t, jax.lax.stop_gradient(y), args))
    settled = sol.event_mask if sol.event_mask is not None else jnp.array(False)
    settled = jnp.asarray(settled) & (sol.result == diffrax.RESULTS.event_occurred)
    if throw:
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(y)]))
        finite = finite & jnp.isfinite(residual)
        y = raise_if(
            y,
            ~finite,
            "equilibrate: the state became NaN or inf: the system diverged (it has no stable "
            "fixed point from this start, or the step is too large for it); check the "
            "parameters, or reduce dt / tighten rtol/atol.",
        )
        out_of_steps = (sol.result == diffrax.RESULTS.max_steps_reached) & finite
        y = raise_if(
            y,
            out_of_steps,
            f"equilibrate: no steady state within max_steps={max_steps} solver steps "
            "(reached t={t}, residual |dy/dt| = {residual}); increase max_steps or loosen "
            "rtol/atol (a stiff system may need an implicit solver such as diffrax.Kvaerno5).",
            t=t,
            residual=residual,
        )
        y = raise_if(
            y,
            ~settled & ~out_of_steps & finite,
            f"equilibrate: no steady state by max_time={max_time} (residual |dy/dt| = "
            f"{{residual}} > atol={atol} + rtol={rtol}*|y|); increase max_time, loosen "
            "rtol/atol, or check that the system has a stable fixed point (a diverging "
            "system has none).",
            residual=residual,
        )
    return Equilibrium(
        y=y, t=t, num_steps=sol.stats["num_steps"], residual=residual, settled=settled
    )
