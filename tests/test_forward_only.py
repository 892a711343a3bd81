"""PEPITA: two forward passes, updates from their difference; F's weight mirroring."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn
from circuits.forward_only import FDFANetwork, PEPITACircuit, PEPITANetwork

SIZES = [6, 5, 4, 3]


@pytest.fixture
def batch():
    key = jax.random.key(1)
    x = jax.random.uniform(key, (8, SIZES[0]))
    y = jax.nn.one_hot(jnp.arange(8) % SIZES[-1], SIZES[-1])
    return x, y


def test_updates_are_the_two_passes_differences(batch):
    x, y = batch
    net = PEPITANetwork(SIZES, jax.random.key(0), projection_scale=1.0)
    grads, metrics = net.updates(x, y, jax.random.key(2))
    first = net.passes(x)
    x_mod = x - (first[-1] - y) @ net.projection.T
    second = net.passes(x_mod)
    np.testing.assert_allclose(grads.weights[0], (first[0] - second[0]).T @ x_mod / 8, atol=1e-6)
    np.testing.assert_allclose(
        grads.weights[1], (first[1] - second[1]).T @ second[0] / 8, atol=1e-6
    )
    np.testing.assert_allclose(grads.weights[2], (second[2] - y).T @ second[1] / 8, atol=1e-6)
    assert float(jnp.max(jnp.abs(grads.projection))) == 0  # F is fixed without mirroring
    assert np.isfinite(float(metrics["loss"]))
    # no error, no modulation: hidden layers do not move and the output error is zero
    exact, _ = net.updates(x, net.predict(x), jax.random.key(2))
    assert max(float(jnp.max(jnp.abs(g))) for g in exact.weights) < 1e-6


def stream_update(batch, eta, tau, dt):
    """(weight change of one presentation of `batch` as parallel streams, PEPITA's
    update times -eta), float64."""
    x, y = batch
    with jax.enable_x64(True):
        x, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        circuit = PEPITACircuit(
            SIZES, jax.random.key(0), projection_scale=1.0, eta=eta, tau=tau, tau_hold=tau
        )
        mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=dt, streams=x.shape[0]))
        learned, _, _ = mode.step(circuit, None, x, y, jax.random.key(0))
        grads, _ = PEPITANetwork(SIZES, jax.random.key(0), projection_scale=1.0).updates(x, y, None)
        return (
            [np.asarray(b - a) for a, b in zip(circuit.weights, learned.weights)],
            [-eta * np.asarray(g) for g in grads.weights],
        )


def test_the_stream_applies_one_pepita_update_per_presentation(batch):
    """The two passes as two moments of one presentation: with slow plasticity the weight
    change is PEPITA's update, short by the neurons' settling: layer l lags the input by
    about l tau, so its deficit is about l tau / (t_pres / 2) (three layers: < 0.06 at
    tau = 0.01), first order in tau."""
    errors = {}
    for tau in (0.02, 0.01):
        change, pepita = stream_update(batch, 1e-4, tau, dt=tau / 10)
        errors[tau] = max(np.linalg.norm(c - p) / np.linalg.norm(p) for c, p in zip(change, pepita))
    assert errors[0.01] < 0.06
    assert 1.6 < errors[0.02] / errors[0.01] < 2.4  # first order in tau


def test_the_streamed_first_layer_rule_amplifies_itself(batch):
    """Applied while the modulated activity responds to it, dW_1 ∝ -(h - h~) x~^T moves h~
    away from h: d(h - h~)/dt = +c |x~|^2 (h - h~). A fast rate overshoots PEPITA's step
    (why the circuit's rate is bounded: module docstring)."""
    change, pepita = stream_update(batch, 3.0, 0.01, dt=0.001)
    ratio = np.linalg.norm(change[0]) / np.linalg.norm(pepita[0])
    assert ratio > 1.3, ratio


def test_the_stream_circuit_predicts_as_the_network_and_needs_a_teacher_to_learn(batch):
    x, y = batch
    circuit = PEPITACircuit(SIZES, jax.random.key(0))
    net = PEPITANetwork(SIZES, jax.random.key(0))
    np.testing.assert_allclose(circuit.predict(x), net.predict(x), atol=1e-6)
    state = circuit.init_state(x)
    stream = dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=8).stream(x)  # no targets
    rates = circuit.plasticity(jnp.asarray(0.75), state, stream)
    assert max(float(jnp.max(jnp.abs(w))) for w in rates.weights) == 0
    with pytest.raises(ValueError, match="eta"):
        PEPITACircuit(SIZES, jax.random.key(0), eta=0.0)


def test_weight_mirroring_aligns_f_with_the_input_output_map():
    """Linear network: E[xi o^T] = sigma^2 (W_L ... W_1)^T, so F -> that / decay."""
    net = PEPITANetwork(
        [6, 5, 3], jax.random.key(0), activation="linear", mirror=1.0, mirror_decay=1.0
    )
    fixed = PEPITANetwork(SIZES, jax.random.key(0))
    assert net.trainable().projection is True and fixed.trainable().projection is False
    target = (net.weights[1] @ net.weights[0]).T
    for i in range(400):
        step = net.mirroring(jax.random.key(i), 64)
        net = eqx.tree_at(lambda n: n.projection, net, net.projection - 0.05 * step)
    f = net.projection
    cos = float(jnp.sum(f * target) / (jnp.linalg.norm(f) * jnp.linalg.norm(target)))
    assert cos > 0.95


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": "swish"}, "activation"),
        ({"projection_scale": 0.0}, "projection_scale"),
        ({"mirror": -1.0}, "mirror"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PEPITANetwork(SIZES, jax.random.key(0), **kwargs)


def test_fdfa_feedback_moves_towards_the_directional_derivatives(batch):
    """dB_l = B_l - mean(d u_l^T) with d = sum_k J_k u_k (J_k = d out / d h_k, exact);
    the hidden updates are DFA's through B_l and the output layer's is e h^T."""
    x, y = batch
    net = FDFANetwork(SIZES, jax.random.key(0))
    net = eqx.tree_at(lambda n: n.feedback, net, [jnp.ones_like(b) for b in net.feedback])
    key = jax.random.key(5)
    grads, _ = net.updates(x, y, key)
    d, tangents = net.directional_derivatives(x, key)
    zeros = [jnp.zeros_like(u) for u in tangents]
    jacobians = jax.jacfwd(lambda offs: net.forward(x, offs)[0][-1])(zeros)  # per layer
    exact = sum(jnp.einsum("bobn,bn->bo", j, u) for j, u in zip(jacobians, tangents))
    np.testing.assert_allclose(d, exact, atol=1e-5)
    for g, b, u in zip(grads.feedback, net.feedback, tangents):
        np.testing.assert_allclose(g, b - d.T @ u / x.shape[0], atol=1e-5)
    drives, hs = net.forward(x)
    e = jax.nn.softmax(drives[-1]) - y
    delta = (e @ net.feedback[0]) * (1 - jnp.tanh(drives[0]) ** 2)
    np.testing.assert_allclose(grads.weights[0], delta.T @ x / x.shape[0], atol=1e-5)
    np.testing.assert_allclose(grads.weights[-1], e.T @ hs[-1] / x.shape[0], atol=1e-5)


def test_fdfa_random_feedback_is_fixed_dfa(batch):
    x, y = batch
    dfa = FDFANetwork(SIZES, jax.random.key(0), feedback="random")
    learned = FDFANetwork(SIZES, jax.random.key(0))
    assert all(float(jnp.max(jnp.abs(b))) > 0 for b in dfa.feedback)
    assert all(float(jnp.max(jnp.abs(b))) == 0 for b in learned.feedback)  # B starts at 0
    assert dfa.trainable().feedback == [False, False]
    assert learned.trainable().feedback == [True, True]
    grads, _ = dfa.updates(x, y, jax.random.key(1))
    assert max(float(jnp.max(jnp.abs(g))) for g in grads.feedback) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"feedback": "mirror"}, "feedback"), ({"tangent_std": 0.0}, "tangent_std")],
)
def test_fdfa_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FDFANetwork(SIZES, jax.random.key(0), **kwargs)
    with pytest.raises(ValueError, match="hidden layer"):
        FDFANetwork([4, 3], jax.random.key(0))
