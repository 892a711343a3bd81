"""Experiment: feedback pathways compared — BP, FA, DFA, sign symmetry, Kolen-Pollack, PAL.

One architecture (Yin-Yang 4-64-64-3, mnist5k/mnist/fashion_mnist 784-100-100-10, tanh,
linear output, squared error), one budget (the same samples and epochs), several seeds:
- `bp`, `fa`, `dfa`, `sign`, `kp`: settle-then-update rate networks whose hidden errors
  travel through the pathway (`LENetwork.updates`), Adam 1e-3, batches of 32; Kolen-Pollack
  with weight decay 1e-3 per step;
- `le-bp`, `le-fa`, `pal`: always-on prospective (LE) networks streaming 16 parallel
  streams (t_pres 1 ms, dt 0.1 ms, eta 1 per ms, beta 0.1), with B = W^T, fixed random B,
  or B learned by PAL (sigma 0.03, eta 10, alpha 1e-4, tau_xi = tau_HP = 1 ms, tau_LO =
  100 ms; `--pal-sigma` etc. to change: sigma 0.1 aligns B faster but its noise, which also
  reaches the error compartments, costs accuracy) — plain always-on SGD-like learning.
Logged per epoch: test accuracy and the angle between each B_l and W_{l+1}^T (not defined
for DFA's direct matrices). Written to the run folder: `feedback_comparison.nc`, `.md`
(table) and `.png` (accuracy and alignment curves).

Run: `python -m experiments.feedback_comparison --dataset mnist5k` (or `dynlearn run
feedback-comparison ...`); `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.feedback import AbstractFeedback, KolenPollack, alignment_angles, by_name
from circuits.latent_equilibrium import LENetwork, always_on_rule, pathway_rule
from circuits.pal import PAL
from experiments._timing import quick_subset

RULES = ["bp", "fa", "dfa", "sign", "kp", "le-bp", "le-fa", "pal"]


PAL_SETTINGS = {"sigma": 0.03, "eta": 10.0, "alpha": 1e-4}


def make(rule: str, sizes, key) -> tuple[LENetwork, dict]:
    """The network of `rule` and its `fit` arguments (the registered rules' settings)."""
    k_net, k_fb = jax.random.split(key)
    if rule in ("le-bp", "le-fa", "pal"):
        if rule == "pal":
            feedback: AbstractFeedback = PAL(k_fb, **PAL_SETTINGS)
        else:
            feedback = by_name(rule.removeprefix("le-"), k_fb)
        return always_on_rule(sizes, k_net, feedback)
    feedback = KolenPollack(k_fb, weight_decay=1e-3) if rule == "kp" else by_name(rule, k_fb)
    return pathway_rule(feedback, sizes, k_net)


def train(rule: str, data, sizes, epochs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch: test accuracy, and angles (epoch, layer) (NaN for direct pathways)."""
    net, kwargs = make(rule, sizes, jax.random.key(seed))
    accuracy = np.full(epochs, np.nan)
    angles = np.full((epochs, len(sizes) - 2), np.nan)
    with tempfile.TemporaryDirectory() as run_dir:
        for epoch in range(1, epochs + 1):  # resume epoch by epoch: same run, angles logged
            result = dynlearn.fit(
                net,
                data,
                epochs=epoch,
                seed=seed,
                progress=False,
                run_dir=run_dir,
                resume=epoch > 1,
                **kwargs,
            )
            learned = result.learner
            accuracy[epoch - 1] = float(result.metrics.test_accuracy[-1])
            if not learned.feedback.direct:
                matrices = learned.feedback.matrices(learned.weights)
                angles[epoch - 1] = np.asarray(alignment_angles(matrices, learned.weights))
    return accuracy, angles


def table(ds: xr.Dataset) -> str:
    lines = [
        f"{ds.attrs['dataset']}, {ds.attrs['sizes']}, {ds.sizes['epoch']} epochs, "
        f"{ds.sizes['seed']} seed(s): test accuracy % after the last epoch (mean ± std) and "
        "the final angle(B_l, W_{l+1}^T) per hidden layer",
        "",
        "| rule | accuracy | angles (deg) | seconds |",
        "| --- | --- | --- | --- |",
    ]
    for rule in ds.rule.values:
        acc = 100 * ds.test_accuracy.sel(rule=rule).isel(epoch=-1).values
        ang = ds.angle_deg.sel(rule=rule).isel(epoch=-1).mean("seed").values
        ang_text = "—" if np.all(np.isnan(ang)) else ", ".join(f"{a:.1f}" for a in ang)
        seconds = float(ds.seconds.sel(rule=rule).sum())
        lines.append(
            f"| {rule} | {acc.mean():.2f} ± {acc.std():.2f} | {ang_text} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run feedback-comparison", description=__doc__)
    parser.add_argument(
        "--dataset", default="mnist5k", choices=["yinyang", "mnist5k", "mnist", "fashion_mnist"]
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rules", nargs="+", default=RULES, choices=RULES)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 seed, 960 samples")
    for name, value in PAL_SETTINGS.items():
        parser.add_argument(f"--pal-{name}", type=float, default=value, help=f"PAL's {name}")
    opts = parser.parse_args(argv)
    PAL_SETTINGS.update({name: getattr(opts, f"pal_{name}") for name in PAL_SETTINGS})
    data = dynlearn.data.load(opts.dataset, **quick_subset(opts.dataset, opts.quick))
    epochs, seeds = (2, [0]) if opts.quick else (opts.epochs, opts.seeds)
    hidden = 64 if opts.dataset == "yinyang" else 100
    sizes = [data.n_features, hidden, hidden, data.n_classes]
    shape = (len(opts.rules), len(seeds))
    accuracy, angles = np.zeros(shape + (epochs,)), np.zeros(shape + (epochs, len(sizes) - 2))
    seconds = np.zeros(shape)
    for i, rule in enumerate(opts.rules):
        for j, seed in enumerate(seeds):
            tic = time.perf_counter()
            accuracy[i, j], angles[i, j] = train(rule, data, sizes, epochs, seed)
            seconds[i, j] = time.perf_counter() - tic
            print(
                f"{rule} seed {seed}: {np.round(100 * accuracy[i, j], 2)} ({seconds[i, j]:.0f} s)"
            )
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
        attrs={"dataset": opts.dataset, "sizes": "-".join(map(str, sizes))},
    )
    run_dir = opts.run_dir or dynlearn.cli.run_folder(Path("runs"), "feedback-comparison")
    dynlearn.save_netcdf(ds, Path(run_dir) / "feedback_comparison.nc")
    text = table(ds)
    (Path(run_dir) / "feedback_comparison.md").write_text(text + "\n")
    with dynlearn.plot.figure(Path(run_dir) / "feedback_comparison.png", figsize=(9, 3.4)) as ax:
        fig = ax.figure
        ax2 = fig.add_subplot(1, 2, 2)
        ax.set_position([0.08, 0.15, 0.38, 0.75])
        for k, rule in enumerate(ds.rule.values):
            ax.plot(ds.epoch, 100 * ds.test_accuracy.sel(rule=rule).mean("seed"), label=rule)
            angle = ds.angle_deg.sel(rule=rule, layer="B1").mean("seed")
            if np.isfinite(angle).any():
                ax2.plot(ds.epoch, angle, color=f"C{k}", label=rule)
        ax.set(xlabel="epoch", ylabel=f"test accuracy % ({opts.dataset})")
        ax2.set(xlabel="epoch", ylabel="angle(B1, W2^T) (deg)", ylim=(0, 100))
        ax.legend(fontsize="small")
    print(text)
    print(f"written to {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
