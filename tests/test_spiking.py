"""Spiking neurons (`dynlearn.spiking`) and sparse coding by the LCA (`circuits.lca`):
resets, refractory periods, input spike trains, rasters, several populations in one state,
and clear errors for impossible neurons."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits.lca import RateLCA, SparseCoder
from dynlearn.spiking import LIF, Population, SpikeEvent, SpikeTrain


def run(neurons, current, t1=50.0, dt=0.01, ts=None):
    """A population driven by `current` (an array, or a `SpikeTrain`)."""
    shape = current.spikes.shape[1:] if isinstance(current, SpikeTrain) else current.shape
    return dynlearn.simulate(
        Population(neurons), neurons.init(shape), 0.0, t1, args=current, dt=dt, ts=ts
    )


def test_refractory_period_lengthens_every_interval_and_resets_differ():
    plain, refractory = LIF(), LIF(t_ref=3.0)
    current = jnp.array([1.5, 3.0])
    count = run(plain, current).y1["count"]
    slower = run(refractory, current).y1["count"]
    expected = np.floor((50.0 + 3.0) / np.asarray(refractory.interval(current)))
    np.testing.assert_array_equal(slower, expected)  # spikes at k T - t_ref
    assert bool(jnp.all(slower < count))
    # a perfect integrator resetting by subtraction keeps its overshoot: the count is the
    # integral of the drive, floor(I t / (tau_m v_th)), whatever the step
    end = run(LIF(leak=False, reset="subtract"), jnp.array([0.37]), dt=0.07).y1
    assert float(end["count"][0]) == np.floor(0.37 * 50.0 / 10.0 + 1e-9)


def test_spike_train_input_delivers_unit_charge_per_spike():
    spikes = dynlearn.spiking.regular_spikes(jnp.array([0.05, 0.2]), 0.1, 400)  # 40 ms
    assert spikes.sum(axis=0).tolist() == [2.0, 8.0]
    integrator = LIF(tau_m=1.0, v_th=100.0, leak=False)  # never fires: v = charge received
    end = run(integrator, SpikeTrain(spikes, 0.1), t1=41.0, dt=0.05).y1
    np.testing.assert_allclose(end["v"], [2.0, 8.0], rtol=1e-5)


@pytest.mark.parametrize("steps", [41, 82])
def test_each_fixed_step_reads_its_own_bin_and_saves_at_late_times(steps):
    """Bins valued 0 ... n-1 integrated over n steps of dt = 1 sum to n (n-1) / 2, and a
    save at t = n holds the end state: float32 step times land on the bins' starts (they
    used to start a rounding error early for some n, e.g. 41 and 82, reading the previous
    bin; and a save at t > 8 missed the 1e-6-of-a-step window)."""
    spikes = jnp.arange(steps, dtype=jnp.float32)[:, None]
    integrator = LIF(tau_m=1.0, v_th=1e9, leak=False)  # never fires: v = charge received
    traj = run(integrator, SpikeTrain(spikes, 1.0), t1=float(steps), dt=1.0,
               ts=jnp.array([2.0, float(steps)]))  # fmt: skip
    total = steps * (steps - 1) / 2
    assert float(traj.y1["v"][0]) == total
    assert traj.ys["v"][:, 0].tolist() == [1.0, total]


def test_raster_dataset_and_figure(tmp_path):
    ts = jnp.linspace(0.0, 50.0, 501)
    traj = run(LIF(), jnp.array([1.2, 2.0, 4.0]), ts=ts)
    ds = dynlearn.spiking.raster(traj.ys["count"], ts)
    assert ds.spikes.dims == ("time", "unit") and int(ds.spikes.sum()) == int(
        traj.y1["count"].sum()
    )
    np.testing.assert_allclose(ds.rate, np.asarray(traj.y1["count"]) / 50.0)
    assert not dynlearn.missing_metadata(ds)
    dynlearn.plot.raster(ds, tmp_path / "raster.png")
    assert (tmp_path / "raster.png").exists()
    with pytest.raises(ValueError, match="counts, ts"):
        dynlearn.spiking.raster(traj.ys["count"][:-1], ts)


class TwoPopulations(dynlearn.AbstractDynamics):
    """A driven population exciting a second one through its spike trace."""

    first: LIF
    second: LIF

    def vector_field(self, t, y, args):
        return {
            "first": self.first.drift(y["first"], args),
            "second": self.second.drift(
                y["second"], jnp.full(y["second"]["v"].shape, 5.0 * y["first"]["trace"].sum())
            ),
        }

    def event(self):
        return SpikeEvent({"first": self.first, "second": self.second})

    def time_constants(self):
        return self.first.time_constants()


def test_several_populations_share_one_event():
    system = TwoPopulations(LIF(), LIF(v_th=0.5))
    y0 = {"first": system.first.init((2,)), "second": system.second.init((3,))}
    end = dynlearn.simulate(system, y0, 0.0, 100.0, args=jnp.array([0.5, 3.0]), dt=0.01).y1
    assert end["first"]["count"].tolist()[0] == 0  # below threshold: silent
    assert float(end["first"]["count"][1]) > 5 and bool(jnp.all(end["second"]["count"] > 0))


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(v_th=-1.0), "v_th"),
        (dict(v_reset=1.0), "v_reset"),
        (dict(t_ref=-1.0), "t_ref"),
        (dict(tau_m=0.0), "tau_m"),
        (dict(reset="clamp"), "reset"),
    ],
)
def test_impossible_neurons_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        LIF(**settings)


def test_bad_steps_rates_and_presentations_are_named():
    with pytest.raises(ValueError, match="tau_m"):
        run(LIF(tau_m=0.5), jnp.array([2.0]), dt=1.0)
    with pytest.raises(ValueError, match="t_pres"):
        LIF(t_ref=20.0).check_presentation(10.0)
    with pytest.raises(ValueError, match="rates"):
        dynlearn.spiking.poisson_spikes(jax.random.key(0), jnp.array([20.0]), 0.1, 10)


def test_rate_codes_run_under_jit_and_check_known_rates():
    rates = jnp.array([0.0, 0.3, 1.0])
    eager = dynlearn.spiking.regular_spikes(rates, 1.0, 10)
    traced = jax.jit(lambda r: dynlearn.spiking.regular_spikes(r, 1.0, 10))(rates)
    np.testing.assert_array_equal(traced, eager)
    np.testing.assert_array_equal(eager.sum(0), [0, 3, 10])
    draws = jax.jit(lambda k: dynlearn.spiking.poisson_spikes(k, rates, 1.0, 10))
    assert draws(jax.random.key(0)).shape == (10, 3)
    with pytest.raises(ValueError, match="rates"):
        dynlearn.spiking.regular_spikes(jnp.array([1.5]), 1.0, 10)


def test_lca_codes_match_lasso_and_dictionary_learning_reduces_the_error():
    from sklearn.linear_model import Lasso

    data = dynlearn.data.load("digits")
    x = jnp.asarray(data.x_train[:64])
    coder = SparseCoder(64, 96, jax.random.key(0), lam=0.2, settle_time=200.0)
    codes = coder.code(x[:4])
    lasso = Lasso(alpha=0.2 / 64, fit_intercept=False, tol=1e-10, max_iter=100_000)
    phi = np.asarray(coder.phi, np.float64)
    for row, code in zip(np.asarray(x[:4], np.float64), np.asarray(codes)):
        np.testing.assert_allclose(code, lasso.fit(phi, row).coef_, atol=2e-3)  # float32 LCA

    def error(c):
        return float(jnp.mean(jnp.sum((x - c.code(x) @ c.phi.T) ** 2, axis=1)))

    optimizer = optax.sgd(0.5)
    state, before = optimizer.init(coder.phi), error(coder)
    for _ in range(10):
        update, state = optimizer.update(coder.dictionary_update(x, coder.code(x)), state)
        coder = coder.with_dictionary(optax.apply_updates(coder.phi, update))
    assert error(coder) < 0.8 * before, (before, error(coder))
    with pytest.raises(ValueError, match="lam"):
        RateLCA(coder.phi, 0.0)


def test_feedback_snn_learns_digits_by_implicit_differentiation():
    from circuits.feedback_snn import FeedbackSNN, rule

    data = dynlearn.data.load("digits")
    learner, mode, batch = rule([64, 50, 10], jax.random.key(0))
    trained = dynlearn.fit(learner, data, mode, epochs=2, batch_size=batch, progress=False)
    assert float(trained.metrics.test_accuracy[-1]) > 0.7  # chance 0.1; 77% measured
    net, x = trained.learner, jnp.asarray(data.x_test[:16])
    gap = jnp.abs(net.spiking_rates(x, 200) - net.equilibrium(x))  # rates -> fixed point
    assert float(gap.max()) < 0.05
    with pytest.raises(ValueError, match="sizes"):
        FeedbackSNN([64, 50, 50, 10], jax.random.key(0))
    with pytest.raises(ValueError, match="v_th"):
        FeedbackSNN([64, 50, 10], jax.random.key(0), v_th=-1.0)


def test_matrix_free_implicit_gradient_matches_the_dense_one():
    """`equilibrate(..., adjoint_solver=lineax.LSMR)` (the feedback SNN's default) gives
    the gradient of the dense implicit solve."""
    import equinox as eqx
    import lineax as lx

    from circuits.feedback_snn import FeedbackSNN

    net = FeedbackSNN([20, 30, 5], jax.random.key(0), recurrent_scale=0.5)
    x = jax.random.uniform(jax.random.key(1), (8, 20))
    y = jax.nn.one_hot(jnp.arange(8) % 5, 5)

    def gradient(solver):
        def loss(n):
            scores = n.equilibrium(x, adjoint_solver=solver) @ n.readout.T
            return optax.softmax_cross_entropy(scores, y).mean()

        return eqx.filter_grad(loss)(net)

    sparse, dense = gradient(None), gradient(lx.AutoLinearSolver(well_posed=None))
    for name in ("forward", "recurrent", "bias"):
        a, b = getattr(sparse, name), getattr(dense, name)
        assert float(jnp.abs(a - b).max() / jnp.abs(b).max()) < 1e-3, name
