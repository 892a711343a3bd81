"""Gradual pruning (Zhu & Gupta's cubic schedule) around either mode, and the minimum number
of weights kept per layer (Gupta et al.) in one-shot and gradual pruning."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn

SIZES = [64, 24, 10]


@pytest.fixture(scope="module")
def digits():
    return dynlearn.data.load("digits", fraction=0.5)


def kept(learner):
    inner = learner.learner
    return [int(jnp.sum(w != 0)) for w in jax.tree.leaves(eqx.filter(inner, inner.prunable()))]


def test_cubic_schedule_starts_at_zero_ends_at_the_target_and_front_loads():
    k = jnp.arange(0, 101)
    s = dynlearn.cubic_sparsity(k, 0.9, 0, 100)
    assert float(s[0]) == 0.0 and float(s[-1]) == pytest.approx(0.9)
    assert bool(jnp.all(jnp.diff(s) >= 0)) and float(s[50]) == pytest.approx(0.9 * 7 / 8)


def test_minimum_per_layer_keeps_a_small_layer_alive():
    learner, _, _ = dynlearn.registry.load("rules", "fa")(SIZES, jax.random.key(0))
    small = eqx.tree_at(lambda n: n.weights[1], learner, learner.weights[1] * 1e-3)
    collapsed = dynlearn.prune(small, 0.9)
    assert kept(collapsed)[1] == 0  # one global threshold empties the small layer
    kept_min = dynlearn.prune(small, 0.9, min_per_layer=30)
    assert kept(kept_min)[1] == 30
    total = sum(w.size for w in jax.tree.leaves(eqx.filter(small, small.prunable())))
    assert sum(kept(kept_min)) == sum(kept(collapsed)) == round(0.1 * total)


def test_gradual_pruning_reaches_the_sparsity_and_keeps_the_minimum(digits):
    learner, mode, batch = dynlearn.registry.load("rules", "fa")(SIZES, jax.random.key(0))
    n_updates = 2 * (len(digits.x_train) // batch)
    gradual = dynlearn.GradualPruning(mode, 0.9, end=n_updates // 2, every=3, min_per_layer=40)
    result = dynlearn.fit(
        dynlearn.prune(learner, 0.0), digits, gradual, epochs=2, batch_size=batch, progress=False
    )
    counts = kept(result.learner)
    total = sum(w.size for w in result.learner.masks)
    assert sum(counts) == pytest.approx(0.1 * total, abs=2)
    assert min(counts) >= 40
    assert int(result.state["updates"]) == n_updates


def test_gradual_pruning_in_the_always_on_mode(digits):
    learner, mode, batch = dynlearn.registry.load("rules", "sh-always-on")(SIZES, jax.random.key(0))
    gradual = dynlearn.GradualPruning(mode, 0.5, end=10, every=2, scope="layer")
    result = dynlearn.fit(
        dynlearn.prune(learner, 0.0), digits, gradual, epochs=1, batch_size=batch, progress=False
    )
    sizes = [m.size for m in result.learner.masks]
    np.testing.assert_allclose(kept(result.learner), [s / 2 for s in sizes], atol=1)


def test_gradual_pruning_errors_name_the_problem():
    learner, mode, _ = dynlearn.registry.load("rules", "fa")(SIZES, jax.random.key(0))
    with pytest.raises(ValueError, match="dynlearn.prune\\(learner, 0.0\\)"):
        dynlearn.GradualPruning(mode, 0.5, end=10).check(learner, 32)
    with pytest.raises(ValueError, match="begin, end"):
        dynlearn.GradualPruning(mode, 0.5, end=0)
    with pytest.raises(ValueError, match="sparsity"):
        dynlearn.GradualPruning(mode, 1.0, end=10)
    with pytest.raises(ValueError, match="minimum|min_per_layer"):
        dynlearn.prune(learner, 0.5, min_per_layer=-1)
