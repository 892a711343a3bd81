"""Run folders: where experiments, checks and the demo put their Datasets and figures."""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import os
from pathlib import Path

__all__ = ["check_writable", "run_folder", "writable_folder"]


def check_writable(path: str | Path, what: str = "run_dir") -> Path:
    """Raise a `ValueError` naming `what` unless files can be written in folder `path` (it
    may not exist yet: then its nearest existing parent must be a writable folder).

    Called before any work, so a run never computes for an hour to fail at its first save.
    """
    path = Path(path).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"{what}: cannot make a folder at {path}: {existing} is a file, not a folder; "
            "choose another location."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{what}: cannot write to {path} ({existing} is not writable by this user); "
            "choose a folder you can write to."
        )
    return path


def run_folder(root: str | Path, name: str) -> Path:
    """A new folder `root/name-YYYYmmdd-HHMMSS` (suffixed `-1`, `-2`, ... if it exists).

    `root` is checked for writability first. A run that fails before writing anything
    leaves no empty folder behind: the folder is removed at exit if it is still empty.
    """
    root = check_writable(root, "root")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, i = root / f"{name}-{stamp}", 1
    while True:  # mkdir, not exists(): two processes starting in the same second differ
        try:
            path.mkdir(parents=True)
            break
        except FileExistsError:
            path, i = root / f"{name}-{stamp}-{i}", i + 1
    atexit.register(remove_if_empty, path)
    return path


def remove_if_empty(path: Path) -> None:
    """Remove `path` and its sub-folders if none of them holds a file."""
    path = Path(path)
    if not path.is_dir() or any(p.is_file() or p.is_symlink() for p in path.rglob("*")):
        return
    for folder in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()
    path.rmdir()


def writable_folder(text: str) -> Path:
    """An `argparse` type for a `--run-dir` option: the path, checked by `check_writable`
    when the command line is parsed (the error is argparse's usage error, exit code 2)."""
    try:
        return check_writable(text, "--run-dir")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--run-dir: ")) from None
