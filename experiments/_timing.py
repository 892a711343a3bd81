"""Shared pieces of the experiments: timing loops of the benchmarks (`fit` and a
hand-written epoch, same batches) and the `--quick` data subset."""

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


def hand_curve(
    epoch_fn, accuracy, params, opt_state, data, epochs: int, batch: int, seed: int = 0
) -> list[tuple[float, float]]:
    """Per-epoch (seconds, test accuracy) of a hand-written `epoch_fn(params, opt_state, xs,
    ys, labels) -> (params, opt_state, ...)` on the batches `fit` would use."""
    targets = np.eye(data.n_classes, dtype=np.float32)[data.y_train]
    out = []
    for epoch in range(epochs):
        tic = time.perf_counter()
        idx = dynlearn.epoch_batches(len(data.x_train), batch, seed, epoch)
        params, opt_state, *_ = epoch_fn(
            params,
            opt_state,
            jnp.asarray(data.x_train[idx]),
            jnp.asarray(targets[idx]),
            jnp.asarray(data.y_train[idx]),
        )
        acc = float(accuracy(params, data.x_test, data.y_test))  # blocks until done
        out.append((time.perf_counter() - tic, acc))
    return out


def quick_subset(dataset: str, quick: bool, n_train: int = 960) -> dict:
    """`dynlearn.data.load` options for a `--quick` run: a small training set (generated
    sets by size, `n_train`; the others by a stratified fraction, 20%); nothing otherwise."""
    if not quick:
        return {}
    return {"n_train": n_train} if dataset == "yinyang" else {"fraction": 0.2}
