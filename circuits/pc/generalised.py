"""Predictive coding beyond Gaussians (Pinchetti et al. 2022): nodes hold distributions.

A generalised PC network is a directed acyclic graph of nodes. Node v holds the natural
parameter z_v of a distribution q_v (a mean for a Gaussian, logits for a categorical or a
Bernoulli) and passes its expected value m_v = E_q[x_v] to its children; its parents'
values predict the parameter of a prior, mu_v = g_v(m_parents; theta_v). The energy is

    F = sum_v KL( q_v(z_v) || p_v(mu_v) ),

which for fixed-variance Gaussians is standard PC's sum of |m_v - mu_v|^2 / (2 s_v)
(`theory/gpc_gaussian.py` checks equality with `circuits.pc` to 1e-10). Families:
- `Gaussian(variance)`: KL = |m - mu|^2 / (2 s);
- `Categorical()`: q = softmax(z), p = softmax(mu), KL = sum q (log q - log p) — a clamped
  one-hot target makes it the cross-entropy -log softmax(mu)_y;
- `Bernoulli()`: q = sigmoid(z), p = sigmoid(mu), KL summed over independent units.

Inference is the gradient flow tau dz/dt = -dF/dz on the free nodes (input clamped, output
clamped to the target while learning, as `circuits.pc.Clamped`), from the feed-forward
state z_v = mu_v where every KL is zero; learning is minus dF/dtheta at the settled state,
local to each node (theta_v appears only in its own KL). With `learning="backprop"` the
same graph is trained by BP on the output's KL at the feed-forward pass (the reference).

Prediction functions (`g_v`): `Dense` (mu = W f(m) + b, f on the parent's value, as in
`circuits.pc`), and for attention `AttentionScores` (logits q_T . k_i / sqrt(d) of the last
token's query against every token's key) and `AttentionValues` (sum_i a_i v_i). `Softmax`
wraps one to predict probabilities instead of logits, for Gaussian nodes that stand in for
categorical ones (what Gaussian PC must do with an attention layer). `toy_transformer`
builds a one-block transformer on token sequences in both forms.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import xlogy
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import ACTIVATIONS, check_options, phi_of
from circuits.pc import AbstractInference, EulerInference, PCDrive

__all__ = [
    "Gaussian",
    "Categorical",
    "Bernoulli",
    "Dense",
    "AttentionScores",
    "AttentionValues",
    "Softmax",
    "Node",
    "GPCNetwork",
    "toy_transformer",
]


# ------------------------------------------------------------------------------ families
class AbstractFamily(eqx.Module):
    """A node's distribution: its expected value, and KL(q || p) from parameters."""

    @abc.abstractmethod
    def mean(self, z: Array) -> Array:
        """E_q[x] for natural parameter z: what the node sends to its children."""

    @abc.abstractmethod
    def kl(self, m: Array, mu: Array) -> Array:
        """KL(q || p(mu)) summed over units, q given by its expected value m (a clamped
        node's target, or `mean(z)`)."""

    def init(self, mu: Array) -> Array:
        """The natural parameter with q = p(mu) (KL zero): z = mu for every family here."""
        return mu


class Gaussian(AbstractFamily):
    """N(m, s) against N(mu, s): KL = |m - mu|^2 / (2 s) — standard PC's energy."""

    variance: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if not self.variance > 0:
            raise ValueError(f"Gaussian: variance must be > 0; got {self.variance}.")

    def mean(self, z):
        return z

    def kl(self, m, mu):
        return jnp.sum((m - mu) ** 2) / (2 * self.variance)


class Categorical(AbstractFamily):
    """Cat(softmax(z)) against Cat(softmax(mu)) over the last axis."""

    def mean(self, z):
        return jax.nn.softmax(z, axis=-1)

    def kl(self, m, mu):
        return jnp.sum(xlogy(m, m) - m * jax.nn.log_softmax(mu, axis=-1))


class Bernoulli(AbstractFamily):
    """Independent Bernoulli(sigmoid(z)) against Bernoulli(sigmoid(mu))."""

    def mean(self, z):
        return jax.nn.sigmoid(z)

    def kl(self, m, mu):
        entropy = xlogy(m, m) + xlogy(1 - m, 1 - m)
        return jnp.sum(entropy - m * jax.nn.log_sigmoid(mu) - (1 - m) * jax.nn.log_sigmoid(-mu))


# ------------------------------------------------------------------------------ predictions
class Dense(eqx.Module):
    """mu = W f(m) + b on one parent's value m (f = `activation`, identity for `"linear"`)."""

    weight: Array
    bias: Array
    activation: str = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, key: PRNGKeyArray, activation: str = "linear"):
        phi_of(activation)
        bound = 1 / math.sqrt(n_in)
        self.weight = jax.random.uniform(key, (n_out, n_in), minval=-bound, maxval=bound)
        self.bias = jnp.zeros(n_out)
        self.activation = activation

    def __call__(self, m):
        return ACTIVATIONS[self.activation](m) @ self.weight.T + self.bias


class AttentionScores(eqx.Module):
    """Logits of the last token's query against every token's key, (x_T W_q).(x_i W_k) /
    sqrt(d), for one sequence `(T, n_in)`: one categorical over positions."""

    query: Array
    key: Array

    def __init__(self, n_in: int, d: int, key: PRNGKeyArray):
        kq, kk = jax.random.split(key)
        bound = 1 / math.sqrt(n_in)
        self.query = jax.random.uniform(kq, (n_in, d), minval=-bound, maxval=bound)
        self.key = jax.random.uniform(kk, (n_in, d), minval=-bound, maxval=bound)

    def __call__(self, tokens):
        q = tokens[-1] @ self.query
        return (tokens @ self.key) @ q / math.sqrt(self.query.shape[1])


class AttentionValues(eqx.Module):
    """sum_i a_i (x_i W_v): the attended value, from the attention a and the tokens."""

    value: Array

    def __init__(self, n_in: int, d: int, key: PRNGKeyArray):
        bound = 1 / math.sqrt(n_in)
        self.value = jax.random.uniform(key, (n_in, d), minval=-bound, maxval=bound)

    def __call__(self, attention, tokens):
        return attention @ (tokens @ self.value)


class Softmax(eqx.Module):
    """softmax of another prediction's output: probabilities as a Gaussian node's mean."""

    inner: eqx.Module

    def __call__(self, *parents):
        return jax.nn.softmax(self.inner(*parents), axis=-1)


class Node(eqx.Module):
    """A node: its prediction g_v, its parents' names ("input" is the clamped input) and its
    distribution family."""

    predict: eqx.Module
    parents: tuple[str, ...] = eqx.field(static=True)
    family: AbstractFamily


# ------------------------------------------------------------------------------ network
LEARNING = ("pc", "backprop")


class GPCNetwork(dynlearn.AbstractDynamics, dynlearn.AbstractBatchLearner):
    """Generalised PC on a graph of `nodes` (state: `{name: z}` for every node but the
    output, per sample).

    **Arguments:**
    - `nodes`: `{name: Node}` in topological order; the last node is the output (clamped to
      the target while learning); parents named `"input"` read the input.
    - `input_shape`: the shape of one input (a flat batch row is reshaped to it).
    - `inference`: `EulerInference(...)` (default: 20 steps of 0.1) or
      `SteadyStateInference(...)` from `circuits.pc`.
    - `learning`: `"pc"` (settle, then -dF/dtheta) or `"backprop"` (BP on the output's KL
      at the feed-forward pass, the reference).
    - `tau`: inference time constant.
    """

    nodes: dict[str, Node]
    order: tuple[str, ...] = eqx.field(static=True)
    input_shape: tuple[int, ...] = eqx.field(static=True)
    inference: AbstractInference
    learning: str = eqx.field(static=True)
    tau: float = eqx.field(static=True)

    def __init__(
        self,
        nodes: dict[str, Node],
        input_shape: Sequence[int],
        *,
        inference: AbstractInference = EulerInference(),
        learning: str = "pc",
        tau: float = 1.0,
    ):
        if not nodes:
            raise ValueError("nodes: need at least one node (the output).")
        known = {"input"}
        for name, node in nodes.items():
            if not isinstance(node, Node):
                raise ValueError(f"nodes[{name!r}]: expected a Node; got {type(node).__name__}.")
            missing = [p for p in node.parents if p not in known]
            if missing:
                raise ValueError(
                    f"nodes[{name!r}]: parents {missing} are not defined before it (nodes "
                    "must be in topological order; the input is 'input')."
                )
            known.add(name)
        check_options(
            "circuits.pc.generalised",
            {"inference": (AbstractInference, "EulerInference() or SteadyStateInference()")},
            inference=inference,
        )
        if learning not in LEARNING:
            raise ValueError(f"learning: expected one of {LEARNING}; got {learning!r}.")
        if not tau > 0:
            raise ValueError(f"tau must be > 0; got {tau}.")
        self.nodes, self.order = dict(nodes), tuple(nodes)
        self.input_shape = tuple(int(n) for n in input_shape)
        self.inference, self.learning, self.tau = inference, learning, float(tau)
        inference.check(self)

    # ----------------------------------------------------------------- structure
    @property
    def output(self) -> str:
        return self.order[-1]

    def time_constants(self):
        return {"tau": self.tau}

    def free_layers(self) -> list[str]:
        return list(self.order[:-1])

    def _tokens(self, x):
        return jnp.reshape(x, self.input_shape)

    def feedforward(self, x) -> tuple[dict, dict]:
        """For one input: the natural parameters mu_v of every node's prediction and the
        values m_v of the feed-forward pass (z_v = mu_v, every KL zero)."""
        values, mus = {"input": self._tokens(x)}, {}
        for name in self.order:
            node = self.nodes[name]
            mus[name] = node.predict(*(values[p] for p in node.parents))
            values[name] = node.family.mean(node.family.init(mus[name]))
        return mus, values

    def init_state(self, x=None) -> dict:
        """The feed-forward state z_v = mu_v of the free nodes (one sample)."""
        x = jnp.zeros(self.input_shape) if x is None else x
        mus, _ = self.feedforward(x)
        return {name: self.nodes[name].family.init(mus[name]) for name in self.free_layers()}

    # ----------------------------------------------------------------- energy
    def node_energies(self, state, drive: PCDrive) -> dict:
        """KL(q_v || p_v) per node for one sample; the output's q is the target y."""
        values, out = {"input": self._tokens(drive.x)}, {}
        for name in self.order:
            node = self.nodes[name]
            mu = node.predict(*(values[p] for p in node.parents))
            m = node.family.mean(state[name]) if name in state else drive.y
            out[name] = node.family.kl(m, mu)
            values[name] = m
        return out

    def energy(self, state, drive: PCDrive):
        """F = sum_v KL(q_v || p_v) for one sample."""
        return sum(self.node_energies(state, drive).values())

    def vector_field(self, t, state, drive: PCDrive):
        """tau dz/dt = -dF/dz on the free nodes."""
        return dynlearn.gradient_flow(self.energy, state, drive, tau=self.tau)

    # ----------------------------------------------------------------- learning
    def predict(self, x):
        """The output's expected value at the feed-forward pass, for a batch."""
        dynlearn.check_batch(x, None, math.prod(self.input_shape), what="the input shape")
        return jax.vmap(lambda xi: self.feedforward(xi)[1][self.output])(x)

    def output_loss(self, x, y):
        """The output family's KL to the targets at the feed-forward pass, batch mean
        (cross-entropy for a categorical output, half the squared error for a Gaussian)."""
        family = self.nodes[self.output].family
        return jnp.mean(
            jax.vmap(lambda xi, yi: family.kl(yi, self.feedforward(xi)[0][self.output]))(x, y)
        )

    def settle(self, x, y):
        """Settled states for a batch (output clamped to `y`), from the feed-forward state."""
        drive = PCDrive(x, y)
        settle = jax.vmap(lambda xi, d: self.inference.settle(self, self.init_state(xi), d))
        return settle(x, drive), drive

    def updates(self, x, y, key):
        """PC: batch mean of dF/dtheta at the settled states; backprop: d(output_loss)."""
        x, y = dynlearn.check_batch(x, y, math.prod(self.input_shape), None)
        if self.learning == "backprop":
            loss, grads = eqx.filter_value_and_grad(lambda net: net.output_loss(x, y))(self)
            return grads, {"loss": loss}
        states, drive = self.settle(x, y)
        grads = eqx.filter_grad(lambda net: jnp.mean(jax.vmap(net.energy)(states, drive)))(self)
        return grads, {"loss": self.output_loss(x, y)}


# ------------------------------------------------------------------------------ builders
def toy_transformer(
    n_tokens: int,
    n_features: int,
    n_classes: int,
    key: PRNGKeyArray,
    *,
    d: int = 16,
    hidden: int = 32,
    gaussian: bool = False,
    **network_options,
) -> GPCNetwork:
    """A one-block transformer read out at the last token: attention a (a categorical over
    the `n_tokens` positions), attended value h = sum_i a_i x_i W_v, an MLP layer
    m = W_1 h + b_1, and class logits W_2 relu(m) + b_2 (categorical output). With
    `gaussian=True` the same parameters under Gaussian PC: a and the output are Gaussian
    nodes whose means are the softmax probabilities (unit variance)."""
    ks = jax.random.split(key, 4)
    scores, out = AttentionScores(n_features, d, ks[0]), Dense(hidden, n_classes, ks[3], "relu")
    if gaussian:
        attention = Node(Softmax(scores), ("input",), Gaussian())
        output = Node(Softmax(out), ("mlp",), Gaussian())
    else:
        attention = Node(scores, ("input",), Categorical())
        output = Node(out, ("mlp",), Categorical())
    nodes = {
        "attention": attention,
        "attended": Node(AttentionValues(n_features, d, ks[1]), ("attention", "input"), Gaussian()),
        "mlp": Node(Dense(d, hidden, ks[2]), ("attended",), Gaussian()),
        "output": output,
    }
    return GPCNetwork(nodes, (n_tokens, n_features), **network_options)


def recipe(network: GPCNetwork, lr: float = 1e-3, batch_size: int = 32) -> dynlearn.Recipe:
    """Settle-then-update with Adam."""
    return dynlearn.Recipe(network, dynlearn.SettleThenUpdate(optax.adam(lr)), batch_size)
