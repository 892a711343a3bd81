"""Events: a leaky integrate-and-fire neuron's threshold and reset, in both integration paths.

With constant drive R I > V_th, `tau dV/dt = -V + R I` and a reset to 0 at V_th, the
inter-spike interval is `T = tau ln(R I / (R I - V_th))`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn


class Reset(dynlearn.AbstractEvent):
    """Spike at V >= V_th: V -> 0; count it, remember its time and the interval."""

    threshold: float

    def condition(self, t, y, args):
        return y["v"] - self.threshold

    def jump(self, t, y, args, fired):
        return {
            "v": jnp.where(fired, 0.0, y["v"]),
            "count": y["count"] + fired,
            "isi": jnp.where(fired, t - y["t_last"], y["isi"]),
            "t_last": jnp.where(fired, t, y["t_last"]),
        }


class LIF(dynlearn.AbstractDynamics):
    tau: float = 10.0
    threshold: float = 1.0

    def vector_field(self, t, y, drive):
        zero = jnp.zeros_like(y["v"])
        return {"v": (drive - y["v"]) / self.tau, "count": zero, "isi": zero, "t_last": zero}

    def event(self):
        return Reset(self.threshold)

    def time_constants(self):
        return {"tau": self.tau}


DRIVE = jnp.array([1.5, 2.0, 3.0])  # R I for three neurons
ISI = 10.0 * np.log(DRIVE / (DRIVE - 1.0))


def rest():
    return {k: jnp.zeros(3) for k in ("v", "count", "isi", "t_last")}


def test_adaptive_solver_finds_every_spike_time(x64):
    traj = dynlearn.simulate(
        LIF(), rest(), 0.0, 100.0, args=DRIVE, rtol=1e-10, atol=1e-12, dt=0.1,
        ts=jnp.linspace(0.0, 100.0, 11),
    )  # fmt: skip
    np.testing.assert_allclose(traj.y1["isi"], ISI, atol=1e-6)
    np.testing.assert_array_equal(traj.y1["count"], np.floor(100.0 / ISI))
    assert np.all(np.isfinite(traj.ys["v"])) and np.all(traj.ys["v"] < 1.0)  # saved, reset


def test_fixed_steps_reset_by_mask_with_error_of_order_dt(x64):
    errors = []
    for dt in (0.1, 0.01, 0.001):
        traj = dynlearn.simulate(LIF(), rest(), 0.0, 100.0, args=DRIVE, dt=dt)
        errors.append(float(np.max(np.abs(traj.y1["isi"] - ISI))))
    slope = np.polyfit(np.log([0.1, 0.01, 0.001]), np.log(errors), 1)[0]
    assert abs(slope - 1) < 0.1, (errors, slope)  # first order in dt
    assert errors[-1] < 1e-3


def test_saved_times_see_the_reset_and_jit(x64):
    ts = jnp.linspace(0.0, 30.0, 301)
    run = jax.jit(
        lambda drive: dynlearn.simulate(LIF(), rest(), 0.0, 30.0, args=drive, dt=0.01, ts=ts)
    )
    v = np.asarray(run(DRIVE).ys["v"])
    # Between steps a saved value can exceed the threshold by at most one step's rise
    # (dt |dV/dt| <= 0.01 * 0.2); at step ends the reset has been applied.
    assert v.shape == (301, 3) and v.max() < 1.0 + 0.002
    k = int(np.argmax(ts > ISI[2]))  # the first saved time after neuron 2's first spike
    assert v[k, 2] < 0.1 < v[k - 1, 2]  # fell back to about 0


def test_a_reset_that_does_not_reset_is_a_clear_error(x64):
    class Stuck(Reset):
        def jump(self, t, y, args, fired):
            return y

    class Bad(LIF):
        def event(self):
            return Stuck(self.threshold)

    with pytest.raises(ValueError, match="ran out of steps .*max_events=20"):
        dynlearn.simulate(
            Bad(), rest(), 0.0, 100.0, args=DRIVE, rtol=1e-8, atol=1e-8, max_events=20
        )
