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
# # A dynamical system in 20 lines
#
# In dynlearn a network *is* a dynamical system: an `equinox.Module` whose fields are its
# parameters and whose `vector_field(t, y, args)` is the drift $\dot y = f(t, y, \text{args})$.
# The engine integrates it (`dynlearn.simulate`), settles it (`dynlearn.equilibrate`) and
# turns what it saved into an `xarray.Dataset` (`dynlearn.to_dataset`).
#
# We write a small energy-based network. Its state is a vector of potentials $u$, its rates
# are $r = \tanh(u)$, and its energy is
#
# $$E(u) = \tfrac{1}{2}\lVert u\rVert^2 - \tfrac{1}{2} r^\top W r - I^\top r ,$$
#
# with $W$ symmetric and $I$ an input. For an `AbstractEnergyDynamics` we write only $E$:
# the engine derives the gradient flow $\tau \dot u = -\partial E / \partial u$ with `jax.grad`,
# along which $E$ never increases.

# %%
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import dynlearn


class TinyHopfield(dynlearn.AbstractEnergyDynamics):
    weights: jax.Array  # (n, n), symmetric
    tau: float = eqx.field(static=True)  # time constant

    def init_state(self, x=None):
        return {"neurons": {"u": jnp.zeros(self.weights.shape[0])}}

    def energy(self, y, args):
        u = y["neurons"]["u"]
        r = jnp.tanh(u)
        return 0.5 * u @ u - 0.5 * r @ self.weights @ r - args @ r


w = jax.random.normal(jax.random.key(0), (6, 6)) / jnp.sqrt(6.0)
net = TinyHopfield(tau=1.0, weights=0.5 * (w + w.T) - jnp.diag(jnp.diag(w)))
inputs = jnp.linspace(-0.5, 0.5, 6)
y0 = {"neurons": {"u": jax.random.normal(jax.random.key(1), (6,))}}

# %% [markdown]
# ## Integrate over a time span
#
# `simulate` integrates from $t_0$ to $t_1$ (Euler steps of `dt` here) and saves the state
# only at the times `ts` asked for: memory stays flat however long the run.

# %%
ts = jnp.linspace(0.0, 10.0, 101)
traj = dynlearn.simulate(net, y0, 0.0, 10.0, args=inputs, dt=0.02, ts=ts)
print(traj.ys["neurons"]["u"].shape, "saved states;", int(traj.num_steps), "Euler steps")

# %% [markdown]
# ## Settle to the fixed point
#
# `equilibrate` integrates with an adaptive solver until the drift is small,
# $\lVert f(y)\rVert < \text{atol} + \text{rtol}\,\lVert y\rVert$, and returns the fixed point
# $u^\ast$ with $\partial E/\partial u\,(u^\ast) \approx 0$. Gradients through it (with
# respect to the weights or the input) use implicit differentiation rather than the stored
# trajectory.

# %%
eq = dynlearn.equilibrate(net, y0, inputs)
print(f"settled: {bool(eq.settled)} at t = {float(eq.t):.1f} after {int(eq.num_steps)} steps")
print(
    "distance of the simulated end state from u*:",
    float(jnp.linalg.norm(traj.y1["neurons"]["u"] - eq.y["neurons"]["u"])),
)

# %% [markdown]
# ## The trajectory as a Dataset
#
# `to_dataset` names each state leaf `<layer>_<quantity>` (here `neurons_u`) with dims
# `time` and `unit_<layer>`, and records the system's configuration in the attributes.
# The `ds.dynlearn` accessor adds trajectory analysis, e.g. the energy $E(u(t))$ and a
# settling time.

# %%
ds = dynlearn.to_dataset(traj, system=net, time_unit="1")
ds["energy"] = ds.dynlearn.energy(net, inputs)
ds

# %%
settle = float(ds.dynlearn.settling_time("neurons_u", rtol=1e-3))
fig, (ax_u, ax_e) = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
ds.neurons_u.plot.line(x="time", ax=ax_u, add_legend=False)
ax_u.axvline(settle, color="grey", ls=":", label=f"settled (rtol 1e-3): t = {settle:g}")
ax_u.set(title="potentials $u_i(t)$", ylabel="u")
ax_u.legend(fontsize="small")
ds.energy.plot(ax=ax_e)
ax_e.set(title="energy $E(u(t))$ never increases", ylabel="E")
plt.show()
