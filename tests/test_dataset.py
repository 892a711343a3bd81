"""Trajectories as xarray Datasets; netCDF round trip."""

import os
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import dynlearn
from circuits import LeakyNetwork


def trajectory(batch=None):
    net = LeakyNetwork.random([4, 3, 2], jax.random.key(0))
    ts = jnp.linspace(0.0, 1.0, 6)

    def run(x):
        return dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=x, dt=0.1, ts=ts)

    if batch is None:
        return net, run(jnp.ones(4))
    return net, jax.vmap(run)(jnp.ones((batch, 4)))


def described() -> xr.Dataset:
    return dynlearn.describe(xr.Dataset({"a": ("x", np.arange(3.0))}), a=("a ramp", "1"))


def test_dims_coords_attrs():
    net, traj = trajectory()
    ds = dynlearn.to_dataset(traj, system=net, time_unit="ms", seed=3)
    assert set(ds.data_vars) == {"hidden1_u", "output_u"}
    assert ds.hidden1_u.dims == ("time", "unit_hidden1")
    assert ds.output_u.dims == ("time", "unit_output")
    assert ds.sizes == {"time": 6, "unit_hidden1": 3, "unit_output": 2}
    assert ds.time.attrs["units"] == "ms"
    np.testing.assert_allclose(ds.time, np.linspace(0, 1, 6), rtol=1e-6)
    assert ds.attrs["config_class"] == "LeakyNetwork" and ds.attrs["config_tau"] == net.tau
    assert ds.attrs["solver"] == "Euler" and ds.attrs["dt"] == 0.1 and ds.attrs["seed"] == 3
    assert "diffrax=" in ds.attrs["versions"]
    np.testing.assert_array_equal(ds.output_u.values, np.asarray(traj.ys["output"]["u"]))


def test_batched_trajectory_has_sample_dim():
    _, traj = trajectory(batch=5)
    ds = dynlearn.to_dataset(traj)
    assert ds.output_u.dims == ("time", "sample", "unit_output")
    assert ds.sizes["sample"] == 5
    np.testing.assert_array_equal(ds.output_u.isel(sample=2), np.asarray(traj.ys["output"]["u"][2]))


def test_netcdf_round_trip_is_exact(tmp_path):
    net, traj = trajectory(batch=2)
    ds = dynlearn.to_dataset(traj, system=net, attrs={"note": "x", "extra": {"a": 1}})
    path = dynlearn.save_netcdf(ds, tmp_path / "sub" / "traj.nc")
    back = dynlearn.load_netcdf(path)
    added = {k: v for k, v in back.attrs.items() if k not in ds.attrs}  # provenance
    assert set(added) == {"created", "command", "code_revision"}
    xr.testing.assert_identical(back, ds.assign_attrs(added))
    assert back.output_u.dtype == ds.output_u.dtype
    assert not list(tmp_path.glob("sub/.*tmp"))  # no temporary left behind


def test_dataset_needs_saved_times():
    net = LeakyNetwork.random([4, 2], jax.random.key(0))
    traj = dynlearn.simulate(net, net.init_state(), 0.0, 1.0, args=jnp.ones(4), dt=0.1)
    with pytest.raises(ValueError, match="ts="):
        dynlearn.to_dataset(traj)
    with pytest.raises(FileNotFoundError, match="no netCDF file"):
        dynlearn.load_netcdf("/nonexistent/x.nc")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_are_as_readable_as_the_umask_allows(tmp_path, umask, mode):
    """netCDF files and checkpoints get 0666 less the umask, like any `open`ed file (the
    temporary files they are written through start as 0600)."""
    previous = os.umask(umask)
    try:
        dynlearn.save_netcdf(described(), tmp_path / "a.nc")
        dynlearn.save_checkpoint(tmp_path / "run", {"w": np.ones(2)}, {"epoch": 1})
    finally:
        os.umask(previous)
    for path in (
        tmp_path / "a.nc",
        tmp_path / "run/checkpoint.eqx",
        tmp_path / "run/checkpoint.json",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_saved_files_record_where_they_come_from(tmp_path):
    """Every file `save_netcdf` writes says when, by which command, with which package
    versions and from which code revision it was made (attributes it had are kept)."""
    ds = described().assign_attrs(command="mine")
    attrs = dynlearn.load_netcdf(dynlearn.save_netcdf(ds, tmp_path / "a.nc")).attrs
    assert attrs["command"] == "mine" and "dynlearn=" in attrs["versions"]
    assert attrs["created"].startswith("20") and attrs["created"].endswith("+00:00")
    assert attrs["code_revision"] == "unknown" or len(attrs["code_revision"].split("+")[0]) == 40


def test_every_variable_has_units_and_long_name_that_cf_tools_read(tmp_path):
    """Trajectory variables are described (what, of which layer, units); units parse as
    UDUNITS (cf-xarray's pint registry); time is CF's T axis."""
    cf_units = pytest.importorskip("cf_xarray.units").units
    net, traj = trajectory(batch=2)
    ds = dynlearn.load_netcdf(
        dynlearn.save_netcdf(dynlearn.to_dataset(traj, system=net), tmp_path / "t.nc")
    )
    assert dynlearn.missing_metadata(ds) == []
    assert ds.hidden1_u.attrs == {"long_name": "membrane potential (u) of hidden1", "units": "1"}
    for name in [*ds.data_vars, "time"]:
        cf_units.parse_units(ds[name].attrs["units"])
    assert ds.cf.axes["T"] == ["time"]


def test_unit_dimensions_take_meaningful_coordinates():
    _, traj = trajectory()
    ds = dynlearn.to_dataset(traj, coords={"unit_output": ["cat", "dog"]})
    assert list(ds.output_u.sel(unit_output="dog").shape) == [6]
    with pytest.raises(ValueError, match=r"coords: 'unit_output' has 2 entries; got 3"):
        dynlearn.to_dataset(traj, coords={"unit_output": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"coords: 'unit_nope' is not a dimension"):
        dynlearn.to_dataset(traj, coords={"unit_nope": [1]})


def test_attributes_and_variables_are_netcdf_native(tmp_path):
    """Configurations flatten into one attribute per field; booleans become 0/1 (variables:
    int8 with CF flags); lists of numbers are arrays; nothing is a JSON string."""
    ds = dynlearn.describe(
        xr.Dataset({"ok": ("run", np.array([True, False]))}, coords={"run": [0, 1]}),
        ok=("the run converged", "1"),
    ).assign_attrs(config={"sizes": [4, 3], "inner": {"dt": 0.1, "adaptive": True}, "x": None})
    back = dynlearn.load_netcdf(dynlearn.save_netcdf(ds, tmp_path / "n.nc"))
    assert back.attrs["config_inner_dt"] == 0.1 and back.attrs["config_inner_adaptive"] == 1
    np.testing.assert_array_equal(back.attrs["config_sizes"], [4, 3])
    assert back.attrs["config_x"] == "none" and "config" not in back.attrs
    assert back.ok.dtype == bool and list(back.ok.values) == [True, False]  # read back
    assert back.ok.attrs["flag_meanings"] == "false true"
    import netCDF4

    with netCDF4.Dataset(tmp_path / "n.nc") as raw:  # as stored: a CF flag variable
        assert raw["ok"].dtype == np.int8 and list(raw["ok"].flag_values) == [0, 1]


def test_an_undescribed_variable_is_named_in_a_warning(tmp_path):
    ds = xr.Dataset({"mystery": ("x", np.arange(3.0)), "epoch": ("x", np.arange(3))})
    with pytest.warns(dynlearn.MetadataWarning, match=r"\['mystery'\].*dynlearn.describe"):
        dynlearn.save_netcdf(ds, tmp_path / "m.nc")
    back = dynlearn.load_netcdf(tmp_path / "m.nc")
    assert back.epoch.attrs["units"] == "1"  # a known name is described for you
    with pytest.raises(ValueError, match=r"variables: \['nope'\] not in the Dataset"):
        dynlearn.describe(ds, nope=("x", "1"))
