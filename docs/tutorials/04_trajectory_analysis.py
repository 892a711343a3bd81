# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Trajectory analysis with xarray
#
# An always-on circuit learns *during* one long simulation, so how it learned is a
# trajectory: weights over time. Here we record one, save it as netCDF, and analyse it
# with xarray — selecting, resampling in time, and plotting how feedback weights align.
#
# **The run.** A small Latent Equilibrium network (`circuits.latent_equilibrium.LENetwork`,
# layers 10-30-20-10, tanh) whose hidden layers receive top-down signals through feedback
# matrices $B_l$ instead of $W_{l+1}^\top$. With **PAL** (phaseless alignment learning,
# Max et al. 2024; `circuits.pal.PAL`) each hidden layer carries Ornstein-Uhlenbeck
# exploration noise $\xi_l$,
#
# $$\tau_\xi\, d\xi_l = -\xi_l\, dt + \sigma \sqrt{2\tau_\xi}\, dW_t ,$$
#
# which travels up through $W_{l+1}$; the layer above high-pass filters its rates
# ($r^{\text{HP}}_{l+1}$) and the feedback learns their correlation, always on:
#
# $$\dot B_l = \eta \left( \xi_l\, {r^{\text{HP}}_{l+1}}^{\top} - \alpha B_l \right).$$
#
# On average over the noise
#
# $$\langle \xi_l\, {r^{\text{HP}}_{l+1}}^\top \rangle \propto
#   \operatorname{diag}(\phi'_l)\, W_{l+1}^\top \operatorname{diag}(\phi'_{l+1}),$$
#
# so $B_l$ turns towards $W_{l+1}^\top$ without any weight transport. As a control,
# **feedback alignment** keeps its random $B_l$. The forward weights are held fixed
# ($\eta_W = 0$) so that only $B$ moves.

# %%
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import pandas as pd
import xarray as xr

import dynlearn
from circuits.feedback import FeedbackAlignment
from circuits.latent_equilibrium import LENetwork
from circuits.pal import PAL

SIZES, T_PRES, DT, STREAMS = [10, 30, 20, 10], 10.0, 0.1, 8  # times in ms
key = jax.random.key(0)
n_samples = 40  # per stream: 400 ms
inputs = jax.random.uniform(jax.random.fold_in(key, 1), (n_samples, STREAMS, SIZES[0]), minval=-1)
stream = dynlearn.StimulusStream(inputs, T_PRES, tau_filter=2.0)


def record(pathway):
    """Simulate the learning network on the stream; keep B_l and W_{l+1} every 2 ms."""
    net = LENetwork(
        SIZES, key, activation="tanh", eta=0.0, beta=0.0, tau_error=DT, feedback=pathway
    )
    system = dynlearn.Learning(net)  # neurons, noise, filters and weights: one system

    def keep(y):  # what to save: the circuit's weights in state y
        learned = system.learned(y)
        b = learned.feedback.matrices(learned.weights)
        return {"B1": b[0], "B2": b[1], "W2": learned.weights[1], "W3": learned.weights[2]}

    traj = dynlearn.simulate(
        system,
        system.init_state(inputs[0]),
        0.0,
        stream.t1,
        args=stream,
        dt=DT,
        ts=jnp.arange(0.0, stream.t1 + DT, 2.0),
        variables=keep,
        key=jax.random.fold_in(key, 2),
    )
    return dynlearn.to_dataset(traj, system=net, time_unit="ms")


pathways = {
    "pal": PAL(jax.random.fold_in(key, 3), sigma=0.1, eta=10.0, alpha=1e-3),
    "fa": FeedbackAlignment(jax.random.fold_in(key, 3)),
}
runs = xr.concat([record(p) for p in pathways.values()], dim="pathway")
runs = runs.assign_coords(pathway=list(pathways))
runs.pathway.attrs.update(long_name="feedback pathway", units="1")

# %% [markdown]
# `simulate(..., variables=keep)` saved only the four matrices at 201 times (the network's
# full state was integrated, never stored). `to_dataset` named their axes `B1_dim0`,
# `B1_dim1`, ...; the two runs share one Dataset along a new `pathway` dimension.
#
# ## Save, load
#
# `save_netcdf` writes a CF-conventions netCDF file with provenance; `load_netcdf` reads it
# back (for many runs at once, `xr.open_mfdataset` opens them lazily with dask).

# %%
folder = Path(tempfile.mkdtemp())
dynlearn.save_netcdf(runs, folder / "alignment.nc")
ds = dynlearn.load_netcdf(folder / "alignment.nc")
ds

# %% [markdown]
# ## Select
#
# Label-based `.sel` and position-based `.isel` work on every dimension: one pathway, a time
# window, the nearest saved time, the last state.

# %%
pal = ds.sel(pathway="pal")
early = pal.B1.sel(time=slice(0.0, 20.0))  # the first 20 ms
print("B1 over the first 20 ms:", dict(early.sizes))
nearest = pal.B1.sel(time=101.0, method="nearest")
print(f"B1[0, 0] at t = {float(nearest.time):g} ms (nearest to 101):", float(nearest[0, 0]))
print("|B1| at the end:", float((pal.B1.isel(time=-1) ** 2).sum() ** 0.5))

# %% [markdown]
# ## Alignment angles over time
#
# The accessor `ds.dynlearn.alignment(a, b, transpose=True)` gives the angle between two
# matrix variables at every time (and for every other dimension, here `pathway`):
#
# $$\angle(B_l, W_{l+1}^\top) = \arccos
#   \frac{\langle B_l, W_{l+1}^\top\rangle_F}{\lVert B_l\rVert_F\, \lVert W_{l+1}\rVert_F}$$
#
# (0° is backprop's pathway, 90° an unrelated one).

# %%
angles = xr.Dataset(
    {
        "B1": ds.dynlearn.alignment("B1", "W2", transpose=True),
        "B2": ds.dynlearn.alignment("B2", "W3", transpose=True),
    }
).to_array("layer")
angles.sel(time=[0.0, 50.0, 200.0, 400.0]).round(1).to_dataframe("angle").unstack("time")

# %% [markdown]
# ## Resample and coarsen in time
#
# Time is a float coordinate in ms. `coarsen` averages fixed blocks of saved times (here 25,
# i.e. 50 ms); for calendar-style `resample` make time a `timedelta` first. The accessor's
# `by_presentation(t_pres)` groups by input presentation instead.

# %%
coarse = angles.coarsen(time=25, boundary="trim").mean()
as_delta = angles.assign_coords(time=pd.to_timedelta(angles.time.values, unit="ms"))
resampled = as_delta.resample(time="100ms").mean()
per_input = ds.dynlearn.by_presentation(T_PRES, how="last")
print(
    "coarsened:",
    dict(coarse.sizes),
    "| resampled:",
    dict(resampled.sizes),
    "| by presentation:",
    per_input.sizes["presentation"],
    "presentations",
)
resampled.sel(pathway="pal").round(1).to_pandas()

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.4), constrained_layout=True)
for name, color in [("pal", "C0"), ("fa", "C1")]:
    for layer, style in [("B1", "-"), ("B2", "--")]:
        series = angles.sel(pathway=name, layer=layer)
        ax.plot(series.time, series, color=color, ls=style, alpha=0.35, lw=1)
        smooth = coarse.sel(pathway=name, layer=layer)
        ax.plot(
            smooth.time,
            smooth,
            color=color,
            ls=style,
            marker="o",
            ms=3,
            label=f"{name} {layer} (50 ms means)",
        )
ax.set(
    xlabel="time (ms)",
    ylabel=r"angle($B_l$, $W_{l+1}^\top$) (degree)",
    ylim=(0, 100),
    title="PAL aligns the feedback from noise; fixed feedback stays put",
)
ax.legend(fontsize="small", ncol=2)
plt.show()

# %% [markdown]
# PAL's angles fall from about $90°$ to a plateau within some 100 ms, where the noise-driven
# learning and the decay $\alpha$ balance; feedback alignment's stay where they started.
# `theory/pal_alignment.py` (`dynlearn check pal_alignment`) makes this a tested claim,
# also in a cortical microcircuit and against Kolen-Pollack.
