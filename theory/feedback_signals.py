"""Claim: sign-symmetric and direct feedback send errors that agree with backprop's.

Liao et al. 2016: feedback with W^T's signs (not its magnitudes) delivers hidden errors close
to BP's deltas. Nøkland 2016: random direct feedback from the output error delivers errors
that are uninformative at first and come into agreement with BP's as the forward weights
learn to align with the feedback (alignment).

Setting: 784-100-100-10 tanh rate networks (`FeedbackMLP`, settle-then-update with each
pathway's errors), `mnist5k`, Adam 1e-3, batches of 32. After every 25 batches, on a fixed
probe batch of 256 training images, the cosine between each hidden layer's pathway error
e_l and BP's delta at the same weights (the same network with B = W^T). Pass when
sign symmetry's cosine stays above 0.5 in both hidden layers throughout training and DFA's
rises by more than 0.05 in both (from about 0: random feedback) as the network aligns.

Run: `python -m theory.feedback_signals [--fast]` or `dynlearn check feedback_signals`.
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
from circuits.feedback import DirectFeedbackAlignment, SignSymmetry, WeightTransport
from circuits.feedback_mlp import FeedbackMLP

CLAIM = "sign-symmetric errors agree with BP's (cos > 0.5); DFA's come into agreement (rising)"
SIZES = [784, 100, 100, 10]
BATCH, EVERY = 32, 25


def error_cosines(net: FeedbackMLP, x, y) -> jax.Array:
    """Per hidden layer, cos(pathway error, BP delta) over the probe batch."""
    errors, _ = net.pathway_errors(x, y)
    bp = eqx.tree_at(lambda n: n.feedback, net, WeightTransport())
    deltas, _ = bp.pathway_errors(x, y)
    return jnp.stack(
        [dynlearn.analysis.cosine_similarity(e, d) for e, d in zip(errors[:-1], deltas[:-1])]
    )


def track(feedback, data, n_batches: int) -> np.ndarray:
    key = jax.random.key(0)
    net = FeedbackMLP(SIZES, key, activation="tanh", feedback=feedback)
    mode = dynlearn.SettleThenUpdate(optax.adam(1e-3))
    opt_state = mode.init(net)
    x_all = jnp.asarray(data.x_train)
    y_all = jax.nn.one_hot(data.y_train, data.n_classes)
    probe = (x_all[:256], y_all[:256])

    @eqx.filter_jit
    def chunk(net, opt_state, xs, ys):
        def step(carry, batch):
            net, opt_state, _ = mode.step(*carry, *batch, key)
            return (net, opt_state), None

        (net, opt_state), _ = jax.lax.scan(step, (net, opt_state), (xs, ys))
        return net, opt_state, error_cosines(net, *probe)

    cosines = [np.asarray(error_cosines(net, *probe))]
    order = np.random.default_rng(0).permutation(len(x_all))
    for start in range(0, n_batches, EVERY):
        idx = order[
            (np.arange(start, start + EVERY)[:, None] * BATCH + np.arange(BATCH)) % len(order)
        ]
        net, opt_state, cos = chunk(net, opt_state, x_all[idx], y_all[idx])
        cosines.append(np.asarray(cos))
    return np.stack(cosines)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    n_batches = 150 if fast else 1500
    data = dynlearn.data.load("mnist5k")
    key = jax.random.key(1)
    results = {
        "sign": track(SignSymmetry(), data, n_batches),
        "dfa": track(DirectFeedbackAlignment(key), data, n_batches),
    }
    steps = np.arange(0, n_batches + 1, EVERY)[: len(results["sign"])]
    ds = xr.Dataset(
        {"cosine_with_bp": (("pathway", "batch", "layer"), np.stack(list(results.values())))},
        coords={"pathway": list(results), "batch": steps, "layer": ["hidden1", "hidden2"]},
    )
    ds = dynlearn.describe(
        ds,
        cosine_with_bp=(
            "cosine similarity between the pathway's hidden error e_l and BP's delta "
            "(same weights, 256 probe images)",
            "1",
        ),
        batch=(f"training batches seen ({BATCH} images each)", "1"),
    )
    ds.pathway.attrs["long_name"] = "feedback pathway (sign: sign symmetry, dfa: direct FA)"
    ds.layer.attrs["long_name"] = "hidden layer"
    sign, dfa = results["sign"], results["dfa"]
    passed = bool(np.all(sign > 0.5)) and bool(np.all(dfa[-1] > dfa[0] + 0.05))
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    names = {"sign": "sign symmetry", "dfa": "DFA"}
    looks = dynlearn.plot.styles(ds.pathway.values)
    title = "feedback errors vs BP's deltas (MNIST-5k, 256 probe images, one run)"
    with dynlearn.plot.figure(path, figsize=(6.6, 3.4), title=title) as ax:
        for name in ds.pathway.values:
            for layer, ls in zip(ds.layer.values, ["-", "--"]):
                cos = ds.cosine_with_bp.sel(pathway=name, layer=layer)
                look = looks[name] | {"linestyle": ls}
                ax.plot(ds.batch, cos, **look, label=f"{names.get(name, name)} {layer}")
        ax.set(
            xlabel=dynlearn.plot.axis_label(ds.batch),
            ylabel="cos(pathway error, BP delta)",
            ylim=(-0.2, 1.0),
        )
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("feedback_signals", CLAIM, run, plot, demo=True)

if __name__ == "__main__":
    sys.exit(main())
