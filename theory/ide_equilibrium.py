"""Claim: a feedback SNN's average firing rates converge to the fixed point of its rate map,
and the implicit gradient through that fixed point is the true gradient (IDE, Xiao et al. 2021).

For random feedback SNNs (`circuits.feedback_snn.FeedbackSNN`, 20 inputs, 30 recurrent
integrate-and-fire neurons, recurrent gain chosen so that the map is a contraction), in
float64:
(1) the average rates `a[T] = N(T) / T` of the discrete-time spiking network approach the
    fixed point `a* = clamp((W a* + F x + b) / v_th, 0, 1)` (settled by
    `dynlearn.equilibrate` to 1e-12) with an error that falls at every T and whose log-log
    slope is -1 +- 0.3 (O(1/T), the paper's convergence result);
(2) the gradient of the cross-entropy of `O a* + c` with respect to F, W and b, computed by
    implicit differentiation (`equilibrate`'s adjoint, no backprop through time or spikes),
    equals central finite differences of the loss along random directions (the fixed point
    re-settled at every perturbed parameter) to a relative error of 1e-6.

Run: `python -m theory.ide_equilibrium [--fast]` or `dynlearn check ide_equilibrium`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

import dynlearn
from circuits.feedback_snn import FeedbackSNN

CLAIM = (
    "feedback-SNN rates -> rate-map fixed point as O(1/T); implicit gradient = finite "
    "differences (< 1e-6, float64)"
)
SIZES = (20, 30, 5)


def network(seed: int) -> tuple[FeedbackSNN, jax.Array, jax.Array]:
    key = jax.random.key(seed)
    net = FeedbackSNN(SIZES, key, recurrent_scale=0.4)
    net = eqx.tree_at(lambda n: n.bias, net, jnp.full(SIZES[1], 0.2))
    x = jax.random.uniform(jax.random.fold_in(key, 1), (4, SIZES[0]))
    y = jax.nn.one_hot(jnp.arange(4) % SIZES[2], SIZES[2])
    return net, x, y


def fixed_point(net: FeedbackSNN, x: jax.Array) -> jax.Array:
    rate_map = net.rate_map
    start = jnp.zeros((x.shape[0], SIZES[1]))
    return dynlearn.equilibrate(rate_map, start, x, rtol=1e-12, atol=1e-12).y


@eqx.filter_jit
def loss(net: FeedbackSNN, x, y) -> jax.Array:
    scores = fixed_point(net, x) @ net.readout.T + net.readout_bias
    return optax.softmax_cross_entropy(scores, y).mean()


def gradient_error(net, x, y, key, eps: float = 1e-3) -> float:
    """Largest relative error of the implicit directional derivative vs central finite
    differences, over random unit directions in (F, W, b). The step 1e-3 balances the
    differences' truncation error (~eps^2) against the settled fixed point's residual
    (~1e-11, amplified by 1/eps): 1e-6 gives 4e-5, 1e-3 1e-7 on the first network."""
    grads = eqx.filter_grad(loss)(net, x, y)
    errors = []
    for name in ("forward", "recurrent", "bias"):
        leaf = getattr(net, name)
        direction = jax.random.normal(jax.random.fold_in(key, len(errors)), leaf.shape)
        direction = direction / jnp.linalg.norm(direction)
        implicit = float(jnp.sum(getattr(grads, name) * direction))

        def at(step, name=name, leaf=leaf, direction=direction):
            moved = eqx.tree_at(lambda n: getattr(n, name), net, leaf + step * direction)
            return float(loss(moved, x, y))

        numeric = (at(eps) - at(-eps)) / (2 * eps)
        errors.append(abs(implicit - numeric) / max(abs(numeric), 1e-12))
    return max(errors)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    seeds = [0] if fast else [0, 1, 2, 3, 4]
    horizons = [25, 50, 100, 200] if fast else [25, 50, 100, 200, 400, 800]
    rate_error, grad_error, contraction = [], [], []
    with jax.enable_x64(True):
        for seed in seeds:
            net, x, y = network(seed)
            w = np.asarray(net.recurrent) / net.v_th
            contraction.append(float(np.linalg.norm(w, 2)))
            a_star = fixed_point(net, x)
            rate_error.append(
                [float(jnp.max(jnp.abs(net.spiking_rates(x, T) - a_star))) for T in horizons]
            )
            grad_error.append(gradient_error(net, x, y, jax.random.key(seed)))
    rate_error = np.array(rate_error)
    mean = rate_error.mean(axis=0)
    slope = float(np.polyfit(np.log(horizons), np.log(mean), 1)[0])
    ds = xr.Dataset(
        {
            "rate_error": (("seed", "steps"), rate_error),
            "gradient_error": ("seed", np.array(grad_error)),
            "recurrent_norm": ("seed", np.array(contraction)),
        },
        coords={"seed": seeds, "steps": horizons},
        attrs={"rate_slope": slope},
    )
    ds = dynlearn.describe(
        ds,
        rate_error=("max |N(T)/T - a*| over neurons and samples", "1"),
        gradient_error=(
            "largest relative error, implicit gradient vs finite differences (F, W, b)",
            "1",
        ),
        recurrent_norm=("spectral norm of W / v_th (< 1: a contraction)", "1"),
        steps=("time steps T of the spiking simulation", "1"),
    )
    passed = bool(np.all(np.diff(mean) < 0) and abs(slope + 1.0) < 0.3)
    passed &= bool(max(grad_error) < 1e-6)
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "IDE: spiking rates and implicit gradients (float64)"
    with dynlearn.plot.figure(path, figsize=(9.6, 3.4), title=title, ncols=2) as (left, right):
        mean = ds.rate_error.mean("seed")
        left.loglog(ds.steps, mean, "o-", label="max |N(T)/T - a*|")
        left.loglog(ds.steps, mean[0] * ds.steps[0] / ds.steps, "k:", label="1 / T")
        left.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        left.set_xticks(ds.steps.values, [f"{t:g}" for t in ds.steps.values])
        left.set(xlabel=dynlearn.plot.axis_label(ds.steps), ylabel="rate error")
        left.legend(fontsize="small")
        right.semilogy(ds.seed, ds.gradient_error, "s", label="implicit vs finite differences")
        right.axhline(1e-6, color="grey", ls=":", label="tolerance")
        right.set(xlabel="network (seed)", ylabel="relative gradient error")
        right.legend(fontsize="small")


main = dynlearn.validation.script_main("ide_equilibrium", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
