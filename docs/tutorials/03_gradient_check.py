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
# # Checking a rule against backprop's gradient
#
# Many rules without backpropagation are justified by a limit: at equilibrium, and as some
# nudging strength goes to zero, their local update becomes the gradient that backprop
# would compute. Such a claim can be checked numerically, and the check is short in
# dynlearn: settle the circuit, read its update, compare it with `jax.grad` of the loss.
#
# **Predictive coding** (Rao & Ballard 1999; Whittington & Bogacz 2017). Layers
# $x_0, \dots, x_L$ with predictions $\mu_l = W_l r_{l-1} + b_l$ ($r_0 = x_0$ the input,
# $r_l = \tanh x_l$ for hidden layers, a linear output) and the energy
#
# $$F = \sum_{l=1}^{L} \tfrac12 \lVert x_l - \mu_l \rVert^2
#       + \tfrac{\beta}{2} \lVert x_L - y \rVert^2 .$$
#
# Inference is the gradient flow $\dot x = -\partial F / \partial x$ with the input clamped
# and the output only *nudged* towards the target $y$ (strength $\beta$). At its fixed point
# the local update is $\Delta W_l \propto \varepsilon_l r_{l-1}^\top$, with prediction errors
# $\varepsilon_l = x_l - \mu_l$, i.e. $\partial F/\partial W_l$. The claim (Millidge et al.
# 2022): scaled by $1/\beta$ it tends to backprop's gradient of the feed-forward loss
#
# $$L = \tfrac12 \lVert y - x_L^{\text{ff}} \rVert^2, \qquad
#   \frac{1}{\beta} \frac{\partial F}{\partial W_l}\Big|_{x^\ast}
#   = \frac{\partial L}{\partial W_l} + O(\beta) .$$

# %%
import diffrax
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import dynlearn
from circuits.pc import Nudged, PCNetwork, SteadyStateInference

jax.config.update("jax_enable_x64", True)  # a theory check: float64 and tight tolerances

sizes = [5, 8, 8, 3]
key = jax.random.key(0)
x = jax.random.normal(jax.random.fold_in(key, 1), (4, sizes[0]))  # a batch of 4
y = jax.random.normal(jax.random.fold_in(key, 2), (4, sizes[-1]))

# %% [markdown]
# ## The reference: backprop with `jax.grad`
#
# The feed-forward pass of the same weights, and the gradient of its loss (mean over the
# batch) with respect to every weight and bias:

# %%
pc0 = PCNetwork(sizes, key, activation="tanh")  # only for its initial weights


def loss(params, x, y):
    weights, biases = params
    r = x
    for layer, (w, b) in enumerate(zip(weights, biases)):
        mu = r @ w.T + b
        r = mu if layer == len(weights) - 1 else jnp.tanh(mu)
    return 0.5 * jnp.mean(jnp.sum((y - r) ** 2, axis=-1))


params = (pc0.weights, pc0.biases)
backprop = jax.grad(loss)(params, x, y)
print(
    f"loss {float(loss(params, x, y)):.4f}; |dL/dtheta| = "
    f"{float(jnp.linalg.norm(dynlearn.analysis.flatten(backprop))):.4f}"
)

# %% [markdown]
# ## The rule: settle, then read the local update
#
# `PCNetwork(task=Nudged(beta), inference=SteadyStateInference(...))` settles inference to
# its fixed point with an adaptive solver (`dynlearn.equilibrate` underneath) and
# `updates(x, y, key)` returns $\tfrac1\beta\,\partial F/\partial\theta$ there, with a
# gradient's sign, shaped like the network. We sweep $\beta$ and measure the relative error
# $\lVert \hat g - g\rVert / \lVert g \rVert$ and the cosine similarity with
# `dynlearn.analysis`.

# %%
settle = SteadyStateInference(rtol=1e-12, atol=1e-14, solver=diffrax.Tsit5(), max_time=1e5)
betas = np.array([1.0, 0.1, 0.01, 0.001])
errors, cosines, updates = [], [], {}
for beta in betas:
    pc = PCNetwork(sizes, key, activation="tanh", task=Nudged(float(beta)), inference=settle)
    updates[beta], _ = pc.updates(x, y, key)
    estimate = (updates[beta].weights, updates[beta].biases)
    errors.append(float(dynlearn.analysis.relative_error(estimate, backprop)))
    cosines.append(float(dynlearn.analysis.cosine_similarity(estimate, backprop)))

slope = dynlearn.analysis.loglog_slope(betas[1:], errors[1:])  # the small-beta range
for beta, err, cos in zip(betas, errors, cosines):
    print(f"beta = {beta:<6g} relative error {err:.2e}   cosine {cos:.6f}")
print(f"log-log slope of the error for beta <= 0.1: {slope:.2f} (the theory: 1)")

# %%
fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
ax.loglog(betas, errors, marker="o", label="nudged PC vs backprop")
ax.loglog(betas, errors[-1] * betas / betas[-1], ls=":", color="grey", label="slope 1")
ax.set(
    xlabel=r"nudging strength $\beta$",
    ylabel="relative error of the update",
    title="predictive coding's update tends to the gradient",
)
ax.legend()
plt.show()

# %% [markdown]
# The error falls in proportion to $\beta$: the update is the gradient up to $O(\beta)$, and
# at $\beta = 10^{-3}$ the two agree to about three digits (cosine similarity above
# $0.99999$). At large $\beta$ the output is pulled far from its feed-forward value and the
# update drifts away from backprop's.
#
# ## The same check, layer by layer
#
# A whole-network number can hide a layer that is wrong. At $\beta = 0.01$, per weight
# matrix:

# %%
for layer, (w_pc, w_bp) in enumerate(zip(updates[0.01].weights, backprop[0]), start=1):
    err = float(dynlearn.analysis.relative_error(w_pc, w_bp))
    angle = float(dynlearn.analysis.angle_deg(w_pc, w_bp))
    print(f"W_{layer}: relative error {err:.2e}, angle {angle:.3f} degrees")

# %% [markdown]
# The library's own checks of such claims live in `theory/` and run with
# `dynlearn check <name>`: e.g. `pc_infinitesimal` (this limit over depths and seeds) and
# `ep_vs_rbp` (equilibrium propagation's estimators against recurrent backprop, with the
# one-sided estimator's error $O(\beta)$ and the symmetric one's $O(\beta^2)$).
