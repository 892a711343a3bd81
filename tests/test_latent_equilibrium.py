"""Latent Equilibrium networks (circuits/latent_equilibrium.py)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn
from circuits._layers import SquaredError, feedforward
from circuits.backprop import BackpropMLP
from circuits.feedback import FeedbackAlignment
from circuits.latent_equilibrium import LENetwork

SIZES = [4, 16, 8, 3]


def network(**kwargs) -> LENetwork:
    kwargs.setdefault("activation", "tanh")
    return LENetwork(SIZES, jax.random.key(0), **kwargs)


def test_init_state_is_the_error_free_steady_state():
    net = network()
    x = jax.random.uniform(jax.random.key(1), (5, SIZES[0]))
    state = net.init_state(x)
    d_state = net.vector_field(0.0, state, x)
    assert float(jnp.max(jnp.abs(dynlearn.analysis.flatten(d_state)))) < 1e-6
    assert dynlearn.stream_count(net, state) == 5
    voltages = feedforward(net.weights, net.biases, net.phis, x)
    assert jnp.allclose(net.predict(x), voltages[-1])  # linear output


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_one_presentation_moves_the_weights_along_backprops_gradient(layer):
    # 16 samples in 16 parallel streams, one presentation with a small learning rate: the
    # summed update is -eta t_pres beta (1/(1+beta) and nudging aside) times BP's gradient.
    # Measured cosines 0.999+ in float32 (this tolerance leaves room for round-off).
    net = network(eta=0.01)
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.05, streams=16))
    x = jax.random.uniform(jax.random.key(1), (16, SIZES[0]))
    y = jax.nn.one_hot(jnp.arange(16) % 3, 3)
    learned, _, _ = mode.step(net, None, x, y, jax.random.key(0))
    update = learned.weights[layer] - net.weights[layer]
    bp = BackpropMLP(SIZES, jax.random.key(0), activation="tanh", loss=SquaredError())
    bp = eqx.tree_at(lambda m: (m.weights, m.biases), bp, (net.weights, net.biases))
    gradient = eqx.filter_grad(lambda m: m.loss(x, y))(bp).weights[layer]
    assert dynlearn.analysis.cosine_similarity(update, -gradient) > 0.99
    scale = jnp.linalg.norm(update) / (0.01 * 1.0 * 0.1 * jnp.linalg.norm(gradient))
    assert 0.5 < float(scale) < 1.0


def test_prospective_voltages_follow_a_changing_input_at_once():
    """The prospective output u + tau du/dt, read from the *saved* voltages (central
    differences, not the vector field, which holds it by construction), equals an
    independent feed-forward pass of the new input from the second step after a switch on,
    while the voltage u itself is still far from it (it relaxes with tau). Euler's
    geometric decay read by central differences leaves (dt / 2 tau) |u - ff|: the bound is
    dt / tau times that gap."""
    net = network(beta=0.0, eta=0.0)
    dt, x0, x1 = 0.05, jnp.zeros((1, SIZES[0])), jnp.ones((1, SIZES[0]))
    stream = dynlearn.StimulusStream(jnp.stack([x0, x1]), 1.0)
    ts = jnp.arange(21, 31) * dt  # from one step after the switch at t = 1
    saved = dynlearn.simulate(net, net.init_state(x0), 0.0, 1.5, args=stream, dt=dt, ts=ts)
    u = saved.ys["output"]["u"][:, 0]
    ubreve = u[1:-1] + net.tau * (u[2:] - u[:-2]) / (2 * dt)
    ff = feedforward(net.weights, net.biases, net.phis, x1)[-1][0]
    gap = jnp.abs(u[1:-1] - ff)
    assert jnp.all(jnp.abs(ubreve - ff) < dt / net.tau * gap)
    assert jnp.max(gap) > 0.5 * jnp.max(jnp.abs(ff))


def test_feedback_alignment_pathway_and_fit():
    data = dynlearn.data.load("yinyang", n_train=640, n_test=200)
    net = LENetwork([4, 16, 3], jax.random.key(0), feedback=FeedbackAlignment(jax.random.key(2)))
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.05, streams=16))
    result = dynlearn.fit(net, data, mode, epochs=1, batch_size=64, progress=False)
    assert np.isfinite(result.metrics.train_loss.values).all()
    assert result.learner.feedback.feedback[0].shape == (16, 3)


def test_bad_input_gets_clear_errors():
    coarse = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1))
    with pytest.raises(ValueError, match="dt=0.1 is larger than .* tau_error=0.05"):
        coarse.check(network(), 16)
    with pytest.raises(ValueError, match="dt=0.1 is larger than .* tau_error=0.05"):
        dynlearn.simulate(
            network(), network().init_state(), 0.0, 1.0, args=jnp.zeros((1, 4)), dt=0.1
        )
    with pytest.raises(ValueError, match="eta: need one value >= 0 or 3"):
        network(eta=[0.1, 0.2])
    with pytest.raises(ValueError, match="tau > 0"):
        network(tau=0.0)
    with pytest.raises(ValueError, match="output_activation: unknown"):
        network(output_activation="softmax")
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.05))
    with pytest.raises(ValueError, match=r"x: expected a batch \(batch, 4\)"):
        mode.step(network(), None, jnp.zeros((2, 5)), jnp.zeros((2, 3)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"y: expected targets of shape \(2, 3\)"):
        mode.step(network(), None, jnp.zeros((2, 4)), jnp.zeros((2, 2)), jax.random.key(0))


def test_exploration_noise_is_not_sent_down_as_an_error_unless_asked():
    """With PAL's noise xi_2 in the second hidden layer and every error zero, the first
    layer's error target is zero by default (the noise is not a prediction error) and
    phi' B xi_2 with `noise_in_errors=True`."""
    from circuits.pal import PAL

    sizes = [4, 6, 5, 3]
    x = jax.random.uniform(jax.random.key(1), (2, 4))
    targets = {}
    for flag in (False, True):
        net = LENetwork(sizes, jax.random.key(0), activation="tanh", beta=0.0,
                        feedback=PAL(jax.random.key(2)), noise_in_errors=flag)  # fmt: skip
        state = net.init_state(x)
        xi = [jnp.zeros((2, 6)), 0.5 * jnp.ones((2, 5))]
        state["pathway"]["xi"] = xi
        d = net.vector_field(0.0, state, x)
        targets[flag] = d["hidden1"]["e"] * net.tau_error  # = target - e, with e = 0
    np.testing.assert_allclose(targets[False], 0.0, atol=1e-7)
    assert float(jnp.abs(targets[True]).max()) > 1e-2
