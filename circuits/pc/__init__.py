r"""Predictive coding (PC) as inference dynamics on an energy — the PC family.

This module is standard PC; its variants are submodules that share its tasks, inference
options and drive: `circuits.pc.positive` (positive PC: non-negative rates, two error
populations, one-way synapses; Alonso & Neftci 2021) and `circuits.pc.generalised` (PC
beyond Gaussians: KL energies over a graph of Gaussian, categorical and Bernoulli nodes;
Pinchetti et al. 2022).

Layers $x_0, \dots, x_L$; predictions $\mu_l = W_l r_{l-1} + b_l$ with $r_0 = x_0$ (the
input enters linearly, as in `BackpropMLP`) and $r_l = f(x_l)$ for hidden layers; the output
$x_L$ is linear. Energy (Rao & Ballard 1999; Whittington & Bogacz 2017):

$$
F = \sum_l \frac{1}{2 s_l} |x_l - \mu_l|^2
\quad \left[+ \frac{\beta}{2} |x_L - y|^2 \text{ when the output is nudged}\right]
$$

Inference is the gradient flow $\tau\, dx/dt = -\partial F/\partial x$ on the free layers
(`gradient_flow`); the local update $\Delta W_l \propto \epsilon_l r_{l-1}^\top$,
$\epsilon_l = (x_l - \mu_l)/s_l$, is minus $\partial F/\partial W_l$, also taken from $F$
with `jax.grad`.

Tasks (which layers are clamped), as option objects:
- `Clamped()`: input clamped, output clamped to the target while learning. At test time the
  output is free and the feed-forward pass is already the minimum of F (all errors zero),
  so `predict` runs no inference.
- `Nudged(beta)`: output free with the cost $\frac{\beta}{2} |x_L - y|^2$; as $\beta \to 0$ the
  update divided by $\beta$ tends to BP's gradient (Millidge et al. 2022;
  `theory/pc_infinitesimal.py`).
- `Generative()`: data clamped at the output (the bottom of the generative hierarchy), the
  top $x_0$ free with a unit Gaussian prior $\frac{1}{2} |x_0|^2$.

Learning:
- settle-then-update (`dynlearn.SettleThenUpdate`): an `inference` option settles the
  network (`EulerInference`, `SteadyStateInference`) and an update rule reads dF/dtheta
  (`EquilibriumRule`), or Z-IL (`ZIL`, Song et al. 2020) reads exact backprop;
- always-on (`dynlearn.AlwaysOn`): `plasticity` is $\tau_w\, d\theta/dt = -\partial F/\partial
  \theta$ (weights slower than inference), so activities and weights descend F together while
  samples stream by; incremental PC (Salvatori et al. 2024) is the same joint flow on a whole batch
  at once (`incremental`). With `prospective=True` the value neurons follow their bottom-up
  prediction at once, $x_l = \mu_l + e_l$, and the state holds the errors, $\tau\, de_l/dt =
  -\partial F/\partial x_l$: a new sample does not inherit the previous sample's activity as a
  spurious error (`theory/pc_prospective.py`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import (
    AbstractLayered,
    SquaredError,
    check_options,
    check_positive,
    check_steps,
    init_layers,
    known_affine,
    phi_of,
)

__all__ = [
    "PCNetwork",
    "PCDrive",
    "Clamped",
    "Nudged",
    "Generative",
    "EulerInference",
    "SteadyStateInference",
    "EquilibriumRule",
    "ZIL",
    "incremental",
    "rule",
    "rule_always_on",
]


class PCDrive(eqx.Module):
    """What drives a PC network: the input x_0 (None: free, generative) and target y.

    `input_prediction` optionally holds mu_1 = W_1 x_0 + b_1 (e.g. from the feed-forward
    pass), which is constant while the input is clamped: the largest product is then not
    recomputed at every inference step nor for the weight update (`known_affine` keeps
    its gradient).
    """

    x: Array | None
    y: Array | None
    input_prediction: Array | None = None


# ------------------------------------------------------------------------------ tasks
class AbstractTask(eqx.Module):
    """Which layers are clamped, and what the energy adds to the layers' errors."""

    @abc.abstractmethod
    def free_layers(self, names: list[str]) -> list[str]:
        """The free state variables, given the layer names x_1..x_L."""

    @abc.abstractmethod
    def drive(self, x: Array, y: Array | None) -> PCDrive:
        """The drive for a sample (or batch) `x` with targets `y` (generative: `x` are data)."""

    @abc.abstractmethod
    def extra_energy(self, state: dict, drive: PCDrive) -> Array:
        """Terms of F beyond the prediction errors (a nudge, a prior)."""

    def update_scale(self) -> float:
        """Factor on the weight updates (1/beta for a nudged output)."""
        return 1.0


class Clamped(AbstractTask):
    """Supervised: input clamped, output clamped to the target while learning."""

    def free_layers(self, names):
        return names[:-1]

    def drive(self, x, y):
        return PCDrive(x, y)

    def extra_energy(self, state, drive):
        return 0.0


class Nudged(AbstractTask):
    """Supervised with a free output, pulled towards the target by beta/2 |x_L - y|^2."""

    beta: float = eqx.field(static=True)

    def __check_init__(self):
        if not self.beta > 0:
            raise ValueError(f"Nudged: beta must be > 0 (a nudging strength); got {self.beta}.")

    def free_layers(self, names):
        return names

    def drive(self, x, y):
        return PCDrive(x, y)

    def extra_energy(self, state, drive):
        return 0.5 * self.beta * jnp.sum((state["output"]["x"] - drive.y) ** 2)

    def update_scale(self):
        return 1.0 / self.beta


class Generative(AbstractTask):
    """Data clamped at the output; the top x_0 free with a unit Gaussian prior."""

    def free_layers(self, names):
        return ["input"] + names[:-1]

    def drive(self, x, y):
        return PCDrive(None, x)

    def extra_energy(self, state, drive):
        return 0.5 * jnp.sum(state["input"]["x"] ** 2)


# ------------------------------------------------------------------------------ inference
class AbstractInference(eqx.Module):
    """How a PC network settles on a drive."""

    @abc.abstractmethod
    def settle(self, network: PCNetwork, state0: dict, drive: PCDrive) -> dict: ...

    def check(self, network: PCNetwork) -> None:
        """Raise a `ValueError` if this inference cannot settle `network` (e.g. a fixed
        step longer than its time constant); called when the network is built."""


class EulerInference(AbstractInference):
    """A fixed number of Euler steps (the literature's setting: 20-100 steps of 0.1)."""

    n_steps: int = eqx.field(static=True, default=20)
    dt: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        check_steps(self, n_steps=self.n_steps, dt=self.dt)

    def check(self, network):
        dynlearn.check_step(
            self.dt, network.time_constants(), "PCNetwork", "inference: EulerInference.dt"
        )

    def settle(self, network, state0, drive):
        t1 = self.n_steps * self.dt
        return dynlearn.simulate(network, state0, 0.0, t1, args=drive, dt=self.dt, check=False).y1


class SteadyStateInference(AbstractInference):
    """Adaptive integration to a steady state (`dynlearn.equilibrate`; jpc's choice is Heun
    with rtol = atol = 1e-3)."""

    rtol: float = eqx.field(static=True, default=1e-3)
    atol: float = eqx.field(static=True, default=1e-3)
    solver: diffrax.AbstractSolver = diffrax.Heun()
    max_time: float = eqx.field(static=True, default=1e3)

    def __check_init__(self):
        check_positive(self, rtol=self.rtol, atol=self.atol, max_time=self.max_time)

    def settle(self, network, state0, drive):
        return dynlearn.equilibrate(
            network,
            state0,
            drive,
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            max_time=self.max_time,
            check=False,
        ).y


# ------------------------------------------------------------------------------ rules
class AbstractUpdateRule(eqx.Module):
    """How settle-then-update reads the weight update from the network."""

    @abc.abstractmethod
    def check(self, network: PCNetwork) -> None: ...

    @abc.abstractmethod
    def updates(self, network: PCNetwork, x: Array, y: Array) -> tuple[PCNetwork, dict]: ...


class EquilibriumRule(AbstractUpdateRule):
    """Settle every sample, then dF/dtheta at the settled states (batch mean)."""

    def check(self, network):
        pass

    def updates(self, network, x, y):
        if isinstance(network.task, Generative):
            drive = network.task.drive(x, y)
            states0 = jax.vmap(lambda _: network.init_state())(x)
        else:
            feedforward = network.feedforward(x)
            states0 = {
                name: {"e": jnp.zeros_like(feedforward[i])}
                if network.prospective
                else {"x": feedforward[i]}
                for i, name in enumerate(network.layer_names)
                if name in network.free_layers()
            }
            drive = PCDrive(x, y, feedforward[0])
        settle = jax.vmap(lambda s, d: network.inference.settle(network, s, d))
        states = settle(states0, drive)
        grads = network.energy_grad(states, drive)
        if isinstance(network.task, Generative):
            loss = jnp.mean(jax.vmap(network.energy)(states, drive))
            return grads, {"loss": loss}
        output = feedforward[-1]
        return grads, {"loss": SquaredError()(output, y), "output": output}


class ZIL(AbstractUpdateRule):
    """Z-IL (Song et al. 2020): from the feed-forward state, Euler steps of size 1 with the
    output clamped; layer l's update is dF/dW_l read at inference step L - l.

    At that step the error of layer l is exactly BP's delta, so the updates equal BP's
    gradient of 1/2 |y - x_L|^2, averaged over the batch (requires the clamped task and
    unit variances)."""

    def check(self, network):
        if not isinstance(network.task, Clamped):
            raise ValueError("rule: ZIL needs the supervised task with a clamped output.")
        if any(s != 1.0 for s in network.variances):
            raise ValueError("rule: ZIL requires unit variances (inference rate 1).")
        if network.prospective:
            raise ValueError(
                "rule: ZIL reads BP from the value neurons' leaky flow step by step; use "
                "prospective=False."
            )

    def updates(self, network, x, y):
        n_layers = len(network.weights)
        drives = PCDrive(x, y)
        states = [jax.vmap(network.init_state)(x)]
        step = jax.vmap(lambda s, d: network.vector_field(0.0, s, d))
        for _ in range(n_layers - 1):
            states.append(jax.tree.map(lambda s, f: s + f, states[-1], step(states[-1], drives)))
        per_step = [network.energy_grad(state, drives) for state in states]
        weights = [per_step[n_layers - 1 - i].weights[i] for i in range(n_layers)]
        biases = [per_step[n_layers - 1 - i].biases[i] for i in range(n_layers)]
        output = network.predict(x)
        grads = eqx.tree_at(lambda m: (m.weights, m.biases), network, (weights, biases))
        return grads, {"loss": SquaredError()(output, y), "output": output}


# ------------------------------------------------------------------------------ network
OPTIONS = {  # what each option argument of PCNetwork takes
    "task": (AbstractTask, "Clamped(), Nudged(beta) or Generative()"),
    "inference": (AbstractInference, "EulerInference() or SteadyStateInference()"),
    "rule": (AbstractUpdateRule, "EquilibriumRule() or ZIL()"),
}


class PCNetwork(AbstractLayered, dynlearn.AbstractPlastic, dynlearn.AbstractBatchLearner):
    r"""Layered predictive-coding network (state: `{"hidden<l>": {"x"}, ..., "output"}`).

    **Arguments:**
    - `sizes`: `(n_0, n_1, ..., n_L)`; `key`: initialisation (as `BackpropMLP`).
    - `activation`: f for hidden layers, a name in `circuits._layers.ACTIVATIONS`.
    - `variances`: $s_1, \dots, s_L$ (default all 1).
    - `task`: `Clamped()` (default), `Nudged(beta)` or `Generative()`.
    - `inference`: `EulerInference(...)` (default: 20 steps of 0.1) or
      `SteadyStateInference(...)`, for settle-then-update.
    - `rule`: `EquilibriumRule()` (settle, then dF/dtheta) or `ZIL()` (exact backprop).
    - `tau`: inference time constant; `tau_w`: the weights' time constant when learning
      always-on ($\tau_w\, d\theta/dt = -\partial F/\partial \theta$, $\tau_w \gg \tau$).
    - `prospective`: prospective value neurons (see `values`): the state holds the
      prediction errors $e_l = x_l - \mu_l$, and $x_l = \mu_l + e_l$ follows its bottom-up
      prediction at once, so a new input moves every layer immediately instead of through
      the leaky flow. Same energy, fixed points and weight rule; it matters when inputs
      change during the dynamics (always-on learning). Supervised tasks only.
    """

    weights: list[Array]
    biases: list[Array]
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True, default="linear")  # x_L is linear
    variances: tuple[float, ...] = eqx.field(static=True)
    task: AbstractTask
    inference: AbstractInference
    rule: AbstractUpdateRule
    tau: float = eqx.field(static=True)
    tau_w: float  # a plain float (not an array): fixed, but `eqx.tree_at` can set it
    prospective: bool = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        task: AbstractTask = Clamped(),
        activation: str = "tanh",
        variances: Sequence[float] | None = None,
        inference: AbstractInference = EulerInference(),
        rule: AbstractUpdateRule = EquilibriumRule(),
        tau: float = 1.0,
        tau_w: float = 100.0,
        prospective: bool = False,
    ):
        phi_of(activation, "activation")
        check_options("circuits.pc", OPTIONS, task=task, inference=inference, rule=rule)
        if not (tau > 0 and tau_w > 0):
            raise ValueError(f"tau and tau_w must be > 0; got tau={tau}, tau_w={tau_w}.")
        self.weights, self.biases = init_layers(sizes, key)
        n_layers = len(self.weights)
        variances = (1.0,) * n_layers if variances is None else tuple(map(float, variances))
        if len(variances) != n_layers or min(variances) <= 0:
            raise ValueError(
                f"variances: need {n_layers} positive values (one per layer above the input); "
                f"got {variances}."
            )
        self.activation = activation
        self.variances = variances
        self.task, self.inference, self.rule = task, inference, rule
        self.tau, self.tau_w = float(tau), float(tau_w)
        if prospective and isinstance(task, Generative):
            raise ValueError(
                "prospective: value neurons that follow their bottom-up prediction need a "
                "clamped input (task Clamped() or Nudged(beta)); the generative task's top "
                "layer has none."
            )
        self.prospective = bool(prospective)
        inference.check(self)
        rule.check(self)

    # ----------------------------------------------------------------- structure
    def phi(self, x):
        """f, the activation of hidden layers (x_1..x_L are named `layer_names`)."""
        return phi_of(self.activation)(x)

    def free_layers(self) -> list[str]:
        """State variables: hidden layers, the output if nudged, the top if generative."""
        return self.task.free_layers(self.layer_names)

    def time_constants(self):
        return {"tau": self.tau}

    def feedforward(self, x0) -> list[Array]:
        """x_1..x_L of the feed-forward pass (every error zero)."""
        xs, r = [], x0
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = r @ w.T + b
            xs.append(x)
            r = self.phi(x) if i < len(self.weights) - 1 else x
        return xs

    def init_state(self, x=None) -> dict:
        """The feed-forward state for input `x` (zeros if None; a leading batch or stream
        axis is kept) restricted to the free layers. Generative: the top at zero (its prior
        mean), one row per row of `x` (whose width is the data's), and its feed-forward
        values. Prospective: the errors e_l, zero."""
        if isinstance(self.task, Generative):
            shape = (self.sizes[0],) if x is None else x.shape[:-1] + (self.sizes[0],)
            x = jnp.zeros(shape)
        elif x is None:
            x = jnp.zeros(self.sizes[0])
        values = dict(zip(self.layer_names, self.feedforward(x)))
        if self.prospective:  # the feed-forward state: every prediction error zero
            return {name: {"e": jnp.zeros_like(values[name])} for name in self.free_layers()}
        values["input"] = x
        return {name: {"x": values[name]} for name in self.free_layers()}

    # ----------------------------------------------------------------- energy
    def values(self, state, drive: PCDrive) -> dict:
        """The value neurons `{name: {"x": x_l}}` of a state: the state itself, or with
        prospective coding x_l = mu_l + e_l bottom-up, mu_l = W_l f(x_{l-1}) + b_l from
        the values below (the clamped output is the target)."""
        if not self.prospective:
            return state
        out, r, last = {}, drive.x, len(self.weights) - 1
        for i, (name, w, b) in enumerate(zip(self.layer_names, self.weights, self.biases)):
            if name not in state:  # the clamped output
                break
            if i == 0 and drive.input_prediction is not None:
                mu = known_affine(w, b, r, drive.input_prediction)
            else:
                mu = r @ w.T + b
            x = mu + state[name]["e"]
            out[name] = {"x": x}
            r = self.phi(x) if i < last else x
        return out

    def energy(self, state, drive: PCDrive):
        """F for a state (summed over any leading batch or stream axis)."""
        return self.value_energy(self.values(state, drive), drive)

    def value_energy(self, values, drive: PCDrive):
        """F as a function of the value neurons (see `values`)."""
        total = self.task.extra_energy(values, drive)
        for term in self._layer_terms(values, drive).values():
            total = total + term
        return total

    def layer_energies(self, state, drive: PCDrive) -> dict:
        """F's terms per layer, `|x_l - mu_l|^2 / (2 s_l)` (F is their sum plus the task's
        extra energy), for analysis (`ds.dynlearn.energy(net, drive, by_layer=True)`)."""
        return self._layer_terms(self.values(state, drive), drive)

    def _layer_terms(self, state, drive: PCDrive) -> dict:
        generative = isinstance(self.task, Generative)
        r = state["input"]["x"] if generative else drive.x
        terms = {}
        last = len(self.weights) - 1
        for i, (name, w, b, s) in enumerate(
            zip(self.layer_names, self.weights, self.biases, self.variances)
        ):
            x = state[name]["x"] if name in state else drive.y
            if i == 0 and drive.input_prediction is not None:
                mu = known_affine(w, b, r, drive.input_prediction)
            else:
                mu = r @ w.T + b
            terms[name] = jnp.sum((x - mu) ** 2) / (2 * s)
            r = self.phi(x) if i < last else x
        return terms

    def errors(self, state, drive: PCDrive) -> dict:
        """eps_l = (x_l - mu_l)/s_l per layer (for analysis; learning uses jax.grad of F)."""
        state = self.values(state, drive)
        generative = isinstance(self.task, Generative)
        r = state["input"]["x"] if generative else drive.x
        out, last = {}, len(self.weights) - 1
        for i, (name, w, b, s) in enumerate(
            zip(self.layer_names, self.weights, self.biases, self.variances)
        ):
            x = state[name]["x"] if name in state else drive.y
            out[name] = (x - (r @ w.T + b)) / s
            r = self.phi(x) if i < last else x
        return out

    def drive_at(self, drive, t) -> PCDrive:
        """A `PCDrive` as is, or a stream's input and target at time `t` as one."""
        if isinstance(drive, PCDrive):
            return drive
        x, y = dynlearn.input_and_target(drive, t)
        return self.task.drive(x, y)

    def vector_field(self, t, state, drive):
        """tau dx/dt = -dF/dx on the free layers; prospective: tau de_l/dt = -dF/dx_l."""
        drive = self.drive_at(drive, t)
        if not self.prospective:
            return dynlearn.gradient_flow(self.energy, state, drive, tau=self.tau)
        values = self.values(state, drive)
        flow = dynlearn.gradient_flow(self.value_energy, values, drive, tau=self.tau)
        return {name: {"e": flow[name]["x"]} for name in state}

    def plasticity(self, t, state, drive):
        """tau_w dtheta/dt = -dF/dtheta at fixed value neurons, F averaged over the streams
        (the leading axis)."""
        drive = self.drive_at(drive, t)
        streams = jax.tree.leaves(state)[0].shape[0]
        return jax.tree.map(lambda g: -g / (self.tau_w * streams), self.weight_grad(state, drive))

    def weight_grad(self, state, drive: PCDrive) -> PCNetwork:
        """dF/dtheta at the state's value neurons (held fixed: the local products eps_l
        r_{l-1}^T, never a gradient through the prospective values)."""
        values = jax.lax.stop_gradient(self.values(state, drive))
        return eqx.filter_grad(lambda net: net.value_energy(values, drive))(self)

    # ----------------------------------------------------------------- learning
    def settle(self, x0, y, state0=None, drive=None):
        """Inference from the feed-forward state (or `state0`) with this network's
        `inference`; one sample, or a batch as one system. Generative: `x0` is ignored (the
        top is free) and `y` are the clamped data."""
        generative = isinstance(self.task, Generative)
        if drive is None and generative:
            drive = PCDrive(None, y)
        elif drive is None:
            drive = PCDrive(x0, y, x0 @ self.weights[0].T + self.biases[0])
        if state0 is None:
            state0 = self.init_state(None if generative else x0)
        return self.inference.settle(self, state0, drive)

    def predict(self, x):
        """Outputs for a batch: the feed-forward pass (the free output's energy minimum)."""
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return self.feedforward(x)[-1]

    def loss(self, x, y):
        """Squared error 1/2 |y - x_L^ff|^2, averaged over the batch (PC's implied loss)."""
        return SquaredError()(self.predict(x), y)

    def energy_grad(self, states, drives) -> PCNetwork:
        """Batch mean of dF/dtheta at settled `states` (leading batch axis), shaped like
        the network. Differentiating the batch-summed energy yields the local products
        eps_l r_{l-1}^T summed over the batch, never per-sample weight gradients."""
        batch = jax.tree.leaves(states)[0].shape[0]
        return jax.tree.map(lambda g: g / batch, self.weight_grad(states, drives))

    def updates(self, x, y, key):
        """The update rule's batch-mean dF/dtheta (divided by beta if nudged). Generative:
        `x` are the data (clamped at the output) and `y` is ignored; the reported loss is
        then the mean settled energy."""
        if isinstance(self.task, Generative):
            x, _ = dynlearn.check_batch(x, None, self.sizes[-1], what="the data (output) width")
        else:
            x, y = dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        grads, metrics = self.rule.updates(self, x, y)
        scale = self.task.update_scale()
        if scale != 1.0:
            grads = jax.tree.map(lambda g: g * scale, grads)
        return grads, metrics


def incremental(
    network: PCNetwork, *, n_steps: int, dt: float, lr: float, batch_size: int
) -> dynlearn.Recipe:
    """Incremental PC (Salvatori et al. 2024) as the generic always-on mode: every sample of
    a batch is its own stream, presented at once for `n_steps` Euler steps of `dt` from the
    feed-forward state, with the weights descending F at every step by `lr` times the batch
    mean of dF/dtheta (tau_w = dt / lr)."""
    net = eqx.tree_at(lambda n: n.tau_w, network, float(dt / lr))
    presentation = dynlearn.Presentation(t_pres=n_steps * dt, dt=dt, streams=batch_size)
    return dynlearn.Recipe(net, dynlearn.AlwaysOn(presentation), batch_size)


def rule(sizes, key) -> dynlearn.Recipe:
    """The registered rule `pc` (`dynlearn.rules`): predictive coding, settle-then-update
    (20 Euler steps of inference, equilibrium weight rule), tanh, a weakly clamped output
    (variance 10 at the output, 1 below: closer to BP than a tightly clamped output, see
    `experiments/pc_vs_bp.py`), Adam 1e-3, batches of 32.

    The 20 steps of 0.1 stop short of the inference equilibrium: the update differs from
    the equilibrium one by ~8% with one hidden layer and 25-40% with two to five
    (`theory/pc_inference_steps.py`); `SteadyStateInference()` gives the equilibrium
    update."""
    variances = [1.0] * (len(sizes) - 2) + [10.0]
    net = PCNetwork(sizes, key, variances=variances)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-3)), 32)


def rule_always_on(sizes, key) -> dynlearn.Recipe:
    """The registered rule `pc-always-on` (`dynlearn.rules`): phase-free predictive coding —
    inference and weights descend the energy together while samples stream by (10 ms each,
    Euler dt 0.2 ms, tau 1 ms), with prospective value neurons (`PCNetwork(prospective=
    True)`), tau_w = 5 ms and a plasticity gain annealed as 1/(1 + n/2000) over the n
    samples seen (`dynlearn.inverse_time`); weakly clamped output as rule `pc`, batches of
    32.

    Why (mnist5k, 784-100-10, 10 epochs, 3 seeds, validation split: the last 20% of the
    training set): with leaky value neurons every input switch leaves the previous
    sample's activity in the hidden layer, a prediction error of order one that the weights
    learn as if it were the new sample's (`theory/pc_prospective.py`); the tiny steady-state
    error then has to out-weigh it, so the previous rule (tau_w 1000 ms) reached 81.0 ± 1.4,
    and learning faster made it worse (tau_w 300: 75.3 ± 1.1, measured during development)
    or diverged (tau_w 5, annealed). Prospective values (84.2 ± 0.5 at tau_w 1000) let
    the rate go up (tau_w 30: 91.5 ± 1.3) and the annealed gain narrows the spread over
    seeds: 91.0 ± 0.8, phased
    `pc` 91.2 ± 0.3 (`dynlearn run always-on`; on the test set, `dynlearn run constraints`:
    92.2 ± 0.3 vs 92.3 ± 0.1)."""
    variances = [1.0] * (len(sizes) - 2) + [10.0]
    net = PCNetwork(sizes, key, variances=variances, tau_w=5.0, prospective=True)
    presentation = dynlearn.Presentation(t_pres=10.0, dt=0.2)
    mode = dynlearn.AlwaysOn(presentation, gain=dynlearn.inverse_time(2000))
    return dynlearn.Recipe(net, mode, 32)
