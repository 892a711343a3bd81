"""Generalised PC: KL energies over a graph of nodes, and the toy transformer."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from circuits.pc import PCDrive
from circuits.pc.generalised import (
    Bernoulli,
    Categorical,
    Dense,
    Gaussian,
    GPCNetwork,
    Node,
    toy_transformer,
)
from experiments.pc_transformer import associative_recall

N_PAIRS, N_SYMBOLS = 3, 5
N_TOKENS, N_FEATURES = N_PAIRS + 1, 2 * N_SYMBOLS + 1


@pytest.fixture(scope="module")
def recall():
    x, labels = associative_recall(16, n_pairs=N_PAIRS, n_symbols=N_SYMBOLS, seed=0)
    return jnp.asarray(x), jax.nn.one_hot(labels, N_SYMBOLS)


def test_associative_recall_asks_for_a_stored_pair():
    x, labels = associative_recall(50, n_pairs=N_PAIRS, n_symbols=N_SYMBOLS, seed=1)
    tokens = x.reshape(50, N_TOKENS, N_FEATURES)
    for seq, label in zip(tokens, labels):
        query = np.argmax(seq[-1, :N_SYMBOLS])
        slot = np.flatnonzero(seq[:-1, query])
        assert len(slot) == 1 and np.argmax(seq[slot[0], N_SYMBOLS:-1]) == label
        assert seq[-1, -1] == 1 and seq[:-1, -1].sum() == 0


@pytest.mark.parametrize("gaussian", [False, True])
def test_the_feed_forward_state_has_zero_energy(recall, gaussian):
    x, _ = recall
    net = toy_transformer(N_TOKENS, N_FEATURES, N_SYMBOLS, jax.random.key(0), gaussian=gaussian)
    for xi in x[:3]:
        state = net.init_state(xi)
        predicted = net.feedforward(xi)[1][net.output]
        assert abs(float(net.energy(state, PCDrive(xi, predicted)))) < 1e-5
        if not gaussian:  # attention over the positions: a distribution
            weights = net.nodes["attention"].family.mean(state["attention"])
            np.testing.assert_allclose(float(jnp.sum(weights)), 1.0, rtol=1e-6)


def test_clamped_categorical_output_energy_is_the_cross_entropy(recall):
    x, y = recall
    net = toy_transformer(N_TOKENS, N_FEATURES, N_SYMBOLS, jax.random.key(0))
    xi, yi = x[0], y[0]
    energies = net.node_energies(net.init_state(xi), PCDrive(xi, yi))
    logits = net.feedforward(xi)[0]["output"]
    np.testing.assert_allclose(
        energies["output"], optax.softmax_cross_entropy(logits, yi), rtol=1e-5
    )
    assert all(abs(float(energies[n])) < 1e-6 for n in ("attention", "attended", "mlp"))


def test_pc_lowers_the_energy_and_its_update_is_local(recall):
    """Inference lowers F; each node's update depends only on its own KL term."""
    x, y = recall
    net = toy_transformer(N_TOKENS, N_FEATURES, N_SYMBOLS, jax.random.key(0))
    states, drive = net.settle(x, y)
    start = jax.vmap(net.init_state)(x)
    assert float(jnp.sum(jax.vmap(net.energy)(states, drive))) < float(
        jnp.sum(jax.vmap(net.energy)(start, drive))
    )
    grads, metrics = net.updates(x, y, jax.random.key(0))
    own = eqx.filter_grad(
        lambda n: jnp.mean(jax.vmap(lambda s, d: n.node_energies(s, d)["mlp"])(states, drive))
    )(net)
    np.testing.assert_allclose(
        grads.nodes["mlp"].predict.weight, own.nodes["mlp"].predict.weight, atol=1e-6
    )
    assert np.isfinite(float(metrics["loss"]))
    bp = toy_transformer(N_TOKENS, N_FEATURES, N_SYMBOLS, jax.random.key(0), learning="backprop")
    bp_grads, _ = bp.updates(x, y, jax.random.key(0))
    shapes = [leaf.shape for leaf in jax.tree.leaves(grads)]
    assert [leaf.shape for leaf in jax.tree.leaves(bp_grads)] == shapes


def test_bernoulli_nodes_settle(recall):
    x, _ = recall
    key = jax.random.key(2)
    nodes = {
        "code": Node(Dense(N_TOKENS * N_FEATURES, 6, key), ("input",), Bernoulli()),
        "output": Node(Dense(6, N_SYMBOLS, key), ("code",), Gaussian(2.0)),
    }
    net = GPCNetwork(nodes, (N_TOKENS * N_FEATURES,))
    y = jnp.ones((x.shape[0], N_SYMBOLS))
    states, drive = net.settle(x, y)
    assert np.all(np.isfinite(np.asarray(states["code"])))
    assert float(jnp.sum(jax.vmap(net.energy)(states, drive))) < float(
        jnp.sum(jax.vmap(net.energy)(jax.vmap(net.init_state)(x), drive))
    )


def test_bad_graphs_and_options_are_named():
    key = jax.random.key(0)
    later = {
        "a": Node(Dense(3, 2, key), ("b",), Gaussian()),
        "b": Node(Dense(3, 2, key), ("input",), Gaussian()),
    }
    with pytest.raises(ValueError, match=r"nodes\['a'\].*topological"):
        GPCNetwork(later, (3,))
    with pytest.raises(ValueError, match="learning"):
        GPCNetwork({"b": later["b"]}, (3,), learning="hebbian")
    with pytest.raises(ValueError, match="variance"):
        Gaussian(0.0)
    with pytest.raises(ValueError, match="Node"):
        GPCNetwork({"b": Dense(3, 2, key)}, (3,))
    with pytest.raises(ValueError, match="nodes"):
        GPCNetwork({}, (3,))
    assert isinstance(Categorical().kl(jnp.ones(3) / 3, jnp.zeros(3)), jax.Array)
