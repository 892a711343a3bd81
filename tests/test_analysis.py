"""Analysis helpers against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import analysis


def test_cosine_and_angle_on_pytrees():
    a = {"w": jnp.array([[1.0, 0.0]]), "b": jnp.array([0.0])}
    b = {"w": jnp.array([[0.0, 2.0]]), "b": jnp.array([0.0])}
    np.testing.assert_allclose(analysis.cosine_similarity(a, a), 1.0, rtol=1e-6)
    np.testing.assert_allclose(analysis.angle_deg(a, b), 90.0, rtol=1e-6)
    c = {"w": jnp.array([[1.0, 1.0]]), "b": jnp.array([0.0])}
    np.testing.assert_allclose(analysis.angle_deg(a, c), 45.0, rtol=1e-5)
    np.testing.assert_allclose(analysis.angle_deg(a, {"w": -a["w"], "b": a["b"]}), 180.0, rtol=1e-5)


def test_relative_error():
    np.testing.assert_allclose(
        analysis.relative_error(jnp.array([3.0, 4.0 + 0.5]), jnp.array([3.0, 4.0])), 0.1
    )
    with pytest.raises(ValueError, match="shape"):
        analysis.relative_error(jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="structure"):
        analysis.cosine_similarity({"a": jnp.ones(2)}, [jnp.ones(2)])


def test_settling_time_of_an_exponential():
    tau, rtol = 2.0, 1e-2
    ts = np.linspace(0.0, 30.0, 30001)
    ys = {"u": 1.0 - np.exp(-ts / tau)[:, None]}
    # |y - 1| = exp(-t/tau) <= rtol  <=>  t >= tau ln(1/rtol), measured against y(30).
    expected = tau * np.log(1 / rtol)
    got = analysis.settling_time(ts, ys, rtol=rtol, final={"u": np.ones(1)})
    assert abs(got - expected) <= 2 * (ts[1] - ts[0])
    assert analysis.settling_time(ts, ys, rtol=1e-9, final={"u": np.ones(1)}) == np.inf


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.8, 0.9])
def test_global_pruning_reaches_exact_sparsity_across_layers(sparsity):
    # Layer 0 holds small weights, layer 1 large ones: global pruning takes mostly layer 0.
    small = jax.random.normal(jax.random.key(0), (30, 20)) * 0.1
    large = jax.random.normal(jax.random.key(1), (10, 30))
    pruned, masks = analysis.prune_global([small, large], sparsity)
    n = small.size + large.size
    zeros = sum(int(jnp.sum(m == 0)) for m in masks)
    assert zeros == round(sparsity * n)
    assert all(jnp.array_equal(p, w * m) for p, w, m in zip(pruned, [small, large], masks))
    if sparsity > 0:
        kept = jnp.concatenate([jnp.abs(p[m == 1]) for p, m in zip(pruned, masks)])
        removed = jnp.concatenate([jnp.abs(w[m == 0]) for w, m in zip([small, large], masks)])
        assert float(removed.max()) <= float(kept.min())
        per_layer = [float(jnp.mean(m == 0)) for m in masks]
        assert per_layer[0] > per_layer[1]  # not the same fraction per layer: global


def test_global_pruning_rejects_bad_sparsity():
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        analysis.prune_global([jnp.ones(3)], 1.0)


def test_loglog_slope_reads_the_order_of_a_power_law():
    x = np.logspace(-3, -1, 5)
    assert abs(analysis.loglog_slope(x, 3.0 * x**2) - 2.0) < 1e-12
    assert abs(analysis.loglog_slope(x, np.full(5, 0.2))) < 1e-12
    with pytest.raises(ValueError, match="x > 0"):
        analysis.loglog_slope([0.0, 1.0], [1.0, 2.0])
