"""CF-style metadata for the Datasets dynlearn writes (CF conventions, sections 2.5 and 3).

Every data variable carries `long_name` and `units` (a UDUNITS string; `"1"` for a
dimensionless quantity such as an accuracy, which is stored as a fraction in [0, 1]);
attributes are netCDF-native (numbers, strings, numeric arrays): nested configurations are
flattened into `<prefix>_<key>` attributes, booleans become 0/1 and boolean variables
`int8` flags (`flag_values`/`flag_meanings`, read back as booleans). `save_netcdf` applies
all of this and warns (`MetadataWarning`) about any data variable it still cannot describe.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

__all__ = ["describe", "missing_metadata", "native_attrs", "MetadataWarning", "KNOWN"]

FRACTION = "fraction in [0, 1]"

#: `long_name` and `units` of the names the package uses across modules (a variable that
#: already has either attribute keeps its own).
KNOWN: dict[str, tuple[str, str]] = {
    "epoch": ("training epoch (1 = after the first pass over the training set)", "1"),
    "seed": ("random seed", "1"),
    "sample": ("sample (batch element)", "1"),
    "rule": ("learning rule", ""),
    "train_loss": ("training loss, mean over the epoch", "1"),
    "train_accuracy": (f"training accuracy, {FRACTION}", "1"),
    "test_accuracy": (f"test accuracy, {FRACTION}", "1"),
    "accuracy": (f"test accuracy, {FRACTION}", "1"),
    "wall_time": ("wall-clock time", "s"),
    "seconds": ("wall-clock time", "s"),
}

#: Names of state quantities (`{layer: {quantity: ...}}`) and what they are, for the
#: `long_name` of trajectory variables.
QUANTITIES: dict[str, str] = {
    "u": "membrane potential",
    "r": "firing rate",
    "x": "activity",
    "e": "prediction error",
    "xi": "exploration noise",
    "u_apical": "apical dendrite potential",
    "u_basal": "basal dendrite potential",
    "u_inter": "interneuron potential",
    "rate_lp": "low-pass filtered rate",
    "v": "somatic potential",
}


class MetadataWarning(UserWarning):
    """A Dataset is written with data variables that have no `units` or `long_name`."""


def describe(ds: xr.Dataset, **variables: tuple[str, str]) -> xr.Dataset:
    """`ds` with `long_name` and `units` set for the named variables or coordinates,
    e.g. `describe(ds, angle=("angle between B and W^T", "degree"))`."""
    unknown = [name for name in variables if name not in ds.variables]
    if unknown:
        raise ValueError(f"variables: {unknown} not in the Dataset; it has {sorted(ds.variables)}.")
    ds = ds.copy()
    for name, (long_name, units) in variables.items():
        ds[name].attrs.update(long_name=long_name, units=units)
    return ds


def fill_known(ds: xr.Dataset) -> xr.Dataset:
    """`ds` with `KNOWN` metadata on the variables and coordinates that have none."""
    ds = ds.copy()
    for name in ds.variables:
        if name in KNOWN and not {"long_name", "units"} & set(ds[name].attrs):
            long_name, units = KNOWN[name]
            ds[name].attrs["long_name"] = long_name
            if units:
                ds[name].attrs["units"] = units
    return ds


def missing_metadata(ds: xr.Dataset) -> list[str]:
    """The data variables of `ds` without `units` or without `long_name`."""
    return [
        str(name)
        for name, var in ds.data_vars.items()
        if not {"units", "long_name"} <= set(var.attrs)
    ]


def native_attrs(attrs: Mapping, prefix: str = "") -> dict:
    """Attributes netCDF can store: dicts (and lists holding dicts, by index) flattened to
    `<prefix>_<key>` (recursively), booleans to 0/1, None and empty dicts to `"none"`,
    lists of numbers to arrays, lists of strings to one comma-separated string; a list of
    anything else (e.g. nested lists: no flat form) as a JSON string."""
    out = {}
    for key, value in attrs.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(native_attrs(value, name) if value else {name: "none"})
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            out.update(native_attrs({str(i): v for i, v in enumerate(value)}, name))
        else:
            out[name] = _native_value(value)
    return out


def _native_value(value):
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if items and all(isinstance(v, (int, float, np.integer, np.floating)) for v in items):
            if not any(isinstance(v, (bool, np.bool_)) for v in items):
                return np.asarray(items)
        if items and all(isinstance(v, str) for v in items):
            return ", ".join(items)
        return json.dumps(items, default=str)
    return str(value)


def native_variables(ds: xr.Dataset) -> xr.Dataset:
    """Boolean variables and coordinates as `int8` 0/1 with CF flag attributes
    (`flag_values`, `flag_meanings`), and xarray's `dtype = "bool"` marker so that they
    load back as booleans (`ds.sel(flag=True)` keeps working on a loaded file)."""
    booleans = [name for name, var in ds.variables.items() if var.dtype == bool]
    if not booleans:
        return ds
    ds = ds.copy()
    for name in booleans:
        attrs = dict(ds[name].attrs)
        attrs.setdefault("flag_values", np.array([0, 1], np.int8))
        attrs.setdefault("flag_meanings", "false true")
        attrs["dtype"] = "bool"
        ds[name] = ds[name].astype(np.int8).assign_attrs(attrs)
    return ds


def for_netcdf(ds: xr.Dataset) -> xr.Dataset:
    """What `save_netcdf` writes: known metadata filled in, native attributes and
    variables; warns `MetadataWarning` for data variables still lacking units/long_name."""
    ds = native_variables(fill_known(ds))
    ds.attrs = native_attrs(ds.attrs)
    for var in ds.variables.values():
        var.attrs = native_attrs(var.attrs)
    missing = missing_metadata(ds)
    if missing:
        warnings.warn(
            f"variables {missing} have no units or long_name; describe them with "
            "dynlearn.describe(ds, name=(long_name, units)) (units '1' if dimensionless).",
            MetadataWarning,
            stacklevel=3,
        )
    return ds
