"""Desire backpropagation (`circuits.desire`): desires, the STDP update, bad arguments."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from circuits.desire import DesireSNN, desires, neuron_errors


def test_desires_are_ternary_signs_of_the_error_then_of_the_weighted_desires():
    rates = jnp.array([[0.9, 0.5, 0.2]])
    targets = jnp.array([[1.0, 0.0, 0.0]])  # errors 0.1 (small), -0.5, -0.2 (small)
    w_out = jnp.array([[1.0, 0.0], [0.5, -0.01], [9.0, 9.0]])  # (outputs, hidden)
    hidden, out = desires([jnp.zeros((2, 4)), w_out], rates, targets, 0.3, 0.05)
    np.testing.assert_array_equal(out, [[0.0, -1.0, 0.0]])
    # hidden drive = out @ W_out = [-0.5, 0.01]: the first passes |.| >= 0.05, the second not
    np.testing.assert_array_equal(hidden, [[-1.0, 0.0]])


def test_a_neurons_error_is_the_distance_to_the_rate_its_desire_asks_for():
    desire = jnp.array([1.0, 1.0, -1.0, -1.0, 0.0])
    rates = jnp.array([0.25, 1.0, 0.5, 0.0, 0.7])
    np.testing.assert_allclose(neuron_errors(desire, rates, "rate"), [0.75, 0, -0.5, 0, 0])
    np.testing.assert_array_equal(neuron_errors(desire, rates, "sign"), desire)


@pytest.mark.parametrize("error", ["rate", "sign"])
def test_update_is_the_error_weighted_count_of_causal_spike_pairs(error):
    """dW_ij = -(1/B) sum_b e_i sum_t s_i[t+1] s_j[t] (pre spikes one step before the post
    spike; e_i the neuron's error from its desire), written out with loops; the saved
    spikes add up to the final counts."""
    net = DesireSNN([3, 4, 2], jax.random.key(1), steps=6, error=error)
    net = jax.tree.map(lambda w: 1.5 * jnp.abs(w), net)  # busy neurons: many pairs to count
    x = jax.random.uniform(jax.random.key(2), (2, 3))
    y = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    spikes_in, spikes, final = net.run(x)
    for name in spikes:
        np.testing.assert_array_equal(spikes[name].sum(0), final[name]["count"])
    assert float(spikes["layer1"].sum()) > 0 and float(spikes["layer2"].sum()) > 0
    update, metrics = net.updates(x, y, jax.random.key(0))
    wanted = desires(net.weights, final["layer2"]["count"] / 6, y, 0.3, 0.05)
    wanted = [
        neuron_errors(m, final[name]["count"] / 6, error)
        for m, name in zip(wanted, ["layer1", "layer2"])
    ]
    assert any(float(jnp.abs(m).sum()) > 0 for m in wanted)
    pre = [np.asarray(spikes_in), np.asarray(spikes["layer1"])]
    post = [np.asarray(spikes["layer1"]), np.asarray(spikes["layer2"])]
    for layer, w in enumerate(net.weights):
        expected = np.zeros(w.shape)
        for b, t, i, j in itertools.product(range(2), range(6), *map(range, w.shape)):
            expected[i, j] -= wanted[layer][b, i] * post[layer][t + 1, b, i] * pre[layer][t, b, j]
        np.testing.assert_allclose(update.weights[layer], expected / 2, atol=1e-6)
    rates = final["layer2"]["count"] / 6
    np.testing.assert_allclose(metrics["loss"], 0.5 * np.mean(np.sum((y - rates) ** 2, -1)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sizes": [5]}, "sizes"),
        ({"steps": 0}, "steps"),
        ({"decay": 1.0}, "decay"),
        ({"theta_out": 1.5}, "theta_out"),
        ({"v_th": -1.0}, "v_th"),
        ({"error": "magnitude"}, "error"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, message):
    sizes = kwargs.pop("sizes", [4, 3, 2])
    with pytest.raises(ValueError, match=message):
        DesireSNN(sizes, jax.random.key(0), **kwargs)
