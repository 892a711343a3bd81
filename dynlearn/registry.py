"""What the CLI can run, found through entry points (so the engine imports no circuits).

Packages declare, in their `pyproject.toml`:

    [project.entry-points."dynlearn.demos"]
    my-demo = "my_package.my_module:demo"

Groups: `dynlearn.rules` (learning rules: `factory(sizes, key) -> dynlearn.Recipe`, a
learner for layer sizes `[n_in, ..., n_out]`, the mode that trains it and its batch size),
`dynlearn.demos` (`demo(run_dir, quick) -> list[dict]` rows of the demo's dynamics table),
`dynlearn.experiments`, `dynlearn.benchmarks` and `dynlearn.checks` (`main(argv) -> exit
code`; a check's `main.demo` says whether `dynlearn demo` runs it, see
`dynlearn.validation.script_main`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

__all__ = ["entries", "load"]

GROUPS = ("demos", "rules", "benchmarks", "experiments", "checks")


def entries(group: str) -> dict[str, metadata.EntryPoint]:
    """Registered entry points of `dynlearn.<group>`, by name."""
    if group not in GROUPS:
        raise ValueError(f"group: unknown registry group {group!r}; known: {list(GROUPS)}.")
    return {ep.name: ep for ep in metadata.entry_points(group=f"dynlearn.{group}")}


def load(group: str, name: str) -> Callable:
    """The callable registered as `name` in `dynlearn.<group>`."""
    found = entries(group)
    if name not in found:
        raise ValueError(
            f"unknown {group[:-1]} {name!r}; registered: {sorted(found) or 'none'} "
            "(is dynlearn installed with `pip install .`?)."
        )
    return found[name].load()
