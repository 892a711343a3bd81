"""Positive predictive coding: non-negative rates, two error populations, one-way feedback."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from circuits.pc import Generative, Nudged, PCDrive
from circuits.pc.positive import PositivePCNetwork

SIZES = [5, 7, 6, 3]


@pytest.fixture
def batch():
    key = jax.random.key(3)
    x = jax.random.uniform(key, (4, SIZES[0]))
    y = jax.nn.one_hot(jnp.array([0, 2, 1, 0]), SIZES[-1])
    return x, y


def test_mirrored_dynamics_are_the_projected_descent_of_the_energy(batch):
    """With B_l = W_l^T the flow is max(x - dF/dx, 0) - x, and the error populations are
    non-negative with e+ - e- = (x - mu)/s."""
    x, y = batch
    net = PositivePCNetwork(SIZES, jax.random.key(0), task=Nudged(0.5), variances=[1, 2, 4])
    state = jax.tree.map(
        lambda a: jax.random.uniform(jax.random.key(1), a.shape, maxval=2.0), net.init_state(x)
    )
    drive = PCDrive(x, y)
    flow = net.vector_field(0.0, state, drive)
    grad = jax.grad(net.energy)(state, drive)
    expected = jax.tree.map(lambda s, g: jnp.maximum(s - g, 0.0) - s, state, grad)
    for a, b in zip(jax.tree.leaves(flow), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for errors in net.error_populations(state, drive).values():
        plus, minus = errors["plus"], errors["minus"]
        assert float(jnp.min(plus)) >= 0 and float(jnp.min(minus)) >= 0
        assert float(jnp.max(plus * minus)) == 0  # never both active


def test_inference_keeps_every_rate_non_negative_and_starts_at_zero_error(batch):
    x, y = batch
    net = PositivePCNetwork(SIZES, jax.random.key(0))
    drive = PCDrive(x, y)
    start = net.init_state(x)  # the feed-forward pass: rates >= 0, every error zero
    assert min(float(jnp.min(v)) for v in jax.tree.leaves(start)) >= 0
    at_prediction = net.error_populations(start, PCDrive(x, net.predict(x)))
    assert max(float(jnp.max(v)) for v in jax.tree.leaves(at_prediction)) < 1e-6
    states, _ = net.settle(x, y)
    assert min(float(jnp.min(v)) for v in jax.tree.leaves(states)) >= 0
    assert float(net.energy(states, drive)) < float(net.energy(start, drive))


def test_updates_are_local_products_and_feedback_mirrors_them(batch):
    """dW_l = -(f'(a_l) eps_l) x_{l-1}^T (batch mean) and dB_l = dW_l^T; mirrored feedback
    stays W^T after a step; Kolen-Pollack decay adds decay * W, decay * B."""
    x, y = batch
    net = PositivePCNetwork(SIZES, jax.random.key(0))
    grads, metrics = net.updates(x, y, jax.random.key(1))
    states, drive = net.settle(x, y)
    auto = eqx.filter_grad(lambda n: n.energy(states, drive))(net)
    for g, a in zip(grads.weights, auto.weights):
        np.testing.assert_allclose(g, a / x.shape[0], atol=1e-6)
    for gb, gw in zip(grads.feedback, grads.weights[1:]):
        np.testing.assert_allclose(gb, gw.T)
    assert np.isfinite(float(metrics["loss"]))
    random = PositivePCNetwork(SIZES, jax.random.key(0), feedback="random", decay=0.1)
    assert not np.allclose(random.feedback[0], random.weights[1].T)
    grads_kp, _ = random.updates(x, y, jax.random.key(1))
    plain = PositivePCNetwork(SIZES, jax.random.key(0), feedback="random")
    grads_plain, _ = plain.updates(x, y, jax.random.key(1))
    np.testing.assert_allclose(
        grads_kp.feedback[0], grads_plain.feedback[0] + 0.1 * random.feedback[0], atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": "tanh"}, "non-negative"),
        ({"output_activation": "linear"}, "output_activation"),
        ({"feedback": "transposed"}, "feedback"),
        ({"task": Generative()}, "task"),
        ({"decay": -1.0}, "decay"),
        ({"variances": [1.0]}, "variances"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PositivePCNetwork(SIZES, jax.random.key(0), **kwargs)
