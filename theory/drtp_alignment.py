"""Claim: direct random target projection's update lies within 90 degrees of backprop's
for the layer next to the output (Frenkel, Lefebvre & Bol 2021).

DRTP (`circuits.target_prop.TargetProjection`, signal "drtp") updates hidden layer l with
`delta_l = (P_l y) * phi'(a_l)`: the one-hot label y through a fixed random P_l stands in
for the output error, whose sign it predicts (for a sigmoid output under the binary
cross-entropy, `e = r - y` is negative on the label's unit and positive elsewhere). As the
output weights learn from their own error while the hidden layer moves along `P_l y`, they
come to align with -P_l^T, and backprop's signal `W_L^T e ~ -P_l (r - y)` then points with
DRTP's `P_l y`: a positive inner product, an update within 90 degrees.

Setting: 64-100-100-10 (tanh, sigmoid output) on scikit-learn's digits, Adam 1e-3, batches
of 32, 20 epochs; after each epoch, on 256 training digits, the cosine between DRTP's
update of each hidden layer's weights and the exact gradient of the same loss. Asserted:
for the last hidden layer (next to the output) the cosine is positive after every epoch
and its mean over the second half of training is >= 0.3. Measured (full): positive from
the first epoch on (smallest 0.09, after epoch 1; 0.01 before training), mean
0.41 over all epochs; the lower layer (not asserted) -0.03 after epoch 1, then positive,
mean 0.27. Fast version: 5 epochs, the same assertions.

Run: `python -m theory.drtp_alignment [--fast]` or `dynlearn check drtp_alignment`.
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
from circuits._layers import feedforward
from circuits.target_prop import TargetProjection

CLAIM = "DRTP's update is within 90 degrees of backprop's for the output-adjacent layer"
SIZES = [64, 100, 100, 10]


def cosines(net: TargetProjection, x, y) -> np.ndarray:
    """cos(DRTP's dW_l, dL/dW_l) for each hidden layer l."""

    def loss(weights):
        logits = feedforward(weights, net.biases, net.phis, x)[-1]
        return jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(logits, y), axis=-1))

    exact = jax.grad(loss)(net.weights)
    drtp = eqx.filter(net.updates(x, y, None)[0], eqx.is_array).weights
    cosine = dynlearn.analysis.cosine_similarity
    return np.array([float(cosine(a, b)) for a, b in zip(drtp[:-1], exact[:-1])])


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    epochs = 5 if fast else 20
    ds = dynlearn.data.load("digits")
    x = jnp.asarray(ds.x_train[:256])
    y = jax.nn.one_hot(jnp.asarray(ds.y_train[:256]), ds.n_classes)
    net = TargetProjection(SIZES, jax.random.key(0), signal="drtp")
    record = [cosines(net, x, y)]
    result = dynlearn.fit(
        net, ds, dynlearn.SettleThenUpdate(optax.adam(1e-3)), epochs=epochs, batch_size=32,
        progress=False, on_epoch=lambda _, learner, __: record.append(cosines(learner, x, y)),
    )  # fmt: skip
    out = xr.Dataset(
        {
            "cosine": (("epoch", "layer"), np.array(record)),
            "test_accuracy": ("epoch", np.r_[np.nan, result.metrics.test_accuracy.values]),
        },
        coords={"epoch": np.arange(epochs + 1), "layer": [f"hidden{i}" for i in (1, 2)]},
    )
    out = dynlearn.describe(
        out,
        cosine=("cos(DRTP update, exact gradient) of the layer's weights", "1"),
        test_accuracy=("test accuracy after the epoch", "1"),
        epoch=("training epoch (0: before training)", "1"),
        layer=("hidden layer (hidden2 is next to the output)", ""),
    )
    adjacent = out.cosine.sel(layer="hidden2").values[1:]
    late = adjacent[len(adjacent) // 2 :]
    out.attrs["mean_cosine_adjacent"] = float(adjacent.mean())
    passed = bool(np.all(adjacent > 0) and late.mean() >= 0.3)
    return out, passed


def plot(ds: xr.Dataset, path) -> None:
    with dynlearn.plot.figure(path, figsize=(5.4, 3.4), title=ds.attrs["claim"]) as ax:
        for i, layer in enumerate(ds.layer.values):
            ax.plot(
                ds.epoch, ds.cosine.sel(layer=layer), label=str(layer), **dynlearn.plot.style(i)
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="epoch", ylabel="cos(DRTP, BP)")
        ax.legend()


main = dynlearn.validation.script_main("drtp_alignment", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
