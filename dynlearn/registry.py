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

Within one Python process (a notebook, a script) `register(group, name, obj)` adds a
callable without packaging it: `registry.load`, `dynlearn demo --rules` run in-process and
the studies (`experiments.constraints.main([...])`) then find it by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

__all__ = ["entries", "load", "register", "unregister"]

GROUPS = ("demos", "rules", "benchmarks", "experiments", "checks")


@dataclass(frozen=True)
class Registered:
    """A callable registered in this process (shaped like an entry point: name, value,
    group, `load()`)."""

    name: str
    group: str
    obj: Callable

    @property
    def value(self) -> str:
        module = getattr(self.obj, "__module__", "?")
        return f"{module}:{getattr(self.obj, '__qualname__', type(self.obj).__name__)}"

    def load(self) -> Callable:
        return self.obj


_IN_PROCESS: dict[str, dict[str, Registered]] = {group: {} for group in GROUPS}


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise ValueError(f"group: unknown registry group {group!r}; known: {list(GROUPS)}.")


def entries(group: str) -> dict[str, metadata.EntryPoint | Registered]:
    """Registered entry points of `dynlearn.<group>` and this process's `register`ed
    callables, by name."""
    _check_group(group)
    found = {ep.name: ep for ep in metadata.entry_points(group=f"dynlearn.{group}")}
    return found | _IN_PROCESS[group]


def register(group: str, name: str, obj: Callable, *, replace: bool = False) -> Callable:
    """Register `obj` as `name` in `dynlearn.<group>` for this process (e.g. a rule:
    `register("rules", "my-fa", factory)`, `factory(sizes, key) -> dynlearn.Recipe`).
    Returns `obj`. A name already registered (here or by a package) needs `replace=True`."""
    _check_group(group)
    if not callable(obj):
        raise TypeError(f"obj: expected a callable to register as {name!r}; got {type(obj)}.")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string; got {name!r}.")
    if name in entries(group) and not replace:
        raise ValueError(
            f"name: {name!r} is already registered in dynlearn.{group}; "
            "pass replace=True to replace it."
        )
    _IN_PROCESS[group][name] = Registered(name, group, obj)
    return obj


def unregister(group: str, name: str) -> None:
    """Remove a callable `register`ed in this process (packages' entry points stay)."""
    _check_group(group)
    if name not in _IN_PROCESS[group]:
        raise ValueError(f"name: {name!r} was not registered in this process in {group!r}.")
    del _IN_PROCESS[group][name]


def load(group: str, name: str) -> Callable:
    """The callable registered as `name` in `dynlearn.<group>`."""
    found = entries(group)
    if name not in found:
        raise ValueError(
            f"unknown {group[:-1]} {name!r}; registered: {sorted(found) or 'none'} "
            "(is dynlearn installed with `pip install .`?)."
        )
    return found[name].load()
