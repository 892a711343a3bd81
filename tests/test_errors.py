"""Errors found while running: NaN inside jit, divergence, a solver out of steps (bad
inputs refused before any work are in test_bad_inputs.py)."""

import jax
import jax.numpy as jnp
import pytest

import dynlearn
from circuits import HopfieldNetwork, LeakyNetwork


@pytest.fixture
def net():
    return LeakyNetwork.random([4, 3, 2], jax.random.key(0))


def test_non_finite_inside_jit_still_raises(net):
    y0 = net.init_state()
    run = jax.jit(lambda y: dynlearn.simulate(net, y, 0.0, 1.0, args=jnp.ones(4), dt=0.1).y1)
    y0["output"]["u"] = jnp.array([jnp.nan, 0.0])
    with pytest.raises(Exception, match="y0 contains NaN or inf in 'output/u'"):
        jax.block_until_ready(run(y0))


def test_diverging_system():
    # Exponentially growing modes (weights with eigenvalues far above 1), so the state
    # overflows to inf and then NaN.
    net = HopfieldNetwork(50.0 * jnp.ones((4, 4)), activation=lambda u: u)
    y0 = {"neurons": {"u": jnp.ones(4)}}
    with pytest.raises(ValueError, match="diverged"):
        dynlearn.simulate(net, y0, 0.0, 100.0, dt=0.01)
    for fixed_step in (None, 0.01):  # adaptive or Euler: the blow-up is named as such
        with pytest.raises(ValueError, match="equilibrate: the state became NaN or inf"):
            dynlearn.equilibrate(net, y0, max_time=100.0, dt=fixed_step)


def test_out_of_steps(net):
    with pytest.raises(ValueError, match="ran out of steps"):
        dynlearn.simulate(
            net, net.init_state(), 0.0, 100.0, args=jnp.ones(4), rtol=1e-8, atol=1e-8, max_steps=5
        )
