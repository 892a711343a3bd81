"""Experiment: input-weight alignment rules against BP and FA by width and amount of data.

Boopathy & Fiete (2022) argue that in wide networks (the NTK regime) BP's layer updates are
error-weighted input correlations that rules without weight transport can reproduce, and
that such rules match BP in wide networks, "particularly in low data regimes". Our rules
(`circuits.feedback_mlp.rule_align_zero` / `rule_align_ada`: errors through the weights at
birth, B = W(0)^T; a reconstruction from the paper's stated principle, see
`theory/ntk_alignment.py`) are compared here with `bp` and `fa` on 784-n-n-10 tanh networks:

- widths `--widths` (default 64 256 1024) and training-set fractions `--fractions`
  (default 0.1 1.0; stratified subsets, the same test set);
- optimiser: each rule's registered recipe (Adam 1e-3, batches of 32), or with
  `--lazy-lr c` plain SGD at the lazy scaling lr = c / n (the regime of the theory).

Logged after every epoch: test accuracy and angle(B_l, W_{l+1}^T): for the alignment rules
the angle between the weights at birth and now, i.e. how far training left the lazy regime.
Written to the run folder: `ntk_alignment.nc`, `.md` (table), `.png` (accuracy against width).

Run: `python -m experiments.ntk_alignment --dataset mnist5k` (or `dynlearn run
ntk-alignment ...`); `--quick` for a smoke run (1 epoch, width 16, digits, half and all of it).
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
from dynlearn import registry
from experiments._options import fraction, non_negative_int, positive, positive_int
from experiments._timing import markdown_table, write_results
from experiments.feedback_comparison import train_recipe

RULES = ["bp", "fa", "align-zero", "align-ada"]
HIDDEN_LAYERS = 2


def recipe(rule: str, sizes, seed: int, lazy_lr: float | None) -> dynlearn.Recipe:
    """The registered recipe, or the same learner under SGD at lr = lazy_lr / width."""
    learner, mode, batch_size = registry.load("rules", rule)(sizes, jax.random.key(seed))
    if lazy_lr is not None:
        mode = dynlearn.SettleThenUpdate(optax.sgd(lazy_lr / sizes[1]))
    return dynlearn.Recipe(learner, mode, batch_size)


def table(ds: xr.Dataset) -> str:
    optimiser = ds.attrs["optimiser"]
    lines = [
        f"{ds.attrs['dataset']}, {ds.attrs['sizes']} tanh, {ds.sizes['epoch']} epochs, "
        f"{optimiser}, {ds.sizes['seed']} seed(s): test accuracy % after the last epoch "
        "(mean ± std); angle(B_1, W_2^T) in degrees at the end",
        "",
    ]
    rows = []
    for share in ds.fraction.values:
        for width in ds.width.values:
            row = [f"{share:g}", str(int(width))]
            for rule in ds.rule.values:
                acc = 100 * ds.test_accuracy.sel(rule=rule, width=width, fraction=share)
                acc = acc.isel(epoch=-1).values
                angle = ds.angle_deg.sel(rule=rule, width=width, fraction=share, layer="B1")
                angle = float(angle.isel(epoch=-1).mean())
                text = f"{acc.mean():.2f} ± {acc.std():.2f}"
                row.append(text if np.isnan(angle) else f"{text} ({angle:.0f}°)")
            rows.append(row)
    return "\n".join(lines + markdown_table(["fraction", "width", *ds.rule.values], rows))


def plot(ds: xr.Dataset, path: Path) -> None:
    looks = dynlearn.plot.styles([str(r) for r in ds.rule.values])
    title = f"alignment rules by width ({ds.attrs['dataset']}, {ds.attrs['optimiser']})"
    final = dynlearn.plot.percent(ds.test_accuracy).isel(epoch=-1).mean("seed")
    with dynlearn.plot.figure(path, figsize=(4.2 * ds.sizes["fraction"], 3.4), title=title) as ax:
        grid = ax.figure.add_gridspec(1, ds.sizes["fraction"])
        ax.set_subplotspec(grid[0])
        axes = [ax] + [ax.figure.add_subplot(grid[k]) for k in range(1, ds.sizes["fraction"])]
        for axis, share in zip(axes, ds.fraction.values):
            for rule in ds.rule.values:
                values = final.sel(rule=rule, fraction=share).values
                axis.semilogx(ds.width.values, values, **looks[str(rule)], label=str(rule))
            axis.set(xlabel="width n", ylabel="test accuracy (%)", title=f"{share:g} of data")
        axes[0].legend(fontsize="small")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run ntk-alignment", description=__doc__)
    parser.add_argument(
        "--dataset",
        default=None,
        choices=["digits", "mnist5k", "mnist", "fashion_mnist"],
        help="default: mnist5k (quick: digits)",
    )
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0])
    parser.add_argument("--widths", type=positive_int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--fractions", type=fraction, nargs="+", default=[0.1, 1.0])
    known = sorted(registry.entries("rules"))
    parser.add_argument("--rules", nargs="+", default=RULES, help=f"registered: {known}")
    parser.add_argument(
        "--lazy-lr",
        type=positive,
        default=None,
        help="SGD at lr = c / width instead of Adam",
    )
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 epoch, 1 seed, width 16, digits"
    )
    opts = parser.parse_args(argv)
    dynlearn.check_writable(opts.run_dir or "runs", "--run-dir")
    unknown = sorted(set(opts.rules) - set(known))
    if unknown:
        parser.error(f"--rules: unknown {unknown}; registered: {known}")
    opts.dataset = opts.dataset or ("digits" if opts.quick else "mnist5k")
    if opts.quick:
        opts.epochs, opts.seeds, opts.widths, opts.fractions = 1, [0], [16], [0.5, 1.0]
    widths, fractions = sorted(set(opts.widths)), sorted(set(opts.fractions))
    shape = (len(opts.rules), len(fractions), len(widths), len(opts.seeds), opts.epochs)
    accuracy = np.full(shape, np.nan)
    angles = np.full(shape + (HIDDEN_LAYERS,), np.nan)
    for f, share in enumerate(fractions):
        data = dynlearn.data.load(opts.dataset, **({"fraction": share} if share < 1 else {}))
        n_in, n_out = data.n_features, data.n_classes
        for w, width in enumerate(widths):
            sizes = [n_in] + [width] * HIDDEN_LAYERS + [n_out]
            for r, rule in enumerate(opts.rules):
                for s, seed in enumerate(opts.seeds):
                    made = recipe(rule, sizes, seed, opts.lazy_lr)
                    acc, ang = train_recipe(made, data, opts.epochs, seed, HIDDEN_LAYERS)
                    accuracy[r, f, w, s], angles[r, f, w, s] = acc, ang
                    print(
                        f"{rule:>10} fraction {share:g} width {width} seed {seed}: "
                        f"{100 * acc[-1]:.2f}%  angles {np.round(ang[-1], 1).tolist()}",
                        flush=True,
                    )
    optimiser = "Adam 1e-3" if opts.lazy_lr is None else f"SGD lr {opts.lazy_lr:g}/n"
    ds = xr.Dataset(
        {
            "test_accuracy": (("rule", "fraction", "width", "seed", "epoch"), accuracy),
            "angle_deg": (("rule", "fraction", "width", "seed", "epoch", "layer"), angles),
        },
        coords={
            "rule": opts.rules,
            "fraction": fractions,
            "width": widths,
            "seed": opts.seeds,
            "epoch": np.arange(1, opts.epochs + 1),
            "layer": [f"B{k}" for k in range(1, HIDDEN_LAYERS + 1)],
        },
        attrs={"dataset": opts.dataset, "optimiser": optimiser, "sizes": f"{n_in}-n-n-{n_out}"},
    )
    ds = dynlearn.describe(
        ds,
        test_accuracy=("test accuracy after each epoch, fraction in [0, 1]", "1"),
        angle_deg=("angle between B_l and W_{l+1}^T after each epoch (NaN: none)", "degree"),
        fraction=("fraction of the training set used (stratified)", "1"),
        width=("units per hidden layer", "1"),
    )
    text = table(ds)
    run_dir = write_results(ds, text, opts.run_dir, "ntk_alignment")
    plot(ds, Path(run_dir) / "ntk_alignment.png")
    print(text)
    print(f"written to {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
