"""Experiment: feedback learned by alignment rules vs fixed random feedback and BP, by depth.

Kunin et al. 2020 (ICML) find that local alignment rules (weight mirror, information
alignment) are sensitive to their metaparameters and that their gap to backprop widens with
depth, while non-local "weight estimation" rules (symmetric alignment) keep up with it.
This runs that comparison on our pathways (`circuits.alignment`, `circuits.feedback`):

- rules (registered, `dynlearn.rules`): `bp`, `fa` (fixed random B), `wm` (weight mirror
  from noise), `ia` (information alignment), `sa` (symmetric alignment), `kp`
  (Kolen-Pollack); all tanh rate networks with a linear output on the squared error, Adam
  1e-3, batches of 32 (`circuits.feedback_mlp.pathway_rule`), so only the pathway differs;
- depths: `--depths` hidden layers of `--hidden` units each (default 2 3 4 5 6 x 100);
- a metaparameter grid of information alignment (`--ia-nulls` x `--ia-decays`) at the
  shallowest and the deepest depth: does the best setting transfer across depth?

Logged after every epoch: test accuracy and the angle between each B_l and W_{l+1}^T.
Written to the run folder: `alignment_rules.nc`, `.md` (tables), `.png` (accuracy against
depth; angle of B_1 over epochs at the deepest depth) and `alignment_rules_angles.png` (every
layer's angle over epochs at the deepest depth, one panel per rule).

Run: `python -m experiments.alignment_rules --dataset mnist5k` (or `dynlearn run
alignment-rules ...`); `--quick` for a smoke run (1 epoch, 2 hidden layers of 16 units, a
small Yin-Yang set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.alignment import InformationAlignment
from circuits.feedback_mlp import pathway_rule
from dynlearn import registry
from experiments._options import non_negative, non_negative_int, positive_int
from experiments._timing import markdown_table, quick_subset, write_results
from experiments.feedback_comparison import train_recipe

RULES = ["bp", "fa", "wm", "ia", "sa", "kp"]


def information_alignment(null: float, decay: float):
    """A rule factory `(sizes, key) -> Recipe` for IA with these metaparameters."""

    def make(sizes, key):
        k_net, k_fb = jax.random.split(key)
        return pathway_rule(InformationAlignment(k_fb, null=null, decay=decay), sizes, k_net)

    return make


def run_cells(cells, data, sizes_of, depths, epochs, seeds):
    """Accuracy `(cell, depth, seed, epoch)` and angles `(..., layer)` (NaN-padded) of
    `cells`, a list of `(name, factory)`; each run is reported as it finishes."""
    max_hidden = max(depths)
    accuracy = np.full((len(cells), len(depths), len(seeds), epochs), np.nan)
    angles = np.full(accuracy.shape + (max_hidden,), np.nan)
    for c, (name, factory) in enumerate(cells):
        for d, depth in enumerate(depths):
            for s, seed in enumerate(seeds):
                recipe = factory(sizes_of(depth), jax.random.key(seed))
                acc, ang = train_recipe(recipe, data, epochs, seed, depth)
                accuracy[c, d, s], angles[c, d, s, :, :depth] = acc, ang
                print(
                    f"{name:>14} depth {depth} seed {seed}: {100 * acc[-1]:.2f}%  "
                    f"angles {np.round(ang[-1], 1).tolist()}",
                    flush=True,
                )
    return accuracy, angles


def tables(ds: xr.Dataset) -> str:
    seeds = ds.sizes["seed"]
    head = (
        f"{ds.attrs['dataset']}, {ds.attrs['hidden']} units per hidden layer, "
        f"{ds.sizes['epoch']} epochs, {seeds} seed(s): test accuracy % after the last epoch"
    )
    depths = [int(d) for d in ds.depth.values]
    rows = []
    for rule in ds.rule.values:
        acc = 100 * ds.test_accuracy.sel(rule=rule).isel(epoch=-1)
        rows.append([rule] + [f"{float(acc.sel(depth=d).mean()):.2f}" for d in depths])
    lines = [head, ""] + markdown_table(["rule"] + [f"{d} hidden" for d in depths], rows)
    lines += ["", "Final angle(B_l, W_{l+1}^T) (degree) per hidden layer, deepest network:", ""]
    rows = []
    for rule in ds.rule.values:
        ang = ds.angle_deg.sel(rule=rule, depth=depths[-1]).isel(epoch=-1).mean("seed").values
        text = "—" if np.all(np.isnan(ang)) else ", ".join(f"{a:.1f}" for a in ang)
        rows.append([rule, text])
    lines += markdown_table(["rule", "angles"], rows)
    if "grid_accuracy" in ds:
        lines += ["", "Information alignment, metaparameter grid (accuracy %):", ""]
        rows = []
        for null in ds.ia_null.values:
            for decay in ds.ia_decay.values:
                acc = 100 * ds.grid_accuracy.sel(ia_null=null, ia_decay=decay).isel(epoch=-1)
                rows.append(
                    [f"{null:g}", f"{decay:g}"]
                    + [f"{float(acc.sel(grid_depth=d).mean()):.2f}" for d in ds.grid_depth.values]
                )
        columns = ["null", "decay"] + [f"{int(d)} hidden" for d in ds.grid_depth.values]
        lines += markdown_table(columns, rows)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run alignment-rules", description=__doc__)
    parser.add_argument(
        "--dataset",
        default=None,
        choices=["yinyang", "mnist5k", "mnist", "fashion_mnist"],
        help="default: mnist5k (quick: yinyang)",
    )
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0])
    parser.add_argument("--depths", type=positive_int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--hidden", type=positive_int, default=100)
    known = sorted(registry.entries("rules"))
    parser.add_argument("--rules", nargs="+", default=RULES, help=f"registered: {known}")
    parser.add_argument("--ia-nulls", type=non_negative, nargs="*", default=[0.5, 1.0])
    parser.add_argument("--ia-decays", type=non_negative, nargs="*", default=[0.01, 0.1, 1.0])
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 epoch, 1 seed, 2 hidden layers of 16 units, 960 Yin-Yang samples "
        "(unless --dataset: then 20%% of its training set), one cell of the grid",
    )
    opts = parser.parse_args(argv)
    dynlearn.check_writable(opts.run_dir or "runs", "--run-dir")
    unknown = sorted(set(opts.rules) - set(known))
    if unknown:
        parser.error(f"--rules: unknown {unknown}; registered: {known}")
    opts.dataset = opts.dataset or ("yinyang" if opts.quick else "mnist5k")
    data = dynlearn.data.load(opts.dataset, **quick_subset(opts.dataset, opts.quick))
    if opts.quick:
        opts.epochs, opts.seeds, opts.depths, opts.hidden = 1, [0], [2], 16
        opts.ia_nulls, opts.ia_decays = [1.0], [0.1]
    depths = sorted(set(opts.depths))

    def sizes_of(depth):
        return [data.n_features] + [opts.hidden] * depth + [data.n_classes]

    cells = [(rule, registry.load("rules", rule)) for rule in opts.rules]
    accuracy, angles = run_cells(cells, data, sizes_of, depths, opts.epochs, opts.seeds)
    variables = {
        "test_accuracy": (("rule", "depth", "seed", "epoch"), accuracy),
        "angle_deg": (("rule", "depth", "seed", "epoch", "layer"), angles),
    }
    coords = {
        "rule": opts.rules,
        "depth": depths,
        "seed": opts.seeds,
        "epoch": np.arange(1, opts.epochs + 1),
        "layer": [f"B{k}" for k in range(1, max(depths) + 1)],
    }
    grid = [(null, decay) for null in opts.ia_nulls for decay in opts.ia_decays]
    if grid:
        grid_depths = sorted({depths[0], depths[-1]})
        grid_cells = [(f"ia {n:g}/{d:g}", information_alignment(n, d)) for n, d in grid]
        grid_accuracy, _ = run_cells(
            grid_cells, data, sizes_of, grid_depths, opts.epochs, opts.seeds
        )
        shape = (len(opts.ia_nulls), len(opts.ia_decays)) + grid_accuracy.shape[1:]
        variables["grid_accuracy"] = (
            ("ia_null", "ia_decay", "grid_depth", "seed", "epoch"),
            grid_accuracy.reshape(shape),
        )
        coords |= {"ia_null": opts.ia_nulls, "ia_decay": opts.ia_decays}
        coords["grid_depth"] = grid_depths
    ds = xr.Dataset(
        variables, coords=coords, attrs={"dataset": opts.dataset, "hidden": opts.hidden}
    )
    described = {
        "test_accuracy": ("test accuracy after each epoch, fraction in [0, 1]", "1"),
        "angle_deg": (
            "angle between B_l and W_{l+1}^T after each epoch (NaN without a pathway, or "
            "beyond the network's depth)",
            "degree",
        ),
    }
    if grid:
        described["grid_accuracy"] = (
            "test accuracy of information alignment with metaparameters (null, decay)",
            "1",
        )
    ds = dynlearn.describe(ds, **described)
    ds.layer.attrs["long_name"] = "feedback matrix B_l (to hidden layer l)"
    ds.depth.attrs["long_name"] = "number of hidden layers"
    text = tables(ds)
    run_dir = write_results(ds, text, opts.run_dir, "alignment_rules")
    plot(ds, Path(run_dir) / "alignment_rules.png")
    plot_angles(ds, Path(run_dir) / "alignment_rules_angles.png")
    print(text)
    print(f"written to {run_dir}")
    return 0


def plot(ds: xr.Dataset, path: Path) -> None:
    """Accuracy against depth; angle of B_1 over epochs in the deepest network."""
    looks = dynlearn.plot.styles(sorted(set(RULES) | set(ds.rule.values)))
    deepest = int(ds.depth.values[-1])
    title = f"alignment rules ({ds.attrs['dataset']}, {ds.attrs['hidden']} units per layer)"
    with dynlearn.plot.figure(path, figsize=(10, 3.6), title=title) as ax:
        grid = ax.figure.add_gridspec(1, 2)
        ax.set_subplotspec(grid[0])
        ax2 = ax.figure.add_subplot(grid[1])
        final = dynlearn.plot.percent(ds.test_accuracy).isel(epoch=-1).mean("seed")
        for rule in ds.rule.values:
            ax.plot(ds.depth.values, final.sel(rule=rule).values, **looks[rule], label=rule)
            angle = ds.angle_deg.sel(rule=rule, depth=deepest, layer="B1").mean("seed").values
            if np.isfinite(angle).any():
                ax2.plot(ds.epoch.values, angle, **looks[rule], label=rule)
        ax2.axhline(90.0, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="hidden layers", ylabel="test accuracy (%)")
        ax2.set(
            xlabel="epoch",
            ylabel="angle(B1, W2^T) (degree)",
            title=f"first hidden layer, {deepest} hidden layers (90 = unaligned)",
        )
        ax2.set_ylim(bottom=0)
        ax.legend(fontsize="small")


def plot_angles(ds: xr.Dataset, path: Path) -> None:
    """Angle(B_l, W_{l+1}^T) of every hidden layer over epochs in the deepest network, one
    panel per rule with a pathway."""
    deepest = int(ds.depth.values[-1])
    angles = ds.angle_deg.sel(depth=deepest).mean("seed")
    rules = [r for r in ds.rule.values if np.isfinite(angles.sel(rule=r)).any()]
    if not rules:
        return
    title = f"angle(B_l, W_(l+1)^T) per hidden layer, {deepest} hidden layers (90 = unaligned)"
    with dynlearn.plot.figure(path, figsize=(3.2 * len(rules), 3.2), title=None) as ax:
        grid = ax.figure.add_gridspec(1, len(rules))
        ax.set_subplotspec(grid[0])
        axes = [ax] + [ax.figure.add_subplot(grid[k], sharey=ax) for k in range(1, len(rules))]
        ax.figure.suptitle(title)
        for axis, rule in zip(axes, rules):
            for layer in angles.layer.values[:deepest]:
                angle = angles.sel(rule=rule, layer=layer)
                axis.plot(ds.epoch.values, angle, marker=".", label=str(layer))
            axis.set(title=str(rule), xlabel="epoch", ylabel="angle (degree)")
            axis.set_ylim(0, 100)
        axes[-1].legend(fontsize="x-small")


if __name__ == "__main__":
    sys.exit(main())
