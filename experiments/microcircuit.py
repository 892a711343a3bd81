"""Experiment: the dendritic microcircuit, always-on, with and without prospective rates.

Rules, same architecture (one hidden layer: Yin-Yang 4-64-3 tanh, mnist5k/mnist 784-100-10
logistic), same samples and epochs:
- `mc-le-fa`: prospective microcircuit, fixed random feedback (Sacramento et al. 2018's B);
- `mc-le-bp`: prospective microcircuit, B = W^T;
- `mc-ordinary-fa`: ordinary (non-prospective) rates, same presentation time;
- `bp-sgd`, `bp-adam`: backprop on the plain MLP (squared error; SGD 0.1 or Adam 1e-3).
Microcircuits start in the self-predicting state, see each sample for t_pres = 2 ms (Euler
dt = 0.1 ms) in 16 parallel streams, and learn always-on with the default rates; BP uses
batches of 16. Written to the run folder: `microcircuit.nc` (test accuracy by rule, seed,
epoch), `microcircuit.md` (table) and `microcircuit.png` (learning curves). A run that
diverges keeps its finished epochs and is marked in the table.

Run: `python -m experiments.microcircuit --dataset mnist5k` (or `dynlearn run
microcircuit ...`); `--quick` for a smoke run (1 epoch, 1 seed, Yin-Yang with 960 training
samples unless `--dataset`: then 20% of its training set).
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
from circuits.feedback import WeightTransport
from circuits.microcircuit import Microcircuit, self_predicting
from experiments._options import non_negative_int, positive_int
from experiments._timing import each_rule_and_seed, markdown_table, quick_subset, write_results

RULES = ["mc-le-fa", "mc-le-bp", "mc-ordinary-fa", "bp-sgd", "bp-adam"]
STREAMS = 16


def train(rule: str, data, sizes, activation: str, epochs: int, seed: int) -> np.ndarray:
    """Test accuracy per epoch (NaN after a divergence)."""
    key = jax.random.key(seed)
    if rule.startswith("bp"):
        net = BackpropMLP(sizes, key, activation=activation, loss=SquaredError())
        optimizer = optax.sgd(0.1) if rule == "bp-sgd" else optax.adam(1e-3)
        mode, batch_size = dynlearn.SettleThenUpdate(optimizer), STREAMS
    else:
        net = Microcircuit(
            sizes,
            key,
            activation=activation,
            prospective="-le-" in rule,
            feedback=WeightTransport() if rule.endswith("-bp") else None,
            dt=0.1,
        )
        net = self_predicting(net)
        presentation = dynlearn.Presentation(t_pres=2.0, dt=0.1, streams=STREAMS)
        mode, batch_size = dynlearn.AlwaysOn(presentation), 20 * STREAMS
    return dynlearn.accuracy_curve(net, data, mode, epochs=epochs, seed=seed, batch_size=batch_size)


def table(ds: xr.Dataset) -> str:
    lines = [
        f"{ds.attrs['dataset']}, {ds.sizes['epoch']} epochs, {ds.sizes['seed']} seed(s): "
        "test accuracy % after the last epoch (mean ± std over seeds)",
        "",
    ]
    rows = []
    for rule in ds.rule.values:
        acc = ds.test_accuracy.sel(rule=rule)
        last = 100 * acc.isel(epoch=-1).values
        note = "" if np.all(np.isfinite(last)) else " (diverged)"
        best = 100 * float(acc.mean("seed").max())
        last = np.nan_to_num(last, nan=100 / ds.attrs["n_classes"])
        accuracy = f"{last.mean():.2f} ± {last.std():.2f}{note}"
        rows.append(
            [rule, accuracy, f"{best:.2f}", f"{float(ds.seconds.sel(rule=rule).sum()):.0f}"]
        )
    return "\n".join(lines + markdown_table(["rule", "accuracy", "best epoch", "seconds"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run microcircuit", description=__doc__)
    parser.add_argument(
        "--dataset",
        default=None,
        choices=["yinyang", "mnist5k", "mnist"],
        help="default: mnist5k (quick: yinyang)",
    )
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rules", nargs="+", default=RULES, choices=RULES)
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 epoch, 1 seed, a small training set (960 Yin-Yang samples unless "
        "--dataset, else 20%% of its training set)",
    )
    opts = parser.parse_args(argv)
    dynlearn.check_writable(opts.run_dir or "runs", "--run-dir")
    opts.dataset = opts.dataset or ("yinyang" if opts.quick else "mnist5k")
    data = dynlearn.data.load(opts.dataset, **quick_subset(opts.dataset, opts.quick))
    epochs, seeds = (1, [0]) if opts.quick else (opts.epochs, opts.seeds)
    yinyang = opts.dataset == "yinyang"
    sizes = [data.n_features, 64 if yinyang else 100, data.n_classes]
    activation = "tanh" if yinyang else "sigmoid"
    curves, seconds = each_rule_and_seed(
        opts.rules, seeds, lambda rule, seed: train(rule, data, sizes, activation, epochs, seed)
    )
    ds = xr.Dataset(
        {
            "test_accuracy": (("rule", "seed", "epoch"), np.asarray(curves)),
            "seconds": (("rule", "seed"), seconds),
        },
        coords={"rule": opts.rules, "seed": seeds, "epoch": np.arange(1, epochs + 1)},
        attrs={
            "dataset": opts.dataset,
            "n_classes": data.n_classes,
            "sizes": "-".join(map(str, sizes)),
            "activation": activation,
        },
    )
    ds = dynlearn.describe(
        ds,
        test_accuracy=(
            "test accuracy after each epoch (NaN after a divergence), fraction in [0, 1]",
            "1",
        ),
        seconds=("wall-clock time of the run (compilation, training and evaluation)", "s"),
    )
    text = table(ds)
    run_dir = write_results(ds, text, opts.run_dir, "microcircuit")
    looks = dynlearn.plot.styles(sorted(RULES))  # the same look for a rule in every figure
    over = f"mean over {len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    title = f"microcircuit vs BP: {ds.attrs['sizes']} {activation} on {opts.dataset}\n{over}"
    with dynlearn.plot.figure(
        Path(run_dir) / "microcircuit.png", figsize=(6.4, 3.6), title=title
    ) as ax:
        accuracy = dynlearn.plot.percent(ds.test_accuracy).mean("seed")
        for rule in ds.rule.values:
            ax.plot(ds.epoch.values, accuracy.sel(rule=rule).values, **looks[rule], label=rule)
        ax.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax.legend(fontsize="small")
    print(text)
    print(f"written to {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
