"""Hierarchical concepts learned by Oja's rule and WTA (`circuits.concepts`): the generator's
structure and its support sets, the synchronous rounds, one Oja step, learning a small
hierarchy to robust recognition, and clear errors for impossible settings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from circuits.concepts import (
    Recognition,
    concept_hierarchy,
    concept_network,
    first_stable,
    oja_presentations,
    recognises,
    train_bottom_up,
)


def test_hierarchy_is_a_seeded_forest_of_k_children():
    h = concept_hierarchy(3, k=3, levels=2, n=20, roots=2)
    assert [h.count(level) for level in range(3)] == [18, 6, 2]
    for level in range(3):
        members = h.members[level]
        assert len(np.unique(members)) == len(members) and members.max() < 20
    for level in (1, 2):  # the children of a level partition the level below
        children = h.children(level)
        assert children.shape == (h.count(level), 3)
        np.testing.assert_array_equal(np.sort(children.ravel()), np.sort(h.members[level - 1]))
    leaves = h.leaves(2)
    assert leaves.shape == (2, 20) and leaves.sum(1).tolist() == [9.0, 9.0]
    assert np.all(leaves.sum(0) <= 1)  # disjoint leaf sets
    # a concept's leaves are its children's leaves
    np.testing.assert_array_equal(leaves[0], h.leaves(1)[:3].sum(0))
    same, other = concept_hierarchy(3, 3, 2, 20, 2), concept_hierarchy(4, 3, 2, 20, 2)
    assert all(np.array_equal(a, b) for a, b in zip(h.members, same.members))
    assert not all(np.array_equal(a, b) for a, b in zip(h.members, other.members))


def test_support_sets_are_smallest_and_largest():
    h, rng = concept_hierarchy(0, k=4, levels=2, n=18), np.random.default_rng(0)
    r1, r2 = 0.75, 0.5  # ceil(r1 k) = 3 children, r2: 2 needed, so at most 1 full child
    on = h.minimal_support(rng, 2, r1)[0]
    assert on.sum() == 9 and h.supported(on, r1)[2][0]
    for leaf in np.flatnonzero(on):  # any leaf less and the concept is not r1-supported
        fewer = on.copy()
        fewer[leaf] = 0
        assert not h.supported(fewer, r1)[2][0]
    off = h.maximal_unsupported(rng, 2, r2)[0]
    assert not h.supported(off, r2)[2][0] and off.sum() == 4 + 3 * 1
    for leaf in np.setdiff1d(h.members[0], np.flatnonzero(off)):  # any leaf more: supported
        more = off.copy()
        more[leaf] = 1
        assert h.supported(more, r2)[2][0]
    assert off[np.setdiff1d(np.arange(18), h.members[0])].sum() == 0  # only the hierarchy's


def test_synchronous_rounds_settle_layer_by_layer():
    h = concept_hierarchy(1, k=2, levels=3, n=10)
    net = concept_network(h, Recognition(), eta=0.1)
    weights = jax.random.uniform(jax.random.key(0), net.weights.shape) * 0.8
    net = net.__class__(weights, net.threshold, net.eta, net.init_weight)
    presented = jnp.asarray(h.leaves(3)[0])
    states = net.rounds(presented, 5)
    settled = net.fire(presented)
    for level in range(4):  # layer `level` is final from round `level` on
        for t in range(max(level, 1), 6):
            np.testing.assert_array_equal(states[t - 1, level], settled[level])


def test_one_presentation_is_an_oja_step_of_the_wta_winner():
    h = concept_hierarchy(2, k=3, levels=1, n=5)
    net = concept_network(h, Recognition(), eta=0.1)
    w = jax.random.uniform(jax.random.key(1), (5, 5)) * 0.2
    net = net.__class__(w[None], net.threshold, net.eta, net.init_weight)
    x = jnp.asarray(h.leaves(1)[0])
    after, winner = net.learn(1, x, jnp.zeros(5))
    v = int(jnp.argmax(w @ x))
    y = w[v] @ x
    assert int(winner) == v
    np.testing.assert_allclose(after.weights[0, v], w[v] + 0.1 * y * (x - y * w[v]), rtol=1e-6)
    np.testing.assert_array_equal(np.delete(after.weights[0], v, 0), np.delete(w, v, 0))
    # equal potentials: the priority decides
    fresh = concept_network(h, Recognition(), eta=0.1)
    _, pick = fresh.learn(1, x, jnp.arange(5.0) == 3)
    assert int(pick) == 3


def test_learns_a_small_hierarchy_to_robust_recognition(x64):
    rec, eta, k = Recognition(r1=0.8, r2=0.4, eps=0.1), 0.05, 3
    h = concept_hierarchy(5, k=k, levels=2, n=11)
    net = concept_network(h, rec, eta)
    child, unused = oja_presentations(k, 2, eta, rec.eps, 1.0, rec)
    rounds = max(child, unused) + 3
    trained, record = train_bottom_up(net, h, rec, jax.random.key(0), rounds, seed=1)
    for level in (1, 2):
        reps = record.reps[level - 1]
        assert len(np.unique(reps)) == len(reps) and record.switches[level - 1].sum() == 0
        ok = (record.child_low[level - 1] >= 1 - rec.eps) & (record.child_high[level - 1] <= 1)
        assert np.all(first_stable(ok) == child)  # the scalar Oja map, exactly
        assert np.all(first_stable(record.irrelevant[level - 1] <= 1 / k) == unused)
    assert all(r.all() for r in recognises(trained, h, record.reps, rec, seed=2))
    # robust recognition on random inputs, against the definition
    rng = np.random.default_rng(3)
    presented = (rng.random((200, 11)) < rng.random((200, 1))).astype(float)
    fired = trained.fire(jnp.asarray(presented))
    strong, weak = h.supported(presented, rec.r1), h.supported(presented, rec.r2)
    for level in (1, 2):
        out = np.asarray(fired[level])[:, record.reps[level - 1]] > 0
        assert np.all(out[strong[level]]) and not np.any(out[~weak[level]])
    assert strong[2].any() and (~weak[2]).any()  # both cases occurred


def test_first_stable_counts_presentations_to_lasting_success():
    condition = np.array([[0, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], bool)
    assert first_stable(condition).tolist() == [4, 3, -1]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: concept_hierarchy(0, k=1, levels=2), "k: expected an integer >= 2"),
        (lambda: concept_hierarchy(0, k=2, levels=0), "levels"),
        (lambda: concept_hierarchy(0, k=2, levels=3, n=7), "n: expected at least"),
        (lambda: concept_hierarchy(-1, k=2, levels=1), "seed"),
        (lambda: Recognition(r1=0.8, r2=0.4, eps=0.4), "Recognition.eps"),
        (lambda: Recognition(r1=1.5), "Recognition.r1"),
        (lambda: Recognition(r2=-0.1), "Recognition.r2"),
        (lambda: concept_network(concept_hierarchy(0, 2, 1), Recognition(), -0.1), "eta"),
        (lambda: concept_network(concept_hierarchy(0, 4, 1), Recognition(), 0.2), "eta"),
        (
            lambda: concept_network(concept_hierarchy(0, 2, 1), Recognition(), 0.1, init_weight=1),
            "init_weight",
        ),
        (
            lambda: concept_network(concept_hierarchy(0, 2, 2), Recognition(), 0.1, layers=1),
            "layers",
        ),
    ],
)
def test_bad_settings_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_training_refuses_bad_rounds_and_a_mismatched_network():
    h = concept_hierarchy(0, 2, 2, n=6)
    net = concept_network(h, Recognition(), 0.1)
    with pytest.raises(ValueError, match="rounds"):
        train_bottom_up(net, h, Recognition(), jax.random.key(0), 0)
    small = concept_network(concept_hierarchy(0, 2, 2), Recognition(), 0.1)
    with pytest.raises(ValueError, match="network: expected at least 2 layers of n=6"):
        train_bottom_up(small, h, Recognition(), jax.random.key(0), 3)
    with pytest.raises(ValueError, match="width"):
        train_bottom_up(net, h, Recognition(), jax.random.key(0), 3, width=1)


def test_training_warns_when_the_wta_premise_fails():
    # one round: the level-1 neurons do not fire yet, so both level-2 concepts see nothing
    # and the WTA hands them the same neuron
    h = concept_hierarchy(0, 2, 2, roots=2)
    net = concept_network(h, Recognition(), 0.1)
    with pytest.warns(UserWarning, match="level 2: the WTA gave two concepts one neuron"):
        train_bottom_up(net, h, Recognition(), jax.random.key(0), 1)
