"""Device benchmark: what simulating analog devices (`dynlearn.hardware`) costs a training
run, per preset, against the same run without a device.

Workload: registered rules (default `bp`, settle-then-update: one write of pulses per batch;
`le` and `pc-always-on`, always-on: the devices' response at every Euler step, and with
pulses the distance each device travels), 784-100-10, the 4,000 `mnist5k` training
samples, 1 epoch, seed 0. Timed: `dynlearn.fit` on each of `hardware.PRESETS` and without
a device, each compiled beforehand, fastest of `--repeats` interleaved runs. Printed:
seconds, the ratio to the run without a device, and the test accuracy (the devices change
it: that is the study's subject, `dynlearn run hardware`).

Run: `python -m experiments.bench_hardware` (or `dynlearn bench hardware`); `--quick` for
a smoke run (Yin-Yang with 960 training samples, 4-100-3, `le` on the stochastic RRAM
only, 1 run).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax

import dynlearn
from dynlearn import hardware, registry
from experiments._timing import quick_subset, quiet_fit

PRESETS = ("none", *hardware.PRESETS)


def bench_rule(rule: str, data, sizes, epochs: int, repeats: int, presets) -> list[dict]:
    """One row per preset ("none" first): fastest seconds of `repeats` runs and the test
    accuracy."""
    presets = ["none", *(p for p in presets if p != "none")]
    recipe = registry.load("rules", rule)(sizes, jax.random.key(0))
    learners = {
        name: recipe.learner
        if name == "none"
        else hardware.on_device(recipe.learner, hardware.PRESETS[name], seed=0)
        for name in presets
    }

    def run(name):
        tic = time.perf_counter()
        result = quiet_fit(
            learners[name], data, recipe.mode, epochs=epochs, batch_size=recipe.batch_size, seed=0
        )
        return time.perf_counter() - tic, float(result.metrics.test_accuracy[-1])

    for name in presets:  # compile each
        run(name)
    seconds = {name: [] for name in presets}
    accuracy = {}
    for _ in range(repeats):
        for name in presets:
            s, accuracy[name] = run(name)
            seconds[name].append(s)
    return [{"preset": p, "seconds": min(seconds[p]), "accuracy": accuracy[p]} for p in presets]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn bench hardware", description=__doc__)
    parser.add_argument("--rules", nargs="+", default=["bp", "le", "pc-always-on"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 960 Yin-Yang samples, le, the stochastic RRAM only, 1 run",
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.rules, opts.repeats, opts.presets = ["le"], 1, ["rram-ag-a-si-stochastic"]
    name = "yinyang" if opts.quick else "mnist5k"
    data = dynlearn.data.load(name, **quick_subset(name, opts.quick))
    sizes = [data.n_features, 100, data.n_classes]
    print(
        f"{opts.epochs} epoch(s) on {len(data.x_train)} {name} samples, "
        f"{'-'.join(map(str, sizes))}, seed 0; fastest of {opts.repeats} interleaved run(s); "
        f"device {jax.devices()[0]}"
    )
    print(f"{'rule':<14}{'preset':<25}{'seconds':>9}{'ratio to none':>15}{'accuracy':>10}")
    for rule in opts.rules:
        rows = bench_rule(rule, data, sizes, opts.epochs, opts.repeats, opts.presets)
        base = rows[0]["seconds"]
        for row in rows:
            print(
                f"{rule:<14}{row['preset']:<25}{row['seconds']:>9.2f}"
                f"{row['seconds'] / base:>15.2f}{row['accuracy']:>10.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
