"""Microcircuit benchmark: Euler steps per second of `simulate` vs a hand-written `lax.scan`.

Workloads (prospective rates, all plasticity on, targets nudging the output, a new sample
every `t_pres / dt` = 20 steps so nothing can be hoisted out of the loop):
1. the 5-20-10-20-5 microcircuit (logistic), one stream (batch 1);
2. 784-100-10, 32 parallel streams (batch 32);
3. 5-20-10-20-5, 64 seeds at once (`jax.vmap` over independent circuits);
4. 5-20-10-20-5 with PAL: apical Ornstein-Uhlenbeck noise (an SDE), high-pass filters,
   feedback learning and low-pass filtered forward updates, batch 1.
Each is timed as `dynlearn.simulate(dynlearn.Learning(circuit), ...)` (neurons and weights
evolving together) and as a `lax.scan` of the same equations written out in this file
(Sacramento et al. 2018 with prospective rates; PAL's forward filter is the host's
`tau_lo` = 100 ms). Target: ratio dynlearn / hand <= 1.10. The two compute the same thing:
their learned weights agree to float32 round-off (relative difference ~1e-6 after 1,000
steps; over 20,000 steps of learning the rounding differences grow to ~2e-3, printed as "max
rel diff"). Reported: microseconds per Euler step and steps (x streams) per second, and the
ratio, from the fastest of `--repeats` (11) interleaved runs of each after a compile run.

Run: `python -m experiments.bench_microcircuit` (or `dynlearn bench microcircuit`);
`--quick` for a smoke run (short streams, 2 repeats; ratios printed but not judged: the
exit code is 0 unless the run fails).
"""

from __future__ import annotations

import argparse
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp

import dynlearn
from circuits.microcircuit import Microcircuit, self_predicting
from circuits.pal import PAL
from experiments._timing import fastest_ratio, verdict

DT, T_PRES = 0.1, 2.0
STEPS_PER_SAMPLE = round(T_PRES / DT)
TAU_LO = 100.0  # PAL: the host's low-pass filter of the forward updates (ms)


def make(sizes, streams: int, n_samples: int, key=jax.random.key(0), pal_sigma=None):
    """A self-predicting circuit (fixed random B, or PAL with noise `pal_sigma` and the
    forward updates low-passed with `TAU_LO`) and a stream of random inputs and targets."""
    feedback = None if pal_sigma is None else PAL(jax.random.fold_in(key, 2), sigma=pal_sigma)
    circuit = Microcircuit(
        list(sizes),
        key,
        feedback=feedback,
        tau_lo=None if pal_sigma is None else TAU_LO,
        dt=DT,
    )
    circuit = self_predicting(circuit)
    k1, k2 = jax.random.split(jax.random.fold_in(key, 1))
    x = jax.random.uniform(k1, (n_samples, streams, sizes[0]))
    y = jax.random.uniform(k2, (n_samples, streams, sizes[-1]))
    return circuit, x, y


def dynlearn_run(circuit, x, y, seed: int = 7):
    """The learned weights after streaming `x`, `y` through `dynlearn.Learning(circuit)`."""
    system = dynlearn.Learning(circuit)
    stream = dynlearn.StimulusStream(x, T_PRES, y)
    learned = dynlearn.simulate(
        system,
        system.init_state(x[0]),
        0.0,
        stream.t1,
        args=stream,
        dt=DT,
        key=jax.random.key(seed),
        check=False,
    ).y1["params"]
    return {
        "weights": learned.weights,
        "inter_weights": learned.inter_weights,
        "lateral_weights": learned.lateral_weights,
        "feedback": learned.feedback.feedback if circuit.feedback.plastic else None,
    }


def hand_run(circuit, x, y, seed: int = 7):
    """Euler(-Maruyama) steps of the prospective microcircuit with every rule on (and PAL's
    noise, filters and feedback learning when the circuit's pathway is PAL), written out."""
    g = circuit.conductances
    g_h, g_i, g_o = g.hidden, g.interneuron, g.output(True)
    a_h, a_o = g.basal / g_h, g.basal / g.output(False)
    c_i = g.dendrite / (g.leak + g.dendrite)
    eta, eta_ip, eta_pi = circuit.eta, circuit.eta_inter, circuit.eta_lateral
    tau_d = circuit.tau_dend
    pal = circuit.feedback if isinstance(circuit.feedback, PAL) else None
    n_hidden = len(circuit.weights) - 1
    feedback0 = circuit.feedback.matrices(circuit.weights)
    state0 = circuit.init_state(x[0])
    names = circuit.layer_names
    us = [state0[n]["u"] for n in names]
    u_i = [state0[n]["u_inter"] for n in names[:-1]]
    v_a = [state0[n]["v_apical"] for n in names[:-1]]
    params = (list(circuit.weights), list(circuit.inter_weights), list(circuit.lateral_weights))
    extra = None
    if pal is not None:
        p0 = state0["pathway"]
        extra = (feedback0, p0["xi"], p0["rate_lp"], state0["forward_lp"])
    s = x.shape[1]
    sig = jax.nn.sigmoid

    def step(carry, n):
        us, u_i, v_a, (w, w_ip, w_pi), extra = carry
        feedback = feedback0 if extra is None else extra[0]
        apical = v_a if extra is None else [v + xi for v, xi in zip(v_a, extra[1])]
        k = jnp.minimum(n // STEPS_PER_SAMPLE, x.shape[0] - 1)
        inp, tgt = x[k], y[k]
        basal, volt, rate, r = [], [], [], inp
        for layer in range(n_hidden + 1):
            basal.append(r @ w[layer].T)
            if layer < n_hidden:
                volt.append((g.basal * basal[-1] + g.apical * apical[layer]) / g_h)
                r = sig(volt[-1])
            else:
                volt.append((g.basal * basal[-1] + g.nudge * tgt) / g_o)
                r = volt[-1]
            rate.append(r)
        new_us, new_ui, new_va, dw, dwip, dwpi = [], [], [], [], [], []
        pre = [inp] + rate[:-1]
        for layer in range(n_hidden + 1):
            if layer < n_hidden:
                du = g.basal * basal[layer] + g.apical * apical[layer] - g_h * us[layer]
                phi_hat = sig(a_h * basal[layer])
            else:
                du = g.basal * basal[layer] - (g.leak + g.basal) * us[layer]
                du = du + g.nudge * (tgt - us[layer])
                phi_hat = a_o * basal[layer]
            new_us.append(us[layer] + DT * du)
            dw.append(eta[layer] * ((rate[layer] - phi_hat).T @ pre[layer]) / s)
        for layer in range(n_hidden):
            dend = rate[layer] @ w_ip[layer].T
            ui_hat = (g.dendrite * dend + g.somatic * volt[layer + 1]) / g_i
            above = layer + 1 < n_hidden
            r_i = sig(ui_hat) if above else ui_hat
            predicted = sig(c_i * dend) if above else c_i * dend
            apical_in = rate[layer + 1] @ feedback[layer].T + r_i @ w_pi[layer].T
            dui = g.dendrite * dend + g.somatic * us[layer + 1] - g_i * u_i[layer]
            new_ui.append(u_i[layer] + DT * dui)
            new_va.append(v_a[layer] + DT * (apical_in - v_a[layer]) / tau_d)
            dwip.append(eta_ip * ((r_i - predicted).T @ rate[layer]) / s)
            dwpi.append(-eta_pi * (v_a[layer].T @ r_i) / s)
        applied = dw
        if extra is not None:
            b, xis, lps, fwd = extra
            noise_key = jax.random.fold_in(jax.random.key(seed), n)
            amplitude = pal.sigma * jnp.sqrt(2.0 / pal.tau_xi)
            new_b = [
                bl + DT * pal.eta * ((xi.T @ (r_up - lp)) / s - pal.alpha * bl)
                for bl, xi, r_up, lp in zip(b, xis, rate[1:], lps)
            ]
            new_xi = [
                xi
                - DT * xi / pal.tau_xi
                + amplitude
                * jnp.sqrt(DT)
                * jax.random.normal(jax.random.fold_in(noise_key, i), xi.shape)
                for i, xi in enumerate(xis)
            ]
            new_lp = [lp + DT * (r_up - lp) / pal.tau_hp for lp, r_up in zip(lps, rate[1:])]
            new_fwd = [f + DT * (d - f) / circuit.tau_lo for f, d in zip(fwd, dw)]
            applied, extra = fwd, (new_b, new_xi, new_lp, new_fwd)
        new_params = tuple(
            [p + DT * d for p, d in zip(ps, ds)]
            for ps, ds in zip((w, w_ip, w_pi), (applied, dwip, dwpi))
        )
        return (new_us, new_ui, new_va, new_params, extra), None

    n_steps = x.shape[0] * STEPS_PER_SAMPLE
    carry, _ = jax.lax.scan(step, (us, u_i, v_a, params, extra), jnp.arange(n_steps))
    w, w_ip, w_pi = carry[3]
    feedback = None if pal is None else carry[4][0]
    return {"weights": w, "inter_weights": w_ip, "lateral_weights": w_pi, "feedback": feedback}


def time_pair(ours, hand, args, repeats: int) -> tuple[list[float], list[float]]:
    """`repeats` runs each, the two interleaved (this VM's timings drift by +-20% over
    seconds, so each of our runs is compared with the hand run right after it)."""
    times = {ours: [], hand: []}
    for _ in range(repeats):
        for fn in (ours, hand):
            tic = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[fn].append(time.perf_counter() - tic)
    return times[ours], times[hand]


def workload(name, sizes, streams, seeds, n_samples, repeats, pal_sigma=None) -> dict:
    if seeds == 1:
        circuit, x, y = make(sizes, streams, n_samples, pal_sigma=pal_sigma)
        args = (circuit, x, y)
        ours, hand = eqx.filter_jit(dynlearn_run), eqx.filter_jit(hand_run)
    else:
        made = [make(sizes, streams, n_samples, jax.random.key(i)) for i in range(seeds)]
        args = jax.tree.map(lambda *a: jnp.stack(a), *made)
        ours = eqx.filter_jit(eqx.filter_vmap(dynlearn_run))
        hand = eqx.filter_jit(eqx.filter_vmap(hand_run))
    # Both must compute the same thing (PAL: the same with the noise switched off, since the
    # two draw their noise differently).
    check_args = args
    if pal_sigma is not None:
        check_args = make(sizes, streams, n_samples, pal_sigma=0.0)
    diff = dynlearn.analysis.relative_error(ours(*check_args), hand(*check_args))
    n_steps = n_samples * STEPS_PER_SAMPLE
    runs_ours, runs_hand = time_pair(ours, hand, args, repeats)
    t_ours, t_hand = min(runs_ours), min(runs_hand)
    return {
        "workload": name,
        "us_per_step": 1e6 * t_ours / n_steps,
        "hand_us_per_step": 1e6 * t_hand / n_steps,
        "stream_steps_per_s": n_steps * streams * seeds / t_ours,
        "ratio": fastest_ratio(runs_ours, runs_hand),
        "max_rel_diff": float(diff),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn bench microcircuit", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: short streams, 2 repeats; ratios printed, not judged (exit code 0)",
    )
    parser.add_argument("--repeats", type=int, default=11)
    opts = parser.parse_args(argv)
    n, repeats = (50, 2) if opts.quick else (1000, opts.repeats)
    rows = [
        workload("5-20-10-20-5, batch 1", (5, 20, 10, 20, 5), 1, 1, n, repeats),
        workload("784-100-10, 32 streams", (784, 100, 10), 32, 1, n // 4, repeats),
        workload("5-20-10-20-5, 64 seeds", (5, 20, 10, 20, 5), 1, 64, n // 4, repeats),
        workload("5-20-10-20-5 + PAL", (5, 20, 10, 20, 5), 1, 1, n, repeats, pal_sigma=0.1),
    ]
    print("workload                 us/step  hand us/step  stream-steps/s   ratio  max rel diff")
    for r in rows:
        print(
            f"{r['workload']:<24} {r['us_per_step']:7.2f}  {r['hand_us_per_step']:12.2f}  "
            f"{r['stream_steps_per_s']:14.3g}  {r['ratio']:6.2f}  {r['max_rel_diff']:.1e}"
        )
    ok = all(r["ratio"] <= 1.10 for r in rows)
    return verdict(ok, opts.quick)


if __name__ == "__main__":
    sys.exit(main())
