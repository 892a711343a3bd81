"""Equilibrium-propagation benchmark: dynlearn vs a hand-written scan, and adaptive phases.

Workload: 784-512-10, hard sigmoid (box-constrained flow), batch 64, 30 free + 10 nudged
Euler steps of 0.5, one-sided estimator, beta 0.1, Adam(1e-3), `mnist5k` (4,000 samples).

1. Seconds per training epoch (the fastest of 19, the two's epochs interleaved, after a
   warm-up) for `dynlearn.fit` on `circuits.ep.EPNetwork` and for a `jax.lax.scan` of the
   same equations written by hand in this file (one compiled scan per epoch), the ratio
   (target <= 1.10) and test accuracy.
2. Adaptive steady-state phases (`SteadyStatePhases()`: Tsit5, a steady-state stop at
   rtol = atol = 1e-4, the step-size controller 10x tighter): solver steps per phase
   (measured on one batch) and time to the test accuracy the Euler version reached after
   10 epochs. (A stop at 1e-3 is too loose for the one-sided estimator at beta 0.1: the
   free phase ends ~1e-3 short of its fixed point, the nudged phase finishes that
   relaxation, and the estimator reads it as signal; such runs decay to 43% by epoch 10.)

Run: `python -m experiments.bench_ep` (or `dynlearn bench ep`); `--quick` for a smoke run
(the same workload on `digits`, 64-512-10, 1 timed epoch, no adaptive run; the ratio is
printed but not judged: the exit code is 0 unless the run fails).
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import optax

import dynlearn
from circuits.ep import EPDrive, EPNetwork, EulerPhases, OneSided, SteadyStatePhases
from experiments import _timing as timing

SIZES = [784, 512, 10]
BATCH, BETA, DT, N_FREE, N_NUDGED = 64, 0.1, 0.5, 30, 10
ADAPTIVE_EPOCHS = 10  # the adaptive run is compared with the Euler run's first 10 epochs
OPTIMIZER = optax.adam(1e-3)


def sizes_for(data) -> list[int]:
    """`SIZES` with the data's input width (784 for mnist5k; --quick runs on digits)."""
    return [data.n_features, *SIZES[1:]]


MODE = dynlearn.SettleThenUpdate(OPTIMIZER)  # one object: fit's compiled epoch is reused


def hand_epoch_fn():
    def relax(h, o, x, y, w1, b1, w2, b2, beta, n):
        def step(state, _):
            h, o = state
            dh = jnp.clip(x @ w1.T + b1 + o @ w2, 0, 1) - h
            do = jnp.clip(h @ w2.T + b2 + beta * (y - o), 0, 1) - o
            return (h + DT * dh, o + DT * do), None

        return jax.lax.scan(step, (h, o), None, length=n)[0]

    def batch_step(carry, batch):
        params, opt_state = carry
        x, y, label = batch
        (w1, w2), (b1, b2) = params
        zeros = (jnp.zeros((x.shape[0], 512)), jnp.zeros((x.shape[0], 10)))
        h0, o0 = relax(*zeros, x, y, w1, b1, w2, b2, 0.0, N_FREE)
        hb, ob = relax(h0, o0, x, y, w1, b1, w2, b2, BETA, N_NUDGED)
        n = x.shape[0]
        grads = (
            [-(hb - h0).T @ x / (BETA * n), -(ob.T @ hb - o0.T @ h0) / (BETA * n)],
            [-(hb - h0).mean(0) / BETA, -(ob - o0).mean(0) / BETA],
        )
        updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
        loss = 0.5 * jnp.mean(jnp.sum((y - o0) ** 2, -1))
        n_ok = jnp.sum(jnp.argmax(o0, -1) == label)
        return (optax.apply_updates(params, updates), opt_state), (loss, n_ok)

    @jax.jit
    def epoch(params, opt_state, xs, ys, labels):
        (params, opt_state), _ = jax.lax.scan(batch_step, (params, opt_state), (xs, ys, labels))
        return params, opt_state

    @jax.jit
    def accuracy(params, x, label):
        (w1, w2), (b1, b2) = params
        zeros = (jnp.zeros((x.shape[0], 512)), jnp.zeros((x.shape[0], 10)))
        _, o = relax(*zeros, x, jnp.zeros((x.shape[0], 10)), w1, b1, w2, b2, 0.0, N_FREE)
        return jnp.mean(jnp.argmax(o, -1) == label)

    return epoch, accuracy


def hand_step(data, seed=0):
    """One epoch at a time of the hand-written version (same init, same batches as `fit`)."""
    net = EPNetwork(sizes_for(data), jax.random.key(seed), estimator=OneSided(), beta=BETA)
    params = (net.weights, net.biases)
    epoch_fn, accuracy = hand_epoch_fn()
    return timing.hand_stepper(
        epoch_fn, accuracy, params, OPTIMIZER.init(params), data, BATCH, seed
    )


def run_dynlearn(data, epochs, phases, seed=0):
    """Per-epoch (seconds, test accuracy) of `fit`, compiled beforehand by a 1-epoch run."""

    def make():
        return EPNetwork(
            sizes_for(data), jax.random.key(seed), estimator=OneSided(), beta=BETA, phases=phases
        )

    return timing.fit_curve(make, data, epochs, MODE, BATCH, seed)


def adaptive_steps(data, phases) -> float:
    """Mean solver steps of a free phase on one batch (adaptive, steady-state stop)."""
    net = EPNetwork(sizes_for(data), jax.random.key(0), phases=phases)
    x = jnp.asarray(data.x_train[:BATCH])

    def steps(xi):
        eq = dynlearn.equilibrate(
            net,
            net.init_state(),
            EPDrive(xi, jnp.zeros(10), 0.0),
            rtol=phases.rtol,
            atol=phases.atol,
            check=False,
        )
        return eq.num_steps

    return float(jnp.mean(jax.vmap(steps)(x)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn bench ep", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: digits (64-512-10), 1 timed epoch, no adaptive run; the ratio is "
        "printed, not judged (exit code 0)",
    )
    opts = parser.parse_args(argv)
    name, data, timed = timing.bench_data(opts.quick)
    euler = EulerPhases(N_FREE, N_NUDGED, DT)

    def network():
        return EPNetwork(
            sizes_for(data), jax.random.key(0), estimator=OneSided(), beta=BETA, phases=euler
        )

    ours, hand = timing.interleaved_curves(network, MODE, hand_step(data), data, 1 + timed, BATCH)
    sizes = "-".join(map(str, sizes_for(data)))
    ratio = timing.report_pair(
        f"EP {sizes}, batch 64, 30 free + 10 nudged Euler steps, beta 0.1, "
        f"{len(data.x_train)} {name} samples:",
        ours,
        hand,
    )
    if not opts.quick:
        adaptive = SteadyStatePhases()
        target = ours[ADAPTIVE_EPOCHS - 1][1]
        curve = run_dynlearn(data, ADAPTIVE_EPOCHS, adaptive)
        total, reached = 0.0, None
        for epoch, (seconds, acc) in enumerate(curve[1:], start=2):
            total += seconds
            if acc >= target and reached is None:
                reached = epoch
        euler = sum(s for s, _ in ours[1:ADAPTIVE_EPOCHS])
        print(
            f"adaptive phases (Tsit5, rtol=atol=1e-4): {adaptive_steps(data, adaptive):.1f} "
            f"steps per free phase (Euler: {N_FREE}); epochs 2-{ADAPTIVE_EPOCHS} took "
            f"{total:.2f} s vs Euler {euler:.2f} s; test acc "
            f"{curve[-1][1]:.4f} (Euler's {target:.4f} reached: "
            f"{'epoch ' + str(reached) if reached else 'no'})"
        )
    return timing.verdict(ratio <= 1.10, opts.quick)


if __name__ == "__main__":
    sys.exit(main())
