"""Generalised PC vs Gaussian PC vs BP on a one-block transformer (Pinchetti et al. 2022).

Task: associative recall, generated in code. A sequence holds `n_pairs` (key, value) tokens
(distinct keys from `n_symbols`, values from `n_symbols`, one-hot, as one token each) and a
query token holding one of the keys; the class is the value paired with that key. A single
attention read-out at the query token solves it, and nothing simpler does.

Network (`circuits.pc.generalised.toy_transformer`): attention of the query token over the
sequence, attended value, an MLP layer and a class read-out, trained three ways from the
same initial parameters:
- `bp`: backprop on the cross-entropy (the reference);
- `generalised-pc`: PC with a categorical attention node and a categorical output (energy:
  KL divergences; the clamped output's KL is the cross-entropy);
- `gaussian-pc`: the same graph under Gaussian PC: attention and output are Gaussian nodes
  whose means are the softmax probabilities (squared errors).
PC: 20 Euler steps of 0.1 with the output clamped, then -dF/dtheta; all with Adam 1e-3,
batches of 32. Also measured: the cosine of each PC update with BP's cross-entropy
gradient at initialisation (a batch of 256), the approximation the rule makes.

Writes `results.nc` (dims rule, seed, epoch), `curves.png` (test accuracy and test
cross-entropy per epoch: the task's loss, whatever the output's family) and `table.md`.

Run: `dynlearn run pc-transformer [--seeds 3 --epochs 10]`; `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import xarray as xr

import dynlearn
from circuits.pc.generalised import toy_transformer
from experiments._options import positive_int

RULES = ("bp", "generalised-pc", "gaussian-pc")
BATCH = 32


def associative_recall(
    n: int, *, n_pairs: int = 8, n_symbols: int = 32, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`n` sequences, flat `(n, (n_pairs + 1) * (2 n_symbols + 1))`, and their classes.

    Token features: key one-hot (n_symbols), value one-hot (n_symbols), query flag (1)."""
    rng = np.random.default_rng(seed)
    tokens, features = n_pairs + 1, 2 * n_symbols + 1
    x = np.zeros((n, tokens, features), np.float32)
    keys = np.argsort(rng.random((n, n_symbols)), axis=1)[:, :n_pairs]
    values = rng.integers(0, n_symbols, (n, n_pairs))
    rows, slots = np.arange(n)[:, None], np.arange(n_pairs)[None]
    x[rows, slots, keys] = 1
    x[rows, slots, n_symbols + values] = 1
    asked = rng.integers(0, n_pairs, n)
    x[np.arange(n), -1, keys[np.arange(n), asked]] = 1
    x[:, -1, -1] = 1
    return x.reshape(n, -1), values[np.arange(n), asked].astype(np.int32)


def recall_data(n_train: int, n_test: int, n_pairs: int, n_symbols: int) -> dynlearn.data.Data:
    x_train, y_train = associative_recall(n_train, n_pairs=n_pairs, n_symbols=n_symbols, seed=0)
    x_test, y_test = associative_recall(n_test, n_pairs=n_pairs, n_symbols=n_symbols, seed=1)
    name = f"recall-{n_pairs}x{n_symbols}"
    return dynlearn.data.Data(x_train, y_train, x_test, y_test, n_symbols, name)


def make(rule: str, n_pairs: int, n_symbols: int, seed: int):
    if rule not in RULES:
        raise ValueError(f"rule: unknown {rule!r}; known: {list(RULES)}.")
    learning = "backprop" if rule == "bp" else "pc"
    return toy_transformer(
        n_pairs + 1,
        2 * n_symbols + 1,
        n_symbols,
        jax.random.key(seed),
        gaussian=rule == "gaussian-pc",
        learning=learning,
    )


def cross_entropy(net, x, labels) -> float:
    """Mean -log p(label) of the output's probabilities (both output forms hold them)."""
    p = np.asarray(net.predict(jnp.asarray(x)))
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-12))))


def _flat(grads) -> np.ndarray:
    leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    return np.concatenate([np.ravel(leaf) for leaf in leaves])


def cosine_with_bp(rule: str, data, n_pairs: int, n_symbols: int, seed: int) -> float:
    """Cosine of the rule's first update with BP's cross-entropy gradient (same init)."""
    x = data.x_train[:256]
    y = jax.nn.one_hot(data.y_train[:256], n_symbols)
    bp, _ = make("bp", n_pairs, n_symbols, seed).updates(x, y, jax.random.key(0))
    got, _ = make(rule, n_pairs, n_symbols, seed).updates(x, y, jax.random.key(0))
    a, b = _flat(got), _flat(bp)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dynlearn run pc-transformer", description=__doc__.splitlines()[0]
    )
    p.add_argument("--rules", nargs="*", default=list(RULES), choices=RULES)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--seeds", type=positive_int, default=3)
    p.add_argument("--pairs", type=positive_int, default=8, help="(key, value) tokens")
    p.add_argument("--symbols", type=positive_int, default=32, help="keys = values = classes")
    p.add_argument("--n-train", type=positive_int, default=4000)
    p.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 1 epoch, 256 samples")
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    if opts.quick:
        opts.seeds, opts.epochs, opts.n_train, opts.pairs, opts.symbols = 1, 1, 256, 4, 8
    run_dir = opts.run_dir or dynlearn.run_folder(Path("runs"), "pc-transformer")
    data = recall_data(opts.n_train, 128 if opts.quick else 2000, opts.pairs, opts.symbols)
    shape = (len(opts.rules), opts.seeds, opts.epochs)
    accuracy, loss, train, test_ce = (np.full(shape, np.nan) for _ in range(4))
    cosine = np.full(shape[:2], np.nan)
    for i, rule in enumerate(opts.rules):
        for seed in range(opts.seeds):
            net = make(rule, opts.pairs, opts.symbols, seed)

            def record(epoch, learner, _, at=(i, seed)):
                test_ce[at][epoch - 1] = cross_entropy(learner, data.x_test, data.y_test)

            result = dynlearn.fit(
                net,
                data,
                dynlearn.SettleThenUpdate(optax.adam(1e-3)),
                epochs=opts.epochs,
                batch_size=BATCH,
                seed=seed,
                progress=False,
                on_epoch=record,
            )
            accuracy[i, seed] = result.metrics.test_accuracy.values
            loss[i, seed] = result.metrics.train_loss.values
            train[i, seed] = result.metrics.train_accuracy.values
            cosine[i, seed] = cosine_with_bp(rule, data, opts.pairs, opts.symbols, seed)
            print(f"{rule} seed {seed}: test accuracy {accuracy[i, seed, -1]:.3f}", flush=True)
    ds = xr.Dataset(
        {
            "test_accuracy": (("rule", "seed", "epoch"), accuracy),
            "train_loss": (("rule", "seed", "epoch"), loss),
            "train_accuracy": (("rule", "seed", "epoch"), train),
            "test_cross_entropy": (("rule", "seed", "epoch"), test_ce),
            "cosine_with_bp": (("rule", "seed"), cosine),
        },
        coords={
            "rule": list(opts.rules),
            "seed": np.arange(opts.seeds),
            "epoch": np.arange(1, opts.epochs + 1),
        },
        attrs={"dataset": data.name, "n_train": opts.n_train},
    )
    ds = dynlearn.describe(
        ds,
        test_accuracy=("test accuracy after each epoch", "1"),
        train_loss=("the output family's KL to the targets, training batches' mean", "nat"),
        train_accuracy=("training accuracy during each epoch", "1"),
        test_cross_entropy=("test cross-entropy of the output probabilities", "nat"),
        cosine_with_bp=("cosine of the first update with BP's cross-entropy gradient", "1"),
    )
    dynlearn.save_netcdf(ds, run_dir / "results.nc")
    plot(ds, run_dir / "curves.png")
    table = summary(ds)
    (run_dir / "table.md").write_text(table + "\n")
    print(table)
    print(f"results in {run_dir}")
    return 0


def summary(ds: xr.Dataset) -> str:
    lines = [
        f"{ds.attrs['dataset']}, {ds.sizes['epoch']} epochs, {ds.sizes['seed']} seeds "
        "(mean ± std over seeds)",
        "",
        "| rule | test accuracy % (last epoch) | at mid-training | test cross-entropy (last) | "
        "cosine of the first update with BP |",
        "| --- | --- | --- | --- | --- |",
    ]
    mid = ds.sizes["epoch"] // 2 - 1
    for rule in ds.rule.values:
        acc = 100 * ds.test_accuracy.sel(rule=rule)
        last, middle = acc.isel(epoch=-1), acc.isel(epoch=max(mid, 0))
        cos = ds.cosine_with_bp.sel(rule=rule)
        ce = ds.test_cross_entropy.sel(rule=rule).isel(epoch=-1)
        lines.append(
            f"| {rule} | {float(last.mean()):.1f} ± {float(last.std()):.1f} | "
            f"{float(middle.mean()):.1f} ± {float(middle.std()):.1f} (epoch {max(mid, 0) + 1}) | "
            f"{float(ce.mean()):.3f} ± {float(ce.std()):.3f} | "
            f"{float(cos.mean()):.3f} ± {float(cos.std()):.3f} |"
        )
    return "\n".join(lines)


def plot(ds: xr.Dataset, path) -> None:
    """Test accuracy and test cross-entropy (the task's loss, for every rule) per epoch,
    mean ± std over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    looks = dynlearn.plot.styles([str(r) for r in ds.rule.values])
    for rule in ds.rule.values:
        for ax, name in zip(axes, ("test_accuracy", "test_cross_entropy")):
            values = ds[name].sel(rule=rule)
            mean, std = values.mean("seed"), values.std("seed")
            ax.plot(ds.epoch, mean, **looks[str(rule)], label=str(rule))
            ax.fill_between(ds.epoch, mean - std, mean + std, alpha=0.2)
    axes[0].set(xlabel="epoch", ylabel="test accuracy", title="accuracy")
    axes[1].set(xlabel="epoch", ylabel="test cross-entropy (nat)", title="loss")
    axes[0].legend(fontsize="small")
    fig.suptitle(
        f"one-block transformer on {ds.attrs['dataset']} (mean ± std, {ds.sizes['seed']} seeds)"
    )
    dynlearn.plot.finish(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
