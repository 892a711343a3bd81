"""Solver choice, noise terms and input checks shared by `simulate` and `equilibrate`."""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._dynamics import AbstractDynamics, _path_name, total_diffusion

# Names accepted where a solver is asked for (the CLI and quick scripts); code should pass
# solver objects, e.g. `solver=diffrax.Tsit5()`.
SOLVERS: dict[str, type[diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno5": diffrax.Kvaerno5,
}


def resolve_solver(solver, *, adaptive: bool) -> diffrax.AbstractSolver:
    """A diffrax solver from an object, a name in `SOLVERS`, or None (Euler / Tsit5)."""
    if solver is None:
        return diffrax.Tsit5() if adaptive else diffrax.Euler()
    if isinstance(solver, str):
        try:
            return SOLVERS[solver.lower()]()
        except KeyError:
            raise ValueError(
                f"solver: unknown solver name {solver!r}; expected one of "
                f"{sorted(SOLVERS)} or a diffrax.AbstractSolver instance."
            ) from None
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    raise ValueError(
        f"solver: expected a diffrax.AbstractSolver or one of {sorted(SOLVERS)}; "
        f"got {type(solver).__name__}."
    )


def check_system(system) -> None:
    if not isinstance(system, AbstractDynamics):
        raise ValueError(
            f"system: expected a dynlearn.AbstractDynamics (an equinox Module with a "
            f"vector_field); got {type(system).__name__}."
        )


def check_state_dtypes(y, what: str = "y0") -> None:
    """Raise if a leaf of the state `y` is not float32/float64 (or complex): integer states
    would be truncated at every step and float16 loses the small increments of Euler
    steps."""
    leaves = jax.tree_util.tree_flatten_with_path(y)[0]
    for path, leaf in leaves:
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.complexfloating):
            continue
        if not jnp.issubdtype(dtype, jnp.floating) or jnp.finfo(dtype).bits < 32:
            raise ValueError(
                f"{what}: '{_path_name(path)}' has dtype {dtype}; states must be floating "
                "point: use float32 (or float64 with jax_enable_x64)."
            )


def _inexact_leaves_with_path(tree):
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)[0]
    return [
        (_path_name(path), leaf)
        for path, leaf in leaves
        if eqx.is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]


def check_finite(tree, what: str, *, when_traced: bool = True):
    """Raise if any floating leaf of `tree` holds NaN or inf (jit-safe).

    With `when_traced=False` the check runs only on concrete (eager) values: hot inner
    steps whose inputs were validated once up front (as `fit` does for its data set) then
    pay nothing inside `jit`.
    """
    if not when_traced and any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree)):
        return tree
    for name, leaf in _inexact_leaves_with_path(tree):
        bad = jnp.logical_not(jnp.all(jnp.isfinite(leaf)))
        tree = raise_if(
            tree, bad, f"{what} contains NaN or inf in '{name}'; expected finite values."
        )
    return tree


def drift(t, y, system_and_args):
    system, args = system_and_args
    return system.vector_field(t, y, args)


def _is_none(x) -> bool:
    return x is None


class DiagonalNoise(diffrax.AbstractTerm):
    """The noise term `g(t, y, args) * dW` with diagonal (elementwise) diffusion.

    `g` is the system's diffusion with its components' noise composed in
    (`total_diffusion`): a pytree shaped like `y` whose leaves (or whole subtrees) may be
    `None` for noise-free variables; the Brownian path has leaves only for the noisy
    variables, so noise-free state (e.g. plastic weights) costs no random numbers.
    """

    brownian: diffrax.AbstractBrownianPath

    def vf(self, t, y, system_and_args):
        system, args = system_and_args
        return total_diffusion(system, t, y, args)

    def contr(self, t0, t1, **kwargs):
        return self.brownian.evaluate(t0, t1, **kwargs)

    def prod(self, vf, control):
        return jax.tree.map(
            lambda g, dw: jnp.zeros(()) if g is None else g * dw, vf, control, is_leaf=_is_none
        )

    def vf_prod(self, t, y, system_and_args, control):
        g = self.vf(t, y, system_and_args)
        return jax.tree.map(
            lambda g_, dw, y_: (
                jax.tree.map(jnp.zeros_like, y_) if g_ is None else (g_ * dw).astype(y_.dtype)
            ),
            g,
            control,
            y,
            is_leaf=_is_none,
        )


def noise_shape(system, t0, y0, args) -> Any:
    """Shape of the Brownian motion the system needs, or None for an ODE."""
    g = eqx.filter_eval_shape(total_diffusion, system, t0, y0, args)
    if g is None:
        return None
    return jax.tree.map(
        lambda g_, y_: None if g_ is None else jax.ShapeDtypeStruct(jnp.shape(y_), y_.dtype),
        g,
        y0,
        is_leaf=_is_none,
    )


def raise_if(out, condition, template: str, **numbers):
    """Raise where `condition` holds, with `template.format(**numbers)` as the message.

    Eagerly (concrete values) this is a `ValueError` showing the actual numbers; inside
    `jit`/`vmap`/`grad` it is `eqx.error_if`, whose message is fixed at trace time, so the
    numbers read "?" there (call eagerly to see them).
    """
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((out, condition)))
    traced = traced or any(isinstance(x, jax.core.Tracer) for x in numbers.values())
    if not traced:
        if bool(jnp.any(condition)):
            raise ValueError(template.format(**{k: f"{float(v):.4g}" for k, v in numbers.items()}))
        return out
    return eqx.error_if(out, condition, template.format(**{k: "?" for k in numbers}))
