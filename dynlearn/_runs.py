"""Run folders: where experiments, checks and the demo put their Datasets and figures."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

__all__ = ["run_folder"]


def run_folder(root: str | Path, name: str) -> Path:
    """A new folder `root/name-YYYYmmdd-HHMMSS` (suffixed `-1`, `-2`, ... if it exists)."""
    root = Path(root)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, i = root / f"{name}-{stamp}", 1
    while path.exists():
        path, i = root / f"{name}-{stamp}-{i}", i + 1
    path.mkdir(parents=True)
    return path
