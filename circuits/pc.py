"""Predictive coding (PC) as inference dynamics on an energy.

Layers x_0 ... x_L; predictions mu_l = W_l r_{l-1} + b_l with r_0 = x_0 (the input enters
linearly, as in `BackpropMLP`) and r_l = f(x_l) for hidden layers; the output x_L is linear.
Energy (Rao & Ballard 1999; Whittington & Bogacz 2017):

    F = sum_l 1/(2 s_l) |x_l - mu_l|^2   [+ beta/2 |x_L - y|^2 when the output is nudged]

Inference is the gradient flow dx/dt = -dF/dx on the free layers, derived from F by
`dynlearn.AbstractEnergyDynamics`; at equilibrium the local update dW_l ∝ eps_l r_{l-1}^T,
eps_l = (x_l - mu_l)/s_l, is minus dF/dW_l, also taken from F with `jax.grad`.

Modes (which layers are clamped):
- supervised (`beta=None`): input clamped, output clamped to the target while learning. At
  test time the output is free and the feed-forward pass is already the minimum of F (all
  errors zero), so `predict` runs no inference.
- nudged (`beta > 0`): output free with the cost beta/2 |x_L - y|^2; as beta -> 0 the update
  divided by beta tends to BP's gradient (Millidge et al. 2022; `theory/pc_vs_bp.py`).
- generative (`generative=True`): data clamped at the output (the bottom of the generative
  hierarchy), the top x_0 free with a unit Gaussian prior 1/2 |x_0|^2.

Learning: settle-then-update (`updates`), Z-IL/exact backprop (`rule="zil"`, Song et al.
2020), and always-on in continuous time (`learn_online` with `online=Streaming(...)`:
weights are state with a slower time constant) or incremental PC (`online=Incremental(...)`,
Salvatori et al. 2024: weights updated at every inference step).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits.backprop import ACTIVATIONS, init_layers

__all__ = [
    "PCNetwork",
    "PCDrive",
    "EulerInference",
    "SteadyStateInference",
    "Streaming",
    "Incremental",
    "RULES",
]

RULES = ("equilibrium", "zil")


@jax.custom_vjp
def _affine_known(w, b, r, value):
    """`r @ w.T + b`, whose value is already known (the clamped input's prediction).

    Forward returns `value` without the product; backward is that of the affine map, so
    dF/dW_1 = -eps_1 r^T still comes out of `jax.grad`.
    """
    return value


def _affine_known_fwd(w, b, r, value):
    return value, (w, r)


def _affine_known_bwd(res, g):
    w, r = res
    dw = jnp.einsum("...o,...i->oi", g, r)
    db = jnp.sum(g.reshape(-1, g.shape[-1]), axis=0)
    return dw, db, g @ w, jnp.zeros_like(g)


_affine_known.defvjp(_affine_known_fwd, _affine_known_bwd)


class PCDrive(eqx.Module):
    """What drives a PC network: the input x_0 (None: free, generative) and target y.

    `input_prediction` optionally holds mu_1 = W_1 x_0 + b_1 (e.g. from the feed-forward
    pass), which is constant while the input is clamped: the largest product is then not
    recomputed at every inference step nor for the weight update (`_affine_known` keeps
    its gradient).
    """

    x: Array | None
    y: Array | None
    input_prediction: Array | None = None


class EulerInference(eqx.Module):
    """A fixed number of Euler steps (the literature's setting: 20-100 steps of 0.1)."""

    n_steps: int = eqx.field(static=True, default=20)
    dt: float = eqx.field(static=True, default=0.1)


class SteadyStateInference(eqx.Module):
    """Adaptive integration to a steady state (`dynlearn.equilibrate`; jpc's choice is Heun
    with rtol = atol = 1e-3)."""

    rtol: float = eqx.field(static=True, default=1e-3)
    atol: float = eqx.field(static=True, default=1e-3)
    solver: str = eqx.field(static=True, default="heun")
    max_time: float = eqx.field(static=True, default=1e3)


class Streaming(eqx.Module):
    """Always-on learning on a stream: each sample shown for `t_pres`, weights move with
    `tau_w dtheta/dt = -dF/dtheta` (tau_w >> 1: slower than inference), Euler step `dt`."""

    t_pres: float = eqx.field(static=True, default=2.0)
    tau_w: float = eqx.field(static=True, default=100.0)
    dt: float = eqx.field(static=True, default=0.1)


class Incremental(eqx.Module):
    """Incremental PC: on a whole batch, `n_steps` Euler steps of the joint flow in which
    activities (step dt) and weights (step `lr`) descend F together."""

    n_steps: int = eqx.field(static=True, default=20)
    dt: float = eqx.field(static=True, default=0.1)
    lr: float = eqx.field(static=True, default=1e-3)


class PCNetwork(dynlearn.AbstractEnergyDynamics, dynlearn.AbstractLearner):
    """Layered predictive-coding network (state: `{"hidden<l>": {"x"}, ..., "output"}`).

    **Arguments:**
    - `sizes`: `(n_0, n_1, ..., n_L)`; `key`: initialisation (as `BackpropMLP`).
    - `activation`: f for hidden layers, a name in `ACTIVATIONS` (linear, tanh, relu,
      sigmoid, hard_sigmoid).
    - `variances`: s_1..s_L (default all 1).
    - `beta`: None (output clamped while learning) or the nudging strength > 0.
    - `generative`: top (input) layer free with a unit Gaussian prior.
    - `inference`: `EulerInference(...)` or `SteadyStateInference(...)`.
    - `rule`: `"equilibrium"` (settle, then dF/dtheta) or `"zil"` (exact backprop).
    - `online`: `Streaming(...)` or `Incremental(...)`, the always-on variant used by
      `learn_online` (`fit(..., mode=AlwaysOn())`).
    """

    weights: list[Array]
    biases: list[Array]
    activation_name: str = eqx.field(static=True)
    variances: tuple[float, ...] = eqx.field(static=True)
    beta: float | None = eqx.field(static=True)
    generative: bool = eqx.field(static=True)
    inference: EulerInference | SteadyStateInference = eqx.field(static=True)
    rule: str = eqx.field(static=True)
    online: Streaming | Incremental = eqx.field(static=True)
    tau: float = eqx.field(static=True, default=1.0)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "tanh",
        variances: Sequence[float] | None = None,
        beta: float | None = None,
        generative: bool = False,
        inference=EulerInference(),
        rule: str = "equilibrium",
        online=Streaming(),
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: unknown name {activation!r}; known: {sorted(ACTIVATIONS)}."
            )
        if beta is not None and not beta > 0:
            raise ValueError(
                f"beta must be > 0 (a nudging strength) or None (output clamped); got {beta}."
            )
        if rule not in RULES:
            raise ValueError(f"rule: unknown {rule!r}; known: {list(RULES)}.")
        if rule == "zil" and (beta is not None or generative):
            raise ValueError("rule='zil' needs the supervised mode (beta=None, generative=False).")
        self.weights, self.biases = init_layers(sizes, key)
        n_layers = len(self.weights)
        variances = (1.0,) * n_layers if variances is None else tuple(map(float, variances))
        if len(variances) != n_layers or min(variances) <= 0:
            raise ValueError(
                f"variances: need {n_layers} positive values (one per layer above the input); "
                f"got {variances}."
            )
        self.activation_name = activation
        self.variances = variances
        self.beta = None if beta is None else float(beta)
        self.generative = generative
        self.inference = inference
        self.rule = rule
        self.online = online

    # ----------------------------------------------------------------- structure
    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def layer_names(self) -> list[str]:
        """Names of x_1..x_L."""
        return [f"hidden{i}" for i in range(1, len(self.weights))] + ["output"]

    def activation(self, x):
        return ACTIVATIONS[self.activation_name](x)

    def free_layers(self) -> list[str]:
        """State variables: hidden layers, the output if nudged, the top if generative."""
        names = self.layer_names[:-1]
        if self.beta is not None:
            names = names + ["output"]
        if self.generative:
            names = ["input"] + names
        return names

    def feedforward(self, x0) -> list[Array]:
        """x_1..x_L of the feed-forward pass (every error zero)."""
        xs, r = [], x0
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = r @ w.T + b
            xs.append(x)
            r = self.activation(x) if i < len(self.weights) - 1 else x
        return xs

    def init_state(self, x0=None) -> dict:
        """The feed-forward state for input `x0` (zeros if None) restricted to free layers
        (in generative mode: the top at zero, its prior mean, and its feed-forward values)."""
        x0 = jnp.zeros(self.sizes[0]) if x0 is None else x0
        values = dict(zip(self.layer_names, self.feedforward(x0)))
        values["input"] = x0
        return {name: {"x": values[name]} for name in self.free_layers()}

    # ----------------------------------------------------------------- energy
    def energy(self, state, drive: PCDrive):
        """F for one sample (see the module docstring)."""
        x_prev = state["input"]["x"] if self.generative else drive.x
        total = 0.5 * jnp.sum(x_prev**2) if self.generative else 0.0
        r = x_prev
        last = len(self.weights) - 1
        for i, (name, w, b, s) in enumerate(
            zip(self.layer_names, self.weights, self.biases, self.variances)
        ):
            x = state[name]["x"] if name in state else drive.y
            if i == 0 and drive.input_prediction is not None:
                mu = _affine_known(w, b, r, drive.input_prediction)
            else:
                mu = r @ w.T + b
            total = total + jnp.sum((x - mu) ** 2) / (2 * s)
            r = self.activation(x) if i < last else x
        if self.beta is not None:
            total = total + 0.5 * self.beta * jnp.sum((state["output"]["x"] - drive.y) ** 2)
        return total

    def errors(self, state, drive: PCDrive) -> dict:
        """eps_l = (x_l - mu_l)/s_l per layer (for analysis; learning uses jax.grad of F)."""
        r = state["input"]["x"] if self.generative else drive.x
        out, last = {}, len(self.weights) - 1
        for i, (name, w, b, s) in enumerate(
            zip(self.layer_names, self.weights, self.biases, self.variances)
        ):
            x = state[name]["x"] if name in state else drive.y
            out[name] = (x - (r @ w.T + b)) / s
            r = self.activation(x) if i < last else x
        return out

    # ----------------------------------------------------------------- inference
    def settle(self, x0, y, state0=None, drive=None):
        """Inference from the feed-forward state; returns the settled state.

        Works on one sample (vmap it for batches) or on a batch as one system (F is then
        the sum over samples and a steady-state stop applies to the whole batch).
        Generative mode: `x0` is ignored (the top is free) and `y` are the clamped data.
        """
        if drive is None and self.generative:
            drive = PCDrive(None, y)
        elif drive is None:
            drive = PCDrive(x0, y, x0 @ self.weights[0].T + self.biases[0])
        state0 = self.init_state(x0) if state0 is None else state0
        if isinstance(self.inference, EulerInference):
            n, dt = self.inference.n_steps, self.inference.dt
            return dynlearn.simulate(self, state0, 0.0, n * dt, args=drive, dt=dt, check=False).y1
        inf = self.inference
        eq = dynlearn.equilibrate(
            self,
            state0,
            drive,
            solver=inf.solver,
            rtol=inf.rtol,
            atol=inf.atol,
            max_time=inf.max_time,
            check=False,
        )
        return eq.y

    # ----------------------------------------------------------------- learning
    def predict(self, x):
        """Outputs for a batch: the feed-forward pass (the free output's energy minimum)."""
        if x.ndim != 2 or x.shape[-1] != self.sizes[0]:
            raise ValueError(
                f"x: expected a batch (batch, {self.sizes[0]}) for layer sizes {self.sizes}; "
                f"got shape {x.shape}."
            )
        return jax.vmap(lambda xi: self.feedforward(xi)[-1])(x)

    def loss(self, x, y):
        """Squared error 1/2 |y - x_L^ff|^2, averaged over the batch (PC's implied loss)."""
        return 0.5 * jnp.mean(jnp.sum((y - self.predict(x)) ** 2, axis=-1))

    def params(self):
        return (self.weights, self.biases)

    def with_params(self, params) -> PCNetwork:
        return eqx.tree_at(lambda m: (m.weights, m.biases), self, params)

    def energy_grad(self, states, drives) -> PCNetwork:
        """Batch mean of dF/dtheta at settled `states` (leading batch axis), shaped like
        the network. Differentiating the batch-summed energy yields the local products
        eps_l r_{l-1}^T summed over the batch, never per-sample weight gradients."""

        batch = jax.tree.leaves(states)[0].shape[0]

        def mean_energy(params):
            # F is a sum over samples, so the batched call is the batch total (and the
            # products become matrix products over the batch).
            return self.with_params(params).energy(states, drives) / batch

        return self.with_params(jax.grad(mean_energy)(self.params()))

    def updates(self, x, y, key):
        """Settle each sample, return the batch-mean dF/dtheta (divided by beta if nudged).

        Generative mode: `x` are the data (clamped at the output) and `y` is ignored; the
        reported loss is then the mean settled energy.
        """
        x, y = self._check_batch(x, y)
        if self.generative:
            drives = PCDrive(None, x)
            states = jax.vmap(lambda d: self.settle(None, d, self.init_state()))(x)
            grads = self.energy_grad(states, drives)
            metrics = {"loss": jnp.mean(jax.vmap(self.energy)(states, drives))}
        elif self.rule == "zil":
            grads = self.zil_updates(x, y)
            metrics = self._supervised_metrics(self.predict(x), y)
        else:
            feedforward = self.feedforward(x)
            states0 = {name: {"x": feedforward[i]} for i, name in enumerate(self.layer_names)}
            states0 = {name: states0[name] for name in self.free_layers()}
            drive = PCDrive(x, y, feedforward[0])
            states = jax.vmap(self.settle)(x, y, states0, drive)
            grads = self.energy_grad(states, drive)
            metrics = self._supervised_metrics(feedforward[-1], y)
        if self.beta is not None:
            grads = jax.tree.map(lambda g: g / self.beta, eqx.filter(grads, eqx.is_array))
        return grads, metrics

    @staticmethod
    def _supervised_metrics(output, y):
        return {"loss": 0.5 * jnp.mean(jnp.sum((y - output) ** 2, -1)), "output": output}

    def zil_updates(self, x, y) -> PCNetwork:
        """Z-IL (Song et al. 2020) on a batch: from the feed-forward state, Euler steps of
        size 1 with the output clamped; layer l's update is dF/dW_l read at inference step
        L - l.

        At that step the error of layer l is exactly BP's delta, so the updates equal BP's
        gradient of 1/2 |y - x_L|^2, averaged over the batch (requires unit variances).
        """
        if any(s != 1.0 for s in self.variances):
            raise ValueError("rule='zil' requires unit variances (inference rate 1).")
        n_layers = len(self.weights)
        drives = PCDrive(x, y)
        states = [jax.vmap(self.init_state)(x)]
        step = jax.vmap(lambda s, d: self.vector_field(0.0, s, d))
        for _ in range(n_layers - 1):
            states.append(jax.tree.map(lambda s, f: s + f, states[-1], step(states[-1], drives)))
        per_step = [self.energy_grad(state, drives) for state in states]
        weights = [per_step[n_layers - 1 - i].weights[i] for i in range(n_layers)]
        biases = [per_step[n_layers - 1 - i].biases[i] for i in range(n_layers)]
        return self.with_params((weights, biases))

    def learn_online(self, x, y, key):
        """Always-on learning on the batch (see `Streaming` and `Incremental`)."""
        x, y = self._check_batch(x, y)
        output = self.predict(x)
        loss = self.loss(x, y)
        if isinstance(self.online, Incremental):
            learned = self._incremental(x, y)
        else:
            learned = self._streaming(x, y)
        return learned, {"loss": loss, "output": output}

    def _incremental(self, x, y):
        """Euler steps of the joint flow on the batch: activities and weights together."""
        inc = self.online
        states = jax.vmap(self.init_state)(x)
        drives = PCDrive(None if self.generative else x, y if not self.generative else x)

        def batch_energy(params, states):
            net = self.with_params(params)
            return jnp.sum(jax.vmap(net.energy)(states, drives))

        def step(carry, _):
            params, states = carry
            g_params, g_states = jax.grad(batch_energy, argnums=(0, 1))(params, states)
            n = x.shape[0]
            params = jax.tree.map(lambda p, g: p - inc.lr * g / n, params, g_params)
            states = jax.tree.map(lambda s, g: s - inc.dt * g / self.tau, states, g_states)
            return (params, states), None

        (params, _), _ = jax.lax.scan(step, (self.params(), states), length=inc.n_steps)
        return self.with_params(params)

    def _streaming(self, x, y):
        """One simulation over the batch streamed sample by sample; weights are state."""
        stream = dynlearn.StimulusStream(x, t_pres=self.online.t_pres, targets=y)
        system = _AlwaysOnPC(self, self.online.tau_w)
        state0 = {"layers": self.init_state(x[0]), "params": self.params()}
        end = dynlearn.simulate(
            system, state0, 0.0, stream.t1, args=stream, dt=self.online.dt, check=False
        ).y1
        return self.with_params(end["params"])

    def _check_batch(self, x, y=None):
        """Shapes at trace time, finiteness at run time (errors name the argument)."""
        expected = self.sizes[-1] if self.generative else self.sizes[0]
        if x.ndim != 2 or x.shape[-1] != expected:
            raise ValueError(
                f"x: expected a batch (batch, {expected}) for layer sizes {self.sizes}; got "
                f"shape {x.shape}."
            )
        if y is not None and not self.generative and y.shape != (x.shape[0], self.sizes[-1]):
            raise ValueError(
                f"y: expected targets of shape ({x.shape[0]}, {self.sizes[-1]}) for output "
                f"width {self.sizes[-1]}; got {y.shape}."
            )
        # Inside fit the data set was checked once; here only eager calls are checked.
        return dynlearn.check_finite((x, y), "inputs (x, y)", when_traced=False)


class _AlwaysOnPC(dynlearn.AbstractDynamics):
    """Joint gradient flow of activities (time constant tau) and parameters (tau_w) on a
    stream: `tau dx/dt = -dF/dx`, `tau_w dtheta/dt = -dF/dtheta`.

    Nothing is reset between samples: activities settle from where the previous sample left
    them, and the weights integrate the local rule throughout.
    """

    network: PCNetwork
    tau_w: float = eqx.field(static=True)

    def vector_field(self, t, state, stream):
        x = stream.input(t)
        generative = self.network.generative
        drive = PCDrive(None if generative else x, x if generative else stream.target(t))

        def energy(s, drive):
            return self.network.with_params(s["params"]).energy(s["layers"], drive)

        tau = {"layers": self.network.tau, "params": self.tau_w}
        return dynlearn.gradient_flow(energy, state, drive, tau=tau)


def rule(sizes, key):
    """The registered rule `pc` (`dynlearn.rules`): predictive coding, settle-then-update
    (20 Euler steps of inference, equilibrium weight rule), tanh, a weakly nudged output
    (variance 10 at the output, 1 below: closer to BP than a clamped output, see
    `experiments/pc_vs_bp.py`), Adam 1e-3, batches of 32."""
    variances = [1.0] * (len(sizes) - 2) + [10.0]
    net = PCNetwork(sizes, key, variances=variances)
    return net, {"optimizer": optax.adam(1e-3), "batch_size": 32}


def rule_always_on(sizes, key):
    """The registered rule `pc-always-on` (`dynlearn.rules`): phase-free predictive coding —
    inference and weights descend the energy together while samples stream by (10 ms each,
    tau_w = 1000 ms, Euler dt 0.2 ms; the settings of `experiments/pc_vs_bp.py`), weak output
    nudge as rule `pc`, batches of 32."""
    variances = [1.0] * (len(sizes) - 2) + [10.0]
    online = Streaming(t_pres=10.0, tau_w=1000.0, dt=0.2)
    net = PCNetwork(sizes, key, variances=variances, online=online)
    return net, {"mode": dynlearn.AlwaysOn(), "batch_size": 32}
