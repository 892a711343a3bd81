"""Backprop with spiking error neurons (`circuits.spiking_bp`): error pairs, the two update
forms, agreement with the rate network's gradient, learning, bad arguments."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn
from circuits.feedback import DirectFeedbackAlignment, FeedbackAlignment, KolenPollack
from circuits.spiking_bp import ErrorPair, ErrorSpikes, PhaseDifference, SpikingBP, rule


@pytest.fixture(scope="module")
def digits():
    return dynlearn.data.load("digits")


def batch(data, n=32, start=0):
    x = jnp.asarray(data.x_train[start : start + n])
    return x, jax.nn.one_hot(data.y_train[start : start + n], data.n_classes)


def test_an_error_pair_fires_plus_or_minus_and_keeps_the_remainder():
    pair = ErrorPair(v_th=0.5)
    state = {**pair.init((3,)), "v": jnp.array([0.7, -1.2, 0.2])}
    fired = pair.condition(state) >= 0  # (2, 3): positive row, negative row
    np.testing.assert_array_equal(fired, [[True, False, False], [False, True, False]])
    after = pair.fire(state, fired)
    np.testing.assert_allclose(after["v"], [0.2, -0.7, 0.2])  # one threshold per spike
    np.testing.assert_array_equal(after["trace"], [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(after["plus"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(after["minus"], [0.0, 1.0, 0.0])


def test_shapes_and_the_output_errors_count_the_target_output_mismatch(digits):
    """Without injection the output pair spikes once per step of mismatch: E_L = T y -
    (phase-II output count), to within the one step by which the error lags the output."""
    steps = 12
    net = SpikingBP([64, 16, 10], jax.random.key(0), steps=steps)
    x, y = batch(digits, 8)
    counts = net.run(x, y)
    assert counts["input"].shape == (8, 64)
    for key in ("first", "second", "errors"):
        assert [c.shape for c in counts[key]] == [(8, 16), (8, 10)]
    assert all(float(c.max()) <= steps and float(c.min()) >= 0 for c in counts["first"])
    gap = counts["errors"][-1] - (steps * y - counts["second"][-1])
    assert float(jnp.max(jnp.abs(gap))) <= 1.0
    # hidden error neurons of units silent in phase I never fire (the derivative gate)
    silent = counts["first"][0] == 0
    assert bool(jnp.all(jnp.where(silent, counts["errors"][0], 0.0) == 0.0))
    assert net.predict(x).shape == (8, 10)


@pytest.mark.parametrize("update", [ErrorSpikes(), PhaseDifference(scale=0.5)])
def test_the_update_pairs_post_synaptic_counts_with_pre_synaptic_ones(update, digits):
    """dW_l = -post_l^T h_{l-1}^I / (B T^2), post = error count or phase-II minus phase-I
    count; the PhaseDifference injection changes the forward counts, ErrorSpikes' does not
    (the forward network then runs on unchanged)."""
    steps = 10
    net = SpikingBP([64, 16, 10], jax.random.key(1), steps=steps, update=update)
    x, y = batch(digits, 8, start=40)
    counts = net.run(x, y)
    updated, metrics = net.updates(x, y, jax.random.key(0))
    pre = [counts["input"], counts["first"][0]]
    for layer in range(2):
        if isinstance(update, ErrorSpikes):
            post = counts["errors"][layer]
        else:
            post = counts["second"][layer] - counts["first"][layer]
        expected = -post.T @ pre[layer] / (8 * steps**2)
        np.testing.assert_allclose(updated.weights[layer], expected, rtol=1e-6, atol=1e-7)
    rates = counts["first"][-1] / steps
    np.testing.assert_allclose(metrics["loss"], 0.5 * np.mean(np.sum((y - rates) ** 2, -1)))
    label_gain = jnp.sum(y * (counts["second"][-1] - counts["first"][-1]))
    if isinstance(update, PhaseDifference):
        assert float(label_gain) > 0  # positive error spikes drive the label neurons
    else:
        assert abs(float(label_gain)) <= 8  # unchanged up to one spike per sample


def rate_gradient(net, counts, y, feedback=None):
    """grad W_l of 1/2 |y - r_L|^2 through the rates, derivative 1[r > 0], errors sent down
    through `feedback` (default: the network's pathway), as in the theory script."""
    rates = [counts["input"] / net.steps, *(h / net.steps for h in counts["first"])]
    feedback = net.feedback.matrices(net.weights) if feedback is None else feedback
    delta, grads = -(y - rates[-1]), [None, None]
    for layer in (1, 0):
        grads[layer] = delta.T @ rates[layer] / y.shape[0]
        if layer:
            delta = (delta @ feedback[0].T) * (rates[1] > 0)
    return grads


def cosines(a, b):
    return np.array([float(dynlearn.analysis.cosine_similarity(u, v)) for u, v in zip(a, b)])


def test_error_spikes_tend_to_backprops_gradient_as_the_phases_lengthen(digits):
    """Cosine to the rate network's gradient: >= 0.95 at T = 10 and >= 0.99 at T = 40, and
    better at T = 40 (measured 0.99 / 0.9995 hidden; spike-count quantisation, 1/T)."""
    x, y = batch(digits, 32, start=64)
    cos = []
    for steps in (10, 40):
        net = SpikingBP([64, 32, 10], jax.random.key(2), steps=steps)
        update, _ = eqx.filter_jit(net.updates)(x, y, jax.random.key(0))
        cos.append(cosines(update.weights, rate_gradient(net, net.run(x, y), y)))
    cos = np.array(cos)
    assert np.all(cos[0] >= 0.95) and np.all(cos[1] >= 0.99), cos
    assert cos[1, 0] > cos[0, 0], cos  # the hidden layer's, the one that needs the error pairs


def test_with_feedback_alignment_the_hidden_errors_follow_b_not_w(digits):
    """With a fixed random B the hidden update follows B's pseudo-gradient (cosine >= 0.99
    at T = 40), not backprop's (W^T: measured cosine -0.10 at birth)."""
    x, y = batch(digits, 32, start=64)
    net = SpikingBP(
        [64, 32, 10], jax.random.key(2), steps=40, feedback=FeedbackAlignment(jax.random.key(3))
    )
    update, _ = eqx.filter_jit(net.updates)(x, y, jax.random.key(0))
    counts = net.run(x, y)
    along_b = cosines(update.weights, rate_gradient(net, counts, y))
    along_w = cosines(update.weights, rate_gradient(net, counts, y, [net.weights[1].T]))
    assert np.all(along_b >= 0.99), along_b
    assert along_w[0] < 0.5 and along_w[1] >= 0.99, along_w  # the output layer needs no B


def test_the_registered_rule_learns_digits(digits):
    net, mode, batch_size = rule([64, 100, 10], jax.random.key(0))
    before = dynlearn.evaluate(net, digits.x_test, digits.y_test)
    result = dynlearn.fit(net, digits, mode, epochs=1, batch_size=batch_size, progress=False)
    after = float(result.metrics.test_accuracy[-1])
    assert before < 0.3 and after > 0.75, (before, after)


def test_direct_feedback_alignment_reaches_every_hidden_layer(digits):
    """DFA: the first hidden layer's error pairs hear the output's errors directly (through
    B_1 of shape (12, 10)), with two hidden layers in between."""
    net = SpikingBP([64, 12, 12, 10], jax.random.key(0), steps=8,
                    feedback=DirectFeedbackAlignment(jax.random.key(1)))  # fmt: skip
    assert [b.shape for b in net.feedback.matrices(net.weights)] == [(12, 10), (12, 10)]
    x, y = batch(digits, 8)
    counts = eqx.filter_jit(net.run)(x, y)
    assert net.warmup == 3 and [e.shape for e in counts["errors"]] == [(8, 12), (8, 12), (8, 10)]
    assert float(jnp.sum(jnp.abs(counts["errors"][0]))) > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sizes": [5]}, "sizes"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"warmup": -1}, "warmup"),
        ({"v_th": -1.0}, "v_th"),
        ({"error_th": 0.0}, "error_th"),
        ({"update": "phase"}, "update"),
        ({"feedback": "fa"}, "feedback"),
        ({"feedback": KolenPollack(jax.random.key(0))}, "feedback"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, message):
    sizes = kwargs.pop("sizes", [4, 3, 2])
    with pytest.raises(ValueError, match=message):
        SpikingBP(sizes, jax.random.key(0), **kwargs)


def test_bad_options_and_batches_are_refused_by_name():
    with pytest.raises(ValueError, match="PhaseDifference.scale"):
        PhaseDifference(scale=-1.0)
    with pytest.raises(ValueError, match="ErrorPair.v_th"):
        ErrorPair(v_th=-0.5)
    net = SpikingBP([4, 3, 2], jax.random.key(0), steps=4)
    with pytest.raises(ValueError, match="x: expected a batch"):
        net.predict(jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match="y: expected targets"):
        net.updates(jnp.zeros((2, 4)), jnp.zeros((2, 3)), jax.random.key(0))
