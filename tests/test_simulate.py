"""simulate: closed forms, convergence order, SDE statistics, vmap, memory, jit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn
from circuits import LeakyNetwork
from tests.systems import OrnsteinUhlenbeck

TAU = 2.0
T_PRES = 1.5
CURRENTS = np.array([[1.0, -0.5], [0.2, 2.0], [-1.0, 0.3], [0.7, 0.7]])


def leaky_integrator():
    """tau du/dt = -u + I(t): one identity layer."""
    return LeakyNetwork([jnp.eye(2)], tau=TAU)


def closed_form(t):
    """u(t) for u(0) = 0 and piecewise-constant I_k on [k T_PRES, (k+1) T_PRES)."""
    u = np.zeros(2)
    for k, current in enumerate(CURRENTS):
        start = k * T_PRES
        if t <= start:
            break
        span = min(t, start + T_PRES) - start
        u = current + (u - current) * np.exp(-span / TAU)
    return u


def run(dt=None, **kwargs):
    net = leaky_integrator()
    stream = dynlearn.StimulusStream(jnp.asarray(CURRENTS), t_pres=T_PRES)
    ts = jnp.linspace(0.0, stream.t1, 25)
    traj = dynlearn.simulate(
        net, net.init_state(), 0.0, stream.t1, args=stream, dt=dt, ts=ts, **kwargs
    )
    exact = np.stack([closed_form(float(t)) for t in ts])
    return np.asarray(traj.ys["output"]["u"]), exact


def test_adaptive_matches_closed_form(x64):
    got, exact = run(rtol=1e-9, atol=1e-11)
    # 1e-5 relative is the bar; jumps are declared to the controller, so a tight
    # tolerance reaches it.
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())


def test_euler_first_order_with_bound(x64):
    errors = []
    for dt in (0.05, 0.025, 0.0125):
        got, exact = run(dt=dt)
        err = np.abs(got - exact).max()
        # Euler on a contracting linear ODE: |e| <= dt tau max|u''| / 2, max|u''| <=
        # max|I - u| / tau^2 <= 2 max|I| / tau^2.
        bound = dt * TAU * (2 * np.abs(CURRENTS).max() / TAU**2) / 2
        assert err <= bound, (dt, err, bound)
        errors.append(err)
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(orders, 1.0, atol=0.1)


def test_ornstein_uhlenbeck_stationary_variance():
    ou = OrnsteinUhlenbeck(tau=1.0, sigma=0.5)
    y0 = {"x": {"u": jnp.zeros(4000)}}
    # Samples 2 tau apart after a 5 tau burn-in: ~ 4000 x 18 nearly independent draws,
    # sampling error of the variance ~1%; Euler-Maruyama's bias is dt / (2 tau) = 0.5%.
    ts = jnp.arange(5.0, 40.01, 2.0)
    traj = dynlearn.simulate(ou, y0, 0.0, 40.0, dt=0.01, key=jax.random.key(0), ts=ts)
    variance = float(jnp.var(traj.ys["x"]["u"]))
    expected = ou.sigma**2 * ou.tau / 2
    assert abs(variance / expected - 1) < 0.05, (variance, expected)


def test_sde_key_reproducible():
    ou = OrnsteinUhlenbeck()
    y0 = {"x": {"u": jnp.zeros(16)}}

    def end(key, **kw):
        return dynlearn.simulate(ou, y0, 0.0, 1.0, dt=0.01, key=key, **kw).y1["x"]["u"]

    for kw in ({}, {"differentiable_noise": True}):
        a, b, c = (
            end(jax.random.key(3), **kw),
            end(jax.random.key(3), **kw),
            end(jax.random.key(4), **kw),
        )
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def test_sde_without_key_is_an_error():
    with pytest.raises(ValueError, match="key"):
        dynlearn.simulate(OrnsteinUhlenbeck(), {"x": {"u": jnp.zeros(2)}}, 0.0, 1.0, dt=0.1)


def test_vmap_equals_loop():
    net = LeakyNetwork.random([5, 4, 3], jax.random.key(0), tau=1.0)
    xs = jax.random.normal(jax.random.key(1), (6, 3, 5))  # batch, samples, features

    def one(x):
        stream = dynlearn.StimulusStream(x, t_pres=0.5, tau_filter=0.2)
        return dynlearn.simulate(
            net, net.init_state(), 0.0, 1.5, args=stream, dt=0.01, ts=jnp.linspace(0, 1.5, 7)
        )

    batched = jax.jit(jax.vmap(one))(xs)
    for i in range(xs.shape[0]):
        single = one(xs[i])
        for a, b in zip(jax.tree.leaves(single.ys), jax.tree.leaves(batched.ys)):
            np.testing.assert_allclose(b[i], a, rtol=1e-5, atol=1e-6)


def test_save_end_only_keeps_only_the_end():
    net = LeakyNetwork.random([5, 3], jax.random.key(0))
    traj = dynlearn.simulate(net, net.init_state(), 0.0, 10.0, args=jnp.ones(5), dt=0.1)
    assert traj.ts is None and traj.ys is None
    assert traj.y1["output"]["u"].shape == (3,)
    assert int(traj.num_steps) == 100


def _compiled_bytes(n_steps):
    net = LeakyNetwork.random([20, 10], jax.random.key(0))

    def run(net, x):
        return dynlearn.simulate(
            net, net.init_state(), 0.0, n_steps * 0.1, args=x, dt=0.1, check=False
        ).y1

    stats = jax.jit(run).lower(net, jnp.ones(20)).compile().memory_analysis()
    return stats.temp_size_in_bytes + stats.output_size_in_bytes


def test_memory_is_flat_in_the_number_of_steps():
    """No hidden per-step buffer: the compiled program's memory does not grow with steps."""
    assert _compiled_bytes(10**5) == _compiled_bytes(10**2)


def test_saved_times_and_selected_variables():
    net = LeakyNetwork.random([4, 3, 2], jax.random.key(0))
    ts = jnp.linspace(0.0, 1.0, 11)
    traj = dynlearn.simulate(
        net,
        net.init_state(),
        0.0,
        1.0,
        args=jnp.ones(4),
        dt=0.01,
        ts=ts,
        variables=["output/u"],
        save_end=False,
    )
    assert set(traj.ys) == {"output"} and traj.ys["output"]["u"].shape == (11, 2)
    assert traj.y1 is None
    np.testing.assert_allclose(traj.ts, ts)


def test_jit_compiles_once():
    net = LeakyNetwork.random([4, 2], jax.random.key(0))

    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(net, x):
        return dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=x, dt=0.1).y1

    for i in range(3):
        run(net, jnp.full(4, float(i)))


def test_stimulus_filter_equals_leaky_integration(x64):
    """The closed-form low-pass filter equals integrating tau_f dx_f/dt = x - x_f."""
    samples = jnp.asarray(CURRENTS)
    filtered = dynlearn.StimulusStream(samples, t_pres=T_PRES, tau_filter=TAU)
    raw = dynlearn.StimulusStream(samples, t_pres=T_PRES)
    net = leaky_integrator()
    ts = jnp.linspace(0.0, raw.t1, 13)
    traj = dynlearn.simulate(
        net, net.init_state(), 0.0, raw.t1, args=raw, rtol=1e-10, atol=1e-12, ts=ts
    )
    expected = jax.vmap(filtered.input)(ts)
    np.testing.assert_allclose(traj.ys["output"]["u"], expected, rtol=1e-7, atol=1e-9)


def test_stream_indexing_and_targets():
    stream = dynlearn.StimulusStream(
        jnp.arange(3.0)[:, None], t_pres=2.0, targets=jnp.eye(3), t0=1.0
    )
    assert stream.t1 == 7.0
    assert [int(stream.index(t)) for t in (0.0, 1.0, 2.9, 3.0, 6.9, 9.0)] == [0, 0, 0, 1, 2, 2]
    np.testing.assert_array_equal(stream.target(4.0), jnp.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(stream.jump_ts, [3.0, 5.0])
    with pytest.raises(ValueError, match="targets"):
        dynlearn.StimulusStream(jnp.ones((3, 2)), t_pres=1.0, targets=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="t_pres"):
        dynlearn.StimulusStream(jnp.ones((3, 2)), t_pres=0.0)


def test_fixed_step_fast_path_equals_diffeqsolve():
    """End-only fixed-step solves step the solver in a loop; forcing diffeqsolve (by giving
    max_steps) must give the same state, for an ODE and for an SDE with the same key."""
    net = LeakyNetwork.random([5, 4, 3], jax.random.key(0), tau=1.0)
    stream = dynlearn.StimulusStream(jax.random.normal(jax.random.key(1), (3, 5)), t_pres=0.5)
    fast = dynlearn.simulate(net, net.init_state(), 0.0, 1.5, args=stream, dt=0.01)
    slow = dynlearn.simulate(net, net.init_state(), 0.0, 1.5, args=stream, dt=0.01, max_steps=1000)
    assert int(fast.num_steps) == int(slow.num_steps) == 150
    for a, b in zip(jax.tree.leaves(fast.y1), jax.tree.leaves(slow.y1)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ou, y0 = OrnsteinUhlenbeck(), {"x": {"u": jnp.zeros(8)}}
    kw = dict(dt=0.01, key=jax.random.key(2), differentiable_noise=True)
    a = dynlearn.simulate(ou, y0, 0.0, 1.0, **kw).y1["x"]["u"]
    b = dynlearn.simulate(ou, y0, 0.0, 1.0, max_steps=200, **kw).y1["x"]["u"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_through_simulate_matches_finite_differences(x64):
    net = LeakyNetwork.random([3, 2], jax.random.key(0), tau=1.0)

    def loss(scale):
        scaled = eqx.tree_at(lambda n: n.weights, net, [scale * w for w in net.weights])
        end = dynlearn.simulate(scaled, scaled.init_state(), 0.0, 2.0, args=jnp.ones(3), dt=0.01).y1
        return jnp.sum(end["output"]["u"] ** 2)

    eps = 1e-6
    fd = (loss(1.0 + eps) - loss(1.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(loss)(1.0), fd, rtol=1e-6)
