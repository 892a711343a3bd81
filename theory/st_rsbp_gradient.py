"""Claim: ST-RSBP's gradient is the exact gradient of its spike-train level model (recurrent
fixed point included) and predicts how the spiking network's loss changes.

`circuits.st_rsbp` (Zhang & Li 2019) simulates input -> recurrent LIF layer -> LIF output
and reads, per sample, the firing counts o and the S-PSPs e_{i|j} (post-synaptic spikes
times the pre-synaptic PSP since the post neuron's last reset). Its spike-train level model
is o_h = g(M_F o_in + M_R o_h), o_out = g(M_O o_h), g(a) = max(a, 0) / nu, M_ij = w_ij
e_{i|j} / o_j; ST-RSBP's backward pass solves (I - D M_R^T) delta_h = D lambda_h for the
recurrent layer and sets dE/dw_ij = delta_i e_{i|j}, E = 1/2 |o_out - y|^2.

On sklearn digits (64-32-10 (fast) or 64-64-10, seed 0, untrained):
(1) identity: with the per-spike S-PSPs e / o_pre measured in the simulation and held
    fixed, `jax.grad` of E through the model (the hidden fixed point settled by 300
    iterations from the measured counts, backpropagated through) equals ST-RSBP's formulas
    evaluated at the model's fixed point, to a relative error (norm of the difference over
    norm of the gradient, per weight matrix) below 1e-8 in float64 (batch of 16);
(2) prediction: for K random directions d per weight matrix (F, R, O separately; entries of
    RMS 0.05), the central finite differences of the *spiking* network's loss (each a
    simulation at W +- d, batch of 128 (fast) or 256) against the directional derivatives
    <grad, d> that ST-RSBP predicts have a cosine (over the K directions) >= 0.5 (fast, K =
    16) or >= 0.65 (K = 32) in every matrix; a random vector in place of the gradient has a
    cosine of order 1 / sqrt(K) (0.25 at K = 16).
Measured (F, R, O): full run (64-64-10, batch 256, K = 32) (1) 2.1e-16, 2.1e-16, 1.2e-16;
(2) cosines 0.934, 0.885, 0.823 (random vector: 0.32, -0.13, -0.28); fast (64-32-10,
batch 128, K = 16) (1) < 3e-16; (2) 0.834, 0.631, 0.864 (random: 0.00, -0.46, -0.19).

Run: `python -m theory.st_rsbp_gradient [--fast]` or `dynlearn check st_rsbp_gradient`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.st_rsbp import STRSBP, SpikeTrainLevel, fixed_point_counts, spike_train_gradient

CLAIM = (
    "ST-RSBP = jax.grad of its spike-train level model (< 1e-8, float64); it predicts the "
    "spiking loss's finite differences (cosine >= 0.5 fast / 0.65)"
)
MATRICES = ("forward", "recurrent", "readout")
MAX_IDENTITY_ERROR = 1e-8
RMS = 0.05  # entries of each perturbation direction


def _loss(o_out, target):
    return 0.5 * jnp.mean(jnp.sum((o_out - target) ** 2, axis=-1))


def identity_errors(net: STRSBP, level: SpikeTrainLevel, y) -> np.ndarray:
    """Relative error, per matrix, between jax.grad of the model's loss and ST-RSBP's
    formulas at the model's fixed point (float64; `level` measured by a simulation)."""
    with jax.enable_x64(True):
        as64 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)  # noqa: E731
        weights = as64((net.forward, net.recurrent, net.readout))
        return np.asarray(_identity(weights, as64(level), net.target_counts(as64(y)), net.v_th))


@jax.jit
def _identity(weights, level: SpikeTrainLevel, target, v_th):
    def model_loss(weights):
        _, o_out = fixed_point_counts(*weights, level, v_th, iterations=300)
        return _loss(o_out, target)

    autodiff = jax.grad(model_loss)(weights)
    o_h, o_out = fixed_point_counts(*weights, level, v_th, iterations=300)

    def rescale(e, o_old, o_new):  # e = (e / o_pre) o_pre at the model's counts
        safe = jnp.where(o_old > 0, o_old, 1.0)
        return jnp.where(o_old[:, None, :] > 0, e / safe[:, None, :], 0.0) * o_new[:, None]

    forward, recurrent, readout = weights
    e_f = level.e_forward
    e_r = rescale(level.e_recurrent, level.o_hidden, o_h)
    e_o = rescale(level.e_readout, level.o_hidden, o_h)
    eye = jnp.eye(recurrent.shape[0])
    model = SpikeTrainLevel(
        o_in=level.o_in,
        o_hidden=o_h,
        o_out=o_out,
        e_forward=e_f,
        e_recurrent=e_r,
        e_readout=e_o,
        a_hidden=jnp.einsum("hj,bhj->bh", forward, e_f)
        + jnp.einsum("hq,bhq->bh", recurrent * (1 - eye), e_r),
        a_out=jnp.einsum("kh,bkh->bk", readout, e_o),
    )
    formula = spike_train_gradient(*weights, model, target, v_th)
    return jnp.stack(
        [jnp.linalg.norm(f - a) / jnp.linalg.norm(a) for f, a in zip(formula, autodiff)]
    )


def finite_differences(net: STRSBP, x, y, directions: int):
    """`(predicted, measured, level)`: each (matrix, direction), <grad, d> and (L(W + d) -
    L(W - d)) / 2 of the spiking network's loss; the unperturbed spike-train level."""
    target = net.target_counts(y)

    @eqx.filter_jit
    def spiking(net):
        level, _ = net.simulate(x)
        return _loss(level.o_out, target), level

    _, level = spiking(net)
    grads = spike_train_gradient(net.forward, net.recurrent, net.readout, level, target)
    predicted = np.zeros((len(MATRICES), directions))
    measured = np.zeros_like(predicted)
    for m, name in enumerate(MATRICES):
        w = getattr(net, name)
        for k in range(directions):
            d = jax.random.normal(jax.random.key(1000 * m + k), w.shape)
            if name == "recurrent":
                d = d * (1.0 - jnp.eye(w.shape[0]))
            d = d * RMS / jnp.sqrt(jnp.mean(d**2))
            up, _ = spiking(eqx.tree_at(lambda n: getattr(n, name), net, w + d))
            down, _ = spiking(eqx.tree_at(lambda n: getattr(n, name), net, w - d))
            measured[m, k] = float(up - down) / 2
            predicted[m, k] = float(jnp.sum(grads[m] * d))
    return predicted, measured, level


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    data = dynlearn.data.load("digits")
    hidden, batch, directions = (32, 128, 16) if fast else (64, 256, 32)
    min_cosine = 0.5 if fast else 0.65
    net = STRSBP([data.n_features, hidden, data.n_classes], jax.random.key(0))
    x = jnp.asarray(data.x_train[:batch])
    y = jax.nn.one_hot(data.y_train[:batch], data.n_classes)
    predicted, measured, level = finite_differences(net, x, y, directions)
    errors = identity_errors(net, jax.tree.map(lambda a: a[:16], level), y[:16])
    cosines = np.array([_cosine(p, m) for p, m in zip(predicted, measured)])
    rng = np.random.default_rng(0)
    null = np.array([_cosine(rng.normal(size=directions), m) for m in measured])
    ds = xr.Dataset(
        {
            "identity_error": ("matrix", errors),
            "predicted": (("matrix", "direction"), predicted),
            "measured": (("matrix", "direction"), measured),
            "cosine": ("matrix", cosines),
            "null_cosine": ("matrix", null),
        },
        coords={"matrix": list(MATRICES), "direction": np.arange(directions)},
        attrs={
            "max_identity_error": MAX_IDENTITY_ERROR,
            "min_cosine": min_cosine,
            "rms": RMS,
            "sizes": f"64-{hidden}-10",
            "batch": batch,
        },
    )
    ds = dynlearn.describe(
        ds,
        identity_error=(
            "relative error of ST-RSBP's formulas vs jax.grad of the spike-train level model",
            "1",
        ),
        predicted=("directional derivative <grad E, d> predicted by ST-RSBP", "spikes^2"),
        measured=("(E(W + d) - E(W - d)) / 2 of the simulated spiking network", "spikes^2"),
        cosine=("cosine of predicted and measured over the directions", "1"),
        null_cosine=("the same cosine for a random vector in place of the prediction", "1"),
        direction=("random perturbation direction (entries of RMS `rms`)", "1"),
    )
    ds.matrix.attrs["long_name"] = "weight matrix: forward F, recurrent R, readout O"
    passed = bool(np.all(errors < MAX_IDENTITY_ERROR) and np.all(cosines >= min_cosine))
    print("identity errors:", dict(zip(MATRICES, errors.tolist())))
    print("cosines:", dict(zip(MATRICES, cosines.round(3).tolist())))
    print("null cosines:", dict(zip(MATRICES, null.round(3).tolist())))
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "ST-RSBP: predicted vs measured loss changes (digits)"
    with dynlearn.plot.figure(path, figsize=(11, 3.4), title=title, ncols=3) as axes:
        for ax, name in zip(axes, ds.matrix.values):
            p, m = ds.predicted.sel(matrix=name), ds.measured.sel(matrix=name)
            ax.plot(p, m, "o", ms=4)
            lim = float(max(abs(p).max(), abs(m).max()))
            ax.plot([-lim, lim], [-lim, lim], ":", color="grey")
            cos = float(ds.cosine.sel(matrix=name))
            err = float(ds.identity_error.sel(matrix=name))
            ax.set(xlabel="<ST-RSBP gradient, d>", ylabel="finite difference of E")
            ax.set_title(f"{name}: cosine {cos:.2f}, identity err {err:.0e}", fontsize="small")


main = dynlearn.validation.script_main("st_rsbp_gradient", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
