"""Equilibrium propagation: energy-derived dynamics, estimators, learning, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits.ep import (
    Contrastive,
    EPDrive,
    EPNetwork,
    EulerPhases,
    Holomorphic,
    OneSided,
    SoftmaxReadout,
    SteadyStatePhases,
    Symmetric,
    rule_chl_continual,
    rule_continual,
)


def test_flow_is_the_energy_gradient_for_smooth_rho(x64):
    net = EPNetwork([4, 5, 3], jax.random.key(0), activation="sigmoid")
    state = {"hidden1": {"u": jnp.linspace(-1, 1, 5)}, "output": {"u": jnp.linspace(0, 1, 3)}}
    drive = EPDrive(jnp.linspace(0, 1, 4), jnp.array([1.0, 0.0, 0.0]), 0.3)
    flow = net.vector_field(0.0, state, drive)
    s = jax.nn.sigmoid
    u1, u2 = state["hidden1"]["u"], state["output"]["u"]
    w1, w2 = net.weights
    # -dF/du1 = -u1 + rho'(u1) (W1 x + b1 + W2^T rho(u2)); -dF/du2 adds beta (y - rho) rho'.
    d1 = -u1 + s(u1) * (1 - s(u1)) * (w1 @ drive.x + net.biases[0] + w2.T @ s(u2))
    d2 = -u2 + s(u2) * (1 - s(u2)) * (w2 @ s(u1) + net.biases[1] + 0.3 * (drive.y - s(u2)))
    np.testing.assert_allclose(flow["hidden1"]["u"], d1, rtol=1e-12)
    np.testing.assert_allclose(flow["output"]["u"], d2, rtol=1e-12)


def test_hard_sigmoid_phase_is_the_primitive_form(x64):
    """Euler with dt = 1 on the box-constrained flow is s <- clip(dPhi/ds) (Ernoult 2019)."""
    net = EPNetwork([4, 5, 3], jax.random.key(0), phases=EulerPhases(1, 1, 1.0))
    x = jnp.linspace(0, 1, 4)
    state = {"hidden1": {"u": jnp.linspace(0, 1, 5)}, "output": {"u": jnp.full(3, 0.5)}}
    drive = EPDrive(x, jnp.zeros(3), 0.0)
    out = net.phases.relax(net, state, drive, nudged=False)
    w1, w2 = net.weights
    expected1 = jnp.clip(w1 @ x + net.biases[0] + w2.T @ state["output"]["u"], 0, 1)
    np.testing.assert_allclose(out["hidden1"]["u"], expected1, rtol=1e-12)


@pytest.mark.slow(
    reason="the same claim on the same network is checked in every run by the fast version "
    "of theory/ep_vs_rbp (tests/test_theory.py), with all four estimators and five betas"
)
def test_estimators_agree_with_implicit_gradient(x64):
    phases = SteadyStatePhases(rtol=1e-11, atol=1e-12, max_time=1e4)
    net = EPNetwork([4, 5, 3], jax.random.key(0), activation="sigmoid", phases=phases)
    net = eqx.tree_at(lambda m: m.weights, net, [3.0 * w for w in net.weights])
    x = jax.random.uniform(jax.random.key(1), (3, 4))
    y = jax.random.uniform(jax.random.key(2), (3, 3))

    def loss(net):
        def one(xi, yi):
            eq = dynlearn.equilibrate(
                net, net.init_state(), EPDrive(xi, yi, 0.0), rtol=1e-11, atol=1e-12, max_time=1e4
            )
            return net.cost(eq.y, yi)

        return jnp.mean(jax.vmap(one)(x, y))

    ref = eqx.filter_jit(eqx.filter_grad(loss))(net)
    ref = (ref.weights, ref.biases)
    errors = {}
    estimate = eqx.filter_jit(lambda net, est: net.estimate(x, y, estimator=est, beta=0.01))
    for name, est in (("one_sided", OneSided()), ("symmetric", Symmetric())):
        g, metrics = estimate(net, est)
        errors[name] = float(dynlearn.analysis.relative_error((g.weights, g.biases), ref))
    assert errors["one_sided"] < 0.02 and errors["symmetric"] < 1e-4
    np.testing.assert_allclose(metrics["loss"], loss(net), rtol=1e-8)


@pytest.fixture(scope="module")
def digits():
    return dynlearn.data.load("digits")


@pytest.mark.parametrize("kwargs", [{}, {"readout": SoftmaxReadout()}], ids=["se", "ce"])
def test_ep_learns_digits(digits, kwargs):
    net = EPNetwork([64, 64, 10], jax.random.key(0), **kwargs)
    mode = dynlearn.SettleThenUpdate(optax.adam(1e-3))
    result = dynlearn.fit(net, digits, mode, epochs=3, batch_size=32, progress=False)
    assert float(result.metrics.test_accuracy[-1]) > 0.8


def test_chl_is_hebbian_when_clamped_and_anti_hebbian_when_free(x64):
    """CHL's update: dW_l = -(rho(u_l^c) rho(u_{l-1}^c)^T - rho(u_l^0) rho(u_{l-1}^0)^T)
    (gradient sign, batch mean), the clamped phase holding the output at the target and
    the hidden layer at its fixed point given it."""
    net = EPNetwork([5, 6, 3], jax.random.key(0), estimator=Contrastive())
    x = jax.random.uniform(jax.random.key(1), (4, 5))
    y = jax.nn.one_hot(jnp.array([0, 2, 1, 2]), 3)
    grads, _ = net.updates(x, y, None)
    free = jax.vmap(net.free_phase)(x, y)
    clamped = jax.vmap(net.clamped_phase)(free, x, y)
    np.testing.assert_allclose(clamped["output"]["u"], y)
    drive = EPDrive(x[0], y[0], 0.0)
    one = jax.tree.map(lambda a: a[0], clamped)
    rest = net.vector_field(0.0, one, drive)["hidden1"]["u"]
    assert float(jnp.abs(rest).max()) < 1e-6  # the hidden layer settled under the clamp

    def hebb(state, pre):
        return net.rho(state["output"]["u"]).T @ net.rho(pre) / x.shape[0]

    expected = -(hebb(clamped, clamped["hidden1"]["u"]) - hebb(free, free["hidden1"]["u"]))
    np.testing.assert_allclose(grads.weights[1], expected, atol=1e-10)
    first = -(net.rho(clamped["hidden1"]["u"]) - net.rho(free["hidden1"]["u"])).T @ x / 4
    np.testing.assert_allclose(grads.weights[0], first, atol=1e-10)


def test_continual_chl_sums_to_the_clamped_minus_free_update(x64):
    """Always-on CHL: a free leg, then the output relaxing to the target while the weights
    follow -eta d/dt[dE/dtheta]; as eta -> 0 the summed change is eta times the CHL update
    between the leg's ends."""
    eta, t_free, t_clamp = 1e-6, 5.0, 30.0
    net = EPNetwork([5, 6, 3], jax.random.key(0), estimator=Contrastive(), eta=eta, t_free=t_free)
    x = jax.random.uniform(jax.random.key(1), (1, 5))
    y = jax.nn.one_hot(jnp.array([2]), 3)
    tol = {"rtol": 1e-10, "atol": 1e-12}
    u0 = jax.tree.map(lambda a: a[None], net.free_phase(x[0], y[0]))
    stream = dynlearn.StimulusStream(x[None], t_pres=t_free + t_clamp, targets=y[None])
    frozen = dynlearn.simulate(net, u0, 0.0, t_free + t_clamp, args=stream, **tol).y1
    np.testing.assert_allclose(frozen["output"]["u"], y, atol=1e-9)  # clamped by the end

    def energy_grad(state):
        return eqx.filter_grad(lambda m: m.energy(state, EPDrive(x, y, 0.0)))(net).weights

    chl = [-(a - b) for a, b in zip(energy_grad(frozen), energy_grad(u0))]
    system = dynlearn.Learning(net)
    end = dynlearn.simulate(
        system, {"neurons": u0, "params": system.params()}, 0.0, t_free + t_clamp,
        args=stream, **tol,
    ).y1  # fmt: skip
    moved = [(a - b) / eta for a, b in zip(system.learned(end).weights, net.weights)]
    assert float(dynlearn.analysis.relative_error(moved, chl)) < 1e-3


@pytest.mark.parametrize("always_on", [False, True], ids=["settled", "continual"])
def test_chl_learns_digits(digits, always_on):
    if always_on:
        net, mode, _ = rule_chl_continual([64, 64, 10], jax.random.key(0))
    else:
        net = EPNetwork([64, 64, 10], jax.random.key(0), estimator=Contrastive())
        mode = dynlearn.SettleThenUpdate(optax.adam(1e-3))
    result = dynlearn.fit(net, digits, mode, epochs=3, batch_size=32, progress=False)
    assert float(result.metrics.test_accuracy[-1]) > 0.85


@pytest.mark.parametrize("estimator", ["one-sided", "symmetric"])
def test_continual_ep_learns_digits(digits, estimator):
    """Continual EP, one-sided (15 ms free, then nudged; constant eta 0.002) and as the
    registered rule `ep-continual` (-beta then +beta, eta 0.003, annealed gain)."""
    if estimator == "one-sided":
        net = EPNetwork([64, 64, 10], jax.random.key(0), estimator=OneSided())
        mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=20.0, dt=1.0))
    else:
        net, mode, _ = rule_continual([64, 64, 10], jax.random.key(0))
    result = dynlearn.fit(net, digits, mode, epochs=3, batch_size=32, progress=False)
    assert float(result.metrics.test_accuracy[-1]) > 0.85


def test_output_homeostasis_revives_a_silent_output_unit():
    """With `homeostasis`, an output unit silenced by a large negative bias (rate 0 for every
    input: no EP update can reach it, the hard sigmoid is flat there) regains its rate while
    the samples stream by; without it, it stays silent."""
    x = jax.random.uniform(jax.random.key(1), (64, 5))
    y = jax.nn.one_hot(jnp.arange(64) % 3, 3)
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=20.0, dt=1.0))
    rates = {}
    for h in (0.0, 0.05):
        net = EPNetwork([5, 6, 3], jax.random.key(0), eta=0.003, homeostasis=h)
        net = eqx.tree_at(lambda n: n.biases[-1], net, net.biases[-1].at[0].set(-3.0))
        before = float(net.predict(x)[:, 0].max())
        for i in range(0, 64, 8):
            net, _, _ = mode.step(net, None, x[i : i + 8], y[i : i + 8], jax.random.key(i))
        rates[h] = (before, float(net.predict(x)[:, 0].mean()))
    assert rates[0.0] == (0.0, 0.0)
    assert rates[0.05][0] == 0.0 and rates[0.05][1] > 0.05


def test_bad_input():
    net = EPNetwork([4, 5, 3], jax.random.key(0))
    with pytest.raises(ValueError, match=r"x: expected a batch \(batch, 4\)"):
        net.updates(jnp.ones((2, 5)), jnp.ones((2, 3)), None)
    with pytest.raises(ValueError, match=r"y: expected targets of shape \(2, 3\)"):
        net.updates(jnp.ones((2, 4)), jnp.ones((2, 2)), None)
    with pytest.raises(ValueError, match=r"inputs \(x, y\) contains NaN"):
        net.updates(jnp.full((2, 4), jnp.nan), jnp.ones((2, 3)), None)
    with pytest.raises(ValueError, match="beta must be > 0"):
        EPNetwork([4, 5, 3], jax.random.key(0), beta=0.0)
    with pytest.raises(ValueError, match="homeostasis: expected a rate >= 0"):
        EPNetwork([4, 5, 3], jax.random.key(0), homeostasis=-1e-4)
    with pytest.raises(ValueError, match="homeostasis: .* needs RateReadout"):
        EPNetwork([4, 5, 3], jax.random.key(0), homeostasis=1e-4, readout=SoftmaxReadout())
    with pytest.raises(ValueError, match="holomorphic rho"):
        EPNetwork([4, 5, 3], jax.random.key(0), estimator=Holomorphic(2))
    with pytest.raises(ValueError, match="estimator: expected a circuits.ep estimator option"):
        EPNetwork([4, 5, 3], jax.random.key(0), estimator="two_sided")
    with pytest.raises(ValueError, match="n_points must be >= 2"):
        Holomorphic(1)
    with pytest.raises(ValueError, match="contrastive Hebbian learning clamps .* 'tanh'"):
        EPNetwork([4, 5, 3], jax.random.key(0), activation="tanh", estimator=Contrastive())
    with pytest.raises(ValueError, match="readout: contrastive Hebbian .* SoftmaxReadout"):
        EPNetwork([4, 5, 3], jax.random.key(0), estimator=Contrastive(), readout=SoftmaxReadout())
    short = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=10.0, dt=1.0))
    x, y = jnp.ones((2, 4)), jnp.ones((2, 3))
    with pytest.raises(ValueError, match="t_free=15.0 must be shorter than .* t_pres=10.0"):
        short.step(net, None, x, y, jax.random.key(0))
    complex_nudge = EPNetwork([4, 5, 3], jax.random.key(0), activation="sigmoid",
                              estimator=Holomorphic(2))  # fmt: skip
    stream = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=20.0, dt=1.0))
    with pytest.raises(ValueError, match="estimator: continual EP nudges with a real beta"):
        stream.step(complex_nudge, None, x, y, jax.random.key(0))
    slow = EPNetwork(
        [4, 5, 3], jax.random.key(0), activation="sigmoid", phases=SteadyStatePhases(max_time=0.5)
    )
    with pytest.raises(ValueError, match="no steady state"):
        slow.free_phase(jnp.ones(4), jnp.ones(3))


def test_steady_state_phases_settle_every_batch_with_their_defaults():
    """`SteadyStatePhases()` (Tsit5, stop at rtol = atol = 1e-4, controller 10x tighter)
    settles every free and nudged phase of 4 batches of 32 digits, before and after a few
    Adam updates, in a 64-128-10 hard-sigmoid network (a phase that does not settle raises).
    With the controller at the stop's own tolerance, samples hovered just above the stop
    and `fit` stopped after one epoch on MNIST."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = jnp.asarray(d.data[:128] / 16, jnp.float32).reshape(4, 32, 64)
    y = jax.nn.one_hot(d.target[:128], 10).reshape(4, 32, 10)
    net = EPNetwork([64, 128, 10], jax.random.key(0), phases=SteadyStatePhases())
    optimizer = optax.adam(1e-2)
    state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))
    step = eqx.filter_jit(lambda net, x, y: net.updates(x, y, None))
    for xb, yb in zip(x, y):
        updates, metrics = jax.block_until_ready(step(net, xb, yb))
        assert np.isfinite(float(metrics["loss"]))
        updates, state = optimizer.update(eqx.filter(updates, eqx.is_inexact_array), state)
        net = eqx.apply_updates(net, updates)
