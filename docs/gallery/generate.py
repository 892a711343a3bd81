"""The gallery's pages, generated at build time (mkdocs-gen-files) from stored results.

One page per theory script (`theory/<name>.py`), made from what `docs/gallery/refresh.py`
stored in `docs/gallery/results/`: the script's Dataset (`<name>.nc`: its claim, pass or
fail, full or fast version, measured numbers), its figure (`<name>.png`), its run time
(`index.json`) and the module's docstring (the statement, the tolerance, the paper's
numbers). A script without a stored result gets a page that says so. The hardware study's
page comes from `hardware_study.nc` (the stored cells, summarised by refresh.py). Each
experiment whose documented command `refresh.py --experiments` ran has a page made from
`results/experiments/NAME/` (its summary Datasets, figures and tables) and
`results/experiments/index.json` (the command, run time, date): the figures, the final
accuracies (mean ± std over seeds) from the Datasets, the module's docstring (the papers'
numbers), every measured number and the provenance; the other experiments are listed with
their commands. Nothing here runs a script or needs JAX.
"""

from __future__ import annotations

import ast
import json
import math
import pkgutil
import re
import tomllib
from pathlib import Path

import mkdocs_gen_files
import numpy as np
import xarray as xr

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # run without __file__: from the repository root
    HERE = Path("docs/gallery").resolve()
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
EXPERIMENT_RESULTS = RESULTS / "experiments"
DOCS = ROOT / "docs"
PROVENANCE = ("claim", "passed", "fast", "created", "command", "versions", "code_revision")
MAX_SHOWN = 80  # data variables up to this many values are tabulated
BADGE = {True: "PASS", False: "FAIL"}


# --- reading ------------------------------------------------------------------------------


def script_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "theory")]) if not m.ispkg)


def docstring(path: Path) -> str:
    try:
        return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError):
        return ""


def read_index(path: Path) -> dict:
    """A stored index (`{name: entry}`); empty if missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_index() -> dict:
    return read_index(RESULTS / "index.json")


def load_result(name: str) -> xr.Dataset | None:
    path = RESULTS / f"{name}.nc"
    return load_dataset(path) if path.exists() else None


# --- Markdown from docstrings -------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`[^`]*`)")
_ITEM = re.compile(r"^(- |\d+\. |\(\d+\) )")


def _escape(text: str) -> str:
    """Escape what Markdown would read as markup in plain prose (not in code spans)."""
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = (
            parts[i]
            .replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("*", r"\*")
            .replace("$", r"\$")
            .replace("[", r"\[")
        )
    return "".join(parts)


def _prose(block: str) -> str:
    """A block of prose: markup escaped; list items ("- ", "1. ", "(1) ") start lists."""
    lines = []
    for line in _escape(block).splitlines():
        if line.startswith("#"):
            line = "\\" + line
        if _ITEM.match(line):
            if line.startswith("("):  # "(1) ..." is no Markdown list: make it one
                line = "- " + line
            if lines:
                lines.append("")
        lines.append(line)
    return "\n".join(lines)


def docstring_markdown(text: str) -> tuple[str, str]:
    """(the claim, the rest as Markdown) from a theory script's docstring. Indented blocks
    become code blocks; the trailing "Run: ..." paragraph is left out (the page gives the
    commands)."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    claim = ""
    if blocks and blocks[0].startswith("Claim:"):
        claim = " ".join(blocks.pop(0).removeprefix("Claim:").split())
    if blocks and blocks[-1].startswith("Run:"):
        blocks.pop()
    out = []
    for block in blocks:
        lines = block.splitlines()
        if all(line.startswith("    ") or not line.strip() for line in lines):
            body = "\n".join(line[4:] for line in lines)
            out.append(f"```text\n{body}\n```")
        else:
            out.append(_prose(block))
    return claim, "\n\n".join(out)


# --- numbers ------------------------------------------------------------------------------


def fmt(value) -> str:
    """A number or string for a table cell."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    if isinstance(value, np.ndarray):
        return ", ".join(fmt(v) for v in value.ravel()[:12]) + (" …" if value.size > 12 else "")
    return str(value)


def cell(text) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def described(var) -> str:
    """ "long_name (units)" of a variable, or its name."""
    long_name = var.attrs.get("long_name", "")
    units = var.attrs.get("units", "")
    text = long_name or ""
    if units and units != "1":
        text += f" ({units})" if text else f"({units})"
    return text


def scalars_table(ds: xr.Dataset) -> str:
    """The Dataset's measured attributes and 0-d variables."""
    rows = [(k, fmt(v), "") for k, v in ds.attrs.items() if k not in PROVENANCE]
    rows += [
        (name, fmt(var.values.item()), described(var))
        for name, var in ds.data_vars.items()
        if var.ndim == 0
    ]
    if not rows:
        return ""
    lines = ["| quantity | value | description |", "| --- | --- | --- |"]
    lines += [f"| `{cell(k)}` | {cell(v)} | {cell(d)} |" for k, v, d in rows]
    return "\n".join(lines)


def _label(ds: xr.Dataset, dim: str, i: int) -> str:
    if dim in ds.coords:
        return fmt(ds[dim].values[i])
    return str(i)


def _shown(var) -> bool:
    return var.ndim >= 1 and var.size <= MAX_SHOWN and var.dtype.kind in "biufUSO"


def vectors_table(ds: xr.Dataset, dim: str, columns: dict[str, np.ndarray]) -> str:
    """1-D variables along the same dimension, side by side (rows: the coordinate)."""
    header = [dim, *columns]
    lines = ["| " + " | ".join(f"`{cell(h)}`" for h in header) + " |"]
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    for i in range(ds.sizes[dim]):
        row = [_label(ds, dim, i)] + [fmt(np.asarray(v)[i]) for v in columns.values()]
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def matrix_table(ds: xr.Dataset, var: xr.DataArray) -> str:
    """A variable of 2 or more dimensions: columns along its last dimension, a row per
    combination of the others."""
    *row_dims, col_dim = var.dims
    values = np.asarray(var.values).reshape(-1, var.sizes[col_dim])
    header = [*row_dims[:-1], f"{row_dims[-1]} \\\\ {col_dim}"] + [
        _label(ds, col_dim, j) for j in range(var.sizes[col_dim])
    ]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    shape = [var.sizes[d] for d in row_dims]
    for r, index in enumerate(np.ndindex(*shape)):
        labels = [_label(ds, d, i) for d, i in zip(row_dims, index)]
        row = labels + [fmt(v) for v in values[r]]
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _about(ds: xr.Dataset, name: str) -> str:
    about = described(ds[name])
    return f"- `{name}`" + (f": {cell(_escape(about))}" if about else "")


def data_section(ds: xr.Dataset) -> str:
    """Small data variables as tables (1-D ones sharing a dimension together); larger ones
    listed; the coordinates described."""
    out = []
    vectors: dict[str, list[str]] = {}
    big = []
    for name, var in ds.data_vars.items():
        if var.ndim == 0:
            continue
        single = [d for d in var.dims if var.sizes[d] == 1]
        squeezed = var.squeeze(single, drop=False) if len(single) < var.ndim else var
        fixed = ", ".join(f"{d} = {_label(ds, d, 0)}" for d in single if d not in squeezed.dims)
        note = f"; {fixed}" if fixed else ""
        if _shown(squeezed) and squeezed.ndim == 1 and not fixed:
            vectors.setdefault(squeezed.dims[0], []).append(name)
        elif _shown(squeezed) and squeezed.ndim == 1:
            out.append(_about(ds, name) + f" ({fixed})")
            out.append(vectors_table(ds, squeezed.dims[0], {name: squeezed.values}))
        elif _shown(squeezed):
            *rows, col = squeezed.dims
            out.append(
                _about(ds, name) + f" (rows: {', '.join(f'`{d}`' for d in rows)}; "
                f"columns: `{col}`{note})"
            )
            out.append(matrix_table(ds, squeezed))
        else:
            sizes = ", ".join(f"{d}: {n}" for d, n in var.sizes.items())
            big.append(_about(ds, name) + f" ({sizes})")
    for dim, names in vectors.items():
        columns = {n: ds[n].values for n in names}
        out.insert(
            0, vectors_table(ds, dim, columns) + "\n\n" + "\n".join(_about(ds, n) for n in names)
        )
    if big:
        out.append("Larger variables (in the stored Dataset, not shown here):\n\n" + "\n".join(big))
    coords = [_about(ds, name) for name, c in ds.coords.items() if described(c)]
    if coords:
        out.append("Coordinates:\n\n" + "\n".join(coords))
    return "\n\n".join(out)


def seconds(entry: dict) -> str:
    s = entry.get("seconds")
    if s is None:
        return "—"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


# --- pages --------------------------------------------------------------------------------


def theory_page(name: str, ds: xr.Dataset | None, entry: dict) -> tuple[str, dict]:
    """The page of one theory script, and its row of the index."""
    claim_long, body = docstring_markdown(docstring(ROOT / "theory" / f"{name}.py"))
    reproduce = (
        "```bash\n"
        f"dynlearn check {name}            # or: python -m theory.{name} --run-dir DIR\n"
        f"dynlearn check {name} --fast     # the small version that pytest runs\n"
        f"python docs/gallery/refresh.py {name}   # refresh this page's stored result\n"
        "```"
    )
    lines = [f"# `{name}`", ""]
    if ds is None:
        lines += [
            f"**Claim:** {_escape(claim_long)}" if claim_long else "",
            "",
            '!!! warning "No stored result"',
            f"    No result of `theory/{name}.py` is stored in `docs/gallery/results/`; "
            "run it (below) to produce one.",
            "",
        ]
        if entry.get("outcome") == "crash":
            lines += [
                '!!! failure "The last refresh crashed"',
                f"    Exit status {entry.get('returncode')} after {seconds(entry)}:",
                "",
                "    ```text",
                *("    " + line for line in entry.get("error", "").splitlines()),
                "    ```",
                "",
            ]
        lines += ["## Statement", "", body, "", "## Reproduce", "", reproduce, ""]
        row = {"name": name, "claim": claim_long, "passed": None, "fast": None, "entry": entry}
        return "\n".join(lines), row

    claim = str(ds.attrs.get("claim", claim_long))
    passed = bool(int(ds.attrs.get("passed", 0)))
    fast = bool(int(ds.attrs.get("fast", 0)))
    full_attempt = entry.get("full_attempt", {})
    if not fast:
        version = "**full** version"
    elif full_attempt.get("outcome") == "timeout":
        version = (
            "**fast** version (`--fast`, the small version pytest runs: the full one did not "
            f"finish within the refresh's budget of {full_attempt.get('budget_s', 180):.0f} s)"
        )
    elif full_attempt:
        version = (
            "**fast** version (`--fast`, the small version pytest runs: the full one "
            f"stopped with exit status {full_attempt.get('returncode')} without a result)"
        )
    else:
        version = "**fast** version (`--fast`, the small version pytest runs)"
    lines += [
        f'!!! {"success" if passed else "failure"} "{BADGE[passed]}: {cell(claim)}"',
        f"    Measured with the {version}; run time {seconds(entry)}"
        + (f" (stored {ds.attrs['created'][:10]})" if "created" in ds.attrs else "")
        + ".",
        "",
    ]
    if (RESULTS / f"{name}.png").exists():
        lines += [f"![{name}: figure of the stored result]({name}.png)", ""]
    lines += ["## Statement", ""]
    if claim_long:
        lines += [f"**Claim:** {_escape(claim_long)}", ""]
    lines += [body or "(no docstring)", ""]
    lines += [f"The stored Dataset: [`{name}.nc`]({name}.nc) (xarray, netCDF).", ""]
    table = scalars_table(ds)
    data = data_section(ds)
    lines += ["## Measured", ""]
    if table:
        lines += [table, ""]
    if data:
        lines += [data, ""]
    lines += ["## Reproduce", "", reproduce, ""]
    provenance = [
        f"- {key}: `{cell(ds.attrs[key])}`"
        for key in ("created", "versions", "code_revision")
        if key in ds.attrs
    ]
    if provenance:
        lines += ["## Provenance", "", *provenance, ""]
    row = {"name": name, "claim": claim, "passed": passed, "fast": fast, "entry": entry}
    return "\n".join(lines), row


def experiments() -> list[tuple[str, str]]:
    """(command name, module) of every registered experiment (pyproject.toml)."""
    try:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    except (OSError, ValueError):
        return []
    entries = project.get("project", {}).get("entry-points", {}).get("dynlearn.experiments", {})
    return [(name, target.split(":")[0]) for name, target in entries.items()]


def results_pages() -> dict[str, list[tuple[str, str]]]:
    """Experiment name -> the docs/results pages that quote `dynlearn run <name>`."""
    found: dict[str, list[tuple[str, str]]] = {}
    for page in sorted((DOCS / "results").glob("*.md")):
        if page.name == "SUMMARY.md":
            continue
        text = page.read_text(encoding="utf-8")
        title = next((li[2:].strip() for li in text.splitlines() if li.startswith("# ")), page.stem)
        for name in set(re.findall(r"dynlearn run ([a-z0-9-]+)", text)):
            found.setdefault(name, []).append((title, page.name))
    return found


def first_paragraph(text: str) -> str:
    para = text.strip().split("\n\n")[0]
    return " ".join(para.removeprefix("Experiment:").split())


def sweep_lines(ds: xr.Dataset) -> list[str]:
    """The RRAM sweeps' figure and table (final accuracy, mean ± std over the seeds), if the
    summary holds any."""
    if "levels_accuracy" not in ds:
        return []
    from experiments.hardware import pct  # mean ± std in %, naming the seeds that diverged

    lines = [
        "## Levels and cycle-to-cycle noise",
        "",
        "Final test accuracy (%) on the Ag:a-Si RRAM with stochastic rounding, its levels "
        "(both directions) swept at 3.5% c2c noise, and its c2c noise swept at 97/100 levels "
        "(`dynlearn run hardware --sweep-rules`).",
        "",
        "![accuracy vs levels and vs c2c noise per rule](hardware_sweeps.png)",
        "",
    ]
    columns = [f"levels {v}" for v in ds.levels.values] + [f"c2c {v:g}" for v in ds.c2c.values]
    lines += ["| rule | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for rule in ds.sweep_rule.values:
        row = []
        for axis in ("levels", "c2c"):
            row += [pct(seeds) for seeds in ds[f"{axis}_accuracy"].sel(sweep_rule=rule).values]
        lines.append(f"| {rule} | " + " | ".join(row) + " |")
    return lines + [""]


def hardware_page(ds: xr.Dataset, entry: dict) -> str:
    mean, std = ds.final_accuracy_mean, ds.final_accuracy_std
    presets = [str(p) for p in ds.preset.values]
    complete = [str(r) for r, m in zip(ds.rule.values, ds.measured.values) if m.all()]
    swept = [str(r) for r in ds.sweep_rule.values] if "sweep_rule" in ds.coords else []
    lines = [
        "# Hardware study: learning rules on analog devices",
        "",
        f"Final test accuracy (%) on `{ds.attrs.get('dataset')}` "
        f"(784-{ds.attrs.get('hidden')}-10, {ds.attrs.get('epochs')} epochs, seeds "
        f"{ds.attrs.get('seeds')}; mean ± std over the seeds) of each rule trained as it is "
        "(`none`) and with its forward weights on each device of `dynlearn.hardware.PRESETS`. "
        f"Assembled from the stored cells in `{ds.attrs.get('source')}` "
        "(`dynlearn run hardware --dataset mnist`): no cell was re-run for this page. "
        "Stored there: the device presets of every rule"
        + (f", and the RRAM sweeps of {', '.join(swept)}" if swept else "")
        + " (and the inertia cells of some always-on rules, not summarised here; no pruning "
        "or ablation cells).",
        "",
        "![hardware study: final accuracy per rule and device](hardware_study.png)",
        "",
        "| rule | " + " | ".join(presets) + " |",
        "| --- | " + " | ".join("---" for _ in presets) + " |",
    ]
    for r, rule in enumerate(ds.rule.values):
        row = []
        for p in range(len(presets)):
            if not int(ds.measured.values[r, p]):
                row.append("—")
                continue
            m, s = 100 * float(mean.values[r, p]), 100 * float(std.values[r, p])
            lost = int(ds.diverged_seeds.values[r, p])
            text = "diverged" if math.isnan(m) else f"{m:.1f} ± {s:.1f}"
            if lost and not math.isnan(m):
                text += f" ({lost} of {ds.sizes['seed']} diverged)"
            row.append(text)
        lines.append(f"| {rule} | " + " | ".join(row) + " |")
    lines += [
        "",
        "—: cell not computed (not in the stored study). "
        f"Missing cells: {ds.attrs.get('cells_missing', 'none')}.",
        "",
        *sweep_lines(ds),
        "The summary Dataset: [`hardware_study.nc`](hardware_study.nc) (accuracy per rule, "
        "preset, seed and epoch).",
        "",
        "## Reproduce",
        "",
        "```bash",
        "mkdir run && tar xzf experiments/results/hardware-mnist-cells.tar.gz -C run",
        "# the study's table and figures from the stored cells (rules with every preset stored;",
        "# cells not stored would be computed):",
        f"dynlearn run hardware --dataset mnist --run-dir run --rules {' '.join(complete)} \\",
        f"    --sweep-rules {' '.join(swept)} --prune-rules --ablation-rules",
        "python docs/gallery/refresh.py --hardware-only   # this page's summary",
        "```",
        "",
    ]
    if (DOCS / "results" / "hardware.md").exists():
        lines += ["See also [Results: analog hardware](../results/hardware.md).", ""]
    if entry.get("ran_at"):
        lines += [f"Summary assembled {entry['ran_at'][:10]} in {seconds(entry)}.", ""]
    return "\n".join(lines)


# --- experiment pages ---------------------------------------------------------------------


def documented_commands() -> dict[str, str]:
    """Experiment name -> the documented command that `refresh.py --experiments` runs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gallery_refresh", HERE / "refresh.py")
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return {name: module.experiment_command(name) for name in module.EXPERIMENTS}
    except Exception as err:  # the listing falls back to the bare commands
        print(f"gallery: cannot read the experiments' commands from refresh.py: {err}")
        return {}


def load_experiment_index() -> dict:
    return read_index(EXPERIMENT_RESULTS / "index.json")


def stored_files(name: str, entry: dict) -> list[Path]:
    """The stored files of one experiment that are there (in the order refresh.py stored)."""
    folder = EXPERIMENT_RESULTS / name
    return [folder / f for f in entry.get("files", []) if (folder / f).is_file()]


def load_dataset(path: Path) -> xr.Dataset | None:
    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except Exception as err:  # a damaged file: the page says so instead of failing the build
        print(f"gallery: cannot read {path}: {err}")
        return None


def _final(var: xr.DataArray) -> xr.DataArray:
    """A per-epoch variable at its last epoch (NaN where the run stopped or diverged)."""
    return var.isel(epoch=-1, drop=True) if "epoch" in var.dims else var


def _mean_std(values: np.ndarray, percent: bool) -> str:
    """ "mean ± std" of the finite values (one value: itself), and how many are NaN."""
    values = np.asarray(values, dtype=float).ravel()
    scale = 100.0 if percent else 1.0
    finite = values[np.isfinite(values)]
    if not finite.size:
        return "NaN"
    if finite.size > 1:
        text = f"{scale * finite.mean():.2f} ± {scale * finite.std():.2f}"
    else:
        text = f"{scale * finite[0]:.2f}" if percent else fmt(float(finite[0]))
    if finite.size < values.size:
        text += f" ({values.size - finite.size} of {values.size} NaN)"
    return text


# dimensions that repeat a measurement (averaged in the summary), with their names in prose
REPEATS = {"seed": "seed", "seeds": "seed", "test_episode": "test episode"}


def accuracy_summary(ds: xr.Dataset) -> str:
    """Tables of the final accuracies: every variable named `*accuracy*` at its last epoch,
    mean ± std over its seeds (or test episodes), one row per value of its other dimensions
    (left out when there are more than MAX_SHOWN rows)."""
    out = []
    for name, var in ds.data_vars.items():
        if "accuracy" not in name or var.dtype.kind not in "biuf" or var.ndim == 0:
            continue
        final = _final(var)
        finite = np.asarray(final.values, dtype=float)
        finite = finite[np.isfinite(finite)]
        percent = bool(finite.size) and float(np.abs(finite).max()) <= 1.0
        over = [d for d in final.dims if d in REPEATS]
        rows_dims = [d for d in final.dims if d not in over]
        n_rows = int(np.prod([final.sizes[d] for d in rows_dims])) if rows_dims else 1
        if n_rows > MAX_SHOWN:
            continue
        what = ["final value"] if "epoch" in var.dims else []
        if over:
            n_over = int(np.prod([final.sizes[d] for d in over]))
            what.append(
                f"mean ± std over {n_over} "
                + " x ".join(REPEATS[d] + ("s" if n_over != 1 else "") for d in over)
            )
        unit = "%" if percent else (var.attrs.get("units", "") or "")
        if unit and unit != "1":
            what.append(unit)
        head = f"`{name}`" + (f" ({', '.join(what)})" if what else "")
        if not rows_dims:
            out.append(f"- {head}: {_mean_std(final.values, percent)}")
            continue
        lines = [
            "| " + " | ".join(f"`{d}`" for d in rows_dims) + f" | {head} |",
            "| " + " | ".join("---" for _ in rows_dims) + " | --- |",
        ]
        values = final.transpose(*rows_dims, *over).values
        for index in np.ndindex(*[final.sizes[d] for d in rows_dims]):
            labels = [
                _label(ds, d, i) if d in ds.dims else str(i) for d, i in zip(rows_dims, index)
            ]
            lines.append(
                "| "
                + " | ".join(cell(x) for x in labels)
                + f" | {_mean_std(values[index], percent)} |"
            )
        out.append("\n".join(lines))
    if any("NaN" in part for part in out):
        out.append(
            "NaN: no value at the last epoch (the run diverged or stopped early); the mean and "
            "std are over the other seeds."
        )
    return "\n\n".join(out)


def settings_table(ds: xr.Dataset) -> str:
    """The Dataset's configuration attributes (`config_*`)."""
    rows = [
        (k.removeprefix("config_"), fmt(v)) for k, v in ds.attrs.items() if k.startswith("config_")
    ]
    if not rows:
        return ""
    lines = ["| setting | value |", "| --- | --- |"]
    lines += [f"| `{cell(k)}` | {cell(_escape(v))} |" for k, v in rows]
    return "\n".join(lines)


def measured_attrs(ds: xr.Dataset) -> xr.Dataset:
    """`ds` without its provenance and configuration attributes (shown elsewhere)."""
    kept = {
        k: v
        for k, v in ds.attrs.items()
        if not k.startswith("config_") and k not in (*PROVENANCE, "gallery_dropped")
    }
    out = ds.copy()
    out.attrs = kept
    return out


def quoted_rows(command: str) -> list[tuple[str, str, str]]:
    """(page, what, figure) of every table row in docs/results whose last column quotes
    exactly `command`: the figures the docs report for it."""
    rows = []
    for page in sorted((DOCS / "results").glob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if line.startswith("|") and len(cells) >= 3 and cells[-1] == f"`{command}`":
                rows.append((page.name, cells[0], cells[-2]))
    return rows


def experiment_page(name: str, module: str, entry: dict, quoted: list[tuple[str, str]]) -> str:
    """The page of one experiment with a stored result."""
    files = stored_files(name, entry)
    about = docstring((ROOT / Path(*module.split("."))).with_suffix(".py"))
    _, body = docstring_markdown(about)
    command = entry.get("command", f"dynlearn run {name}")
    lines = [
        f"# Experiment `{name}`",
        "",
        f'!!! info "Stored result of `{cell(command)}`"',
        "    The documented command, run as it is on the development machine (CPU"
        + (
            f", {entry['cpus']} core" + ("s" if entry["cpus"] != 1 else "")
            if entry.get("cpus")
            else ""
        )
        + f") in {seconds(entry)}"
        + (f", {entry['ran_at'][:10]}" if entry.get("ran_at") else "")
        + ". The numbers below are read from the Datasets it wrote.",
        "",
    ]
    if entry.get("last_failure"):
        fail = entry["last_failure"]
        lines += [
            '!!! warning "A later refresh did not replace this result"',
            f"    {fail.get('ran_at', '')[:10]}: {fail.get('outcome')} after {seconds(fail)}.",
            "",
        ]
    for path in files:
        if path.suffix == ".png":
            lines += [f"![{name}: {path.stem}]({name}/{path.name})", ""]
    datasets = [(p, load_dataset(p)) for p in files if p.suffix == ".nc"]
    summaries = [(p, accuracy_summary(ds)) for p, ds in datasets if ds is not None]
    if any(text for _, text in summaries):
        lines += ["## Final accuracies", ""]
        for path, text in summaries:
            if text:
                if len(summaries) > 1:
                    lines += [f"From `{path.name}`:", ""]
                lines += [text, ""]
    reported = quoted_rows(command)
    if reported:
        lines += [
            "## As the docs report it",
            "",
            "The table rows of the Results pages that quote this command (measured when "
            "those pages were written; compare with the numbers above):",
            "",
            "| what | figure | page |",
            "| --- | --- | --- |",
            *(
                f"| {what} | {figure} | [{page.removesuffix('.md')}](../../results/{page}) |"
                for page, what, figure in reported
            ),
            "",
        ]
    for path in files:
        if path.suffix == ".md":
            table = path.read_text(encoding="utf-8").strip()
            # its own headings become bold lines (the page keeps one title)
            table = re.sub(r"^#+\s*(.+)$", r"**\1**", table, flags=re.M)
            lines += [f"## The experiment's table (`{path.name}`)", "", table, ""]
    lines += ["## What it measures", "", body or "(no docstring)", ""]
    if quoted:
        links = ", ".join(f"[{cell(t)}](../../results/{p})" for t, p in quoted)
        lines += [f"The docs quote its figures in {links}.", ""]
    lines += ["## Measured", ""]
    for path, ds in datasets:
        links = f"[`{path.name}`]({name}/{path.name})"
        if ds is None:
            lines += [f"{links}: cannot be read.", ""]
            continue
        lines += [f"### {links}", ""]
        if ds.attrs.get("gallery_dropped"):
            lines += [
                "Stored without its largest variables, to keep the file small: "
                f"{cell(_escape(str(ds.attrs['gallery_dropped'])))}.",
                "",
            ]
        for part in (scalars_table(measured_attrs(ds)), data_section(ds)):
            if part:
                lines += [part, ""]
        settings = settings_table(ds)
        if settings:
            lines += ['??? note "Settings (the Dataset\'s `config_*` attributes)"', ""]
            lines += ["    " + line for line in settings.splitlines()] + [""]
    lines += [
        "## Reproduce",
        "",
        "```bash",
        f"{command}",
        f"python docs/gallery/refresh.py --experiments {name}   # refresh this page's result",
        "```",
        "",
    ]
    provenance = []
    for path, ds in datasets:
        if ds is not None:
            provenance += [
                f"- {path.name}, {key}: `{cell(ds.attrs[key])}`"
                for key in ("created", "versions", "code_revision")
                if key in ds.attrs
            ]
    if provenance:
        lines += ["## Provenance", "", *provenance, ""]
    return "\n".join(lines)


def index_page(rows: list[dict], hardware: bool, stored: dict[str, dict]) -> str:
    n_pass = sum(r["passed"] is True for r in rows)
    n_fail = sum(r["passed"] is False for r in rows)
    n_none = sum(r["passed"] is None for r in rows)
    n_fast = sum(r["fast"] is True for r in rows)
    lines = [
        "# Gallery",
        "",
        "Every claim that `theory/` validates, one page each, generated from the scripts' own "
        "stored results (`docs/gallery/results/`, refreshed by "
        "`python docs/gallery/refresh.py`): the claim, whether it held, the figure, the "
        "measured numbers and the command that reproduces them. Each script ran in its full "
        "version where that finished within the refresh's time budget on the 2-core "
        "development machine (CPU), else in its fast version (the one pytest runs). "
        "Below them, the experiments: a page for each one whose documented command was run "
        f"and stored ({len(stored)} of {len(experiments())}"
        + (", and the hardware study from its stored cells" if hardware else "")
        + "), each with its figures, its final accuracies and the figures the docs report.",
        "",
        f"**{len(rows)} claims**: {n_pass} pass, {n_fail} fail"
        + (f", {n_none} without a stored result" if n_none else "")
        + f"; {len(rows) - n_fast - n_none} measured with the full version, {n_fast} with the "
        "fast one.",
        "",
        "## Theory",
        "",
        "| claim | result | version | run time | page |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        result = "no result" if row["passed"] is None else BADGE[row["passed"]]
        version = "—" if row["fast"] is None else ("fast" if row["fast"] else "full")
        attempt = row["entry"].get("full_attempt", {})
        if row["fast"] and attempt.get("outcome") == "timeout":
            version += f" (full > {attempt.get('budget_s', 180):.0f} s)"
        lines.append(
            f"| {cell(_escape(row['claim']))} | {result} | {version} | "
            f"{seconds(row['entry'])} | [`{row['name']}`]({row['name']}.md) |"
        )
    lines += ["", "## Experiments", ""]
    lines += [
        "The experiments (`dynlearn run NAME`) train networks on datasets for minutes to "
        "hours. Those whose documented command (the one the docs quote) finished within "
        "`refresh.py --experiments`' budget on one core of the development machine have a "
        "page made from the Datasets it wrote; the hardware study's page is assembled from "
        "its stored cells"
        + (" ([hardware study](hardware_study.md))" if hardware else "")
        + ". The other results are not stored; the figures the docs quote are in "
        "[Results](../results/index.md).",
        "",
        "| experiment | command | what | stored result |",
        "| --- | --- | --- | --- |",
    ]
    pages = results_pages()
    attempts = load_experiment_index()
    documented = documented_commands()
    for name, module in experiments():
        about = first_paragraph(docstring((ROOT / Path(*module.split("."))).with_suffix(".py")))
        command = documented.get(name, f"dynlearn run {name}")
        entry = attempts.get(name, {})
        if name == "hardware" and hardware:
            result = "cells summarised: [hardware study](hardware_study.md)"
        elif name in stored:
            command = stored[name].get("command", command)
            result = f"[stored](experiments/{name}.md) (ran in {seconds(stored[name])})"
        elif entry.get("outcome") == "timeout":
            command = entry.get("command", command)
            cpus = entry.get("cpus")
            where = f" on {cpus} core" + ("s" if cpus != 1 else "") if cpus else ""
            result = (
                f"not stored: did not finish within {entry.get('budget_s', 0):.0f} s{where} "
                f"({entry.get('ran_at', '')[:10]})"
            )
        elif entry.get("outcome") == "crash":
            command = entry.get("command", command)
            result = f"not stored: the last run stopped with exit status {entry.get('returncode')}"
        else:
            result = "not stored in the repository"
        quoted = pages.get(name, [])
        if quoted:
            links = ", ".join(
                f"[{'overview' if p == 'index.md' else p.removesuffix('.md')}](../results/{p} "
                f'"{cell(t).replace(chr(34), chr(39))}")'
                for t, p in quoted
            )
            result += f"; measured figures quoted in Results: {links}"
        lines.append(f"| `{name}` | `{cell(command)}` | {cell(_escape(about))} | {result} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    index = load_index()
    rows = []
    nav = ["- [Overview](index.md)", "- Theory"]
    for name in script_names():
        ds = load_result(name)
        text, row = theory_page(name, ds, index.get(name, {}))
        rows.append(row)
        with mkdocs_gen_files.open(f"gallery/{name}.md", "w") as f:
            f.write(text)
        if ds is not None:
            for suffix in (".png", ".nc"):
                if (RESULTS / f"{name}{suffix}").exists():
                    with mkdocs_gen_files.open(f"gallery/{name}{suffix}", "wb") as f:
                        f.write((RESULTS / f"{name}{suffix}").read_bytes())
        nav.append(f"    - [{name}]({name}.md)")
    hardware = load_result("hardware_study")
    if hardware is not None:
        with mkdocs_gen_files.open("gallery/hardware_study.md", "w") as f:
            f.write(hardware_page(hardware, index.get("hardware_study", {})))
        for file in ("hardware_study.png", "hardware_study.nc", "hardware_sweeps.png"):
            if (RESULTS / file).exists():
                with mkdocs_gen_files.open(f"gallery/{file}", "wb") as f:
                    f.write((RESULTS / file).read_bytes())
        nav += ["- Experiments", "    - [Hardware study](hardware_study.md)"]
    stored = {}
    pages = results_pages()
    attempts = load_experiment_index()
    for name, module in experiments():
        entry = attempts.get(name, {})
        if entry.get("outcome") != "ok" or not stored_files(name, entry):
            continue
        stored[name] = entry
        with mkdocs_gen_files.open(f"gallery/experiments/{name}.md", "w") as f:
            f.write(experiment_page(name, module, entry, pages.get(name, [])))
        for path in stored_files(name, entry):
            if path.suffix in (".png", ".nc"):
                with mkdocs_gen_files.open(f"gallery/experiments/{name}/{path.name}", "wb") as f:
                    f.write(path.read_bytes())
    if stored:
        if hardware is None:
            nav.append("- Experiments")
        nav += [f"    - [{name}](experiments/{name}.md)" for name in stored]
    with mkdocs_gen_files.open("gallery/index.md", "w") as f:
        f.write(index_page(rows, hardware is not None, stored))
    with mkdocs_gen_files.open("gallery/SUMMARY.md", "w") as f:
        f.write("\n".join(nav) + "\n")


main()
