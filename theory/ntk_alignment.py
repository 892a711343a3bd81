"""Claim: the input-weight alignment rules' updates become backprop's as the layers widen.

The rules (`circuits.feedback_mlp.rule_align_zero` / `rule_align_ada`, after Boopathy &
Fiete 2022) update every layer by its error-weighted input correlation, dW_l = -e_l
r_{l-1}^T, with the hidden errors brought down through the weights at birth, B_l =
W_{l+1}(0)^T (`InitialTransport`); `zero` also takes the slopes and rates from the network
at birth (the gradient of the NTK-linearised network), `ada` the current ones. In the lazy
(NTK) regime the weights of a width-n network move by O(n^-1/2) relative to their start,
so both become BP as n -> infinity.

Check (float64): 64-n-n-10 tanh networks on 128 digits (`load_digits`), each trained by its
own rule with full-batch SGD at the lazy scaling lr = 1/n for 100 steps (50 with `--fast`);
then the cosine of each layer's update with BP's gradient at the same weights. Must hold,
in every hidden layer, for both rules: the cosine grows with the width, exceeds 0.99 at
the widest (4096; 1024 with `--fast`), and 1 - cosine falls at least as n^-1/2 (log-log
slope <= -0.5); every rule lowers the loss by >= 15% at every width (they learn); fixed
random feedback (FA, the control) stays below 0.2 at every width: width alone does not
align an arbitrary pathway. Expected: the angle to BP is O(n^-1/2), so 1 - cos = O(n^-1).

Measured (3 seeds, full run, ~5 min on 2 cores): mean cosine at widths 64 / 256 / 1024 /
4096, hidden1: align-zero 0.938 / 0.983 / 0.996 / 0.999, align-ada 0.946 / 0.983 / 0.996 /
0.999; hidden2 0.970-0.986 at 64 to 0.9998 at 4096; log-log slopes of 1 - cos -0.94 to
-1.16; FA's cosines between -0.07 and 0.03.

The paper's own rule definitions were not available to us (only its abstract: "layerwise
weight updates aligned with their input activity correlations weighted by error",
"theoretically equivalent to backpropagation in infinite-width networks"); these two rules
are our reconstruction of that principle, named after the paper's.

Run: `python -m theory.ntk_alignment [--fast]` or `dynlearn check ntk_alignment`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from sklearn.datasets import load_digits

import dynlearn
from circuits.feedback import FeedbackAlignment, InitialTransport
from circuits.feedback_mlp import FeedbackMLP

CLAIM = "input-weight alignment rules -> BP as width grows (cos > 0.99; 1-cos <= n^-1/2)"
RULES = ("align-zero", "align-ada", "fa")
SAMPLES, HIDDEN = 128, 2


def data():
    digits = load_digits()
    x = jnp.asarray(digits.data[:SAMPLES] / 16.0)
    return x, jax.nn.one_hot(digits.target[:SAMPLES], 10)


def network(rule: str, width: int, seed: int) -> FeedbackMLP:
    key = jax.random.key(seed)
    sizes = [64] + [width] * HIDDEN + [10]
    if rule == "fa":
        return FeedbackMLP(sizes, key, feedback=FeedbackAlignment(jax.random.fold_in(key, 1)))
    return FeedbackMLP(sizes, key, feedback=InitialTransport(), linearised=rule == "align-zero")


def loss(net: FeedbackMLP, x, y):
    return 0.5 * jnp.mean(jnp.sum((net.predict(x) - y) ** 2, axis=-1))


@eqx.filter_jit
def train(net: FeedbackMLP, x, y, lr, steps: int) -> FeedbackMLP:
    """`steps` full-batch SGD steps along the rule's own update (weights and biases)."""

    def step(_, params):
        current = eqx.tree_at(lambda m: (m.weights, m.biases), net, params)
        grads, _ = current.updates(x, y, None)
        return jax.tree.map(lambda p, g: p - lr * g, params, (grads.weights, grads.biases))

    params = jax.lax.fori_loop(0, steps, step, (net.weights, net.biases))
    return eqx.tree_at(lambda m: (m.weights, m.biases), net, params)


def cosines(net: FeedbackMLP, x, y) -> list[float]:
    """Per layer: cosine of the rule's update with BP's gradient at the same weights."""
    grads, _ = net.updates(x, y, None)
    bp = jax.grad(lambda w: loss(eqx.tree_at(lambda m: m.weights, net, w), x, y))(net.weights)
    return [float(dynlearn.analysis.cosine_similarity(g, b)) for g, b in zip(grads.weights, bp)]


def measure(rule: str, width: int, seed: int, steps: int) -> tuple[list[float], float]:
    x, y = data()
    net = network(rule, width, seed)
    trained = train(net, x, y, 1.0 / width, steps)
    return cosines(trained, x, y), float(1 - loss(trained, x, y) / loss(net, x, y))


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    widths = [64, 256, 1024] if fast else [64, 256, 1024, 4096]
    seeds = [0] if fast else [0, 1, 2]
    steps = 50 if fast else 100
    with jax.enable_x64(True):
        rows = [[[measure(r, w, s, steps) for s in seeds] for w in widths] for r in RULES]
    layers = [f"hidden{i}" for i in range(1, HIDDEN + 1)] + ["output"]
    ds = xr.Dataset(
        {
            "cosine_with_bp": (
                ("rule", "width", "seed", "layer"),
                np.array([[[c for c, _ in w] for w in r] for r in rows]),
            ),
            "loss_reduction": (
                ("rule", "width", "seed"),
                np.array([[[d for _, d in w] for w in r] for r in rows]),
            ),
        },
        coords={"rule": list(RULES), "width": widths, "seed": seeds, "layer": layers},
    )
    ds = dynlearn.describe(
        ds,
        cosine_with_bp=("cosine of the rule's update with BP's gradient after training", "1"),
        loss_reduction=("1 - final / initial squared error (trained by the rule)", "1"),
        width=("hidden layer width n", "1"),
    )
    hidden = ds.cosine_with_bp.sel(layer=layers[:-1]).mean("seed")
    passed = bool((ds.loss_reduction >= 0.15).all())
    passed &= bool((np.abs(hidden.sel(rule="fa")) < 0.2).all())
    for rule in RULES[:2]:
        for layer in layers[:-1]:
            cos = hidden.sel(rule=rule, layer=layer).values
            slope = dynlearn.analysis.loglog_slope(widths, 1 - cos)
            ds.attrs[f"slope_{rule}_{layer}"] = round(slope, 3)
            passed &= bool(np.all(np.diff(cos) > 0) and cos[-1] > 0.99 and slope <= -0.5)
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = "Input-weight alignment rules vs width (cosine with BP)"
    looks = dynlearn.plot.styles([str(r) for r in ds.rule.values])
    with dynlearn.plot.figure(path, figsize=(5.6, 3.4), title=title) as ax:
        for rule in ds.rule.values[:2]:
            one_minus = 1 - ds.cosine_with_bp.sel(rule=rule, layer="hidden1").mean("seed")
            ax.loglog(ds.width, one_minus, **looks[str(rule)], label=f"{rule} (hidden1)")
        ax.set(xlabel=dynlearn.plot.axis_label(ds.width), ylabel="1 - cos(update, BP)")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("ntk_alignment", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
