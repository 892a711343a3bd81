"""Target propagation and target projection (`circuits.target_prop`): the rules against
their equations, the always-on target dynamics against the settled targets, what they learn
on digits, and clear errors for bad settings."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits._layers import feedforward
from circuits.target_prop import DTPNetwork, GAITPropNetwork, TargetProjection

SIZES = [12, 9, 7, 5]


def batch(n=6, n_in=12, n_out=5):
    x = jax.random.normal(jax.random.key(1), (n, n_in))
    y = jax.nn.one_hot(jnp.arange(n) % n_out, n_out)
    return x, y


@pytest.mark.parametrize("feedback", ["dtp", "drl", "fixed"])
def test_dtp_top_layer_update_is_the_cross_entropy_gradient(feedback):
    """With the 1/beta in the local loss, the output layer's update is exactly dL/dW_L."""
    net = DTPNetwork(SIZES, jax.random.key(0), feedback=feedback, beta=0.05)
    x, y = batch()
    updates, _ = eqx.filter_jit(net.updates)(x, y, jax.random.key(2))

    def loss(w_last):
        ws = net.weights[:-1] + [w_last]
        logits = feedforward(ws, net.biases, net.phis, x)[-1]
        return optax.softmax_cross_entropy(logits, y).mean()

    np.testing.assert_allclose(updates.weights[-1], jax.grad(loss)(net.weights[-1]), atol=1e-6)


def test_dtp_targets_follow_the_difference_correction():
    net = DTPNetwork(SIZES, jax.random.key(0), beta=0.1)
    x, y = batch()
    rates, _ = net.rates(x)
    targets = net.targets(rates, y)
    top = rates[-1] - 0.1 * (jax.nn.softmax(rates[-1]) - y)
    np.testing.assert_allclose(targets[-1], top, atol=1e-6)
    below = rates[2] + net.g(3, targets[2]) - net.g(3, rates[3])
    np.testing.assert_allclose(targets[1], below, atol=1e-6)
    # targets y = softmax(h_L): no error at the top, so t_l = h_l in every layer
    for t, h in zip(net.targets(rates, jax.nn.softmax(rates[-1])), rates[1:]):
        np.testing.assert_allclose(t, h, atol=1e-6)


@pytest.mark.parametrize("prospective", [False, True])
def test_the_always_on_target_offsets_settle_to_the_dtp_targets(prospective):
    """The target dynamics (activities held by their input) settle where `targets` is, and
    the plasticity there is minus the settle-then-update update over tau_w."""
    net = DTPNetwork(
        SIZES, jax.random.key(0), feedback="fixed", beta=0.2, tau_w=7.0, prospective=prospective
    )
    x, y = batch()
    rates, _ = net.rates(x)
    stream = dynlearn.StimulusStream(x[None], t_pres=1.0, targets=y[None])
    start = net.init_state(x)  # activities at zero (leaky) or at once (prospective)
    settled = dynlearn.equilibrate(net, start, stream, rtol=1e-6, atol=1e-7).y
    assert ("h" in settled["output"]) is not prospective
    for name, h, t in zip(net.layer_names, rates[1:], net.targets(rates, y)):
        h_settled = h if prospective else settled[name]["h"]
        np.testing.assert_allclose(h_settled, h, atol=1e-5)
        np.testing.assert_allclose(h_settled + settled[name]["d"], t, atol=1e-5)
    updates, _ = net.updates(x, y, None)
    rates_w = net.plasticity(0.5, settled, stream)
    for rate, update in zip(rates_w.weights, updates.weights):
        np.testing.assert_allclose(rate * net.tau_w, -update, rtol=1e-3, atol=1e-5)


def test_dtp_feedback_learns_to_invert_and_fixed_feedback_stays():
    sizes = [12, 8, 8, 8]  # square above the first layer: g can invert f
    x, y = batch(64, n_out=8)

    def trained(feedback):
        net = DTPNetwork(sizes, jax.random.key(0), feedback=feedback, noise=0.05)
        mode = dynlearn.SettleThenUpdate(optax.adam(1e-2))
        opt = mode.optimizer
        state = opt.init(eqx.filter(net, net.trainable()))

        @eqx.filter_jit
        def step(net, state, key):  # the feedback's updates only: f held
            updates = eqx.filter(net.updates(x, y, key)[0], net.trainable())
            held = jax.tree.map(jnp.zeros_like, (net.weights, net.biases))
            updates = eqx.tree_at(lambda u: (u.weights, u.biases), updates, held)
            changes, state = opt.update(updates, state)
            return eqx.apply_updates(net, changes), state

        for i in range(200):
            net, state = step(net, state, jax.random.key(i))
        return net

    def reconstruction(net):
        feedback = (net.feedback_weights, net.feedback_biases)
        return net.feedback_loss(feedback, net.rates(x)[0], jax.random.key(3))

    start = DTPNetwork(sizes, jax.random.key(0), feedback="dtp", noise=0.05)
    assert reconstruction(trained("dtp")) < 0.2 * reconstruction(start)
    fixed, fresh = trained("fixed"), DTPNetwork(sizes, jax.random.key(0), feedback="fixed")
    for b, b0 in zip(fixed.feedback_weights, fresh.feedback_weights):
        np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("signal", ["drtp", "l2", "l1"])
def test_target_projection_updates_are_their_local_losses(signal):
    net = TargetProjection(SIZES, jax.random.key(0), signal=signal)
    x, y = batch()
    updates, metrics = net.updates(x, y, None)
    drives = feedforward(net.weights, net.biases, net.phis, x)
    rates = [x] + [phi(a) for phi, a in zip(net.phis, drives)]
    for i, p in enumerate(net.projections):

        def local(w, i=i, p=p):
            r = jnp.tanh(rates[i] @ w.T + net.biases[i])
            goal = y @ p.T
            if signal == "l2":
                return 0.5 * jnp.sum((goal - r) ** 2) / x.shape[0]
            if signal == "l1":
                return jnp.sum(jnp.abs(goal - r)) / x.shape[0]
            return -jnp.sum(jax.lax.stop_gradient(goal) * r) / x.shape[0]  # d/dr = -P y

        expected = jax.grad(local)(net.weights[i])
        expected = -expected if signal == "drtp" else expected
        np.testing.assert_allclose(updates.weights[i], expected, atol=1e-6)
    assert np.isfinite(metrics["loss"])


def test_gait_prop_with_orthogonal_weights_and_small_gamma_is_backprop():
    with jax.enable_x64(True):
        net = GAITPropNetwork([10] * 4, 4, jax.random.key(0), gamma=1e-6, activation="tanh")
        x = jax.random.normal(jax.random.key(1), (8, 10))
        y = jax.nn.one_hot(jnp.arange(8) % 4, 4)
        gait = net.gait_grads(x, y)[0]
        exact = eqx.filter_grad(lambda m: m.loss(x, y))(net).weights
        for a, b in zip(gait, exact):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("rule", ["dtp", "fw-dtp", "fw-dtp-always-on", "drtp", "tpsgd"])
def test_rules_learn_digits(rule):
    ds = dynlearn.data.load("digits")
    learner, mode, batch_size = dynlearn.registry.load("rules", rule)(
        [64, 64, 10], jax.random.key(0)
    )
    # the projection rules' output layer learns alone from random hidden codes: more steps
    epochs = 8 if rule in ("drtp", "tpsgd") else 3
    result = dynlearn.fit(learner, ds, mode, epochs=epochs, batch_size=batch_size, progress=False)
    assert result.metrics.test_accuracy.values[-1] >= 0.8


def test_gait_prop_learns_digits_like_backprop_on_its_network():
    ds = dynlearn.data.load("digits")
    accuracy = {}
    for credit in ("gait-prop", "backprop"):
        net = GAITPropNetwork([64] * 3, 10, jax.random.key(0), credit=credit)
        mode = dynlearn.SettleThenUpdate(optax.adam(1e-3))
        result = dynlearn.fit(net, ds, mode, epochs=3, batch_size=32, progress=False)
        accuracy[credit] = result.metrics.test_accuracy.values[-1]
    assert (
        accuracy["gait-prop"] >= 0.85 and abs(accuracy["gait-prop"] - accuracy["backprop"]) < 0.03
    )


def test_bad_settings_say_what_is_wrong():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="invertible layers"):
        GAITPropNetwork([784, 100, 10], 10, key)
    with pytest.raises(ValueError, match="gamma"):
        GAITPropNetwork([8] * 3, 4, key, gamma=0.0)
    with pytest.raises(ValueError, match="n_out"):
        GAITPropNetwork([8] * 3, 9, key)
    with pytest.raises(ValueError, match="activation: GAIT-prop needs an invertible"):
        GAITPropNetwork([8] * 3, 4, key, activation="relu")
    with pytest.raises(ValueError, match="beta"):
        DTPNetwork(SIZES, key, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        DTPNetwork(SIZES, key, beta=-1.0)
    with pytest.raises(ValueError, match="feedback: unknown"):
        DTPNetwork(SIZES, key, feedback="random")
    with pytest.raises(ValueError, match=r"feedback_weights: expected .*\(9, 7\), \(7, 5\)"):
        DTPNetwork(SIZES, key, feedback_weights=[jnp.zeros((7, 9)), jnp.zeros((7, 5))])
    with pytest.raises(ValueError, match="signal: unknown"):
        TargetProjection(SIZES, key, signal="l3")
    net = DTPNetwork(SIZES, key, feedback="dtp")
    stream = dynlearn.StimulusStream(jnp.zeros((1, 2, 12)), t_pres=1.0)
    with pytest.raises(ValueError, match="only fixed-weight DTP"):
        net.plasticity(0.0, net.init_state(jnp.zeros((2, 12))), stream)
