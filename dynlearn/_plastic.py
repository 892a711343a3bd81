"""Learning as part of the dynamics: a circuit's synapses as slow state.

A plastic circuit writes its equations only — the fast dynamics of its neurons (weights held
at their current values) and its local plasticity rule `dtheta/dt` — and the engine builds
the joint system `Learning(circuit)` in which neurons and synapses evolve together:

    dy/dt     = f_theta(t, y, args)          circuit.vector_field
    dtheta/dt = g_theta(t, y, args)          circuit.plasticity   (trainable leaves only)

Streaming a batch through it (`AlwaysOn`), weights as state, parallel streams, checkpoints,
seeds (`fit_seeds`) and pruning masks then come from the engine, written once.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._dynamics import AbstractDynamics, all_time_constants, total_diffusion
from ._events import AbstractEvent
from ._learner import AbstractLearner
from ._pruning import apply_masks

__all__ = ["AbstractPlastic", "Inertia", "Learning", "RMSNormalised", "stream_count"]


class AbstractPlastic(AbstractDynamics, AbstractLearner):
    r"""A circuit whose synapses learn in its own dynamics (phase-free, always on).

    Subclasses implement
    - `vector_field(t, y, args)`: the neurons' drift with the weights fixed at the circuit's
      own (so the circuit is also the frozen-weight system, e.g. for settling);
    - `plasticity(t, y, args)`: the local rule, $d\theta/dt$ as a pytree shaped like the
      circuit (e.g. `eqx.tree_at(lambda c: c.weights, self, rates)`); only the leaves of
      `trainable()` are read, so fixed parts may hold anything;
    - `init_state(x)`: the state for input `x` of shape `(streams, n_in)`;
    - `sizes`: layer sizes `[n_in, ..., n_out]`.

    Convention: state leaves that belong to a stream carry a leading stream axis; the
    streams share the weights, and `plasticity` returns the rate of the shared weights (the
    mean over streams, as matrix products: `e.T @ r / streams`). `args` is the drive (a
    `dynlearn.StimulusStream` with targets while learning, or any stimulus).
    """

    @property
    @abc.abstractmethod
    def sizes(self) -> list[int]:
        """Layer sizes `[n_in, ..., n_out]`."""

    @abc.abstractmethod
    def init_state(self, x: Array | None = None) -> PyTree:
        """The state for input `x` `(streams, n_in)` (default: one stream of zeros)."""

    @abc.abstractmethod
    def plasticity(self, t, y: PyTree, args: Any) -> PyTree:
        """`dtheta/dt`, shaped like the circuit (trainable leaves are read)."""

    def expected_state(self, y: PyTree) -> PyTree:
        """`init_state()` if `y` is shaped like it (e.g. one unbatched sample), else
        `init_state` for as many streams as `y` has (see `stream_count`)."""
        plain = eqx.filter_eval_shape(self.init_state)
        if jax.tree.structure(plain) == jax.tree.structure(y) and all(
            a.shape == jnp.shape(b) for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(y))
        ):
            return plain
        zeros = jnp.zeros((stream_count(self, y), self.sizes[0]))
        return eqx.filter_eval_shape(self.init_state, zeros)


def stream_count(circuit: AbstractPlastic, y: PyTree) -> int:
    """The number of parallel streams of a state `y` of `circuit`: the leading size of the
    first leaf that depends on the number of streams (found by shaping `init_state` for one
    and for two streams); 1 if no leaf does."""
    n_in = circuit.sizes[0]
    one = jax.tree.leaves(eqx.filter_eval_shape(circuit.init_state, jnp.zeros((1, n_in))))
    two = jax.tree.leaves(eqx.filter_eval_shape(circuit.init_state, jnp.zeros((2, n_in))))
    for a, b, leaf in zip(one, two, jax.tree.leaves(y)):
        if a.shape != b.shape and jnp.ndim(leaf) >= 1:
            return int(jnp.shape(leaf)[0])
    return 1


SCOPES = ("trainable", "forward")
PER = ("synapse", "neuron")


class RMSNormalised(eqx.Module):
    r"""Per-synapse normalised plasticity: each weight's rate divided by the running RMS of
    its own recent rates, a slow variable of the synapse (metaplasticity: how fast a synapse
    learns adapts to how strongly it has been driven). With $g$ the circuit's rate,

    $$
    \tau \frac{dv}{dt} = g^2 - v, \qquad \tau \frac{dc}{dt} = 1 - c, \qquad c(0) = v(0) = 0,
    $$

    $$
    \frac{d\theta}{dt} = \frac{\mathrm{lr}\; g}{\sqrt{v + (1 - c)\, g^2} + \epsilon}.
    $$

    $v$ is the exponentially weighted mean of $g^2$ over the last $\tau$ (`tau`) of time, $c$
    the weight the history has reached ($v/c$ is unbiased); the unreached part $1 - c$ is
    filled with the present $g^2$, so the first rates are $\mathrm{lr}\, \mathrm{sign}(g)$,
    not $\mathrm{lr}\, g/\epsilon$. This is RMSprop
    (Tieleman & Hinton 2012; Adam's denominator, Kingma & Ba 2015) as a continuous-time
    system: it makes the rate invariant to the scale of each synapse's drive.

    With `per="neuron"` the running mean square is one per postsynaptic neuron, the mean
    of $g_{ij}^2$ over its incoming synapses $j$ (a row of an `(n_out, n_in)` matrix; a
    vector's entries are neurons already), $\tau\, dv_i/dt = \langle g_{ij}^2 \rangle_j
    - v_i$: one plasticity gain per neuron, so the relative sizes of a neuron's updates
    (the direction its error signal gives) are kept and only their overall size is
    normalised.

    **Arguments:** `tau`: memory of the squared rates (> 0); `lr`: the normalised rate, in
    weight units per unit of time (> 0); `eps`: regulariser $\epsilon$ of the denominator
    (> 0); `scope`: which synapses are normalised, `"trainable"` (every plastic leaf, the
    default) or `"forward"` (the circuit's `prunable()` leaves, its forward weights: the
    other plastic leaves, e.g. a learned feedback pathway whose rule averages noise, keep
    their own rates); `per`: `"synapse"` (default) or `"neuron"` (above).
    """

    tau: float = eqx.field(static=True)
    lr: float = eqx.field(static=True)
    eps: float = eqx.field(static=True, default=1e-8)
    scope: str = eqx.field(static=True, default="trainable")
    per: str = eqx.field(static=True, default="synapse")

    def __check_init__(self):
        if not (self.tau > 0 and self.lr > 0 and self.eps > 0):
            raise ValueError(
                f"RMSNormalised: need tau > 0, lr > 0 and eps > 0; got tau={self.tau}, "
                f"lr={self.lr}, eps={self.eps}."
            )
        if self.scope not in SCOPES:
            raise ValueError(f"RMSNormalised: scope must be one of {SCOPES}; got {self.scope!r}.")
        if self.per not in PER:
            raise ValueError(f"RMSNormalised: per must be one of {PER}; got {self.per!r}.")

    def split(self, circuit, rates: PyTree) -> tuple[PyTree, PyTree | None]:
        """The part of `rates` (shaped like `circuit`) this normalises, and the rest (None
        when the scope is every trainable leaf)."""
        return split_scope(self.scope, circuit, rates)

    def normalise(self, circuit, rates: PyTree, state: dict) -> tuple[PyTree, dict]:
        """A circuit's rates with the scope's leaves normalised, and d state/dt."""
        chosen, rest = self.split(circuit, rates)
        normalised, d_state = self(chosen, state)
        if rest is not None:
            normalised = eqx.combine(normalised, rest, is_leaf=lambda x: x is None)
        return normalised, d_state

    def init(self, params: PyTree) -> dict:
        """The synapses' (or neurons') slow state for weights `params`: no history yet."""
        square = jax.tree.map(lambda p: jnp.zeros_like(self._square(p)), params)
        dtype = jax.tree.leaves(params)[0].dtype if jax.tree.leaves(params) else float
        return {"square": square, "weight": jnp.zeros((), dtype)}

    def _square(self, g: Array) -> Array:
        """g^2 per synapse, or its mean over each neuron's incoming synapses (`per`)."""
        if self.per == "synapse" or jnp.ndim(g) < 2:
            return g**2
        return jnp.mean(g**2, axis=tuple(range(1, jnp.ndim(g))), keepdims=True)

    def __call__(self, rates: PyTree, state: dict) -> tuple[PyTree, dict]:
        """`(normalised rates, d state/dt)` for the circuit's rates `rates`."""
        remaining = 1.0 - state["weight"]

        squares = jax.tree.map(self._square, rates)

        def rate(g, square, v):
            return self.lr * g / (jnp.sqrt(v + remaining * square) + self.eps)

        normalised = jax.tree.map(rate, rates, squares, state["square"])
        d_square = jax.tree.map(lambda square, v: (square - v) / self.tau, squares, state["square"])
        return normalised, {"square": d_square, "weight": remaining / self.tau}


def split_scope(scope: str, circuit, tree: PyTree) -> tuple[PyTree, PyTree | None]:
    """`tree` (shaped like `circuit`'s trainable part) split into the leaves of `scope`
    (`SCOPES`: every one, or the circuit's `prunable()` forward weights) and the rest (None
    for every one)."""
    if scope == "trainable":
        return tree, None
    return eqx.partition(tree, circuit.prunable(), is_leaf=lambda x: x is None)


class Inertia(eqx.Module):
    r"""The weights' inertia: they move with a velocity $v$ that low-pass filters the rate
    $u$ their rule asks for (for `AlwaysOn(..., inertia=)`),

    $$
    \tau \frac{dv}{dt} = u - v, \qquad \frac{d\theta}{dt} = v
    \quad\Longleftrightarrow\quad \tau \ddot\theta + \dot\theta = u,
    $$

    heavy-ball momentum in continuous time (Polyak 1964): with batches of stream time
    $\Delta$ the velocity keeps $\beta = e^{-\Delta/\tau}$ of itself per batch, SGD
    momentum $\beta$ at the same effective step (`AlwaysOn.with_momentum`). On analog
    devices (`dynlearn.hardware`) it is $v$, not $u$, that drives the pulses: rates that
    change sign from sample to sample are averaged before they move a conductance, so a
    saturating device no longer decays under them (`OnDevice.drift`).

    **Arguments:**
    - `tau`: the velocity's time constant (> 0, the circuit's time units).
    - `scope`: which weights have it, `"trainable"` (every plastic leaf, default) or
      `"forward"` (the circuit's `prunable()` leaves, the ones a device holds: a learned
      feedback pathway, e.g. PAL's B, keeps its own rates).
    """

    tau: float = eqx.field(static=True)
    scope: str = eqx.field(static=True, default="trainable")

    def __check_init__(self):
        tau = self.tau
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not tau > 0:
            raise ValueError(
                f"Inertia: expected tau, the time constant of the weights' velocity, a "
                f"number > 0 (with batches of stream time D, momentum beta = exp(-D / tau)); "
                f"got {tau!r}."
            )
        if self.scope not in SCOPES:
            raise ValueError(f"Inertia: scope must be one of {SCOPES}; got {self.scope!r}.")

    def split(self, circuit, rates: PyTree) -> tuple[PyTree, PyTree | None]:
        """The part of `rates` (shaped like `circuit`) that moves through the velocity, and
        the rest (None when the scope is every trainable leaf)."""
        return split_scope(self.scope, circuit, rates)

    def init(self, circuit, params: PyTree) -> PyTree:
        """At rest: a zero velocity for each weight in the scope."""
        return jax.tree.map(jnp.zeros_like, self.split(circuit, params)[0])

    def __call__(self, circuit, rates: PyTree, velocity: PyTree) -> tuple[PyTree, PyTree]:
        """`(dtheta/dt, dv/dt)`: the velocity for the scope's weights, their own rates for
        the rest."""
        chosen, rest = self.split(circuit, rates)
        d_velocity = jax.tree.map(lambda u, v: (u - v) / self.tau, chosen, velocity)
        if rest is None:
            return velocity, d_velocity
        return eqx.combine(velocity, rest, is_leaf=lambda x: x is None), d_velocity


class Learning(AbstractDynamics):
    r"""A plastic circuit while it learns: state `{"neurons": y, "params": theta}`.

    `theta` is the circuit's trainable part (`eqx.filter(circuit, circuit.trainable())`);
    the circuit's own copy of it is replaced by the state at every evaluation. With `masks`
    (one 0/1 array per `prunable()` leaf, see `dynlearn.prune`) the rates of pruned weights
    are zero, so a pruned weight stays exactly zero. With a `gain` $g$ every plasticity rate
    is scaled by it, $d\theta/dt = g\, g_\theta(t, y, \text{args})$: a global, slowly
    varying plasticity gain (a neuromodulator's level), set by
    `AlwaysOn(..., gain=schedule)` to anneal the rates over a long stream. With `rms`
    (`RMSNormalised`) each rate is first divided by its synapse's running RMS, whose state
    joins the system under `"rms"`. With `inertia` (`Inertia`) the weights do not follow
    the rates so obtained (masked, normalised, scaled) at once but through a velocity that
    low-pass filters them, whose state joins the system under `"velocity"`; on a device the
    velocity drives the pulses.

    **Arguments:**
    - `circuit`: an `AbstractPlastic`.
    - `masks`: optional pruning masks.
    - `gain`: optional scalar plasticity gain (default: none, i.e. 1).
    - `rms`: optional per-synapse normalisation (default: none).
    - `device`: optional `dynlearn.hardware.OnDevice` whose devices hold the `prunable()`
      weights: their rates become the devices' response (`OnDevice.drift`); the distance
      each device travels, $\int |dw/dt|\, dt$, joins the state under `"travel"` (its pulse
      count, for the noise `OnDevice.after_stream` adds), and with
      `stream_noise="step"` the pulse streams' noise (`OnDevice.pulse_noise`) is the
      diffusion.
    - `inertia`: optional `Inertia` (default: none, the weights follow their rates at
      once).
    """

    circuit: AbstractPlastic
    masks: list[Array] | None = None
    gain: Array | None = None
    rms: RMSNormalised | None = None
    device: Any = None
    inertia: Inertia | None = None

    def __check_init__(self):
        if not isinstance(self.circuit, AbstractPlastic):
            raise ValueError(
                f"circuit: expected a dynlearn.AbstractPlastic (a circuit with a plasticity "
                f"rule); got {type(self.circuit).__name__}."
            )
        check_inertia(self.inertia)

    def params(self) -> PyTree:
        """The circuit's trainable part, the slow state."""
        return eqx.filter(self.circuit, self.circuit.trainable())

    def circuit_at(self, params: PyTree) -> AbstractPlastic:
        """The circuit with trainable leaves `params`."""
        fixed = eqx.filter(self.circuit, self.circuit.trainable(), inverse=True)
        return eqx.combine(params, fixed)

    def learned(self, y: PyTree) -> AbstractPlastic:
        """The circuit with the weights of a state `y` of this system."""
        return self.circuit_at(y["params"])

    def init_state(self, x: Array | None = None) -> dict:
        return self._with_slow_state({"neurons": self.circuit.init_state(x)})

    def expected_state(self, y: dict) -> dict:
        return self._with_slow_state({"neurons": self.circuit.expected_state(y["neurons"])})

    def _with_slow_state(self, state: dict) -> dict:
        state = state | {"params": self.params()}
        if self.rms is not None:
            state["rms"] = self.rms.init(self.rms.split(self.circuit, self.params())[0])
        if self.inertia is not None:
            state["velocity"] = self.inertia.init(self.circuit, self.params())
        if self._tracks_travel():
            weights = jax.tree.leaves(eqx.filter(self.circuit, self.circuit.prunable()))
            state["travel"] = [jnp.zeros_like(w) for w in weights]
        return state

    def _tracks_travel(self) -> bool:
        """On a device with pulses: the distance each device moved, int |dw/dt| dt, is part
        of the state (its pulse count: see `OnDevice.after_stream`)."""
        return self.device is not None and self.device.device.quantised

    def vector_field(self, t, y, args):
        circuit = self.circuit_at(y["params"])
        d_params, d_rms, d_velocity = self._weight_rates(circuit, t, y, args)
        rates = {"neurons": circuit.vector_field(t, y["neurons"], args)}
        if self.rms is not None:
            rates["rms"] = d_rms
        if self.inertia is not None:
            rates["velocity"] = d_velocity
        if self.device is not None:
            d_params = self._on_devices(circuit, y["params"], d_params, self.device.drift)
        if self._tracks_travel():
            chosen = eqx.filter(d_params, circuit.prunable(), is_leaf=lambda x: x is None)
            travel = jax.tree.leaves(chosen)
            rates["travel"] = [jnp.abs(rate) for rate in travel]
        return rates | {"params": d_params}

    def _param_rates(self, circuit, t, y, args):
        """The weights' rates asked for by the circuit (masked, normalised, scaled), and
        the rates of the normalisation's state."""
        d_params = eqx.filter(circuit.plasticity(t, y["neurons"], args), circuit.trainable())
        if self.masks is not None:
            d_params = apply_masks(d_params, circuit, self.masks)
        d_rms = None
        if self.rms is not None:
            d_params, d_rms = self.rms.normalise(circuit, d_params, y["rms"])
        if self.gain is not None:
            d_params = jax.tree.map(lambda rate: self.gain * rate, d_params)
        return d_params, d_rms

    def _weight_rates(self, circuit, t, y, args):
        """`(dtheta/dt before the devices, d rms/dt, d velocity/dt)`: the rule's rates, or
        with `inertia` the velocity in its scope (pruned weights held at zero)."""
        d_params, d_rms = self._param_rates(circuit, t, y, args)
        if self.inertia is None:
            return d_params, d_rms, None
        d_params, d_velocity = self.inertia(circuit, d_params, y["velocity"])
        if self.masks is not None:
            d_params = apply_masks(d_params, circuit, self.masks)
        return d_params, d_rms, d_velocity

    def _on_devices(self, circuit, params, rates, response, *, only_devices=False):
        """`response(weights, rates)` on the device leaves (the `prunable()` ones); the other
        leaves keep their rates (`only_devices`: become None)."""
        spec = circuit.prunable()
        weights = jax.tree.leaves(eqx.filter(params, spec))
        chosen, rest = eqx.partition(rates, spec, is_leaf=lambda x: x is None)
        leaves, treedef = jax.tree.flatten(chosen)
        answered = response(weights, leaves)
        if answered is None:
            return None
        if only_devices:
            rest = jax.tree.map(lambda _: None, rest)
        return eqx.combine(jax.tree.unflatten(treedef, answered), rest)

    def diffusion(self, t, y, args):
        circuit = self.circuit_at(y["params"])
        noise = total_diffusion(circuit, t, y["neurons"], args)
        params_noise = None
        if self._tracks_travel() and self.device.stream_noise == "step":
            d_params = self._weight_rates(circuit, t, y, args)[0]
            drift = self._on_devices(circuit, y["params"], d_params, self.device.drift)
            params_noise = self._on_devices(
                circuit, y["params"], drift, self.device.pulse_noise, only_devices=True
            )
        if noise is None and params_noise is None:
            return None
        out = {"neurons": noise, "params": params_noise}
        for slow in ("rms", "velocity", "travel"):
            if slow in y:
                out[slow] = None
        return out

    def time_constants(self) -> dict[str, float]:
        inertia = {} if self.inertia is None else {"inertia": self.inertia.tau}
        return all_time_constants(self.circuit) | inertia

    def event(self):
        inner = self.circuit.event()
        return None if inner is None else _NeuronEvent(inner)


def check_inertia(inertia) -> None:
    """Refuse an `inertia` that is not a `dynlearn.Inertia` (or None)."""
    if inertia is not None and not isinstance(inertia, Inertia):
        raise ValueError(
            f"inertia: expected a dynlearn.Inertia(tau) (tau: the time constant of the "
            f"weights' velocity); got {inertia!r}."
        )


class _NeuronEvent(AbstractEvent):
    """A circuit's event acting on the `"neurons"` part of a `Learning` state."""

    inner: AbstractEvent

    def condition(self, t, y, args):
        return self.inner.condition(t, y["neurons"], args)

    def jump(self, t, y, args, fired):
        return {"neurons": self.inner.jump(t, y["neurons"], args, fired), "params": y["params"]}
