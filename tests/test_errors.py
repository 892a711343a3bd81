"""Bad input: every error names the argument and what was expected."""

import jax
import jax.numpy as jnp
import pytest

import dynlearn
from circuits import HopfieldNetwork, LeakyNetwork


@pytest.fixture
def net():
    return LeakyNetwork.random([4, 3, 2], jax.random.key(0))


def test_state_shape_mismatch(net):
    y0 = net.init_state()
    y0["hidden1"]["u"] = jnp.zeros(5)
    with pytest.raises(ValueError, match="y0 does not fit LeakyNetwork"):
        dynlearn.simulate(net, y0, 0.0, 1.0, args=jnp.ones(4), dt=0.1)
    y0 = net.init_state()
    y0["output"]["u"] = jnp.zeros((2, 2))
    with pytest.raises(ValueError, match=r"'output/u' has shape \(2, 2\).*\(2,\)"):
        dynlearn.simulate(net, y0, 0.0, 1.0, args=jnp.ones(4), dt=0.1)
    with pytest.raises(ValueError, match="y0 does not fit"):
        dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=jnp.ones(7), dt=0.1)
    hop = HopfieldNetwork.random(4, jax.random.key(0))
    with pytest.raises(ValueError, match="y0 does not fit HopfieldNetwork"):
        dynlearn.equilibrate(hop, {"neurons": {"u": jnp.zeros(3)}})


def test_non_finite_inputs(net):
    y0 = net.init_state()
    y0["hidden1"]["u"] = y0["hidden1"]["u"].at[0].set(jnp.nan)
    with pytest.raises(ValueError, match="y0 contains NaN or inf in 'hidden1/u'"):
        dynlearn.simulate(net, y0, 0.0, 1.0, args=jnp.ones(4), dt=0.1)
    with pytest.raises(ValueError, match="args contains NaN or inf"):
        dynlearn.simulate(
            net, net.init_state(), 0.0, 1.0, args=jnp.array([1, jnp.inf, 0, 0]), dt=0.1
        )
    stream = dynlearn.StimulusStream(jnp.full((2, 4), jnp.nan), t_pres=1.0)
    with pytest.raises(ValueError, match="args contains NaN or inf in 'samples'"):
        dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=stream, dt=0.1)
    hop = HopfieldNetwork.random(4, jax.random.key(0))
    with pytest.raises(ValueError, match="y0 contains NaN"):
        dynlearn.equilibrate(hop, {"neurons": {"u": jnp.full(4, jnp.inf)}})


def test_non_finite_inside_jit_still_raises(net):
    y0 = net.init_state()
    run = jax.jit(lambda y: dynlearn.simulate(net, y, 0.0, 1.0, args=jnp.ones(4), dt=0.1).y1)
    y0["output"]["u"] = jnp.array([jnp.nan, 0.0])
    with pytest.raises(Exception, match="y0 contains NaN or inf in 'output/u'"):
        jax.block_until_ready(run(y0))


def test_unknown_solver_name(net):
    with pytest.raises(ValueError, match=r"unknown solver name 'rk99'.*'euler'"):
        dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=jnp.ones(4), dt=0.1, solver="rk99")
    with pytest.raises(ValueError, match="solver: expected a diffrax.AbstractSolver"):
        dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=jnp.ones(4), dt=0.1, solver=3)


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


def test_bad_times_and_arguments(net):
    with pytest.raises(ValueError, match="t1 must be greater than t0"):
        dynlearn.simulate(net, net.init_state(), 1.0, 0.0, args=jnp.ones(4), dt=0.1)
    with pytest.raises(ValueError, match="dt"):
        dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=jnp.ones(4))
    with pytest.raises(ValueError, match="dt must be > 0"):
        dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=jnp.ones(4), dt=-0.1)
    with pytest.raises(ValueError, match="system: expected a dynlearn.AbstractDynamics"):
        dynlearn.simulate(lambda t, y, a: y, jnp.ones(2), 0.0, 1.0, dt=0.1)
    with pytest.raises(ValueError, match="unknown state variable 'hidden9'"):
        dynlearn.simulate(
            net,
            net.init_state(),
            0.0,
            1.0,
            args=jnp.ones(4),
            dt=0.1,
            ts=jnp.ones(1),
            variables=["hidden9"],
        )
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape"):
        LeakyNetwork([jnp.ones((3, 4)), jnp.ones((2, 5))])


def _simulate_leaky(net, **overrides):
    kwargs = dict(y0=net.init_state(), t0=0.0, t1=1.0, args=jnp.ones(4), dt=0.1)
    kwargs.update(overrides)
    y0, t0, t1 = kwargs.pop("y0"), kwargs.pop("t0"), kwargs.pop("t1")
    return dynlearn.simulate(net, y0, t0, t1, **kwargs)


def _int_state(net):
    y0 = net.init_state()
    y0["hidden1"]["u"] = jnp.zeros(3, jnp.int32)
    return y0


def _half_state(net):
    y0 = net.init_state()
    y0["output"]["u"] = jnp.zeros(2, jnp.float16)
    return y0


BAD_SIMULATE_INPUTS = [  # (what, overrides, the message must match)
    ("a step longer than the span", dict(dt=5.0), r"dt=5.0 is longer than the span"),
    ("an infinite t1", dict(t1=float("inf")), r"t1 must be finite"),
    ("a NaN step", dict(dt=float("nan")), r"dt must be finite"),
    ("save times out of the span", dict(ts=jnp.array([0.5, 2.0])), r"ts: save times must lie"),
    ("unordered save times", dict(ts=jnp.array([0.5, 0.2])), r"ts: .*non-decreasing"),
    ("NaN save times", dict(ts=jnp.array([0.5, jnp.nan])), r"ts: contains NaN"),
    ("a 2-D array of save times", dict(ts=jnp.ones((2, 2))), r"ts: expected a non-empty 1-D"),
    ("an integer state", dict(y0=_int_state), r"y0: 'hidden1/u' has dtype int32.*float32"),
    ("a float16 state", dict(y0=_half_state), r"y0: 'output/u' has dtype float16.*float32"),
]


@pytest.mark.parametrize(
    "overrides, message",
    [c[1:] for c in BAD_SIMULATE_INPUTS],
    ids=[c[0] for c in BAD_SIMULATE_INPUTS],
)
def test_bad_times_and_states_are_refused_before_any_work(net, overrides, message):
    overrides = {k: v(net) if callable(v) else v for k, v in overrides.items()}
    with pytest.raises(ValueError, match=message):
        _simulate_leaky(net, **overrides)


def test_equilibrate_refuses_an_integer_state():
    hop = HopfieldNetwork.random(4, jax.random.key(0))
    with pytest.raises(ValueError, match="y0: 'neurons/u' has dtype int32"):
        dynlearn.equilibrate(hop, {"neurons": {"u": jnp.zeros(4, jnp.int32)}})


def _pc(**options):
    from circuits.pc import PCNetwork

    return PCNetwork([4, 3, 2], jax.random.key(0), **options)


def _ep(**options):
    from circuits.ep import EPNetwork

    return EPNetwork([4, 3, 2], jax.random.key(0), **options)


def _host(kind):
    """A host circuit of a feedback pathway, by kind, built with the given options."""
    from circuits import FeedbackMLP, LENetwork, Microcircuit

    host = {"le": LENetwork, "mc": Microcircuit, "mlp": FeedbackMLP}[kind]
    return lambda **options: host([4, 3, 2], jax.random.key(0), **options)


def _bad_circuit_options():
    from circuits.ep import EulerPhases, SteadyStatePhases
    from circuits.pc import EulerInference, SteadyStateInference

    return [  # (what, build, the message must match): refused when built, naming the option
        ("PC step beyond tau", lambda: _pc(inference=EulerInference(4, 2.0)),
         r"inference: EulerInference.dt=2.0 is larger than the fastest time constant of "
         r"PCNetwork, tau=1"),
        ("PC step beyond a custom tau", lambda: _pc(inference=EulerInference(4, 0.5), tau=0.1),
         r"EulerInference.dt=0.5 is larger .* tau=0.1"),
        ("PC negative step", lambda: EulerInference(4, -0.1), r"EulerInference.dt must be"),
        ("PC no steps", lambda: EulerInference(0, 0.1), r"EulerInference.n_steps must be an"),
        ("PC fractional steps", lambda: EulerInference(2.5, 0.1), r"n_steps must be an integer"),
        ("PC zero tolerance", lambda: SteadyStateInference(rtol=0.0), r"\.rtol must be"),
        ("PC infinite max_time", lambda: SteadyStateInference(max_time=float("inf")),
         r"SteadyStateInference.max_time must be a finite"),
        ("EP step beyond tau", lambda: _ep(phases=EulerPhases(dt=3.0)),
         r"phases: EulerPhases.dt=3.0 is larger than the fastest time constant of EPNetwork"),
        ("EP fixed steady-state step beyond tau", lambda: _ep(phases=SteadyStatePhases(dt=2.0)),
         r"phases: SteadyStatePhases.dt=2.0 is larger"),
        ("EP no free steps", lambda: EulerPhases(n_free=0), r"EulerPhases.n_free must be"),
        ("EP NaN step", lambda: EulerPhases(dt=float("nan")), r"EulerPhases.dt must be a finite"),
        ("EP zero steady-state step", lambda: SteadyStatePhases(dt=0.0), r"Phases.dt must be"),
        ("a pathway given by name", lambda: _host("le")(feedback="fa"),
         r"feedback: expected a pathway .* got 'fa' \(for a name, use circuits.feedback.by_name"),
        ("a pathway given by name to the microcircuit", lambda: _host("mc")(feedback="kp"),
         r"feedback: expected a pathway"),
        ("something else as a pathway", lambda: _host("mlp")(feedback=3),
         r"feedback: expected a pathway .* got 3; known names"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "case", range(len(_bad_circuit_options())), ids=lambda i: _bad_circuit_options()[i][0]
)
def test_circuit_options_are_checked_when_built(case):
    _, build, message = _bad_circuit_options()[case]
    with pytest.raises(ValueError, match=message):
        build()
