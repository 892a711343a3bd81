"""The `dynlearn` command (typer + rich)."""

from __future__ import annotations

import datetime as _dt
import sys
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
console = Console()


def _run_dir(root: Path, name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{name}-{stamp}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@app.command()
def demo(
    quick: bool = typer.Option(False, help="Smaller networks, a few seconds in all."),
    runs: Path = typer.Option(Path("runs"), help="Folder for run folders."),
) -> None:
    """Run every registered demo; print one table and where Datasets and figures went."""
    run_dir = _run_dir(runs, "demo")
    demos = registry.entries("demos")
    if not demos:
        console.print("[red]No demos registered: install the package with `pip install .`.")
        raise typer.Exit(1)
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
        f"total {time.perf_counter() - start:.1f} s; Datasets and figures in [bold]{run_dir}[/bold]"
    )


@app.command()
def bench(
    name: str = typer.Argument(..., help="Registered benchmark, e.g. 'engine'."),
    quick: bool = typer.Option(False, help="Fewer steps, for a smoke test."),
) -> None:
    """Run a registered benchmark (prints ratios measured in one run)."""
    try:
        main = registry.load("benchmarks", name)
    except ValueError as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from None
    raise typer.Exit(main(["--quick"] if quick else []))


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
