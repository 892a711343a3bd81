"""Shared pieces of the experiments: timing loops of the benchmarks (`fit` and a
hand-written epoch on the same batches, interleaved) and the `--quick` data subset."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

import dynlearn


def fit_curve(
    make_learner, data, epochs: int, mode, batch: int, seed: int = 0, warm_up: bool = True
) -> list[tuple[float, float]]:
    """Per-epoch (seconds, test accuracy) of `dynlearn.fit` in `mode` (e.g.
    `dynlearn.SettleThenUpdate(optimizer)`), one compiled scan per epoch; with `warm_up`, a
    1-epoch run compiles everything first (same mode object, so the same compiled epoch)."""

    def run(n_epochs):
        return dynlearn.fit(
            make_learner(),
            data,
            mode,
            epochs=n_epochs,
            batch_size=batch,
            seed=seed,
            progress=False,
            updates_per_dispatch=len(data.x_train) // batch,
        ).metrics

    if warm_up:
        run(1)
    m = run(epochs)
    return list(zip(m.wall_time.values.tolist(), m.test_accuracy.values.tolist()))


def hand_stepper(epoch_fn, accuracy, params, opt_state, data, batch: int, seed: int = 0):
    """`step(epoch) -> test accuracy`: one epoch of a hand-written `epoch_fn(params,
    opt_state, xs, ys, labels) -> (params, opt_state, ...)` on the batches `fit` would use
    for that epoch (the parameters carry over from call to call)."""
    targets = np.eye(data.n_classes, dtype=np.float32)[data.y_train]
    carry = [params, opt_state]

    def step(epoch: int) -> float:
        idx = dynlearn.epoch_batches(len(data.x_train), batch, seed, epoch)
        carry[0], carry[1], *_ = epoch_fn(
            carry[0],
            carry[1],
            jnp.asarray(data.x_train[idx]),
            jnp.asarray(targets[idx]),
            jnp.asarray(data.y_train[idx]),
        )
        return float(accuracy(carry[0], data.x_test, data.y_test))  # blocks until done

    return step


def interleaved_curves(
    make_learner, mode, hand_step, data, epochs: int, batch: int, seed: int = 0
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Per-epoch (seconds, test accuracy) of `dynlearn.fit` and of a hand-written version
    (`hand_stepper`), run alternately: fit's epoch k, then hand epoch k (from `fit`'s
    `on_epoch`, outside fit's own epoch time), so that drifts of this machine's speed (+-20%
    over seconds) hit both alike. `fit` is compiled first by a 1-epoch run with the same mode
    object (the same compiled epoch); the hand version compiles in its first epoch, so the
    first pair is not a timing (see `ratio_of`)."""
    kwargs = dict(
        batch_size=batch,
        seed=seed,
        progress=False,
        updates_per_dispatch=len(data.x_train) // batch,
    )
    dynlearn.fit(make_learner(), data, mode, epochs=1, **kwargs)
    hand = []

    def after_epoch(epoch, learner, row):
        tic = time.perf_counter()
        accuracy = hand_step(epoch - 1)
        hand.append((time.perf_counter() - tic, accuracy))

    metrics = dynlearn.fit(
        make_learner(), data, mode, epochs=epochs, on_epoch=after_epoch, **kwargs
    ).metrics
    ours = list(zip(metrics.wall_time.values.tolist(), metrics.test_accuracy.values.tolist()))
    return ours, hand


def ratio_of(ours, hand) -> float:
    """The median over interleaved pairs of (dynlearn epoch / hand epoch), the first
    (compiling) pair left out: each pair ran back to back, so a slow spell of the machine
    (+-20% here over seconds) slows both, and the median ignores the odd disturbed pair."""
    return paired_ratio([s for s, _ in ours[1:]], [s for s, _ in hand[1:]])


def paired_ratio(ours: list[float], hand: list[float]) -> float:
    """Median of `ours[k] / hand[k]` over interleaved timings."""
    return float(np.median(np.asarray(ours) / np.asarray(hand)))


def quick_subset(dataset: str, quick: bool, n_train: int = 960) -> dict:
    """`dynlearn.data.load` options for a `--quick` run: a small training set (generated
    sets by size, `n_train`; the others by a stratified fraction, 20%); nothing otherwise."""
    if not quick:
        return {}
    return {"n_train": n_train} if dataset == "yinyang" else {"fraction": 0.2}
