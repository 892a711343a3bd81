"""Meta-learned plasticity: the rule as weight dynamics, its episodes and its meta-gradient."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits.meta_plasticity import (
    TERMS,
    PlasticityRule,
    RuleNetwork,
    TopDownCredit,
    episode,
    init_weights,
    meta_loss,
)

SIZES = [6, 5, 4, 3]


@pytest.fixture
def samples():
    keys = jax.random.split(jax.random.key(1), 2)
    x = jax.random.uniform(keys[0], (7, SIZES[0]))
    y = jax.nn.one_hot(jax.random.randint(keys[1], (7,), 0, 3), 3)
    return x, y


def test_with_transported_feedback_and_no_extra_terms_it_is_sgd_on_cross_entropy(samples):
    """theta = 0 and B_l = W_{l+1}^T: dW/dt = -lr dCE/dW (softplus' slope from its output)."""
    x, y = samples
    weights = init_weights(SIZES, jax.random.key(2))
    rule = PlasticityRule(SIZES, jax.random.key(3), log_lr=np.log(0.5))
    rule = eqx.tree_at(lambda r: r.feedback, rule, [w.T for w in weights[1:]])

    def loss(weights):
        logits = rule.rates(weights, x[:1])[-1]
        return -jnp.sum(y[:1] * jax.nn.log_softmax(logits))

    stream = dynlearn.StimulusStream(x[:1, None], 1.0, y[:1, None])
    rates = rule.vector_field(0.0, weights, stream)
    for rate, grad in zip(rates, jax.grad(loss)(weights)):
        np.testing.assert_allclose(rate, -0.5 * grad, atol=1e-5)


def test_an_episode_is_one_online_update_per_sample(samples):
    x, y = samples
    theta = jnp.array([0.01, -0.02, 0.01, 0.005, -0.005])
    rule = PlasticityRule(SIZES, jax.random.key(3), theta=theta, log_lr=np.log(0.3))
    weights = init_weights(SIZES, jax.random.key(2))
    by_hand = list(weights)
    for k in range(x.shape[0]):
        one = dynlearn.StimulusStream(x[k : k + 1, None], 1.0, y[k : k + 1, None])
        rates = rule.vector_field(0.0, by_hand, one)
        by_hand = [w + r for w, r in zip(by_hand, rates)]
    for a, b in zip(episode(rule, weights, x, y), by_hand):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_meta_gradient_reaches_every_coefficient(samples):
    x, y = samples
    rule = PlasticityRule(SIZES, jax.random.key(3), theta=jnp.full(len(TERMS), 0.01))
    weights = init_weights(SIZES, jax.random.key(2))

    def loss(params):
        r = eqx.tree_at(lambda r: (r.theta, r.log_lr), rule, params)
        return meta_loss(r, weights, (x, y), (x, y))[0]

    grad_theta, grad_lr = jax.grad(loss)((rule.theta, rule.log_lr))
    assert np.all(np.abs(np.asarray(grad_theta)) > 0) and abs(float(grad_lr)) > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sizes": [6, 3]}, "hidden layer"),
        ({"theta": jnp.zeros(3)}, "theta"),
        ({"beta": 0.0}, "beta"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    sizes = kwargs.pop("sizes", SIZES)
    with pytest.raises(ValueError, match=match):
        PlasticityRule(sizes, jax.random.key(0), **kwargs)


def test_top_down_credit_is_computed_by_its_network_and_meta_learned(samples):
    """c_L = softmax - t, c_l = (V_l c_{l+1}) (1 + tanh(U_l y_l)) softplus'; dW_l = -lr c_l
    y_{l-1}^T; no error, no credit; the meta-gradient reaches V, U and the learning rate."""
    x, y = samples
    rule = TopDownCredit(SIZES, jax.random.key(3), log_lr=np.log(0.5))
    lateral = [
        0.1 * jax.random.normal(jax.random.key(k), u.shape) for k, u in enumerate(rule.lateral)
    ]
    rule = eqx.tree_at(lambda r: r.lateral, rule, lateral)
    weights = init_weights(SIZES, jax.random.key(2))
    ys = rule.rates(weights, x)
    top = jax.nn.softmax(ys[3]) - y
    gains = [1.0 + jnp.tanh(y @ u.T) for y, u in zip(ys[1:3], lateral)]
    middle = (top @ rule.feedback[1].T) * gains[1] * rule.slope(ys[2])
    bottom = (middle @ rule.feedback[0].T) * gains[0] * rule.slope(ys[1])
    stream = dynlearn.StimulusStream(x[:, None].swapaxes(0, 1), 1.0, y[:, None].swapaxes(0, 1))
    rates = rule.vector_field(0.0, weights, stream)
    for rate, c, pre in zip(rates, (bottom, middle, top), ys):
        np.testing.assert_allclose(rate, -0.5 * c.T @ pre / x.shape[0], atol=1e-5)
    assert all(float(jnp.max(jnp.abs(c))) == 0 for c in rule.credits(ys, jax.nn.softmax(ys[3])))

    dynamic, static = eqx.partition(rule, rule.meta_parameters())

    def loss(dynamic):
        return meta_loss(eqx.combine(dynamic, static), weights, (x, y), (x, y))[0]

    grads = jax.grad(loss)(dynamic)
    for leaf in grads.feedback + grads.lateral + [grads.log_lr]:
        assert float(jnp.max(jnp.abs(leaf))) > 0


def test_rule_network_steps_are_the_episode_for_one_sample(samples):
    """Settle-then-update with SGD 1.0 on a one-sample batch is one step of the episode;
    on a batch the update is the mean of the samples' rates."""
    x, y = samples
    rule = PlasticityRule(SIZES, jax.random.key(2), theta=jnp.asarray([0.1, -0.2, 0.1, 0.0, 0.05]))
    net = RuleNetwork(rule, jax.random.key(3))
    mode = dynlearn.SettleThenUpdate(optax.sgd(1.0))
    stepped, _, _ = mode.step(net, mode.init(net), x[:1], y[:1], jax.random.key(0))
    online = episode(rule, net.weights, x[:1], y[:1])
    for a, b in zip(stepped.weights, online):
        np.testing.assert_allclose(a, b, atol=1e-6)
    grads, metrics = net.updates(x, y, None)
    singles = [net.updates(x[i : i + 1], y[i : i + 1], None)[0].weights for i in range(7)]
    for k, g in enumerate(grads.weights):
        np.testing.assert_allclose(g, np.mean([w[k] for w in singles], axis=0), atol=1e-6)
    assert np.isfinite(float(metrics["loss"]))
    with pytest.raises(ValueError, match="AbstractEpisodeRule"):
        RuleNetwork("fa", jax.random.key(0))
