"""Claim: a layered threshold network that learns hierarchical concepts with Oja's rule and
winner-take-all (`circuits.concepts`; Lynch & Mallmann-Trenn, Neural Networks 2021,
arXiv:1909.04559) needs, per concept once its children are learned, a number of
presentations t with the shape of the paper's bound

    B  = (1/(eta k)) (l_max ln k + 1/eps) + b ln k          (reading A, the abstract's)
    B' = (1/(eta k)) (l_max ln k + 1/eps + b ln k)          (reading B, b-term inside)

(k children per concept, depth l_max, learning rate eta, eps the weight tolerance of robust
recognition with r1 = 0.8, r2 = 0.4, b: irrelevant weights down to w0 k^-b). t counts a
concept's presentations until its neuron's child weights are within (1 +- eps)/sqrt(k) and
its other weights below w0 k^-b, for good; the concepts of a level are presented in a random
interleaved order, levels bottom up; several seeds (random hierarchies, orders, WTA ties).

Checked (what the theorem predicts, and what Oja's rule implies for each term):
(1) mechanism: in every run every concept keeps its own neuron (no WTA switches), every
    concept of every level and every seed takes the same t, equal (+-1) to that of the
    scalar Oja map w <- w + eta k w (1 - k w^2) a concept's neuron follows; the trained
    network (r1, r2)-recognises the hierarchy on worst-case inputs, and robust recognition
    holds no later than the weight criterion (which implies it);
(2) depth: at fixed k, t grows linearly in l_max with slope ln k / (eta k), the bound's
    l_max log k / (eta k) term (it comes from the initial weight w0 ~ k^-l_max that keeps
    unused neurons silent): slope / (ln k / (eta k)) in [0.8, 1.25] for every k;
(3) band: t <= B and t <= B' everywhere (constant 1), and max/min of t / B over the
    (k, l_max) grid below 3 (the bound is an O(): the ratio is not constant, since at small
    l_max the bound's 1/eps term dominates);
(4) eta: eta t varies by less than 25% over eta (the 1/eta factor);
(5) eps: t grows with 1/eps far more slowly than the bound's 1/eps: the slope of eta k t
    (child weights) against ln(1/eps) lies in [0.3, 0.8] (Oja's geometric approach to
    1/sqrt(k) predicts 1/2), and t <= B at every eps;
(6) b: the irrelevant-weight time grows by ln k / (eta k) per unit of b (slope ratio in
    [0.8, 1.25]): the b-term carries the 1/(eta k) factor (reading B), since Oja's rule
    shrinks an unused weight by eta y^2 = eta k per presentation.

Run: `python -m theory.concept_learning_time [--fast]` or `dynlearn check
concept_learning_time`.
"""

from __future__ import annotations

import math
import sys

import jax
import numpy as np
import xarray as xr

import dynlearn
from circuits.concepts import (
    Recognition,
    concept_hierarchy,
    concept_network,
    first_stable,
    oja_presentations,
    recognises,
    train_bottom_up,
)

CLAIM = "Oja+WTA hierarchical concepts: presentations per concept follow the bound's shape"
RECOGNITION = Recognition(r1=0.8, r2=0.4, eps=0.1)
B_BASE = 1  # b of the "learned" criterion
SLOPE_BAND = (0.8, 1.25)
MAX_BAND = 3.0
MAX_ETA_SPREAD = 1.25
EPS_SLOPE = (0.3, 0.8)
FAST = dict(
    ks=(2, 4), depths=(1, 2, 3), eta=0.025, seeds=2, max_leaves=64, sweep=(4, 2),
    etas=(0.025, 0.05, 0.1), eps=(0.2, 0.1, 0.05, 0.025), bs=(1, 2),
)  # fmt: skip
FULL = dict(
    ks=(2, 3, 4, 6, 8), depths=(1, 2, 3, 4), eta=0.0125, seeds=3, max_leaves=512,
    sweep=(4, 3), etas=(0.0125, 0.025, 0.05), eps=(0.2, 0.1, 0.05, 0.025, 0.0125),
    bs=(1, 2, 3),
)  # fmt: skip


def bounds(k, levels, eta, eps, b) -> tuple[float, float]:
    """The paper's bound with constant 1 (natural logs): readings A and B."""
    core = (levels * math.log(k) + 1 / eps) / (eta * k)
    return core + b * math.log(k), core + b * math.log(k) / (eta * k)


def measure(s: dict, shape: dict, k: int, levels: int, eta: float) -> dict:
    """Train `s["seeds"]` random hierarchies; the presentations every concept needed (seeds
    by rows, concepts of all levels by columns), and the mechanism's checks."""
    child, unused, ok_at, learned, mechanism = [], [], [], [], True
    for seed in range(s["seeds"]):
        case_seed = 10_000 * k + 100 * levels + seed
        h = concept_hierarchy(case_seed, k, levels, shape["n"])
        net = concept_network(h, RECOGNITION, eta, layers=shape["layers"])
        key = jax.random.key(case_seed)
        trained, record = train_bottom_up(
            net, h, RECOGNITION, key, shape["rounds"], seed=case_seed, width=shape["width"]
        )
        low, high, irrelevant = (
            np.concatenate(x, axis=-1)
            for x in (record.child_low, record.child_high, record.irrelevant)
        )
        ok = np.concatenate([f & q for f, q in zip(record.fires, record.quiet)], axis=-1)
        child.append([first_stable((low >= 1 - e) & (high <= 1 + e)) for e in s["eps"]])
        unused.append([first_stable(irrelevant <= k ** (-float(b))) for b in s["bs"]])
        learned.append(np.maximum(child[-1][s["eps"].index(RECOGNITION.eps)], unused[-1][0]))
        ok_at.append(first_stable(ok))
        recognised = recognises(trained, h, record.reps, RECOGNITION, seed=case_seed + 1)
        mechanism &= all(bool(r.all()) for r in recognised)
        mechanism &= all(int(x.sum()) == 0 for x in record.switches)
        mechanism &= all(len(np.unique(r)) == len(r) for r in record.reps)
    child, unused, ok_at, learned = (np.array(x) for x in (child, unused, ok_at, learned))
    done = [child, unused, ok_at, learned]
    mechanism &= all(bool(np.all(x > 0)) for x in done)  # -1: not within the run
    # (seed, criterion, concept): the same for every seed and concept
    mechanism &= all(bool(np.all(x == x[:1, :, :1])) for x in (child, unused))
    mechanism &= bool(np.all(ok_at <= learned))
    return dict(
        child=child.max(axis=(0, -1)), irrelevant=unused.max(axis=(0, -1)),
        learned=int(learned.max()), recognised=int(ok_at.max()), mechanism=mechanism,
    )  # fmt: skip


def slope(x, y) -> float:
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    s = FAST if fast else FULL
    eta, eps_values, bs = s["eta"], list(s["eps"]), list(s["bs"])
    cases = [(k, d) for k in s["ks"] for d in s["depths"] if k**d <= s["max_leaves"]]
    predicted = {
        (k, d): (
            [oja_presentations(k, d, eta, e, B_BASE, RECOGNITION)[0] for e in eps_values],
            [oja_presentations(k, d, eta, RECOGNITION.eps, b, RECOGNITION)[1] for b in bs],
        )
        for k, d in cases
    }
    # one shape for every case (n, layers, concepts per level, rounds): one compilation
    longest = max(max(max(c), max(u)) for c, u in predicted.values())
    shape = dict(
        n=s["max_leaves"] + 8,  # a few level-0 concepts outside the hierarchy, never shown
        layers=max(s["depths"]),
        width=max(k ** (d - 1) for k, d in cases),
        rounds=int(1.1 * longest) + 5,
    )
    rows, mechanism = [], True
    with jax.enable_x64(True):  # see circuits.concepts: float32 blurs the WTA's ties
        for k, d in cases:
            m = measure(s, shape, k, d, eta)
            child_p, unused_p = predicted[k, d]
            gap = max(
                np.abs(m["child"] - np.array(child_p)).max(),
                np.abs(m["irrelevant"] - np.array(unused_p)).max(),
            )
            mechanism &= m["mechanism"] and gap <= 1
            rows.append(m)
            print(
                f"k={k} l_max={d}: t = {m['learned']} presentations (scalar Oja map "
                f"{max(child_p[eps_values.index(RECOGNITION.eps)], unused_p[0])}), robust "
                f"recognition after {m['recognised']}; mechanism "
                + ("ok" if m["mechanism"] and gap <= 1 else "FAILS")
            )
        k_s, d_s = s["sweep"]
        eta_times = [measure(s, shape, k_s, d_s, e)["learned"] for e in s["etas"]]

    ks = np.array([k for k, _ in cases])
    depths = np.array([d for _, d in cases])
    bound_a, bound_b = np.array([bounds(k, d, eta, RECOGNITION.eps, B_BASE) for k, d in cases]).T
    learned = np.array([m["learned"] for m in rows], float)
    child = np.array([m["child"] for m in rows], float).T  # (eps, case)
    unused = np.array([m["irrelevant"] for m in rows], float).T  # (b, case)
    scale = eta * ks / np.log(ks)  # 1 / (ln k / (eta k))

    depth_slope = {
        int(k): float(slope(depths[ks == k], learned[ks == k]) * scale[ks == k][0])
        for k in np.unique(ks)
        if np.sum(ks == k) >= 2
    }
    b_slope = np.array([slope(bs, unused[:, i]) for i in range(len(cases))]) * scale
    eps_slope = np.array(
        [
            slope(np.log(1 / np.array(eps_values)), eta * ks[i] * child[:, i])
            for i in range(len(cases))
        ]
    )
    ratio = learned / bound_a
    band = float(ratio.max() / ratio.min())
    eps_bound = np.array([[bounds(k, d, eta, e, B_BASE)[0] for k, d in cases] for e in eps_values])
    below = bool(ratio.max() <= 1 and (learned / bound_b).max() <= 1)
    below &= bool((child / eps_bound).max() <= 1)
    eta_product = np.array(eta_times) * np.array(s["etas"])
    eta_spread = float(eta_product.max() / eta_product.min())

    ds = xr.Dataset(
        {
            "presentations_learned": ("case", learned),
            "presentations_recognised": ("case", np.array([m["recognised"] for m in rows], float)),
            "bound_a": ("case", bound_a),
            "bound_b": ("case", bound_b),
            "b_slope": ("case", b_slope),
            "eps_slope": ("case", eps_slope),
            "presentations_child": (("eps", "case"), child),
            "presentations_irrelevant": (("b", "case"), unused),
        },
        coords={"case": np.arange(len(cases)), "k": ("case", ks), "levels": ("case", depths),
                "eps": eps_values, "b": bs},
    )  # fmt: skip
    ds.attrs.update(
        {
            "eta": eta, "r1": RECOGNITION.r1, "r2": RECOGNITION.r2,
            "eps_of_recognition": RECOGNITION.eps, "b_of_learned": B_BASE,
            "seeds": s["seeds"], "band": band, "mechanism_ok": int(mechanism),
            "below_bound": int(below), "depth_slope_k": list(depth_slope),
            "depth_slope": list(depth_slope.values()), "eta_sweep_case": f"k={k_s} l_max={d_s}",
            "eta_sweep_eta": list(s["etas"]), "eta_sweep_presentations": eta_times,
            "eta_sweep_spread": eta_spread,
            **{f"shape_{name}": value for name, value in shape.items()},
        }
    )  # fmt: skip
    ds = describe(ds)
    checks = {
        "(1) mechanism": mechanism,
        "(2) depth slope": all(_within(v, SLOPE_BAND) for v in depth_slope.values()),
        "(3) t <= bound": below,
        f"(3) band < {MAX_BAND}": band < MAX_BAND,
        "(4) eta": eta_spread < MAX_ETA_SPREAD,
        "(5) eps slope": all(_within(v, EPS_SLOPE) for v in eps_slope),
        "(6) b slope": all(_within(v, SLOPE_BAND) for v in b_slope),
    }
    print("depth slope / (ln k / (eta k)) per k:", {k: round(v, 3) for k, v in depth_slope.items()})
    print("b slope / (ln k / (eta k)):", np.round(b_slope, 3).tolist())
    print("eps slope (eta k t vs ln 1/eps):", np.round(eps_slope, 3).tolist())
    print(f"t / B: {ratio.min():.3f} .. {ratio.max():.3f} (band {band:.2f}); t / B' max "
          f"{(learned / bound_b).max():.3f}; eta sweep ({k_s}, {d_s}): t = {eta_times} for "
          f"eta = {list(s['etas'])}, eta t spread {eta_spread:.3f}")  # fmt: skip
    print(", ".join(f"{name}: {'ok' if value else 'FAIL'}" for name, value in checks.items()))
    return ds, all(checks.values())


def _within(value, interval) -> bool:
    return bool(interval[0] <= value <= interval[1])


def describe(ds: xr.Dataset) -> xr.Dataset:
    per = "presentations per concept until "
    return dynlearn.describe(
        ds,
        presentations_learned=(per + "learned (child weights within 10%, others < w0/k)", "1"),
        presentations_recognised=(per + "worst-case robust recognition holds", "1"),
        bound_a=("(l_max ln k + 1/eps)/(eta k) + b ln k (eps = 0.1, b = 1)", "1"),
        bound_b=("(l_max ln k + 1/eps + b ln k)/(eta k) (eps = 0.1, b = 1)", "1"),
        b_slope=("d t_irrelevant / d b over ln k / (eta k)", "1"),
        eps_slope=("d (eta k t_child) / d ln(1/eps)", "1"),
        presentations_child=(per + "child weights within (1 +- eps)/sqrt(k)", "1"),
        presentations_irrelevant=(per + "other weights below w0 k^-b", "1"),
        case=("configuration (k, l_max)", "1"),
        k=("children per concept k", "1"),
        levels=("depth l_max", "1"),
        eps=("recognition tolerance eps", "1"),
        b=("irrelevant-weight decrease exponent b", "1"),
    )


def plot(ds: xr.Dataset, path) -> None:
    title = "Oja + WTA hierarchical concepts: presentations per concept (Lynch & Mallmann-Trenn)"
    eta, markers = ds.attrs["eta"], "os^Dv"
    with dynlearn.plot.figure(path, figsize=(14.4, 4.2), title=title, ncols=3) as axes:
        left, middle, right = axes
        for i, k in enumerate(np.unique(ds.k)):
            case = ds.where(ds.k == k, drop=True)
            marker = markers[i % len(markers)]
            left.loglog(case.bound_a, case.presentations_learned, marker, label=f"k={k}")
            x = case.levels * np.log(k)
            middle.plot(x, eta * k * case.presentations_learned, marker + "-", label=f"k={k}")
            middle.plot(x, eta * k * case.presentations_recognised, marker + ":", color="grey")
            deepest = case.presentations_child.isel(case=-1)
            right.semilogx(1 / ds.eps, eta * k * deepest, marker + "-", label=f"k={k}")
            if i == 0:  # the bound's and Oja's growth in 1/eps, from the first point
                start = float(eta * k * deepest[0])
                right.semilogx(1 / ds.eps, start + 1 / ds.eps - 1 / ds.eps[0], "k:",
                               label="bound: + 1/eps")  # fmt: skip
                right.semilogx(1 / ds.eps, start + 0.5 * np.log(ds.eps[0] / ds.eps), "k--",
                               label="Oja: + ln(1/eps)/2")  # fmt: skip
        lim = np.array([float(ds.bound_a.min()) / 1.5, float(ds.bound_a.max()) * 1.5])
        left.loglog(lim, lim, "k-", lw=0.8, label="t = B")
        left.loglog(lim, lim / 3, "k:", lw=0.8, label="t = B/3")
        left.set(
            xlabel="bound B = (l_max ln k + 1/eps)/(eta k) + b ln k",
            ylabel="presentations per concept t",
            title="measured vs bound (eps=0.1, b=1)",
        )
        left.tick_params(which="minor", labelbottom=False, labelleft=False)  # no crowding
        ticks = [t for t in (10, 20, 50, 100, 200, 500, 1000) if lim[0] / 3 <= t <= lim[1]]
        left.set_xticks(ticks, [str(t) for t in ticks])
        left.set_yticks(ticks, [str(t) for t in ticks])
        left.legend(fontsize="small")
        span = np.linspace(0, float((ds.levels * np.log(ds.k)).max()), 2)
        middle.plot(span, span + 1.5, "k--", lw=0.8, label="slope 1")
        middle.set(xlabel="l_max ln k", ylabel="eta k t",
                   title="depth: learned (solid), recognised (grey)")  # fmt: skip
        middle.legend(fontsize="small")
        right.set(xlabel="1/eps", ylabel="eta k t (child weights)", ylim=(0, None),
                  title="tolerance eps (deepest l_max per k)")  # fmt: skip
        right.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        right.set_xticks(1 / ds.eps.values, [f"{v:g}" for v in 1 / ds.eps.values])
        right.legend(fontsize="small")


main = dynlearn.validation.script_main("concept_learning_time", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
