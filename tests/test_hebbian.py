"""Hebbian circuits (`circuits.hebbian`, activation learning included): one rule
both ways, the optimizer's groups, what they learn on digits, and clear errors for bad settings."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits import hebbian
from circuits.hebbian import (
    ActivationLearner,
    CompetitiveSubspace,
    GeneralisedHebbian,
    HardWTA,
    HebbianNetwork,
    SoftHebb,
)

RULES = [
    SoftHebb(),
    SoftHebb(anti_hebbian=True, triangle_power=1.0),
    HardWTA(),
    HardWTA(homeostasis=2.0),
    GeneralisedHebbian(),
    CompetitiveSubspace(),
]


@pytest.fixture(scope="module")
def digits():
    return dynlearn.data.load("digits")


@pytest.mark.parametrize("rule", RULES, ids=lambda r: type(r).__name__)
def test_always_on_rates_at_the_settled_state_are_the_settle_then_update_rule(rule):
    """The same equations both ways: with the neurons at their settled values, the always-on
    dW/dt is minus the settle-then-update update over tau_w (read-out: over 1/eta_r)."""
    net = HebbianNetwork([12, 6, 3], rule, jax.random.key(0), tau_w=7.0, eta_readout=0.3)
    net = eqx.tree_at(lambda m: m.centres[0], net, jnp.full(12, 0.2))
    x = jax.random.uniform(jax.random.key(1), (4, 12))
    y = jax.nn.one_hot(jnp.array([0, 2, 1, 2]), 3)
    updates, _ = net.updates(x, y, None)
    _, _, drives, _, features = net.settle(x)
    z = net.readout_input(features) @ net.weights[-1].T + net.biases[-1]
    state = {"hidden1": {"u": drives[0]}, "output": {"z": z}}
    stream = dynlearn.StimulusStream(x[None], t_pres=1.0, targets=y[None])
    rates = net.plasticity(0.5, state, stream)
    scales = [net.tau_w, 1 / net.eta_readout]
    for field in ("weights", "biases"):
        for rate, update, scale in zip(getattr(rates, field), getattr(updates, field), scales):
            np.testing.assert_allclose(rate * scale, -update, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rates.centres[0] * net.tau_w, -updates.centres[0], atol=1e-7)
    # and the neurons' drift vanishes there
    drift = net.vector_field(0.5, state, stream)
    assert max(float(jnp.abs(v).max()) for v in jax.tree.leaves(drift)) < 1e-5


def test_the_optimizer_sends_each_group_to_its_own_transformation(digits):
    net = HebbianNetwork([64, 20, 10], SoftHebb(), jax.random.key(0))
    # a read-out that has learned (a zero one would be pruned whole)
    net = eqx.tree_at(lambda m: m.weights[1], net, jax.random.normal(jax.random.key(1), (10, 20)))
    frozen = optax.sgd(0.0)
    for learner in (net, dynlearn.prune(net, 0.5)):
        opt = net.optimizer(frozen, optax.sgd(0.5), homeostatic=frozen)
        mode = dynlearn.SettleThenUpdate(opt)
        x, y = jnp.asarray(digits.x_train[:32]), jax.nn.one_hot(digits.y_train[:32], 10)
        after, _, _ = mode.step(learner, mode.init(learner), x, y, None)
        before, after = dynlearn._pruning.unwrap(learner)[0], dynlearn._pruning.unwrap(after)[0]
        np.testing.assert_array_equal(after.weights[0], before.weights[0])  # Hebbian: frozen
        np.testing.assert_array_equal(after.biases[0], before.biases[0])  # prior: frozen
        assert not np.allclose(after.weights[1], before.weights[1])  # read-out: learns


def test_settle_then_update_rules_learn_digits(digits):
    """Measured (3 epochs, 64-100-10, seed 0): softhebb 0.91, gha 0.86; chance is 0.1."""
    for factory, floor in ((hebbian.rule_softhebb, 0.85), (hebbian.rule_gha, 0.75)):
        learner, mode, batch_size = factory([64, 100, 10], jax.random.key(0))
        result = dynlearn.fit(
            learner, digits, mode, epochs=3, batch_size=batch_size, progress=False
        )
        assert float(result.metrics.test_accuracy[-1]) > floor, factory.__name__


def test_softhebb_norms_go_to_one_without_labels(digits):
    net = HebbianNetwork([64, 16], SoftHebb(temperature=0.2), jax.random.key(0), readout=False)
    net = hebbian.train_unlabelled(net, digits.x_train, optax.sgd(2.0), batch_size=32, epochs=4)
    norms = np.linalg.norm(np.asarray(net.weights[0]), axis=1)
    assert np.all(np.abs(norms - 1) < 0.1), norms  # from 4 at the start


def test_bad_settings_and_inputs_name_what_is_wrong(digits):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="SoftHebb.temperature must be a finite number > 0"):
        SoftHebb(temperature=-1.0)
    with pytest.raises(ValueError, match="HebbianNetwork.tau_w must be a finite number > 0"):
        HebbianNetwork([4, 3, 2], SoftHebb(), key, tau_w=0.0)
    with pytest.raises(ValueError, match="HebbianNetwork.tau must be"):
        HebbianNetwork([4, 3, 2], SoftHebb(), key, tau=-1.0)
    with pytest.raises(ValueError, match="rules: expected 2 Hebbian rules"):
        HebbianNetwork([4, 3, 3, 2], [SoftHebb()], key)
    with pytest.raises(ValueError, match="HardWTA.rank must be an int >= 2"):
        HardWTA(rank=1)
    with pytest.raises(ValueError, match="HardWTA.homeostasis must be >= 0"):
        HardWTA(homeostasis=-1.0)
    net = HebbianNetwork([64, 8, 10], SoftHebb(), key)
    x = jnp.asarray(digits.x_train[:8])
    with pytest.raises(ValueError, match="y: the read-out learns from labels, and none"):
        net.updates(x, None, None)
    with pytest.raises(ValueError, match=r"y: expected one-hot targets of shape \(8, 10\)"):
        net.updates(x, jnp.zeros((8, 3)), None)
    unlabelled = dynlearn.StimulusStream(x[:, None], t_pres=1.0)
    with pytest.raises(ValueError, match="args: the read-out learns from labels"):
        net.plasticity(0.0, net.init_state(x[:1]), unlabelled)
    too_coarse = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=5.0, dt=2.0))
    with pytest.raises(ValueError, match="dt=2.0 is larger than the fastest time constant"):
        dynlearn.fit(net, digits, too_coarse, epochs=1, batch_size=32, progress=False)


# -- activation learning ----------------------------------------------------------------


def test_activation_learner_rates_are_the_same_both_ways():
    """Always on, the label is part of the input: at the settled state the plasticity is
    minus the settle-then-update update over tau_w, and the neurons are at rest."""
    net = ActivationLearner([12, 6, 3], jax.random.key(0), tau_w=5.0, label_scale=0.7)
    x = jax.random.uniform(jax.random.key(1), (4, 12))
    y = jax.nn.one_hot(jnp.array([0, 2, 1, 2]), 3)
    updates, metrics = net.updates(x, y, None)
    assert metrics["output"].shape == (4, 3) and float(metrics["loss"]) > 0
    drives = net.network.settle(net.joint(x, y))[2]
    state = {"output": {"u": drives[0]}}
    stream = dynlearn.StimulusStream(x[None], t_pres=1.0, targets=y[None])
    rates = net.plasticity(0.5, state, stream)
    np.testing.assert_allclose(
        rates.network.weights[0] * 5.0, -updates.network.weights[0], rtol=1e-5, atol=1e-7
    )
    drift = net.vector_field(0.5, state, stream)
    assert float(jnp.abs(drift["output"]["u"]).max()) < 1e-5


def test_activation_learning_classifies_digits_by_the_most_activating_label(digits):
    """Measured (3 epochs, 64-100-10, seed 0): 0.93; chance is 0.1. The label that
    activates the trained network most is the true one far more often than chance, and
    the true label activates it more on average than the others."""
    learner, mode, batch_size = hebbian.rule_activation([64, 100, 10], jax.random.key(0))
    result = dynlearn.fit(learner, digits, mode, epochs=3, batch_size=batch_size, progress=False)
    assert float(result.metrics.test_accuracy[-1]) > 0.85
    scores = np.asarray(result.learner.predict(jnp.asarray(digits.x_test)))
    is_true = np.eye(10, dtype=bool)[digits.y_test]
    assert scores[is_true].mean() > 1.1 * scores[~is_true].mean()  # measured 1.20


def test_activation_learner_bad_settings_name_the_argument(digits):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="ActivationLearner.label_scale must be a finite"):
        ActivationLearner([64, 8, 10], key, label_scale=0.0)
    with pytest.raises(ValueError, match="sizes: need n_in, at least one hidden layer"):
        ActivationLearner([64, 10], key)
    net = ActivationLearner([64, 8, 10], key)
    x = jnp.asarray(digits.x_train[:8])
    with pytest.raises(ValueError, match="y: activation learning learns the label"):
        net.updates(x, None, None)
    with pytest.raises(ValueError, match=r"x: expected a batch \(batch, 64\)"):
        net.predict(x[:, :10])


def test_activation_learner_predicts_every_label_with_one_first_layer_product():
    """`predict` computes the first layer's drives once per sample and label code; it equals
    settling the network on every joint pattern [x, lambda e_c] in turn."""
    rules = [HardWTA(), SoftHebb()]  # any rule in the first layer, another above
    net = ActivationLearner([12, 7, 5, 3], jax.random.key(0), rules=rules, label_scale=0.7)
    centres = 0.1 * jax.random.normal(jax.random.key(3), (15,))
    net = eqx.tree_at(lambda m: m.network.centres[0], net, centres)
    x = jax.random.uniform(jax.random.key(1), (4, 12))
    one_by_one = [net.activation(net.joint(x, jnp.tile(e, (4, 1)))) for e in jnp.eye(3)]
    np.testing.assert_allclose(net.predict(x), jnp.stack(one_by_one, 1), rtol=1e-5, atol=1e-7)
