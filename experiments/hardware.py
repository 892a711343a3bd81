"""Experiment: learning rules on analog compute-in-memory devices, gradual pruning, cost.

1. presets: every rule (default: all registered) trained from scratch as it is ("none") and
   with its forward weights on each device of `dynlearn.hardware.PRESETS` (`--presets`
   picks some of them; ideal: linear,
   continuous and noiseless, but its range of +-2 max|W(0)| clips; Ag:a-Si RRAM after
   DNN+NeuroSim, written with nearest and with stochastic rounding of the pulse counts; an
   aihwkit-like soft-bounds device), same seeds and samples, test accuracy
   after every epoch: does backprop stay the most accurate under non-idealities? An
   always-on rule trains once for both RRAM columns (the rounding mode applies to
   settle-then-update's writes only: `dynlearn.hardware.same_always_on_training`; the
   stochastic cell says so in its attr `same_training_as`).
2. sweeps (`--sweep-rules`): the RRAM device (with stochastic rounding, so that updates
   under half a pulse are not all lost) with its levels (both directions) swept, and with
   its cycle-to-cycle noise swept: final accuracy per value.
3. pruning (`--prune-rules`, `--sparsity`, default 90%): one-shot global magnitude pruning
   of the trained network re-trained `--retrain-epochs`, against gradual pruning during
   training (`dynlearn.GradualPruning`, Zhu & Gupta's cubic schedule to 75% of the
   updates), each without and with a minimum of `--min-per-layer` weights kept per matrix
   (Gupta et al.); accuracy and the weights left in the smallest matrix.
4. ablation (`--ablation-rules`, default le): the RRAM device with one non-ideality removed
   at a time (no c2c noise; the LTD nonlinearity made equal to the LTP one; linear
   curves; linear without c2c): which of them costs what.
5. inertia (`--inertia-rules`, always-on rules only; `--momentum`, default 0.9): the rule
   with its forward weights moving through a velocity that low-pass filters their rates
   (`dynlearn.Inertia`, matched to SGD momentum by `dynlearn.AlwaysOn.with_momentum`;
   `--inertia-scope trainable` gives every plastic leaf one), without a device and on the
   RRAM and soft-bounds devices: does averaging the rates before they drive the pulses
   undo the saturating devices' decay (`OnDevice.drift`)?
6. cost: `dynlearn.hardware.training_cost` of one update for each way of assigning credit,
   784-100-...-10 with 2 to 6 weight layers: is DFA's update ~N times faster than
   backprop's for N layers?

Resumable: each finished cell (rule x part) is written atomically to
`<run-dir>/cells/<rule>/` (as `dynlearn run constraints`); running again with the same
`--run-dir` skips finished cells. Writes `hardware.nc`, `hardware.md`, `hardware.png`
(accuracy vs levels and vs c2c noise per rule) and `hardware-cost.png`.

Run: `python -m experiments.hardware --dataset mnist` or `dynlearn run hardware --dataset
mnist`; `--quick` for a smoke run (digits, 1 epoch, 1 seed, device presets for sh-always-on, the
sweep and the pruning for bp). `--cluster local`, `local:N` or `tcp://HOST:8786` computes the
cells on a dask.distributed cluster, one task each, as `dynlearn run constraints --cluster`
(`experiments._cluster`: a shared `--run-dir`, each cell computed once).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from dynlearn import hardware, registry
from experiments import _cluster
from experiments._cluster import Cell
from experiments._options import non_negative_int, positive_int, real
from experiments._timing import write_results
from experiments.constraints import Study, build, continued, evaluate, gradual_recipe

LEVELS = (8, 16, 32, 64, 128)
C2C = (0.0, 0.01, 0.035, 0.1)
METHODS = ("one-shot", "one-shot + minimum", "gradual", "gradual + minimum")
DEPTHS = (2, 3, 4, 5, 6)
# which of the RRAM device's non-idealities costs what (`--ablation-rules`)
ABLATION = {
    "rram-ag-a-si": {},
    "c2c 0": {"c2c": 0.0},
    "symmetric nl": {"nl_ltd": hardware.RRAM_AG_A_SI.nl_ltp},
    "linear": {"nl_ltp": 0.0, "nl_ltd": 0.0},
    "linear, c2c 0": {"nl_ltp": 0.0, "nl_ltd": 0.0, "c2c": 0.0},
}
# how each registered rule assigns credit (for the cost model; see hardware.training_cost)
CREDIT = {
    "bp": "sequential",
    "desire": "sequential",  # ternary desires pass down through W^T, layer by layer
    "stdp-bp": "sequential",  # spiking error neurons, errors down through W^T (B = W^T)
    "st-rsbp": "sequential",  # spike-train-level backprop, layer by layer
    "fa": "sequential-separate",
    "sign": "sequential-separate",
    "kp": "sequential-separate",
    "wm": "sequential-separate",
    "ia": "sequential-separate",
    "sa": "sequential-separate",
    "align-zero": "sequential-separate",
    "align-ada": "sequential-separate",
    "dtp": "sequential-separate",
    "dtp-drl": "sequential-separate",
    "gait-prop": "sequential-separate",
    "fw-dtp": "sequential-separate",
    "dfa": "direct",
    "drtp": "direct",
    "fdfa": "direct",
    "tpsgd": "direct",
    "tpsgd-l1": "direct",
    "pepita": "forward-only",
    "softhebb": "local",
    "hard-wta": "local",
    "gha": "local",
    "activation": "local",
    "meta-plastic": "local",
    "pc": "settling",
    "ep": "settling",
    "chl": "settling",
    "positive-pc": "settling",
    "ide": "settling",
}
# the devices of the inertia part (`--inertia-rules`)
INERTIA_PRESETS = ("none", "rram-ag-a-si", "soft-bounds")
QUICK = {
    "rules": ["sh-always-on"],  # bp trains in the sweep and the pruning
    "sweep_rules": ["bp"],
    "prune_rules": ["bp"],
    "ablation_rules": [],  # 5 more compiled trainings; tests/test_hardware.py covers the cell
    "inertia_rules": [],  # likewise (3 trainings)
}


class HardwareStudy(Study):
    """The cells of a hardware study (configuration checks, caching and resume from
    `experiments.constraints.Study`)."""

    def preset(self, rule: str, name: str) -> xr.Dataset:
        """Cell: the rule trained on device `name`; accuracy per seed and epoch."""
        return self.device(rule, name)

    def sweep(self, rule: str, axis: str) -> xr.Dataset:
        """Cell: the RRAM device (stochastic rounding) with `axis` ("levels" or "c2c")
        swept; final accuracy."""

        def compute():
            values = self.config[axis]
            final = []
            for value in values:
                change = {"levels_ltp": value, "levels_ltd": value} if axis == "levels" else {}
                change = change or {"c2c": value}
                device = dataclasses.replace(hardware.RRAM_AG_A_SI_STOCHASTIC, **change)
                final.append(self._on_device(rule, device, self.config["epochs"])[:, -1])
            ds = xr.Dataset(
                {"accuracy": ((axis, "seed"), np.array(final))},
                coords={axis: values, "seed": self.seeds},
            )
            return _described(ds)

        return self._cached(rule, f"sweep-{axis}", compute)

    def ablation(self, rule: str) -> xr.Dataset:
        """Cell: the RRAM device with one non-ideality removed at a time (`ABLATION`);
        final accuracy."""

        def compute():
            final = []
            for change in ABLATION.values():
                device = dataclasses.replace(hardware.RRAM_AG_A_SI, **change)
                final.append(self._on_device(rule, device, self.config["epochs"])[:, -1])
            ds = xr.Dataset(
                {"accuracy": (("ablation", "seed"), np.array(final))},
                coords={"ablation": list(ABLATION), "seed": self.seeds},
            )
            return _described(ds)

        return self._cached(rule, "ablation", compute)

    def inertia(self, rule: str, momentum: float, scope: str = "forward") -> xr.Dataset:
        """Cell: the always-on `rule` with the inertia of SGD momentum `momentum` on the
        weights of `scope` (`dynlearn.AlwaysOn.with_momentum`) on each of
        `INERTIA_PRESETS`; accuracy per epoch."""

        def compute():
            curves = []
            for name in INERTIA_PRESETS:
                device = None if name == "none" else hardware.PRESETS[name]
                epochs = self.config["epochs"]
                curves.append(self._on_device(rule, device, epochs, (momentum, scope)))
            ds = xr.Dataset(
                {"accuracy": (("inertia_preset", "seed", "epoch"), np.array(curves))},
                coords={
                    "inertia_preset": list(INERTIA_PRESETS),
                    "seed": self.seeds,
                    "epoch": np.arange(1, self.config["epochs"] + 1),
                },
                attrs={"momentum": momentum, "inertia_scope": scope},
            )
            return _described(ds)

        suffix = "" if scope == "forward" else f"-{scope}"
        return self._cached(rule, f"inertia-{momentum:g}{suffix}", compute)

    def pruning(self, rule: str) -> xr.Dataset:
        """Cell: one-shot (re-trained) vs gradual pruning, without and with a minimum."""

        def compute():
            epochs, sparsity = self.config["epochs"], self.config["sparsity"]
            minimum = self.config["min_per_layer"]
            learners, recipe = build(rule, self.sizes, self.seeds)
            trained, _ = self._train(learners, self.data, self.seeds, epochs, recipe)
            accuracy = np.full((len(METHODS), len(self.seeds)), np.nan)
            smallest = np.full_like(accuracy, np.nan)
            for m, method in enumerate(METHODS):
                floor = minimum if method.endswith("minimum") else 0
                if method.startswith("one-shot"):
                    pruned = [dynlearn.prune(t, sparsity, min_per_layer=floor) for t in trained]
                    again = continued(recipe, len(self.data.x_train), epochs)
                    result, _ = self._train(
                        pruned, self.data, self.seeds, self.config["retrain_epochs"], again
                    )
                else:
                    gradual = gradual_recipe(
                        recipe,
                        len(self.data.x_train),
                        epochs,
                        sparsity,
                        scope="global",
                        minimum=floor,
                    )
                    starts = [dynlearn.prune(learner, 0.0) for learner in learners]
                    result, _ = self._train(starts, self.data, self.seeds, epochs, gradual)
                accuracy[m] = evaluate(result, self.data.x_test, self.data.y_test)
                smallest[m] = [np.nan if r is None else min(_kept(r)) for r in result]
            ds = xr.Dataset(
                {
                    "accuracy": (("pruning", "seed"), accuracy),
                    "smallest_layer_weights": (("pruning", "seed"), smallest),
                },
                coords={"pruning": list(METHODS), "seed": self.seeds},
                attrs={"sparsity": sparsity, "min_per_layer": minimum},
            )
            return _described(ds)

        return self._cached(rule, "pruning", compute)

    def _on_device(
        self, rule: str, device: hardware.Device | None, epochs: int, inertia=None
    ) -> np.ndarray:
        """Test accuracy (seed, epoch) of `rule` trained on `device` (None: no device),
        with the inertia `(SGD momentum, scope)` if given."""
        learners, recipe = build(rule, self.sizes, self.seeds)
        if inertia is not None:
            recipe = with_inertia(rule, recipe, *inertia)
        placed = learners
        if device is not None:
            placed = [hardware.on_device(x, device, seed=s) for x, s in zip(learners, self.seeds)]
        return self._train(placed, self.data, self.seeds, epochs, recipe)[1]


def with_inertia(
    rule: str, recipe: dynlearn.Recipe, momentum: float, scope: str = "forward"
) -> dynlearn.Recipe:
    """`recipe` with its always-on mode given the inertia of SGD `momentum` on `scope`."""
    if not isinstance(recipe.mode, dynlearn.AlwaysOn):
        raise ValueError(
            f"--inertia-rules: {rule} is trained by {type(recipe.mode).__name__}, not "
            "always-on (dynlearn.AlwaysOn): its weights have no velocity to give inertia to."
        )
    mode = recipe.mode.with_momentum(momentum, recipe.batch_size, scope)
    return recipe._replace(mode=mode)


_DESCRIBE = {
    "accuracy": ("test accuracy, fraction in [0, 1]", "1"),
    "levels": ("pulses across the device's range (LTP and LTD)", "1"),
    "c2c": ("cycle-to-cycle noise per write, fraction of the conductance range", "1"),
    "smallest_layer_weights": ("non-zero weights left in the smallest weight matrix", "1"),
    "pruning": ("pruning method", "1"),
    "ablation": ("RRAM device with one non-ideality removed", "1"),
    "inertia_preset": ("device (none: no device) of the inertia part", "1"),
}


# the assembled study's variables (`assemble`; the gallery's summary reads them too)
STUDY_DESCRIPTIONS = _DESCRIBE | {
    "accuracy": ("test accuracy on the device after each epoch, fraction in [0, 1]", "1"),
    "levels_accuracy": ("final test accuracy, RRAM (stochastic rounding) with these levels", "1"),
    "c2c_accuracy": ("final test accuracy, RRAM (stochastic rounding) with this c2c noise", "1"),
    "pruned_accuracy": ("final test accuracy after pruning to the sparsity", "1"),
    "preset": ("device (dynlearn.hardware.PRESETS; none: no device)", "1"),
    "sweep_rule": ("rule of the device sweeps", "1"),
    "prune_rule": ("rule of the pruning comparison", "1"),
    "ablation_accuracy": ("final test accuracy, RRAM device with one change", "1"),
    "ablation_rule": ("rule of the non-ideality ablation", "1"),
    "inertia_accuracy": ("test accuracy with the weights' inertia, after each epoch", "1"),
    "inertia_rule": ("always-on rule of the inertia part", "1"),
}


def _described(ds: xr.Dataset) -> xr.Dataset:
    return dynlearn.describe(ds, **{k: v for k, v in _DESCRIBE.items() if k in ds.variables})


def _kept(learner) -> list[int]:
    """Non-zero forward weights per matrix of a (pruned) learner."""
    inner = learner.learner if isinstance(learner, dynlearn.Pruned) else learner
    leaves = jax.tree.leaves(eqx.filter(inner, inner.prunable()))
    return [int(np.sum(np.asarray(w) != 0)) for w in leaves]


def costs() -> xr.Dataset:
    """The cost model for every kind of credit assignment and depth (784-100-..-100-10)."""
    kinds = list(hardware.CREDITS)
    keys = ("update_steps", "update_latency", "latency", "energy")
    values = np.zeros((len(keys), len(kinds), len(DEPTHS)))
    for d, depth in enumerate(DEPTHS):
        sizes = [784] + [100] * (depth - 1) + [10]
        for c, kind in enumerate(kinds):
            cost = hardware.training_cost(sizes, kind, settle_steps=20)
            values[:, c, d] = [cost[k] for k in keys]
    p = hardware.CostParameters()
    ds = xr.Dataset(
        {k: (("credit", "depth"), values[i]) for i, k in enumerate(keys)},
        coords={"credit": kinds, "depth": list(DEPTHS)},
        attrs={f"cost_{k}": v for k, v in dataclasses.asdict(p).items()} | {"settle_steps": 20},
    )
    return dynlearn.describe(
        ds,
        update_steps=("sequential array operations of one update after the forward pass", "1"),
        update_latency=("latency of the update after the forward pass", "s"),
        latency=("latency of one training step (forward pass and update)", "s"),
        energy=("energy of one training step", "J"),
        credit=("how the rule assigns credit (dynlearn.hardware.training_cost)", "1"),
        depth=("weight layers", "1"),
    )


def cells(opts) -> list[Cell]:
    """The cells `assemble` reads (none needs another)."""
    return (
        [Cell("preset", (rule, preset)) for rule in opts.rules for preset in opts.presets]
        + [Cell("sweep", (rule, axis)) for axis in ("levels", "c2c") for rule in opts.sweep_rules]
        + [Cell("pruning", (rule,)) for rule in opts.prune_rules]
        + [Cell("ablation", (rule,)) for rule in opts.ablation_rules]
        + [
            Cell("inertia", (rule, opts.momentum, opts.inertia_scope))
            for rule in opts.inertia_rules
        ]
    )


def assemble(study: HardwareStudy, opts) -> xr.Dataset:
    presets = opts.presets
    curves = np.stack(
        [np.stack([study.preset(r, p).accuracy.values for p in presets]) for r in opts.rules]
    )
    variables = {"accuracy": (("rule", "preset", "seed", "epoch"), curves)}
    coords = {
        "rule": opts.rules,
        "preset": presets,
        "seed": study.seeds,
        "epoch": np.arange(1, opts.epochs + 1),
    }
    for axis in ("levels", "c2c"):
        if opts.sweep_rules:
            stacked = np.stack([study.sweep(r, axis).accuracy.values for r in opts.sweep_rules])
            variables[f"{axis}_accuracy"] = (("sweep_rule", axis, "seed"), stacked)
            coords[axis] = list(study.config[axis])
    if opts.sweep_rules:
        coords["sweep_rule"] = opts.sweep_rules
    if opts.prune_rules:
        cells = [study.pruning(r) for r in opts.prune_rules]
        dims = ("prune_rule", "pruning", "seed")
        variables["pruned_accuracy"] = (dims, np.stack([c.accuracy.values for c in cells]))
        variables["smallest_layer_weights"] = (
            dims,
            np.stack([c.smallest_layer_weights.values for c in cells]),
        )
        coords |= {"prune_rule": opts.prune_rules, "pruning": list(METHODS)}
    if opts.ablation_rules:
        cells = [study.ablation(r) for r in opts.ablation_rules]
        variables["ablation_accuracy"] = (
            ("ablation_rule", "ablation", "seed"),
            np.stack([c.accuracy.values for c in cells]),
        )
        coords |= {"ablation_rule": opts.ablation_rules, "ablation": list(ABLATION)}
    if opts.inertia_rules:
        cells = [study.inertia(r, opts.momentum, opts.inertia_scope) for r in opts.inertia_rules]
        variables["inertia_accuracy"] = (
            ("inertia_rule", "inertia_preset", "seed", "epoch"),
            np.stack([c.accuracy.values for c in cells]),
        )
        coords |= {"inertia_rule": opts.inertia_rules, "inertia_preset": list(INERTIA_PRESETS)}
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs |= {
        "dataset": opts.dataset,
        "sizes": "-".join(map(str, study.sizes)),
        "sparsity": opts.sparsity,
        "min_per_layer": opts.min_per_layer,
        "retrain_epochs": opts.retrain_epochs,
    }
    if opts.inertia_rules:
        ds.attrs |= {"momentum": opts.momentum, "inertia_scope": opts.inertia_scope}
    return dynlearn.describe(
        ds, **{k: v for k, v in STUDY_DESCRIPTIONS.items() if k in ds.variables}
    )


def pct(values) -> str:
    """Mean ± std in percent over the seeds that finished; says how many diverged (NaN)."""
    values = 100 * np.asarray(values, float)
    lost = int(np.sum(np.isnan(values)))
    if lost == values.size:
        return "diverged"
    text = f"{np.nanmean(values):.1f} ± {np.nanstd(values):.1f}"
    return text + (f" ({lost} of {values.size} diverged)" if lost else "")


def table(ds: xr.Dataset, cost: xr.Dataset) -> str:
    final = ds.accuracy.isel(epoch=-1)
    lines = [
        f"Devices ({ds.attrs['dataset']}, {ds.attrs['sizes']}, {ds.epoch.size} epochs, "
        f"{ds.seed.size} seeds; test accuracy %, mean ± std)",
        "",
        "| rule | credit | " + " | ".join(ds.preset.values) + " |",
        "| --- | --- | " + " | ".join("---" for _ in ds.preset.values) + " |",
    ]
    for rule in ds.rule.values:
        cells = [pct(final.sel(rule=rule, preset=p)) for p in ds.preset.values]
        lines.append(f"| {rule} | {CREDIT.get(rule, '—')} | " + " | ".join(cells) + " |")
    for axis in ("levels", "c2c"):
        name = f"{axis}_accuracy"
        if name in ds:
            lines += ["", f"RRAM device (stochastic rounding), {axis} swept (final accuracy %)", ""]
            lines.append("| rule | " + " | ".join(f"{v:g}" for v in ds[axis].values) + " |")
            lines.append("| --- | " + " | ".join("---" for _ in ds[axis].values) + " |")
            for rule in ds.sweep_rule.values:
                row = [pct(ds[name].sel(sweep_rule=rule).sel({axis: v})) for v in ds[axis].values]
                lines.append(f"| {rule} | " + " | ".join(row) + " |")
    if "ablation_accuracy" in ds:
        lines += ["", "RRAM device, one non-ideality removed (final accuracy %)", ""]
        lines.append("| rule | " + " | ".join(ds.ablation.values) + " |")
        lines.append("| --- | " + " | ".join("---" for _ in ds.ablation.values) + " |")
        for rule in ds.ablation_rule.values:
            row = [
                pct(ds.ablation_accuracy.sel(ablation_rule=rule, ablation=a))
                for a in ds.ablation.values
            ]
            lines.append(f"| {rule} | " + " | ".join(row) + " |")
    if "inertia_accuracy" in ds:
        lines += _inertia_table(ds)
    if "pruned_accuracy" in ds:
        lines += [
            "",
            f"Pruning to {100 * ds.attrs['sparsity']:g}% (minimum {ds.attrs['min_per_layer']} "
            "weights per matrix; accuracy %, weights left in the smallest matrix)",
            "",
            "| rule | " + " | ".join(ds.pruning.values) + " |",
            "| --- | " + " | ".join("---" for _ in ds.pruning.values) + " |",
        ]
        for rule in ds.prune_rule.values:
            row = [
                f"{pct(ds.pruned_accuracy.sel(prune_rule=rule, pruning=m))} "
                f"({np.nanmean(ds.smallest_layer_weights.sel(prune_rule=rule, pruning=m)):.0f})"
                for m in ds.pruning.values
            ]
            lines.append(f"| {rule} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Cost of one update after the forward pass (sequential array steps; BP / DFA latency)",
        "",
    ]
    lines.append("| weight layers | " + " | ".join(cost.credit.values) + " | BP / DFA latency |")
    lines.append("| --- | " + " | ".join("---" for _ in cost.credit.values) + " | --- |")
    for depth in cost.depth.values:
        steps = [f"{int(v)}" for v in cost.update_steps.sel(depth=depth).values]
        ratio = float(
            cost.update_latency.sel(depth=depth, credit="sequential")
            / cost.update_latency.sel(depth=depth, credit="direct")
        )
        lines.append(f"| {depth} | " + " | ".join(steps) + f" | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def _inertia_table(ds: xr.Dataset) -> list[str]:
    """Lines of the inertia part's table: final accuracy with inertia, and without it where
    the rule's preset cells are in the study."""
    devices = ds.inertia_preset.values
    lines = [
        "",
        f"Always-on, {ds.attrs['inertia_scope']} weights with inertia (SGD momentum "
        f"{ds.attrs['momentum']:g}; final accuracy %; in brackets: without inertia)",
        "",
        "| rule | " + " | ".join(devices) + " |",
        "| --- | " + " | ".join("---" for _ in devices) + " |",
    ]
    final = ds.inertia_accuracy.isel(epoch=-1)
    for rule in ds.inertia_rule.values:
        row = []
        for device in devices:
            text = pct(final.sel(inertia_rule=rule, inertia_preset=device))
            if rule in ds.rule.values:
                without = ds.accuracy.isel(epoch=-1).sel(rule=rule, preset=device)
                text += f" ({pct(without)})"
            row.append(text)
        lines.append(f"| {rule} | " + " | ".join(row) + " |")
    return lines


def plot(ds: xr.Dataset, cost: xr.Dataset, run_dir: Path) -> None:
    """`hardware.png` (the sweeps, if any) and `hardware-cost.png` in `run_dir`."""
    if "levels_accuracy" in ds:
        plot_sweeps(ds, run_dir / "hardware.png")
    with dynlearn.plot.figure(run_dir / "hardware-cost.png", title="Update latency vs depth") as ax:
        for kind, marker in zip(cost.credit.values, "osd^vx"):
            ax.plot(
                cost.depth, 1e9 * cost.update_latency.sel(credit=kind), marker + "-", label=kind
            )
        ax.set(xlabel="weight layers", ylabel="update latency (ns)", yscale="log")
        ax.legend(fontsize="small")


def plot_sweeps(ds: xr.Dataset, path: Path) -> None:
    """Final accuracy (mean ± std over the seeds) against the RRAM device's levels and its
    c2c noise, one line per rule of `ds.sweep_rule` (variables `levels_accuracy`,
    `c2c_accuracy`: sweep_rule x value x seed)."""
    title = f"Accuracy on the RRAM device, stochastic rounding ({ds.attrs['dataset']})"
    with dynlearn.plot.figure(path, ncols=2, figsize=(9.5, 3.4), title=title) as (left, right):
        for rule in ds.sweep_rule.values:
            for ax, axis in ((left, "levels"), (right, "c2c")):
                values = ds[f"{axis}_accuracy"].sel(sweep_rule=rule)
                ax.errorbar(
                    ds[axis],
                    100 * values.mean("seed"),
                    yerr=100 * values.std("seed"),
                    fmt="o-",
                    capsize=3,
                    label=rule,
                )
        left.set(xscale="log", xlabel="levels", ylabel="test accuracy (%)")
        left.set_xticks(ds.levels.values, [str(v) for v in ds.levels.values])
        left.minorticks_off()
        right.set(xlabel="c2c noise per write (fraction of range)", ylabel="test accuracy (%)")
        right.legend(fontsize="small")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run hardware", description=__doc__)
    known = sorted(registry.entries("rules"))
    parser.add_argument(
        "--dataset", default=None, choices=["digits", "mnist5k", "mnist", "fashion_mnist"]
    )
    parser.add_argument("--rules", nargs="+", default=known, help=f"registered: {known}")
    presets = ["none", *hardware.PRESETS]
    parser.add_argument(
        "--presets",
        nargs="+",
        default=presets,
        choices=presets,
        help="the devices each of --rules trains on (none: no device; default: all)",
    )
    parser.add_argument("--sweep-rules", nargs="*", default=["bp", "fa", "dfa"])
    parser.add_argument("--prune-rules", nargs="*", default=["fa", "dfa", "sign"])
    parser.add_argument(
        "--ablation-rules",
        nargs="*",
        default=["le"],
        help="rules trained on the RRAM device with one non-ideality removed at a time",
    )
    parser.add_argument(
        "--inertia-rules",
        nargs="*",
        default=[],
        help="always-on rules trained with their weights' inertia (--momentum) on no device, "
        f"and on each of {', '.join(INERTIA_PRESETS[1:])}",
    )
    parser.add_argument(
        "--momentum",
        type=real(0.0, 1.0, low_open=True),
        default=0.9,
        help="the SGD momentum the inertia matches (AlwaysOn.with_momentum)",
    )
    parser.add_argument(
        "--inertia-scope",
        choices=["forward", "trainable"],
        default="forward",
        help="which weights get the inertia (dynlearn.Inertia's scope)",
    )
    parser.add_argument("--levels", type=positive_int, nargs="+", default=list(LEVELS))
    parser.add_argument("--c2c", type=real(0.0), nargs="+", default=list(C2C))
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--retrain-epochs", type=positive_int, default=1)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[100])
    parser.add_argument("--sparsity", type=real(0.0, 1.0), default=0.9)
    parser.add_argument("--min-per-layer", type=non_negative_int, default=100)
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run (see the docstring)")
    parser.add_argument(
        "--cluster",
        type=_cluster.option,
        default=None,
        help="compute the cells on a dask.distributed cluster: local, local:N (N workers) or "
        "a scheduler's address (tcp://HOST:8786); workers must see --run-dir at the same path",
    )
    opts = parser.parse_args(argv)
    for name in ("rules", "sweep_rules", "prune_rules", "ablation_rules", "inertia_rules"):
        unknown = sorted(set(getattr(opts, name)) - set(known))
        if unknown:
            parser.error(f"--{name.replace('_', '-')}: unknown {unknown}; registered: {known}")
    if opts.quick:
        opts.epochs, opts.seeds, opts.levels, opts.c2c = 1, [0], [8, 64], [0.0, 0.035]
        for name, value in QUICK.items():
            if getattr(opts, name) == parser.get_default(name):
                setattr(opts, name, value)
    opts.dataset = opts.dataset or ("digits" if opts.quick else "mnist")
    opts.presets = list(dict.fromkeys(opts.presets))  # each once, in the order given
    run_dir = Path(opts.run_dir or dynlearn.run_folder(Path("runs"), "hardware"))
    config = {
        "dataset": opts.dataset,
        "quick": False,
        "hidden": opts.hidden,
        "seeds": opts.seeds,
        "epochs": opts.epochs,
        "retrain_epochs": opts.retrain_epochs,
        "levels": sorted(set(opts.levels)),
        "c2c": sorted(set(opts.c2c)),
        "sparsity": opts.sparsity,
        "min_per_layer": opts.min_per_layer,
    }
    study = HardwareStudy(run_dir, config)
    for rule in opts.inertia_rules:  # refuse a rule without always-on weights before training
        try:
            with_inertia(rule, build(rule, study.sizes, [0])[1], opts.momentum, opts.inertia_scope)
        except ValueError as err:
            parser.error(str(err))
    if opts.cluster:
        _cluster.run(opts.cluster, study, cells(opts))
    ds = assemble(study, opts)  # on a cluster: only loads the cells
    cost = costs()
    text = table(ds, cost)
    write_results(xr.merge([ds, cost], combine_attrs="no_conflicts"), text, run_dir, "hardware")
    plot(ds, cost, run_dir)
    print(text)
    print(f"written to {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
