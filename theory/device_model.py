"""Claim: the analog device model reduces to ideal training, counts pulses as its curve
says, and costs accuracy monotonically as its levels shrink.

`dynlearn.hardware.on_device(learner, device)` stores a learner's forward weights as
conductances moved by pulses along saturating LTP/LTD curves (see `dynlearn.hardware`).
Checked here:
- ideal limit: a linear, continuous, noiseless device (`hardware.IDEAL`) trains to the same
  weights as the plain learner from the same seed (max |dW| < 1e-6; `fa` settle-then-update
  and `sh-always-on` on sklearn digits; the device's range +-100 max|W(0)| so that nothing
  clips; that device's write is w' = clip(w + dw), so this checks the plumbing: the same
  keys, batches, masks and optimizer state); the limit is approached through the curves
  themselves: continuous devices with nl = 1 .. 1e-3 (range +-4 max|W(0)|) come closer as
  nl shrinks (each 10x smaller: at least 3x closer) and quantised linear devices as the
  levels grow (2^6 .. 2^18) to under 1e-3;
- pulse count: on the Ag:a-Si RRAM curves (nl 2.40 LTP, 4.88 LTD, 97 / 100 levels) written
  one pulse at a time, the number of pulses from g_a to g_b equals the closed form
  P = (N / nl) ln((b - g_a) / (b - g_b)), b = 1 / (1 - e^{-nl}), integrated independently
  from the curve's differential equation dg/dP = (nl / N)(b - g) (RK4, float64): the
  sequential writes reach the closed-form conductance to 1e-9 and the integral to 1e-6;
- accuracy vs levels (`fa` on digits, stochastic rounding, 3 seeds; fast: 2): accuracy
  does not fall as the levels grow beyond seed noise (each step >= the previous minus
  2 standard errors of the difference) and the most levels beat the fewest.

Run: `python -m theory.device_model [--fast]` or `dynlearn check device_model`.
"""

from __future__ import annotations

import math
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from dynlearn import hardware

CLAIM = "device model: exact ideal limit, closed-form pulse counts, accuracy monotone in levels"
SIZES_HIDDEN = 32
# the ideal device's range is +-100 max|W(0)|: wide enough that no weight reaches its end (a
# device range clips the weights, which ideal training does not)
IDEAL_HEADROOM = 100.0
NONLINEARITIES = [1.0, 0.1, 0.01, 0.001]


def _weights(learner) -> list[np.ndarray]:
    inner = learner.learner if isinstance(learner, hardware.OnDevice) else learner
    return [np.asarray(w) for w in jax.tree.leaves(eqx.filter(inner, inner.trainable()))]


def _distance(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(_weights(a), _weights(b)))


def ideal_limit(data, epochs: int, levels: list[int]) -> tuple[dict, np.ndarray]:
    """max |dW| between plain and on-device training: exact device per rule, then
    quantised linear devices of growing levels (fa)."""
    sizes = [data.x_train.shape[1], SIZES_HIDDEN, data.n_classes]
    exact, trained = {}, {}
    for rule in ("fa", "sh-always-on"):
        learner, mode, batch = dynlearn.registry.load("rules", rule)(sizes, jax.random.key(0))
        fit = dict(epochs=epochs, batch_size=batch, progress=False)
        plain = dynlearn.fit(learner, data, mode, **fit).learner
        wide = hardware.on_device(learner, hardware.IDEAL, headroom=IDEAL_HEADROOM)
        placed = dynlearn.fit(wide, data, mode, **fit)
        exact[rule] = _distance(plain, placed.learner)
        trained[rule] = (learner, mode, fit, plain)
    learner, mode, fit, plain = trained["fa"]

    def distance(device):
        result = dynlearn.fit(hardware.on_device(learner, device, headroom=4.0), data, mode, **fit)
        return _distance(plain, result.learner)

    quantised = np.array([distance(hardware.Device(n, n)) for n in levels])
    curved = np.array([distance(hardware.Device(nl_ltp=nl, nl_ltd=nl)) for nl in NONLINEARITIES])
    return exact, quantised, curved


def pulse_counts() -> dict[str, float]:
    """Sequential single-pulse writes vs the closed form vs an RK4 integral (float64)."""
    device = hardware.RRAM_AG_A_SI
    worst_closed, worst_integral = 0.0, 0.0
    for nl, n in ((device.nl_ltp, device.levels_ltp), (device.nl_ltd, device.levels_ltd)):
        g = jnp.asarray(0.05, jnp.float64)
        pulses = jnp.asarray(0.0, jnp.float64)
        start = float(hardware.ltp_pulses(g, nl, float(n)))
        for _ in range(40):  # one pulse at a time, from where the device is
            g = hardware.ltp(hardware.ltp_pulses(g, nl, float(n)) + 1.0, nl, float(n))
            pulses += 1.0
        closed = hardware.pulses_between(0.05, float(g), nl, n)
        worst_closed = max(worst_closed, abs(closed - float(pulses)))
        target = float(hardware.ltp(start + 40.0, nl, float(n)))
        worst_closed = max(worst_closed, abs(float(g) - target))
        worst_integral = max(worst_integral, abs(_rk4_conductance(0.05, 40.0, nl, n) - float(g)))
    return {"closed_form_error": worst_closed, "integral_error": worst_integral}


def _rk4_conductance(g0: float, pulses: float, nl: float, n: int, steps: int = 4000) -> float:
    """g after `pulses` by integrating dg/dP = (nl / N)(b - g) with RK4 (no closed form)."""
    b = 1.0 / (1.0 - math.exp(-nl))

    def slope(g):
        return (nl / n) * (b - g)

    g, h = g0, pulses / steps
    for _ in range(steps):
        k1 = slope(g)
        k2 = slope(g + h * k1 / 2)
        k3 = slope(g + h * k2 / 2)
        k4 = slope(g + h * k3)
        g += h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
    return g


def accuracy_vs_levels(data, epochs: int, seeds: list[int], levels: list[int]) -> np.ndarray:
    sizes = [data.x_train.shape[1], SIZES_HIDDEN, data.n_classes]
    factory = dynlearn.registry.load("rules", "fa")
    out = []
    for n in levels:
        device = hardware.Device(n, n, rounding="stochastic")
        learners, modes, batch = [], None, None
        for seed in seeds:
            learner, modes, batch = factory(sizes, jax.random.key(seed))
            learners.append(hardware.on_device(learner, device, headroom=4.0, seed=seed))
        _, accuracy = dynlearn.fit_seeds(
            dynlearn.stack(learners), data, modes, seeds=seeds, epochs=epochs, batch_size=batch
        )
        out.append(accuracy[:, -1])
    return np.array(out)  # (levels, seed)


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    data = dynlearn.data.load("digits")
    epochs = 2 if fast else 5
    seeds = [0, 1] if fast else [0, 1, 2]
    ideal_levels = [2**6, 2**10, 2**14, 2**18]
    sweep = [4, 16, 64] if fast else [4, 8, 16, 32, 64, 256]
    exact, quantised, curved = ideal_limit(data, epochs, ideal_levels)
    with jax.enable_x64(True):
        pulses = pulse_counts()
    accuracy = accuracy_vs_levels(data, epochs, seeds, sweep)
    ds = xr.Dataset(
        {
            "quantised_distance": ("ideal_levels", quantised),
            "curved_distance": ("nl", curved),
            "accuracy": (("levels", "seed"), accuracy),
        },
        coords={
            "ideal_levels": ideal_levels,
            "nl": NONLINEARITIES,
            "levels": sweep,
            "seed": seeds,
        },
        attrs={
            "ideal_distance_fa": exact["fa"],
            "ideal_distance_sh_always_on": exact["sh-always-on"],
            **pulses,
            "epochs": epochs,
        },
    )
    ds = dynlearn.describe(
        ds,
        quantised_distance=(
            "max |W_device - W_plain| after training, linear quantised device",
            "1",
        ),
        curved_distance=(
            "max |W_device - W_plain| after training, continuous device of nonlinearity nl",
            "1",
        ),
        nl=("nonlinearity of the continuous device's LTP/LTD curves", "1"),
        accuracy=("test accuracy of fa on digits, stochastic-rounding linear device", "1"),
        ideal_levels=("levels of the quantised linear device", "1"),
        levels=("levels of the device in the accuracy sweep", "1"),
    )
    mean = accuracy.mean(axis=1)
    sem = accuracy.std(axis=1, ddof=1) / np.sqrt(len(seeds))
    step_ok = all(
        mean[k + 1] >= mean[k] - 2 * np.hypot(sem[k], sem[k + 1]) for k in range(len(sweep) - 1)
    )
    passed = max(exact.values()) < 1e-6
    passed &= bool(np.all(np.diff(quantised) < 0) and quantised[-1] < 1e-3)
    passed &= bool(np.all(curved[1:] <= curved[:-1] / 3))
    passed &= pulses["closed_form_error"] < 1e-9 and pulses["integral_error"] < 1e-6
    passed &= step_ok and mean[-1] > mean[0]
    return ds, bool(passed)


def plot(ds: xr.Dataset, path) -> None:
    title = "Analog device model: ideal limit and accuracy vs levels"
    with dynlearn.plot.figure(path, ncols=2, figsize=(9.5, 3.4), title=title) as (left, right):
        mean, std = ds.accuracy.mean("seed"), ds.accuracy.std("seed")
        left.errorbar(ds.levels, mean, yerr=std, fmt="o-", capsize=3)
        left.set(xscale="log", xlabel="levels", ylabel="test accuracy (fa, digits)")
        left.set_xticks(ds.levels.values, [str(v) for v in ds.levels.values])
        left.minorticks_off()
        right.loglog(ds.ideal_levels, ds.quantised_distance, "o-", label="quantised, nl = 0")
        right.loglog(1 / ds.nl, ds.curved_distance, "s--", label="continuous, 1 / nl")
        right.set(xlabel="levels, or 1 / nl", ylabel="max |W_device - W_plain|")
        right.legend(fontsize="small")


main = dynlearn.validation.script_main("device_model", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
