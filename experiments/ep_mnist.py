"""Equilibrium propagation on MNIST: estimators compared, test accuracy per epoch.

Networks 784-500-10 (and 784-500-500-10 with `--hidden 500 500`), hard sigmoid
(box-constrained flow), Euler phases (30 free + 10 nudged steps of 0.5; 60 + 20 for two
hidden layers), beta 0.1 (random sign is not used), Adam(1e-3), batch 64. Rules: symmetric
(Laborieux et al. 2021), one-sided, and continual EP (always-on, `AlwaysOn` mode). The
literature reports about 97.5-98% test accuracy for such networks with symmetric nudging.

Writes `results.nc` (dims rule, epoch), `learning_curves.png`, `table.md`.

Run: `python -m experiments.ep_mnist --dataset mnist --epochs 10` or
`dynlearn run ep-mnist --dataset mnist5k --epochs 3` (the short version); `--quick` for a
smoke run.
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
from circuits.ep import EPNetwork, EulerPhases, OneSided, Symmetric
from dynlearn import data
from experiments._options import non_negative_int, positive_int
from experiments._timing import quick_subset

RULES = ("symmetric", "one_sided", "continual")
ESTIMATORS = {"symmetric": Symmetric(), "one_sided": OneSided(), "continual": Symmetric()}
# Continual EP (always-on): each sample 15 free + 5 nudged time units, Euler dt 1, one
# stream; the weights learn with eta 0.002 during the nudged part.
CONTINUAL = {"eta": 0.002, "t_free": 15.0}
CONTINUAL_PRESENTATION = dynlearn.Presentation(t_pres=20.0, dt=1.0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynlearn run ep-mnist", description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset", default=None, choices=data.DATASETS, help="default: mnist (quick: yinyang)"
    )
    p.add_argument("--hidden", type=positive_int, nargs="*", default=[500])
    p.add_argument("--rules", nargs="*", default=list(RULES), choices=RULES)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--run-dir",
        type=dynlearn.writable_folder,
        default=None,
        help="default: runs/ep-mnist-<time>",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 epoch on a small training set (960 Yin-Yang samples unless "
        "--dataset, else 20%% of its training set)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    if opts.dataset is None:
        opts.dataset = "yinyang" if opts.quick else "mnist"
    if opts.quick:
        opts.epochs = 1
    if opts.run_dir is None:
        opts.run_dir = dynlearn.run_folder(Path("runs"), "ep-mnist")
    ds_data = data.load(opts.dataset, **quick_subset(opts.dataset, opts.quick))
    sizes = [ds_data.n_features, *opts.hidden, ds_data.n_classes]
    depth = len(opts.hidden)
    phases = EulerPhases(30 * depth, 10 * depth, 0.5)
    accuracy = np.full((len(opts.rules), opts.epochs), np.nan)
    seconds = np.full(len(opts.rules), np.nan)
    curves = {}
    for i, rule in enumerate(opts.rules):
        net = EPNetwork(
            sizes,
            jax.random.key(opts.seed),
            estimator=ESTIMATORS[rule],
            phases=phases,
            **CONTINUAL,
        )
        if rule == "continual":
            mode = dynlearn.AlwaysOn(CONTINUAL_PRESENTATION)
        else:
            mode = dynlearn.SettleThenUpdate(optax.adam(1e-3))
        result = dynlearn.fit(
            net,
            ds_data,
            mode,
            epochs=opts.epochs,
            batch_size=64,
            seed=opts.seed,
            run_dir=opts.run_dir / rule,
            resume=True,
            progress=not opts.no_progress,
        )
        accuracy[i] = result.metrics.test_accuracy.values
        seconds[i] = float(result.metrics.wall_time.sum())
        curves[rule] = result.metrics
    results = xr.Dataset(
        {"test_accuracy": (("rule", "epoch"), accuracy), "wall_time": ("rule", seconds)},
        coords={"rule": list(opts.rules), "epoch": np.arange(1, opts.epochs + 1)},
        attrs={"dataset": opts.dataset, "sizes": "-".join(map(str, sizes)), "seed": opts.seed},
    )
    results = dynlearn.describe(
        results,
        test_accuracy=("test accuracy after each epoch, fraction in [0, 1]", "1"),
        wall_time=("wall-clock time of the run, summed over its epochs", "s"),
    )
    dynlearn.save_netcdf(results, opts.run_dir / "results.nc")
    dynlearn.plot.learning_curves(
        dict(sorted(curves.items())),  # the same look for a rule in every figure
        opts.run_dir / "learning_curves.png",
        title=f"equilibrium propagation: {results.attrs['sizes']} on {opts.dataset}, "
        f"seed {opts.seed}",
    )
    lines = [
        f"EP {results.attrs['sizes']} on {opts.dataset}, seed {opts.seed}",
        "",
        "| rule | test accuracy by epoch (%) | total time (s) |",
        "| --- | --- | --- |",
    ]
    for i, rule in enumerate(opts.rules):
        accs = " ".join(f"{100 * a:.2f}" for a in accuracy[i])
        lines.append(f"| {rule} | {accs} | {seconds[i]:.0f} |")
    table = "\n".join(lines)
    (opts.run_dir / "table.md").write_text(table + "\n")
    print(table)
    print(f"results in {opts.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
