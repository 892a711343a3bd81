"""Positive predictive coding: PC under tighter biological constraints (Alonso & Neftci 2021).

Standard PC (`circuits.pc`) sends signed activities and signed errors through synapses
used in both directions (W_l forward in the prediction, W_l^T backward in the inference).
Alonso & Neftci ask PC to respect three constraints; this circuit is our construction of
a network that meets them, from the paper's statement of the constraints:

1. **Non-negative firing rates.** Value neurons are rates, x_l >= 0, and predictions are
   rates too, mu_l = f(W_l x_{l-1} + b_l) with a non-negative f (ReLU hidden, sigmoid
   output by default): the nonlinearity sits on the prediction, so the feed-forward pass
   x_l = mu_l has every error zero and every rate >= 0. Inference is the *projected*
   gradient flow on the orthant,

       tau dx_l/dt = max(x_l + G_l, 0) - x_l,   G_l = -dF/dx_l (feedback: see 3),

   whose fixed points are the non-negative minima of F (x_l > 0 with G_l = 0, or x_l = 0
   with G_l <= 0) and which never leaves x >= 0 (Euler steps with dt <= tau included).
2. **Errors in two non-negative populations.** e+_l = [x_l - mu_l]_+ / s_l and
   e-_l = [mu_l - x_l]_+ / s_l (Rao & Ballard's suggestion), eps_l = e+_l - e-_l; the
   energy is unchanged, F = sum_l s_l (|e+_l|^2 + |e-_l|^2) / 2 = sum_l |x_l - mu_l|^2 /
   (2 s_l). Each population excites or inhibits its targets.
3. **One-way synapses.** The errors reach the value neurons below through their own
   synapses B_l (shape of W_l^T), not through W_l backwards: G_l = -eps_l + B_{l+1}
   (f'(a_{l+1}) eps_{l+1}). Both learn with the product of their own pre- and
   post-synaptic activity, dW_l ∝ (f'(a_l) eps_l) x_{l-1}^T and dB_l ∝ x_{l-1} (f'(a_l)
   eps_l)^T (= dW_l^T): with `feedback="mirror"` B_l starts at W_l^T and stays there (the
   dynamics are then exactly the projected descent of F); with `feedback="random"` B_l
   starts random and both matrices decay at rate `decay` (Kolen & Pollack 1994), so B_l
   -> W_l^T as training goes on.

The update at the settled state is minus dF/dtheta, as in PC; with `Nudged(beta)` and beta
-> 0 it tends to BP's gradient of the same network (`theory/positive_pc.py`, which also
reports how far the clamped update is from BP's with depth, next to standard PC).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    feedforward,
    init_layers,
    phi_of,
    slope,
)
from circuits.pc import (
    AbstractInference,
    Clamped,
    EulerInference,
    Nudged,
    PCDrive,
)

__all__ = ["PositivePCNetwork", "rule", "NON_NEGATIVE"]

NON_NEGATIVE = ("relu", "sigmoid", "hard_sigmoid")  # rates f(a) >= 0 for every a
FEEDBACK = ("mirror", "random")
OPTIONS = {
    "task": ((Clamped, Nudged), "Clamped() or Nudged(beta) (circuits.pc)"),
    "inference": (AbstractInference, "EulerInference() or SteadyStateInference()"),
}


class PositivePCNetwork(AbstractLayered, dynlearn.AbstractDynamics, dynlearn.AbstractBatchLearner):
    """Positive PC network (state: `{"hidden<l>": {"x"}, ..., "output"}`, rates >= 0).

    **Arguments:**
    - `sizes`: `(n_0, n_1, ..., n_L)`; `key`: initialisation (as `BackpropMLP`).
    - `activation`, `output_activation`: f on hidden / output predictions, names from
      `NON_NEGATIVE` (defaults `"relu"`, `"sigmoid"`).
    - `variances`: s_1..s_L (default all 1).
    - `task`: `Clamped()` (default) or `Nudged(beta)`, from `circuits.pc`.
    - `inference`: `EulerInference(...)` (default: 20 steps of 0.1) or
      `SteadyStateInference(...)`.
    - `feedback`: `"mirror"` (B_l = W_l^T at the start, same updates) or `"random"`
      (B_l random, Kolen-Pollack decay `decay`).
    - `decay`: weight decay of W and B (needed by `"random"` to align them; default 0).
    - `tau`: inference time constant.
    """

    weights: list[Array]
    biases: list[Array]
    feedback: list[Array]  # B_2..B_L, shapes (n_{l-1}, n_l)
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True)
    variances: tuple[float, ...] = eqx.field(static=True)
    task: Clamped | Nudged
    inference: AbstractInference
    feedback_kind: str = eqx.field(static=True)
    decay: float = eqx.field(static=True)
    tau: float = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "relu",
        output_activation: str = "sigmoid",
        variances: Sequence[float] | None = None,
        task: Clamped | Nudged = Clamped(),
        inference: AbstractInference = EulerInference(),
        feedback: str = "mirror",
        decay: float = 0.0,
        tau: float = 1.0,
    ):
        for name, value in (("activation", activation), ("output_activation", output_activation)):
            phi_of(value, name)
            if value not in NON_NEGATIVE:
                raise ValueError(
                    f"{name}: positive PC's predictions are firing rates, so f must be "
                    f"non-negative; choose one of {NON_NEGATIVE}, got {value!r}."
                )
        check_options("circuits.pc.positive", OPTIONS, task=task, inference=inference)
        if feedback not in FEEDBACK:
            raise ValueError(f"feedback: expected one of {FEEDBACK}; got {feedback!r}.")
        if not (decay >= 0 and tau > 0):
            raise ValueError(f"need decay >= 0 and tau > 0; got decay={decay}, tau={tau}.")
        key_w, key_b = jax.random.split(key)
        self.weights, self.biases = init_layers(sizes, key_w)
        n_layers = len(self.weights)
        if feedback == "mirror":
            self.feedback = [w.T for w in self.weights[1:]]
        else:
            random, _ = init_layers(sizes, key_b)
            self.feedback = [w.T for w in random[1:]]
        variances = (1.0,) * n_layers if variances is None else tuple(map(float, variances))
        if len(variances) != n_layers or min(variances) <= 0:
            raise ValueError(
                f"variances: need {n_layers} positive values (one per layer above the input); "
                f"got {variances}."
            )
        self.activation, self.output_activation = activation, output_activation
        self.variances, self.task, self.inference = variances, task, inference
        self.feedback_kind, self.decay, self.tau = feedback, float(decay), float(tau)
        inference.check(self)

    # ----------------------------------------------------------------- structure
    def free_layers(self) -> list[str]:
        return self.task.free_layers(self.layer_names)

    def time_constants(self):
        return {"tau": self.tau}

    def feedforward(self, x0) -> list[Array]:
        """x_1..x_L = mu_1..mu_L of the feed-forward pass (every error zero, rates >= 0)."""
        drives = feedforward(self.weights, self.biases, self.phis, x0)
        return [phi(a) for phi, a in zip(self.phis, drives)]

    def init_state(self, x=None) -> dict:
        """The feed-forward state for input `x` (a leading batch axis is kept; zeros if
        None) restricted to the free layers."""
        x = jnp.zeros(self.sizes[0]) if x is None else x
        values = dict(zip(self.layer_names, self.feedforward(x)))
        return {name: {"x": values[name]} for name in self.free_layers()}

    # ----------------------------------------------------------------- energy
    def _layers(self, state, drive: PCDrive):
        """Per layer: (value x_l, drive a_l, prediction mu_l), the clamped output = y."""
        out, r = [], drive.x
        for name, w, b, phi in zip(self.layer_names, self.weights, self.biases, self.phis):
            a = r @ w.T + b
            x = state[name]["x"] if name in state else drive.y
            out.append((x, a, phi(a)))
            r = x
        return out

    def energy(self, state, drive: PCDrive):
        """F = sum_l |x_l - f(W_l x_{l-1} + b_l)|^2 / (2 s_l) [+ the nudge], summed over
        any leading batch axis."""
        total = self.task.extra_energy(state, drive)
        for (x, _, mu), s in zip(self._layers(state, drive), self.variances):
            total = total + jnp.sum((x - mu) ** 2) / (2 * s)
        return total

    def error_populations(self, state, drive: PCDrive) -> dict:
        """`{name: {"plus": e+_l, "minus": e-_l}}`: the two non-negative error populations,
        e+ = [x - mu]_+ / s and e- = [mu - x]_+ / s."""
        return {
            name: {"plus": jax.nn.relu(x - mu) / s, "minus": jax.nn.relu(mu - x) / s}
            for name, (x, _, mu), s in zip(
                self.layer_names, self._layers(state, drive), self.variances
            )
        }

    def vector_field(self, t, state, drive: PCDrive):
        """tau dx_l/dt = max(x_l + G_l, 0) - x_l, G_l = -(e+_l - e-_l) + B_{l+1} (f'(a_{l+1})
        (e+_{l+1} - e-_{l+1})) [- the nudge's pull on a free output]."""
        layers = self._layers(state, drive)
        errors = self.error_populations(state, drive)
        eps = [errors[n]["plus"] - errors[n]["minus"] for n in self.layer_names]
        gated = [slope(phi, a) * e for phi, (_, a, _), e in zip(self.phis, layers, eps)]
        nudged = isinstance(self.task, Nudged)
        pull = jax.grad(self.task.extra_energy)(state, drive) if nudged else {}
        flow = {}
        for i, name in enumerate(self.layer_names):
            if name not in state:
                continue
            g = -eps[i]
            if i + 1 < len(self.layer_names):
                g = g + gated[i + 1] @ self.feedback[i].T
            if name in pull:
                g = g - pull[name]["x"]
            x = state[name]["x"]
            flow[name] = {"x": (jnp.maximum(x + g, 0.0) - x) / self.tau}
        return flow

    # ----------------------------------------------------------------- learning
    def settle(self, x, y):
        """Settled states for a batch, from the feed-forward state."""
        drive = PCDrive(x, y)
        settle = jax.vmap(lambda s, d: self.inference.settle(self, s, d))
        return settle(self.init_state(x), drive), drive

    def predict(self, x):
        """Outputs for a batch: the feed-forward pass (the free output's energy minimum)."""
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return self.feedforward(x)[-1]

    def loss(self, x, y):
        return SquaredError()(self.predict(x), y)

    def updates(self, x, y, key):
        """Batch mean of dF/dW_l at the settled states (divided by beta if nudged) and the
        same product at the feedback synapses, dB_l = dW_l^T; plus `decay` W, B."""
        x, y = dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        states, drive = self.settle(x, y)
        grads = eqx.filter_grad(lambda net: net.energy(states, drive))(self)
        scale = self.task.update_scale() / x.shape[0]
        grads = jax.tree.map(lambda g: g * scale, grads)
        feedback = [g.T for g in grads.weights[1:]]
        if self.decay > 0:
            weights = [g + self.decay * w for g, w in zip(grads.weights, self.weights)]
            feedback = [g + self.decay * b for g, b in zip(feedback, self.feedback)]
            grads = eqx.tree_at(lambda m: m.weights, grads, weights)
        grads = eqx.tree_at(lambda m: m.feedback, grads, feedback)
        output = self.feedforward(x)[-1]
        return grads, {"loss": SquaredError()(output, y), "output": output}

    def prunable(self):
        """Magnitude pruning acts on the forward weights W_l."""
        spec = jax.tree.map(lambda _: False, self)
        return eqx.tree_at(lambda m: m.weights, spec, [True] * len(self.weights))


def rule(sizes, key) -> dynlearn.Recipe:
    """The registered rule `positive-pc` (`dynlearn.rules`): positive PC, settle-then-update
    (20 Euler steps of 0.1), ReLU hidden rates, sigmoid output rates, output clamped to the
    target with variance 10 (as rule `pc`), mirrored one-way feedback, Adam 1e-3, batches
    of 32."""
    variances = [1.0] * (len(sizes) - 2) + [10.0]
    net = PositivePCNetwork(sizes, key, variances=variances)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-3)), 32)
