"""ST-RSBP (`circuits.st_rsbp`): the spike-train level quantities of the simulation, the
gradient identity, learning on digits, bad arguments."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits.st_rsbp import STRSBP, fixed_point_counts, rule, spike_train_gradient
from dynlearn import registry


@pytest.fixture(scope="module")
def digits():
    return dynlearn.data.load("digits")


@pytest.fixture(scope="module")
def simulated(digits):
    net = STRSBP([64, 16, 10], jax.random.key(0), steps=20)
    x = jnp.asarray(digits.x_train[:8])
    y = jax.nn.one_hot(digits.y_train[:8], 10)
    level, end = eqx.filter_jit(lambda n, x: n.simulate(x))(net, x)
    return net, x, y, level, end


def test_shapes_and_the_s_psp_sums_the_membrane_at_the_firing_times(simulated):
    """u_i = sum_j w_ij p_ij, so without the residual the total S-PSP is the membrane
    potential summed over the firing times: at least nu per spike (Euler overshoot), and
    the residual term is the end potential."""
    net, x, y, level, end = simulated
    assert level.o_in.shape == (8, 64) and level.o_hidden.shape == (8, 16)
    assert level.o_out.shape == (8, 10)
    assert level.e_forward.shape == (8, 16, 64) and level.e_recurrent.shape == (8, 16, 16)
    assert level.e_readout.shape == (8, 10, 16)
    assert float(level.o_hidden.sum()) > 0 and float(level.o_hidden.max()) <= net.steps
    n_in = net.sizes[0]
    recurrent = net.recurrent * (1 - jnp.eye(16))
    potential = jnp.einsum("hj,bhj->bh", net.forward, end["psp_hidden"][..., :n_in])
    potential += jnp.einsum("hq,bhq->bh", recurrent, end["psp_hidden"][..., n_in:])
    np.testing.assert_allclose(potential, end["hidden"]["v"], atol=1e-4)
    spiked = level.a_hidden - potential  # the S-PSP part: sum of u at the firing times
    assert bool(jnp.all(spiked >= net.v_th * level.o_hidden - 1e-4))
    assert bool(jnp.all(jnp.where(level.o_hidden == 0, jnp.abs(spiked), 0.0) < 1e-5))
    assert net.predict(x).shape == (8, 10)


def test_the_update_is_the_exact_gradient_of_the_spike_train_level_model(simulated):
    """At a fixed point of o_h = g(M_F o_in + M_R o_h) ST-RSBP's formulas equal jax.grad
    through the fixed-point iteration (the recurrent term included)."""
    net, x, y, level, _ = simulated
    target = net.target_counts(y)
    weights = (net.forward, net.recurrent * 3.0, net.readout)  # stronger recurrence
    o_h, o_out = fixed_point_counts(*weights, level, net.v_th, iterations=400)
    # the model's own fixed point: its S-PSPs are the per-spike ones times its counts
    scale = jnp.where(level.o_hidden > 0, o_h / jnp.where(level.o_hidden > 0, level.o_hidden, 1), 0)
    model = eqx.tree_at(
        lambda lv: (lv.o_hidden, lv.o_out, lv.e_recurrent, lv.e_readout, lv.a_hidden, lv.a_out),
        level,
        (
            o_h,
            o_out,
            level.e_recurrent * scale[:, None, :],
            level.e_readout * scale[:, None, :],
            net.v_th * o_h + 1.0,  # only the sign of a enters g'; active where o > 0
            net.v_th * o_out + 1.0,
        ),
    )
    # g'(a) = 1/nu where the model's a > 0: mark the silent ones inactive
    model = eqx.tree_at(
        lambda lv: (lv.a_hidden, lv.a_out),
        model,
        (jnp.where(o_h > 0, 1.0, -1.0), jnp.where(o_out > 0, 1.0, -1.0)),
    )
    formula = spike_train_gradient(*weights, model, target, net.v_th)

    def loss(weights):
        _, out = fixed_point_counts(*weights, level, net.v_th, iterations=400)
        return 0.5 * jnp.mean(jnp.sum((out - target) ** 2, axis=-1))

    autodiff = jax.grad(loss)(weights)
    assert float(jnp.linalg.norm(autodiff[1])) > 0  # the recurrent weights get a gradient
    for f, a in zip(formula, autodiff):
        np.testing.assert_allclose(f, a, rtol=1e-3, atol=1e-3 * float(jnp.abs(a).max()))


def test_the_rule_learns_digits_well_above_chance(digits):
    net, mode, batch_size = rule([64, 32, 10], jax.random.key(0))
    assert isinstance(net, STRSBP) and batch_size == 32
    result = dynlearn.fit(net, digits, mode, epochs=2, batch_size=batch_size, progress=False)
    assert float(result.metrics.test_accuracy.values[-1]) > 0.6  # chance 0.1


def test_the_rule_is_registered():
    assert "st-rsbp" in registry.entries("rules")
    assert "st_rsbp_gradient" in registry.entries("checks")


def test_prunable_is_the_feed_forward_weights():
    net = STRSBP([6, 4, 3], jax.random.key(0))
    leaves = jax.tree.leaves(eqx.filter(net, net.prunable()))
    assert [w.shape for w in leaves] == [(4, 6), (3, 4)]
    assert bool(jnp.all(jnp.diag(net.recurrent) == 0))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sizes": [64, 10]}, "sizes"),
        ({"sizes": [64, 0, 10]}, "sizes"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"tau_m": 0.0}, "tau_m"),
        ({"v_th": -1.0}, "v_th"),
        ({"gain": 0}, "gain"),
        ({"recurrent_gain": -0.1}, "recurrent_gain"),
        ({"targets": (0.5, 0.1)}, "targets"),
        ({"targets": (0.1, 1.5)}, "targets"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    sizes = kwargs.pop("sizes", [64, 8, 10])
    with pytest.raises(ValueError, match=name):
        STRSBP(sizes, jax.random.key(0), **kwargs)


def test_bad_batches_are_named():
    net = STRSBP([6, 4, 3], jax.random.key(0), steps=4)
    with pytest.raises(ValueError, match="x:"):
        net.predict(jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match="y:"):
        net.updates(jnp.zeros((2, 6)), jnp.zeros((2, 4)), jax.random.key(0))


def test_the_optimizer_applies_a_descent_step(simulated):
    """One Adam step along ST-RSBP's update lowers the spike-train level model's loss."""
    net, x, y, level, _ = simulated
    grads, metrics = net.updates(x, y, jax.random.key(0))
    assert np.isfinite(float(metrics["loss"]))
    target = net.target_counts(y)

    def model_loss(net):
        _, out = fixed_point_counts(net.forward, net.recurrent, net.readout, level, net.v_th)
        return float(0.5 * jnp.mean(jnp.sum((out - target) ** 2, axis=-1)))

    opt = optax.sgd(1e-3)
    params = eqx.filter(net, eqx.is_inexact_array)
    step, _ = opt.update(eqx.filter(grads, eqx.is_inexact_array), opt.init(params))
    assert model_loss(eqx.apply_updates(net, step)) < model_loss(net)
