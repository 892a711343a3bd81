"""The pieces of `dynlearn demo`: every registered learning rule trained briefly, and the
theory checks that declare themselves part of the demo, each result saved to the run
folder. Rules and checks come from the registry; nothing here names one."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import jax
import numpy as np

from . import registry
from ._dataset import save_netcdf
from ._fit import fit

__all__ = ["train_rules", "run_checks", "demo_checks"]


def demo_checks() -> list[str]:
    """The registered theory checks made with `script_main(..., demo=True)`."""
    return sorted(
        name
        for name, entry in registry.entries("checks").items()
        if getattr(entry.load(), "demo", False)
    )


def train_rules(
    data, run_dir: Path, *, hidden: int, epochs: int, rules: list[str] | None = None
) -> list[dict]:
    """Train every registered rule (or `rules`) on `data` with layer sizes `[n_in, hidden,
    n_out]`, seed 0, its own mode and batch size; write `rule-<name>.nc` (per-epoch
    metrics) and `rules.png` (test accuracy per epoch) to `run_dir`.

    **Returns:** one row per rule: rule, learner, mode, accuracy, seconds.
    """
    from . import plot

    names = sorted(set(rules if rules is not None else registry.entries("rules")))
    sizes = [data.n_features, hidden, data.n_classes]
    rows, curves = [], {}
    for name in names:
        tic = time.perf_counter()
        learner, mode, batch_size = registry.load("rules", name)(sizes, jax.random.key(0))
        metrics = fit(
            learner, data, mode, epochs=epochs, batch_size=batch_size, seed=0, progress=False
        ).metrics
        save_netcdf(metrics, Path(run_dir) / f"rule-{name}.nc")
        curves[name] = metrics.test_accuracy.values
        rows.append(
            {
                "rule": name,
                "learner": type(learner).__name__,
                "mode": type(mode).__name__,
                "accuracy": float(metrics.test_accuracy[-1]),
                "seconds": time.perf_counter() - tic,
            }
        )
    looks = plot.styles(curves)
    data_name = getattr(data, "name", "data")
    title = f"every rule on {data_name}, {sizes[0]}-{hidden}-{sizes[-1]}, seed 0"
    with plot.figure(Path(run_dir) / "rules.png", figsize=(5.5, 3.8), title=title) as ax:
        for name, curve in curves.items():
            ax.plot(np.arange(1, len(curve) + 1), 100 * curve, **looks[name], label=name)
        ax.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax.legend(fontsize="x-small", ncol=2 if len(curves) > 12 else 1)
    return rows


def run_checks(names, run_dir: Path) -> list[dict]:
    """Run the fast version of each registered theory check in `names`, its printout
    going to `run_dir/checks.log` and its Dataset and figure to `run_dir`.

    **Returns:** one row per check: check, passed, seconds.
    """
    known = registry.entries("checks")
    rows = []
    log = Path(run_dir) / "checks.log"
    for name in names:
        tic = time.perf_counter()
        with open(log, "a") as out, contextlib.redirect_stdout(out):
            code = known[name].load()(["--fast", "--run-dir", str(run_dir)])
        rows.append({"check": name, "passed": code == 0, "seconds": time.perf_counter() - tic})
    return rows
