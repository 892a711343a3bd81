"""Spiking benchmark: `simulate` of a LIF network (events) vs a hand-written `lax.scan`.

A 784-400-10 feed-forward network of leaky integrate-and-fire neurons
(`dynlearn.spiking.LIF`, tau_m 10 ms, threshold 1, reset to 0, refractory 2 ms, spike
traces of 5 ms), batch 64: the hidden layer is driven by Poisson input spikes (the rate code
of random images, up to 100 Hz) through W1 as unit-charge pulses (`SpikeTrain`), the output
layer by the hidden spike traces through W2. Euler steps of 0.5 ms for 100 ms (200 steps;
the engine's masked reset after each step, `SpikeEvent` over both populations) against a
`lax.scan` of the same equations in this file; the fastest of 11 interleaved runs of each,
reported as neuron-steps per second. Target: ratio <= 1.10; the spike counts must agree.

Run: `python -m experiments.bench_spiking` (or `dynlearn bench spiking`); `--quick` for a
smoke run (fewer repeats; the ratio is printed, not judged).
"""

from __future__ import annotations

import argparse
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import dynlearn
from dynlearn.spiking import LIF, SpikeEvent, SpikeTrain, poisson_spikes
from experiments._timing import fastest_ratio, interleaved_runs, verdict

DT, STEPS, BATCH, SIZES = 0.5, 200, 64, (784, 400, 10)
NEURONS = LIF(tau_m=10.0, t_ref=2.0, tau_trace=5.0)


class FeedForwardLIF(dynlearn.AbstractDynamics):
    """Input spikes -> W1 -> hidden LIF -> traces -> W2 -> output LIF."""

    w1: jax.Array
    w2: jax.Array
    neurons: LIF

    def vector_field(self, t, y, spikes):
        hidden_current = spikes(t) @ self.w1.T
        output_current = y["hidden"]["trace"] @ self.w2.T
        return {
            "hidden": self.neurons.drift(y["hidden"], hidden_current),
            "output": self.neurons.drift(y["output"], output_current),
        }

    def event(self):
        return SpikeEvent({"hidden": self.neurons, "output": self.neurons})

    def time_constants(self):
        return self.neurons.time_constants()


def problem():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    w1 = jax.random.normal(k1, SIZES[1::-1]) * 0.5
    w2 = jax.random.normal(k2, SIZES[:0:-1]) * 0.2
    rates = 0.1 * jax.random.uniform(k3, (BATCH, SIZES[0]))  # spikes per ms
    spikes = poisson_spikes(k4, rates, DT, STEPS)  # (steps, batch, 784)
    net = FeedForwardLIF(w1, w2, NEURONS)
    y0 = {
        "hidden": NEURONS.init((BATCH, SIZES[1])),
        "output": NEURONS.init((BATCH, SIZES[2])),
    }
    return net, spikes, y0


@eqx.filter_jit
def engine_run(net, spikes, y0):
    train = SpikeTrain(spikes, DT)
    return dynlearn.simulate(net, y0, 0.0, STEPS * DT, args=train, dt=DT, check=False).y1


@jax.jit
def scan_run(w1, w2, spikes, y0):
    """The same Euler steps and masked resets, written by hand."""
    n = NEURONS

    def layer(state, current):
        v, clock, trace, count = state
        dv = jnp.where(clock > 0, 0.0, (current - v) / n.tau_m)
        v = v + DT * dv
        clock = clock - DT * (clock > 0)
        trace = trace - DT * trace / n.tau_trace
        fired = (clock <= 0) & (v >= n.v_th)
        return (
            jnp.where(fired, n.v_reset, v),
            jnp.where(fired, n.t_ref, clock),
            trace + fired,
            count + fired,
        )

    def step(carry, s):
        hidden, output = carry
        new_output = layer(output, hidden[2] @ w2.T)
        new_hidden = layer(hidden, (s / DT) @ w1.T)
        return (new_hidden, new_output), None

    keys = ("v", "refractory", "trace", "count")
    start = tuple(tuple(y0[name][k] for k in keys) for name in ("hidden", "output"))
    (hidden, output), _ = jax.lax.scan(step, start, spikes)
    return hidden[3], output[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dynlearn bench spiking", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats, not judged")
    opts = parser.parse_args(argv)
    repeats = 3 if opts.quick else 11
    net, spikes, y0 = problem()
    ours = lambda: engine_run(net, spikes, y0)  # noqa: E731
    hand = lambda: scan_run(net.w1, net.w2, spikes, y0)  # noqa: E731
    times = interleaved_runs(ours, hand, repeats)
    end, (hidden_count, output_count) = ours(), hand()
    same = bool(
        np.array_equal(end["hidden"]["count"], hidden_count)
        and np.array_equal(end["output"]["count"], output_count)
    )
    neuron_steps = STEPS * BATCH * (SIZES[1] + SIZES[2])
    ratio = fastest_ratio(*times)
    print(f"784-400-10 LIF network, batch {BATCH}, {STEPS} Euler steps (fastest of {repeats}):")
    print(f"  dynlearn.simulate : {neuron_steps / min(times[0]) / 1e6:8.1f} M neuron-steps/s")
    print(f"  hand lax.scan     : {neuron_steps / min(times[1]) / 1e6:8.1f} M neuron-steps/s")
    print(f"  ratio             : {ratio:8.3f}  (target <= 1.10)")
    print(
        f"  spikes: hidden {int(hidden_count.sum())}, output {int(output_count.sum())}; "
        f"identical counts: {same}"
    )
    return verdict(ratio <= 1.10 and same, quick=opts.quick) if same else 1


if __name__ == "__main__":
    sys.exit(main())
