"""Figures written as PNG into a run folder (matplotlib, headless)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

__all__ = ["trajectory", "learning_curves", "alignment", "figure"]


def trajectory(
    ds: xr.Dataset, variables: Sequence[str], path: str | Path, *, max_units: int = 8
) -> Path:
    """Chosen variables of a trajectory Dataset over time, one panel each.

    Per-unit variables show their first `max_units` units; batched runs show sample 0.
    """
    missing = [v for v in variables if v not in ds]
    if missing:
        raise ValueError(f"variables: {missing} not in the Dataset; it has {sorted(ds.data_vars)}.")
    fig, axes = plt.subplots(
        len(variables), 1, figsize=(6, 2.2 * len(variables)), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], variables):
        da = ds[name]
        if "sample" in da.dims:
            da = da.isel(sample=0)
        unit_dims = [d for d in da.dims if d != "time"]
        if unit_dims:
            da = da.stack(unit=unit_dims).isel(unit=slice(0, max_units))
            ax.plot(da.time, da.values, lw=1)
        else:
            ax.plot(da.time, da.values, lw=1.5)
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel(f"time ({ds.time.attrs.get('units', '')})")
    return _save(fig, path)


def learning_curves(metrics: xr.Dataset | dict[str, xr.Dataset], path: str | Path) -> Path:
    """Loss and accuracies per epoch from `fit` metrics (one Dataset, or several by name)."""
    runs = metrics if isinstance(metrics, dict) else {"": metrics}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, ds in runs.items():
        prefix = f"{name} " if name else ""
        ax_loss.plot(ds.epoch, ds.train_loss, marker="o", label=f"{prefix}train")
        ax_acc.plot(ds.epoch, ds.train_accuracy, marker="o", ls="--", label=f"{prefix}train")
        ax_acc.plot(ds.epoch, ds.test_accuracy, marker="o", label=f"{prefix}test")
    ax_loss.set(xlabel="epoch", ylabel="train loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    ax_acc.legend(fontsize="small")
    return _save(fig, path)


def alignment(ds: xr.Dataset, variables: Sequence[str], path: str | Path) -> Path:
    """Angles (degrees) over time, e.g. between feedback weights and W^T; 90 = unaligned."""
    missing = [v for v in variables if v not in ds]
    if missing:
        raise ValueError(f"variables: {missing} not in the Dataset; it has {sorted(ds.data_vars)}.")
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name in variables:
        ax.plot(ds.time, ds[name], label=name)
    ax.axhline(90.0, color="grey", lw=0.8, ls=":")
    ax.set(xlabel=f"time ({ds.time.attrs.get('units', '')})", ylabel="angle (deg)", ylim=(0, 180))
    ax.legend(fontsize="small")
    return _save(fig, path)


@contextlib.contextmanager
def figure(path: str | Path, *, figsize=(4.8, 3.4)):
    """`with figure(path) as ax:` draw on one axes; the PNG is written on exit."""
    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield ax
    finally:
        _save(fig, path)


def _save(fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
