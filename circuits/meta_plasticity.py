"""Meta-learned credit assignment: plasticity rules and top-down credit networks whose
parameters are learned by differentiating through the simulated learning episode.

`PlasticityRule`: meta-learned plasticity with random feedback (Shervani-Tabar & Rosenbaum
2023, below). `TopDownCredit`: top-down credit assignment (arXiv 2208.01416), a top-down
network whose weights are meta-learned computes each hidden layer's credit (see its
docstring). Both are `AbstractEpisodeRule`s: the weights are the state, `episode` runs
one, `meta_loss` scores it.

Shervani-Tabar & Rosenbaum 2023 (Nat. Commun.), "Meta-learning biologically plausible
plasticity rules with random feedback pathways". A bias-free network y_0 = x,
y_l = softplus_beta(W_l y_{l-1}) (hidden), y_L = W_L y_{L-1} (logits), learns online, one
sample per presentation, with errors sent down through fixed random feedback B_l:

    e_L = softmax(y_L) - t,    e_l = (B_l e_{l+1}) * (1 - exp(-beta y_l))

(the second factor is softplus' derivative written with its output). The plasticity rule
is feedback alignment plus a weighted sum of candidate local terms (post x pre outer
products; e_0 = 0: the input gets no error):

    dW_l/dt = -exp(log_lr) [e_l y_{l-1}^T + sum_r theta_r F_r,l]
    F_1 = y_l e_{l-1}^T              (post rate x pre error)
    F_2 = e_l e_{l-1}^T              (post error x pre error)
    F_3 = e_l e_{l-1}^T - (e_l e_l^T) W_l    (Oja-like, errors)
    F_4 = y_l y_{l-1}^T              (Hebbian)
    F_5 = y_l y_{l-1}^T - (y_l y_l^T) W_l    (Oja)

`PlasticityRule` is that rule as a continuous-time system whose state is the weights,
driven by a `dynlearn.StimulusStream` of (input, one-hot target) pairs; an episode is
`dynlearn.simulate` with Euler steps of one presentation (`episode`), so `jax.grad` of a
loss after the episode with respect to the rule's coefficients (theta, log_lr) is the
meta-gradient *through the learning dynamics* (`meta_loss`). theta = 0 is plain FA.

The candidate terms follow the paper's description of its rule family (their code has no
licence and was not read): the first three as listed in the paper's summary of candidate
terms, the Hebbian pair as the usual "pre/post products". Our choices where the summary is
silent: e_0 = 0, one theta per term shared by every layer and measured in units of the
learning rate (so that Adam's steps on theta are on the scale of the FA term; absolute
coefficients let the Hebbian terms run away within an episode: |x|^2 ~ 100 for MNIST
digits), weights drawn fresh for each episode (He's uniform initialisation: with
U(+-1/sqrt(fan-in)) the rates and errors faded through the four hidden layers and plain FA
stayed near chance — 20-27% in 5-way episodes), feedback fixed for the life of the rule.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

import dynlearn
from circuits._layers import forward_weights

__all__ = [
    "TERMS",
    "AbstractEpisodeRule",
    "PlasticityRule",
    "TopDownCredit",
    "episode",
    "meta_loss",
    "init_weights",
    "RuleNetwork",
    "META_LEARNED_THETA",
    "rule_meta_plastic",
]

# theta meta-learned by `dynlearn run meta-plasticity --seed 0` (5-way 50-shot episodes of
# mnist5k digits 0-4, 784-170-130-100-70-5; rounded to two decimals): `TERMS`' weights.
META_LEARNED_THETA = (0.07, -0.16, -0.08, 0.01, -0.04)

TERMS = ("post rate x pre error", "post x pre error", "Oja (errors)", "Hebbian", "Oja")


def init_weights(
    sizes: Sequence[int], key: PRNGKeyArray, dtype=jnp.float32, gain: float = math.sqrt(6.0)
) -> list[Array]:
    """Fresh weights W_l, `(n_l, n_{l-1})`, U(+-gain/sqrt(n_{l-1})) (default: He's uniform
    initialisation, which keeps the rates' scale through the softplus layers)."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        gain * jax.random.uniform(k, (n_out, n_in), dtype, -1.0, 1.0) / jnp.sqrt(n_in)
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
    ]


class AbstractEpisodeRule(dynlearn.AbstractDynamics):
    """A learning rule as dynamics of the weights of a bias-free softplus network (hidden
    y_l = softplus_beta(W_l y_{l-1}), logits y_L = W_L y_{L-1}), driven by a stream of
    (input, one-hot target) pairs; its meta-parameters (`meta_parameters()`) are what
    meta-learning tunes through an `episode`."""

    log_lr: eqx.AbstractVar[Array]
    sizes: eqx.AbstractVar[tuple[int, ...]]
    beta: eqx.AbstractVar[float]

    @abc.abstractmethod
    def meta_parameters(self) -> PyTree[bool]:
        """Filter spec of the meta-learned leaves."""

    def penalty(self) -> Array:
        """A regulariser of the meta-parameters added to the meta-loss (default none)."""
        return jnp.zeros(())

    def rates(self, weights: Sequence[Array], x: Array) -> list[Array]:
        """y_0 = x, ..., y_L (logits), for `x` `(batch, n_in)`."""
        ys = [x]
        for k, w in enumerate(weights):
            a = ys[-1] @ w.T
            ys.append(a if k == len(weights) - 1 else jax.nn.softplus(self.beta * a) / self.beta)
        return ys

    def slope(self, y: Array) -> Array:
        """softplus' derivative, sigmoid(beta a), written with its output y."""
        return 1.0 - jnp.exp(-self.beta * y)


def _check_sizes(sizes, beta) -> tuple[int, ...]:
    sizes = tuple(int(n) for n in sizes)
    if len(sizes) < 3 or min(sizes) < 1:
        raise ValueError(
            f"sizes: expected (n_in, n_1, ..., n_L) with a hidden layer and positive "
            f"sizes; got {sizes}."
        )
    if not beta > 0:
        raise ValueError(f"beta: the softplus sharpness must be > 0; got {beta}.")
    return sizes


def _random_feedback(key, sizes, gain) -> list[Array]:
    """B_l ~ U(+-gain / sqrt(n_{l+1})), `(n_l, n_{l+1})`: from layer l+1 down to layer l."""
    keys = jax.random.split(key, len(sizes) - 2)
    return [
        gain * jax.random.uniform(k, (n, above), minval=-1.0, maxval=1.0) / jnp.sqrt(above)
        for k, n, above in zip(keys, sizes[1:-1], sizes[2:])
    ]


class PlasticityRule(AbstractEpisodeRule):
    """FA plus meta-learned local terms, as dynamics of the weights (module docstring).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; `key`: draws the fixed feedback B_l.
    - `theta`: coefficients of `TERMS` relative to the FA term (default zeros: plain FA);
      `log_lr`: log of the learning rate; `beta`: softplus sharpness.
    - `feedback_gain`: B_l ~ U(+-gain / sqrt(n_{l+1})).
    """

    feedback: list[Array]
    theta: Array
    log_lr: Array
    sizes: tuple[int, ...] = eqx.field(static=True)
    beta: float = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        theta: Array | None = None,
        log_lr: float = math.log(3e-2),
        beta: float = 10.0,
        feedback_gain: float = 1.0,
    ):
        sizes = _check_sizes(sizes, beta)
        theta = jnp.zeros(len(TERMS)) if theta is None else jnp.asarray(theta)
        if theta.shape != (len(TERMS),):
            raise ValueError(
                f"theta: expected shape ({len(TERMS)},) for {TERMS}; got {theta.shape}."
            )
        self.feedback = _random_feedback(key, sizes, feedback_gain)
        self.theta, self.log_lr = theta, jnp.asarray(log_lr, dtype=theta.dtype)
        self.sizes, self.beta = sizes, float(beta)

    def meta_parameters(self, learn_terms: bool = True):
        """theta (unless `learn_terms=False`: plain FA with a meta-learned rate) and
        log_lr."""
        spec = jax.tree.map(lambda _: False, self)
        return eqx.tree_at(lambda r: (r.theta, r.log_lr), spec, (learn_terms, True))

    def penalty(self):
        """|theta|_1 (the paper's L1: few terms)."""
        return jnp.sum(jnp.abs(self.theta))

    def errors(self, ys: Sequence[Array], target: Array) -> list[Array]:
        """e_1 ... e_L through the fixed feedback (module docstring)."""
        es = [jax.nn.softmax(ys[-1]) - target]
        for b, y in zip(reversed(self.feedback), reversed(ys[1:-1])):
            es.insert(0, (es[0] @ b.T) * self.slope(y))
        return es

    def vector_field(self, t, weights, stream):
        x, target = dynlearn.input_and_target(stream, t)
        ys = self.rates(weights, x)
        es = self.errors(ys, target)
        n = x.shape[0]
        pre_errors = [jnp.zeros_like(x)] + es[:-1]
        lr = jnp.exp(self.log_lr)
        rates = []
        th = self.theta  # th[r - 1] weighs F_r
        for w, post_y, post_e, pre_y, pre_e in zip(weights, ys[1:], es, ys[:-1], pre_errors):
            # every term is a coefficient times post x pre; the Oja terms' (y y^T) W is
            # y (y^T W). Stacked along the batch, the sum is one product (one n_post x
            # n_pre array written per step, not one per term).
            products = [
                (1.0, post_e, pre_y),  # feedback alignment
                (th[0], post_y, pre_e),  # F_1
                (th[1] + th[2], post_e, pre_e),  # F_2 and F_3's first part
                (-th[2], post_e, post_e @ w),  # F_3's Oja part
                (th[3] + th[4], post_y, pre_y),  # F_4 and F_5's first part
                (-th[4], post_y, post_y @ w),  # F_5's Oja part
            ]
            posts = jnp.concatenate([k * post for k, post, _ in products])
            pres = jnp.concatenate([pre for _, _, pre in products])
            rates.append(-lr * posts.T @ pres / n)
        return rates


class TopDownCredit(AbstractEpisodeRule):
    """Top-down credit assignment: a top-down network computes each layer's credit, and
    its weights are meta-learned (after arXiv 2208.01416, "TDCA").

    The bottom-up network is the softplus network of `AbstractEpisodeRule`; it learns
    dW_l/dt = -exp(log_lr) c_l y_{l-1}^T from credits computed top-down,

        c_L = softmax(y_L) - t,
        c_l = (V_l c_{l+1}) * (1 + tanh(U_l y_l)) * softplus'(a_l),

    so the top-down network sends the credit of the layer above down through V_l and gates
    it, unit by unit, by a gain in (0, 2) computed from the layer's own rates through U_l.
    V_l starts as FA's random feedback and U_l at zero (gain 1: plain FA at the start); V,
    U and log_lr are meta-learned. Choices the paper's description leaves open, made here:
    the output credit is the cross-entropy error (the top-down network shapes the hidden
    credits only); the rates act multiplicatively — an additive path (tanh(V c + U y))
    gave credits without error, a Hebbian drive that made the weights run away within the
    second meta-training episode; no biases.

    **Arguments:** `sizes`, `key` (draws V), `log_lr`, `beta`, `feedback_gain` (as
    `PlasticityRule`).
    """

    feedback: list[Array]  # V_l, (n_l, n_{l+1})
    lateral: list[Array]  # U_l, (n_l, n_l)
    log_lr: Array
    sizes: tuple[int, ...] = eqx.field(static=True)
    beta: float = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        log_lr: float = math.log(3e-2),
        beta: float = 10.0,
        feedback_gain: float = 1.0,
    ):
        sizes = _check_sizes(sizes, beta)
        self.feedback = _random_feedback(key, sizes, feedback_gain)
        self.lateral = [jnp.zeros((n, n)) for n in sizes[1:-1]]
        self.log_lr = jnp.asarray(log_lr, dtype=self.lateral[0].dtype)
        self.sizes, self.beta = sizes, float(beta)

    def meta_parameters(self):
        """The top-down weights V, U and log_lr."""
        spec = jax.tree.map(lambda _: False, self)
        learn = ([True] * len(self.feedback), [True] * len(self.lateral), True)
        return eqx.tree_at(lambda r: (r.feedback, r.lateral, r.log_lr), spec, learn)

    def credits(self, ys: Sequence[Array], target: Array) -> list[Array]:
        """c_1 ... c_L (class docstring)."""
        cs = [jax.nn.softmax(ys[-1]) - target]
        for v, u, y in zip(reversed(self.feedback), reversed(self.lateral), reversed(ys[1:-1])):
            cs.insert(0, (cs[0] @ v.T) * (1.0 + jnp.tanh(y @ u.T)) * self.slope(y))
        return cs

    def vector_field(self, t, weights, stream):
        x, target = dynlearn.input_and_target(stream, t)
        ys = self.rates(weights, x)
        lr = jnp.exp(self.log_lr)
        return [-lr * (c.T @ pre) / x.shape[0] for c, pre in zip(self.credits(ys, target), ys)]


def episode(
    rule: AbstractEpisodeRule, weights, x: Array, y: Array, **simulate_kwargs
) -> list[Array]:
    """The weights after presenting `(x, y)` `(n, n_in)`, `(n, n_classes)` one sample per
    unit of time (Euler steps of 1: one online update per sample), by `dynlearn.simulate`."""
    stream = dynlearn.StimulusStream(x[:, None], 1.0, y[:, None])
    trajectory = dynlearn.simulate(
        rule, list(weights), 0.0, float(x.shape[0]), args=stream, dt=1.0, **simulate_kwargs
    )
    return trajectory.y1


def meta_loss(rule: AbstractEpisodeRule, weights, support, query) -> tuple[Array, Array]:
    """(cross-entropy, accuracy) on `query = (x, y)` after an episode on `support`."""
    learned = episode(rule, weights, *support)
    logits = rule.rates(learned, query[0])[-1]
    loss = -jnp.mean(jnp.sum(query[1] * jax.nn.log_softmax(logits), axis=-1))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(query[1], -1))
    return loss, accuracy


class RuleNetwork(dynlearn.AbstractBatchLearner):
    """A rule's network trained settle-then-update: each batch's update is minus the rule's
    dW/dt at the batch (the mean over its samples), so `optax.sgd(1.0)` applies the rule's
    own step per batch (the classical form, for the comparison study).

    **Arguments:** `rule`: an `AbstractEpisodeRule` (its meta-parameters stay fixed);
    `key`: initialises the weights (`init_weights`).
    """

    weights: list[Array]
    rule: AbstractEpisodeRule

    def __init__(self, rule: AbstractEpisodeRule, key: PRNGKeyArray):
        if not isinstance(rule, AbstractEpisodeRule):
            raise ValueError(
                f"rule: expected an AbstractEpisodeRule such as PlasticityRule; got "
                f"{type(rule).__name__}."
            )
        self.weights, self.rule = init_weights(rule.sizes, key), rule

    def predict(self, x):
        dynlearn.check_batch(x, None, self.rule.sizes[0], what=f"layer sizes {self.rule.sizes}")
        return self.rule.rates(self.weights, x)[-1]

    def trainable(self):
        return forward_weights(self)

    def prunable(self):
        return forward_weights(self)

    def updates(self, x, y, key):
        x, y = dynlearn.check_batch(x, y, self.rule.sizes[0], self.rule.sizes[-1])
        stream = dynlearn.StimulusStream(x[None], 1.0, y[None])
        rates = self.rule.vector_field(0.0, self.weights, stream)
        logits = self.rule.rates(self.weights, x)[-1]
        loss = -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=-1))
        grads = eqx.tree_at(lambda m: m.weights, self, [-r for r in rates])
        return grads, {"loss": loss, "output": logits}


def rule_meta_plastic(sizes, key) -> dynlearn.Recipe:
    """The registered rule `meta-plastic`: FA plus the local terms with the coefficients
    meta-learned in the few-shot setting (`META_LEARNED_THETA`), learning rate 0.1 per
    batch, softplus network, `RuleNetwork` under SGD 1.0, batches of 32.

    The coefficients do not carry over to many-shot learning: on mnist5k (784-100-10, 10
    epochs, seed 0) it reaches 88.6% at lr 0.1 and 88.2% at 3e-2, plain FA in the same
    network (theta = 0) 91.2% and 89.0%. `TopDownCredit` is not registered: its
    meta-learned top-down weights are shaped by the network they were meta-trained on, and
    without meta-training it is FA."""
    k_rule, k_net = jax.random.split(key)
    theta = jnp.asarray(META_LEARNED_THETA)
    rule = PlasticityRule(sizes, k_rule, theta=theta, log_lr=math.log(0.1))
    return dynlearn.Recipe(RuleNetwork(rule, k_net), dynlearn.SettleThenUpdate(optax.sgd(1.0)), 32)
