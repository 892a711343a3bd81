"""The `Dynamics` interface: a network is a dynamical system.

A system is an `equinox.Module` whose fields are its parameters. Its state `y` is a pytree
(by convention a dict `{layer: {quantity: array}}`, see `dynlearn.to_dataset`), and `args`
carries what drives it (stimulus, target, nudging strength).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

__all__ = [
    "AbstractDynamics",
    "AbstractEnergyDynamics",
    "gradient_flow",
    "total_diffusion",
    "all_time_constants",
    "check_step",
]


class AbstractDynamics(eqx.Module):
    r"""A continuous-time system $dy/dt = f(t, y, \text{args})$ (+ $g\, dW$ if noisy).

    Subclasses implement `vector_field`; they may override
    - `diffusion(t, y, args)`: diagonal noise amplitudes, a pytree shaped like `y` (or a
      prefix of it, e.g. `None` for noise-free variables), turning the system into the SDE
      $dy = f\, dt + g \odot dW$ (elementwise) with one independent Wiener process $W$ per
      state element (additive noise when `g` does not depend on `y`). The default `None`
      means an ODE.
    - `components()`: sub-systems whose state lives under a top-level key of `y` (e.g. a
      feedback pathway's noise and filters under `y["pathway"]`). The host's vector field
      passes each component what it needs (its drift depends on the host); their noise is
      composed by the engine (`total_diffusion`), so a host never writes a component's
      diffusion.
    - `time_constants()`: the system's time constants by name; fixed-step solves refuse a
      step longer than the fastest (`check_step`).
    - `event()`: a discontinuity (a threshold crossing and its reset, see
      `dynlearn.AbstractEvent`), handled by `simulate` in both integration paths.
    - `energy(y, args)`: a scalar energy for gradient systems (see `AbstractEnergyDynamics`).
    - `init_state(x=None)`: the state the system starts from (a resting state, or the state
      it settles to when input `x` is presented). When defined, `check_state` requires
      every state to have its structure and shapes.
    - `check_state(y)`: raise a `ValueError` naming the variable when `y` does not fit the
      parameters. The default compares `y` with `expected_state(y)` (if `init_state` is
      defined) and checks that `vector_field` maps `y` to a pytree of the same structure and
      shapes.
    """

    @abc.abstractmethod
    def vector_field(self, t, y: PyTree, args: Any) -> PyTree:
        """The drift `dy/dt`, a pytree with the structure of `y`."""

    def diffusion(self, t, y: PyTree, args: Any) -> PyTree | None:
        r"""Diagonal noise amplitude $g$ in $dy = f\, dt + g \odot dW$; `None` for an ODE."""
        return None

    def components(self) -> dict[str, AbstractDynamics]:
        """Sub-systems by the top-level state key that holds their state (default: none)."""
        return {}

    def time_constants(self) -> dict[str, float]:
        """Time constants by name (default: none declared)."""
        return {}

    def event(self):
        """A `dynlearn.AbstractEvent` (threshold and reset) or None (default: continuous)."""
        return None

    def energy(self, y: PyTree, args: Any) -> jax.Array:
        """Scalar energy of the state (gradient systems only)."""
        raise NotImplementedError(f"{type(self).__name__} defines no energy.")

    def check_state(self, y: PyTree, args: Any = None) -> None:
        """Raise a `ValueError` if `y` does not fit this system's parameters."""
        known = hasattr(self, "init_state")
        if known:
            _check_like(self, y, eqx.filter_eval_shape(self.expected_state, y), "init_state")
        _check_vector_field_shapes(self, y, args, state_checked=known)

    def expected_state(self, y: PyTree) -> PyTree:
        """The state `y` should look like (structure and shapes): `init_state()` by default;
        systems whose states carry a batch axis of their own (e.g. parallel streams)
        override this to size it from `y`."""
        return self.init_state()


class AbstractEnergyDynamics(AbstractDynamics):
    r"""A gradient system: $\tau\, dy/dt = -\partial E/\partial y$ on the free variables.

    Subclasses implement `energy(y, args)` and may override `free(y, args)` (which
    variables move; clamped ones have $dy/dt = 0$) and `tau` (a scalar or a pytree prefix of
    `y` of time constants). The vector field is derived with `jax.grad`, so the circuit
    writes nothing but its energy.
    """

    tau: eqx.AbstractVar[Any]

    @abc.abstractmethod
    def energy(self, y: PyTree, args: Any) -> jax.Array: ...

    def free(self, y: PyTree, args: Any) -> PyTree | None:
        """Mask of free variables (pytree prefix of `y` of bools or arrays); None: all."""
        return None

    def vector_field(self, t, y, args):
        return gradient_flow(self.energy, y, args, tau=self.tau, free=self.free(y, args))


def gradient_flow(
    energy: Callable[[PyTree, Any], jax.Array],
    y: PyTree,
    args: Any = None,
    *,
    tau: PyTree | float = 1.0,
    free: PyTree | None = None,
) -> PyTree:
    r"""The gradient flow of an energy, zero on clamped variables:

    $$
    \tau \frac{dy}{dt} = -\frac{\partial E}{\partial y}.
    $$

    Along this flow $dE/dt = -\sum \tau\, |dy/dt|^2 \le 0$ (summed over the state's
    elements), so the energy never increases (Hopfield 1984; the inference dynamics of
    predictive coding and equilibrium propagation).

    **Arguments:**
    - `energy`: `E(y, args) -> scalar`, the energy $E$.
    - `y`, `args`: state and drive.
    - `tau`: time constant(s), a scalar or a pytree prefix of `y`.
    - `free`: `None` (all free) or a pytree prefix of `y` whose leaves are bools or arrays
      broadcastable to the state (1 = free, 0 = clamped).

    Complex states (e.g. holomorphic equilibrium propagation, Laborieux & Zenke 2022) need a
    holomorphic energy; the flow is then $-E'(y)/\tau$ with the complex derivative $E'$.

    **Returns:** `dy/dt`, a pytree like `y`.
    """
    holomorphic = any(jnp.iscomplexobj(leaf) for leaf in jax.tree.leaves(y))
    grad = jax.grad(energy, holomorphic=holomorphic)(y, args)
    flow = _broadcast_map(lambda g, tau_: -g / tau_, grad, tau)
    if free is None:
        return flow
    return _broadcast_map(lambda f, m: f * jnp.asarray(m, f.dtype), flow, free)


def total_diffusion(system: AbstractDynamics, t, y: PyTree, args: Any) -> PyTree | None:
    """The system's own `diffusion` with the noise of its `components()` composed in.

    A component's noise depends on its own state (it is called with `args=None`); a host
    whose own diffusion is `None` gets `None` for its other top-level entries.
    """
    own = system.diffusion(t, y, args)
    parts = {
        key: total_diffusion(component, t, y[key], None)
        for key, component in system.components().items()
        if isinstance(y, dict) and key in y
    }
    parts = {key: noise for key, noise in parts.items() if noise is not None}
    if not parts:
        return own
    if own is None:
        own = {key: None for key in y}
    return {**own, **parts}


def all_time_constants(system: AbstractDynamics) -> dict[str, float]:
    """`time_constants()` of a system and of its components (named `key/name`)."""
    out = dict(system.time_constants())
    for key, component in system.components().items():
        out.update({f"{key}/{name}": tau for name, tau in all_time_constants(component).items()})
    return out


def check_step(
    dt: float, time_constants: dict[str, float], owner: str = "", what: str = "dt"
) -> None:
    """Refuse a fixed step longer than the fastest time constant.

    Euler's stability bound on a leak `tau dy/dt = -y` is `dt < 2 tau`, and at `dt = tau`
    the leak is applied in one step (the "previous-step" schemes of LE and PAL use exactly
    that); beyond `tau` a variable overshoots its target, so that is refused. `what` names
    the setting in the error (e.g. `"inference: EulerInference.dt"`).
    """
    if not time_constants or not isinstance(dt, int | float):
        return
    name, fastest = min(time_constants.items(), key=lambda item: item[1])
    if dt > fastest * (1 + 1e-9):
        where = f" of {owner}" if owner else ""
        raise ValueError(
            f"{what}={dt} is larger than the fastest time constant{where}, {name}="
            f"{fastest:.4g}; use {what.split('.')[-1]} <= {fastest:.4g} (or slow that time "
            "constant down)."
        )


def _broadcast_map(fn, tree, prefix):
    """`fn(leaf, p)` for every leaf of `tree`, `p` the matching leaf of the prefix tree."""
    return jax.tree.map(lambda p, sub: jax.tree.map(lambda leaf: fn(leaf, p), sub), prefix, tree)


def _path_name(path) -> str:
    """`("hidden1", "u")` key path -> `"hidden1/u"` (dict keys, attributes, indices)."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts) or "y"


def _check_vector_field_shapes(
    system: AbstractDynamics, y: PyTree, args: Any, state_checked: bool = False
) -> None:
    """Trace `vector_field` once (no FLOPs) and compare its output with `y`. When `y` was
    already checked against `init_state`, a failure is blamed on `args` (the drive)."""
    name = type(system).__name__
    try:
        out = eqx.filter_eval_shape(system.vector_field, 0.0, y, args)
    except (TypeError, ValueError) as err:
        if state_checked:
            shapes = jax.tree.map(jnp.shape, args)
            raise ValueError(
                f"args does not fit {name}: the state y0 has the expected shapes, but "
                f"evaluating the vector field with this drive failed with\n  {err}\n"
                f"The drive has shapes {shapes}; check its width against the input size."
            ) from err
        raise ValueError(
            f"y0 does not fit {name}: evaluating its vector field failed with\n  {err}\n"
            f"Expected a state like {name}.init_state() (shapes {_shapes(system, args)})."
        ) from err
    _check_like(system, y, out, "its vector field")


def _check_like(system, y, expected, source: str) -> None:
    """`y` must have the structure and leaf shapes of `expected`."""
    name = type(system).__name__
    if jax.tree.structure(expected) != jax.tree.structure(y):
        raise ValueError(
            f"y0 does not fit {name}: {source} has the structure "
            f"{jax.tree.structure(expected)} but y0 has {jax.tree.structure(y)}."
        )
    leaves = jax.tree_util.tree_flatten_with_path(y)[0]
    for (path, leaf), ref in zip(leaves, jax.tree.leaves(expected), strict=True):
        if jnp.shape(leaf) != ref.shape:
            raise ValueError(
                f"y0 does not fit {name}: state variable '{_path_name(path)}' has shape "
                f"{jnp.shape(leaf)}, but the parameters imply {ref.shape} (from {source}); "
                "batch with jax.vmap unless the system has a batch axis of its own."
            )


def _shapes(system, args) -> str:
    init = getattr(system, "init_state", None)
    if init is None:
        return "unknown"
    try:
        shaped = jax.eval_shape(init)
    except TypeError:
        return "unknown"
    return str(jax.tree.map(lambda s: s.shape, shaped))
