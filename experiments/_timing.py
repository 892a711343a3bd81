"""Shared pieces of the experiments: timing loops of the benchmarks (`fit` and a
hand-written epoch on the same batches, interleaved) and the `--quick` data subset."""

from __future__ import annotations

import time
from pathlib import Path

import jax
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
    """`fastest_ratio` of the epoch times, the first (compiling) pair left out."""
    return fastest_ratio([s for s, _ in ours[1:]], [s for s, _ in hand[1:]])


def interleaved_runs(ours, ref, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds of `repeats` calls of each of two functions, interleaved (after a compiling
    call of each); the results are blocked on, so the times are the computations'."""
    times = ([], [])
    for fn in (ours, ref):
        jax.block_until_ready(fn())
    for _ in range(repeats):
        for fn, out in zip((ours, ref), times):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            out.append(time.perf_counter() - start)
    return times


def fastest_ratio(ours: list[float], hand: list[float]) -> float:
    """Fastest dynlearn run over fastest hand run, the runs interleaved. On this shared VM
    the noise only ever adds time (single epochs vary by up to +-30%, so a median of a few
    paired ratios still swings by 10%); the fastest of many interleaved runs is the closest
    estimate of each side's cost."""
    return min(ours) / min(hand)


def report_pair(title: str, ours, hand) -> float:
    """Print `title`, each side's fastest epoch and last test accuracy, and the ratio
    (`ratio_of`, target <= 1.10); return the ratio."""
    ratio = ratio_of(ours, hand)
    print(title)
    for name, curve in (("dynlearn fit", ours), ("hand lax.scan", hand)):
        fastest = min(s for s, _ in curve[1:])
        print(
            f"  {name:<14}: {fastest:.3f} s/epoch (fastest), test acc after {len(curve)} "
            f"epochs {curve[-1][1]:.4f}"
        )
    print(f"  {'ratio':<14}: {ratio:.3f}  (fastest over fastest, interleaved; target <= 1.10)")
    return ratio


def verdict(ok: bool, quick: bool) -> int:
    """Print PASS/MISS and return the exit code: timings of a `--quick` run are printed,
    not judged (exit code 0)."""
    print("PASS" if ok else "MISS (see the ratios above)")
    if quick:
        print("(--quick: timings not judged)")
        return 0
    return 0 if ok else 1


def quiet_fit(learner, data, mode, *, epochs: int, batch_size: int, seed: int, **kwargs):
    """`dynlearn.fit` without a progress bar (experiments print their own lines)."""
    return dynlearn.fit(
        learner, data, mode, epochs=epochs, batch_size=batch_size, seed=seed, progress=False,
        **kwargs,
    )  # fmt: skip


def markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def bench_data(quick: bool):
    """`(name, data, timed epochs)` of the settle-then-update benchmarks: `mnist5k` and 19
    timed epochs (an epoch takes ~0.15 s and single epochs on this VM vary by up to 30%:
    the fastest of 9 still swung by +-7% from run to run), or `digits` and 1 under
    `--quick`."""
    name = "digits" if quick else "mnist5k"
    return name, dynlearn.data.load(name), 1 if quick else 19


def each_rule_and_seed(rules, seeds, run) -> tuple[list[list], np.ndarray]:
    """`run(rule, seed)` for every pair, timed and reported as it finishes (`run` returns
    the test accuracy per epoch first, then anything else): `(results[i][j], seconds)`."""
    results = [[None] * len(seeds) for _ in rules]
    seconds = np.zeros((len(rules), len(seeds)))
    for i, rule in enumerate(rules):
        for j, seed in enumerate(seeds):
            tic = time.perf_counter()
            results[i][j] = run(rule, seed)
            seconds[i, j] = time.perf_counter() - tic
            curve = results[i][j][0] if isinstance(results[i][j], tuple) else results[i][j]
            print(f"{rule} seed {seed}: {np.round(100 * curve, 2)} ({seconds[i, j]:.0f} s)")
    return results, seconds


def write_results(ds, text: str, run_dir, stem: str) -> Path:
    """`ds` as `<stem>.nc` and `text` as `<stem>.md` in `run_dir` (a new `runs/<stem>-<time>`
    if None); returns the folder."""
    run_dir = Path(run_dir) if run_dir else dynlearn.run_folder("runs", stem.replace("_", "-"))
    dynlearn.save_netcdf(ds, run_dir / f"{stem}.nc")
    (run_dir / f"{stem}.md").write_text(text + "\n")
    return run_dir


def quick_subset(dataset: str, quick: bool, n_train: int = 960) -> dict:
    """`dynlearn.data.load` options for a `--quick` run: a small training set (generated
    sets by size, `n_train`; the others by a stratified fraction, 20%); nothing otherwise."""
    if not quick:
        return {}
    return {"n_train": n_train} if dataset == "yinyang" else {"fraction": 0.2}
