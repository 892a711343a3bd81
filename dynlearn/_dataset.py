"""Trajectories as `xarray.Dataset`s, saved as netCDF.

Conventions (ARCHITECTURE.md): dims `time` (units in its attrs), `sample` (batched runs),
and one unit dim per layer, `unit_<layer>`; variables `<layer>_<quantity>` from the state's
dict keys (`{"hidden1": {"u_apical": ...}}` -> `hidden1_u_apical`), each with `long_name`
and `units` (CF conventions, `dynlearn._metadata`); attrs hold the circuit's config
flattened into netCDF-native `config_<field>` attributes, the solver, the step, the seed
and package versions. Every file `save_netcdf` writes also records its provenance
(`created`, `command`, `versions`, `code_revision`) and is readable by others (0666 less
the umask).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import os
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import xarray as xr

from ._checkpoint import make_readable
from ._dynamics import _path_name
from ._metadata import QUANTITIES, for_netcdf, native_attrs

__all__ = ["to_dataset", "save_netcdf", "load_netcdf", "config_of", "provenance"]

_PACKAGES = ("dynlearn", "jax", "equinox", "diffrax", "optax", "numpy", "xarray")


def to_dataset(
    trajectory,
    *,
    system: Any = None,
    time_unit: str = "ms",
    seed: int | None = None,
    attrs: dict | None = None,
    name: str = "y",
    units: str | dict[str, str] = "1",
    coords: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Convert a `Trajectory` saved at times `ts` to an `xarray.Dataset`.

    **Arguments:**
    - `trajectory`: from `simulate(..., ts=...)`, possibly vmapped (leading batch axis).
    - `system`: the simulated system; its config goes into `config_<field>` attrs.
    - `time_unit`: unit of the time axis (`ds.time.attrs["units"]`, a UDUNITS string; `"1"`
      for time in units of a time constant).
    - `seed`, `attrs`: recorded in the attrs (nested values flattened, `native_attrs`).
    - `name`: variable name when the state is a bare array rather than a dict.
    - `units`: units of the state variables, one for all or per variable name (`"1"`:
      rate models' potentials and rates are dimensionless).
    - `coords`: coordinates for unit dimensions where they have a meaning, e.g.
      `{"unit_output": ["zero", "one", ...]}` (class names of the output units).
    """
    if trajectory.ts is None or trajectory.ys is None:
        raise ValueError(
            "trajectory: it holds no saved times; simulate with ts=... to get a Dataset."
        )
    ts = np.asarray(trajectory.ts)
    batched = ts.ndim == 2
    time = ts[0] if batched else ts
    data_vars = {}
    unit_sizes: dict[str, int] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(trajectory.ys)[0]:
        var = variable_name(path, name)
        layer = _path_name(path[:1]) if path else name
        values = np.asarray(leaf)
        if batched:  # (sample, time, ...) -> (time, sample, ...)
            values = np.swapaxes(values, 0, 1)
        lead = ("time", "sample") if batched else ("time",)
        trailing = values.shape[len(lead) :]
        if len(trailing) == 1:
            dim = f"unit_{layer}"
            if unit_sizes.setdefault(dim, trailing[0]) != trailing[0]:
                dim = f"unit_{var}"
            dims = lead + (dim,)
        else:
            dims = lead + tuple(f"{var}_dim{i}" for i in range(len(trailing)))
        data_vars[var] = (dims, values, _state_attrs(path, var, units))
    ds = xr.Dataset(data_vars, coords={"time": ("time", time)})
    ds.time.attrs.update(long_name="time", units=time_unit, axis="T")
    if time_unit not in ("1", ""):  # CF's standard name `time` needs units of time
        ds.time.attrs["standard_name"] = "time"
    if batched:
        ds = ds.assign_coords(sample=np.arange(ts.shape[0]))
        ds.sample.attrs["long_name"] = "sample (batch element)"
    ds.attrs.update(
        {
            "system": type(system).__name__ if system is not None else "",
            "solver": trajectory.solver,
            "dt": float("nan") if trajectory.dt is None else float(trajectory.dt),
            "seed": -1 if seed is None else int(seed),
            "versions": _versions_text(),
        }
    )
    for dim, values in (coords or {}).items():
        if dim not in ds.dims:
            raise ValueError(
                f"coords: {dim!r} is not a dimension; the Dataset has {sorted(ds.dims)}."
            )
        if len(values) != ds.sizes[dim]:
            raise ValueError(
                f"coords: {dim!r} has {ds.sizes[dim]} entries; got {len(values)} values."
            )
        ds = ds.assign_coords({dim: (dim, list(values))})
    if system is not None:
        ds.attrs.update(native_attrs({"config": config_of(system)}))
    ds.attrs.update(native_attrs(attrs or {}))
    return ds


def variable_name(path, default: str = "y") -> str:
    """The Dataset variable of a state leaf at key `path`: `("hidden1", "u_apical")` ->
    `hidden1_u_apical`; `default` for a bare-array state (empty path)."""
    return _path_name(path).replace("/", "_") if path else default


def _state_attrs(path, var: str, units: str | dict[str, str]) -> dict:
    """`long_name` (what the quantity is, from `QUANTITIES`, and its layer) and `units`."""
    names = _path_name(path).split("/") if path else []
    quantity = names[-1] if names else var
    what = QUANTITIES.get(quantity, quantity.replace("_", " "))
    where = f" of {'/'.join(names[:-1])}" if len(names) > 1 else ""
    unit = units.get(var, "1") if isinstance(units, dict) else units
    return {"long_name": f"{what} ({quantity}){where}", "units": unit}


def config_of(module: Any) -> Any:
    """A JSON-able description of a module: scalars as values, arrays as shape/dtype."""
    if dataclasses.is_dataclass(module) and not isinstance(module, type):
        out = {"class": type(module).__name__}
        for field in dataclasses.fields(module):
            if field.name.startswith("_"):
                continue
            out[field.name] = config_of(getattr(module, field.name, None))
        return out
    if isinstance(module, (list, tuple)):
        return [config_of(m) for m in module]
    if isinstance(module, dict):
        return {str(k): config_of(v) for k, v in module.items()}
    if eqx.is_array(module):
        if jax.dtypes.issubdtype(module.dtype, jax.dtypes.prng_key):
            return f"PRNG key{tuple(module.shape)}"
        if module.ndim == 0:
            return module.item()
        return f"array{tuple(module.shape)} {module.dtype}"
    if isinstance(module, (bool, int, float, str)) or module is None:
        return module
    if callable(module):
        return getattr(module, "__name__", type(module).__name__)
    return repr(module)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def provenance() -> dict[str, str]:
    """Where a file comes from, as netCDF string attributes: `created` (UTC, ISO 8601),
    `command` (the command line of this process), `versions` (dynlearn and its key
    dependencies, `name=version, ...`) and `code_revision` (the git commit of dynlearn's
    source tree, `+dirty` if it has uncommitted changes; `unknown` outside a checkout)."""
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "versions": _versions_text(),
        "code_revision": _code_revision(),
    }


def _versions_text() -> str:
    return ", ".join(f"{name}={version}" for name, version in _versions().items())


@functools.lru_cache(maxsize=1)
def _code_revision() -> str:
    source = Path(__file__).resolve().parents[1]
    try:

        def git(*args):
            return subprocess.run(
                ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=5
            )

        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write `ds` to `path` atomically (temporary file in the same folder, then rename),
    with the `provenance()` attributes (those `ds` already has are kept), the `KNOWN`
    metadata filled in and attributes made netCDF-native (`dynlearn._metadata.for_netcdf`;
    a `MetadataWarning` names data variables left without units or long_name)."""
    ds = for_netcdf(ds.assign_attrs({**provenance(), **ds.attrs}))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Load a Dataset written by `save_netcdf` fully into memory (the file is closed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no netCDF file at {path}.")
    try:
        return xr.load_dataset(path, engine="netcdf4")
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ValueError(
            f"path: cannot read {path}: it is damaged or not a netCDF file ({err}); restore "
            "it, or delete it and re-run what wrote it."
        ) from None
