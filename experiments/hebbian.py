"""SoftHebb (one hidden layer, label-free) with a linear read-out vs backprop, same network.

The registered rule `softhebb` (`circuits.hebbian`: SoftHebb layer, T = 1/30, centred
unit-length inputs, ReLU(u - mean(u))^2 passed to a divisively normalised read-out on the
cross-entropy; Hebbian SGD 10, read-out Adam 1e-3, batches of 64) and the rule `bp`
(backprop, tanh, Adam 1e-3, batches of 32) train n_in-2000-10 networks for `--epochs`
epochs. Reported per rule: the test accuracy per epoch, the final one, and how many epochs
each takes to reach 95% of its final accuracy (the claim that Hebbian learning settles in a
few epochs where backprop needs many). Writes `hebbian.nc`, `hebbian.md`, `hebbian.png`.

Paper figures, for comparison: multilayer SoftHebb reaches 99.4% on MNIST with a
convolutional network (Journé et al. 2023); Krotov & Hopfield (2019) 98.5% with 2000
competitive hidden units; the single-layer SoftHebb MLP's MNIST figure (Moraitis et al.
2022) was not retrieved here.

Run: `python -m experiments.hebbian --dataset mnist` or `dynlearn run hebbian --dataset
fashion_mnist`; `--rules softhebb activation hard-wta gha bp` compares any registered rules
the same way; `--quick` for a smoke run (digits, 100 hidden units, 2 epochs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
import xarray as xr

import dynlearn
from dynlearn import data, registry
from experiments._options import non_negative_int, positive_int

RULES = ("softhebb", "bp")  # the default comparison; `--rules` takes any registered ones


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynlearn run hebbian", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist", "mnist5k"))
    p.add_argument(
        "--rules",
        nargs="+",
        default=list(RULES),
        help=f"registered rules to train (default: {' '.join(RULES)}; also activation, "
        "hard-wta, gha, ...)",
    )
    p.add_argument("--hidden", type=positive_int, default=2000)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--validation", action="store_true", help="score on the validation split")
    p.add_argument(
        "--run-dir", type=dynlearn.writable_folder, default=None, help="default runs/hebbian-<time>"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: digits, 100 units, 2 epochs")
    return p


def epochs_to(curve: np.ndarray, share: float = 0.95) -> int:
    """The first epoch (1-based) whose accuracy reaches `share` of the final one."""
    return int(np.argmax(curve >= share * curve[-1])) + 1


def main(argv: list[str] | None = None) -> int:
    p = parser()
    opts = p.parse_args(argv)
    unknown = sorted(set(opts.rules) - set(registry.entries("rules")))
    if unknown:
        p.error(f"--rules: unknown {unknown}; registered: {sorted(registry.entries('rules'))}")
    if opts.quick:
        opts.dataset, opts.hidden, opts.epochs = "digits", 100, 2
    ds = data.load(opts.dataset, seed=opts.seed)
    if opts.validation:
        ds = ds.validation_split()
    run_dir = Path(opts.run_dir or dynlearn.run_folder(Path("runs"), "hebbian"))
    sizes = [ds.n_features, opts.hidden, ds.n_classes]
    curves, seconds = [], []
    for name in opts.rules:
        learner, mode, batch_size = registry.load("rules", name)(sizes, jax.random.key(opts.seed))
        result = dynlearn.fit(
            learner, ds, mode, epochs=opts.epochs, batch_size=batch_size, seed=opts.seed,
            progress=False,
        )  # fmt: skip
        curves.append(result.metrics.test_accuracy.values)
        seconds.append(float(result.metrics.wall_time.sum()))
    curves = np.array(curves)
    out = xr.Dataset(
        {
            "test_accuracy": (("rule", "epoch"), curves),
            "epochs_to_95": ("rule", [epochs_to(c) for c in curves]),
            "seconds": ("rule", seconds),
        },
        coords={"rule": list(opts.rules), "epoch": np.arange(1, opts.epochs + 1)},
        attrs={"dataset": ds.name, "sizes": "-".join(map(str, sizes)), "seed": opts.seed},
    )
    out = dynlearn.describe(
        out,
        test_accuracy=("test accuracy after the epoch", "1"),
        epochs_to_95=("first epoch reaching 95% of the final test accuracy", "1"),
        seconds=("training time", "s"),
        epoch=("training epoch", "1"),
        rule=("registered learning rule", ""),
    )
    dynlearn.save_netcdf(out, run_dir / "hebbian.nc")
    lines = [
        f"# {' vs '.join(opts.rules)}, {out.attrs['sizes']} on {ds.name} (seed {opts.seed})",
        "",
        "| rule | final accuracy | best | epochs to 95% of final | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, name in enumerate(opts.rules):
        lines.append(
            f"| {name} | {100 * curves[i, -1]:.2f} | {100 * curves[i].max():.2f} | "
            f"{int(out.epochs_to_95[i])} | {seconds[i]:.0f} |"
        )
    table = "\n".join(lines)
    (run_dir / "hebbian.md").write_text(table + "\n")
    title = f"{out.attrs['sizes']} on {ds.name}"
    with dynlearn.plot.figure(run_dir / "hebbian.png", figsize=(5.6, 3.4), title=title) as ax:
        for i, name in enumerate(opts.rules):
            ax.plot(out.epoch, 100 * curves[i], label=name, **dynlearn.plot.style(i))
        ax.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax.legend()
    print(table)
    print(f"results in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
