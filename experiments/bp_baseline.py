"""The backprop baseline: an MLP trained with `dynlearn.fit` and `jax.grad`.

Default: 784-128-10 tanh, Adam(1e-3), batch 64, 5 epochs on `mnist5k`. Writes
`metrics.nc`, checkpoints and `learning_curves.png` into its run folder.

Run: `python -m experiments.bp_baseline --dataset mnist5k --epochs 5` or
`dynlearn run bp --dataset mnist --hidden 128 128`; `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import optax

import dynlearn
from circuits._layers import ACTIVATIONS
from circuits.backprop import BackpropMLP
from dynlearn import data
from experiments._options import fraction, non_negative_int, positive, positive_int
from experiments._timing import quick_subset


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynlearn run bp", description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset", default=None, choices=data.DATASETS, help="default: mnist5k (quick: yinyang)"
    )
    p.add_argument(
        "--hidden", type=positive_int, nargs="*", default=[128], help="hidden layer sizes"
    )
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS))
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive, default=1e-3)
    p.add_argument("--fraction", type=fraction, default=1.0, help="stratified training fraction")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--run-dir", type=dynlearn.writable_folder, default=None, help="default: runs/bp-<time>"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
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
    opts.dataset = opts.dataset or ("yinyang" if opts.quick else "mnist5k")
    options = quick_subset(opts.dataset, opts.quick)
    options["fraction"] = options.get("fraction", 1.0) * opts.fraction
    if opts.quick:
        opts.epochs = 1
    ds = data.load(opts.dataset, seed=opts.seed, **options)
    sizes = [ds.n_features, *opts.hidden, ds.n_classes]
    net = BackpropMLP(sizes, jax.random.key(opts.seed), activation=opts.activation)
    if opts.run_dir is None:
        opts.run_dir = dynlearn.run_folder(Path("runs"), "bp")
    result = dynlearn.fit(
        net,
        ds,
        dynlearn.SettleThenUpdate(optax.adam(opts.lr)),
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        seed=opts.seed,
        run_dir=opts.run_dir,
        resume=opts.resume,
        progress=not opts.no_progress,
    )
    setting = f"{'-'.join(map(str, sizes))} {opts.activation} on {opts.dataset}"
    dynlearn.plot.learning_curves(
        result.metrics,
        opts.run_dir / "learning_curves.png",
        title=f"backprop {setting}, Adam {opts.lr:g}, batch {opts.batch_size}, seed {opts.seed}",
    )
    m = result.metrics
    print(f"BP {setting}: ")
    for e in range(m.sizes["epoch"]):
        print(
            f"  epoch {int(m.epoch[e])}: train loss {float(m.train_loss[e]):.4f}, "
            f"test accuracy {float(m.test_accuracy[e]):.4f}, {float(m.wall_time[e]):.2f} s"
        )
    print(f"results in {opts.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
