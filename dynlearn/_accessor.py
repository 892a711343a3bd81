"""`ds.dynlearn`: trajectory analysis reached from a Dataset (an xarray accessor).

Registered when `dynlearn` is imported. Every method but `energy` is written in xarray
operations, so it stays lazy on dask-backed Datasets (e.g. many runs opened at once with
`xr.open_mfdataset`) until `.compute()`. Conventions are those of `to_dataset`: a `time`
dimension, optional `sample` (and any other run dimensions, e.g. `run` from
`open_mfdataset`), unit dimensions `unit_<layer>`.

    >>> ds = dynlearn.to_dataset(traj, system=net)
    >>> ds.dynlearn.settling_time(rtol=1e-3)              # per sample, if batched
    >>> ds.dynlearn.alignment("B1", "W2", transpose=True)  # degrees over time
    >>> ds.dynlearn.cosine_similarity("output_u", target)
    >>> ds.dynlearn.by_presentation(t_pres=20.0)          # state at the end of each input
    >>> ds.dynlearn.energy(net, drive)                    # E(y(t)) over time
    >>> ds.dynlearn.energy(pc_net, drive, by_layer=True)  # its terms per layer
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
import xarray as xr

from ._dataset import variable_name
from ._dynamics import AbstractDynamics, _path_name

__all__ = ["DynlearnAccessor"]


@xr.register_dataset_accessor("dynlearn")
class DynlearnAccessor:
    """Analysis of a trajectory Dataset: `ds.dynlearn.<method>`."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    # -- selection ------------------------------------------------------------------------

    def _variables(self, variables: str | Sequence[str] | None) -> list[str]:
        ds = self._ds
        if "time" not in ds.dims:
            raise ValueError(f"the Dataset has no time dimension (dims {dict(ds.sizes)}).")
        if variables is None:
            names = [str(v) for v, da in ds.data_vars.items() if "time" in da.dims]
        else:
            names = [variables] if isinstance(variables, str) else list(variables)
        missing = [v for v in names if v not in ds.data_vars]
        if missing:
            raise ValueError(
                f"variables: {missing} not in the Dataset; it has {sorted(ds.data_vars)}."
            )
        if not names:
            raise ValueError("the Dataset has no variable over time to analyse.")
        return names

    def _state_dims(self, da: xr.DataArray) -> list[str]:
        """Dimensions of one state: `unit_*` and `<variable>_dim<k>` (as `to_dataset` names
        them); any other dimension (`time`, `sample`, `run`, `seed`, ...) indexes runs."""
        return [d for d in da.dims if d.startswith("unit_") or "_dim" in d]

    # -- methods --------------------------------------------------------------------------

    def settling_time(
        self, variables: str | Sequence[str] | None = None, *, rtol: float = 1e-2, atol: float = 0.0
    ) -> xr.DataArray:
        """First saved time after which the state stays within `atol + rtol |y_final|` of
        its last saved value (`dynlearn.analysis.settling_time` per run; the norm is over
        all units of `variables`, default every variable over time). `inf` if never."""
        names = self._variables(variables)
        ds = self._ds
        final = {v: ds[v].isel(time=-1) for v in names}
        dist2 = sum(((ds[v] - final[v]) ** 2).sum(self._state_dims(ds[v])) for v in names)
        end2 = sum((final[v] ** 2).sum(self._state_dims(ds[v])) for v in names)
        inside = np.sqrt(dist2) <= atol + rtol * np.sqrt(end2)
        time = ds.time
        after = time.shift(time=-1).fillna(np.inf)  # the saved time after each one
        start = time.isel(time=0, drop=True)
        out = xr.where(inside, start, after).max("time")
        out.attrs = {}  # not the time coordinate's (axis: T, ...): a duration
        return out.rename("settling_time").assign_attrs(
            long_name=f"settling time (within rtol={rtol:g}, atol={atol:g} of the final state)",
            units=time.attrs.get("units", ""),
        )

    def cosine_similarity(self, variable: str, reference) -> xr.DataArray:
        """`<y(t), ref> / (|y(t)| |ref|)` over the variable's unit dimensions, per time
        (and run); `reference` an array of one state's shape or a DataArray broadcasting
        against the variable (`dynlearn.analysis.cosine_similarity` at each time)."""
        da = self._ds[self._variables(variable)[0]]
        dims = self._state_dims(da)
        if not isinstance(reference, xr.DataArray):
            reference = np.asarray(reference)
            shape = tuple(da.sizes[d] for d in dims)
            if reference.shape != shape:
                raise ValueError(
                    f"reference: shape {reference.shape}, expected {shape} (dims {dims} of "
                    f"{variable})."
                )
            reference = xr.DataArray(reference, dims=dims)
        cos = (da * reference).sum(dims) / (
            np.sqrt((da**2).sum(dims)) * np.sqrt((reference**2).sum(dims))
        )
        return cos.rename(f"cosine_{variable}").assign_attrs(
            long_name=f"cosine similarity of {variable} with the reference", units="1"
        )

    def alignment(self, variable: str, reference: str, *, transpose: bool = False) -> xr.DataArray:
        """The angle in degrees between two matrix variables over time (0 aligned, 90
        orthogonal), e.g. feedback weights `B` and `W^T` (`transpose=True` compares with
        the transposed reference; Lillicrap et al. 2016; `dynlearn.analysis.angle_deg` at
        each time)."""
        names = self._variables([variable, reference])
        a, b = (self._ds[n] for n in names)
        dims_a, dims_b = self._state_dims(a), self._state_dims(b)
        if transpose:
            dims_b = dims_b[::-1]
        shape_a = tuple(a.sizes[d] for d in dims_a)
        shape_b = tuple(b.sizes[d] for d in dims_b)
        if shape_a != shape_b:
            raise ValueError(
                f"{variable} has shape {shape_a} per time and {reference}"
                f"{'^T' if transpose else ''} {shape_b}: they must match"
                + ("" if transpose else " (transpose=True to compare with its transpose)")
                + "."
            )
        b = b.rename(dict(zip(dims_b, dims_a)))
        cos = (a * b).sum(dims_a) / (np.sqrt((a**2).sum(dims_a)) * np.sqrt((b**2).sum(dims_a)))
        angle = np.degrees(np.arccos(cos.clip(-1.0, 1.0)))
        ref = f"{reference}^T" if transpose else reference
        return angle.rename(f"angle_{variable}_{reference}").assign_attrs(
            long_name=f"angle between {variable} and {ref}", units="degree"
        )

    def by_presentation(
        self, t_pres: float, *, t0: float | None = None, how: str = "last"
    ) -> xr.Dataset:
        """The trajectory resampled to presentations of length `t_pres` starting at `t0`
        (default the first saved time): `how="last"` keeps the last saved state of each
        presentation (the settled response), `"mean"` averages over it. The new dimension
        `presentation` (0, 1, ...) has coordinate `time` = its end."""
        if not t_pres > 0:
            raise ValueError(f"t_pres must be > 0; got {t_pres}.")
        if how not in ("last", "mean"):
            raise ValueError(f"how must be 'last' or 'mean'; got {how!r}.")
        ds = self._ds
        start = float(ds.time[0]) if t0 is None else float(t0)
        # a saved time at a boundary belongs to the presentation that ends there
        phase = (np.asarray(ds.time.values, np.float64) - start) / t_pres
        index = np.ceil(phase - 1e-6).astype(int) - 1  # float32 times: boundaries +-1e-6
        index = np.maximum(index, 0)
        grouped = ds.assign_coords(presentation=("time", index)).groupby("presentation")
        out = grouped.last() if how == "last" else grouped.mean()
        ends = start + t_pres * (out.presentation.values + 1)
        out = out.assign_coords(time_end=("presentation", ends))
        out.presentation.attrs.update(long_name="presentation (input) index", units="1")
        out.time_end.attrs.update(
            long_name="end time of the presentation", units=ds.time.attrs.get("units", "")
        )
        return out

    def energy(self, system, args=None, *, by_layer: bool = False) -> xr.DataArray:
        """`E(y(t), args)` of an energy-based `system` (with `energy(y, args)`, e.g.
        `AbstractEnergyDynamics`) at each saved time (and sample); `by_layer=True`: its
        terms per layer from `system.layer_energies(y, args) -> {layer: scalar}` (e.g.
        `PCNetwork`), on a new `layer` dimension. The state is rebuilt from the Dataset's
        variables with the structure of `system.init_state()`. Computes (not lazy): it
        calls the system's JAX functions."""
        name = type(system).__name__
        method = "layer_energies" if by_layer else "energy"
        own = getattr(type(system), method, None)
        if not callable(own) or own is AbstractDynamics.energy:
            raise ValueError(f"system: {name} has no {method}(y, args) method.")
        ds = self._ds
        template = system.init_state()
        paths, treedef = jax.tree_util.tree_flatten_with_path(template)
        leaves = []
        for path, leaf in paths:
            variable = variable_name(path)
            if variable not in ds:
                raise ValueError(
                    f"the Dataset has no variable {variable!r} for the state leaf "
                    f"{_path_name(path)} of {name}."
                )
            da = ds[variable]
            order = ["time"] + (["sample"] if "sample" in da.dims else [])
            da = da.transpose(*order, ...)
            leaves.append(np.asarray(da.values, dtype=np.asarray(leaf).dtype))
        batched = "sample" in ds.dims

        def one(*values):
            y = jax.tree_util.tree_unflatten(treedef, values)
            return getattr(system, method)(y, args)

        fn = jax.vmap(jax.vmap(one)) if batched else jax.vmap(one)
        values = jax.jit(fn)(*leaves)
        dims = ("time", "sample") if batched else ("time",)
        coords = {d: ds[d] for d in dims if d in ds.coords}
        if by_layer:
            layers = list(values)
            stacked = np.stack([np.asarray(values[k]) for k in layers], axis=-1)
            out = xr.DataArray(stacked, dims=(*dims, "layer"), coords={**coords, "layer": layers})
            return out.rename("layer_energy").assign_attrs(
                long_name=f"energy of each layer of {name}", units="1"
            )
        out = xr.DataArray(np.asarray(values), dims=dims, coords=coords)
        return out.rename("energy").assign_attrs(long_name=f"energy of {name}", units="1")
