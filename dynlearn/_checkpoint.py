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

__all__ = [
    "CheckpointMismatch",
    "atomic_write",
    "checkpoint_info",
    "leaf_layout",
    "load_checkpoint",
    "make_readable",
    "save_checkpoint",
]

CHECKPOINT = "checkpoint.eqx"
INFO = "checkpoint.json"


class CheckpointMismatch(ValueError):
    """A checkpoint that a run was asked to continue was made with other settings (another
    learner, mode, optimizer, data or batches): nothing was loaded or overwritten."""


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
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def make_readable(path: str | Path) -> None:
    """Give `path` the mode a plain `open` would: 0666 less the user's umask (0644 under the
    usual 022). Temporary files start as 0600, which would hide results from colleagues."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def save_checkpoint(run_dir: Path, state: Any, info: dict) -> None:
    """Write `state` (any pytree: model, optimizer state, ...) and a JSON `info`.

    The `.eqx` file is the source of truth (it holds the epoch too); the JSON is written
    after it, for people and for the checks on reading back (it records the leaves' shapes
    and dtypes under `"leaves"`, which tells a damaged file from one of another structure).
    """
    atomic_write(
        Path(run_dir) / CHECKPOINT,
        lambda f: eqx.tree_serialise_leaves(f, state, filter_spec=_save_leaf),
    )
    info = {**info, "leaves": leaf_layout(state)}
    text = json.dumps(info, indent=2, sort_keys=True).encode()
    atomic_write(Path(run_dir) / INFO, lambda f: f.write(text))


def checkpoint_info(run_dir: Path) -> dict | None:
    """The JSON `info` saved with the checkpoint in `run_dir` (None: no checkpoint; {}: no
    info file). A damaged info file is a `ValueError` naming it and what to do."""
    if not (Path(run_dir) / CHECKPOINT).exists():
        return None
    info_path = Path(run_dir) / INFO
    if not info_path.exists():
        return {}
    try:
        info = json.loads(info_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"run_dir: {info_path} is damaged (not JSON: {err}); restore it from a backup, or "
            f"delete it to resume from {CHECKPOINT} without the configuration check."
        ) from None
    if not isinstance(info, dict):
        raise ValueError(
            f"run_dir: {info_path} is damaged (a JSON object was expected, found "
            f"{type(info).__name__}); restore it, or delete it to resume without the checks."
        )
    return info


def load_checkpoint(run_dir: Path, like: Any) -> tuple[Any, dict] | None:
    """`(state, info)` from `run_dir`, with `like` giving the structure; None if absent.

    A checkpoint of another structure (another learner, mode or optimizer) or a damaged one
    (truncated, empty, with trailing bytes) is a `ValueError` that names the file, the
    first leaf that differs, and what to do."""
    info = checkpoint_info(run_dir)
    if info is None:
        return None
    path = Path(run_dir) / CHECKPOINT
    saved, wanted = info.get("leaves"), leaf_layout(like)
    if saved is not None and saved != wanted:
        raise CheckpointMismatch(
            f"run_dir: the checkpoint in {run_dir} does not fit this learner and mode: "
            f"{_first_difference(saved, wanted)} (saved with "
            f"{info.get('config', 'unknown settings')}); resume with the settings it was made "
            "with, or choose another run_dir."
        )
    try:
        with open(path, "rb") as f:
            state = eqx.tree_deserialise_leaves(f, like, filter_spec=_load_leaf)
            damaged = f.read(1) != b""  # trailing bytes: not what save_checkpoint wrote
    except (ValueError, TypeError, RuntimeError, OSError, EOFError):
        damaged = True
    if damaged:
        if saved is None:
            why = "it is damaged or was made by another learner, mode or optimizer"
        else:
            why = "it is damaged (truncated, or cut short while copying)"
        raise ValueError(
            f"run_dir: cannot read {path}: {why}; restore it from a backup, or delete "
            f"{CHECKPOINT} and {INFO} in {run_dir} to start over."
        )
    return state, info


def leaf_layout(tree: Any) -> list[str]:
    """The saved leaves of `tree` as `"path shape dtype"` strings (arrays; other leaves by
    type), in the order `save_checkpoint` writes them."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path)
        if _is_key(leaf):
            out.append(f"{name} key{tuple(leaf.shape)}")
        elif eqx.is_array_like(leaf) and hasattr(leaf, "dtype"):
            out.append(f"{name} {tuple(np.shape(leaf))} {np.dtype(leaf.dtype).name}")
        else:
            out.append(f"{name} {type(leaf).__name__}")
    return out


def _first_difference(saved: list[str], wanted: list[str]) -> str:
    for old, new in zip(saved, wanted):
        if old != new:
            return f"saved leaf `{old}`, this call has `{new}`"
    return f"it holds {len(saved)} leaves, this call has {len(wanted)}"


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
