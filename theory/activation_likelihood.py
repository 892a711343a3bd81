"""Claim: activation learning's output activation measures how familiar an input is —
"learn more, activate more" (Zhou 2022).

Data: a Gaussian mixture in d = 16 with C = 6 components (unit-length random means,
isotropic variance 1 / 20 per coordinate, priors 0.30 / 0.25 / 0.20 / 0.12 / 0.08 / 0.05),
with the true log density known. A layer of K = 4 `CompetitiveSubspace` units
(`circuits.hebbian`: y = ReLU(W x), dW = y x^T - (y^T y) W, on unit-length
inputs) learns from 20,000 samples without labels (settle-then-update, optax SGD
0.5 / (1 + step / 500), batches of 32, float64). Its output activation A(x) = |y|^2 is then
measured on 4,000 fresh mixture samples and 4,000 samples of standard Gaussian noise:
- novelty: A separates the data from the noise, area under the ROC curve >= 0.9 (measured
  0.94);
- learn more, activate more: with fewer units (4) than components (6), the units take the
  frequent components: the lowest mean activation over the 4 most frequent components is
  above the highest over the 2 rarest (measured 0.59 vs 0.31);
- likelihood: A ranks samples by their true log density, Spearman rho >= 0.4 (measured
  0.51; the activation measures the density only "roughly", as the paper says: it also
  depends on a sample's position within its component);
- fast version (pytest): 5,000 samples, the same tolerances (measured 0.94, 0.60 vs 0.30,
  0.52).

Run: `python -m theory.activation_likelihood [--fast]` or `dynlearn check
activation_likelihood`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from scipy import special, stats

import dynlearn
from circuits.hebbian import CompetitiveSubspace, HebbianNetwork, annealed_sgd, train_unlabelled

CLAIM = "Activation learning: the output activation |y|^2 rises with an input's familiarity"
D, UNITS, KAPPA = 16, 4, 20.0
PRIORS = np.array([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])


def mixture(rng: np.random.Generator) -> np.ndarray:
    means = rng.normal(size=(len(PRIORS), D))
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def draw(means, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.choice(len(PRIORS), size=n, p=PRIORS)
    return means[labels] + rng.normal(size=(n, D)) / np.sqrt(KAPPA), labels


def log_density(x: np.ndarray, means: np.ndarray) -> np.ndarray:
    """log p(x) of the generating mixture (isotropic Gaussians of variance 1 / kappa)."""
    sq = np.sum((x[:, None, :] - means[None]) ** 2, axis=-1)
    log_gauss = -0.5 * KAPPA * sq + 0.5 * D * np.log(KAPPA / (2 * np.pi))
    return special.logsumexp(log_gauss + np.log(PRIORS), axis=1)


def activation(net, x: np.ndarray) -> np.ndarray:
    return np.asarray(jnp.sum(net.settle(jnp.asarray(x))[-1] ** 2, axis=-1))


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    n = 5_000 if fast else 20_000
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        means = mixture(rng)
        x, _ = draw(means, n, rng)
        rule = CompetitiveSubspace(centre_input=False)
        net = HebbianNetwork([D, UNITS], rule, jax.random.key(0), readout=False)
        net = train_unlabelled(net, x, annealed_sgd(0.5, 500), batch_size=32)
        test, labels = draw(means, 4_000, rng)
        noise = rng.normal(size=(4_000, D))
        a_test, a_noise = activation(net, test), activation(net, noise)
    per_component = np.array([a_test[labels == c].mean() for c in range(len(PRIORS))])
    figures = {
        # P(A(data) > A(noise)): the Mann-Whitney form of the area under the ROC curve
        "novelty_auc": float(np.mean(a_test[:, None] > a_noise[None, :])),
        "spearman": float(stats.spearmanr(a_test, log_density(test, means)).statistic),
        "frequent_min": float(per_component[:UNITS].min()),
        "rare_max": float(per_component[UNITS:].max()),
    }
    ds = xr.Dataset(
        {
            "activation": ("component", per_component),
            "prior": ("component", PRIORS),
        },
        coords={"component": np.arange(1, len(PRIORS) + 1)},
    )
    ds = dynlearn.describe(
        ds,
        activation=("mean output activation |y|^2 of the component's test samples", "1"),
        prior=("the component's prior (how often it was seen)", "1"),
        component=("mixture component, most frequent first", "1"),
    )
    ds.attrs.update(figures | {"samples": n, "noise_activation": float(a_noise.mean())})
    print({k: round(v, 4) for k, v in figures.items()})
    passed = (
        figures["novelty_auc"] >= 0.9
        and figures["frequent_min"] > figures["rare_max"]
        and figures["spearman"] >= 0.4
    )
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title=ds.attrs["claim"]) as ax:
        k = ds.component.values
        ax.bar(k, ds.activation, color=["tab:blue"] * UNITS + ["tab:grey"] * (len(k) - UNITS))
        ax.axhline(ds.attrs["noise_activation"], color="k", ls=":", label="noise inputs")
        for c, p in zip(k, ds.prior.values):
            ax.text(c, 0.02, f"p={p:.2f}", ha="center", fontsize=7, color="w")
        ax.set(xlabel="component (most frequent first)", ylabel="mean activation |y|^2")
        ax.set_title(
            f"novelty AUC {ds.attrs['novelty_auc']:.3f}, Spearman(A, log p) "
            f"{ds.attrs['spearman']:.3f}",
            fontsize=8,
        )
        ax.legend()


main = dynlearn.validation.script_main("activation_likelihood", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
