"""Experiment: every registered learning rule against backprop under four constraints.

Same architecture (one hidden layer of 100 units by default, `--hidden`; each rule keeps
its own reference activation and learning settings, see `dynlearn.rules`), same samples,
same epochs:
1. data fraction: train on 100/50/20/10% of the training set (stratified), test accuracy
   after every epoch;
2. epoch budget: from those curves, the first epoch reaching 95% of the final accuracy;
3. sparsity: global magnitude pruning of the trained (100%) network's forward weights to
   50/80/90% (one threshold over all layers; `--prune-scope layer`: one per weight matrix,
   for rules whose layers live on different scales), evaluated as is and after `--retrain-epochs`
   of re-training with the pruned weights held at zero (`dynlearn.prune`; an always-on
   rule's annealed plasticity gain continues where training left it, `AlwaysOn.after`);
4. input noise: the trained network on test inputs plus Gaussian noise of standard
   deviation 0/0.1/0.3/0.5 (the same noise draw for every rule and seed);
5. optional, `--gradual`: gradual pruning to each sparsity while training from scratch
   (`dynlearn.GradualPruning`, Zhu & Gupta's cubic schedule, reached at 75% of the
   updates); `--min-per-layer N` keeps N weights per matrix in every pruning (Gupta et al.);
6. optional, `--presets NAME ...`: the rule trained from scratch with its forward weights on
   each analog device of `dynlearn.hardware.PRESETS` (see `dynlearn run hardware`).
Seeds of a rule train together, vmapped (`dynlearn.fit_seeds`); if a seed diverges they
are re-run one by one so the others are kept (the diverged seed's results are NaN).

Resumable: each finished cell (rule x constraint) is written atomically to
`<run-dir>/cells/<rule>/` before the next starts; running again with the same `--run-dir`
skips finished cells (a different configuration is refused). The assembled results:
`constraints.nc` (dims rule, fraction / sparsity / noise_std, seed, epoch),
`constraints.md` (table) and one figure per constraint (`constraints-<axis>.png`).
Accuracies are stored as fractions in [0, 1] (`long_name` and `units` on every variable,
CF conventions); `retrained` is a 0/1 flag in the files that xarray reads back as booleans.

Run: `python -m experiments.constraints --dataset mnist5k` or `dynlearn run constraints
--dataset mnist5k` (add `--run-dir DIR` to resume); `--quick` for a smoke run (Yin-Yang
with 960 training samples unless `--dataset`, then 20% of its training set; 2 epochs, 1 seed
and, unless given, rules bp and le, fractions 1 and 0.1, sparsities 0.5 and 0.9, noise 0 and
0.3). On a dask.distributed cluster, one task per cell (`experiments._cluster`):
`--cluster local` (a `LocalCluster` on this machine, one process per core; `local:4`: four)
or `--cluster tcp://HOST:8786` (a running scheduler: `dask scheduler`, then
`dask worker tcp://HOST:8786` on each machine, or dask-jobqueue's `SLURMCluster`). Every
worker must see `--run-dir` at the same path (a shared file system); resume works as above,
and a cell is computed once even when workers die or race for it. The results equal the
serial run's, cell for cell.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from dynlearn import registry
from dynlearn._fit import finished_accuracy
from experiments import _cluster
from experiments._cluster import Cell
from experiments._options import fraction, non_negative, non_negative_int, positive_int, real
from experiments._timing import quick_subset, quiet_fit

FRACTIONS = (1.0, 0.5, 0.2, 0.1)
SPARSITIES = (0.5, 0.8, 0.9)
NOISE_STDS = (0.0, 0.1, 0.3, 0.5)
NOISE_SEED = 12345  # one noise draw per level, shared by all rules and seeds
FRACTION = "fraction in [0, 1]"
# `long_name` and `units` of the study's variables and coordinates (in cells and the
# assembled Dataset; the names `dynlearn` knows, `epoch` and `seed`, are filled on save).
DESCRIPTIONS = {
    "accuracy": (f"test accuracy after each epoch, {FRACTION}", "1"),
    "epochs_to_95": ("first epoch whose test accuracy is >= 95% of the final one", "1"),
    "pruned_accuracy": (
        "test accuracy after magnitude pruning of the forward weights (as is, or "
        f"re-trained with the pruned weights held at zero), {FRACTION}",
        "1",
    ),
    "sparsity_reached": ("fraction of the forward weights that are exactly zero", "1"),
    "noisy_accuracy": (f"test accuracy on test inputs plus Gaussian noise, {FRACTION}", "1"),
    "seconds": ("wall-clock time of the rule's cells, summed", "s"),
    "fraction": ("fraction of the training set used (stratified)", "1"),
    "sparsity": ("target sparsity: fraction of the forward weights pruned", "1"),
    "noise_std": ("standard deviation of the Gaussian noise added to the test inputs", "1"),
    "gradual_accuracy": (
        f"test accuracy after gradual pruning to the sparsity during training, {FRACTION}",
        "1",
    ),
    "device_accuracy": (f"test accuracy on an analog device after each epoch, {FRACTION}", "1"),
    "preset": ("analog device (dynlearn.hardware.PRESETS)", "1"),
}
# settings added after the first studies: a study saved without them had these values
LATER_SETTINGS = {"prune_scope": "global", "presets": [], "gradual": False, "min_per_layer": 0}
# `retrained` is a boolean coordinate; on save it becomes an int8 flag (CF `flag_values`
# 0 1 with these meanings) that xarray reads back as booleans (so `.sel(retrained=True)`
# works on loaded cells and results alike).
RETRAINED = {
    "long_name": "re-trained after pruning",
    "flag_meanings": "pruned_only pruned_and_retrained",
}
# --quick: one settle-then-update and one always-on rule, two levels per axis (unless given)
QUICK = {
    "rules": ["bp", "le"],
    "fractions": [1.0, 0.1],
    "sparsities": [0.5, 0.9],
    "noise_stds": [0.0, 0.3],
}


# -- training ----------------------------------------------------------------------------


def build(rule: str, sizes: list[int], seeds: list[int]) -> tuple[list, dynlearn.Recipe]:
    """One learner per seed from the rule's registered factory (`dynlearn.Recipe`s), and
    the recipe of the first seed (its mode and batch size serve every seed: one mode object,
    so one compiled program)."""
    factory = registry.load("rules", rule)
    recipes = [factory(sizes, jax.random.key(seed)) for seed in seeds]
    return [recipe.learner for recipe in recipes], recipes[0]


def always_on_twin(preset: str) -> str | None:
    """The first device preset before `preset` (`dynlearn.hardware.PRESETS`' order) on which
    an always-on rule trains exactly as on `preset`, or None: the RRAM with stochastic
    rounding repeats the RRAM (`dynlearn.hardware.same_always_on_training`)."""
    presets = dynlearn.hardware.PRESETS
    if preset not in presets:
        return None
    earlier = list(presets)[: list(presets).index(preset)]
    same = dynlearn.hardware.same_always_on_training
    return next((name for name in earlier if same(presets[name], presets[preset])), None)


def batch_size_for(recipe: dynlearn.Recipe, n_train: int) -> int:
    """The recipe's batch size, or, when it exceeds the training set (a small fraction of a
    small dataset), the largest multiple of the presentation's stream count that fits
    (always-on modes split a batch into equal streams; 1 otherwise)."""
    if recipe.batch_size <= n_train:
        return recipe.batch_size
    presentation = getattr(recipe.mode, "presentation", None)
    streams = 1 if presentation is None else presentation.streams
    return max(1, n_train // streams) * streams


def continued(recipe: dynlearn.Recipe, n_train: int, epochs: int) -> dynlearn.Recipe:
    """`recipe` for learners already trained `epochs` epochs on `n_train` samples: an
    always-on mode's plasticity gain continues where training left it
    (`dynlearn.AlwaysOn.after`), as a settle-then-update rule keeps its learning rate."""
    if not isinstance(recipe.mode, dynlearn.AlwaysOn):
        return recipe
    batch_size = batch_size_for(recipe, n_train)
    seen = epochs * (n_train // batch_size) * batch_size
    return recipe._replace(mode=recipe.mode.after(seen))


def train(
    learners: list,
    data,
    seeds: list[int],
    epochs: int,
    recipe: dynlearn.Recipe,
    run_dir: Path | None = None,
):
    """`(trained learners, test accuracy (seed, epoch))` in `recipe`'s mode and batch size
    (its learner is not used): vmapped over seeds when the learners stack and no seed
    diverges; otherwise seed by seed, a diverged seed giving `None` and NaN after its last
    finished epoch. A batch larger than the training set is cut (`batch_size_for`).

    With a `run_dir`, every epoch is checkpointed there and a call with the same arguments
    continues from the last one (a cell's training survives the process being killed)."""
    mode, batch_size = recipe.mode, batch_size_for(recipe, len(data.x_train))
    stacked = stack_or_none(learners)
    if stacked is not None:
        try:
            stacked, accuracy = dynlearn.fit_seeds(
                stacked,
                data,
                mode,
                seeds=seeds,
                epochs=epochs,
                batch_size=batch_size,
                run_dir=_within(run_dir, "seeds"),
                resume=True,
            )
            return [dynlearn.unstack(stacked, i) for i in range(len(seeds))], accuracy
        except eqx.EquinoxRuntimeError:  # a seed diverged: run them one by one
            pass
    trained, curves = [], []
    for learner, seed in zip(learners, seeds):
        args = dict(epochs=epochs, batch_size=batch_size, seed=seed)
        seed_dir = _within(run_dir, f"seed-{seed}")
        try:
            result = quiet_fit(learner, data, mode, run_dir=seed_dir, resume=True, **args)
            trained.append(result.learner)
            curves.append(result.metrics.test_accuracy.values)
        except eqx.EquinoxRuntimeError:  # diverged: keep the finished epochs
            trained.append(None)
            if seed_dir is None:
                curves.append(dynlearn.accuracy_curve(learner, data, mode, **args))
            else:  # the epochs before the divergence are in the run's metrics
                curves.append(finished_accuracy(seed_dir, epochs))
    return trained, np.stack(curves)


def _within(run_dir: Path | None, name: str) -> Path | None:
    return None if run_dir is None else Path(run_dir) / name


def evaluate(learners: list, x, labels) -> np.ndarray:
    """Test accuracy per seed (NaN for a diverged seed)."""
    alive = [i for i, learner in enumerate(learners) if learner is not None]
    out = np.full(len(learners), np.nan)
    stacked = stack_or_none([learners[i] for i in alive])
    if stacked is not None:
        out[alive] = dynlearn.evaluate_seeds(stacked, x, labels)
    else:
        out[alive] = [dynlearn.evaluate(learners[i], x, labels) for i in alive]
    return out


def stack_or_none(learners: list):
    """The learners stacked for vmap, or None if there are none or their static
    configurations differ."""
    try:
        return dynlearn.stack(learners) if learners else None
    except ValueError:
        return None


def zero_fraction(learner) -> float:
    """Fraction of exact zeros among a learner's prunable weights."""
    leaves = jax.tree.leaves(eqx.filter(learner, learner.prunable()))
    return sum(int(np.sum(np.asarray(w) == 0)) for w in leaves) / sum(w.size for w in leaves)


def described(ds: xr.Dataset, **variables: tuple[str, str]) -> xr.Dataset:
    """`ds` with `DESCRIPTIONS` (or the given `(long_name, units)`) on its variables and
    coordinates, and the `retrained` flag's attributes."""
    known = {k: v for k, v in DESCRIPTIONS.items() if k in ds.variables}
    ds = dynlearn.describe(ds, **(known | variables))
    if "retrained" in ds.coords:
        ds.retrained.attrs.update(RETRAINED)
    return ds


# -- the cells -----------------------------------------------------------------------------


def cells(config: dict, rules: list[str]) -> list[Cell]:
    """The cells `run_study` reads, in its order; the pruning and noise cells of a rule use
    the learners its 100% cell trains."""
    config = LATER_SETTINGS | config
    out = []
    for rule in rules:
        trained = Cell("fraction", (rule, 1.0))
        out += [Cell("fraction", (rule, f)) for f in config["fractions"]]
        out += [Cell("sparsity", (rule,), (trained,)), Cell("noise", (rule,), (trained,))]
        out += [Cell("gradual", (rule,))] if config["gradual"] else []
        out += [Cell("device", (rule, preset)) for preset in config["presets"]]
    return out


def _unlocked(path: Path) -> contextlib.nullcontext:
    return contextlib.nullcontext()


class Study:
    """The cells of one study in `run_dir`, each computed once and saved atomically.

    `lock(path)` is held while the cell file `path` is checked and, if absent, computed and
    written: a re-entrant lock shared by the processes that compute cells of this study at
    once (a cluster's workers, `experiments._cluster`); none is needed by one process."""

    def __init__(
        self,
        run_dir: Path,
        config: dict,
        log=print,
        lock: Callable[[Path], contextlib.AbstractContextManager] = _unlocked,
    ):
        self.run_dir, self.config, self.log, self.lock = Path(run_dir), config, log, lock
        self.data = load_fraction(config, 1.0)
        self.sizes = [self.data.n_features, *config["hidden"], self.data.n_classes]
        self.seeds = list(config["seeds"])
        self.computed: list[str] = []  # cells computed by this call (the rest were on disk)
        self._parts: tuple[Path, itertools.count] | None = None  # see `_partial`
        saved = self.run_dir / "study.json"
        if saved.exists() and self.finished_cells():
            old = self.saved_config()
            changed = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
            if changed:
                raise ValueError(
                    f"run_dir: {self.run_dir} holds a study with another configuration "
                    f"(saved vs now: {changed}); choose another --run-dir or the same settings."
                )
        else:  # new, or nothing computed yet: (re)write the configuration
            dynlearn.atomic_write(saved, lambda f: f.write(json.dumps(config, indent=2).encode()))

    def finished_cells(self) -> list[Path]:
        """The cell files already written (a study without any may take new settings)."""
        return sorted((self.run_dir / "cells").glob("*/*.nc"))

    def saved_config(self) -> dict:
        """The configuration in `study.json` (a damaged file names itself and the fix)."""
        path = self.run_dir / "study.json"
        try:
            config = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(
                f"run_dir: {path} is damaged (not JSON: {err}); restore it, or write the "
                "study's settings again by deleting it and re-running with the same options."
            ) from None
        if not isinstance(config, dict):
            raise ValueError(f"run_dir: {path} is damaged (no JSON object); restore it.")
        return LATER_SETTINGS | config  # studies saved before the options

    def cell(self, rule: str, name: str) -> Path:
        return self.run_dir / "cells" / rule / f"{name}.nc"

    @contextlib.contextmanager
    def _partial(self, rule: str, name: str):
        """While cell `name` of `rule` is computed, its trainings (`_train`, numbered in
        the order it calls them) checkpoint every epoch under `partial/RULE/NAME/`, so a
        cell killed midway continues from there; yields that folder (deleted once the
        cell is saved). Re-entrant: a cell that computes another nests."""
        outer = self._parts
        folder = self.run_dir / "partial" / rule / name
        self._parts = (folder, itertools.count())
        try:
            yield folder
        finally:
            self._parts = outer

    def _train(self, learners: list, data, seeds: list[int], epochs: int, recipe):
        """`train`, checkpointed in the folder of the cell being computed (`_partial`)."""
        if self._parts is None:  # not within a cell: nothing to continue
            return train(learners, data, seeds, epochs, recipe)
        folder, count = self._parts
        part = folder / f"training-{next(count)}"
        try:
            return train(learners, data, seeds, epochs, recipe, run_dir=part)
        except dynlearn.CheckpointMismatch as err:
            raise dynlearn.CheckpointMismatch(
                f"{err} The partial cell in {folder} was left by other settings or another "
                "version of the rule: delete that folder to compute the cell from the start."
            ) from None

    def _cached(self, rule: str, name: str, compute) -> xr.Dataset:
        """Cell `name` of `rule`: loaded if finished, else `compute()`d (continuing its
        trainings' checkpoints in `partial/`, see `_partial`), timed (attr `seconds`; a
        continued cell, attr `resumed`, times the last call only) and written atomically
        before anything else runs."""
        path = self.cell(rule, name)
        if not path.exists():
            with self.lock(path):
                # another worker may have finished the cell while this one waited for it
                if not path.exists():
                    tic = time.perf_counter()
                    with self._partial(rule, name) as partial:
                        resumed = partial.exists()
                        ds = compute()
                    ds.attrs["seconds"] = time.perf_counter() - tic
                    if resumed:  # the calls before this one are not timed
                        ds.attrs["resumed"] = "continued from partial/: seconds of the last call"
                    dynlearn.save_netcdf(ds, path)
                    shutil.rmtree(partial, ignore_errors=True)
                    self.computed.append(f"{rule} {name}")
                    self.log(f"  {rule} {name}: done in {ds.attrs['seconds']:.1f} s")
                    return ds
        try:
            return dynlearn.load_netcdf(path)
        except ValueError as err:
            raise ValueError(f"{err} (delete the cell file to compute it again)") from None

    def fraction(self, rule: str, fraction: float) -> xr.Dataset:
        """Cell: train on `fraction` of the training set; accuracy per epoch. The 100% cell
        also keeps the trained learners (for the pruning and noise cells)."""

        def compute():
            data = self.data if fraction == 1 else load_fraction(self.config, fraction)
            learners, recipe = build(rule, self.sizes, self.seeds)
            epochs = self.config["epochs"]
            trained, accuracy = self._train(learners, data, self.seeds, epochs, recipe)
            if fraction == 1:
                self._save_trained(rule, learners, trained)
            return described(
                xr.Dataset(
                    {"accuracy": (("seed", "epoch"), accuracy)},
                    coords={"seed": self.seeds, "epoch": np.arange(1, epochs + 1)},
                    attrs={"n_train": len(data.x_train), "fraction": fraction},
                )
            )

        return self._cached(rule, f"fraction-{fraction:g}", compute)

    def sparsity(self, rule: str) -> xr.Dataset:
        """Cell: the trained learners pruned to each sparsity, as is and re-trained."""

        def compute():
            trained, recipe = self._trained(rule)
            levels, seeds = self.config["sparsities"], self.seeds
            accuracy = np.full((len(levels), 2, len(seeds)), np.nan)
            reached = np.full((len(levels), 2, len(seeds)), np.nan)
            x, labels = self.data.x_test, self.data.y_test
            scope = self.config["prune_scope"]
            for i, level in enumerate(levels):
                pruned = [
                    None
                    if t is None
                    else dynlearn.prune(
                        t, level, scope=scope, min_per_layer=self.config["min_per_layer"]
                    )
                    for t in trained
                ]
                accuracy[i, 0] = evaluate(pruned, x, labels)
                reached[i, 0] = [np.nan if p is None else zero_fraction(p.learner) for p in pruned]
                alive = [k for k, p in enumerate(pruned) if p is not None]
                if alive and self.config["retrain_epochs"] > 0:  # 0: no re-training (NaN)
                    retrained, _ = self._train(
                        [pruned[k] for k in alive],
                        self.data,
                        [seeds[k] for k in alive],
                        self.config["retrain_epochs"],
                        continued(recipe, len(self.data.x_train), self.config["epochs"]),
                    )
                    accuracy[i, 1, alive] = evaluate(retrained, x, labels)
                    reached[i, 1, alive] = [
                        np.nan if r is None else zero_fraction(r.learner) for r in retrained
                    ]
            dims = ("sparsity", "retrained", "seed")
            return described(
                xr.Dataset(
                    {"accuracy": (dims, accuracy), "sparsity_reached": (dims, reached)},
                    coords={"sparsity": levels, "retrained": [False, True], "seed": seeds},
                    attrs={"retrain_epochs": self.config["retrain_epochs"]},
                ),
                accuracy=DESCRIPTIONS["pruned_accuracy"],
            )

        return self._cached(rule, "sparsity", compute)

    def gradual(self, rule: str) -> xr.Dataset:
        """Cell: trained from scratch while pruned gradually to each sparsity."""

        def compute():
            learners, recipe = build(rule, self.sizes, self.seeds)
            levels, seeds, epochs = self.config["sparsities"], self.seeds, self.config["epochs"]
            accuracy = np.full((len(levels), len(seeds)), np.nan)
            reached = np.full_like(accuracy, np.nan)
            for i, level in enumerate(levels):
                gradual = gradual_recipe(
                    recipe,
                    len(self.data.x_train),
                    epochs,
                    level,
                    scope=self.config["prune_scope"],
                    minimum=self.config["min_per_layer"],
                )
                starts = [dynlearn.prune(learner, 0.0) for learner in learners]
                trained, _ = self._train(starts, self.data, seeds, epochs, gradual)
                accuracy[i] = evaluate(trained, self.data.x_test, self.data.y_test)
                reached[i] = [np.nan if t is None else zero_fraction(t.learner) for t in trained]
            dims = ("sparsity", "seed")
            return described(
                xr.Dataset(
                    {"accuracy": (dims, accuracy), "sparsity_reached": (dims, reached)},
                    coords={"sparsity": levels, "seed": seeds},
                ),
                accuracy=DESCRIPTIONS["gradual_accuracy"],
            )

        return self._cached(rule, "gradual", compute)

    def device(self, rule: str, preset: str) -> xr.Dataset:
        """Cell: trained from scratch on analog device `preset` (`"none"`: as it is, for
        reference); accuracy per epoch."""

        def compute():
            learners, recipe = build(rule, self.sizes, self.seeds)
            twin = always_on_twin(preset) if isinstance(recipe.mode, dynlearn.AlwaysOn) else None
            if twin is not None:  # not trained twice: the same computation, the same numbers
                return xr.Dataset(
                    {"accuracy": self.device(rule, twin).accuracy},
                    attrs={
                        "preset": preset,
                        "same_training_as": f"preset-{twin} (the rounding mode applies to "
                        "settle-then-update's writes only; always-on training on both devices "
                        "is the same computation: dynlearn.hardware.same_always_on_training)",
                    },
                )
            placed = learners
            if preset != "none":
                device = dynlearn.hardware.PRESETS[preset]
                placed = [
                    dynlearn.hardware.on_device(x, device, seed=s)
                    for x, s in zip(learners, self.seeds)
                ]
            epochs = self.config["epochs"]
            _, accuracy = self._train(placed, self.data, self.seeds, epochs, recipe)
            return described(
                xr.Dataset(
                    {"accuracy": (("seed", "epoch"), accuracy)},
                    coords={"seed": self.seeds, "epoch": np.arange(1, epochs + 1)},
                    attrs={"preset": preset},
                ),
                accuracy=DESCRIPTIONS["device_accuracy"],
            )

        return self._cached(rule, f"preset-{preset}", compute)

    def noise(self, rule: str) -> xr.Dataset:
        """Cell: the trained learners on noisy test inputs, one noise draw per level."""

        def compute():
            trained, _ = self._trained(rule)
            levels, x, labels = self.config["noise_stds"], self.data.x_test, self.data.y_test
            accuracy = np.stack([evaluate(trained, noisy_inputs(x, s), labels) for s in levels])
            return described(
                xr.Dataset(
                    {"accuracy": (("noise_std", "seed"), accuracy)},
                    coords={"noise_std": levels, "seed": self.seeds},
                    attrs={"noise_seed": NOISE_SEED},
                ),
                accuracy=DESCRIPTIONS["noisy_accuracy"],
            )

        return self._cached(rule, "noise", compute)

    def _save_trained(self, rule: str, template: list, trained: list) -> None:
        """Checkpoint the trained learners (a diverged seed's slot holds its initial one)."""
        alive = np.array([t is not None for t in trained])
        kept = [t if t is not None else s for t, s in zip(trained, template)]
        dynlearn.save_checkpoint(self.run_dir / "cells" / rule, (kept, alive), {"rule": rule})

    def _trained(self, rule: str) -> tuple[list, dynlearn.Recipe]:
        """The learners trained on 100% of the data (trained now if not on disk), and the
        rule's recipe."""
        learners, recipe = build(rule, self.sizes, self.seeds)
        like = (learners, np.ones(len(learners), bool))
        folder, cell = self.run_dir / "cells" / rule, self.cell(rule, "fraction-1")
        found = dynlearn.load_checkpoint(folder, like)
        if found is None or not cell.exists():
            with self.lock(cell):  # another worker may be training it: wait, look again
                found = dynlearn.load_checkpoint(folder, like)
                if found is None or not cell.exists():
                    # interrupted between the checkpoint and its cell file: train it again
                    cell.unlink(missing_ok=True)
                    self.fraction(rule, 1.0)
                    found = dynlearn.load_checkpoint(folder, like)
        (kept, alive), _ = found
        return [t if ok else None for t, ok in zip(kept, alive)], recipe


def gradual_recipe(
    recipe: dynlearn.Recipe, n_train: int, epochs: int, sparsity: float, *, scope, minimum
) -> dynlearn.Recipe:
    """`recipe` with its mode pruning gradually (`dynlearn.GradualPruning`) to `sparsity`
    over the first 75% of `epochs` epochs' updates, about 20 prunings per epoch."""
    n_batches = n_train // batch_size_for(recipe, n_train)
    mode = dynlearn.GradualPruning(
        recipe.mode,
        sparsity,
        end=max(1, int(0.75 * epochs * n_batches)),
        every=max(1, n_batches // 20),
        scope=scope,
        min_per_layer=minimum,
    )
    return recipe._replace(mode=mode)


def load_fraction(config: dict, fraction: float):
    """The study's dataset with a stratified `fraction` of its training set (of the
    `--quick` subset in a quick study); the test set is always the whole one."""
    options = quick_subset(config["dataset"], config["quick"])
    options["fraction"] = options.get("fraction", 1.0) * fraction
    return dynlearn.data.load(config["dataset"], **options)


def noisy_inputs(x, std: float) -> np.ndarray:
    """`x + std * N(0, 1)`, one fixed draw (seeded by `NOISE_SEED` and the level)."""
    rng = np.random.default_rng([NOISE_SEED, int(round(std * 1000))])
    x = np.asarray(x)
    return (x + std * rng.standard_normal(x.shape)).astype(x.dtype)


# -- assembly, table, figures --------------------------------------------------------------


def run_study(study: Study, rules: list[str]) -> xr.Dataset:
    """Compute (or load) every cell, then assemble one Dataset."""
    config = study.config
    config = LATER_SETTINGS | config
    per_rule, extras = [], []  # extras: the optional cells (gradual, devices) per rule
    for rule in rules:
        study.log(f"{rule}:")
        curves = [study.fraction(rule, f) for f in config["fractions"]]
        per_rule.append((curves, study.sparsity(rule), study.noise(rule)))
        gradual = study.gradual(rule) if config["gradual"] else None
        extras.append((gradual, [study.device(rule, p) for p in config["presets"]]))
    accuracy = np.stack(
        [np.stack([c.accuracy.values for c in curves]) for curves, _, _ in per_rule]
    )
    ds = xr.Dataset(
        {
            "accuracy": (("rule", "fraction", "seed", "epoch"), accuracy),
            "epochs_to_95": (("rule", "fraction", "seed"), epochs_to_fraction_of_final(accuracy)),
            "pruned_accuracy": (
                ("rule", "sparsity", "retrained", "seed"),
                np.stack([s.accuracy.values for _, s, _ in per_rule]),
            ),
            "sparsity_reached": (
                ("rule", "sparsity", "retrained", "seed"),
                np.stack([s.sparsity_reached.values for _, s, _ in per_rule]),
            ),
            "noisy_accuracy": (
                ("rule", "noise_std", "seed"),
                np.stack([n.accuracy.values for _, _, n in per_rule]),
            ),
            "seconds": (
                "rule",
                [
                    sum(c.attrs["seconds"] for c in curves)
                    + s.attrs["seconds"]
                    + n.attrs["seconds"]
                    + sum(cell.attrs["seconds"] for cell in _optional(extra))
                    for (curves, s, n), extra in zip(per_rule, extras)
                ],
            ),
        },
        coords={
            "rule": rules,
            "fraction": list(config["fractions"]),
            "seed": study.seeds,
            "epoch": np.arange(1, config["epochs"] + 1),
            "sparsity": list(config["sparsities"]),
            "retrained": [False, True],
            "noise_std": list(config["noise_stds"]),
        },
        # the configuration's lists are the coordinates; its scalars (and the hidden
        # sizes) are attributes
        attrs={
            "dataset": config["dataset"],
            "quick": int(config["quick"]),
            "hidden": list(config["hidden"]),
            "sizes": "-".join(map(str, study.sizes)),
            "epochs": config["epochs"],
            "retrain_epochs": config["retrain_epochs"],
            "prune_scope": config["prune_scope"],
            "noise_seed": NOISE_SEED,
            "min_per_layer": config["min_per_layer"],
        },
    )
    if config["gradual"]:
        ds["gradual_accuracy"] = (
            ("rule", "sparsity", "seed"),
            np.stack([g.accuracy.values for g, _ in extras]),
        )
    if config["presets"]:
        ds = ds.assign_coords(preset=list(config["presets"]))
        ds["device_accuracy"] = (
            ("rule", "preset", "seed", "epoch"),
            np.stack([np.stack([d.accuracy.values for d in devices]) for _, devices in extras]),
        )
    return described(ds)


def _optional(extra) -> list[xr.Dataset]:
    gradual, devices = extra
    return ([] if gradual is None else [gradual]) + list(devices)


def epochs_to_fraction_of_final(accuracy: np.ndarray, fraction: float = 0.95) -> np.ndarray:
    """First epoch (1-based) at which `accuracy[..., epoch] >= fraction * final`; NaN when the
    final accuracy is NaN (a diverged run)."""
    final = accuracy[..., -1:]
    reached = accuracy >= fraction * final
    first = np.argmax(reached, axis=-1).astype(float) + 1
    first[np.isnan(final[..., 0])] = np.nan
    return first


def table(ds: xr.Dataset) -> str:
    """Markdown: mean ± std over seeds of every constraint's accuracy, per rule."""

    def pct(values) -> str:
        values = 100 * np.asarray(values, float)
        if np.all(np.isnan(values)):
            return "diverged"
        return f"{np.nanmean(values):.1f} ± {np.nanstd(values):.1f}"

    fractions, sparsities, stds = ds.fraction.values, ds.sparsity.values, ds.noise_std.values
    layer_wise = " layer-wise" if ds.attrs.get("prune_scope") == "layer" else ""
    head = (
        ["rule"]
        + [f"data {100 * f:g}%" for f in fractions]
        + ["epochs to 95%"]
        + [f"pruned {100 * s:g}%{layer_wise} (re-trained)" for s in sparsities]
        + [f"noise {s:g}" for s in stds if s > 0]
        + ([f"gradual {100 * s:g}%" for s in sparsities] if "gradual_accuracy" in ds else [])
        + ([f"device {p}" for p in ds.preset.values] if "device_accuracy" in ds else [])
        + ["seconds"]
    )
    lines = [
        f"{ds.attrs['dataset']}, {ds.attrs['sizes']}, {ds.sizes['epoch']} epochs, "
        f"{ds.sizes['seed']} seed(s): test accuracy % (mean ± std over seeds) after the last "
        f"epoch; pruning and noise act on the network trained on all data"
        + (
            f" (at least {ds.attrs['min_per_layer']} weights kept per matrix)."
            if ds.attrs.get("min_per_layer")
            else "."
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for rule in ds.rule.values:
        r = ds.sel(rule=rule)
        final = r.accuracy.isel(epoch=-1)
        cells = [pct(final.sel(fraction=f)) for f in fractions]
        e95 = r.epochs_to_95.sel(fraction=1.0).values
        cells.append("—" if np.all(np.isnan(e95)) else f"{np.nanmean(e95):.1f}")
        for s in sparsities:
            p = r.pruned_accuracy.sel(sparsity=s)
            again = pct(p.sel(retrained=True)) if ds.attrs["retrain_epochs"] else "not re-trained"
            cells.append(f"{pct(p.sel(retrained=False))} ({again})")
        cells += [pct(r.noisy_accuracy.sel(noise_std=s)) for s in stds if s > 0]
        if "gradual_accuracy" in ds:
            cells += [pct(r.gradual_accuracy.sel(sparsity=s)) for s in sparsities]
        if "device_accuracy" in ds:
            final_on_device = r.device_accuracy.isel(epoch=-1)
            cells += [pct(final_on_device.sel(preset=p)) for p in ds.preset.values]
        cells.append(f"{float(r.seconds):.0f}")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figures(ds: xr.Dataset, run_dir: Path) -> list[Path]:
    """One figure per constraint: test accuracy (%) against the constraint's level, one
    line per rule (mean ± std over seeds; a rule has the same look in every figure)."""
    looks = dynlearn.plot.styles(sorted(str(rule) for rule in ds.rule.values))
    n_seeds = ds.sizes["seed"]
    over = f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else f"seed {int(ds.seed[0])}"
    setting = f"{ds.attrs['dataset']}, {ds.attrs['sizes']}; {over}"
    retrain = int(ds.attrs["retrain_epochs"])
    retrained = f"re-trained {retrain} epoch{'s' if retrain != 1 else ''}"
    scope = "one threshold per layer" if ds.attrs.get("prune_scope") == "layer" else "global"

    def errorbars(ax, x, values, label, look, **extra):
        accuracy = dynlearn.plot.percent(values)
        spread = accuracy.std("seed").values if n_seeds > 1 else None
        mean = accuracy.mean("seed").values
        ax.errorbar(x.values, mean, yerr=spread, capsize=2, label=label, **look | extra)

    specs = [  # (figure, title, x label, x coordinate, accuracy of a rule)
        (
            "data",
            f"less data: test accuracy after {ds.sizes['epoch']} epochs",
            "fraction of the training set (stratified; log scale)",
            "fraction",
            lambda r: r.accuracy.isel(epoch=-1),
        ),
        (
            "epochs",
            "few epochs: test accuracy after each epoch, all data",
            "epoch",
            "epoch",
            lambda r: r.accuracy.sel(fraction=1.0),
        ),
        (
            "sparsity",
            f"pruning the network trained on all data ({scope}; as is; {retrained})",
            "sparsity (fraction of the forward weights pruned)",
            "sparsity",
            None,
        ),
        (
            "noise",
            "input noise: the network trained on all data, noisy test inputs",
            "standard deviation of the Gaussian noise on the test inputs",
            "noise_std",
            lambda r: r.noisy_accuracy,
        ),
    ]
    paths = []
    for axis, title, xlabel, dim, select in specs:
        path = run_dir / f"constraints-{axis}.png"
        with dynlearn.plot.figure(path, figsize=(6.4, 3.8), title=f"{title}\n{setting}") as ax:
            for rule in ds.rule.values:
                r, look = ds.sel(rule=rule), looks[str(rule)]
                if axis == "sparsity":
                    p = r.pruned_accuracy
                    errorbars(ax, ds.sparsity, p.sel(retrained=False), f"{rule}, pruned", look)
                    errorbars(
                        ax,
                        ds.sparsity,
                        p.sel(retrained=True),
                        f"{rule}, {retrained}",
                        look,
                        linestyle="--",
                        mfc="none",
                    )
                    if "gradual_accuracy" in ds:
                        errorbars(
                            ax,
                            ds.sparsity,
                            r.gradual_accuracy,
                            f"{rule}, gradual",
                            look,
                            linestyle=":",
                            marker="x",
                        )
                else:
                    errorbars(ax, ds[dim], select(r), str(rule), look)
            if axis == "data":
                ax.set_xscale("log")
                ax.set_xticks(ds.fraction.values, [f"{f:g}" for f in ds.fraction.values])
                ax.minorticks_off()
            ax.set(xlabel=xlabel, ylabel="test accuracy (%)")
            ax.legend(fontsize="small")
        paths.append(path)
    return paths


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    known = sorted(registry.entries("rules"), key=lambda rule: (rule != "bp", rule))
    parser = argparse.ArgumentParser(prog="dynlearn run constraints", description=__doc__)
    parser.add_argument(
        "--dataset",
        default=None,
        choices=["mnist5k", "mnist", "fashion_mnist", "digits", "yinyang", "mnist1d"],
        help="default: mnist5k (quick: yinyang)",
    )
    parser.add_argument(
        "--rules", nargs="+", default=None, help=f"default: all registered, {known}"
    )
    parser.add_argument(
        "--hidden", type=positive_int, nargs="+", default=[100], help="hidden layer sizes"
    )
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=fraction, nargs="+", help=f"default: {FRACTIONS}")
    parser.add_argument(
        "--sparsities", type=real(0.0, 1.0), nargs="+", help=f"default: {SPARSITIES}"
    )
    parser.add_argument("--noise-stds", type=non_negative, nargs="+", help=f"default: {NOISE_STDS}")
    parser.add_argument("--retrain-epochs", type=non_negative_int, default=1)
    parser.add_argument(
        "--prune-scope",
        choices=["global", "layer"],
        default="global",
        help="one magnitude threshold over all layers (default) or one per weight matrix",
    )
    parser.add_argument(
        "--gradual",
        action="store_true",
        help="also train with gradual pruning to each sparsity (dynlearn.GradualPruning)",
    )
    parser.add_argument(
        "--min-per-layer",
        type=non_negative_int,
        default=0,
        help="weights kept per matrix in every pruning (Gupta et al.'s minimum; default 0)",
    )
    parser.add_argument(
        "--presets",
        nargs="+",
        default=[],
        choices=sorted(dynlearn.hardware.PRESETS),
        help="also train on these analog devices (dynlearn.hardware.PRESETS)",
    )
    parser.add_argument(
        "--run-dir", type=dynlearn.writable_folder, default=None, help="new, or a study to resume"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: a small training set (960 Yin-Yang samples unless --dataset, else "
        "20%% of its training set), 2 epochs, 1 seed; unless given, rules bp and le, "
        "fractions 1 and 0.1, sparsities 0.5 and 0.9, noise 0 and 0.3",
    )
    parser.add_argument(
        "--cluster",
        type=_cluster.option,
        default=None,
        help="compute the cells on a dask.distributed cluster, one task each: local (a "
        "LocalCluster, one worker per core), local:N (N workers) or a scheduler's address "
        "(tcp://HOST:8786); every worker must see --run-dir at the same path",
    )
    opts = parser.parse_args(argv)
    opts.dataset = opts.dataset or ("yinyang" if opts.quick else "mnist5k")
    full = {
        "rules": known,
        "fractions": list(FRACTIONS),
        "sparsities": list(SPARSITIES),
        "noise_stds": list(NOISE_STDS),
    }
    for name, value in (QUICK if opts.quick else full).items():
        if getattr(opts, name) is None:
            setattr(opts, name, list(value))
    unknown = sorted(set(opts.rules) - set(known))
    if unknown:
        parser.error(f"--rules: unknown {unknown}; registered: {known}")
    if 1.0 not in opts.fractions:
        parser.error("--fractions must include 1.0 (pruning and noise use the full-data network)")
    if opts.quick:
        opts.epochs, opts.seeds = 2, [0]
    config = {
        "dataset": opts.dataset,
        "quick": opts.quick,
        "hidden": opts.hidden,
        "epochs": opts.epochs,
        "seeds": opts.seeds,
        "fractions": sorted(opts.fractions, reverse=True),
        "sparsities": opts.sparsities,
        "noise_stds": opts.noise_stds,
        "retrain_epochs": opts.retrain_epochs,
        "prune_scope": opts.prune_scope,
        "presets": opts.presets,
        "gradual": opts.gradual,
        "min_per_layer": opts.min_per_layer,
    }
    run_dir = opts.run_dir or dynlearn.run_folder(Path("runs"), "constraints")
    tic = time.perf_counter()
    study = Study(run_dir, config)
    try:
        if opts.cluster:
            study.computed += _cluster.run(opts.cluster, study, cells(config, opts.rules))
        ds = run_study(study, opts.rules)  # on a cluster: only loads the cells
    except KeyboardInterrupt:
        print(
            f"interrupted: the finished cells are kept in {run_dir}; run again with "
            f"--run-dir {run_dir} (same settings) to continue."
        )
        raise
    dynlearn.save_netcdf(ds, Path(run_dir) / "constraints.nc")
    text = table(ds)
    (Path(run_dir) / "constraints.md").write_text(text + "\n")
    figures(ds, Path(run_dir))
    print(text)
    print(
        f"{len(study.computed)} cell(s) computed, the rest loaded; "
        f"{time.perf_counter() - tic:.0f} s; written to {run_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
