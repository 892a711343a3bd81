"""Feedback pathways (circuits/feedback.py, circuits/pal.py) in layered rate networks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits.feedback import (
    DirectFeedbackAlignment,
    InitialTransport,
    KolenPollack,
    SignSymmetry,
    WeightTransport,
    by_name,
)
from circuits.feedback_mlp import FeedbackMLP
from circuits.latent_equilibrium import LENetwork
from circuits.microcircuit import Microcircuit, self_predicting
from circuits.pal import PAL

SIZES = [5, 7, 6, 3]
X = jax.random.uniform(jax.random.key(1), (8, SIZES[0]))
Y = jax.nn.one_hot(jnp.arange(8) % 3, 3)


def network(feedback, **kwargs) -> FeedbackMLP:
    return FeedbackMLP(SIZES, jax.random.key(0), activation="tanh", feedback=feedback, **kwargs)


def always_on(streams=8, t_pres=1.0, dt=0.1):
    return dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=t_pres, dt=dt, streams=streams))


def test_weight_transport_errors_are_backprops_gradient():
    net = network(WeightTransport())
    updates, _ = net.updates(X, Y, jax.random.key(0))
    loss = lambda n: 0.5 * jnp.mean(jnp.sum((Y - n.predict(X)) ** 2, axis=-1))  # noqa: E731
    grads = eqx.filter_grad(loss)(net)
    assert dynlearn.analysis.relative_error(updates.weights, grads.weights) < 1e-5
    assert dynlearn.analysis.relative_error(updates.biases, grads.biases) < 1e-5


def bp_loss(net):
    return 0.5 * jnp.mean(jnp.sum((Y - net.predict(X)) ** 2, axis=-1))


def moved(net, scale=0.3):
    """`net` with every weight and bias moved by a random step (a trained network)."""
    keys = iter(jax.random.split(jax.random.key(5), 8))
    step = lambda a: a + scale * jax.random.normal(next(keys), a.shape)  # noqa: E731
    return eqx.tree_at(
        lambda m: (m.weights, m.biases),
        net,
        ([step(w) for w in net.weights], [step(b) for b in net.biases]),
    )


@pytest.mark.parametrize("linearised", [False, True])
def test_initial_transport_is_backprop_at_birth_and_then_frozen(linearised):
    """B_l = W_{l+1}(0)^T: at birth the update is BP's gradient; once the weights move, B
    stays at W(0)^T (and `linearised` takes slopes and rates from the network at birth)."""
    net = network(InitialTransport(), linearised=linearised)
    updates, _ = net.updates(X, Y, None)
    assert (
        dynlearn.analysis.relative_error(updates.weights, eqx.filter_grad(bp_loss)(net).weights)
        < 1e-5
    )
    later = moved(net)
    for b, w in zip(later.feedback.matrices(later.weights), net.weights[1:]):
        assert jnp.array_equal(b, w.T)
    assert not bool(jnp.any(later.trainable().feedback.feedback[0]))
    # Its errors: e_l = phi'(a_l) * (e_{l+1} W_{l+1}(0)), the output error the trained net's
    source = net if linearised else later  # where the slopes and rates come from
    drives, rate = [], X
    for w, b in zip(source.weights, source.biases):
        drives.append(rate @ w.T + b)
        rate = jnp.tanh(drives[-1])
    expected = [Y - later.predict(X)]
    for i in (1, 0):
        expected.insert(0, (1 - jnp.tanh(drives[i]) ** 2) * (expected[0] @ net.weights[i + 1]))
    errors, rates = later.pathway_errors(X, Y)
    assert all(jnp.allclose(e, f, atol=1e-6) for e, f in zip(errors, expected))
    assert jnp.allclose(rates[1], jnp.tanh(drives[0]), atol=1e-6)
    current = network(WeightTransport())
    current = eqx.tree_at(lambda m: (m.weights, m.biases), current, (later.weights, later.biases))
    assert not jnp.allclose(errors[0], current.pathway_errors(X, Y)[0][0], atol=1e-3)
    assert later.updates(X, Y, None)[0].weights[0].shape == net.weights[0].shape


def test_initial_transport_needs_a_host_and_the_right_shapes():
    with pytest.raises(ValueError, match="at_birth"):
        InitialTransport().matrices([jnp.zeros((3, 5))])
    bound = InitialTransport().at_birth([jnp.zeros((7, 5)), jnp.zeros((6, 7))])
    with pytest.raises(ValueError, match=r"do not fit W\^T"):
        bound.matrices([jnp.zeros((7, 5)), jnp.zeros((4, 7))])
    assert by_name("initial", jax.random.key(0)) == InitialTransport()
    le = LENetwork(SIZES, jax.random.key(0), feedback=InitialTransport())
    assert jnp.array_equal(le.feedback.matrices(le.weights)[0], le.weights[1].T)


def test_pathway_matrices_and_shapes():
    net = network(SignSymmetry())
    for b, w in zip(net.feedback.matrices(net.weights), net.weights[1:]):
        assert jnp.array_equal(jnp.sign(b), jnp.sign(w.T))
    dfa = network(DirectFeedbackAlignment(jax.random.key(2)))
    assert [b.shape for b in dfa.feedback.matrices(dfa.weights)] == [(7, 3), (6, 3)]
    errors, _ = dfa.pathway_errors(X, Y)
    assert [e.shape for e in errors] == [(8, 7), (8, 6), (8, 3)]
    with pytest.raises(ValueError, match="unknown pathway 'backprop'; known: .*'dfa'"):
        by_name("backprop", jax.random.key(0))


def test_pathways_in_the_microcircuit():
    # Direct: each hidden layer's apical dendrites and interneurons see the output.
    mc = Microcircuit(SIZES, jax.random.key(0), feedback=DirectFeedbackAlignment(jax.random.key(2)))
    assert [w.shape for w in mc.inter_weights] == [(3, 7), (3, 6)]
    assert [w.shape for w in mc.lateral_weights] == [(7, 3), (6, 3)]
    with pytest.raises(ValueError, match="no closed form"):
        self_predicting(mc)
    mode = always_on(streams=1)
    for feedback in (
        DirectFeedbackAlignment(jax.random.key(2)),
        SignSymmetry(),
        KolenPollack(jax.random.key(2)),
        PAL(jax.random.key(2)),
    ):
        mc = Microcircuit(SIZES, jax.random.key(0), feedback=feedback)
        learned, _, metrics = mode.step(mc, None, X, Y, jax.random.key(1))
        assert np.isfinite(float(metrics["loss"]))
        assert not jnp.array_equal(learned.weights[0], mc.weights[0])
        if feedback.plastic:
            assert not jnp.array_equal(learned.feedback.feedback[0], mc.feedback.feedback[0])


def test_kolen_pollack_converges_to_transport_under_sgd():
    # B gets W's transposed update, both decay: B - W^T shrinks by (1 - lr decay) per step.
    net = network(KolenPollack(jax.random.key(3), weight_decay=0.1))
    optimizer = optax.sgd(0.5)
    spec = net.trainable()
    opt_state = optimizer.init(eqx.filter(net, spec))
    gap0 = float(jnp.linalg.norm(net.feedback.feedback[0] - net.weights[1].T))
    for _ in range(40):
        updates, _ = net.updates(X, Y, jax.random.key(0))
        updates, opt_state = optimizer.update(eqx.filter(updates, spec), opt_state)
        net = eqx.apply_updates(net, updates)
    gap = float(jnp.linalg.norm(net.feedback.feedback[0] - net.weights[1].T))
    assert gap == pytest.approx(gap0 * (1 - 0.5 * 0.1) ** 40, rel=1e-3)


def test_fixed_random_feedback_is_not_trained():
    net = FeedbackMLP([4, 7, 3], jax.random.key(0), feedback=by_name("fa", jax.random.key(4)))
    result = dynlearn.fit(
        net,
        dynlearn.data.load("yinyang", n_train=64, n_test=32),
        dynlearn.SettleThenUpdate(optax.adam(1e-2)),
        epochs=1,
        batch_size=16,
        progress=False,
    )
    before, after = net.feedback.feedback, result.learner.feedback.feedback
    assert all(jnp.array_equal(a, b) for a, b in zip(before, after))
    assert not jnp.array_equal(net.weights[0], result.learner.weights[0])


def le_network(feedback, **kwargs) -> LENetwork:
    return LENetwork(SIZES, jax.random.key(0), activation="tanh", feedback=feedback, **kwargs)


def test_pal_is_a_composed_sde_keyed_by_the_mode():
    net = le_network(PAL(jax.random.key(5), sigma=0.1), tau_error=0.1, tau_lo=100.0)
    state = net.init_state(X)
    assert set(state["pathway"]) == {"xi", "rate_lp"}
    assert [f.shape for f in state["forward_lp"]] == [w.shape for w in net.weights]
    # The host writes no noise of its own: the engine composes the pathway's.
    assert net.diffusion(0.0, state, X) is None
    noise = dynlearn.total_diffusion(net, 0.0, state, X)
    assert noise["hidden1"] is None and noise["pathway"]["rate_lp"] is None
    assert len(noise["pathway"]["xi"]) == 2
    mode = always_on()
    a, _, _ = mode.step(net, None, X, Y, jax.random.key(1))
    b, _, _ = mode.step(net, None, X, Y, jax.random.key(1))
    c, _, _ = mode.step(net, None, X, Y, jax.random.key(2))
    assert all(jnp.array_equal(p, q) for p, q in zip(a.feedback.feedback, b.feedback.feedback))
    assert not jnp.array_equal(a.feedback.feedback[0], c.feedback.feedback[0])
    assert not jnp.array_equal(a.feedback.feedback[0], net.feedback.feedback[0])


def test_pal_bad_input():
    with pytest.raises(ValueError, match="sigma .* must be >= 0"):
        PAL(jax.random.key(0), sigma=-0.1)
    with pytest.raises(ValueError, match="tau_hp must be > 0"):
        PAL(jax.random.key(0), tau_hp=0.0)
    net = le_network(PAL(jax.random.key(0), tau_xi=0.2), tau_error=1.0)
    with pytest.raises(ValueError, match="dt=0.5 is larger than .*PAL tau_xi=0.2"):
        always_on(streams=1, dt=0.5).check(net, 8)
    with pytest.raises(ValueError, match="PAL has a state of its own"):
        network(PAL(jax.random.key(0)))
