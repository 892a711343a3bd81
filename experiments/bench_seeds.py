"""Seeds benchmark: several seeds of a rule trained as one vmapped program vs one by one.

Workload: registered rules (default `bp`, `ep`, `le`: settle-then-update without and with
settling dynamics, and always-on), 784-100-10, the 4,000 `mnist5k` training samples, 2
epochs, 3 seeds. Timed: `dynlearn.fit_seeds` on the stack vs `dynlearn.fit` per seed (same
batches, same keys: the results agree, printed), both compiled beforehand, fastest of
`--repeats` interleaved runs. Printed: seconds and the ratio vmapped / sequential (< 1:
vmap wins; on a 2-core CPU the gain is in dispatch and small matrices, on a GPU it is the
point).

Run: `python -m experiments.bench_seeds` (or `dynlearn bench seeds`); `--quick` for a smoke
run (Yin-Yang with 960 training samples, 4-100-3, 1 epoch, 1 run).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

import dynlearn
from dynlearn import registry
from experiments._timing import quick_subset, quiet_fit


def timed(fn) -> tuple[float, object]:
    """Seconds of `fn()` (both trainings end by evaluating test accuracy, which waits for
    the device) and its result."""
    tic = time.perf_counter()
    out = fn()
    return time.perf_counter() - tic, out


def bench_rule(rule: str, data, sizes, seeds, epochs: int, repeats: int) -> dict:
    factory = registry.load("rules", rule)
    recipes = [factory(sizes, jax.random.key(seed)) for seed in seeds]
    learners = [recipe.learner for recipe in recipes]
    mode, batch_size = recipes[0].mode, recipes[0].batch_size  # one mode object: no recompiles
    stacked = dynlearn.stack(learners)

    def vmapped():
        return dynlearn.fit_seeds(
            stacked, data, mode, seeds=seeds, epochs=epochs, batch_size=batch_size
        )

    def sequential():
        return [
            quiet_fit(learner, data, mode, epochs=epochs, batch_size=batch_size, seed=seed)
            for learner, seed in zip(learners, seeds)
        ]

    vmapped(), sequential()  # compile both
    t_vmap, t_seq = [], []
    for _ in range(repeats):
        seconds, (_, accuracy) = timed(vmapped)
        t_vmap.append(seconds)
        seconds, results = timed(sequential)
        t_seq.append(seconds)
    alone = np.stack([r.metrics.test_accuracy.values for r in results])
    return {
        "rule": rule,
        "vmapped_s": min(t_vmap),
        "sequential_s": min(t_seq),
        "max_accuracy_difference": float(np.max(np.abs(accuracy - alone))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn bench seeds", description=__doc__)
    parser.add_argument("--rules", nargs="+", default=["bp", "ep", "le"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 960 Yin-Yang samples, 1 epoch, 1 run"
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.epochs, opts.repeats = 1, 1
    name = "yinyang" if opts.quick else "mnist5k"
    data = dynlearn.data.load(name, **quick_subset(name, opts.quick))
    sizes = [data.n_features, 100, data.n_classes]
    seeds = list(range(opts.seeds))
    print(
        f"{len(seeds)} seeds, {opts.epochs} epoch(s) on {len(data.x_train)} {name} samples, "
        f"{'-'.join(map(str, sizes))}; fastest of {opts.repeats} interleaved run(s); "
        f"device {jax.devices()[0]}"
    )
    print(f"{'rule':<14}{'vmapped s':>11}{'sequential s':>14}{'ratio':>8}{'max |d acc|':>13}")
    for rule in opts.rules:
        row = bench_rule(rule, data, sizes, seeds, opts.epochs, opts.repeats)
        ratio = row["vmapped_s"] / row["sequential_s"]
        print(
            f"{rule:<14}{row['vmapped_s']:>11.2f}{row['sequential_s']:>14.2f}{ratio:>8.2f}"
            f"{row['max_accuracy_difference']:>13.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
