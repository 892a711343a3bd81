"""Analog devices (`dynlearn.hardware`): programming, pulses, noise, both learning modes,
pruning and seeds on a wrapped learner, and clear errors for bad devices."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from dynlearn import hardware

SIZES = [64, 16, 10]


@pytest.fixture(scope="module")
def digits():
    return dynlearn.data.load("digits", fraction=0.5)


def fa(seed=0):
    return dynlearn.registry.load("rules", "fa")(SIZES, jax.random.key(seed))


def device_weights(learner):
    inner = learner.learner if isinstance(learner, hardware.OnDevice) else learner
    return jax.tree.leaves(eqx.filter(inner, inner.prunable()))


def test_programming_puts_every_weight_on_a_level():
    learner, _, _ = fa()
    device = hardware.RRAM_AG_A_SI
    placed = hardware.on_device(learner, device)
    for w, scale, nl in zip(device_weights(placed), placed.scales, placed.nl_ltp):
        g = (w / scale + 1) / 2
        pulses = hardware.ltp_pulses(g, nl, float(device.levels_ltp))
        np.testing.assert_allclose(pulses, jnp.round(pulses), atol=2e-3)
        assert float(jnp.max(jnp.abs(w))) <= float(scale) + 1e-6


def test_a_whole_number_of_pulses_moves_a_linear_device_by_whole_steps():
    learner, _, _ = fa()
    placed = hardware.on_device(learner, hardware.Device(100, 50))
    w, scale = device_weights(placed)[0], placed.scales[0]
    up = w + 3 * (2 * scale / 100)  # three LTP steps
    down = w - 2 * (2 * scale / 50)  # two LTD steps (coarser)
    tiny = w + 0.4 * (2 * scale / 100)  # under half a pulse: lost with nearest rounding
    for target, expected in ((up, up), (down, down), (tiny, w)):
        moved = placed.write(eqx.tree_at(_first_weight, placed.learner, target), jax.random.key(0))
        clipped = jnp.clip(expected, -scale, scale)
        np.testing.assert_allclose(device_weights(moved)[0], clipped, atol=2e-5)


def _first_weight(learner):
    return jax.tree.leaves(eqx.filter(learner, learner.prunable()))[0]


def test_nonlinear_device_moves_less_near_the_end_it_moves_to():
    device = hardware.Device(100, 100, 3.0, 3.0)
    g = jnp.array([0.1, 0.5, 0.9])
    step = hardware.ltp(hardware.ltp_pulses(g, 3.0, 100.0) + 1.0, 3.0, 100.0) - g
    assert bool(jnp.all(jnp.diff(step) < 0)), step  # LTP steps shrink towards g = 1
    down = g - hardware.ltd(hardware.ltd_pulses(g, 3.0, 100.0) + 1.0, 3.0, 100.0)
    assert bool(jnp.all(jnp.diff(down) > 0)), down  # LTD steps shrink towards g = 0
    assert device.check() is device


def test_stochastic_rounding_is_unbiased_and_nearest_loses_small_updates():
    learner, _, _ = fa()
    for rounding, expected in (("stochastic", 0.3), ("nearest", 0.0)):
        placed = hardware.on_device(learner, hardware.Device(1000, 1000, rounding=rounding))
        w, scale = device_weights(placed)[0], placed.scales[0]
        target = w + 0.3 * (2 * scale / 1000)
        moved = placed.write(eqx.tree_at(_first_weight, placed.learner, target), jax.random.key(1))
        mean_pulses = float(jnp.mean(device_weights(moved)[0] - w) / (2 * scale / 1000))
        assert abs(mean_pulses - expected) < 0.03, (rounding, mean_pulses)


def test_cycle_to_cycle_noise_only_on_written_devices():
    learner, _, _ = fa()
    placed = hardware.on_device(learner, hardware.Device(c2c=0.01))
    w = device_weights(placed)[0]
    target = w.at[0].add(0.05)  # only the first row is asked to move
    moved = device_weights(
        placed.write(eqx.tree_at(_first_weight, placed.learner, target), jax.random.key(2))
    )[0]
    np.testing.assert_array_equal(moved[1:], w[1:])
    residual = (moved[0] - target[0]) / (2 * placed.scales[0])
    assert 0.005 < float(jnp.std(residual)) < 0.02


def test_read_noise_is_reproducible_per_batch_and_raises_with_a_low_on_off_ratio(digits):
    learner, _, _ = fa()
    x = jnp.asarray(digits.x_test[:50])
    quiet = hardware.on_device(learner, hardware.Device(read_noise=0.05, on_off=100.0))
    loud = hardware.on_device(learner, hardware.Device(read_noise=0.05, on_off=2.0))
    np.testing.assert_array_equal(quiet.predict(x), quiet.predict(x))
    clean = learner.predict(x)
    spread_quiet = float(jnp.std(quiet.predict(x) - clean))
    spread_loud = float(jnp.std(loud.predict(x) - clean))
    assert 0 < spread_quiet < spread_loud


def test_converters_quantise_to_their_bits():
    x = jnp.linspace(-1.0, 1.0, 101)
    assert len(np.unique(np.asarray(hardware.convert(x, 3)))) == 7  # 2 * (2^2 - 1) + 1
    np.testing.assert_array_equal(hardware.convert(x, None), x)


def test_both_modes_train_on_a_device_and_checkpoints_resume(digits, tmp_path):
    learner, mode, batch = fa()
    placed = hardware.on_device(learner, hardware.SOFT_BOUNDS)
    kwargs = dict(batch_size=batch, progress=False, run_dir=tmp_path / "run")
    first = dynlearn.fit(placed, digits, mode, epochs=1, **kwargs)
    resumed = dynlearn.fit(placed, digits, mode, epochs=2, resume=True, **kwargs)
    straight = dynlearn.fit(placed, digits, mode, epochs=2, batch_size=batch, progress=False)
    assert isinstance(resumed.learner, hardware.OnDevice)
    for a, b in zip(device_weights(resumed.learner), device_weights(straight.learner)):
        np.testing.assert_array_equal(a, b)
    before = dynlearn.evaluate(placed, digits.x_test, digits.y_test)
    assert float(straight.metrics.test_accuracy[-1]) > before + 0.05  # it learns
    assert len(first.metrics.epoch) == 1
    plastic, always_on, batch = dynlearn.registry.load("rules", "sh-always-on")(
        SIZES, jax.random.key(0)
    )
    on_chip = hardware.on_device(plastic, hardware.RRAM_AG_A_SI)
    trained = dynlearn.fit(on_chip, digits, always_on, epochs=1, batch_size=batch, progress=False)
    moved = [
        jnp.any(a != b) for a, b in zip(device_weights(trained.learner), device_weights(on_chip))
    ]
    assert any(bool(m) for m in moved)


def test_pruned_weights_stay_zero_on_a_device_in_either_order(digits):
    learner, mode, batch = fa()
    for placed in (
        hardware.on_device(dynlearn.prune(learner, 0.5), hardware.RRAM_AG_A_SI),
        dynlearn.prune(hardware.on_device(learner, hardware.RRAM_AG_A_SI), 0.5),
    ):
        opt = dynlearn.SettleThenUpdate(optax.sgd(0.5))
        trained = dynlearn.fit(placed, digits, opt, epochs=1, batch_size=batch, progress=False)
        zeros = sum(int(jnp.sum(w == 0)) for w in device_weights(trained.learner))
        total = sum(w.size for w in device_weights(trained.learner))
        assert zeros >= total // 2


def test_seeds_stack_devices(digits):
    learners = []
    for seed in (0, 1):
        learner, mode, batch = fa(seed)
        learners.append(hardware.on_device(learner, hardware.SOFT_BOUNDS, seed=seed))
    stacked, accuracy = dynlearn.fit_seeds(
        dynlearn.stack(learners), digits, mode, seeds=[0, 1], epochs=1, batch_size=batch
    )
    single = dynlearn.fit(
        learners[1], digits, mode, epochs=1, batch_size=batch, seed=1, progress=False
    )
    assert accuracy[1, 0] == pytest.approx(float(single.metrics.test_accuracy[0]), abs=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(levels_ltp=1, levels_ltd=1), "levels_ltp"),
        (dict(levels_ltp=10), "give both"),
        (dict(on_off=0.5), "on_off"),
        (dict(c2c=-0.1), "c2c"),
        (dict(rounding="up"), "rounding"),
        (dict(nl_ltp=float("nan")), "nl_ltp"),
    ],
)
def test_bad_devices_are_named(change, message):
    learner, _, _ = fa()
    with pytest.raises(ValueError, match=message):
        hardware.on_device(learner, dataclasses.replace(hardware.IDEAL, **change))


def test_bad_placements_are_named():
    learner, _, _ = fa()
    with pytest.raises(ValueError, match="headroom"):
        hardware.on_device(learner, hardware.IDEAL, headroom=0.0)
    with pytest.raises(ValueError, match="device"):
        hardware.on_device(learner, "rram")
    with pytest.raises(ValueError, match="already on a device"):
        hardware.on_device(hardware.on_device(learner, hardware.IDEAL), hardware.IDEAL)
