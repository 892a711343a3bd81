"""Claim: with spiking error neurons the update tends to backprop's gradient as T grows; it learns.

`circuits.spiking_bp` (Shrestha et al. 2019) carries the errors of a layered
integrate-and-fire network with pairs of positive and negative error neurons. The gradient
it approximates is backprop's through the rate network the spikes encode,
r_l = clip(W_l r_{l-1} / v_th, 0, 1), for the loss 1/2 |y - r_L|^2, with the derivative of the
clipped ReLU read as "did the neuron fire" and the output error un-gated:

    delta_L = -(y - r_L),  delta_l = (B_l delta_{l+1}) * 1[r_l > 0],  grad W_l = delta_l r_{l-1}^T

(batch mean; B_l = W_{l+1}^T for backprop, the fixed random B_l for feedback alignment; the
rates r are the spiking network's phase-I rates, r_0 the input's spike rates).

On sklearn digits (64-100-10, batches of 32, seed 0) with T time steps per phase:
(1) `ErrorSpikes` (pre-synaptic spikes times error spikes), B = W^T and feedback alignment:
    the mean cosine (over the batches measured, 16; fast: 2, B = W^T only) between the update
    and -grad is >= 0.97 in both layers at the smallest T (10) and >= 0.995 at the largest
    (80; fast: 40), rising with T (each step down by at most 0.002: the quantisation error of
    spike counts shrinks as 1/T);
(2) `PhaseDifference` (EMSTDP: error spikes injected, post-synaptic spike count change
    between the phases; full run only): the cosine rises with T and is >= 0.8 (hidden) and
    >= 0.95 (output) at the largest T: a descent direction, not backprop's (in its rate
    limit the lower layers' changes feed forward too);
(3) the registered rule (`stdp-bp`: ErrorSpikes, B = W^T, T = 20, Adam 3e-3) lifts test
    accuracy from below 30% untrained to above 90% in 3 epochs (fast: above 75% in 1).
Measured (full run; hidden / output): (1) B = W^T 0.9904 / 0.9986 at T = 10, 0.9980 /
0.9996 at 20, 0.9995 / 0.9999 at 40, 0.9999 / 1.0000 at 80; feedback alignment 0.9942 /
0.9986, 0.9987 / 0.9996, 0.9997 / 0.9999, 0.9999 / 1.0000; (2) 0.759 / 0.959, 0.884 / 0.966,
0.899 / 0.969, 0.904 / 0.970; (3) 10.8 -> 86.7 -> 91.4 -> 95.6%. Paper: EMSTDP on Loihi
(FA/DFA, CNN-CNN-100-10) MNIST 94.7% (Shrestha et al. 2021).

Run: `python -m theory.spiking_bp_alignment [--fast]` or `dynlearn check spiking_bp_alignment`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.feedback import FeedbackAlignment
from circuits.spiking_bp import ErrorSpikes, PhaseDifference, SpikingBP, rule

CLAIM = "spiking error neurons: the update tends to backprop's gradient as T grows; it learns"
HIDDEN, BATCH = 100, 32
VARIANTS = ("bp", "fa", "emstdp")
MIN_START = {"bp": (0.97, 0.97), "fa": (0.97, 0.97), "emstdp": (0.0, 0.0)}  # (hidden, output)
MIN_END = {"bp": (0.995, 0.995), "fa": (0.995, 0.995), "emstdp": (0.8, 0.95)}
SLACK = 0.002  # a rise "with T" may dip by this much (spike-count quantisation noise)
MAX_START_ACCURACY = 0.3  # ten classes: chance is 0.1


def network(variant: str, sizes, steps: int) -> SpikingBP:
    key = jax.random.key(0)
    if variant == "fa":
        return SpikingBP(sizes, key, steps=steps, feedback=FeedbackAlignment(jax.random.key(1)))
    update = PhaseDifference() if variant == "emstdp" else ErrorSpikes()
    return SpikingBP(sizes, key, steps=steps, update=update)


def rate_gradient(net: SpikingBP, counts: dict, y) -> list[jax.Array]:
    """grad W_l of 1/2 |y - r_L|^2 through the phase-I rates (module docstring)."""
    rates = [counts["input"] / net.steps, *(h / net.steps for h in counts["first"])]
    feedback = net.feedback.matrices(net.weights)
    delta = -(y - rates[-1])
    grads = [None] * len(net.weights)
    for layer in range(len(net.weights) - 1, -1, -1):
        grads[layer] = delta.T @ rates[layer] / y.shape[0]
        if layer:
            delta = (delta @ feedback[layer - 1].T) * (rates[layer] > 0)
    return grads


@eqx.filter_jit
def update_and_reference(net, x, y):
    """The rule's update (-dW) and the rate gradient, one batch."""
    update, _ = net.updates(x, y, jax.random.key(0))  # the rule draws no random numbers
    return update.weights, rate_gradient(net, net.run(x, y), y)


def cosines(net, data, batches: int) -> np.ndarray:
    """(batch, layer) cosine between the update and the gradient on training batches."""
    out = []
    for k in range(batches):
        x = data.x_train[k * BATCH : (k + 1) * BATCH]
        y = jax.nn.one_hot(data.y_train[k * BATCH : (k + 1) * BATCH], data.n_classes)
        update, reference = update_and_reference(net, x, y)
        out.append(
            [float(dynlearn.analysis.cosine_similarity(u, r)) for u, r in zip(update, reference)]
        )
    return np.array(out)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    data = dynlearn.data.load("digits")
    sizes = [data.n_features, HIDDEN, data.n_classes]
    steps = (10, 40) if fast else (10, 20, 40, 80)
    batches, epochs = (2, 1) if fast else (16, 3)
    variants = VARIANTS[:1] if fast else VARIANTS  # each (variant, T) compiles anew
    measured = np.stack(
        [np.stack([cosines(network(v, sizes, t), data, batches) for t in steps]) for v in variants]
    )  # (variant, steps, batch, layer)
    net, mode, batch_size = rule(sizes, jax.random.key(0))
    accuracy = [dynlearn.evaluate(net, data.x_test, data.y_test)]
    result = dynlearn.fit(net, data, mode, epochs=epochs, batch_size=batch_size, progress=False)
    accuracy += [float(a) for a in result.metrics.test_accuracy.values]
    ds = xr.Dataset(
        {
            "cosine": (("variant", "steps", "batch", "layer"), measured),
            "test_accuracy": ("epoch", accuracy),
        },
        coords={
            "variant": list(variants),
            "steps": list(steps),
            "batch": np.arange(batches),
            "layer": ["hidden", "output"],
            "epoch": np.arange(epochs + 1),
        },
        attrs={"min_accuracy": 0.75 if fast else 0.9, "slack": SLACK},
    )
    ds = dynlearn.describe(
        ds,
        cosine=("cosine similarity of the update and minus the rate network's gradient", "1"),
        test_accuracy=("test accuracy of the registered rule, fraction in [0, 1]", "1"),
        steps=("time steps per phase, T", "1"),
        epoch=("epochs trained before the measurement", "1"),
    )
    ds.variant.attrs["long_name"] = "bp: ErrorSpikes, B = W^T; fa: feedback alignment; emstdp"
    ds.batch.attrs["long_name"] = "training batch"
    ds.layer.attrs["long_name"] = "weight layer (into)"
    mean = ds.cosine.mean("batch")
    passed = True
    for variant in variants:
        curve = mean.sel(variant=variant).values  # (steps, layer)
        passed &= bool(np.all(np.diff(curve, axis=0) >= -SLACK))
        passed &= bool(np.all(curve[0] >= MIN_START[variant]))
        passed &= bool(np.all(curve[-1] >= MIN_END[variant]))
    passed &= accuracy[0] < MAX_START_ACCURACY and accuracy[-1] > ds.attrs["min_accuracy"]
    for variant in variants:
        print(variant, "\n", mean.sel(variant=variant).to_pandas().round(4).to_string())
    print("test accuracy per epoch:", np.round(accuracy, 3).tolist())
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "spiking error neurons vs the rate network's gradient (digits)"
    with dynlearn.plot.figure(path, figsize=(9.6, 3.4), title=title, ncols=2) as (left, right):
        for variant, color in zip(ds.variant.values, ("C0", "C1", "C2")):
            for layer, style in zip(ds.layer.values, ("o-", "s--")):
                mean = ds.cosine.sel(variant=variant, layer=layer).mean("batch")
                left.plot(ds.steps, 1 - mean, style, color=color, label=f"{variant}, {layer}")
        left.set(xscale="log", yscale="log", xlabel="time steps per phase T")
        left.set(ylabel="1 - cosine (mean over batches)")
        left.legend(fontsize="small")
        right.plot(ds.epoch, 100 * ds.test_accuracy, "o-")
        right.axhline(100 * ds.attrs["min_accuracy"], color="grey", ls=":", label="claim")
        right.set(xlabel="epochs trained", ylabel="test accuracy (%)")
        right.legend(fontsize="small")


main = dynlearn.validation.script_main("spiking_bp_alignment", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
