"""Experiment: why the always-on rules trailed their phased twins, and what closed the gap.

For each always-on rule, its previous settings, each fix on its own path to the registered
rule, the registered rule itself and its phased twin train on the same samples: mnist5k,
784-100-10, 10 epochs, 3 seeds (vmapped, `dynlearn.fit_seeds`), scored on a **validation
split** (`Data.validation_split`: the last 20% of the training set; the test set is not
touched, so the settings chosen here are not tuned on it). The fixes, each a circuit's own
dynamics (see the circuits' docstrings and `theory/`):
- `pc-always-on`: prospective value neurons (`PCNetwork(prospective=True)`,
  `theory/pc_prospective.py`), then a faster weight time constant, then an annealed
  plasticity gain (`AlwaysOn(gain=dynlearn.inverse_time(n_0))`, `theory/annealed_gain.py`);
- `ep-continual`: symmetric nudging (-beta, then a learning +beta leg;
  `theory/ep_continual.py`), then a larger rate with an annealed gain, then homeostatic
  output biases (a dead output unit revives);
- `microcircuit`: tanh instead of the sigmoid, then larger rates with an annealed gain;
- per-synapse RMS-normalised plasticity (`dynlearn.RMSNormalised`: the phased twins' Adam
  denominator as slow synaptic dynamics): adopted by the microcircuit (it closes most of
  its gap on full MNIST), tried and not adopted by continual EP;
- `pal`: no low-pass filter on the forward updates (next to `le-fa`, fixed random B in
  the same network), then the forward synapses normalised per postsynaptic neuron and
  annealed (`RMSNormalised(per="neuron")`; per synapse next to it);
- `le`: constant rates, then the same forward plasticity as `pal`.
The `pc-always-on` block also shows rule `pc` with inference run to the equilibrium
(`SteadyStateInference()`) instead of its 20 Euler steps.

Writes `always_on.nc` (validation accuracy (variant, seed, epoch), seconds per variant),
`always_on.md` (table with the gap to the twin) and `always_on.png`.

Run: `python -m experiments.always_on` or `dynlearn run always-on` (`--rules pal le` for a
subset); `--quick` for a smoke run (digits, 1 epoch, 1 seed, rule `pal` unless `--rules`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import xarray as xr
from jaxtyping import PRNGKeyArray

import dynlearn
from circuits.ep import EPNetwork, OneSided, Symmetric
from circuits.feedback import AbstractFeedback, FeedbackAlignment, WeightTransport
from circuits.latent_equilibrium import PAL_SETTINGS, always_on_rule, with_forward_plasticity
from circuits.microcircuit import Microcircuit, self_predicting
from circuits.pal import PAL
from circuits.pc import PCNetwork, SteadyStateInference
from dynlearn import registry
from experiments import constraints
from experiments._options import non_negative_int, positive_int
from experiments._timing import markdown_table, write_results

Factory = Callable[[list[int], jax.Array], dynlearn.Recipe]


# -- the variants: previous settings and each fix, as rule factories (sizes, key) -> Recipe --
def pc_variant(tau_w: float, prospective: bool, n_0: float | None) -> Factory:
    """`pc-always-on` with the given weight time constant, value neurons and gain."""

    def factory(sizes, key):
        variances = [1.0] * (len(sizes) - 2) + [10.0]
        net = PCNetwork(sizes, key, variances=variances, tau_w=tau_w, prospective=prospective)
        return dynlearn.Recipe(net, always_on(10.0, 0.2, 1, n_0), 32)

    return factory


def ep_variant(
    estimator, eta: float, n_0: float | None, rms=None, homeostasis: float = 0.0
) -> Factory:
    """`ep-continual` with the given estimator (nudging), rate, gain, normalisation and
    output homeostasis."""

    def factory(sizes, key):
        net = EPNetwork(sizes, key, estimator=estimator, eta=eta, homeostasis=homeostasis)
        return dynlearn.Recipe(net, always_on(20.0, 1.0, 1, n_0, rms), 32)

    return factory


def microcircuit_variant(
    activation: str, scale: float, n_0: float | None, rms=None, eta_lateral: float = 0.2
) -> Factory:
    """`microcircuit` with the given activation, forward rates (x the sigmoid defaults 3 and
    1), gain, normalisation and W^PI's rate."""

    def factory(sizes, key):
        eta = tuple(scale * e for e in (3.0,) * (len(sizes) - 2) + (1.0,))
        net = Microcircuit(sizes, key, activation=activation, eta=eta, eta_lateral=eta_lateral)
        net = self_predicting(net)
        return dynlearn.Recipe(net, always_on(2.0, 0.1, 16, n_0, rms), 320)

    return factory


# Per-synapse RMS-normalised plasticity (`dynlearn.RMSNormalised`), the phased twins' Adam
# denominator as synaptic dynamics; for EP the best of a small grid on the validation split
# (3 epochs, seed 0: tau 200 / 2000 / 20000 ms x lr 1e-6..1e-4).
ep_rms = ep_variant(Symmetric(), 0.003, 10_000.0, dynlearn.RMSNormalised(2000.0, 1e-5))


mc_rms = microcircuit_variant("tanh", 1.5, 8000.0, dynlearn.RMSNormalised(2000.0, 1e-2))


def pc_equilibrium(sizes, key) -> dynlearn.Recipe:
    """Rule `pc` with inference to the equilibrium (`SteadyStateInference()`) instead of 20
    Euler steps: the update PC's theory describes."""
    recipe = registry.load("rules", "pc")(sizes, key)
    net = eqx.tree_at(lambda n: n.inference, recipe.learner, SteadyStateInference())
    return recipe._replace(learner=net)


def pal_filtered(sizes, key) -> dynlearn.Recipe:
    """An earlier `pal` rule: forward updates low-pass filtered with tau_lo = 100 ms (and
    that rule's PAL settings, sigma 0.03, eta 10, alpha 1e-4)."""
    k_net, k_fb = jax.random.split(key)
    return always_on_rule(sizes, k_net, PAL(k_fb, sigma=0.03, eta=10.0, alpha=1e-4), tau_lo=100.0)


def le_fp(feedback: Callable[[PRNGKeyArray], AbstractFeedback]) -> Factory:
    """`le` / `le-fa` / `pal` with the microcircuit's forward plasticity
    (`with_forward_plasticity`): forward synapses RMS-normalised per synapse
    (`scope="forward"`: B keeps its own rule), every rate annealed as 1/(1 + n/8000)."""

    def factory(sizes, key):
        k_net, k_fb = jax.random.split(key)
        return with_forward_plasticity(always_on_rule(sizes, k_net, feedback(k_fb)))

    return factory


def le_constant(feedback: Callable[[PRNGKeyArray], AbstractFeedback]) -> Factory:
    """`le` / `le-fa` / `pal` with the circuit's own constant rates (`always_on_rule`'s
    default; the LE and PAL papers')."""

    def factory(sizes, key):
        k_net, k_fb = jax.random.split(key)
        return always_on_rule(sizes, k_net, feedback(k_fb))

    return factory


def pal_feedback(key) -> PAL:
    return PAL(key, **PAL_SETTINGS)


def weight_transport(key) -> WeightTransport:
    return WeightTransport()


def always_on(
    t_pres: float, dt: float, streams: int, n_0: float | None, rms=None
) -> dynlearn.AlwaysOn:
    gain = None if n_0 is None else dynlearn.inverse_time(n_0)
    return dynlearn.AlwaysOn(dynlearn.Presentation(t_pres, dt, streams), gain=gain, rms=rms)


def registered(name: str) -> Factory:
    return lambda sizes, key: registry.load("rules", name)(sizes, key)


# rule -> (phased twin, [(variant label, factory), ...]); the variant labelled "rule: ..." is
# the registered rule.
STUDY: dict[str, tuple[str, list[tuple[str, Factory]]]] = {
    "pc-always-on": (
        "pc",
        [
            ("previous: leaky values, tau_w 1000 ms", pc_variant(1000.0, False, None)),
            ("prospective values", pc_variant(1000.0, True, None)),
            ("prospective, tau_w 30 ms", pc_variant(30.0, True, None)),
            ("leaky, tau_w 5 ms, annealed", pc_variant(5.0, False, 2000.0)),
            ("rule: prospective, tau_w 5 ms, annealed", registered("pc-always-on")),
            ("pc at the inference equilibrium (phased)", pc_equilibrium),
        ],
    ),
    "ep-continual": (
        "ep",
        [
            ("previous: one-sided, eta 0.002", ep_variant(OneSided(), 0.002, None)),
            ("symmetric nudging", ep_variant(Symmetric(), 0.002, None)),
            ("symmetric, eta 0.004", ep_variant(Symmetric(), 0.004, None)),
            ("RMS-normalised plasticity (tau 2000 ms, lr 1e-5), annealed", ep_rms),
            ("symmetric, eta 0.003, annealed", ep_variant(Symmetric(), 0.003, 10_000.0)),
            (
                "... and output homeostasis (1e-4 per ms)",
                ep_variant(Symmetric(), 0.003, 10_000.0, homeostasis=1e-4),
            ),
            ("rule: ... and the gain's n_0 40,000", registered("ep-continual")),
        ],
    ),
    "microcircuit": (
        "fa",
        [
            ("previous: sigmoid, rates 3/1", microcircuit_variant("sigmoid", 1.0, None)),
            ("sigmoid, rates x2, annealed", microcircuit_variant("sigmoid", 2.0, 8000.0)),
            ("tanh", microcircuit_variant("tanh", 1.0, None)),
            ("tanh, rates x1.5, annealed", microcircuit_variant("tanh", 1.5, 8000.0)),
            ("... and RMS-normalised plasticity", mc_rms),
            ("rule: ... and W^PI held at -B", registered("microcircuit")),
        ],
    ),
    "pal": (
        "fa",
        [
            ("previous: forward updates low-passed (100 ms)", pal_filtered),
            ("no filter, constant rates (the previous rule)", le_constant(pal_feedback)),
            ("le-fa: fixed random B, same network", registered("le-fa")),
            ("rule: forward synapses normalised per neuron, annealed", registered("pal")),
            ("le-fa, forward synapses normalised per synapse, annealed", le_fp(FeedbackAlignment)),
            ("pal, forward synapses normalised per synapse, annealed", le_fp(pal_feedback)),
        ],
    ),
    "le": (
        "bp",
        [
            ("constant rates (the previous rule)", le_constant(weight_transport)),
            ("rule: ... normalised per neuron, annealed (as pal)", registered("le")),
            ("forward synapses normalised per synapse, annealed", le_fp(weight_transport)),
        ],
    ),
}


def train(factory: Factory, data, sizes, seeds, epochs) -> tuple[np.ndarray, float]:
    """Validation accuracy (seed, epoch) of a variant, and its seconds (compile included):
    the seeds vmapped, or one by one with NaN after a divergence (`constraints.train`)."""
    recipes = [factory(sizes, jax.random.key(seed)) for seed in seeds]
    tic = time.perf_counter()
    _, accuracy = constraints.train([r.learner for r in recipes], data, seeds, epochs, recipes[0])
    return accuracy, time.perf_counter() - tic


def table(ds: xr.Dataset) -> str:
    final = 100 * ds.accuracy.isel(epoch=-1)
    lines = [
        f"Validation accuracy % after {ds.sizes['epoch']} epochs ({ds.attrs['dataset']}, last "
        f"20% of the training set held out; {ds.attrs['sizes']}; mean ± std over "
        f"{ds.sizes['seed']} seed(s)); gap = variant - phased twin.",
        "",
    ]
    rows = []
    for variant in ds.variant.values:
        rule = str(ds.rule.sel(variant=variant).values)
        twin = str(ds.twin.sel(variant=variant).values)
        acc = final.sel(variant=variant)
        twin_acc = final.sel(variant=f"{twin} (phased twin)").mean()
        label, seconds = str(variant), f"{float(ds.seconds.sel(variant=variant)):.0f}"
        if bool(acc.isnull().all()):
            rows.append([rule, label, "diverged", "", seconds])
            continue
        gap = "" if label.endswith("(phased twin)") else f"{float(acc.mean() - twin_acc):+.1f}"
        text = f"{float(acc.mean()):.1f} ± {float(acc.std()):.1f}"
        if bool(acc.isnull().any()):
            text += f" ({int(acc.isnull().sum())} diverged)"
        rows.append([rule, label, text, gap, seconds])
    return "\n".join(
        lines + markdown_table(["rule", "variant", "accuracy", "gap", "seconds"], rows)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run always-on", description=__doc__)
    parser.add_argument("--rules", nargs="+", choices=list(STUDY), default=None,
                        help=f"default: all of {list(STUDY)} (quick: pal)")  # fmt: skip
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    quick = "smoke run: digits, 1 epoch, 1 seed, rule pal unless --rules"
    parser.add_argument("--quick", action="store_true", help=quick)
    opts = parser.parse_args(argv)
    dynlearn.check_writable(opts.run_dir or "runs", "--run-dir")
    rules = opts.rules or (["pal"] if opts.quick else list(STUDY))
    dataset = "digits" if opts.quick else "mnist5k"
    epochs, seeds = (1, [0]) if opts.quick else (opts.epochs, opts.seeds)
    data = dynlearn.data.load(dataset).validation_split(0.2)
    sizes = [data.n_features, 100, data.n_classes]
    labels, owners, twins, curves, seconds = [], [], [], [], []
    done_twins: set[str] = set()
    for rule in rules:
        twin, variants = STUDY[rule]
        entries = list(variants)
        if twin not in done_twins:
            entries.append((f"{twin} (phased twin)", registered(twin)))
            done_twins.add(twin)
        for label, factory in entries:
            accuracy, sec = train(factory, data, sizes, seeds, epochs)
            print(
                f"{rule}: {label}: {np.round(100 * accuracy[:, -1], 1)} ({sec:.0f} s)", flush=True
            )
            labels.append(label)
            owners.append(rule)
            twins.append(twin)
            curves.append(accuracy)
            seconds.append(sec)
    ds = xr.Dataset(
        {
            "accuracy": (("variant", "seed", "epoch"), np.stack(curves)),
            "seconds": ("variant", np.array(seconds)),
        },
        coords={
            "variant": labels,
            "rule": ("variant", owners),
            "twin": ("variant", twins),
            "seed": seeds,
            "epoch": np.arange(1, epochs + 1),
        },
        attrs={"dataset": data.name, "sizes": "-".join(map(str, sizes))},
    )
    ds = dynlearn.describe(
        ds,
        accuracy=("validation accuracy after each epoch, fraction in [0, 1]", "1"),
        seconds=("wall-clock time of the variant's seeds (compilation, training, evaluation)", "s"),
        variant=("settings of the rule (previous, a fix, the registered rule, the twin)", ""),
        rule=("the always-on rule the variant belongs to", ""),
        twin=("the rule's phased (settle-then-update) twin", ""),
    )
    text = table(ds)
    run_dir = write_results(ds, text, opts.run_dir, "always_on")
    figure(ds, Path(run_dir) / "always_on.png")
    print(text)
    print(f"written to {run_dir}")
    return 0


def figure(ds: xr.Dataset, path: Path) -> None:
    """Final validation accuracy of every variant (mean and std over seeds), one row each."""
    final = dynlearn.plot.percent(ds.accuracy.isel(epoch=-1))
    n = ds.sizes["variant"]
    title = f"always-on rules and their fixes ({ds.attrs['dataset']}, {ds.attrs['sizes']})"
    with dynlearn.plot.figure(path, figsize=(10.0, 1.0 + 0.32 * n), title=title) as ax:
        looks = dynlearn.plot.styles(sorted(set(ds.rule.values.tolist())))
        for i, variant in enumerate(ds.variant.values):
            rule = str(ds.rule.values[i])
            acc = final.sel(variant=variant)
            look = looks[rule] | {"linestyle": "none"}
            ax.errorbar(float(acc.mean()), n - 1 - i, xerr=float(acc.std()), **look)
        ax.set_yticks(
            range(n), [f"{r}: {v}" for r, v in zip(ds.rule.values, ds.variant.values)][::-1]
        )
        ax.set(xlabel="validation accuracy (%)", ylabel="rule: variant")


if __name__ == "__main__":
    raise SystemExit(main())
