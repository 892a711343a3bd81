"""A helper for circuits' demos: train briefly, save the metrics, return a table row."""

from __future__ import annotations

import re
import time
from pathlib import Path

from ._dataset import save_netcdf
from ._fit import fit

__all__ = ["demo_training"]


def demo_training(
    demo: str,
    what: str,
    learner,
    data,
    run_dir: Path,
    *,
    epochs: int,
    batch_size: int = 32,
    **fit_kwargs,
) -> dict:
    """`fit` `learner` on `data` for a few epochs, write `<demo>-<what>-metrics.nc` into
    `run_dir`, and return the demo-table row (demo, what, result, seconds)."""
    tic = time.perf_counter()
    metrics = fit(
        learner, data, epochs=epochs, batch_size=batch_size, progress=False, **fit_kwargs
    ).metrics
    slug = re.sub(r"[^a-z0-9]+", "-", what.split(",")[0].lower()).strip("-")
    save_netcdf(metrics, Path(run_dir) / f"{demo}-{slug}-metrics.nc")
    return {
        "demo": demo,
        "what": f"{what}, {getattr(data, 'name', 'data')}, {epochs} epoch(s)",
        "result": f"test accuracy {float(metrics.test_accuracy[-1]):.3f}",
        "seconds": time.perf_counter() - tic,
    }
