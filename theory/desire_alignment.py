"""Claim: desire backpropagation's spike-based update descends the rate loss, and it learns.

Desire backprop (`circuits.desire`, Gerlinghoff et al. 2023) replaces backprop's errors by
ternary desires and its products of rates by STDP pairings of pre and post spikes. Its
reference here is the straight-through rate gradient of the same spiking network: the loss
L = 1/2 |y - r_L|^2 on the output rates, backpropagated through the rates r_l (spikes per
step) with derivative 1 where 0 < r < 1 and 0 where a neuron is silent or saturated,

    delta_L = -(y - r_L) * 1[0 < r_L < 1],  delta_l = (W_{l+1}^T delta_{l+1}) * 1[0 < r_l < 1],
    grad W_l = delta_l r_{l-1}^T (batch mean; r_0 the input's spike rates).

On sklearn digits (64-100-10 and 64-100-50-10, batches of 32, seed 0; the registered
rule: 20 steps, each neuron's error the distance to the rate its desire asks for, SGD 1e-3
with momentum 0.9): (1) the cosine similarity between desire backprop's update and -grad,
averaged over the batches measured (20; fast: 4), is above 0.1 in every layer at
initialisation and after each epoch of training (a descent direction throughout), and
above 0.2 (clearly aligned) at every one of these times with one hidden layer, and from
the second epoch on with two (after one epoch the two-layer network's first hidden layer
and output measured 0.17 / 0.18 while its accuracy rose to 67%); (2) test accuracy rises
from near chance (below 30% untrained) to above 70% in 3 epochs, with one and with two
hidden layers. Measured (full run, after 0-3 epochs): 64-100-10 mean cosine hidden 0.49 /
0.40 / 0.42 / 0.36, output 0.87 / 0.39 / 0.49 / 0.45, accuracy 11.7 -> 69.2 -> 83.1 ->
87.5%; 64-100-50-10 hidden 0.17 / 0.17 / 0.47 / 0.37 and 0.25 / 0.30 / 0.59 / 0.40, output
0.56 / 0.18 / 0.54 / 0.37, accuracy 11.4 -> 66.9 -> 81.7 -> 87.5%. With the desire itself
as the error (the previous rule, `error="sign"`, SGD 3e-3), two hidden layers stayed at
21-36% in 5 epochs. Paper (MNIST, 784-1600-800-10, 150 epochs): 98.41%.

Run: `python -m theory.desire_alignment [--fast]` or `dynlearn check desire_alignment`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.desire import rule

CLAIM = "desire backprop: update aligned with the straight-through rate gradient; learns digits"
NETWORKS = {"64-100-10": [100], "64-100-50-10": [100, 50]}  # hidden layers
EPOCHS, BATCH = 3, 32
MIN_COSINE = 0.2
ALIGNED_FROM = {"64-100-10": 0, "64-100-50-10": 2}  # the first epoch the claim holds from
MIN_COSINE_ALWAYS = 0.1  # every network, layer and epoch: a descent direction throughout
MIN_ACCURACY = 0.7
MAX_START_ACCURACY = 0.3  # ten classes: chance is 0.1


def test_accuracy(net, data) -> float:
    return float(np.mean(np.argmax(np.asarray(net.predict(data.x_test)), -1) == data.y_test))


def straight_through_gradient(net, x, y) -> list[jax.Array]:
    """grad W_l of 1/2 |y - r_L|^2 through the spike rates (module docstring)."""
    _, _, final = net.run(x)
    rates = [net.input_spikes(x).mean(0)]
    rates += [final[name]["count"] / net.steps for name in net.layer_names]
    delta = -(y - rates[-1]) * ((rates[-1] > 0) & (rates[-1] < 1))
    grads = [None] * len(net.weights)
    for layer in range(len(net.weights) - 1, -1, -1):
        grads[layer] = delta.T @ rates[layer] / x.shape[0]
        if layer:
            delta = (delta @ net.weights[layer]) * ((rates[layer] > 0) & (rates[layer] < 1))
    return grads


@eqx.filter_jit
def update_and_reference(net, x, y):
    """Desire backprop's update (-dW) and the straight-through gradient, one batch."""
    update, _ = net.updates(x, y, jax.random.key(0))  # the rule draws no random numbers
    return update.weights, straight_through_gradient(net, x, y)


def cosines(net, data, batches: int) -> np.ndarray:
    """(batch, layer) cosine between the desire update and -grad on training batches."""
    out = []
    for k in range(batches):
        x = data.x_train[k * BATCH : (k + 1) * BATCH]
        y = jax.nn.one_hot(data.y_train[k * BATCH : (k + 1) * BATCH], data.n_classes)
        update, reference = update_and_reference(net, x, y)  # -dW: compare with grad
        out.append(
            [float(dynlearn.analysis.cosine_similarity(u, r)) for u, r in zip(update, reference)]
        )
    return np.array(out)


def measure(data, hidden: list[int], batches: int) -> tuple[np.ndarray, list[float]]:
    """(epoch, batch, layer) cosines and the test accuracy per epoch of one network."""
    net, mode, batch = rule([data.n_features, *hidden, data.n_classes], jax.random.key(0))
    measured, accuracy = [cosines(net, data, batches)], [test_accuracy(net, data)]
    for epoch in range(EPOCHS):
        result = dynlearn.fit(
            net, data, mode, epochs=1, batch_size=batch, seed=epoch, progress=False
        )
        net = result.learner
        accuracy.append(float(result.metrics.test_accuracy[-1]))
        measured.append(cosines(net, data, batches))
    return np.stack(measured), accuracy


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    data = dynlearn.data.load("digits")
    batches = 4 if fast else 20
    layers = [*(f"hidden {k + 1}" for k in range(max(map(len, NETWORKS.values())))), "output"]
    cosine = np.full((len(NETWORKS), EPOCHS + 1, batches, len(layers)), np.nan)
    accuracy = np.zeros((len(NETWORKS), EPOCHS + 1))
    for n, hidden in enumerate(NETWORKS.values()):
        measured, accuracy[n] = measure(data, hidden, batches)
        cosine[n, ..., : len(hidden)] = measured[..., :-1]
        cosine[n, ..., -1] = measured[..., -1]
    ds = xr.Dataset(
        {
            "cosine": (("network", "epoch", "batch", "layer"), cosine),
            "test_accuracy": (("network", "epoch"), accuracy),
        },
        coords={
            "network": list(NETWORKS),
            "epoch": np.arange(EPOCHS + 1),
            "batch": np.arange(batches),
            "layer": layers,
        },
    )
    ds = dynlearn.describe(
        ds,
        cosine=(
            "cosine similarity of the desire update and minus the straight-through rate gradient",
            "1",
        ),
        test_accuracy=("test accuracy, fraction in [0, 1]", "1"),
        epoch=("epochs trained before the measurement", "1"),
    )
    ds.batch.attrs["long_name"] = "training batch"
    ds.layer.attrs["long_name"] = "weight layer (into)"
    mean = ds.cosine.mean("batch")
    passed = bool((mean.fillna(1.0) > MIN_COSINE_ALWAYS).all())
    for network, first in ALIGNED_FROM.items():  # every layer, from epoch `first` on
        aligned = mean.sel(network=network).isel(epoch=slice(first, None))
        passed &= bool((aligned.dropna("layer", how="all") > MIN_COSINE).all())
    passed &= bool((ds.test_accuracy.isel(epoch=0) < MAX_START_ACCURACY).all())
    passed &= bool((ds.test_accuracy.isel(epoch=-1) > MIN_ACCURACY).all())
    for network in NETWORKS:
        print(f"{network}: mean cosine per epoch and layer")
        print(mean.sel(network=network).dropna("layer", how="all").to_pandas().round(3).to_string())
        print(
            "test accuracy per epoch:",
            np.round(ds.test_accuracy.sel(network=network).values, 3).tolist(),
        )
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "desire backprop vs the straight-through rate gradient (digits)"
    with dynlearn.plot.figure(path, figsize=(9.6, 3.4), title=title, ncols=2) as (left, right):
        for network, style in zip(ds.network.values, ("-", "--")):
            for layer, marker in zip(ds.layer.values, "o^s"):
                mean = ds.cosine.sel(network=network, layer=layer).mean("batch")
                if bool(mean.isnull().all()):
                    continue
                left.plot(ds.epoch, mean, marker + style, label=f"{network} {layer}")
            right.plot(
                ds.epoch,
                100 * ds.test_accuracy.sel(network=network),
                "o" + style,
                label=str(network),
            )
        left.axhline(MIN_COSINE, color="grey", ls=":")
        left.set(xlabel="epochs trained", ylabel="cosine (mean over batches)", ylim=(0, 1))
        left.legend(fontsize="x-small")
        right.axhline(100 * MIN_ACCURACY, color="grey", ls=":", label="claim")
        right.set(xlabel="epochs trained", ylabel="test accuracy (%)")
        right.legend(fontsize="small")


main = dynlearn.validation.script_main("desire_alignment", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
