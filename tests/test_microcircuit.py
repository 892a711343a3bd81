"""The dendritic cortical microcircuit (circuits/microcircuit.py) and feedback pathways."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn
from circuits.feedback import FeedbackAlignment, WeightTransport, alignment_angles
from circuits.microcircuit import Conductances, Microcircuit, self_predicting

SIZES = [6, 8, 5, 3]


def circuit(**kwargs) -> Microcircuit:
    return Microcircuit(SIZES, jax.random.key(0), **kwargs)


def _max_abs(tree) -> float:
    return float(jnp.max(jnp.abs(dynlearn.analysis.flatten(tree))))


@pytest.mark.parametrize("prospective", [True, False])
def test_closed_form_self_predicting_state_is_a_fixed_point(x64, prospective):
    # Neurons at their feed-forward values, silent apical dendrites: every rate of change
    # (neurons, W, W^IP, W^PI) vanishes to round-off in float64.
    net = self_predicting(circuit(prospective=prospective))
    x = jax.random.uniform(jax.random.key(1), (4, SIZES[0]), jnp.float64)
    state = net.init_state(x)
    learning = dynlearn.Learning(net)
    rates = learning.vector_field(0.0, learning.init_state(x), x)
    assert _max_abs(rates["neurons"]) < 1e-13
    assert _max_abs(rates["params"]) < 1e-13
    # Away from the closed form the interneuron weights do move.
    off = eqx.tree_at(lambda c: c.inter_weights, net, circuit().inter_weights)
    assert _max_abs(off.plasticity(0.0, state, x).inter_weights) > 1e-4


def test_prospective_rates_do_not_lag_the_input():
    # A step in the input: prospective rates of the first layer equal their steady value
    # at once; ordinary rates lag behind the soma's time constant.
    x0, x1 = jnp.zeros((1, SIZES[0])), jnp.ones((1, SIZES[0]))
    for prospective, lagging in ((True, False), (False, True)):
        net = self_predicting(circuit(prospective=prospective))
        state = net.init_state(x0)
        rates_now = net.sweep(state, x1).rates[0]
        steady = net.sweep(net.init_state(x1), x1).rates[0]
        assert (_max_abs(rates_now - steady) > 1e-3) == lagging


def test_learns_digits_always_on():
    data = dynlearn.data.load("digits")
    net = self_predicting(Microcircuit([64, 64, 10], jax.random.key(0)))
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=2.0, dt=0.1, streams=16))
    before = dynlearn.evaluate(net, data.x_test, data.y_test)
    result = dynlearn.fit(net, data, mode, epochs=2, batch_size=320, progress=False)
    after = float(result.metrics.test_accuracy[-1])
    assert after > 0.7 and after > before + 0.4, (before, after)


def test_rule_holds_lateral_weights_at_minus_feedback_while_the_rest_learns():
    """Rule `microcircuit` holds W^PI at -B (with targets its rule would cancel the error;
    `theory/mc_lateral_drift.py`), also through its RMS-normalised plasticity."""
    from circuits.microcircuit import rule

    data = dynlearn.data.load("digits").validation_split(0.5)  # a short run: 718 samples
    net, mode, batch = rule([64, 20, 20, 10], jax.random.key(0))
    trained = dynlearn.fit(net, data, mode, epochs=1, batch_size=batch, progress=False).learner
    feedback = trained.feedback.matrices(trained.weights)
    for lateral, b, before, after in zip(
        trained.lateral_weights, feedback, net.inter_weights, trained.inter_weights
    ):
        np.testing.assert_array_equal(lateral, -b)
        assert float(jnp.abs(after - before).max()) > 1e-3  # W^IP still learns


def test_somatic_noise_is_keyed():
    net = circuit(noise=0.05, prospective=False)
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1))
    x = jax.random.uniform(jax.random.key(1), (4, SIZES[0]))
    y = jax.nn.one_hot(jnp.arange(4) % 3, 3)
    a, _, _ = mode.step(net, None, x, y, jax.random.key(1))
    b, _, _ = mode.step(net, None, x, y, jax.random.key(1))
    c, _, _ = mode.step(net, None, x, y, jax.random.key(2))

    def gap(p, q):
        return _max_abs(jax.tree.map(jnp.subtract, *(eqx.filter(r, r.trainable()) for r in (p, q))))

    assert gap(a, b) == 0 and gap(a, c) > 0


def test_simulate_checks_a_multi_stream_state_and_makes_a_dataset():
    net = self_predicting(circuit())
    x = jax.random.uniform(jax.random.key(1), (2, 3, SIZES[0]))  # 2 samples, 3 streams
    stream = dynlearn.StimulusStream(x, 1.0)
    trajectory = dynlearn.simulate(
        net,
        net.init_state(x[0]),
        0.0,
        2.0,
        args=stream,
        dt=0.1,
        ts=jnp.linspace(0.1, 2.0, 5),
    )
    ds = dynlearn.to_dataset(trajectory, system=net)
    assert ds["hidden1_v_apical"].shape == (5, 3, SIZES[1])
    learning = dynlearn.Learning(net)
    with pytest.raises(ValueError, match="neurons/hidden1/u"):
        bad = learning.init_state(x[0])
        bad["neurons"]["hidden1"]["u"] = jnp.zeros((3, SIZES[1] + 1))
        dynlearn.simulate(learning, bad, 0.0, 1.0, args=stream, dt=0.1)


def test_feedback_pathways():
    net = circuit(feedback=WeightTransport())
    transport = net.feedback.matrices(net.weights)
    assert all(jnp.array_equal(b, w.T) for b, w in zip(transport, net.weights[1:]))
    assert np.allclose(alignment_angles(transport, net.weights), 0.0, atol=1e-2)
    random = circuit(feedback=FeedbackAlignment(jax.random.key(3))).feedback
    assert [b.shape for b in random.matrices(net.weights)] == [(8, 5), (5, 3)]
    angles = alignment_angles(random.matrices(net.weights), net.weights)
    assert np.all(np.abs(np.asarray(angles) - 90) < 45)
    again = circuit(feedback=FeedbackAlignment(jax.random.key(3))).feedback
    assert all(jnp.array_equal(a, b) for a, b in zip(random.feedback, again.feedback))
    with pytest.raises(ValueError, match="bind"):
        FeedbackAlignment(jax.random.key(0)).matrices(net.weights)
    with pytest.raises(ValueError, match=r"shapes \[\(8, 5\), \(5, 3\)\]"):
        circuit(feedback=FeedbackAlignment(jax.random.key(0), feedback=[jnp.zeros((8, 5))]))


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="finite and >= 0"):
        Conductances(leak=-0.1)
    with pytest.raises(ValueError, match="dendrite must be > 0"):
        Conductances(dendrite=0.0)
    with pytest.raises(ValueError, match=r"dt=0.5 is larger than the fastest time constant"):
        circuit(dt=0.5)
    coarse = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.5))
    with pytest.raises(ValueError, match=r"dt=0.5 is larger than .*tau_dend=0.1"):
        coarse.check(circuit(), 4)
    with pytest.raises(ValueError, match="activation: unknown name 'swish'"):
        circuit(activation="swish")
    with pytest.raises(ValueError, match="never reaches prospective rates"):
        circuit(noise=0.1)
    with pytest.raises(ValueError, match="eta: need one value >= 0 or 3"):
        circuit(eta=[0.1, 0.1])
    with pytest.raises(ValueError, match="learning rates must be >= 0"):
        circuit(eta_inter=-1.0)
    net = circuit()
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"x: expected a batch \(batch, 6\)"):
        mode.step(net, None, jnp.zeros((4, 7)), jnp.zeros((4, 3)), key)
    with pytest.raises(ValueError, match=r"y: expected targets of shape \(4, 3\)"):
        mode.step(net, None, jnp.zeros((4, 6)), jnp.zeros((4, 2)), key)
    with pytest.raises(ValueError, match="does not split into 3 equal streams"):
        dynlearn.Presentation(streams=3).stream(jnp.zeros((4, 6)))
    with pytest.raises(ValueError, match="NaN"):
        net.predict(jnp.full((4, 6), jnp.nan))


def test_presentation_splits_a_batch_into_parallel_streams():
    x = jnp.arange(12.0).reshape(6, 2)
    stream = dynlearn.Presentation(t_pres=1.0, dt=0.5, streams=2).stream(x, x)
    assert stream.samples.shape == (3, 2, 2)
    # Stream 0 shows samples 0, 1, 2; stream 1 shows 3, 4, 5.
    assert jnp.array_equal(stream.input(1.2)[0], x[1])
    assert jnp.array_equal(stream.input(1.2)[1], x[4])
    assert eqx.tree_equal(stream.target(2.5), stream.input(2.5))


def test_checkpoint_keeps_a_random_feedback_pathway(tmp_path):
    net = circuit()
    dynlearn.save_checkpoint(tmp_path, net, {"epoch": 0})
    loaded, _ = dynlearn.load_checkpoint(
        tmp_path, circuit(feedback=FeedbackAlignment(jax.random.key(9)))
    )
    assert eqx.tree_equal(
        jax.random.key_data(loaded.feedback.key), jax.random.key_data(net.feedback.key)
    )
    assert all(
        jnp.array_equal(a, b) for a, b in zip(loaded.feedback.feedback, net.feedback.feedback)
    )
