"""Refresh the gallery's stored results: run the theory scripts, summarise the hardware study.

Every script under `theory/` (found with pkgutil) runs in its own subprocess,
`python -m theory.<name> [--fast] --run-dir ...`, and its `<name>.nc` and `<name>.png` land
in `docs/gallery/results/`. The full version runs first, with a wall-clock budget (default
180 s); if it does not finish in time the fast version is stored instead (its Dataset's
`fast` attribute says so, and so does the gallery page). `index.json` records, per script,
which version is stored, its run time, its exit status and when it ran.

    python docs/gallery/refresh.py                  # every script, full where the budget allows
    python docs/gallery/refresh.py delta_rule lca_lasso --budget 300
    python docs/gallery/refresh.py --fast-only      # the fast version of every script
    python docs/gallery/refresh.py --hardware-only  # only the hardware-study summary

The hardware study's cells (`experiments/results/hardware-mnist-cells.tar.gz`) are unpacked
into a temporary folder and assembled by `experiments.hardware.HardwareStudy` (no cell is
re-run); the summary (accuracy per rule x preset, over seeds) is stored as
`hardware_study.nc` with its figure `hardware_study.png`.

The experiments (`dynlearn run NAME`) are refreshed on request only, each with the
arguments of the command the docs quote (`EXPERIMENTS`; not shortened, so a run can take
long): `dynlearn run NAME ARGS --run-dir TMP` runs in a subprocess with a wall-clock budget
(default 600 s), and the summary Datasets (`*.nc` at the top of the run folder, not the
per-cell folders or checkpoints), figures (`*.png`) and tables (`*.md`) it writes land in
`docs/gallery/results/experiments/NAME/`. A Dataset larger than `MAX_NC_BYTES` loses its
largest variables until it fits (its `gallery_dropped` attribute lists them).
`results/experiments/index.json` records, per experiment, the command, its run time, its
exit status and when it ran; a run that does not finish within the budget is recorded as
a timeout and stores nothing (what was stored before stays).

    python docs/gallery/refresh.py --experiments bp ep-mnist          # two experiments
    python docs/gallery/refresh.py --experiments all --budget 900     # every listed one

Figures are re-saved smaller when they are large, to keep the committed folder small.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pkgutil
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
INDEX = RESULTS / "index.json"
HARDWARE_TARBALL = ROOT / "experiments" / "results" / "hardware-mnist-cells.tar.gz"
MAX_PNG_BYTES = 120_000  # figures above this are re-saved smaller
MAX_PNG_WIDTH = 1100  # pixels
EXPERIMENT_RESULTS = RESULTS / "experiments"
EXPERIMENT_INDEX = EXPERIMENT_RESULTS / "index.json"
MAX_NC_BYTES = 1_000_000  # a stored experiment Dataset above this loses its largest variables

# The experiments' commands as the docs quote them (`docs/results/*.md`; where a page gives
# alternatives, the first), run as they are: a gallery page shows the documented command's
# result or says that none is stored. `hardware` has its own summary (from stored cells) and
# `data-parallel` is a demonstration of multi-process training, not a measured claim.
EXPERIMENTS: dict[str, list[str]] = {
    "bp": ["--epochs", "5"],
    "ep-mnist": ["--epochs", "5"],
    "feedback-comparison": ["--dataset", "mnist5k"],
    "microcircuit": ["--dataset", "mnist5k"],
    "pc-vs-bp": ["--dataset", "mnist"],
    "hebbian": ["--dataset", "mnist", "--epochs", "4"],
    "spiking": ["--dataset", "fashion_mnist"],
    "target-prop": ["--dataset", "mnist", "--epochs", "20"],
    "forward-only": ["--dataset", "mnist", "--epochs", "20"],
    "alignment-rules": ["--dataset", "mnist5k", "--seeds", "0", "1", "2"],
    "ntk-alignment": ["--dataset", "mnist5k", "--seeds", "0", "1", "2"],
    "meta-plasticity": ["--seed", "0"],
    "pc-transformer": [],
    "always-on": [],
    "constraints": ["--dataset", "mnist5k"],
}


def script_names() -> list[str]:
    """The theory scripts, by module name."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import theory

    return sorted(m.name for m in pkgutil.iter_modules(theory.__path__) if not m.ispkg)


def read_index(path: Path) -> dict:
    """An index of stored results (`{name: entry}`); empty if there is none yet."""
    return json.loads(path.read_text()) if path.exists() else {}


def write_index(path: Path, index: dict) -> None:
    """Write an index atomically (sorted by name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n")
    tmp.replace(path)


def store_entry(path: Path, name: str, entry: dict) -> None:
    """Record one entry (re-reading the index: another refresh may have written)."""
    index = read_index(path)
    index[name] = entry
    write_index(path, index)


def run_with_budget(cmd: list[str], timeout: float | None) -> tuple[int | None, str, float]:
    """Run `cmd` from the repository root in its own process group: `(return code, or None
    if it ran past `timeout` and was killed with its children; its output; seconds)`."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out, round(time.perf_counter() - start, 1)
    return proc.returncode, out, round(time.perf_counter() - start, 1)


def output_tail(out: str) -> str:
    return "\n".join(out.strip().splitlines()[-15:])


def _run_once(name: str, fast: bool, timeout: float | None) -> dict:
    """Run one version of one script in a scratch folder; move its files to RESULTS if it
    wrote them. Returns what happened."""
    with tempfile.TemporaryDirectory(prefix=f"gallery-{name}-") as tmp:
        cmd = [sys.executable, "-m", f"theory.{name}", "--run-dir", tmp]
        if fast:
            cmd.insert(3, "--fast")
        returncode, out, seconds = run_with_budget(cmd, timeout)
        if returncode is None:
            return {"outcome": "timeout", "seconds": seconds}
        nc, png = Path(tmp) / f"{name}.nc", Path(tmp) / f"{name}.png"
        if not nc.exists():
            return {
                "outcome": "crash",
                "seconds": seconds,
                "returncode": returncode,
                "error": output_tail(out),
            }
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.move(nc, RESULTS / nc.name)
        if png.exists():
            shutil.move(png, RESULTS / png.name)
            shrink_png(RESULTS / png.name)
        else:
            (RESULTS / png.name).unlink(missing_ok=True)
        return {"outcome": "ok", "seconds": seconds, "returncode": returncode}


def refresh(name: str, budget: float, mode: str) -> None:
    """Refresh one script's stored result. mode: 'auto' (full within budget, else fast),
    'fast' or 'full' (full within budget; on timeout keep what is stored)."""
    entry = {"ran_at": dt.datetime.now().isoformat(timespec="seconds"), "budget_s": budget}
    previous = read_index(INDEX).get(name, {})
    if mode in ("auto", "full"):
        print(f"[{name}] full version (budget {budget:.0f} s) ...", flush=True)
        result = _run_once(name, fast=False, timeout=budget)
        if result["outcome"] == "ok":
            record = entry | {"version": "full"} | result
            print(
                f"[{name}] full: exit {result['returncode']} in {result['seconds']} s", flush=True
            )
            _store(name, record)
            return
        print(f"[{name}] full: {result['outcome']} after {result['seconds']} s", flush=True)
        entry["full_attempt"] = result | {"budget_s": budget}
        stored = (RESULTS / f"{name}.nc").exists() and previous.get("outcome") == "ok"
        if mode == "full" or (stored and previous.get("version") == "fast"):
            # keep the stored result, noting the failed full attempt
            record = previous | {
                "full_attempt": entry["full_attempt"]
                | {"ran_at": entry["ran_at"], "budget_s": budget}
            }
            _store(name, record)
            return
    print(f"[{name}] fast version ...", flush=True)
    result = _run_once(name, fast=True, timeout=None)
    print(
        f"[{name}] fast: {result['outcome']} (exit {result.get('returncode')}) "
        f"in {result['seconds']} s",
        flush=True,
    )
    if result["outcome"] != "ok" and previous.get("outcome") == "ok":
        record = previous | {"last_failure": entry | result}
    else:
        record = entry | {"version": "fast"} | result
    _store(name, record)


def _store(name: str, entry: dict) -> None:
    store_entry(INDEX, name, entry)


def shrink_png(path: Path) -> None:
    """Re-save a large figure narrower and palette-quantised (it stays legible)."""
    if path.stat().st_size <= MAX_PNG_BYTES:
        return
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > MAX_PNG_WIDTH:
            height = round(im.height * MAX_PNG_WIDTH / im.width)
            im = im.resize((MAX_PNG_WIDTH, height), Image.LANCZOS)
        im = im.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        im.save(path, optimize=True)


# --- the hardware study --------------------------------------------------------------------


def refresh_hardware() -> None:
    """Assemble the hardware study's stored cells into a small summary Dataset and figure."""
    import tarfile

    if not HARDWARE_TARBALL.exists():
        print(f"[hardware_study] no {HARDWARE_TARBALL.relative_to(ROOT)}; skipped")
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gallery-hardware-") as tmp:
        with tarfile.open(HARDWARE_TARBALL) as tar:
            tar.extractall(tmp, filter="data")
        run_dir = _find_run_dir(Path(tmp))
        ds = hardware_summary(run_dir)
    from dynlearn._dataset import save_netcdf

    RESULTS.mkdir(parents=True, exist_ok=True)
    save_netcdf(ds, RESULTS / "hardware_study.nc")
    plot_hardware(ds, RESULTS / "hardware_study.png")
    shrink_png(RESULTS / "hardware_study.png")
    sweeps = RESULTS / "hardware_sweeps.png"
    sweeps.unlink(missing_ok=True)
    if "levels_accuracy" in ds:
        from experiments.hardware import plot_sweeps

        plot_sweeps(ds, sweeps)
        shrink_png(sweeps)
    _store(
        "hardware_study",
        {
            "ran_at": dt.datetime.now().isoformat(timespec="seconds"),
            "kind": "experiment",
            "outcome": "ok",
            "seconds": round(time.perf_counter() - start, 1),
            "source": str(HARDWARE_TARBALL.relative_to(ROOT)),
        },
    )
    print(f"[hardware_study] summary written ({ds.sizes})", flush=True)


SWEEPS = ("levels", "c2c")


def _sweep_cell(run_dir: Path, rule: str, axis: str) -> Path:
    return run_dir / "cells" / rule / f"sweep-{axis}.nc"


def _find_run_dir(top: Path) -> Path:
    """The unpacked folder that holds `cells/`."""
    if (top / "cells").is_dir():
        return top
    for path in sorted(top.rglob("cells")):
        if path.is_dir():
            return path.parent
    raise FileNotFoundError(f"no cells/ folder in {HARDWARE_TARBALL}")


def hardware_summary(run_dir: Path):
    """The preset part of `experiments.hardware.assemble`, from the stored cell files only
    (a missing cell stays NaN instead of being computed): test accuracy per rule x preset x
    seed x epoch, and the final accuracy's mean and std over the seeds."""
    import numpy as np
    import xarray as xr

    import dynlearn
    from dynlearn import hardware
    from experiments.hardware import STUDY_DESCRIPTIONS  # the study's own variables

    config = json.loads((run_dir / "study.json").read_text())
    presets = ["none", *hardware.PRESETS]
    folders = sorted(p for p in (run_dir / "cells").iterdir() if p.is_dir())
    rules = [p.name for p in folders if any(p.glob("preset-*.nc"))]  # rules with device cells
    seeds, epochs = list(config["seeds"]), int(config["epochs"])
    curves = np.full((len(rules), len(presets), len(seeds), epochs), np.nan)
    missing = []
    for r, rule in enumerate(rules):
        for p, preset in enumerate(presets):
            path = run_dir / "cells" / rule / f"preset-{preset}.nc"
            if path.exists():
                curves[r, p] = dynlearn.load_netcdf(path).accuracy.values
            else:
                missing.append(f"{rule}/{preset}")
    final = curves[..., -1]
    with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(final, axis=-1), np.nanstd(final, axis=-1)
        diverged = np.isnan(final).sum(axis=-1)
    measured = ~np.isnan(curves).all(axis=(-1, -2))
    diverged = np.where(measured, diverged, 0)
    variables = {
        "accuracy": (("rule", "preset", "seed", "epoch"), curves),
        "final_accuracy_mean": (("rule", "preset"), mean),
        "final_accuracy_std": (("rule", "preset"), std),
        "diverged_seeds": (("rule", "preset"), diverged),
        "measured": (("rule", "preset"), measured.astype(np.int8)),
    }
    coords = {"rule": rules, "preset": presets, "seed": seeds, "epoch": np.arange(1, epochs + 1)}
    # the device sweeps of the rules that have both stored (as `assemble` lays them out)
    swept = [
        p.name for p in folders if all(_sweep_cell(run_dir, p.name, a).exists() for a in SWEEPS)
    ]
    if swept:
        for axis in SWEEPS:
            cells = [dynlearn.load_netcdf(_sweep_cell(run_dir, r, axis)) for r in swept]
            variables[f"{axis}_accuracy"] = (
                ("sweep_rule", axis, "seed"),
                np.stack([c.accuracy.values for c in cells]),
            )
            coords[axis] = list(config[axis])
        coords["sweep_rule"] = swept
    ds = xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "experiment": "hardware",
            "dataset": config["dataset"],
            "hidden": " ".join(map(str, config["hidden"])),
            "epochs": epochs,
            "seeds": " ".join(map(str, seeds)),
            "cells_missing": ", ".join(missing) or "none",
            "source": str(HARDWARE_TARBALL.relative_to(ROOT)),
        },
    )
    described = STUDY_DESCRIPTIONS | {
        "final_accuracy_mean": ("final test accuracy, mean over the seeds that finished", "1"),
        "final_accuracy_std": ("final test accuracy, std over the seeds that finished", "1"),
        "diverged_seeds": ("seeds whose training diverged (NaN accuracy)", "1"),
        "measured": ("1 if the cell is stored, 0 if it was never computed", "1"),
        "rule": ("learning rule (dynlearn run hardware --rules)", "1"),
        "seed": ("seed", "1"),
        "epoch": ("epoch", "1"),
    }
    return dynlearn.describe(ds, **{k: v for k, v in described.items() if k in ds.variables})


def plot_hardware(ds, path: Path) -> None:
    """A heat map of the final accuracy (mean over seeds), rule x preset, annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mean = 100 * ds.final_accuracy_mean.values
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * ds.sizes["rule"] + 1.6))
    image = ax.imshow(np.ma.masked_invalid(mean), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (r, p), value in np.ndenumerate(mean):
        measured = bool(ds.measured.values[r, p])
        text = f"{value:.1f}" if np.isfinite(value) else ("div." if measured else "—")
        colour = "black" if np.isfinite(value) and value > 60 else "white"
        ax.text(
            p,
            r,
            text,
            ha="center",
            va="center",
            fontsize=7,
            color=colour if np.isfinite(value) else "grey",
        )
    ax.set_xticks(range(ds.sizes["preset"]), ds.preset.values, rotation=25, ha="right", fontsize=8)
    ax.set_yticks(range(ds.sizes["rule"]), ds.rule.values, fontsize=8)
    ax.set_title(
        f"Final test accuracy (%) on {ds.attrs['dataset']}, mean over {ds.sizes['seed']} seeds",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, label="test accuracy (%)", shrink=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the experiments -----------------------------------------------------------------------


def experiment_command(name: str) -> str:
    """The command as a reader types it."""
    return " ".join(["dynlearn", "run", name, *EXPERIMENTS[name]])


def quoted_in_docs(command: str) -> bool:
    """Whether the docs' Results pages quote `command` (line breaks read as spaces)."""
    pages = (ROOT / "docs" / "results").glob("*.md")
    return any(command in " ".join(page.read_text(encoding="utf-8").split()) for page in pages)


def _store_experiment(name: str, entry: dict) -> None:
    store_entry(EXPERIMENT_INDEX, name, entry)


def shrink_dataset(path: Path) -> list[str]:
    """Drop the largest data variables of a Dataset file until it is below MAX_NC_BYTES;
    returns their names (recorded in its `gallery_dropped` attribute)."""
    if path.stat().st_size <= MAX_NC_BYTES:
        return []
    import xarray as xr

    from dynlearn._dataset import save_netcdf

    with xr.open_dataset(path) as opened:
        ds = opened.load()
    dropped = []
    by_size = sorted(ds.data_vars, key=lambda v: ds[v].nbytes, reverse=True)
    for var in by_size:
        dropped.append(f"{var} ({', '.join(f'{d}: {n}' for d, n in ds[var].sizes.items())})")
        ds = ds.drop_vars(var)
        ds.attrs["gallery_dropped"] = "; ".join(dropped)
        tmp = path.with_suffix(".tmp.nc")
        save_netcdf(ds, tmp)
        tmp.replace(path)
        if path.stat().st_size <= MAX_NC_BYTES:
            break
    return dropped


def refresh_experiment(name: str, budget: float) -> None:
    """Run one experiment's documented command and store its summary Datasets and figures."""
    command = experiment_command(name)
    entry = {
        "command": command,
        "ran_at": dt.datetime.now().isoformat(timespec="seconds"),
        "budget_s": budget,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
    }
    previous = read_index(EXPERIMENT_INDEX).get(name, {})
    if not quoted_in_docs(command):
        print(f"[{name}] note: docs/results/*.md do not quote `{command}`", flush=True)
    print(f"[{name}] {command} (budget {budget:.0f} s) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"gallery-{name}-") as tmp:
        script = Path(sys.executable).parent / "dynlearn"  # the installed command
        if script.exists():
            cmd = [str(script)]
        else:  # dynlearn.cli has no __main__: call its entry point
            cmd = [
                sys.executable,
                "-c",
                "import sys; from dynlearn.cli import main; sys.exit(main())",
            ]
        cmd += ["run", name, *EXPERIMENTS[name], "--run-dir", tmp]
        returncode, out, seconds = run_with_budget(cmd, budget)
        datasets = sorted(Path(tmp).glob("*.nc"))
        if returncode != 0 or not datasets:
            timed_out = returncode is None
            outcome = "timeout" if timed_out else "crash"
            print(f"[{name}] {outcome} after {seconds} s", flush=True)
            failure = entry | {"outcome": outcome, "seconds": seconds}
            if not timed_out:
                failure |= {"returncode": returncode, "error": output_tail(out)}
            if previous.get("outcome") == "ok":
                _store_experiment(name, previous | {"last_failure": failure})
            else:
                _store_experiment(name, failure)
            return
        folder = EXPERIMENT_RESULTS / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        files, dropped = [], {}
        tables = sorted(Path(tmp).glob("*.md"))  # the experiment's own summary table
        for path in datasets + sorted(Path(tmp).glob("*.png")) + tables:
            shutil.move(path, folder / path.name)
            if path.suffix == ".png":
                shrink_png(folder / path.name)
            elif lost := shrink_dataset(folder / path.name):
                dropped[path.name] = lost
            files.append(path.name)
    record = entry | {
        "outcome": "ok",
        "seconds": seconds,
        "returncode": returncode,
        "files": files,
        "bytes": {f: (folder / f).stat().st_size for f in files},
    }
    if dropped:
        record["dropped"] = dropped
    _store_experiment(name, record)
    print(f"[{name}] ok in {seconds} s: {', '.join(files)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="scripts to refresh (default: all)")
    parser.add_argument(
        "--budget",
        type=float,
        default=180.0,
        help="seconds the full version may take (default 180; with --experiments: seconds "
        "each experiment may take, default 600)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fast-only", action="store_true", help="run only the fast versions")
    group.add_argument(
        "--full-only",
        action="store_true",
        help="try only the full versions; on timeout keep what is stored",
    )
    group.add_argument(
        "--hardware-only", action="store_true", help="only re-assemble the hardware-study summary"
    )
    group.add_argument(
        "--experiments",
        nargs="+",
        metavar="NAME",
        choices=[*EXPERIMENTS, "all"],
        help="run these experiments' documented commands instead ('all': every one listed)",
    )
    parser.add_argument(
        "--no-hardware", action="store_true", help="skip the hardware-study summary"
    )
    opts = parser.parse_args(argv)
    if opts.experiments:
        if opts.names:
            parser.error("--experiments takes the experiments' names; no theory scripts too")
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        budget = 600.0 if opts.budget == parser.get_default("budget") else opts.budget
        names = list(EXPERIMENTS) if "all" in opts.experiments else opts.experiments
        for name in names:
            refresh_experiment(name, budget)
        return 0
    if opts.hardware_only:
        refresh_hardware()
        return 0
    known = script_names()
    unknown = sorted(set(opts.names) - set(known))
    if unknown:
        parser.error(f"no theory script named {', '.join(unknown)}")
    mode = "fast" if opts.fast_only else "full" if opts.full_only else "auto"
    for name in opts.names or known:
        refresh(name, opts.budget, mode)
    if not opts.no_hardware and not opts.names:
        refresh_hardware()
    return 0


if __name__ == "__main__":
    sys.exit(main())
