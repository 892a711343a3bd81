"""The `dynlearn` command (typer + rich).

Demos, experiments, theory checks and benchmarks register themselves as entry points (see
`dynlearn.registry`); this module imports none of them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from . import registry
from ._demo import demo_checks, run_checks, train_rules
from ._runs import run_folder

app = typer.Typer(
    help="dynlearn: networks as dynamical systems, learning without backprop.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
# `run` and `bench` hand everything after the name to the experiment or benchmark,
# `--help` included (so `dynlearn run bp --help` shows bp's options).
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
HELP = {"--help", "-h"}


# Errors the package raises on purpose for a user's mistake (each message says what is wrong
# and how to fix it): one red line and exit code 2 instead of a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def main(argv: list[str] | None = None) -> int:
    """The `dynlearn` command: `app` with user errors as one line (`--debug` anywhere on
    the command line shows the traceback instead)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        app(args, prog_name="dynlearn")  # click's standalone mode: ends in SystemExit
    except SystemExit as done:  # usage errors (code 2), typer.Exit, experiments' parsers
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except USER_ERRORS as err:
        if debug:
            raise
        message = " ".join(str(err).split())
        console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        console.print("(run again with --debug for the traceback)", style="dim")
        return 2
    return 0


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
    quick: bool = typer.Option(False, help="Tiny networks and one check: seconds, not minutes."),
    rules: list[str] = typer.Option(
        None, help="Learning rules to train (repeat the option); default: every registered one."
    ),
    checks: list[str] = typer.Option(
        None,
        help="Theory checks to run fast ('all' for every one); default: those registered "
        "as part of the demo (one per family of rules).",
    ),
    runs: Path = typer.Option(Path("runs"), help="Folder for run folders."),
    figure_formats: str = typer.Option(
        "png", help="Figure files: png, and svg and/or pdf next to it (e.g. 'png,svg')."
    ),
) -> None:
    """The showcase: train every registered learning rule briefly on digits (one table:
    rule, accuracy, time), run fast theory checks (PASS/FAIL), settle and stream the
    dynamics demos; Datasets and figures go to a run folder whose path is printed. Exits
    non-zero if a check fails."""
    from . import plot

    if not registry.entries("rules"):
        console.print("[red]No rules registered: install the package with `pip install .`.")
        raise typer.Exit(1)
    unknown = sorted(set(rules or ()) - set(registry.entries("rules")))
    if unknown:
        console.print(
            f"[red]--rules: unknown {unknown}; registered: {sorted(registry.entries('rules'))}."
        )
        raise typer.Exit(2)
    known_checks = registry.entries("checks")
    chosen = checks or (demo_checks()[:1] if quick else demo_checks())
    chosen = sorted(known_checks) if chosen == ["all"] else chosen
    unknown = sorted(set(chosen) - set(known_checks))
    if unknown:
        console.print(f"[red]--checks: unknown {unknown}; registered: {sorted(known_checks)}.")
        raise typer.Exit(2)
    try:
        formats = plot.parse_formats(figure_formats)
    except ValueError as err:
        console.print(f"[red]--figure-formats: {err}")
        raise typer.Exit(2) from None
    with plot.using_formats(*formats):
        _demo(quick, rules or None, chosen, runs)


def _demo(quick: bool, rules: list[str] | None, chosen: list[str], runs: Path) -> None:
    from . import data as datasets

    run_dir = run_folder(runs, "demo")
    start = time.perf_counter()
    digits = datasets.load("digits", fraction=0.3 if quick else 1.0)
    epochs, hidden = (1, 16) if quick else (3, 64)
    which = "every registered rule" if rules is None else f"{len(rules)} rule(s)"
    with console.status(f"training {which} on digits ..."):
        rows = train_rules(digits, run_dir, hidden=hidden, epochs=epochs, rules=rules)
    table = Table(title=f"learning rules: digits, 64-{hidden}-10, {epochs} epoch(s)")
    table.add_column("rule", no_wrap=True)  # names stay whole (and searchable)
    for column in ("learner", "mode", "test accuracy", "seconds"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["rule"],
            row["learner"],
            row["mode"],
            f"{row['accuracy']:.3f}",
            f"{row['seconds']:.1f}",
        )
    console.print(table)

    with console.status(f"running {len(chosen)} fast theory check(s) ..."):
        results = run_checks(chosen, run_dir)
    table = Table(title="theory checks (fast versions; all: dynlearn check all --fast)")
    for column in ("check", "result", "seconds"):
        table.add_column(column)
    for row in results:
        verdict = "[green]PASS" if row["passed"] else "[red]FAIL"
        table.add_row(row["check"], verdict, f"{row['seconds']:.1f}")
    console.print(table)

    demos = registry.entries("demos")
    if demos:
        table = Table(title="dynamics")
        for column in ("demo", "what", "result", "seconds"):
            table.add_column(column)
        for name, entry in sorted(demos.items()):
            for row in entry.load()(run_dir, quick):
                table.add_row(row["demo"], row["what"], row["result"], f"{row['seconds']:.2f}")
        console.print(table)
    console.print(
        f"total {time.perf_counter() - start:.1f} s; Datasets and figures in [bold]{run_dir}"
    )
    if not all(row["passed"] for row in results):
        raise typer.Exit(1)


@app.command(context_settings=PASS_THROUGH)
def run(
    ctx: typer.Context,
    experiment: str = typer.Argument(None, help="Registered experiment; omit to list them."),
) -> None:
    """Run an experiment; options after its name go to it (`dynlearn run bp --help` lists
    bp's)."""
    if experiment is None or experiment in HELP:
        if experiment in HELP or HELP & set(ctx.args):
            console.print(ctx.get_help())
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
    """Run a benchmark (prints ratios measured in one run); options after its name go to it
    (`dynlearn bench pc --help`)."""
    if name is None or name in HELP:
        if name in HELP or HELP & set(ctx.args):
            console.print(ctx.get_help())
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


def main_exit() -> None:
    """Entry point of the installed `dynlearn` script."""
    sys.exit(main())
