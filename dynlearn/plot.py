"""Figures in one house style (matplotlib, headless), written into a run folder.

- Lines: `styles(names)` gives each name its own colour *and* marker (10 colours x 7
  markers: 70 distinct pairs, then line styles), so any number of rules stays readable in
  print and for colour-blind readers; the same order gives the same style in every figure.
- Labels: `axis_label(da)` is the variable's `long_name (units)`; `percent(da)` turns a
  fraction into percent for plotting.
- On saving, every linear axes whose lines all have integer x values gets integer ticks, legends
  move outside the data (right of the axes), and `figure_problems` lints the result: no
  title, no axis label, or two labelled lines with the same colour, marker and line style
  warn (`FigureWarning`).
- PNG always; also SVG/PDF next to it with `set_formats("png", "svg")` or the environment
  variable `DYNLEARN_FIGURE_FORMATS=png,svg`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

# Headless by default (the CLI, scripts, CI); a backend chosen before (pyplot already
# imported, or MPLBACKEND: Jupyter's kernel sets it to its inline backend) is kept.
if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = [
    "trajectory",
    "learning_curves",
    "alignment",
    "figure",
    "style",
    "styles",
    "axis_label",
    "percent",
    "figure_problems",
    "set_formats",
    "using_formats",
    "parse_formats",
    "formats",
    "FigureWarning",
]

COLORS = tuple(plt.get_cmap("tab10").colors)
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", ":", "-.")
VECTOR_FORMATS = ("svg", "pdf")
_FORMATS_VARIABLE = "DYNLEARN_FIGURE_FORMATS"
_formats: tuple[str, ...] | None = None


class FigureWarning(UserWarning):
    """A figure was saved with a problem `figure_problems` names."""


def style(index: int) -> dict:
    """The `index`-th line style: colour `index mod 10`, marker `index mod 7` (distinct
    pairs for the first 70), then the line style changes."""
    if index < 0:
        raise ValueError(f"index must be >= 0; got {index}.")
    combos = len(COLORS) * len(MARKERS)
    return {
        "color": COLORS[index % len(COLORS)],
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[(index // combos) % len(LINESTYLES)],
    }


def styles(names: Iterable[str]) -> dict[str, dict]:
    """`{name: style(i)}` in the order given (pass a sorted list for the same style of
    a name in every figure)."""
    return {name: style(i) for i, name in enumerate(names)}


def axis_label(da: xr.DataArray) -> str:
    """`long_name (units)` of a variable (no units when `"1"`, the name if no long_name)."""
    name = da.attrs.get("long_name", str(da.name))
    units = da.attrs.get("units", "")
    return name if units in ("", "1") else f"{name} ({units})"


def percent(da: xr.DataArray) -> xr.DataArray:
    """A fraction (e.g. an accuracy stored in [0, 1]) as percent, its label saying so."""
    name = da.attrs.get("long_name", str(da.name)).replace(", fraction in [0, 1]", "")
    return (100 * da).assign_attrs(long_name=name, units="%")


def parse_formats(text: str) -> tuple[str, ...]:
    """`"png,svg"` -> `("png", "svg")` (checked; PNG always included)."""
    return _check_formats([n.strip() for n in text.split(",") if n.strip()])


@contextlib.contextmanager
def using_formats(*names: str):
    """`with using_formats("png", "pdf"):` figures drawn inside are also written as PDF."""
    global _formats
    previous, _formats = _formats, _check_formats(names)
    try:
        yield
    finally:
        _formats = previous


def set_formats(*names: str) -> None:
    """File formats written by every figure from now on (`"png"` is always among them)."""
    global _formats
    _formats = _check_formats(names)


def formats() -> tuple[str, ...]:
    """The formats figures are written in: `set_formats`, else `DYNLEARN_FIGURE_FORMATS`
    (comma-separated), else PNG only."""
    if _formats is not None:
        return _formats
    text = os.environ.get(_FORMATS_VARIABLE, "")
    try:
        return parse_formats(text)
    except ValueError as err:
        raise ValueError(f"{_FORMATS_VARIABLE}: {err}") from None


def _check_formats(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n.lower() not in ("png", *VECTOR_FORMATS)]
    if unknown:
        raise ValueError(f"unknown figure formats {unknown}; choose from png, svg, pdf.")
    return ("png",) + tuple(dict.fromkeys(n.lower() for n in names if n.lower() != "png"))


def trajectory(
    ds: xr.Dataset,
    variables: Sequence[str],
    path: str | Path,
    *,
    max_units: int = 8,
    title: str | None = None,
) -> Path:
    """Chosen variables of a trajectory Dataset over time, one panel each, labelled by
    their `long_name`; each panel says which units (and sample) it shows."""
    missing = [v for v in variables if v not in ds]
    if missing:
        raise ValueError(f"variables: {missing} not in the Dataset; it has {sorted(ds.data_vars)}.")
    fig, axes = plt.subplots(
        len(variables), 1, figsize=(6.4, 2.3 * len(variables)), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], variables):
        da, shown = ds[name], []
        if "sample" in da.dims:
            da = da.isel(sample=0)
            shown.append(f"sample 0 of {ds.sizes['sample']}")
        unit_dims = [d for d in da.dims if d != "time"]
        if unit_dims:
            stacked = da.stack(unit=unit_dims)
            n = stacked.sizes["unit"]
            stacked = stacked.isel(unit=slice(0, max_units))
            for k in range(stacked.sizes["unit"]):
                ax.plot(da.time, stacked.values[:, k], lw=1, color=COLORS[k % len(COLORS)])
            shown.insert(0, f"units 1-{stacked.sizes['unit']} of {n}" if n > max_units else "")
        else:
            ax.plot(da.time, da.values, lw=1.5, color=COLORS[0])
        ax.set_ylabel(_quantity_label(da))
        note = ", ".join(s for s in shown if s)
        ax.set_title(da.attrs.get("long_name", name) + (f" [{note}]" if note else ""), fontsize=9)
    axes[-1, 0].set_xlabel(axis_label(ds.time))
    fig.suptitle(title or _default_title(ds))
    return _save(fig, path)


def learning_curves(
    metrics: xr.Dataset | dict[str, xr.Dataset], path: str | Path, *, title: str | None = None
) -> Path:
    """Loss and accuracies (percent) per epoch from `fit` metrics (one Dataset, or several
    by name)."""
    runs = metrics if isinstance(metrics, dict) else {"": metrics}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.4))
    looks = styles(runs)
    for name, ds in runs.items():
        prefix = f"{name} " if name else ""
        look = looks[name]
        ax_loss.plot(ds.epoch, ds.train_loss, **look, label=f"{prefix}train")
        ax_acc.plot(
            ds.epoch,
            percent(ds.train_accuracy),
            **look | {"linestyle": "--"},
            mfc="none",
            label=f"{prefix}train",
        )
        ax_acc.plot(ds.epoch, percent(ds.test_accuracy), **look, label=f"{prefix}test")
    first = next(iter(runs.values()))
    ax_loss.set(xlabel="epoch", ylabel=axis_label(first.train_loss), title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend(fontsize="small")
    fig.suptitle(title or "learning curves")
    return _save(fig, path)


def alignment(
    ds: xr.Dataset, variables: Sequence[str], path: str | Path, *, title: str | None = None
) -> Path:
    """Angles (degrees) over time, e.g. between feedback weights and W^T; 90 = unaligned."""
    missing = [v for v in variables if v not in ds]
    if missing:
        raise ValueError(f"variables: {missing} not in the Dataset; it has {sorted(ds.data_vars)}.")
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, look in styles(variables).items():
        ax.plot(
            ds.time, ds[name], **look, markevery=0.1, label=ds[name].attrs.get("long_name", name)
        )
    ax.axhline(90.0, color="grey", lw=0.8, ls=":")
    ax.set(xlabel=axis_label(ds.time), ylabel="angle (degree)", ylim=(0, 180))
    ax.set_title(title or "alignment (90 degrees = unaligned)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def raster(
    ds: xr.Dataset, path: str | Path, *, max_units: int = 100, title: str | None = None
) -> Path:
    """Spike raster (a dot per bin with a spike, `dynlearn.spiking.raster`'s `spikes`) of
    the first `max_units` units, over time."""
    if "spikes" not in ds or set(ds["spikes"].dims) != {"time", "unit"}:
        raise ValueError(
            "ds: expected a Dataset from dynlearn.spiking.raster (spikes over time and unit)."
        )
    spikes = ds["spikes"].isel(unit=slice(0, max_units)).transpose("time", "unit")
    steps, units = np.nonzero(spikes.values)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.scatter(ds.time.values[steps], spikes.unit.values[units], s=2, color=COLORS[0])
    ax.set(xlabel=axis_label(ds.time), ylabel="neuron")
    shown = spikes.sizes["unit"]
    note = f" (units 1-{shown} of {ds.sizes['unit']})" if ds.sizes["unit"] > shown else ""
    ax.set_title((title or "spike raster") + note)
    return _save(fig, path)


@contextlib.contextmanager
def figure(path: str | Path, *, figsize=(4.8, 3.4), title: str | None = None, ncols: int = 1):
    """`with figure(path, title=...) as ax:` draw on one axes (`ncols > 1`: a tuple of axes
    side by side, under one figure title); saved (house style, lint) on exit."""
    fig, ax = plt.subplots(1, ncols, figsize=figsize)
    if title and ncols == 1:
        ax.set_title(title)
    elif title:
        fig.suptitle(title)
        ax = tuple(ax)
    try:
        yield ax
    finally:
        _save(fig, path)


def figure_problems(fig) -> list[str]:
    """What a reader would trip over in `fig`: axes with data but no title (nor a figure
    title), no x or y label, or labelled lines that share colour, marker and line style."""
    problems = []
    has_suptitle = bool(fig.get_suptitle())
    for i, ax in enumerate(fig.axes):
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
        if not (lines or ax.collections or ax.images or ax.patches):
            continue
        where = f"axes {i}" + (f" ({ax.get_title()!r})" if ax.get_title() else "")
        if not ax.get_title() and not has_suptitle:
            problems.append(f"{where}: no title")
        shared = [ax] + [a for a in fig.axes if ax.get_shared_x_axes().joined(ax, a)]
        if not any(a.get_xlabel() for a in shared):
            problems.append(f"{where}: no x label")
        if not ax.get_ylabel():
            problems.append(f"{where}: no y label")
        seen: dict[tuple, str] = {}
        for ln in lines:
            label = ln.get_label()
            if label.startswith("_"):
                continue
            key = (matplotlib.colors.to_hex(ln.get_color()), ln.get_linestyle(), ln.get_marker())
            if key in seen and seen[key] != label:
                problems.append(f"{where}: lines {seen[key]!r} and {label!r} look the same")
            seen.setdefault(key, label)
    return problems


def _quantity_label(da: xr.DataArray) -> str:
    """The quantity without its layer (`membrane potential (u) of hidden1` -> `membrane
    potential (u)`), with units: the panel's title names the layer."""
    quantity = da.attrs.get("long_name", str(da.name)).split(" of ")[0]
    units = da.attrs.get("units", "")
    return quantity if units in ("", "1") else f"{quantity} ({units})"


def _default_title(ds: xr.Dataset) -> str:
    system = ds.attrs.get("system", "")
    return f"{system} trajectory" if system else "trajectory"


def _integer_ticks(ax) -> None:
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    if ax.get_xscale() != "linear":  # log axes keep their decades
        return
    if lines and all(_integral(ln.get_xdata()) for ln in lines):
        values = np.unique(np.concatenate([np.asarray(ln.get_xdata(), float) for ln in lines]))
        if values[np.isfinite(values)].size == 1:  # one epoch: a tick there, not 0.95..1.05
            ax.set_xticks(values[np.isfinite(values)])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _integral(values) -> bool:
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return True
    if values.dtype.kind != "f":
        return False
    finite = values[np.isfinite(values)]
    return finite.size > 0 and bool(np.all(finite == np.round(finite)))


def _legend_outside(ax) -> None:
    legend = ax.get_legend()
    if legend is None:
        return
    handles, labels = ax.get_legend_handles_labels()
    fontsize = legend.get_texts()[0].get_fontsize() if legend.get_texts() else "small"
    title = legend.get_title().get_text()
    ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=fontsize,
        title=title or None,
        frameon=False,
    )


def finish(fig) -> None:
    """The house style applied to a drawn figure: integer ticks, legends outside."""
    for ax in fig.axes:
        _integer_ticks(ax)
        _legend_outside(ax)
    fig.tight_layout()


def _save(fig, path) -> Path:
    finish(fig)
    problems = figure_problems(fig)
    if problems:
        warnings.warn(f"{Path(path).name}: {'; '.join(problems)}", FigureWarning, stacklevel=3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats():
        fig.savefig(path.with_suffix(f".{fmt}"), dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
