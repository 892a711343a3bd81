"""`ds.dynlearn`: each method equals the array function it wraps, and stays lazy on a
multi-file dask-backed Dataset."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import dynlearn
from circuits import LeakyNetwork


class Pair(dynlearn.AbstractEnergyDynamics):
    """E = 1/2 |a - c|^2 + 1/2 |b - a|^2, c from args."""

    tau: float = 1.0

    def init_state(self, x=None):
        return {"a": {"u": jnp.zeros(3)}, "b": {"u": jnp.zeros(3)}}

    def energy(self, y, args):
        a, b = y["a"]["u"], y["b"]["u"]
        return 0.5 * jnp.sum((a - args) ** 2) + 0.5 * jnp.sum((b - a) ** 2)


def leaky(batch=None, t1=6.0):
    net = LeakyNetwork.random([4, 3, 2], jax.random.key(0), tau=1.0)
    ts = jnp.linspace(0.0, t1, 31)

    def run(x):
        return dynlearn.simulate(net, net.init_state(), 0.0, t1, args=x, dt=0.05, ts=ts)

    if batch is None:
        return net, run(jnp.ones(4))
    xs = jax.random.normal(jax.random.key(1), (batch, 4))
    return net, jax.vmap(run)(xs)


@pytest.mark.parametrize("rtol", [1e-1, 1e-2])
def test_settling_time_is_the_array_functions(rtol):
    _, traj = leaky(batch=3)
    ds = dynlearn.to_dataset(traj)
    got = ds.dynlearn.settling_time(rtol=rtol)
    assert got.dims == ("sample",)
    for k in range(3):
        one = jax.tree.map(lambda v, k=k: v[k], traj.ys)
        want = dynlearn.analysis.settling_time(traj.ts[k], one, rtol=rtol)
        assert float(got[k]) == pytest.approx(want)
    only = ds.dynlearn.settling_time("output_u", rtol=rtol)
    want = dynlearn.analysis.settling_time(traj.ts[0], traj.ys["output"]["u"][0], rtol=rtol)
    assert float(only[0]) == pytest.approx(want)
    assert got.attrs["units"] == "ms"
    assert "axis" not in got.attrs  # a duration, not the time axis


def test_cosine_similarity_and_alignment_are_the_array_functions():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 4, 3)).astype(np.float32)  # (time, 4, 3)
    b = rng.standard_normal((5, 3, 4)).astype(np.float32)
    ds = xr.Dataset(
        {"W": (("time", "W_dim0", "W_dim1"), w), "B": (("time", "B_dim0", "B_dim1"), b)},
        coords={"time": np.arange(5.0)},
    )
    angle = ds.dynlearn.alignment("B", "W", transpose=True)
    ref = rng.standard_normal((4, 3))
    cos = ds.dynlearn.cosine_similarity("W", ref)
    for t in range(5):
        want = dynlearn.analysis.angle_deg(jnp.asarray(b[t]), jnp.asarray(w[t]).T)
        assert float(angle[t]) == pytest.approx(float(want), abs=1e-3)
        want = dynlearn.analysis.cosine_similarity(jnp.asarray(w[t]), jnp.asarray(ref))
        assert float(cos[t]) == pytest.approx(float(want), abs=1e-6)
    assert angle.attrs["units"] == "degree"
    with pytest.raises(ValueError, match=r"transpose=True"):
        ds.dynlearn.alignment("B", "W")
    with pytest.raises(ValueError, match=r"reference: shape \(3, 4\), expected \(4, 3\)"):
        ds.dynlearn.cosine_similarity("W", ref.T)
    with pytest.raises(ValueError, match=r"variables: \['V'\] not in the Dataset"):
        ds.dynlearn.alignment("V", "W")


@pytest.mark.parametrize("how", ["last", "mean"])
def test_by_presentation_keeps_each_inputs_last_or_mean_state(how):
    _, traj = leaky(t1=6.0)  # saved every 0.2 ms
    ds = dynlearn.to_dataset(traj)
    per = ds.dynlearn.by_presentation(2.0, how=how)
    assert per.sizes["presentation"] == 3
    np.testing.assert_allclose(per.time_end, [2.0, 4.0, 6.0])
    t = ds.time.values
    for p, (lo, hi) in enumerate([(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]):
        inside = (t > lo + 1e-6) & (t <= hi + 1e-6) if p else (t <= hi + 1e-6)
        values = ds.output_u.values[inside]
        want = values[-1] if how == "last" else values.mean(0)
        np.testing.assert_allclose(per.output_u.isel(presentation=p), want, rtol=1e-6)
    with pytest.raises(ValueError, match="t_pres must be > 0"):
        ds.dynlearn.by_presentation(0.0)


def test_energy_over_time_is_the_systems_energy():
    system, c = Pair(), jnp.array([1.0, -2.0, 0.5])
    ts = jnp.linspace(0.0, 3.0, 7)
    traj = dynlearn.simulate(system, system.init_state(), 0.0, 3.0, args=c, dt=0.05, ts=ts)
    energy = dynlearn.to_dataset(traj, system=system).dynlearn.energy(system, c)
    for k in range(7):
        state = jax.tree.map(lambda v, k=k: v[k], traj.ys)
        assert float(energy[k]) == pytest.approx(float(system.energy(state, c)), rel=1e-5)
    assert np.all(np.diff(energy.values) <= 1e-6)  # a gradient flow never climbs
    assert energy.attrs["long_name"] == "energy of Pair"
    with pytest.raises(ValueError, match="has no energy"):
        dynlearn.to_dataset(traj).dynlearn.energy(LeakyNetwork.random([2, 2], jax.random.key(0)))


def test_methods_stay_lazy_on_a_multi_file_dask_dataset(tmp_path):
    pytest.importorskip("dask")
    paths, eager = [], []
    for seed in range(3):
        net = LeakyNetwork.random([4, 3, 2], jax.random.key(seed), tau=1.0)
        ts = jnp.linspace(0.0, 6.0, 31)
        traj = dynlearn.simulate(net, net.init_state(), 0.0, 6.0, args=jnp.ones(4), dt=0.05, ts=ts)
        ds = dynlearn.to_dataset(traj, system=net, seed=seed)
        eager.append(ds)
        paths.append(dynlearn.save_netcdf(ds, tmp_path / f"run-{seed}.nc"))
    runs = xr.open_mfdataset(paths, combine="nested", concat_dim="run", engine="netcdf4")
    try:
        assert runs.output_u.chunks is not None  # dask-backed
        settle = runs.dynlearn.settling_time(rtol=1e-2)
        cos = runs.isel(time=slice(1, None)).dynlearn.cosine_similarity("output_u", np.ones(2))
        per = runs.dynlearn.by_presentation(2.0)
        for lazy in (settle, cos, per.output_u):
            assert lazy.chunks is not None, "computed eagerly"
        for k, ds in enumerate(eager):
            assert float(settle.isel(run=k)) == pytest.approx(
                float(ds.dynlearn.settling_time(rtol=1e-2))
            )
            later = ds.isel(time=slice(1, None))  # the state starts at 0: no angle at t = 0
            np.testing.assert_allclose(
                cos.isel(run=k), later.dynlearn.cosine_similarity("output_u", np.ones(2)), rtol=1e-6
            )
            xr.testing.assert_allclose(
                per.output_u.isel(run=k).compute(), ds.dynlearn.by_presentation(2.0).output_u
            )
    finally:
        runs.close()


def test_energy_by_layer_sums_to_predictive_codings_free_energy():
    from circuits import PCNetwork
    from circuits.pc import PCDrive

    net = PCNetwork([3, 4, 2], jax.random.key(0))
    x, y = jnp.array([0.5, -1.0, 0.2]), jnp.array([1.0, 0.0])
    drive = PCDrive(x, y)
    ts = jnp.linspace(0.0, 2.0, 5)
    traj = dynlearn.simulate(net, net.init_state(x), 0.0, 2.0, args=drive, dt=0.05, ts=ts)
    ds = dynlearn.to_dataset(traj, system=net)
    layers = ds.dynlearn.energy(net, drive, by_layer=True)
    total = ds.dynlearn.energy(net, drive)
    assert list(layers.layer.values) == list(net.layer_names)
    np.testing.assert_allclose(layers.sum("layer"), total, rtol=1e-6)
    assert float(total[-1]) < float(total[0])  # inference lowers F
