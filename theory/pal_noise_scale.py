"""Claim: in a saturated layer PAL's feedback is noise-dominated unless the noise is large.

Phaseless Alignment Learning (Max et al. 2024) learns B_l from the neurons' exploration noise,
dB_l/dt = eta [xi_l r_HP^T - alpha B_l], whose mean is 1/2 sigma^2 (W_{l+1}^T * <rho'_l
rho'_{l+1}^T>) / alpha: it vanishes where rho' does, while the fluctuation of the estimate
(the input switches' jumps passing the high-pass filter, the noise itself) does not. So the
estimate's signal-to-noise ratio falls as a layer saturates and grows with sigma. This is
why rule `pal` collapsed on full MNIST at 784-10-10-10 with sigma 0.03 and why its settings
are now sigma 0.1, alpha 1.1e-3, eta 0.9 (`circuits.latent_equilibrium.PAL_SETTINGS`; see
`rule_pal`): alpha scales with sigma^2 (B's size kept) and eta with 1/sigma^2 (B's averaging
time 1/(eta alpha) kept), so only the ratio of noise to activity changes.

Setting: a prospective LE network 64-10-10-10 (tanh) on scikit-learn's digits, 16 streams,
1 ms per sample, Euler dt = 0.1 ms, forward learning off (eta 0), the first layer's weights
scaled so that most of its units saturate (|r| > 0.95); B starts at ~0 and relaxes for the
given number of samples, twice, with different noise seeds. SNR = sqrt(c / (1 - c)), c the
cosine between the two B_1 estimates (an estimate = a common signal + independent noise of
equal power). Pass when the first layer is saturated (mean fraction of |r| > 0.95 at least
0.5), and SNR(sigma 0.1) >= 2 SNR(sigma 0.03) (theory: sigma's ratio, 3.3). Measured here
(57% saturated, first-layer weights x12): SNR 0.47 -> 1.53 (fast, 6 epochs of digits),
0.69 -> 2.24 (20 epochs), the seeds' mean B_1 at 65 -> 41 and 49 -> 37 degrees from W_2^T;
on full MNIST at 784-10-10-10, forward weights frozen after the first and fifth epoch of
rule `pal`: 0.7 -> 2.3 and 0.4 -> 1.3.

Run: `python -m theory.pal_noise_scale [--fast]` or `dynlearn check pal_noise_scale`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.latent_equilibrium import LENetwork
from circuits.pal import PAL

CLAIM = (
    "PAL in a saturated layer: B1's agreement across noise seeds (SNR) x>=2 from sigma 0.03 to 0.1"
)
SIZES = [64, 10, 10, 10]
SIGMAS = (0.03, 0.1)
GAIN = 12.0  # first-layer weights x GAIN: a saturated layer


def settings(sigma: float) -> dict:
    """sigma with alpha ~ sigma^2 and eta ~ 1/sigma^2 (the rule's at sigma 0.1)."""
    r = sigma / 0.1
    return {"sigma": sigma, "alpha": 1.1e-3 * r**2, "eta": 0.9 / r**2}


def network(sigma: float, seed: int) -> LENetwork:
    base = LENetwork(SIZES, jax.random.key(0), activation="tanh", eta=0.0, tau_error=0.1)
    init = [1e-6 * jnp.ones_like(w.T) for w in base.weights[1:]]
    fb = PAL(jax.random.key(100 + seed), feedback=init, **settings(sigma))
    net = LENetwork(
        SIZES, jax.random.key(0), activation="tanh", eta=0.0, tau_error=0.1, feedback=fb
    )
    return eqx.tree_at(lambda n: n.weights[0], net, GAIN * net.weights[0])


def relax(sigma: float, seed: int, epochs: int, data) -> np.ndarray:
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=16))
    net = network(sigma, seed)
    res = dynlearn.fit(net, data, mode, epochs=epochs, batch_size=320, seed=seed, progress=False)
    return np.asarray(res.learner.feedback.matrices(res.learner.weights)[0])


def snr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    c = float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return c, float(np.sqrt(max(c, 0.0) / max(1.0 - c, 1e-12)))


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    data = dynlearn.data.load("digits")
    epochs = 6 if fast else 20
    net = network(SIGMAS[0], 0)
    r1 = np.tanh(data.x_train @ np.asarray(net.weights[0]).T + np.asarray(net.biases[0]))
    saturated = float(np.mean(np.abs(r1) > 0.95))
    cos, ratio, angle = [], [], []
    w2t = np.asarray(net.weights[1]).T
    for sigma in SIGMAS:
        b0, b1 = relax(sigma, 0, epochs, data), relax(sigma, 1, epochs, data)
        c, s = snr(b0, b1)
        cos.append(c)
        ratio.append(s)
        angle.append(float(dynlearn.analysis.angle_deg(jnp.asarray(b0 + b1), jnp.asarray(w2t))))
    ds = xr.Dataset(
        {
            "seed_cosine": ("sigma", np.array(cos)),
            "snr": ("sigma", np.array(ratio)),
            "angle_deg": ("sigma", np.array(angle)),
        },
        coords={"sigma": np.array(SIGMAS)},
        attrs={"saturated_fraction": saturated, "samples": epochs * len(data.x_train)},
    )
    ds = dynlearn.describe(
        ds,
        seed_cosine=("cosine between B_1 learned under two noise seeds", "1"),
        snr=("signal-to-noise ratio of B_1, sqrt(c / (1 - c))", "1"),
        angle_deg=("angle between the seeds' mean B_1 and W_2^T", "degree"),
        sigma=("exploration noise's stationary standard deviation", "1"),
    )
    passed = saturated >= 0.5 and ratio[1] >= 2.0 * ratio[0]
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    title = f"PAL's B_1, saturated layer ({100 * ds.saturated_fraction:.0f}% of |r| > 0.95)"
    with dynlearn.plot.figure(path, figsize=(5.0, 3.4), title=title) as ax:
        ax.plot(ds.sigma, ds.snr, **dynlearn.plot.style(0), label="measured")
        ideal = ds.snr[0] * ds.sigma / ds.sigma[0]
        ax.plot(ds.sigma, ideal, **dynlearn.plot.style(1), label="proportional to sigma")
        ax.set(xlabel="noise sigma", ylabel="SNR of B_1 across noise seeds")
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("pal_noise_scale", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
