"""Claim: with presentations far shorter than tau, LE still learns like backprop; ordinary
leaky neurons do not.

Haider et al. 2021: prospective neurons compute the feed-forward pass and its errors at
once, so learning does not have to wait for the network to settle; ordinary leaky neurons
shown each sample for t_pres << tau never settle, and their errors mostly measure how far
each layer lags behind.

Setting: Yin-Yang (5000 train / 1000 test), 4-64-3 tanh networks with linear outputs,
tau = 10 ms, t_pres = 1 ms (0.1 tau), Euler dt = 0.05 ms, 16 parallel streams, beta = 0.1,
eta = 3 (so eta t_pres beta = 0.3 per sample), always-on learning; backprop: SGD with
learning rate 0.3 on 1/2 |y - a_L|^2, batches of 16, the same samples and epochs. Accuracy
is the mean test accuracy over the second half of training (SGD on Yin-Yang fluctuates by
several points between epochs), averaged over seeds. Pass when LE is within 5 points of BP
and the ordinary network is at least 10 points below LE (a diverged run counts as chance).

Run: `python -m theory.le_short_presentation [--fast]` or `dynlearn check
le_short_presentation`.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
import optax
import xarray as xr

import dynlearn
from circuits._layers import SquaredError
from circuits.backprop import BackpropMLP
from circuits.latent_equilibrium import LENetwork

CLAIM = "t_pres = 0.1 tau: LE within 5 points of BP, ordinary leaky >= 10 points below LE"
SIZES = [4, 64, 3]
TAU, T_PRES, DT, STREAMS, BETA, ETA = 10.0, 1.0, 0.05, 16, 0.1, 3.0
RULES = ["bp", "le", "ordinary"]


def train(rule: str, data, epochs: int, seed: int) -> np.ndarray:
    """Test accuracy after each epoch (chance after a divergence)."""
    key = jax.random.key(seed)
    if rule == "bp":
        net = BackpropMLP(SIZES, key, activation="tanh", loss=SquaredError())
        mode = dynlearn.SettleThenUpdate(optax.sgd(ETA * T_PRES * BETA))
        batch_size = STREAMS
    else:
        net = LENetwork(
            SIZES, key, activation="tanh", tau=TAU, beta=BETA, eta=ETA, prospective=rule == "le"
        )
        mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=T_PRES, dt=DT, streams=STREAMS))
        batch_size = 20 * STREAMS
    accuracy = dynlearn.accuracy_curve(
        net, data, mode, epochs=epochs, seed=seed, batch_size=batch_size
    )
    return np.nan_to_num(accuracy, nan=1.0 / data.n_classes)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    epochs, seeds = (12, [0, 1]) if fast else (20, [0, 1, 2])
    data = dynlearn.data.load("yinyang")
    curves = np.array([[train(rule, data, epochs, seed) for seed in seeds] for rule in RULES])
    ds = xr.Dataset(
        {"test_accuracy": (("rule", "seed", "epoch"), curves)},
        coords={"rule": RULES, "seed": seeds, "epoch": np.arange(1, epochs + 1)},
    )
    ds["final_accuracy"] = ds.test_accuracy.isel(epoch=slice(epochs // 2, None)).mean(
        ("epoch", "seed")
    )
    ds = dynlearn.describe(
        ds,
        test_accuracy=("Yin-Yang test accuracy after each epoch, fraction in [0, 1]", "1"),
        final_accuracy=(
            "Yin-Yang test accuracy, mean over the second half of training and over seeds, "
            "fraction in [0, 1]",
            "1",
        ),
        epoch=("training epoch (1 = after the first pass over the training set)", "1"),
    )
    ds.rule.attrs["long_name"] = "learning rule (bp: backprop with SGD, le: LE, ordinary: leaky)"
    final = {rule: float(ds.final_accuracy.sel(rule=rule)) for rule in RULES}
    passed = final["le"] >= final["bp"] - 0.05 and final["ordinary"] <= final["le"] - 0.10
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    labels = {"bp": "backprop (SGD)", "le": "LE (prospective)", "ordinary": "ordinary leaky"}
    looks = dynlearn.plot.styles(ds.rule.values)
    title = f"Yin-Yang, t_pres = 0.1 tau (mean over {ds.sizes['seed']} seeds)"
    with dynlearn.plot.figure(path, figsize=(6.0, 3.4), title=title) as ax:
        for rule in ds.rule.values:
            accuracy = dynlearn.plot.percent(ds.test_accuracy.sel(rule=rule).mean("seed"))
            ax.plot(ds.epoch, accuracy, **looks[rule], label=labels[rule])
        ax.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(0.0, 100.0))
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("le_short_presentation", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
