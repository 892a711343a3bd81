"""A new always-on rule is its equations only: an Oja layer written in a few lines gets
streaming, weights as state, checkpoints and resume, seeds (`fit_seeds`) and pruning from
the engine, with no code of its own for any of that."""

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn


# --- the whole circuit ---------------------------------------------------------
class Oja(dynlearn.AbstractPlastic):
    """Independent Oja neurons (Oja 1982): tau dy/dt = -y + W x, dW/dt = eta y (x - y W).

    Each row of W converges to the unit-norm leading principal component of the inputs."""

    weights: jax.Array
    tau: float = 0.1
    eta: float = 0.05

    @property
    def sizes(self):
        return [self.weights.shape[1], self.weights.shape[0]]

    def init_state(self, x=None):
        x = jnp.zeros((1, self.sizes[0])) if x is None else x
        return {"out": {"y": x @ self.weights.T}}

    def vector_field(self, t, y, args):
        x, _ = dynlearn.input_and_target(args, t)
        return {"out": {"y": (x @ self.weights.T - y["out"]["y"]) / self.tau}}

    def plasticity(self, t, y, args):
        x, _ = dynlearn.input_and_target(args, t)
        out = y["out"]["y"]  # (streams, n_out): the rate of W is the mean over streams
        hebb = out.T @ x - jnp.sum(out * out, axis=0)[:, None] * self.weights
        return eqx.tree_at(lambda m: m.weights, self, self.eta * hebb / x.shape[0])

    def predict(self, x):
        return x @ self.weights.T


# -----------------------------------------------------------------------------------------

N_IN, N_OUT = 6, 2
MODE = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=4))
PC1 = np.array([3.0, 2.0, 1.0, 0.0, 0.0, 0.0]) / np.sqrt(14.0)


@pytest.fixture(scope="module")
def data():
    """Gaussian inputs with one dominant direction (variance 4 along PC1, 0.25 across)."""
    rng = np.random.default_rng(0)
    x = 0.5 * rng.normal(size=(1200, N_IN)) + 2.0 * rng.normal(size=(1200, 1)) * PC1
    labels = (x @ PC1 > 0).astype(int)  # fit reports an accuracy; Oja ignores targets
    x = x.astype(np.float32)
    return types.SimpleNamespace(
        x_train=x[:1000], y_train=labels[:1000], x_test=x[1000:], y_test=labels[1000:],
        n_classes=N_OUT, name="gaussian",
    )  # fmt: skip


def oja(seed):
    return Oja(0.3 * jax.random.normal(jax.random.key(seed), (N_OUT, N_IN)))


def test_streams_learn_the_leading_principal_component(data):
    """Each row of W turns to PC1 and Oja's rule normalises it. With dt = tau the neurons
    answer a new sample one Euler step late: for a fraction f = dt / t_pres of the time y
    still reflects the previous sample, which shrinks <y x> by (1 - f) but not <y^2>, so
    the fixed point has |w|^2 = 1 - f (0.949 here); eta = 0.05 leaves fluctuations of a
    few 1e-2 around it (measured 0.934 after 2 epochs, 0.946 with eta 0.01 after 10)."""
    result = dynlearn.fit(oja(0), data, MODE, epochs=2, batch_size=40, progress=False)
    w = np.asarray(result.learner.weights)
    norm = np.linalg.norm(w, axis=1)
    p = MODE.presentation
    np.testing.assert_allclose(norm, np.sqrt(1 - p.dt / p.t_pres), atol=0.03)
    assert np.all(np.abs(w @ PC1) / norm > 0.99)  # |cos(w_k, PC1)|


def test_checkpoint_resume_equals_uninterrupted(data, tmp_path):
    kwargs = dict(batch_size=40, seed=1, progress=False)
    straight = dynlearn.fit(oja(0), data, MODE, epochs=2, run_dir=tmp_path / "a", **kwargs)
    dynlearn.fit(oja(0), data, MODE, epochs=1, run_dir=tmp_path / "b", **kwargs)
    resumed = dynlearn.fit(
        oja(0), data, MODE, epochs=2, run_dir=tmp_path / "b", resume=True, **kwargs
    )
    np.testing.assert_array_equal(resumed.learner.weights, straight.learner.weights)
    np.testing.assert_array_equal(resumed.metrics.train_loss, straight.metrics.train_loss)


def test_seeds_train_together_like_one_by_one(data):
    stacked, accuracy = dynlearn.fit_seeds(
        dynlearn.stack([oja(0), oja(1)]), data, MODE, seeds=[3, 4], epochs=1, batch_size=40
    )
    for i, (init, seed) in enumerate(((0, 3), (1, 4))):
        alone = dynlearn.fit(
            oja(init), data, MODE, epochs=1, batch_size=40, seed=seed, progress=False
        )
        np.testing.assert_allclose(stacked.weights[i], alone.learner.weights, atol=1e-5)
        np.testing.assert_allclose(accuracy[i], alone.metrics.test_accuracy.values)


def test_pruned_weights_stay_exactly_zero(data):
    pruned = dynlearn.prune(oja(0), 0.5)
    result = dynlearn.fit(pruned, data, MODE, epochs=1, batch_size=40, progress=False)
    mask = np.asarray(result.learner.masks[0])
    w = np.asarray(result.learner.learner.weights)
    assert int(np.sum(mask == 0)) == N_OUT * N_IN // 2
    assert np.all(w[mask == 0] == 0) and np.all(w[mask == 1] != pruned.learner.weights[mask == 1])


# --- a plasticity gain annealed over the stream (AlwaysOn(..., gain=)) ----------------------
ANNEALED = dynlearn.AlwaysOn(MODE.presentation, gain=dynlearn.inverse_time(100))


def test_a_zero_gain_freezes_the_weights_and_the_state_counts_samples(data):
    frozen = dynlearn.AlwaysOn(MODE.presentation, gain=lambda n: 0.0 * n)
    result = dynlearn.fit(oja(0), data, frozen, epochs=1, batch_size=40, progress=False)
    np.testing.assert_array_equal(result.learner.weights, oja(0).weights)
    assert int(result.state) == 1000  # samples presented, what the schedule reads
    assert result.metrics.attrs["config_gain"].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_an_annealed_gain_lets_the_streamed_weights_settle(data):
    """With a constant rate the weights keep fluctuating around Oja's fixed point (|w|^2 =
    1 - dt/t_pres, see above); with the gain 1/(1 + n/100) their distance to it after two
    epochs is several times smaller (measured: 0.028 constant, 0.0026 annealed)."""
    target = 1 - MODE.presentation.dt / MODE.presentation.t_pres
    distance = {}
    for name, mode in (("constant", MODE), ("annealed", ANNEALED)):
        w = dynlearn.fit(oja(0), data, mode, epochs=2, batch_size=40, progress=False)
        w = np.asarray(w.learner.weights)
        distance[name] = np.abs(np.sum(w * w, axis=1) - target).max()
    assert distance["annealed"] < distance["constant"] / 3, distance


def test_an_annealed_run_resumes_where_it_stopped(data, tmp_path):
    kwargs = dict(batch_size=40, seed=1, progress=False)
    straight = dynlearn.fit(oja(0), data, ANNEALED, epochs=2, **kwargs)
    dynlearn.fit(oja(0), data, ANNEALED, epochs=1, run_dir=tmp_path, **kwargs)
    resumed = dynlearn.fit(
        oja(0), data, ANNEALED, epochs=2, run_dir=tmp_path, resume=True, **kwargs
    )
    np.testing.assert_array_equal(resumed.learner.weights, straight.learner.weights)
    stacked, _ = dynlearn.fit_seeds(
        dynlearn.stack([oja(0)]), data, ANNEALED, seeds=[1], epochs=2, batch_size=40
    )
    np.testing.assert_allclose(stacked.weights[0], straight.learner.weights, atol=1e-5)


@pytest.mark.parametrize(
    "gain, message",
    [
        (0.5, "gain: expected a schedule"),
        (lambda n: -1.0 + 0 * n, "gain: the schedule must give finite multipliers >= 0"),
        (lambda n: jnp.nan * n, "multipliers >= 0"),
    ],
)
def test_a_bad_gain_is_refused(gain, message):
    with pytest.raises(ValueError, match=message):
        dynlearn.AlwaysOn(MODE.presentation, gain=gain)
    with pytest.raises(ValueError, match="n_0: expected"):
        dynlearn.inverse_time(0)


def test_a_mode_continued_after_training_resumes_its_gain(data):
    """`AlwaysOn.after(n)`: the gain picks up at g(n) instead of g(0), so re-training a
    trained learner (e.g. after pruning) moves it less than a fresh schedule would."""
    later = ANNEALED.after(2000)
    assert float(later.gain(0)) == float(ANNEALED.gain(2000)) == 1 / (1 + 2000 / 100)
    assert later.gain == ANNEALED.after(2000).gain  # equal schedules: one compiled program
    assert MODE.after(2000) is MODE  # no gain: nothing to continue
    kwargs = dict(epochs=1, batch_size=40, progress=False)
    trained = dynlearn.fit(oja(0), data, ANNEALED, epochs=2, batch_size=40, progress=False)
    w = np.asarray(trained.learner.weights)
    moved = {}
    for name, mode in (("fresh", ANNEALED), ("continued", later)):
        again = dynlearn.fit(trained.learner, data, mode, seed=5, **kwargs).learner.weights
        moved[name] = np.abs(np.asarray(again) - w).max()
    assert moved["continued"] < moved["fresh"] / 2, moved
    with pytest.raises(ValueError, match="samples: expected an int >= 0"):
        ANNEALED.after(-1)


def test_equal_gain_settings_make_equal_modes():
    """Modes built alike compare equal (one compiled program per setting, e.g. across the
    cells of a study that rebuilds its recipes)."""
    a = dynlearn.AlwaysOn(MODE.presentation, gain=dynlearn.inverse_time(100))
    b = dynlearn.AlwaysOn(MODE.presentation, gain=dynlearn.inverse_time(100.0))
    assert a == b and hash(a.gain) == hash(b.gain) and a.after(10) == b.after(10)
    assert a != dynlearn.AlwaysOn(MODE.presentation, gain=dynlearn.inverse_time(200))


# --- per-synapse normalised plasticity (AlwaysOn(..., rms=)) --------------------------------
class Drift(dynlearn.AbstractPlastic):
    """A synapse per entry of `weights` driven at a constant rate `rate` (no neurons to speak
    of: one unused unit)."""

    weights: jax.Array
    rate: jax.Array

    @property
    def sizes(self):
        return [1, 1]

    def init_state(self, x=None):
        return {"unit": jnp.zeros((1 if x is None else x.shape[0], 1))}

    def vector_field(self, t, y, args):
        return {"unit": jnp.zeros_like(y["unit"])}

    def plasticity(self, t, y, args):
        return eqx.tree_at(lambda m: m.weights, self, self.rate)

    def trainable(self):
        return eqx.tree_at(
            lambda m: (m.weights, m.rate), jax.tree.map(lambda _: False, self), (True, False)
        )

    def predict(self, x):
        return x


def test_normalised_rates_are_lr_sign_g_under_a_constant_drive():
    """With g constant, v = c g^2 at all times, so dtheta/dt = lr sign(g) from the first
    step on (the bias correction), whatever |g|: after T, theta moves by lr T sign(g)."""
    rms = dynlearn.RMSNormalised(tau=5.0, lr=0.01)
    rate = jnp.array([1e-3, -2.0, 50.0, 0.0])
    circuit = Drift(jnp.zeros(4), rate)
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1), rms=rms)
    state = mode.init(circuit)
    x, y = jnp.zeros((3, 1)), jnp.zeros((3, 1))
    learned, state, _ = mode.step(circuit, state, x, y, jax.random.key(0))
    np.testing.assert_allclose(learned.weights, 0.01 * 3.0 * np.sign(rate), rtol=1e-4, atol=1e-9)
    # the history's weight c = 1 - exp(-T / tau) (Euler: 1 - (1 - dt/tau)^steps)
    np.testing.assert_allclose(state["rms"]["weight"], 1 - (1 - 0.1 / 5.0) ** 30, rtol=1e-5)
    learned, state, _ = mode.step(learned, state, x, y, jax.random.key(1))  # carried over
    np.testing.assert_allclose(learned.weights, 0.01 * 6.0 * np.sign(rate), rtol=1e-4, atol=1e-9)


class DriftWithBias(Drift):
    """`Drift` with a matrix of synapses (prunable: its forward weights) and a bias vector
    (trainable, not prunable), both driven at constant rates."""

    bias: jax.Array
    bias_rate: jax.Array

    def plasticity(self, t, y, args):
        return eqx.tree_at(lambda m: (m.weights, m.bias), self, (self.rate, self.bias_rate))

    def trainable(self):
        spec = jax.tree.map(lambda _: False, self)
        return eqx.tree_at(lambda m: (m.weights, m.bias), spec, (True, True))


@pytest.mark.parametrize("scope", ["trainable", "forward"])
def test_normalisation_scope_forward_leaves_the_other_synapses_their_own_rates(scope):
    rate, bias_rate = jnp.array([[1e-3, -2.0], [50.0, 0.5]]), jnp.array([4.0, -0.25])
    circuit = DriftWithBias(jnp.zeros((2, 2)), rate, jnp.zeros(2), bias_rate)
    rms = dynlearn.RMSNormalised(tau=5.0, lr=0.01, scope=scope)
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1), rms=rms)
    state = mode.init(circuit)
    x, y = jnp.zeros((3, 1)), jnp.zeros((3, 1))
    learned, state, _ = mode.step(circuit, state, x, y, jax.random.key(0))
    np.testing.assert_allclose(learned.weights, 0.03 * np.sign(rate), rtol=1e-4)
    expected_bias = 0.03 * np.sign(bias_rate) if scope == "trainable" else 3.0 * bias_rate
    np.testing.assert_allclose(learned.bias, expected_bias, rtol=1e-4)
    assert (state["rms"]["square"].bias is None) == (scope == "forward")
    assert mode.config(circuit)["rms"]["scope"] == scope
    with pytest.raises(ValueError, match="scope must be one of"):
        dynlearn.RMSNormalised(tau=5.0, lr=0.01, scope="feedback")


def test_normalisation_per_neuron_keeps_each_neurons_update_direction():
    """per="neuron": one mean square per row (postsynaptic neuron) of a matrix, so under a
    constant drive each row moves by lr T g_i / rms(g_i) (its direction kept), while a
    vector's entries (neurons already) move by lr T sign(g) as per synapse."""
    rate, bias_rate = jnp.array([[1e-3, -2.0], [50.0, 0.5]]), jnp.array([4.0, -0.25])
    circuit = DriftWithBias(jnp.zeros((2, 2)), rate, jnp.zeros(2), bias_rate)
    rms = dynlearn.RMSNormalised(tau=5.0, lr=0.01, per="neuron")
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1), rms=rms)
    state = mode.init(circuit)
    assert state["rms"]["square"].weights.shape == (2, 1)
    learned, state, _ = mode.step(circuit, state, jnp.zeros((3, 1)), jnp.zeros((3, 1)),
                                  jax.random.key(0))  # fmt: skip
    row_rms = np.sqrt(np.mean(np.asarray(rate) ** 2, axis=1, keepdims=True))
    np.testing.assert_allclose(learned.weights, 0.03 * rate / row_rms, rtol=1e-4)
    np.testing.assert_allclose(learned.bias, 0.03 * np.sign(bias_rate), rtol=1e-4)
    assert mode.config(circuit)["rms"]["per"] == "neuron"
    assert "per" not in dynlearn.AlwaysOn(mode.presentation, rms=dynlearn.RMSNormalised(
        5.0, 0.01)).config(circuit)["rms"]  # fmt: skip
    with pytest.raises(ValueError, match="per must be one of"):
        dynlearn.RMSNormalised(tau=5.0, lr=0.01, per="layer")


def test_normalised_streams_are_invariant_to_the_scale_of_the_rule(data):
    """Oja's rule at eta and at 100 eta: the same trajectory once each synapse's rate is
    divided by its own RMS (the normalisation's point: no per-rule rate to tune)."""
    mode = dynlearn.AlwaysOn(MODE.presentation, rms=dynlearn.RMSNormalised(tau=20.0, lr=0.02))
    runs = [
        dynlearn.fit(eqx.tree_at(lambda m: m.eta, oja(0), eta), data, mode, epochs=1,
                     batch_size=40, progress=False)
        for eta in (0.05, 5.0)
    ]  # fmt: skip
    np.testing.assert_allclose(runs[0].learner.weights, runs[1].learner.weights, atol=1e-4)
    assert not np.allclose(runs[0].learner.weights, oja(0).weights)
    attrs = runs[0].metrics.attrs
    assert (attrs["config_rms_tau"], attrs["config_rms_lr"]) == (20.0, 0.02)


def test_a_normalised_run_resumes_and_refuses_bad_settings(data, tmp_path):
    mode = dynlearn.AlwaysOn(
        MODE.presentation, gain=dynlearn.inverse_time(500), rms=dynlearn.RMSNormalised(20.0, 0.02)
    )
    kwargs = dict(batch_size=40, seed=1, progress=False)
    straight = dynlearn.fit(oja(0), data, mode, epochs=2, **kwargs)
    dynlearn.fit(oja(0), data, mode, epochs=1, run_dir=tmp_path, **kwargs)
    resumed = dynlearn.fit(oja(0), data, mode, epochs=2, run_dir=tmp_path, resume=True, **kwargs)
    np.testing.assert_array_equal(resumed.learner.weights, straight.learner.weights)
    assert int(straight.state["samples"]) == 2000
    assert mode.after(100).rms == mode.rms
    with pytest.raises(ValueError, match="RMSNormalised: need tau > 0"):
        dynlearn.RMSNormalised(tau=0.0, lr=0.1)
    with pytest.raises(ValueError, match="rms: expected a dynlearn.RMSNormalised"):
        dynlearn.AlwaysOn(MODE.presentation, rms=0.1)


# --- the weights' inertia: momentum as slow synaptic dynamics (AlwaysOn(..., inertia=)) -----
def test_inertia_moves_the_weights_as_heavy_ball_momentum_under_a_constant_drive():
    """Under a constant rate u, tau dv/dt = u - v, dtheta/dt = v: Euler steps of dt
    (h = dt / tau) give v_k = u (1 - (1 - h)^k) and theta_n = u dt (n - (1 - (1 - h)^n) / h),
    with the velocity carried from one batch to the next."""
    rate = jnp.array([0.5, -2.0, 0.0])
    circuit = Drift(jnp.zeros(3), rate)
    mode = dynlearn.AlwaysOn(
        dynlearn.Presentation(t_pres=1.0, dt=0.1), inertia=dynlearn.Inertia(2.0)
    )
    state = mode.init(circuit)
    x, y = jnp.zeros((3, 1)), jnp.zeros((3, 1))
    h = 0.1 / 2.0

    def theta(n):
        return np.asarray(rate) * 0.1 * (n - (1 - (1 - h) ** n) / h)

    learned, state, _ = mode.step(circuit, state, x, y, jax.random.key(0))
    np.testing.assert_allclose(learned.weights, theta(30), rtol=1e-5)
    np.testing.assert_allclose(state["velocity"].weights, rate * (1 - (1 - h) ** 30), rtol=1e-5)
    learned, state, _ = mode.step(learned, state, x, y, jax.random.key(1))
    np.testing.assert_allclose(learned.weights, theta(60), rtol=1e-5)
    assert mode.config(circuit)["inertia"] == {"tau": 2.0, "scope": "trainable"}
    assert "inertia" not in dynlearn.AlwaysOn(mode.presentation).config(circuit)


def test_inertia_matching_sgd_momentum_keeps_beta_of_the_velocity_per_batch():
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=2.0, dt=0.1, streams=4))
    matched = mode.with_momentum(0.9, batch_size=40)  # 10 samples per stream: 20 per batch
    assert matched.inertia.tau == pytest.approx(-20.0 / np.log(0.9))
    assert np.exp(-20.0 / matched.inertia.tau) == pytest.approx(0.9)
    assert matched.presentation == mode.presentation and matched.gain is None
    with pytest.raises(ValueError, match="beta: expected a momentum in"):
        mode.with_momentum(1.0, 40)
    with pytest.raises(ValueError, match="batch_size: expected a positive multiple"):
        mode.with_momentum(0.9, 42)


def test_an_inertial_run_resumes_keeps_pruned_weights_at_zero_and_refuses_bad_settings(
    data, tmp_path
):
    mode = dynlearn.AlwaysOn(MODE.presentation, inertia=dynlearn.Inertia(3.0))
    kwargs = dict(batch_size=40, seed=1, progress=False)
    straight = dynlearn.fit(oja(0), data, mode, epochs=2, **kwargs)
    dynlearn.fit(oja(0), data, mode, epochs=1, run_dir=tmp_path, **kwargs)
    resumed = dynlearn.fit(oja(0), data, mode, epochs=2, run_dir=tmp_path, resume=True, **kwargs)
    np.testing.assert_array_equal(resumed.learner.weights, straight.learner.weights)
    w = np.asarray(straight.learner.weights)  # still Oja's: unit rows along PC1
    assert np.all(np.abs(w @ PC1) / np.linalg.norm(w, axis=1) > 0.99)
    pruned = dynlearn.fit(dynlearn.prune(oja(0), 0.5), data, mode, epochs=1, **kwargs).learner
    assert np.all(np.asarray(pruned.learner.weights)[np.asarray(pruned.masks[0]) == 0] == 0)
    for bad in (0.0, -1.0, "slow", True):
        with pytest.raises(ValueError, match="Inertia: expected tau, the time constant"):
            dynlearn.Inertia(bad)
    with pytest.raises(ValueError, match="Inertia: scope must be one of"):
        dynlearn.Inertia(1.0, scope="feedback")
    with pytest.raises(ValueError, match=r"inertia: expected a dynlearn.Inertia\(tau\)"):
        dynlearn.AlwaysOn(MODE.presentation, inertia=3.0)
    fast = dynlearn.AlwaysOn(MODE.presentation, inertia=dynlearn.Inertia(0.05))  # dt is 0.1
    with pytest.raises(ValueError, match="inertia=0.05"):
        dynlearn.fit(oja(0), data, fast, epochs=1, **kwargs)


def test_forward_inertia_leaves_the_other_synapses_their_own_rates():
    """scope="forward": the matrix (prunable) moves through the velocity, the bias at its
    own rate."""
    rate, bias_rate = jnp.array([[1.0, -2.0], [0.5, 0.0]]), jnp.array([4.0, -0.25])
    circuit = DriftWithBias(jnp.zeros((2, 2)), rate, jnp.zeros(2), bias_rate)
    inertia = dynlearn.Inertia(2.0, scope="forward")
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1), inertia=inertia)
    state = mode.init(circuit)
    assert state["velocity"].bias is None and state["velocity"].weights.shape == (2, 2)
    learned, state, _ = mode.step(circuit, state, jnp.zeros((3, 1)), jnp.zeros((3, 1)),
                                  jax.random.key(0))  # fmt: skip
    h = 0.1 / 2.0
    np.testing.assert_allclose(learned.weights, rate * 0.1 * (30 - (1 - (1 - h) ** 30) / h),
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(learned.bias, 3.0 * bias_rate, rtol=1e-5)
    assert mode.config(circuit)["inertia"]["scope"] == "forward"
