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
# a hardware study's settings small enough for a test (`dynlearn run hardware`)
STUDY = {
    "dataset": "digits", "quick": False, "hidden": [8], "seeds": [0], "epochs": 1,
    "retrain_epochs": 1, "levels": [8], "c2c": [0.0], "sparsity": 0.5, "min_per_layer": 0,
}  # fmt: skip


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
    # one nonlinearity per matrix unless the devices differ (d2d): an always-on stream
    # reads these at every step
    assert all(nl.shape == () and float(nl) == pytest.approx(2.40) for nl in placed.nl_ltp)
    spread = hardware.on_device(learner, hardware.SOFT_BOUNDS)
    assert [nl.shape for nl in spread.nl_ltd] == [w.shape for w in device_weights(spread)]


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


def test_a_stream_writes_a_device_with_the_probability_of_at_least_one_pulse():
    """Always-on: c2c lands on a device with probability 1 - e^{-lambda}, lambda the pulses
    its net change over the batch needs (0.1 pulse: ~9.5% written; 5 pulses: ~all)."""
    learner, _, _ = fa()
    device = hardware.Device(100, 100, c2c=0.01)  # pulse noise in the SDE: only c2c here
    placed = hardware.on_device(learner, device, stream_noise="step")
    w, scale = device_weights(placed)[0], placed.scales[0]
    step = 2 * scale / 100
    for pulses, expected in ((0.1, 1 - np.exp(-0.1)), (5.0, 1 - np.exp(-5.0)), (0.0, 0.0)):
        target = jnp.clip(w + pulses * step * jnp.sign(-w), -scale, scale)
        moved = placed.after_stream(
            eqx.tree_at(_first_weight, placed.learner, target), jax.random.key(3)
        )
        written = float(jnp.mean(device_weights(moved)[0] != target))
        assert abs(written - expected) < 0.03, (pulses, written, expected)


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


def test_always_on_training_ignores_the_rounding_and_the_study_trains_it_once(digits, tmp_path):
    """Only settle-then-update's writes read `Device.rounding`; an always-on stream trains
    the same weights on the RRAM with nearest and with stochastic rounding, so the hardware
    study reads an always-on rule's stochastic-rounding cell from its RRAM cell (and trains
    a settle-then-update rule on each)."""
    from experiments.hardware import HardwareStudy

    plastic, always_on, batch = dynlearn.registry.load("rules", "sh-always-on")(
        SIZES, jax.random.key(0)
    )
    rram, stochastic = hardware.RRAM_AG_A_SI, hardware.RRAM_AG_A_SI_STOCHASTIC
    start = hardware.on_device(plastic, rram)
    trained = [
        dynlearn.fit(
            hardware.on_device(plastic, d), digits, always_on, epochs=1, batch_size=batch,
            progress=False,
        ).learner
        for d in (rram, stochastic)
    ]  # fmt: skip
    assert any(bool(jnp.any(a != b)) for a, b in zip(*map(device_weights, (start, trained[0]))))
    for a, b in zip(*map(device_weights, trained)):
        np.testing.assert_array_equal(a, b)
    assert hardware.same_always_on_training(rram, stochastic)
    assert not hardware.same_always_on_training(rram, hardware.SOFT_BOUNDS)

    study = HardwareStudy(tmp_path, STUDY)
    cell = study.preset("sh-always-on", "rram-ag-a-si-stochastic")
    assert cell.attrs["same_training_as"].startswith("preset-rram-ag-a-si ")
    assert study.computed == [
        "sh-always-on preset-rram-ag-a-si",
        "sh-always-on preset-rram-ag-a-si-stochastic",
    ]
    np.testing.assert_array_equal(
        cell.accuracy, study.preset("sh-always-on", "rram-ag-a-si").accuracy
    )
    assert "same_training_as" not in study.preset("bp", "rram-ag-a-si-stochastic").attrs


def test_the_cli_trains_the_presets_it_is_given(tmp_path, capsys):
    """`dynlearn run hardware --presets`: only those devices' cells are computed and
    assembled; an unknown preset is refused before anything trains."""
    from experiments.hardware import main

    quick = ["--quick", "--rules", "bp", "--sweep-rules", "--prune-rules"]
    assert main([*quick, "--presets", "none", "none", "--run-dir", str(tmp_path / "a")]) == 0
    ds = dynlearn.load_netcdf(tmp_path / "a" / "hardware.nc")
    assert list(ds.preset.values) == ["none"]
    assert [p.name for p in (tmp_path / "a" / "cells" / "bp").iterdir()] == ["preset-none.nc"]
    with pytest.raises(SystemExit):
        main([*quick, "--presets", "rram", "--run-dir", str(tmp_path / "b")])
    assert "argument --presets: invalid choice: 'rram'" in capsys.readouterr().err


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
    with pytest.raises(ValueError, match="stream_noise"):
        hardware.on_device(learner, hardware.IDEAL, stream_noise="sample")


def test_cost_model_counts_sequential_steps_by_credit():
    sizes = [784, 100, 100, 100, 10]  # four weight layers
    steps = {
        k: hardware.training_cost(sizes, k, settle_steps=5)["update_steps"]
        for k in hardware.CREDITS
    }
    assert steps == {
        "sequential": 7,  # 4 writes and 3 transposed reads of the same arrays
        "sequential-separate": 4,  # 3 reads of B, the writes overlapping
        "direct": 2,
        "forward-only": 5,
        "settling": 11,
        "local": 1,
    }
    bp = hardware.training_cost(sizes, "sequential")
    dfa = hardware.training_cost(sizes, "direct")
    params = hardware.CostParameters()
    assert bp["update_latency"] == pytest.approx(3 * params.t_read + 4 * params.t_write)
    assert bp["latency"] - bp["update_latency"] == pytest.approx(4 * params.t_read)
    assert dfa["macs"] < bp["macs"]
    assert bp["transfers"] == (3 * 100 + 10) + 3 * 100  # forward outputs, then hidden errors
    with pytest.raises(ValueError, match="credit"):
        hardware.training_cost(sizes, "magic")
    with pytest.raises(ValueError, match="sizes"):
        hardware.training_cost([784], "direct")


class ConstantDrive(dynlearn.AbstractPlastic):
    """Synapses asking for one constant rate `rate` (no neurons to speak of)."""

    weights: jax.Array
    rate: float = 0.01

    @property
    def sizes(self):
        return [self.weights.shape[1], self.weights.shape[0]]

    def init_state(self, x=None):
        return {"unused": jnp.zeros((1, 1))}

    def vector_field(self, t, y, args):
        return {"unused": jnp.zeros_like(y["unused"])}

    def plasticity(self, t, y, args):
        return eqx.tree_at(lambda c: c.weights, self, jnp.full_like(self.weights, self.rate))

    def predict(self, x):
        return x @ self.weights.T


def streamed(device, rate=0.01, t1=10.0, key=0, stream_noise="batch"):
    """The weights of a constant-rate stream on `device` (range +-1) at the end of a batch."""
    circuit = ConstantDrive(jnp.zeros((100, 40)), rate)
    placed = hardware.on_device(circuit, device, headroom=1.0, stream_noise=stream_noise)
    placed = eqx.tree_at(lambda d: d.scales, placed, [jnp.asarray(1.0)])  # range +-1
    system = dynlearn.Learning(placed.learner, device=placed)
    end = dynlearn.simulate(
        system, system.init_state(), 0.0, t1, dt=0.1, key=jax.random.key(key), check=False
    ).y1
    learned = system.learned(end)
    done = placed.after_stream(learned, jax.random.key(key + 1), end.get("travel"))
    return done.learner.weights


def test_always_on_drift_follows_the_curves_slope():
    circuit = ConstantDrive(jnp.zeros((4, 3)))
    placed = hardware.on_device(circuit, hardware.Device(nl_ltp=3.0, nl_ltd=1.0))
    scale = float(placed.scales[0])
    g = jnp.array([[0.1, 0.5, 0.9]] * 4)
    w = scale * (2 * g - 1)
    up, down = placed.drift([w], [jnp.ones_like(w)])[0], placed.drift([w], [-jnp.ones_like(w)])[0]
    h = 1e-3  # the slope of the LTP curve at g, over the mean slope 1/N (N = 1 here)
    pulses = hardware.ltp_pulses(g, 3.0, 1.0)
    np.testing.assert_allclose(up, (hardware.ltp(pulses + h, 3.0, 1.0) - g) / h, rtol=2e-3)
    pulses = hardware.ltd_pulses(g, 1.0, 1.0)
    np.testing.assert_allclose(down, (hardware.ltd(pulses + h, 1.0, 1.0) - g) / h, rtol=2e-3)
    at_top = placed.drift([jnp.full_like(w, scale)], [jnp.ones_like(w)])[0]
    np.testing.assert_array_equal(at_top, 0.0)  # nothing moves past the end of the range


def test_zero_mean_pulse_streams_decay_a_symmetric_device_by_its_travel():
    """On a device with equal LTP and LTD nonlinearity nl the drift splits into a scaled
    rate and a decay proportional to |r| (`OnDevice.drift`'s docstring):
    dw/dt = nl (b - 1/2) r - nl |r| w / (2 w_max), b = 1 / (1 - e^-nl); so updates that
    cancel (up, then as much down) pull w to 0 as exp(-nl travel / (2 w_max))."""
    nl = 5.0
    circuit = ConstantDrive(jnp.zeros((4, 3)))
    placed = hardware.on_device(circuit, hardware.Device(nl_ltp=nl, nl_ltd=nl))
    scale = float(placed.scales[0])
    w = scale * jax.random.uniform(jax.random.key(1), (4, 3), minval=-0.95, maxval=0.95)
    r = jax.random.normal(jax.random.key(2), (4, 3))
    b = 1.0 / (1.0 - np.exp(-nl))
    expected = nl * (b - 0.5) * r - nl * jnp.abs(r) * w / (2 * scale)
    np.testing.assert_allclose(placed.drift([w], [r])[0], expected, rtol=1e-5, atol=1e-6)
    # Euler steps of +a, -a, -a, +a (the order alternates so that the scheme's O(dt) bias
    # cancels): net request 0, travel 4 a dt per cycle
    a, dt, cycles = 1.0, 1e-4 * scale, 1000
    start = w

    def cycle(w, _):
        for sign in (1.0, -1.0, -1.0, 1.0):
            w = w + dt * placed.drift([w], [sign * a * jnp.ones_like(w)])[0]
        return w, None

    end, _ = jax.lax.scan(cycle, start, None, length=cycles)
    travel = 4 * cycles * a * dt
    np.testing.assert_allclose(end, start * np.exp(-nl * travel / (2 * scale)), rtol=1e-3)


def test_always_on_weights_carry_the_shot_noise_of_their_pulses():
    """Constant rate r for time T on a linear device of N levels over [-1, 1]: the mean
    change is r T and its variance r T d, d = 2 / N the pulse (the count's shot noise)."""
    rate, t1, levels = 0.01, 10.0, 50
    for where in ("step", "batch"):  # per integration step (the SDE) or summed per batch
        moved = streamed(hardware.Device(levels, levels), rate, t1, stream_noise=where)
        assert float(jnp.mean(moved)) == pytest.approx(rate * t1, rel=0.02), where
        assert float(jnp.var(moved)) == pytest.approx(rate * t1 * 2 / levels, rel=0.1), where
    np.testing.assert_allclose(streamed(hardware.IDEAL, rate, t1), rate * t1, rtol=1e-6)


def test_pruning_a_learner_on_a_device_keeps_the_device_and_the_minimum():
    learner, _, _ = fa()
    small = eqx.tree_at(lambda n: n.weights[1], learner, learner.weights[1] * 1e-3)
    pruned = dynlearn.prune(hardware.on_device(small, hardware.IDEAL), 0.9, min_per_layer=30)
    assert isinstance(pruned, hardware.OnDevice) and isinstance(pruned.learner, dynlearn.Pruned)
    assert int(jnp.sum(device_weights(pruned)[1] != 0)) == 30


def test_ablation_cell_trains_each_device_variant(tmp_path):
    """`dynlearn run hardware --ablation-rules`: one final accuracy per RRAM variant and
    seed, cached as a cell."""
    from experiments.hardware import ABLATION, HardwareStudy

    study = HardwareStudy(tmp_path, STUDY)
    cell = study.ablation("bp")
    assert cell.accuracy.shape == (len(ABLATION), 1)
    assert np.all((cell.accuracy.values >= 0) & (cell.accuracy.values <= 1))
    assert (tmp_path / "cells" / "bp" / "ablation.nc").exists()


class AlternatingDrive(ConstantDrive):
    """Synapses asking for +rate and -rate in turn, for `period` time units each."""

    period: float = 1.0

    def plasticity(self, t, y, args):
        sign = 1.0 - 2.0 * (jnp.floor(t / self.period) % 2)
        return eqx.tree_at(lambda c: c.weights, self, jnp.full_like(self.weights, sign * self.rate))


def test_inertia_keeps_a_symmetric_device_from_decaying_under_updates_that_cancel():
    """Rates of +a and -a in turn: on a device with equal LTP/LTD nonlinearity a weight
    decays as exp(-nl travel / (2 w_max)) (travel a T); with an inertia tau much longer than
    the period the velocity that drives the pulses averages the rates, so the devices
    travel (and decay) far less (`dynlearn.Learning`). The law is the limit of small moves
    per period (w changes within each half period: 1.0% off here, 9% at a = 0.02)."""
    nl, a, t1 = 5.0, 0.002, 200.0
    circuit = AlternatingDrive(jnp.zeros((4, 3)), a)
    placed = hardware.on_device(circuit, hardware.Device(nl_ltp=nl, nl_ltd=nl), headroom=1.0)
    placed = eqx.tree_at(lambda d: d.scales, placed, [jnp.asarray(1.0)])  # range +-1
    start = jnp.full((4, 3), 0.5)
    circuit = eqx.tree_at(lambda c: c.weights, circuit, start)
    ends = {}
    for tau in (None, 10.0):
        inertia = None if tau is None else dynlearn.Inertia(tau)
        system = dynlearn.Learning(circuit, device=placed, inertia=inertia)
        end = dynlearn.simulate(system, system.init_state(), 0.0, t1, dt=0.01, check=False).y1
        ends[tau] = np.asarray(system.learned(end).weights)
    np.testing.assert_allclose(ends[None], 0.5 * np.exp(-nl * a * t1 / 2), rtol=2e-2)
    assert np.all(np.abs(ends[10.0] - 0.5) < 0.1 * np.abs(ends[None] - 0.5))


def test_inertia_cell_trains_an_always_on_rule_and_the_cli_refuses_a_settled_one(tmp_path, capsys):
    """`dynlearn run hardware --inertia-rules`: accuracy per device, seed and epoch, cached
    as a cell; a rule without always-on weights is refused before anything trains."""
    from experiments.hardware import INERTIA_PRESETS, HardwareStudy, main

    # momentum 0.5: at 0.9 this rule diverges on digits (docs/guide/learning.md), and the
    # cell's plumbing, not the rule's stability, is what is checked here
    cell = HardwareStudy(tmp_path / "a", STUDY).inertia("sh-always-on", 0.5)
    assert cell.accuracy.shape == (len(INERTIA_PRESETS), 1, 1) and cell.attrs["momentum"] == 0.5
    assert np.all((cell.accuracy.values >= 0) & (cell.accuracy.values <= 1))
    assert (tmp_path / "a" / "cells" / "sh-always-on" / "inertia-0.5.nc").exists()
    with pytest.raises(SystemExit):
        main(["--quick", "--inertia-rules", "bp", "--run-dir", str(tmp_path / "b")])
    assert "bp is trained by SettleThenUpdate, not always-on" in capsys.readouterr().err
