"""The `dynlearn` command (typer + rich).

Demos, experiments, theory checks and benchmarks register themselves as entry points (see
`dynlearn.registry`); this module imports none of them.
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from . import registry

app = typer.Typer(
    help="dynlearn: networks as dynamical systems, learning without backprop.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def run_folder(root: Path, name: str) -> Path:
    """A new folder `root/name-YYYYmmdd-HHMMSS` (suffixed if it exists)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, i = root / f"{name}-{stamp}", 1
    while path.exists():
        path, i = root / f"{name}-{stamp}-{i}", i + 1
    path.mkdir(parents=True)
    return path


def _load(group: str, name: str):
    try:
        return registry.load(group, name)
    except ValueError as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from None


def _listing(group: str, title: str) -> None:
    table = Table(title=title)
    table.add_column("name")
    table.add_column("module")
    for name, entry in sorted(registry.entries(group).items()):
        table.add_row(name, entry.value)
    console.print(table)


@app.command()
def demo(
    quick: bool = typer.Option(False, help="Smaller networks, a few seconds in all."),
    runs: Path = typer.Option(Path("runs"), help="Folder for run folders."),
) -> None:
    """Run every registered demo; print one table and where Datasets and figures went."""
    demos = registry.entries("demos")
    if not demos:
        console.print("[red]No demos registered: install the package with `pip install .`.")
        raise typer.Exit(1)
    run_dir = run_folder(runs, "demo")
    table = Table(title="dynlearn demo")
    for column in ("demo", "what", "result", "seconds"):
        table.add_column(column)
    start = time.perf_counter()
    for name, entry in sorted(demos.items()):
        with console.status(f"running {name} ..."):
            rows = entry.load()(run_dir, quick)
        for row in rows:
            table.add_row(row["demo"], row["what"], row["result"], f"{row['seconds']:.2f}")
    console.print(table)
    console.print(
        f"total {time.perf_counter() - start:.1f} s; Datasets and figures in [bold]{run_dir}"
    )


@app.command(context_settings=PASS_THROUGH)
def run(
    ctx: typer.Context,
    experiment: str = typer.Argument(None, help="Registered experiment; omit to list them."),
) -> None:
    """Run an experiment; options after its name go to it (`dynlearn run bp --help`)."""
    if experiment is None:
        _listing("experiments", "experiments")
        return
    raise typer.Exit(_load("experiments", experiment)(list(ctx.args)))


@app.command()
def check(
    names: list[str] = typer.Argument(None, help="Theory checks to run, or 'all'."),
    fast: bool = typer.Option(False, help="The fast versions (as in the test suite)."),
    run_dir: Path = typer.Option(None, help="Folder for the checks' Datasets and figures."),
) -> None:
    """Run theory validations; print PASS/FAIL; exit non-zero if any claim fails."""
    known = registry.entries("checks")
    if not names:
        _listing("checks", "theory checks")
        return
    chosen = sorted(known) if names == ["all"] else names
    table = Table(title="theory checks")
    for column in ("check", "result", "seconds"):
        table.add_column(column)
    failed = 0
    for name in chosen:
        main = _load("checks", name)
        tic = time.perf_counter()
        args = (["--fast"] if fast else []) + (["--run-dir", str(run_dir)] if run_dir else [])
        code = main(args)
        failed += code != 0
        verdict = "[green]PASS" if code == 0 else "[red]FAIL"
        table.add_row(name, verdict, f"{time.perf_counter() - tic:.1f}")
    console.print(table)
    raise typer.Exit(1 if failed else 0)


@app.command(context_settings=PASS_THROUGH)
def bench(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="Registered benchmark; omit to list them."),
    quick: bool = typer.Option(False, help="Fewer steps, for a smoke test."),
) -> None:
    """Run a benchmark (prints ratios measured in one run)."""
    if name is None:
        _listing("benchmarks", "benchmarks")
        return
    main = _load("benchmarks", name)
    raise typer.Exit(main((["--quick"] if quick else []) + list(ctx.args)))


@data_app.command("list")
def data_list() -> None:
    """Known datasets: sizes, features, classes, where they come from."""
    from . import data

    table = Table(title="datasets")
    rows = data.describe()
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
