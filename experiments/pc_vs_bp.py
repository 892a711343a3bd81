"""Predictive coding vs backprop: the same MLP, optimizer and epochs, several seeds.

MLP 784-128-128-10 tanh (squared-error loss for all, the loss PC implies), Adam(1e-3),
batch 64. Rules:
- `bp`: backprop (`circuits.backprop`).
- `pc`: PC settle-then-update, 20 Euler steps of 0.1, output clamped (the literature's
  default; output variance s_L = 1).
- `pc-weak`: the same with output variance s_L = 10, a weakly clamped output (closer to the
  infinitesimal-inference limit in which PC's update tends to BP's gradient).
- `pc-always-on`: no phases, no optimizer: samples streamed (t_pres 10, Euler dt 0.2),
  activities carry over from sample to sample, weights are state with tau_w = 1000
  (per-sample learning rate t_pres / tau_w = 0.01).
Expectation from the literature: PC within about 1 point of BP on MNIST.

Writes `results.nc` (dims rule, seed, epoch), `learning_curves.png` and `table.md` into
its run folder and prints the table.

Run: `python -m experiments.pc_vs_bp --dataset mnist5k --seeds 3 --epochs 10` or
`dynlearn run pc-vs-bp --dataset mnist`; `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import xarray as xr

import dynlearn
from circuits._layers import SquaredError
from circuits.backprop import BackpropMLP
from circuits.pc import PCNetwork
from dynlearn import data
from experiments._options import positive_int
from experiments._timing import quick_subset

BATCH = 64


def make(rule: str, sizes, seed: int) -> tuple[dynlearn.AbstractLearner, dynlearn.AbstractMode]:
    """(learner, mode) for a rule."""
    key = jax.random.key(seed)
    if rule == "bp":
        learner = BackpropMLP(sizes, key, loss=SquaredError())
    elif rule == "pc":
        learner = PCNetwork(sizes, key)
    elif rule == "pc-weak":
        learner = PCNetwork(sizes, key, variances=[1.0] * (len(sizes) - 2) + [10.0])
    elif rule == "pc-always-on":
        presentation = dynlearn.Presentation(t_pres=10.0, dt=0.2)
        return PCNetwork(sizes, key, tau_w=1000.0), dynlearn.AlwaysOn(presentation)
    else:
        raise ValueError(f"rule: unknown {rule!r}; known: {list(RULES)}.")
    return learner, dynlearn.SettleThenUpdate(optax.adam(1e-3))


RULES = ("bp", "pc", "pc-weak", "pc-always-on")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynlearn run pc-vs-bp", description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset", default=None, choices=data.DATASETS, help="default: mnist5k (quick: yinyang)"
    )
    p.add_argument("--rules", nargs="*", default=list(RULES), choices=RULES)
    p.add_argument("--hidden", type=positive_int, nargs="*", default=[128, 128])
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--seeds", type=positive_int, default=3)
    p.add_argument(
        "--run-dir",
        type=dynlearn.writable_folder,
        default=None,
        help="default: runs/pc-vs-bp-<time>",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 epoch, 1 seed, a small training set (128 Yin-Yang samples unless "
        "--dataset, else 20%% of its training set)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    opts.dataset = opts.dataset or ("yinyang" if opts.quick else "mnist5k")
    if opts.quick:
        opts.epochs, opts.seeds = 1, 1
    if opts.run_dir is None:
        opts.run_dir = dynlearn.run_folder(Path("runs"), "pc-vs-bp")
    ds_data = data.load(opts.dataset, **quick_subset(opts.dataset, opts.quick, n_train=128))
    sizes = [ds_data.n_features, *opts.hidden, ds_data.n_classes]
    accuracy = np.full((len(opts.rules), opts.seeds, opts.epochs), np.nan)
    seconds = np.full((len(opts.rules), opts.seeds), np.nan)
    curves = {}
    for i, rule in enumerate(opts.rules):
        for seed in range(opts.seeds):
            learner, mode = make(rule, sizes, seed)
            result = dynlearn.fit(
                learner,
                ds_data,
                mode,
                epochs=opts.epochs,
                batch_size=BATCH,
                seed=seed,
                run_dir=opts.run_dir / f"{rule}-seed{seed}",
                resume=True,
                progress=not opts.no_progress,
            )
            # Summed epoch times (not this call's), so resumed cells report their real cost.
            seconds[i, seed] = float(result.metrics.wall_time.sum())
            accuracy[i, seed] = result.metrics.test_accuracy.values
            curves[f"{rule} s{seed}"] = result.metrics
    results = xr.Dataset(
        {
            "test_accuracy": (("rule", "seed", "epoch"), accuracy),
            "wall_time": (("rule", "seed"), seconds),
        },
        coords={
            "rule": list(opts.rules),
            "seed": np.arange(opts.seeds),
            "epoch": np.arange(1, opts.epochs + 1),
        },
        attrs={"dataset": opts.dataset, "sizes": "-".join(map(str, sizes)), "batch_size": BATCH},
    )
    results = dynlearn.describe(
        results,
        test_accuracy=("test accuracy after each epoch, fraction in [0, 1]", "1"),
        wall_time=("wall-clock time of the run, summed over its epochs", "s"),
        seed=("random seed (initial weights and batch order)", "1"),
    )
    dynlearn.save_netcdf(results, opts.run_dir / "results.nc")
    dynlearn.plot.learning_curves(
        dict(sorted(curves.items())),  # the same look for a run in every figure
        opts.run_dir / "learning_curves.png",
        title=f"PC vs BP: {results.attrs['sizes']} tanh on {opts.dataset}, "
        f"one line per rule and seed (s0 = seed 0)",
    )
    final = results.test_accuracy.isel(epoch=-1)
    lines = [
        f"{results.attrs['sizes']} tanh on {opts.dataset}, {opts.epochs} epochs, "
        f"{opts.seeds} seeds (test accuracy, mean ± std over seeds)",
        "",
        "| rule | test accuracy (%) | wall time per run (s) |",
        "| --- | --- | --- |",
    ]
    for rule in opts.rules:
        acc = 100 * final.sel(rule=rule)
        lines.append(
            f"| {rule} | {float(acc.mean()):.2f} ± {float(acc.std()):.2f} | "
            f"{float(results.wall_time.sel(rule=rule).mean()):.1f} |"
        )
    table = "\n".join(lines)
    (opts.run_dir / "table.md").write_text(table + "\n")
    print(table)
    print(f"results in {opts.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
