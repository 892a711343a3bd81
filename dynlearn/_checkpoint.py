"""Atomic checkpoints: a crash or Ctrl-C mid-write never destroys the last good one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "checkpoint_info"]

CHECKPOINT = "checkpoint.eqx"
INFO = "checkpoint.json"


def atomic_write(path: Path, write) -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on POSIX file systems, so readers see the old file or the new one,
    never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(run_dir: Path, state: Any, info: dict) -> None:
    """Write `state` (any pytree: model, optimizer state, ...) and a JSON `info`.

    The `.eqx` file is the source of truth (it holds the epoch too); the JSON is written
    after it, for people and for configuration checks.
    """
    atomic_write(
        Path(run_dir) / CHECKPOINT,
        lambda f: eqx.tree_serialise_leaves(f, state, filter_spec=_save_leaf),
    )
    text = json.dumps(info, indent=2, sort_keys=True).encode()
    atomic_write(Path(run_dir) / INFO, lambda f: f.write(text))


def checkpoint_info(run_dir: Path) -> dict | None:
    """The JSON `info` saved with the checkpoint in `run_dir` (None: no checkpoint; {}: no
    info file)."""
    if not (Path(run_dir) / CHECKPOINT).exists():
        return None
    info_path = Path(run_dir) / INFO
    return json.loads(info_path.read_text()) if info_path.exists() else {}


def load_checkpoint(run_dir: Path, like: Any) -> tuple[Any, dict] | None:
    """`(state, info)` from `run_dir`, with `like` giving the structure; None if absent. A
    checkpoint of another structure (another learner, mode or optimizer) is a `ValueError`."""
    info = checkpoint_info(run_dir)
    if info is None:
        return None
    path = Path(run_dir) / CHECKPOINT
    try:
        state = eqx.tree_deserialise_leaves(path, like, filter_spec=_load_leaf)
    except (ValueError, TypeError, RuntimeError, OSError) as err:
        raise ValueError(
            f"run_dir: the checkpoint in {run_dir} does not fit this learner and mode (saved "
            f"with {info.get('config', 'unknown settings')}): {err}"
        ) from err
    return state, info


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _save_leaf(f, x):
    """PRNG keys (e.g. of a random feedback pathway) are stored as their raw key data."""
    if _is_key(x):
        x = jax.random.key_data(x)
    eqx.default_serialise_filter_spec(f, x)


def _load_leaf(f, like):
    if _is_key(like):
        data = eqx.default_deserialise_filter_spec(f, jax.random.key_data(like))
        return jax.random.wrap_key_data(np.asarray(data), impl=jax.random.key_impl(like))
    return eqx.default_deserialise_filter_spec(f, like)
