"""Forward-only learning: PEPITA (Dellaferrera & Kreiman 2022) and forward direct feedback
alignment, FDFA (Bacho & Chu 2022).

PEPITA.
No backward pass: the network runs forward twice on the same sample. The first pass gives
the activities h_l (ReLU hidden layers, softmax output h_L) and the output error
e = h_L - y; the second runs on the input modulated by that error through a fixed random
projection F (n_in x n_out),

    x~ = x - F e,

and gives h~_l. Each layer learns from the difference of its two activities, with the
second pass's presynaptic activity (gradient-like signs; optax subtracts them):

    dW_1 = (h_1 - h~_1) x~^T,   dW_l = (h_l - h~_l) h~_{l-1}^T,   dW_L = (h~_L - y) h~_{L-1}^T,

averaged over the batch. To first order in |F e|, h_1 - h~_1 = f'(a_1) * (W_1 F e): the
first layer's update is a direct-feedback-alignment update with the adaptive feedback
matrix W_1 F (`theory/pepita_dfa.py` checks the remainder is second order). Defaults from
the paper: no biases, He-uniform weights U(+-sqrt(6/n_in)), F = 0.05 U(+-sqrt(6/n_in)),
SGD with momentum 0.9.

`mirror` (Srinivasan et al. 2024, who read PEPITA as adaptive feedback alignment): F also
learns, by weight mirroring — a noise vector xi at the input, the output drive o(xi) it
evokes, and dF ∝ xi o^T - decay F, so that F tends to the noise's input-output correlation
E[xi o^T] / decay (for a linear network sigma^2 (W_L ... W_1)^T / decay; `mirror` is the
rate relative to the weights', `mirror_decay` the decay). Our reading of their
description (their code is unlicensed and was not read).

PEPITA as one stream (`PEPITACircuit`). The two passes become two moments of each
presentation: leaky neurons, tau dv_l/dt = W_l r_{l-1} - v_l, see the sample x for the first
half of its presentation while a sample-and-hold memory follows their rates and the output
error, tau_hold dH_l/dt = (1 - g)(r_l - H_l), tau_hold dE/dt = (1 - g)(r_L - y - E); in the
second half (g = 1) the input becomes x - F E, the memory holds, and the synapses move,

    dW_l/dt = -g (2 eta / t_pres) (H_l - r_l) r_{l-1}^T      (hidden; r_0 = x - g F E),
    dW_L/dt = -g (2 eta / t_pres) (r_L - y) r_{L-1}^T,

so one presentation applies one PEPITA update of rate eta once the neurons settle within
tau << t_pres / 2 (the deficit is O(tau / t_pres): the difference H - r starts at zero and
no term arises at a sample's onset, where g = 0). The gate g is the stimulus's clock (the
second half of every presentation): the modulated input follows the unmodulated one.
Streamed, the first layer's rule amplifies itself: the synapses change while the modulated
activity responds to them, r_1 = phi(W_1 x~), so d(H_1 - r_1)/dt = +c |x~|^2 (H_1 - r_1)
(c = 2 eta / t_pres per stream) and one presentation applies about exp(eta lambda) - 1
times PEPITA's step instead of eta lambda, lambda the top eigenvalue of the streams' input
Gram matrix x~ x~^T / streams (about 40 for 32 MNIST digits in [0, 1]). On one such batch
(float64) the first layer's update is off PEPITA's by 6.5% at eta 0.01, 16% at 0.03, 100%
at 0.1 and 920% at 0.3 (the output layer's by <= 7%); the default eta 0.2 was the best of
0.05 / 0.1 / 0.2 / 0.3 on mnist5k (784-100-10, 10 epochs, seed 0: 81.3, 85.0, 87.2, 82.8%).

FDFA. Direct feedback alignment whose feedback matrices are learned from forward-mode
directional derivatives: during the forward pass a random tangent u_l ~ N(0, I) is injected
at every hidden layer's activity (one `jax.jvp`), giving at the output d = sum_l J_l u_l
with J_l = d out / d h_l; each feedback matrix follows B_l <- B_l - rate (B_l - mean(d
u_l^T)), a running estimate of the expected Jacobian E[J_l] (the cross terms average out),
and the hidden layers learn DFA-style, delta_l = (e B_l) * f'(a_l) with the output error
e = softmax(out) - y; the output layer learns from e directly. `theory/fdfa_jacobian.py`
checks that B_l converges to E[J_l] and that the update's variance is below the forward
gradients'. Defaults from the paper: B_l = 0 at the start, Adam 1e-4 for weights and
feedback, batches of 64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import (
    AbstractLayered,
    CrossEntropy,
    check_positive,
    forward_weights,
    init_layers,
    phi_of,
    slope,
)

__all__ = [
    "PEPITANetwork",
    "PEPITACircuit",
    "FDFANetwork",
    "rule_pepita",
    "rule_pepita_always_on",
    "rule_fdfa",
]


def he_uniform(key, n_out: int, n_in: int, scale: float = 1.0) -> Array:
    bound = scale * math.sqrt(6.0 / n_in)
    return jax.random.uniform(key, (n_out, n_in), minval=-bound, maxval=bound)


def layer_rates(activation: str, drives: Sequence[Array]) -> list[Array]:
    """`phi(a_l)` for the hidden drives a_1..a_{L-1}, softmax for the output's a_L."""
    phi, last = phi_of(activation), len(drives) - 1
    return [jax.nn.softmax(a, axis=-1) if i == last else phi(a) for i, a in enumerate(drives)]


def forward_pass(weights, activation: str, x) -> list[Array]:
    """Activities h_1..h_L of one forward pass without biases (h_L = softmax)."""
    phi, hs, r = phi_of(activation), [], x
    for i, w in enumerate(weights):
        a = r @ w.T
        r = jax.nn.softmax(a, axis=-1) if i == len(weights) - 1 else phi(a)
        hs.append(r)
    return hs


class PEPITANetwork(AbstractLayered, dynlearn.AbstractBatchLearner):
    """A PEPITA-trained MLP (no biases; softmax output).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; `key`: initialisation.
    - `activation`: hidden nonlinearity (default `"relu"`).
    - `projection_scale`: F ~ scale * U(+-sqrt(6 / n_in)) (default 0.05, the paper's).
    - `mirror`: rate of F's weight mirroring relative to the weights' (0: F fixed, the
      paper's PEPITA); `mirror_noise`: the input noise's std; `mirror_decay`: F's decay.
    """

    weights: list[Array]
    projection: Array  # F, (n_in, n_out)
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True, default="linear")  # softmax in `passes`
    mirror: float = eqx.field(static=True, default=0.0)
    mirror_noise: float = eqx.field(static=True, default=1.0)
    mirror_decay: float = eqx.field(static=True, default=0.1)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "relu",
        projection_scale: float = 0.05,
        mirror: float = 0.0,
        mirror_noise: float = 1.0,
        mirror_decay: float = 0.1,
    ):
        phi_of(activation)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes: need at least two positive layer sizes; got {list(sizes)}.")
        if not (projection_scale > 0 and mirror >= 0 and mirror_noise > 0 and mirror_decay >= 0):
            raise ValueError(
                "need projection_scale > 0, mirror >= 0, mirror_noise > 0, mirror_decay >= 0; "
                f"got {projection_scale}, {mirror}, {mirror_noise}, {mirror_decay}."
            )
        keys = jax.random.split(key, len(sizes))
        self.weights = [
            he_uniform(k, n_out, n_in) for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
        ]
        self.projection = he_uniform(keys[-1], sizes[-1], sizes[0], projection_scale).T
        self.activation, self.output_activation = activation, "linear"
        self.mirror, self.mirror_noise = float(mirror), float(mirror_noise)
        self.mirror_decay = float(mirror_decay)

    def passes(self, x) -> list[Array]:
        """Activities h_1..h_L of one forward pass (h_L = softmax of the output drive)."""
        return forward_pass(self.weights, self.activation, x)

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return self.passes(x)[-1]

    def modulated_input(self, x, y):
        """x~ = x - F e, e = h_L - y from the first pass."""
        return x - (self.passes(x)[-1] - y) @ self.projection.T

    def updates(self, x, y, key):
        """PEPITA's updates (batch means), and F's mirroring update if `mirror` > 0."""
        x, y = dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        batch = x.shape[0]
        first = self.passes(x)
        x_mod = x - (first[-1] - y) @ self.projection.T
        second = self.passes(x_mod)
        pre = [x_mod, *second[:-1]]
        posts = [h - h_mod for h, h_mod in zip(first[:-1], second[:-1])] + [second[-1] - y]
        grads = [post.T @ r / batch for post, r in zip(posts, pre)]
        projection = jnp.zeros_like(self.projection)
        if self.mirror > 0:
            projection = self.mirror * self.mirroring(key, batch)
        updates = eqx.tree_at(lambda m: (m.weights, m.projection), self, (grads, projection))
        loss = CrossEntropy()(jnp.log(jnp.maximum(first[-1], 1e-30)), y)
        return updates, {"loss": loss, "output": first[-1]}

    def mirroring(self, key, batch: int) -> Array:
        """Gradient-like weight-mirroring update of F: -(xi o^T / batch - decay F), with
        o(xi) the output drive evoked by input noise xi."""
        xi = self.mirror_noise * jax.random.normal(key, (batch, self.sizes[0]))

        def drive(inputs):
            r = inputs
            for w in self.weights[:-1]:
                r = phi_of(self.activation)(r @ w.T)
            return r @ self.weights[-1].T

        return -(xi.T @ drive(xi) / batch - self.mirror_decay * self.projection)

    def trainable(self):
        """The weights; F too when it mirrors."""
        spec = jax.tree.map(lambda _: False, self)
        spec = eqx.tree_at(lambda m: m.weights, spec, [True] * len(self.weights))
        return eqx.tree_at(lambda m: m.projection, spec, self.mirror > 0)

    def prunable(self):
        spec = jax.tree.map(lambda _: False, self)
        return eqx.tree_at(lambda m: m.weights, spec, [True] * len(self.weights))


def rule_pepita(sizes, key) -> dynlearn.Recipe:
    """The registered rule `pepita`: PEPITA (Dellaferrera & Kreiman 2022) with the paper's
    MNIST settings but its schedule and dropout: ReLU, F scale 0.05, SGD 0.1 with momentum
    0.9, batches of 64. On mnist5k's validation split (784-100-10, 10 epochs, seeds 0 / 1):
    learning rate 0.01 77.1 / 75.2%, 0.03 83.9 / 83.2, 0.1 87.8 / 86.9, 0.3 89.6 / 88.2
    (noisier from epoch to epoch); 784-1024-10 at 0.1: 91.0 / 90.4."""
    net = PEPITANetwork(sizes, key)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.sgd(0.1, momentum=0.9)), 64)


class PEPITACircuit(AbstractLayered, dynlearn.AbstractPlastic):
    """PEPITA as one stream of leaky neurons (module docstring: "PEPITA as one stream").

    **Arguments:** as `PEPITANetwork` (no mirroring), and
    - `eta`: the update one presentation applies (PEPITA's learning rate);
    - `tau`: the neurons' time constant; `tau_hold`: the sample-and-hold memory's.
    """

    weights: list[Array]
    projection: Array  # F, (n_in, n_out)
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True)
    eta: float = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    tau_hold: float = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "relu",
        projection_scale: float = 0.05,
        eta: float = 0.2,
        tau: float = 0.1,
        tau_hold: float = 0.1,
    ):
        check_positive(self, eta=eta, tau=tau, tau_hold=tau_hold)
        batch = PEPITANetwork(sizes, key, activation=activation, projection_scale=projection_scale)
        self.weights, self.projection = batch.weights, batch.projection
        self.activation, self.output_activation = activation, "linear"
        self.eta, self.tau, self.tau_hold = float(eta), float(tau), float(tau_hold)

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return forward_pass(self.weights, self.activation, x)[-1]

    def trainable(self):
        return forward_weights(self)

    def prunable(self):
        return forward_weights(self)

    def time_constants(self):
        return {"tau": self.tau, "tau_hold": self.tau_hold}

    def init_state(self, x=None):
        """Drives at the feed-forward values of `x` (zeros without), memory at rest."""
        streams = 1 if x is None else x.shape[0]
        x = jnp.zeros((streams, self.sizes[0])) if x is None else x
        drives, r = [], x
        for w in self.weights:
            drives.append(r @ w.T)
            r = phi_of(self.activation)(drives[-1])  # (the output's rate is not needed)
        return {
            "drive": drives,
            "held": [jnp.zeros((streams, n)) for n in self.sizes[1:-1]],
            "held_error": jnp.zeros((streams, self.sizes[-1])),
        }

    def _moment(self, t, y, args):
        """`(gate g, modulated input, rates r_1..r_L, target)` at time t."""
        x, target = dynlearn.input_and_target(args, t)
        gate = jnp.zeros((), x.dtype)
        if isinstance(args, dynlearn.StimulusStream) and target is not None:
            half = 0.5 * args.t_pres
            gate = (args.elapsed(t) >= half * (1 - 1e-4)).astype(x.dtype)
        x_mod = x - gate * y["held_error"] @ self.projection.T
        return gate, x_mod, layer_rates(self.activation, y["drive"]), target

    def vector_field(self, t, y, args):
        gate, x_mod, rates, target = self._moment(t, y, args)
        pre = [x_mod, *rates[:-1]]
        error = rates[-1] - (jnp.zeros_like(rates[-1]) if target is None else target)
        follow = (1 - gate) / self.tau_hold
        return {
            "drive": [(r @ w.T - a) / self.tau for w, r, a in zip(self.weights, pre, y["drive"])],
            "held": [follow * (r - h) for r, h in zip(rates[:-1], y["held"])],
            "held_error": follow * (error - y["held_error"]),
        }

    def plasticity(self, t, y, args):
        gate, x_mod, rates, target = self._moment(t, y, args)
        if target is None:
            return eqx.tree_at(lambda m: m.weights, self, [jnp.zeros_like(w) for w in self.weights])
        rate = gate * 2 * self.eta / args.t_pres / x_mod.shape[0]
        posts = [h - r for h, r in zip(y["held"], rates[:-1])] + [rates[-1] - target]
        pre = [x_mod, *rates[:-1]]
        d_w = [-rate * post.T @ r for post, r in zip(posts, pre)]
        return eqx.tree_at(lambda m: m.weights, self, d_w)


def rule_pepita_always_on(sizes, key) -> dynlearn.Recipe:
    """The registered rule `pepita-always-on`: PEPITA as one stream (`PEPITACircuit`,
    eta 0.2, tau = tau_hold = 0.1), every sample on for 2 time units (Euler dt 0.05),
    batches of 32 as 32 parallel streams. mnist5k test, 784-100-10, 10 epochs, seeds 0-2:
    86.67 +- 0.62% (settled `pepita` 89.20 +- 0.28%): the self-amplifying first-layer rule
    (module docstring) bounds its rate."""
    presentation = dynlearn.Presentation(t_pres=2.0, dt=0.05, streams=32)
    return dynlearn.Recipe(PEPITACircuit(sizes, key), dynlearn.AlwaysOn(presentation), 32)


class FDFANetwork(AbstractLayered, dynlearn.AbstractBatchLearner):
    """An MLP trained by forward direct feedback alignment (softmax cross-entropy output).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; `key`: initialisation (as `BackpropMLP`).
    - `activation`: hidden nonlinearity (default `"tanh"`).
    - `tangent_std`: std of the injected tangents u_l (default 1).
    - `feedback`: `"forward"` (FDFA: B_l learned from directional derivatives, zero at
      the start) or `"random"` (plain DFA on the same network: B_l fixed, U(+-1/sqrt(n_out))).
    """

    weights: list[Array]
    biases: list[Array]
    feedback: list[Array]  # B_l (n_out, n_l) for hidden layers, zero at the start
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True, default="linear")
    tangent_std: float = eqx.field(static=True, default=1.0)
    feedback_kind: str = eqx.field(static=True, default="forward")

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "tanh",
        tangent_std: float = 1.0,
        feedback: str = "forward",
    ):
        phi_of(activation)
        if not tangent_std > 0:
            raise ValueError(f"tangent_std must be > 0; got {tangent_std}.")
        if feedback not in ("forward", "random"):
            raise ValueError(f"feedback: expected 'forward' or 'random'; got {feedback!r}.")
        key_w, key_b = jax.random.split(key)
        self.weights, self.biases = init_layers(sizes, key_w)
        if len(self.weights) < 2:
            raise ValueError(f"sizes: FDFA needs a hidden layer; got {list(sizes)}.")
        n_out, bound = sizes[-1], 1 / math.sqrt(sizes[-1])
        if feedback == "forward":
            self.feedback = [jnp.zeros((n_out, n)) for n in sizes[1:-1]]
        else:
            keys = jax.random.split(key_b, len(sizes) - 2)
            self.feedback = [
                jax.random.uniform(k, (n_out, n), minval=-bound, maxval=bound)
                for k, n in zip(keys, sizes[1:-1])
            ]
        self.activation, self.output_activation = activation, "linear"
        self.tangent_std, self.feedback_kind = float(tangent_std), feedback

    def forward(self, x, offsets=None) -> tuple[list[Array], list[Array]]:
        """Drives a_1..a_L and activities h_1..h_{L-1} (+ `offsets`, one per hidden layer)."""
        phi, drives, hs, r = phi_of(self.activation), [], [], x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            drives.append(r @ w.T + b)
            if i < len(self.weights) - 1:
                r = phi(drives[-1]) + (0.0 if offsets is None else offsets[i])
                hs.append(r)
        return drives, hs

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return self.forward(x)[0][-1]

    def directional_derivatives(self, x, key) -> tuple[Array, list[Array]]:
        """d = sum_l J_l u_l at the output for tangents u_l injected at the hidden layers."""
        keys = jax.random.split(key, len(self.feedback))
        tangents = [
            self.tangent_std * jax.random.normal(k, (x.shape[0], b.shape[1]))
            for k, b in zip(keys, self.feedback)
        ]
        zeros = [jnp.zeros_like(u) for u in tangents]
        _, d = jax.jvp(lambda offs: self.forward(x, offs)[0][-1], (zeros,), (tangents,))
        return d, tangents

    def updates(self, x, y, key):
        """DFA updates through B_l, and B_l's pull towards mean(d u_l^T) / std^2."""
        x, y = dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        batch = x.shape[0]
        drives, hs = self.forward(x)
        e = jax.nn.softmax(drives[-1], axis=-1) - y
        phi = phi_of(self.activation)
        deltas = [(e @ b) * slope(phi, a) for b, a in zip(self.feedback, drives[:-1])] + [e]
        pre = [x, *hs]
        weights = [d.T @ r / batch for d, r in zip(deltas, pre)]
        biases = [jnp.mean(d, axis=0) for d in deltas]
        if self.feedback_kind == "forward":
            d, tangents = self.directional_derivatives(x, key)
            scale = batch * self.tangent_std**2
            feedback = [b - d.T @ u / scale for b, u in zip(self.feedback, tangents)]
        else:
            feedback = [jnp.zeros_like(b) for b in self.feedback]
        grads = eqx.tree_at(
            lambda m: (m.weights, m.biases, m.feedback), self, (weights, biases, feedback)
        )
        loss = CrossEntropy()(drives[-1], y)
        return grads, {"loss": loss, "output": drives[-1]}

    def trainable(self):
        """Weights and biases; the feedback too when it learns (`"forward"`)."""
        spec = jax.tree.map(eqx.is_inexact_array, self)
        learns = self.feedback_kind == "forward"
        return eqx.tree_at(lambda m: m.feedback, spec, [learns] * len(self.feedback))

    def prunable(self):
        spec = jax.tree.map(lambda _: False, self)
        return eqx.tree_at(lambda m: m.weights, spec, [True] * len(self.weights))


def rule_fdfa(sizes, key) -> dynlearn.Recipe:
    """The registered rule `fdfa`: forward DFA (Bacho & Chu 2022), tanh, Adam 1e-4 for the
    weights and the feedback (the paper's), batches of 64."""
    net = FDFANetwork(sizes, key)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-4)), 64)
