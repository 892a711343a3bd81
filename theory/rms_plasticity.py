"""Claim: RMS-normalised plasticity is RMSprop as synaptic dynamics, bias-corrected.

`dynlearn.RMSNormalised(tau, lr)` (used by `AlwaysOn(..., rms=)`) gives each synapse a slow
variable v, dv/dt = (g^2 - v) / tau, and the history's weight c, dc/dt = (1 - c) / tau, and
turns the circuit's rate g into dtheta/dt = lr g / (sqrt(v + (1 - c) g^2) + eps). Checked on
synapses driven by a presented signal (float64, Euler dt 0.1, presentations of 1 time unit):
- constant drive: v = c g^2 at all times, so theta moves by exactly lr T g / (|g| + eps),
  i.e. lr T sign(g) up to eps / |g|, from the first step on, for |g| from 1e-3 to 1e3
  (relative error < 1e-9);
- scale: driving with 1000 g instead of g leaves the trajectory unchanged (< 1e-6 relative);
- per neuron (`per="neuron"`: one v per row of a weight matrix, the mean of g_ij^2 over the
  row): under a constant drive each row moves by exactly lr T g_i / rms_j(g_ij), keeping
  the row's direction (relative error < 1e-9; per synapse the same row moves by lr T
  sign(g_ij), at a cosine of 0.60 with g_i for the row (1e-3, -2, 50));
- a stationary random drive g_k = mu + s xi_k (one value per presentation, 200 synapses
  per setting (mu, s), their rates averaged): once the history is built (the second half
  of 2,000 presentations, 10 tau), the mean rate for tau much longer than a presentation is
  RMSprop's lr mu / sqrt(mu^2 + s^2), within 3% at tau = 100, and closer than at tau = 5
  (where v follows the drive's own fluctuations: Jensen's bias).

Run: `python -m theory.rms_plasticity [--fast]` or `dynlearn check rms_plasticity`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn

CLAIM = (
    "RMS-normalised plasticity: lr sign(g) under constant drive (per neuron: lr g_i / rms(g_i)), "
    "scale-free, -> RMSprop"
)
LR, DT = 0.01, 0.1


class DrivenSynapses(dynlearn.AbstractPlastic):
    """Synapses `weights` whose plasticity rate is the presented signal itself."""

    weights: jax.Array

    @property
    def sizes(self):
        return [self.weights.shape[0], self.weights.shape[0]]

    def init_state(self, x=None):
        return {"unused": jnp.zeros((1, 1))}

    def vector_field(self, t, y, args):
        return {"unused": jnp.zeros_like(y["unused"])}

    def plasticity(self, t, y, args):
        g, _ = dynlearn.input_and_target(args, t)
        return eqx.tree_at(lambda m: m.weights, self, g.reshape(self.weights.shape))

    def predict(self, x):
        return x


def drift(drive: np.ndarray, tau: float, shape=None, per: str = "synapse") -> np.ndarray:
    """theta(T) - theta(0) for synapses driven by `drive` (presentations, synapses), held
    as an array of `shape` (default: a vector), normalised `per` synapse or neuron."""
    shape = shape or (drive.shape[1],)
    system = dynlearn.Learning(
        DrivenSynapses(jnp.zeros(shape)),
        rms=dynlearn.RMSNormalised(tau=float(tau), lr=LR, per=per),
    )
    stream = dynlearn.StimulusStream(jnp.asarray(drive)[:, None, :], 1.0)
    end = dynlearn.simulate(
        system, system.init_state(), 0.0, stream.t1, args=stream, dt=DT, check=False
    ).y1
    return np.asarray(end["params"].weights)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    presentations, copies = 2000, 50 if fast else 200
    with jax.enable_x64(True):
        magnitudes = np.array([1e-3, 1.0, 1e3])
        signs = np.array([1.0, -1.0, 1.0])
        constant = drift(np.tile(signs * magnitudes, (50, 1)), tau=20.0)
        exact = LR * 50 * signs * magnitudes / (magnitudes + 1e-8)
        constant_error = np.abs(constant / exact - 1).max()
        rows = np.array([[1e-3, -2.0, 50.0], [0.5, 0.5, -4.0]])
        by_neuron = drift(np.tile(rows.ravel(), (50, 1)), 20.0, rows.shape, "neuron")
        row_rms = np.sqrt(np.mean(rows**2, axis=1, keepdims=True))
        neuron_error = np.abs(by_neuron / (LR * 50 * rows / (row_rms + 1e-8)) - 1).max()
        by_synapse = drift(np.tile(rows.ravel(), (50, 1)), 20.0, rows.shape, "synapse")
        cosines = np.sum(by_synapse * rows, 1) / np.linalg.norm(by_synapse, axis=1)
        cosines /= np.linalg.norm(rows, axis=1)
        rng = np.random.default_rng(0)
        mu, s = np.array([0.5, 1.0, -0.2]), np.array([1.0, 0.5, 1.0])
        noise = np.repeat(mu, copies) + np.repeat(s, copies) * rng.normal(
            size=(presentations, 3 * copies)
        )
        scaled = np.abs(drift(1000 * noise[:200], 20.0) / drift(noise[:200], 20.0) - 1).max()
        expected = LR * mu / np.sqrt(mu**2 + s**2)
        taus = np.array([5.0, 100.0])
        half = presentations // 2
        rates = np.stack(
            [
                ((drift(noise, tau) - drift(noise[:half], tau)) / half)
                .reshape(3, copies)
                .mean(axis=1)
                for tau in taus
            ]
        )
    error = np.abs(rates / expected - 1)  # (tau, setting)
    ds = xr.Dataset(
        {
            "mean_rate": (("tau", "synapse"), rates),
            "rmsprop_rate": ("synapse", expected),
            "relative_error": (("tau", "synapse"), error),
        },
        coords={"tau": taus, "synapse": np.arange(3)},  # one (mu, s) setting each
        attrs={
            "constant_drive_error": float(constant_error),
            "scale_error": float(scaled),
            "per_neuron_error": float(neuron_error),
            "per_synapse_row_cosines": cosines.tolist(),
        },
    )
    ds = dynlearn.describe(
        ds,
        mean_rate=("mean dtheta/dt under the random drive", "1"),
        rmsprop_rate=("lr mu / sqrt(mu^2 + s^2), RMSprop's mean step per unit time", "1"),
        relative_error=("|mean rate / RMSprop's - 1|", "1"),
        tau=("memory of the squared rates", "1"),
    )
    passed = constant_error < 1e-9 and scaled < 1e-6 and neuron_error < 1e-9
    print(f"per neuron: relative error {neuron_error:.1e}; per synapse, cosine of each row's")
    print(f"update with its drive: {np.round(cosines, 3).tolist()}")
    passed &= bool((ds.relative_error.sel(tau=100.0) < 0.03).all())
    passed &= bool(error[1].mean() < error[0].mean())
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "RMS-normalised plasticity under a random drive"
    with dynlearn.plot.figure(path, figsize=(5.0, 3.4), title=title) as ax:
        settings = ds.synapse.values
        ax.plot(settings, ds.rmsprop_rate, "k_", markersize=20, label="RMSprop's mean step")
        for tau in ds.tau.values:
            ax.plot(settings, ds.mean_rate.sel(tau=tau), "o", label=f"tau = {tau:g}")
        ax.set(xlabel="setting (mu, s)", ylabel="mean d theta / dt", xticks=settings)
        ax.legend(fontsize="small")


main = dynlearn.validation.script_main("rms_plasticity", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
