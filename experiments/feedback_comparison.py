"""Experiment: feedback pathways compared — BP, FA, DFA, sign symmetry, Kolen-Pollack, PAL.

One architecture (Yin-Yang 4-64-64-3, mnist5k/mnist/fashion_mnist 784-100-100-10; `--hidden
H` for two hidden layers of H units), one budget (the same samples and epochs), several
seeds; each rule is the registered one (`dynlearn.rules`, any registered name is accepted in
`--rules`), with its own learner, mode and batch size:
- `bp`: backprop through a tanh MLP on the squared error, Adam 1e-3, batches of 32;
- `fa`, `dfa`, `sign`, `kp`: settle-then-update tanh rate networks (linear output, squared
  error) whose hidden errors travel through the pathway (`circuits.feedback_mlp`), Adam
  1e-3, batches of 32; Kolen-Pollack with weight decay 1e-3 per step;
- `le`, `le-fa`, `pal`: always-on prospective (LE) networks streaming 16 parallel streams
  (t_pres 1 ms, dt 0.1 ms, eta 1 per ms, beta 0.1), with B = W^T, fixed random B, or B
  learned by PAL (sigma 0.1, eta 0.9, alpha 1.1e-3, tau_xi = tau_HP = 1 ms; the exploration
  noise perturbs the rates but is not sent down as an error; `--pal-sigma` etc. to change)
  — each forward rate divided by its postsynaptic neuron's running RMS and every rate
  annealed as 1/(1 + n/8000) (the registered rules: `circuits.latent_equilibrium.le_rule`);
  `--forward-plasticity` (or `synapse`) normalises per synapse instead (the microcircuit's
  forward plasticity), `--forward-plasticity constant` keeps the circuit's own constant
  rates (the LE and PAL papers'); `--le-eta` and `--le-n0` set their forward rate and the
  annealed gain's n_0 (with constant rates: a gain 1/(1 + n/N0), default none).
`--validation` scores on the last 20% of the training set instead of the test set (for
choosing settings; the dataset is then named `<name>-validation`).
Logged after every epoch (`fit(..., on_epoch=...)`): held-out accuracy and the angle between
each B_l and W_{l+1}^T (NaN for learners without a feedback pathway, such as `bp`, and for
DFA's direct matrices). Written to the run folder: `feedback_comparison.nc`, `.md` (table)
and `.png` (accuracy and alignment curves).

Run: `python -m experiments.feedback_comparison --dataset mnist5k` (or `dynlearn run
feedback-comparison ...`); `--quick` for a smoke run (2 epochs, 1 seed, Yin-Yang with 960
training samples unless `--dataset`: then 20% of its training set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.feedback import alignment_angles
from circuits.latent_equilibrium import FORWARD, LE_KINDS, PAL_SETTINGS, le_rule
from dynlearn import registry
from experiments._options import non_negative, non_negative_int, positive, positive_int
from experiments._timing import (
    each_rule_and_seed,
    markdown_table,
    quick_subset,
    quiet_fit,
    write_results,
)

RULES = ["bp", "fa", "dfa", "sign", "kp", "le", "le-fa", "pal"]


def make(
    rule: str,
    sizes,
    key,
    pal: dict | None = None,
    forward_plasticity: str | None = None,
    le: dict | None = None,
) -> dynlearn.Recipe:
    """The registered rule `rule` (learner, mode, batch size); for the LE rules, `pal`
    overrides PAL's settings (`circuits.latent_equilibrium.PAL_SETTINGS`) of rule `pal`,
    `le` passes `always_on_rule`'s options (`eta`, `n_0`), and `forward_plasticity` sets
    how their forward synapses learn (`le_rule`'s `forward`: None, the registered rules'
    `"neuron"`; `"synapse"` or True; `"constant"`)."""
    if rule not in LE_KINDS:
        return registry.load("rules", rule)(sizes, key)
    forward = "synapse" if forward_plasticity is True else forward_plasticity or "neuron"
    return le_rule(rule, sizes, key, pal, forward, **(le or {}))


def feedback_angles(learner, n_hidden: int) -> np.ndarray:
    """Angle(B_l, W_{l+1}^T) in degrees per hidden layer; NaN for a learner without a
    feedback pathway or with a direct one (DFA)."""
    pathway = getattr(learner, "feedback", None)
    if pathway is None or pathway.direct:
        return np.full(n_hidden, np.nan)
    matrices = pathway.matrices(learner.weights)
    return np.asarray(alignment_angles(matrices, learner.weights))


def train(
    rule: str,
    data,
    sizes,
    epochs: int,
    seed: int,
    pal: dict | None = None,
    forward_plasticity: str | None = None,
    le: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch: held-out accuracy, and angles (epoch, layer) (NaN where undefined)."""
    recipe = make(rule, sizes, jax.random.key(seed), pal, forward_plasticity, le)
    return train_recipe(recipe, data, epochs, seed, len(sizes) - 2)


def train_recipe(
    recipe: dynlearn.Recipe, data, epochs: int, seed: int, n_hidden: int
) -> tuple[np.ndarray, np.ndarray]:
    """`train` for any recipe (learner, mode, batch size) with `n_hidden` hidden layers."""
    learner, mode, batch_size = recipe
    accuracy = np.full(epochs, np.nan)
    angles = np.full((epochs, n_hidden), np.nan)

    def log(epoch: int, learned, row: dict) -> None:
        accuracy[epoch - 1] = row["test_accuracy"]
        angles[epoch - 1] = feedback_angles(learned, n_hidden)

    quiet_fit(learner, data, mode, epochs=epochs, batch_size=batch_size, seed=seed, on_epoch=log)
    return accuracy, angles


def table(ds: xr.Dataset) -> str:
    split = "validation" if str(ds.attrs["dataset"]).endswith("-validation") else "test"
    lines = [
        f"{ds.attrs['dataset']}, {ds.attrs['sizes']}, {ds.sizes['epoch']} epochs, "
        f"{ds.sizes['seed']} seed(s): {split} accuracy % after the last epoch (mean ± std) and "
        "the final angle(B_l, W_{l+1}^T) per hidden layer"
        + (
            f"; le, le-fa, pal with forward plasticity '{option}'"
            if (option := ds.attrs.get("forward_plasticity", "neuron")) != "neuron"
            else ""
        ),
        "",
    ]
    rows = []
    for rule in ds.rule.values:
        acc = 100 * ds.test_accuracy.sel(rule=rule).isel(epoch=-1).values
        ang = ds.angle_deg.sel(rule=rule).isel(epoch=-1).mean("seed").values
        ang_text = "—" if np.all(np.isnan(ang)) else ", ".join(f"{a:.1f}" for a in ang)
        seconds = f"{float(ds.seconds.sel(rule=rule).sum()):.0f}"
        rows.append([rule, f"{acc.mean():.2f} ± {acc.std():.2f}", ang_text, seconds])
    columns = ["rule", "accuracy", "angles (deg)", "seconds"]
    return "\n".join(lines + markdown_table(columns, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run feedback-comparison", description=__doc__)
    parser.add_argument(
        "--dataset",
        default=None,
        choices=["yinyang", "mnist5k", "mnist", "fashion_mnist"],
        help="default: mnist5k (quick: yinyang)",
    )
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--hidden", type=positive_int, default=None, help="units per hidden layer (default 100)"
    )
    known = sorted(registry.entries("rules"))
    parser.add_argument("--rules", nargs="+", default=RULES, help=f"registered: {known}")
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 epochs, 1 seed, a small training set (960 Yin-Yang samples unless "
        "--dataset, else 20%% of its training set)",
    )
    for name, value in PAL_SETTINGS.items():
        parser.add_argument(f"--pal-{name}", type=non_negative, default=value, help=f"PAL's {name}")
    parser.add_argument(
        "--forward-plasticity",
        nargs="?",
        const="synapse",
        default="neuron",
        choices=FORWARD,
        help="le, le-fa, pal: forward rates RMS-normalised per neuron (the registered rules), "
        "per synapse (the flag alone) or constant; annealed with n_0 8000 unless constant",
    )
    parser.add_argument(
        "--le-eta", type=positive, default=1.0, help="le, le-fa, pal: forward rate per ms"
    )
    parser.add_argument(
        "--le-n0",
        type=positive,
        default=None,
        help="le, le-fa, pal: every rate annealed as 1/(1 + n/N0) (default: constant)",
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="score on a validation split (the last 20%% of the training set) instead of "
        "the test set: for choosing settings",
    )
    opts = parser.parse_args(argv)
    dynlearn.check_writable(opts.run_dir or "runs", "--run-dir")
    unknown = sorted(set(opts.rules) - set(known))
    if unknown:
        parser.error(f"--rules: unknown {unknown}; registered: {known}")
    pal = {name: getattr(opts, f"pal_{name}") for name in PAL_SETTINGS}
    opts.dataset = opts.dataset or ("yinyang" if opts.quick else "mnist5k")
    data = dynlearn.data.load(opts.dataset, **quick_subset(opts.dataset, opts.quick))
    if opts.validation:
        data = data.validation_split(0.2)
    le = {"eta": opts.le_eta, "n_0": opts.le_n0}
    epochs, seeds = (2, [0]) if opts.quick else (opts.epochs, opts.seeds)
    hidden = opts.hidden or (64 if opts.dataset == "yinyang" else 100)
    sizes = [data.n_features, hidden, hidden, data.n_classes]
    results, seconds = each_rule_and_seed(
        opts.rules,
        seeds,
        lambda rule, seed: train(rule, data, sizes, epochs, seed, pal, opts.forward_plasticity, le),
    )
    accuracy = np.array([[r[0] for r in row] for row in results])
    angles = np.array([[r[1] for r in row] for row in results])
    ds = xr.Dataset(
        {
            "test_accuracy": (("rule", "seed", "epoch"), accuracy),
            "angle_deg": (("rule", "seed", "epoch", "layer"), angles),
            "seconds": (("rule", "seed"), seconds),
        },
        coords={
            "rule": opts.rules,
            "seed": seeds,
            "epoch": np.arange(1, epochs + 1),
            "layer": [f"B{k}" for k in range(1, len(sizes) - 1)],
        },
        attrs={"dataset": data.name, "sizes": "-".join(map(str, sizes))}
        | {f"pal_{name}": value for name, value in pal.items()}
        | {"forward_plasticity": opts.forward_plasticity, "le_eta": opts.le_eta}
        | {"le_n0": 0.0 if opts.le_n0 is None else opts.le_n0},
    )
    ds = dynlearn.describe(
        ds,
        test_accuracy=(
            "accuracy on the held-out split after each epoch (the test set, or the "
            "validation split for a dataset named *-validation), fraction in [0, 1]",
            "1",
        ),
        angle_deg=(
            "angle between the feedback matrix B_l and W_{l+1}^T after each epoch (NaN "
            "without a feedback pathway or for direct feedback)",
            "degree",
        ),
        seconds=("wall-clock time of the run (compilation, training and evaluation)", "s"),
    )
    ds.layer.attrs["long_name"] = "feedback matrix B_l (to hidden layer l)"  # a label: no units
    text = table(ds)
    run_dir = write_results(ds, text, opts.run_dir, "feedback_comparison")
    looks = dynlearn.plot.styles(sorted(set(RULES) | set(opts.rules)))  # same look everywhere
    over = f"mean over {len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    path = Path(run_dir) / "feedback_comparison.png"
    title = f"test accuracy ({opts.dataset}, {ds.attrs['sizes']}, {over})"
    with dynlearn.plot.figure(path, figsize=(10, 3.6), title=title) as ax:
        grid = ax.figure.add_gridspec(1, 2)
        ax.set_subplotspec(grid[0])
        ax2 = ax.figure.add_subplot(grid[1])
        accuracy = dynlearn.plot.percent(ds.test_accuracy).mean("seed")
        angles = ds.angle_deg.sel(layer="B1").mean("seed")
        for rule in ds.rule.values:
            ax.plot(ds.epoch.values, accuracy.sel(rule=rule).values, **looks[rule], label=rule)
            angle = angles.sel(rule=rule).values
            if np.isfinite(angle).any():
                ax2.plot(ds.epoch.values, angle, **looks[rule], label=rule)
        ax2.axhline(90.0, color="grey", lw=0.8, ls=":")  # unaligned
        ax.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax2.set(
            xlabel="epoch",
            ylabel="angle(B1, W2^T) (degree)",
            title=f"feedback alignment, first hidden layer (90 = unaligned; {over})",
        )
        ax2.set_ylim(bottom=0)
        ax.legend(fontsize="small")  # every rule; the right panel's lines look the same
    print(text)
    print(f"written to {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
