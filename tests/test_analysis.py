"""Analysis helpers against hand-computed values."""

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
