"""A comparison of rules, each against BP on its group's network: the cells, their files.

`main(...)` is such an experiment's command line (`--dataset`, `--groups`, `--epochs`,
`--seed`, `--run-dir`, `--quick`); `compare(...)` trains every (group, rule) cell with
the rule's recipe on the group's network (one seed), each cell checkpointing in its own
folder so that a rerun with the same run folder resumes, and writes `<name>.nc` (test
accuracy per cell and epoch), `<name>.md` (final and best accuracy, gap to the group's BP,
seconds) and `<name>.png`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import xarray as xr

import dynlearn
from dynlearn import data as datasets
from experiments._options import non_negative_int, positive_int


def compare(
    name: str,
    title: str,
    data: dynlearn.data.Data,
    groups: dict[str, tuple[str, ...]],
    network: Callable[[str], list[int]],
    recipe: Callable[[str, str, list[int], jax.Array], dynlearn.Recipe],
    *,
    epochs: int,
    seed: int,
    run_dir: Path,
) -> str:
    """Train every cell (resuming finished ones), write the files; returns the table."""
    rows, curves, names = [], [], []
    for group, rules in groups.items():
        sizes = network(group)
        for rule in rules:
            learner, mode, batch_size = recipe(group, rule, sizes, jax.random.key(seed))
            cell = run_dir / f"{group}-{rule}"
            result = dynlearn.fit(
                learner, data, mode, epochs=epochs, batch_size=batch_size, seed=seed,
                run_dir=cell, resume=(cell / "metrics.nc").exists(), progress=False,
            )  # fmt: skip
            curve = result.metrics.test_accuracy.values
            seconds = float(result.metrics.wall_time.sum())
            curves.append(curve), names.append(f"{group}/{rule}")
            rows.append((group, rule, "-".join(map(str, sizes)), curve, seconds))
            print(f"{group}/{rule}: {100 * curve[-1]:.2f}% ({seconds:.0f} s)", flush=True)
    out = xr.Dataset(
        {"test_accuracy": (("cell", "epoch"), np.array(curves))},
        coords={"cell": names, "epoch": np.arange(1, epochs + 1)},
        attrs={"dataset": data.name, "seed": seed},
    )
    out = dynlearn.describe(
        out,
        test_accuracy=("test accuracy after the epoch", "1"),
        cell=("comparison/rule", ""),
        epoch=("training epoch", "1"),
    )
    dynlearn.save_netcdf(out, run_dir / f"{name}.nc")
    lines = [
        f"# {title} on {data.name}, {epochs} epochs, seed {seed}",
        "",
        "| comparison | rule | network | final accuracy | best | gap to BP | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    bp = {group: curve[-1] for group, rule, _, curve, _ in rows if rule == "bp"}
    for group, rule, net, curve, seconds in rows:
        gap = f"{100 * (curve[-1] - bp[group]):+.2f}" if group in bp else ""
        lines.append(
            f"| {group} | {rule} | {net} | {100 * curve[-1]:.2f} | {100 * curve.max():.2f} "
            f"| {gap} | {seconds:.0f} |"
        )
    table = "\n".join(lines)
    (run_dir / f"{name}.md").write_text(table + "\n")
    with dynlearn.plot.figure(
        run_dir / f"{name}.png", figsize=(6.0, 3.8), title=f"{title}, {data.name}"
    ) as ax:
        for i, cell_name in enumerate(names):
            ax.plot(
                out.epoch, 100 * out.test_accuracy[i], label=cell_name, **dynlearn.plot.style(i)
            )
        ax.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax.legend(fontsize=7)
    return table


def main(
    argv: list[str] | None,
    *,
    command: str,
    description: str,
    name: str,
    title: str,
    groups: dict[str, tuple[str, ...]],
    network: Callable[[str, int, int, bool], list[int]],
    recipe: Callable[[str, str, list[int], jax.Array], dynlearn.Recipe],
) -> int:
    """`dynlearn run <command>`: parse the options, run `compare`, print the table.
    `network(group, n_in, n_out, quick)` gives a group's layer sizes."""
    p = argparse.ArgumentParser(prog=f"dynlearn run {command}", description=description)
    p.add_argument("--dataset", default="mnist", choices=datasets.DATASETS)
    p.add_argument("--groups", nargs="+", default=list(groups), choices=list(groups))
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--run-dir",
        type=dynlearn.writable_folder,
        default=None,
        help=f"default runs/{command}-<time>; an existing one resumes",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: digits, 1 epoch, narrow")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.dataset, opts.epochs = "digits", 1
    data = datasets.load(opts.dataset, seed=opts.seed)
    run_dir = Path(opts.run_dir or dynlearn.run_folder(Path("runs"), command))
    table = compare(
        name,
        title,
        data,
        {group: groups[group] for group in opts.groups},
        lambda group: network(group, data.n_features, data.n_classes, opts.quick),
        recipe,
        epochs=opts.epochs,
        seed=opts.seed,
        run_dir=run_dir,
    )
    print(table)
    print(f"results in {run_dir}")
    return 0
