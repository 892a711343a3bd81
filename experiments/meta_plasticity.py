"""Experiment: meta-learned plasticity and top-down credit, few-shot on held-out classes.

Shervani-Tabar & Rosenbaum 2023 meta-learn the coefficients of a plasticity rule (feedback
alignment plus candidate local terms, `circuits.meta_plasticity`) by differentiating
through the learning dynamics of an episode, and report that the meta-learned rule learns
better than plain FA in an N-way K-shot setting (EMNIST, 5-way 50-shot in the paper).

Here (the data we have): classes 0-4 of `--dataset` (default mnist5k, its training and
test samples pooled) are the meta-training classes, classes 5-9 the held-out meta-test
classes; an episode shows K support samples of each of the N = 5 classes (a random
assignment of classes to output units per episode), one at a time, to a network with fresh
random weights (784-170-130-100-70-5, the paper's hidden widths), then scores it on Q
query samples per class. Three conditions, meta-trained on the same episodes (Adam 1e-3,
one episode per meta-step, the paper's 600 episodes):
- `fa`: plain FA, only its learning rate is meta-learned (theta = 0);
- `meta-plastic`: the learning rate and the coefficients theta of the candidate terms
  (L1 penalty `--l1` on theta);
- `tdca`: top-down credit assignment — the hidden layers' credits come from a top-down
  network (starting as FA's feedback) whose weights and the learning rate are
  meta-learned (`circuits.meta_plasticity.TopDownCredit`).
All are then tested on the same `--test-episodes` held-out episodes.

Written to the run folder: `meta_plasticity.nc`, `.md` and `.png` (meta-training query
accuracy; theta during meta-training).

Run: `python -m experiments.meta_plasticity` (or `dynlearn run meta-plasticity`); `--quick`
for a smoke run (a small network, 3 shots, 10 meta-training and 4 test episodes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

import dynlearn
from circuits.meta_plasticity import TERMS, PlasticityRule, TopDownCredit, init_weights, meta_loss
from experiments._options import non_negative, non_negative_int, positive, positive_int
from experiments._timing import markdown_table, write_results

WAYS = 5
CONDITIONS = ["fa", "meta-plastic", "tdca"]
TRAIN_CLASSES, TEST_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


def class_pools(data, classes) -> list[np.ndarray]:
    """Samples of each class, training and test splits pooled."""
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    return [x[y == c] for c in classes]


def sample_episodes(pools, n: int, shots: int, queries: int, rng) -> tuple:
    """`n` episodes: support `(n, WAYS * shots, d)` (shuffled), query `(n, WAYS * queries,
    d)`, one-hot targets; each episode maps the classes to output units at random."""
    eye = np.eye(WAYS, dtype=np.float32)
    xs, ys, xq, yq = [], [], [], []
    for _ in range(n):
        units = rng.permutation(WAYS)
        support, query = [], []
        for pool, unit in zip(pools, units):
            picks = rng.choice(len(pool), shots + queries, replace=False)
            support += [(pool[i], unit) for i in picks[:shots]]
            query += [(pool[i], unit) for i in picks[shots:]]
        order = rng.permutation(len(support))
        xs.append(np.stack([support[i][0] for i in order]))
        ys.append(eye[[support[i][1] for i in order]])
        xq.append(np.stack([q[0] for q in query]))
        yq.append(eye[[q[1] for q in query]])
    return tuple(jnp.asarray(np.stack(a)) for a in (xs, ys, xq, yq))


@eqx.filter_jit
def meta_step(dynamic, static, sizes, optimizer, opt_state, l1, key, episode):
    """One meta-step on one episode: `optimizer` on the meta-parameters `dynamic` (the rule
    is `eqx.combine(dynamic, static)`) of the query loss after the episode plus `l1` times
    the rule's penalty; returns (dynamic, opt_state, query accuracy)."""
    xs, ys, xq, yq = episode

    def objective(dynamic):
        rule = eqx.combine(dynamic, static)
        weights = init_weights(sizes, key)
        loss, accuracy = meta_loss(rule, weights, (xs, ys), (xq, yq))
        return loss + l1 * rule.penalty(), accuracy

    (_, accuracy), grads = jax.value_and_grad(objective, has_aux=True)(dynamic)
    updates, opt_state = optimizer.update(grads, opt_state, dynamic)
    return eqx.apply_updates(dynamic, updates), opt_state, accuracy


def meta_train(rule, spec, sizes, episodes, keys, l1: float, optimizer):
    """`optimizer` on the leaves of `rule` that `spec` selects, one episode per step; per
    step the query accuracy and, for a `PlasticityRule`, theta (NaN after a diverged
    episode, and for other rules)."""
    dynamic, static = eqx.partition(rule, spec)
    opt_state = optimizer.init(dynamic)
    accuracy = np.full(len(keys), np.nan)
    thetas = np.full((len(keys), len(TERMS)), np.nan)
    for i, key in enumerate(keys):
        episode = tuple(a[i] for a in episodes)
        try:
            dynamic, opt_state, acc = meta_step(
                dynamic, static, tuple(sizes), optimizer, opt_state, l1, key, episode
            )
        except eqx.EquinoxRuntimeError as error:  # the episode's weights ran away
            reason = [line for line in str(error).splitlines() if "simulate:" in line]
            print(f"meta-training stopped at episode {i + 1}: {(reason or ['diverged'])[0]}")
            break
        accuracy[i] = float(acc)
        if isinstance(rule, PlasticityRule):
            thetas[i] = np.asarray(dynamic.theta)
    return eqx.combine(dynamic, static), accuracy, thetas


@eqx.filter_jit
def episode_accuracies(rule, sizes, keys, episodes):
    """Query accuracy of each episode after it (vmapped over episodes)."""

    def accuracy(key, xs, ys, xq, yq):
        return meta_loss(rule, init_weights(sizes, key), (xs, ys), (xq, yq))[1]

    return jax.vmap(accuracy)(keys, *episodes)


def test(rule, sizes, episodes, keys) -> np.ndarray:
    """Query accuracy of each held-out episode."""
    return np.asarray(episode_accuracies(rule, tuple(sizes), keys, episodes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run meta-plasticity", description=__doc__)
    parser.add_argument(
        "--dataset", default="mnist5k", choices=["mnist5k", "mnist", "fashion_mnist"]
    )
    parser.add_argument("--shots", type=positive_int, default=50)
    parser.add_argument("--queries", type=positive_int, default=10)
    parser.add_argument("--episodes", type=positive_int, default=600)
    parser.add_argument("--test-episodes", type=positive_int, default=100)
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[170, 130, 100, 70])
    parser.add_argument("--lr", type=positive, default=3e-2, help="initial FA learning rate")
    parser.add_argument("--meta-lr", type=non_negative, default=1e-3)
    parser.add_argument("--l1", type=non_negative, default=1e-4)
    parser.add_argument(
        "--conditions", nargs="+", choices=CONDITIONS, default=CONDITIONS, help="default: all"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run (see above)")
    opts = parser.parse_args(argv)
    dynlearn.check_writable(opts.run_dir or "runs", "--run-dir")
    if opts.quick:
        opts.shots, opts.queries, opts.episodes, opts.test_episodes = 3, 4, 10, 4
        opts.hidden = [16]
    data = dynlearn.data.load(opts.dataset)
    sizes = [data.n_features, *opts.hidden, WAYS]
    rng = np.random.default_rng(opts.seed)
    train_pools, test_pools = class_pools(data, TRAIN_CLASSES), class_pools(data, TEST_CLASSES)
    train_episodes = sample_episodes(train_pools, opts.episodes, opts.shots, opts.queries, rng)
    test_episodes = sample_episodes(test_pools, opts.test_episodes, opts.shots, opts.queries, rng)
    key_rule, key_train, key_test = jax.random.split(jax.random.key(opts.seed), 3)
    train_keys = jax.random.split(key_train, opts.episodes)
    test_keys = jax.random.split(key_test, opts.test_episodes)
    rule = PlasticityRule(sizes, key_rule, log_lr=float(np.log(opts.lr)))

    optimizer = optax.adam(opts.meta_lr)
    tdca = TopDownCredit(sizes, key_rule, log_lr=float(np.log(opts.lr)))  # V starts as B
    conditions = {
        "fa": (rule, rule.meta_parameters(learn_terms=False)),
        "meta-plastic": (rule, rule.meta_parameters()),
        "tdca": (tdca, tdca.meta_parameters()),
    }
    conditions = {name: conditions[name] for name in CONDITIONS if name in opts.conditions}
    curves, thetas, tested, lrs, seconds, finals, completed = [], [], [], [], [], [], []
    for name, (start_rule, spec) in conditions.items():
        start = time.perf_counter()
        learned, curve, theta = meta_train(
            start_rule, spec, sizes, train_episodes, train_keys, opts.l1, optimizer
        )
        accuracy = test(learned, sizes, test_episodes, test_keys)
        seconds.append(time.perf_counter() - start)
        curves.append(curve)
        thetas.append(theta)
        tested.append(accuracy)
        lrs.append(float(jnp.exp(learned.log_lr)))
        final = getattr(learned, "theta", jnp.full(len(TERMS), jnp.nan))
        finals.append(np.asarray(final))
        completed.append(int(np.sum(np.isfinite(curve))))
        print(
            f"{name:>13}: held-out {100 * accuracy.mean():.2f} ± "
            f"{100 * accuracy.std() / np.sqrt(len(accuracy)):.2f}% (lr {lrs[-1]:.3g}, "
            + ("" if np.isnan(finals[-1]).all() else f"theta {np.round(finals[-1], 4)}, ")
            + f"{seconds[-1]:.0f} s)",
            flush=True,
        )
    untrained = test(rule, sizes, test_episodes, test_keys)
    ds = xr.Dataset(
        {
            "train_query_accuracy": (("condition", "episode"), np.stack(curves)),
            "theta": (("condition", "episode", "term"), np.stack(thetas)),
            "test_accuracy": (("condition", "test_episode"), np.stack(tested)),
            "initial_test_accuracy": (("test_episode",), untrained),
            "learning_rate": (("condition",), np.array(lrs)),
            "final_theta": (("condition", "term"), np.stack(finals)),
            "meta_steps": (("condition",), np.array(completed)),
            "seconds": (("condition",), np.array(seconds)),
        },
        coords={
            "condition": list(conditions),
            "episode": np.arange(1, opts.episodes + 1),
            "test_episode": np.arange(opts.test_episodes),
            "term": list(TERMS),
        },
        attrs={
            "dataset": opts.dataset,
            "sizes": "-".join(map(str, sizes)),
            "ways": WAYS,
            "shots": opts.shots,
            "queries": opts.queries,
            "meta_training_classes": "0 1 2 3 4",
            "held_out_classes": "5 6 7 8 9",
            "l1": opts.l1,
            "seed": opts.seed,
        },
    )
    ds = dynlearn.describe(
        ds,
        train_query_accuracy=("query accuracy of each meta-training episode", "1"),
        theta=(
            "coefficients of the candidate plasticity terms during meta-training (relative "
            "to the FA term; NaN after a diverged episode)",
            "1",
        ),
        test_accuracy=("query accuracy of each held-out episode after meta-training", "1"),
        initial_test_accuracy=(
            "query accuracy of each held-out episode with the rule before meta-training "
            "(plain FA at the initial learning rate)",
            "1",
        ),
        learning_rate=("meta-learned learning rate of the FA term, exp(log_lr)", "1"),
        final_theta=("coefficients after meta-training (relative to the FA term)", "1"),
        meta_steps=("meta-training episodes completed (fewer: an episode diverged)", "1"),
        seconds=("wall-clock time of meta-training and testing", "s"),
    )
    text = table(ds)
    run_dir = write_results(ds, text, opts.run_dir, "meta_plasticity")
    plot(ds, Path(run_dir) / "meta_plasticity.png")
    print(text)
    print(f"written to {run_dir}")
    return 0


def table(ds: xr.Dataset) -> str:
    n = ds.sizes["test_episode"]
    lines = [
        f"{ds.attrs['dataset']}, {ds.attrs['sizes']}, {ds.attrs['ways']}-way "
        f"{ds.attrs['shots']}-shot, meta-trained on classes {ds.attrs['meta_training_classes']} "
        f"({ds.sizes['episode']} episodes), tested on {n} episodes of the held-out classes "
        f"{ds.attrs['held_out_classes']}: query accuracy % (mean ± s.e.m.)",
        "",
    ]
    rows = []
    before = 100 * ds.initial_test_accuracy.values
    rows.append(
        [
            "FA before meta-training",
            f"{before.mean():.2f} ± {before.std() / np.sqrt(n):.2f}",
            "—",
            "—",
            "—",
        ]
    )
    for c in ds.condition.values:
        acc = 100 * ds.test_accuracy.sel(condition=c).values
        theta = ds.final_theta.sel(condition=c).values
        rows.append(
            [
                str(c),
                f"{acc.mean():.2f} ± {acc.std() / np.sqrt(n):.2f}",
                f"{float(ds.learning_rate.sel(condition=c)):.3g}",
                "—" if np.isnan(theta).all() else ", ".join(f"{t:+.3f}" for t in theta),
                str(int(ds.meta_steps.sel(condition=c))),
            ]
        )
    theta = "theta (" + "; ".join(TERMS) + ")"
    columns = ["rule", "held-out accuracy", "learning rate", theta, "meta-steps"]
    return "\n".join(lines + markdown_table(columns, rows))


def plot(ds: xr.Dataset, path: Path) -> None:
    title = f"meta-learned plasticity ({ds.attrs['dataset']}, {ds.attrs['sizes']})"
    looks = dynlearn.plot.styles(list(ds.condition.values))
    with dynlearn.plot.figure(path, figsize=(10, 3.6), title=title) as ax:
        grid = ax.figure.add_gridspec(1, 2)
        ax.set_subplotspec(grid[0])
        ax2 = ax.figure.add_subplot(grid[1])
        window = max(1, ds.sizes["episode"] // 20)
        for c in ds.condition.values:
            curve = dynlearn.plot.percent(ds.train_query_accuracy.sel(condition=c))
            smooth = curve.rolling(episode=window, min_periods=1).mean()
            ax.plot(ds.episode.values, smooth.values, **looks[c], label=c)
        ax.set(xlabel="meta-training episode", ylabel=f"query accuracy (%, mean of {window})")
        ax.legend(fontsize="small")
        if "meta-plastic" in ds.condition.values:
            theta = ds.theta.sel(condition="meta-plastic")
            for term in ds.term.values:
                ax2.plot(ds.episode.values, theta.sel(term=term).values, label=str(term))
            ax2.set(xlabel="meta-training episode", ylabel="theta", title="meta-plastic: theta")
            ax2.legend(fontsize="small")
        else:
            ax2.set_axis_off()


if __name__ == "__main__":
    sys.exit(main())
