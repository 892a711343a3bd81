"""Experiment: spiking networks — a feedback SNN trained by implicit differentiation (IDE),
a sparse-coding dictionary learned with the LCA on MNIST patches, and a layered LIF network
trained by desire backpropagation.

1. IDE (`circuits.feedback_snn`, Xiao et al. 2021): a 784-H(+H recurrent)-10 feedback SNN
   of integrate-and-fire neurons, 30 time steps, trained on `--dataset` by implicit
   differentiation on its rates' equilibrium (rule `ide`: Adam 1e-3, batches of 32) for
   `--epochs`; the test accuracy (from the spiking network's rates) per epoch, next to the
   paper's 90.04% on Fashion-MNIST (784-400, 100 epochs, other settings: see PAPER).
2. LCA dictionary (`circuits.lca`, Rozell et al. 2008; Olshausen & Field's update):
   `--atoms` unit-norm atoms learned from 8x8 patches of MNIST digits (patches with some ink),
   codes settled by the rate LCA (lambda `--lam`), SGD on `(x - Phi a) a^T`; the held-out
   patches' relative reconstruction error `|x - Phi a|^2 / |x|^2` and the fraction of
   non-zero coefficients before and after learning, and the learned atoms as images.
3. Desire backpropagation (`circuits.desire`, Gerlinghoff et al. 2023; rule `desire`): a
   784-`--desire-hidden`-10 LIF network (default two hidden layers, 400 and 200; the
   paper's 1600 and 800), trained on `--dataset` for `--desire-epochs`; the test accuracy
   per epoch, next to the paper's 98.41% (MNIST) / 87.56% (Fashion-MNIST) after 150 epochs.

4. ST-RSBP (`circuits.st_rsbp`, Zhang & Li 2019; rule `st-rsbp`): a 784-R`--st-rsbp-hidden`
   -10 recurrent LIF network (default 400 recurrent neurons, the paper's Fashion-MNIST
   network) trained by spike-train level backprop for `--st-rsbp-epochs` (Adam, the rule's
   1e-2 or `--st-rsbp-lr`); the test accuracy per epoch (the paper's figures could not be
   read here: see the module).

`--parts` chooses which of the four run (default ide, lca, desire: ST-RSBP at 400 recurrent
neurons takes about half an hour per epoch on one CPU core). Written to the run folder:
`spiking.nc`, `spiking.md`, `spiking.png` (learning curves and reconstruction error),
`spiking-dictionary.png` (the atoms).

Run: `python -m experiments.spiking --dataset fashion_mnist` (or `dynlearn run spiking`);
`--quick` for a smoke run (digits, 16 hidden neurons, 1 epoch; 400 patches, 16 atoms;
desire 64-16-16-10; ST-RSBP 64-R16-10; every part unless `--parts` says otherwise).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

import dynlearn
from circuits.desire import rule as desire_rule
from circuits.feedback_snn import rule as ide_rule
from circuits.lca import SparseCoder
from circuits.st_rsbp import rule as st_rsbp_rule
from experiments._options import positive, positive_int
from experiments._timing import markdown_table, write_results

# Xiao et al. 2021, IDE feedback SNN 784-400 (+400 feedback) with IF neurons, 100 epochs
# (T = 5, V_th 2, SGD 0.05 + momentum, weight decay, dropout: other settings than rule `ide`)
PAPER = {"fashion_mnist": 90.04}
# Gerlinghoff et al. 2023, desire backprop 784-1600-800-10, 150 epochs, one sample per update
PAPER_DESIRE = {"mnist": 98.41, "fashion_mnist": 87.56}
PATCH = 8
PARTS = ("ide", "lca", "desire", "st-rsbp")


def train_rule(
    rule, data, hidden: list[int], epochs: int, seed: int, mode=None
) -> tuple[np.ndarray, float]:
    """Test accuracy per epoch of a rule's recipe (or its learner in `mode`), and the
    seconds it took."""
    sizes = [data.n_features, *hidden, data.n_classes]
    learner, rule_mode, batch = rule(sizes, jax.random.key(seed))
    mode = mode or rule_mode
    start = time.perf_counter()
    result = dynlearn.fit(learner, data, mode, epochs=epochs, batch_size=batch, seed=seed)
    return result.metrics.test_accuracy.values, time.perf_counter() - start


def patches(images: np.ndarray, count: int, rng) -> np.ndarray:
    """`count` random 8x8 patches (flattened) with some ink (norm > 1) from (n, 28, 28)
    images."""
    out = []
    while len(out) < count:
        image = images[rng.integers(len(images))]
        row, col = rng.integers(0, 28 - PATCH + 1, 2)
        patch = image[row : row + PATCH, col : col + PATCH].ravel()
        if np.linalg.norm(patch) > 1.0:
            out.append(patch)
    return np.stack(out).astype(np.float32)


def quality(coder: SparseCoder, x: jax.Array) -> tuple[float, float]:
    """Relative reconstruction error and fraction of non-zero coefficients."""
    codes = coder.code(x)
    error = jnp.sum((x - codes @ coder.phi.T) ** 2) / jnp.sum(x**2)
    return float(error), float(jnp.mean(codes != 0))


def learn_dictionary(train, test, atoms: int, lam: float, epochs: int, lr: float, seed: int):
    """SGD on the dictionary from settled LCA codes; (coder, errors, sparsities) with the
    held-out quality before learning and after each epoch."""
    coder = SparseCoder(PATCH * PATCH, atoms, jax.random.key(seed), lam=lam)
    optimizer = optax.sgd(lr)
    state = optimizer.init(coder.phi)

    @jax.jit
    def step(phi, state, x):
        current = coder.with_dictionary(phi)
        update, state = optimizer.update(current.dictionary_update(x, current.code(x)), state)
        return optax.apply_updates(phi, update), state

    errors, sparsities = [], []
    for epoch in range(epochs + 1):
        if epoch:
            order = np.random.default_rng(seed + epoch).permutation(len(train))
            phi = coder.phi
            for start in range(0, len(train) - 63, 64):
                phi, state = step(phi, state, jnp.asarray(train[order[start : start + 64]]))
            coder = coder.with_dictionary(phi)
        error, sparsity = quality(coder, jnp.asarray(test))
        errors.append(error)
        sparsities.append(sparsity)
    return coder, np.array(errors), np.array(sparsities)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run spiking", description=__doc__)
    parser.add_argument("--dataset", default="fashion_mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS[:3]))
    parser.add_argument("--hidden", type=positive_int, default=400, help="IDE's hidden layer")
    parser.add_argument("--epochs", type=positive_int, default=5, help="IDE's epochs")
    parser.add_argument("--patches", type=positive_int, default=20000)
    parser.add_argument("--atoms", type=positive_int, default=128)
    parser.add_argument("--lam", type=positive, default=0.3)
    parser.add_argument("--lca-epochs", type=positive_int, default=3)
    parser.add_argument("--lca-lr", type=positive, default=0.05)
    parser.add_argument("--desire-hidden", type=positive_int, nargs="+", default=[400, 200])
    parser.add_argument("--desire-epochs", type=positive_int, default=5)
    parser.add_argument("--st-rsbp-hidden", type=positive_int, default=400)
    parser.add_argument("--st-rsbp-epochs", type=positive_int, default=2)
    parser.add_argument(
        "--st-rsbp-lr", type=positive, default=None, help="Adam's rate (default: the rule's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", type=dynlearn.writable_folder, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run (see above)")
    opts = parser.parse_args(argv)
    dynlearn.check_writable(opts.run_dir or "runs", "--run-dir")
    if opts.quick:
        opts.dataset, opts.hidden, opts.epochs = "digits", 16, 1
        opts.patches, opts.atoms, opts.lca_epochs = 400, 16, 1
        opts.desire_hidden, opts.desire_epochs = [16, 16], 1
        opts.st_rsbp_hidden, opts.st_rsbp_epochs = 16, 1
        if opts.parts == parser.get_default("parts"):  # the smoke run tries every part
            opts.parts = list(PARTS)
    trained = {"ide", "desire", "st-rsbp"} & set(opts.parts)
    data = dynlearn.data.load(opts.dataset) if trained else None
    variables, coords, rows = {}, {}, []
    attrs = {"dataset": opts.dataset, "parts": " ".join(opts.parts), "seed": opts.seed}
    if "ide" in opts.parts:
        rows.append(ide_part(data, opts, variables, coords, attrs))
    if "lca" in opts.parts:
        rows.append(lca_part(opts, variables, coords, attrs))
    if "desire" in opts.parts:
        rows.append(desire_part(data, opts, variables, coords, attrs))
    if "st-rsbp" in opts.parts:
        rows.append(st_rsbp_part(data, opts, variables, coords, attrs))
    ds = xr.Dataset(variables, coords=coords, attrs=attrs)
    described = {k: v for k, v in DESCRIPTIONS.items() if k in ds.variables}
    ds = dynlearn.describe(ds, **described)
    text = "\n".join(markdown_table(["model", "measured", "paper", "seconds"], rows))
    run_dir = write_results(ds, text, opts.run_dir, "spiking")
    plot(ds, run_dir)
    print(text)
    print(f"written to {run_dir}")
    return 0


DESCRIPTIONS = {
    "ide_test_accuracy": ("test accuracy of the IDE feedback SNN (spiking rates)", "1"),
    "desire_test_accuracy": ("test accuracy of the desire-backprop LIF network", "1"),
    "st_rsbp_test_accuracy": ("test accuracy of the ST-RSBP recurrent LIF network", "1"),
    "lca_error": ("held-out relative reconstruction error |x - Phi a|^2 / |x|^2", "1"),
    "lca_nonzero": ("fraction of non-zero LCA coefficients", "1"),
    "dictionary": ("dictionary atoms (unit-norm columns)", "1"),
    "epoch": ("IDE training epoch", "1"),
    "desire_epoch": ("desire-backprop training epoch", "1"),
    "st_rsbp_epoch": ("ST-RSBP training epoch", "1"),
    "lca_epoch": ("dictionary-learning epoch (0: random dictionary)", "1"),
    "pixel": ("pixel of the 8x8 patch", "1"),
    "atom": ("dictionary atom", "1"),
}


def ide_part(data, opts, variables, coords, attrs) -> list[str]:
    """Part 1: the IDE feedback SNN's learning curve (into `variables`); its table row."""
    accuracy, seconds = train_rule(ide_rule, data, [opts.hidden], opts.epochs, opts.seed)
    network = f"{data.n_features}-{opts.hidden}"
    print(f"IDE {opts.dataset} {network}: {100 * accuracy[-1]:.2f}% ({seconds:.0f} s)")
    variables["ide_test_accuracy"] = ("epoch", accuracy)
    coords["epoch"] = np.arange(1, opts.epochs + 1)
    paper = PAPER.get(opts.dataset)
    attrs |= {"hidden": opts.hidden, "paper_accuracy": paper or np.nan, "ide_seconds": seconds}
    return [
        f"IDE feedback SNN {network}-10 ({opts.dataset}, {opts.epochs} epochs)",
        f"{100 * accuracy[-1]:.2f}%",
        f"{paper}% (100 epochs)" if paper else "—",
        f"{seconds:.0f}",
    ]


def lca_part(opts, variables, coords, attrs) -> list[str]:
    """Part 2: the LCA dictionary on MNIST patches (into `variables`); its table row."""
    images = dynlearn.data.load("mnist5k" if opts.quick else "mnist", flatten=False)
    rng = np.random.default_rng(opts.seed)
    train = patches(images.x_train, opts.patches, rng)
    test = patches(images.x_test, max(opts.patches // 10, 100), rng)
    start = time.perf_counter()
    coder, errors, sparsities = learn_dictionary(
        train, test, opts.atoms, opts.lam, opts.lca_epochs, opts.lca_lr, opts.seed
    )
    seconds = time.perf_counter() - start
    print(
        f"LCA dictionary: error {errors[0]:.3f} -> {errors[-1]:.3f}, non-zero "
        f"{sparsities[0]:.3f} -> {sparsities[-1]:.3f} ({seconds:.0f} s)"
    )
    variables |= {
        "lca_error": ("lca_epoch", errors),
        "lca_nonzero": ("lca_epoch", sparsities),
        "dictionary": (("pixel", "atom"), np.asarray(coder.phi)),
    }
    coords |= {
        "lca_epoch": np.arange(opts.lca_epochs + 1),
        "pixel": np.arange(PATCH * PATCH),
        "atom": np.arange(opts.atoms),
    }
    attrs |= {"lca_seconds": seconds, "lam": opts.lam, "patches": opts.patches}
    return [
        f"LCA dictionary, {opts.atoms} atoms, lambda {opts.lam} (MNIST 8x8 patches)",
        f"error {errors[0]:.3f} -> {errors[-1]:.3f}, non-zero {sparsities[0]:.3f} -> "
        f"{sparsities[-1]:.3f}",
        "—",
        f"{seconds:.0f}",
    ]


def desire_part(data, opts, variables, coords, attrs) -> list[str]:
    """Part 3: desire backprop's learning curve (into `variables`); its table row."""
    hidden = opts.desire_hidden
    accuracy, seconds = train_rule(desire_rule, data, hidden, opts.desire_epochs, opts.seed)
    network = "-".join(map(str, [data.n_features, *hidden, data.n_classes]))
    print(f"desire {opts.dataset} {network}: {100 * accuracy[-1]:.2f}% ({seconds:.0f} s)")
    variables["desire_test_accuracy"] = ("desire_epoch", accuracy)
    coords["desire_epoch"] = np.arange(1, opts.desire_epochs + 1)
    paper = PAPER_DESIRE.get(opts.dataset)
    attrs |= {
        "desire_hidden": " ".join(map(str, hidden)),
        "desire_paper_accuracy": paper or np.nan,
        "desire_seconds": seconds,
    }
    return [
        f"desire backprop {network} ({opts.dataset}, {opts.desire_epochs} epochs)",
        f"{100 * accuracy[-1]:.2f}% (best {100 * np.max(accuracy):.2f}%)",
        f"{paper}% (784-1600-800-10, 150 epochs)" if paper else "—",
        f"{seconds:.0f}",
    ]


def st_rsbp_part(data, opts, variables, coords, attrs) -> list[str]:
    """Part 4: ST-RSBP's learning curve (into `variables`); its table row."""
    hidden, epochs, lr = opts.st_rsbp_hidden, opts.st_rsbp_epochs, opts.st_rsbp_lr
    mode = None if lr is None else dynlearn.SettleThenUpdate(optax.adam(lr))
    accuracy, seconds = train_rule(st_rsbp_rule, data, [hidden], epochs, opts.seed, mode)
    network = f"{data.n_features}-R{hidden}-{data.n_classes}"
    print(f"ST-RSBP {opts.dataset} {network}: {100 * accuracy[-1]:.2f}% ({seconds:.0f} s)")
    variables["st_rsbp_test_accuracy"] = ("st_rsbp_epoch", accuracy)
    coords["st_rsbp_epoch"] = np.arange(1, epochs + 1)
    attrs |= {"st_rsbp_hidden": hidden, "st_rsbp_seconds": seconds}
    attrs["st_rsbp_lr"] = "the rule's" if lr is None else lr
    rate = "" if lr is None else f", Adam {lr:g}"
    return [
        f"ST-RSBP {network} ({opts.dataset}, {epochs} epochs{rate})",
        f"{100 * accuracy[-1]:.2f}% (best {100 * np.max(accuracy):.2f}%)",
        "not read here (module docstring)",
        f"{seconds:.0f}",
    ]


def plot(ds: xr.Dataset, run_dir) -> None:
    title = "Spiking: learning curves (IDE, desire BP, ST-RSBP) and LCA dictionary learning"
    with dynlearn.plot.figure(
        run_dir / "spiking.png", figsize=(9.6, 3.4), title=title, ncols=2
    ) as (left, right):
        curves = (
            ("ide_test_accuracy", "epoch", "IDE (spiking rates)", "paper_accuracy", "o"),
            ("desire_test_accuracy", "desire_epoch", "desire BP", "desire_paper_accuracy", "s"),
            ("st_rsbp_test_accuracy", "st_rsbp_epoch", "ST-RSBP", "", "^"),
        )
        for name, epoch, label, paper, marker in curves:
            if name not in ds:
                continue
            (line,) = left.plot(ds[epoch], 100 * ds[name], marker + "-", label=label)
            if np.isfinite(ds.attrs.get(paper, np.nan)):
                left.axhline(ds.attrs[paper], color=line.get_color(), ls=":", label="its paper")
        left.set(xlabel="epoch", ylabel="test accuracy (%)")
        left.legend(fontsize="small")
        if "lca_error" in ds:
            right.plot(ds.lca_epoch, ds.lca_error, "o-", label="reconstruction error")
            right.plot(ds.lca_epoch, ds.lca_nonzero, "s--", label="fraction non-zero")
            right.set(xlabel=dynlearn.plot.axis_label(ds.lca_epoch), ylabel="fraction")
            right.legend(fontsize="small")
        else:
            right.set_axis_off()
    if "dictionary" not in ds:
        return
    atoms = ds.dictionary.values.T.reshape(-1, PATCH, PATCH)
    shown = min(len(atoms), 64)
    cols = 8
    rows = -(-shown // cols)
    with dynlearn.plot.figure(
        run_dir / "spiking-dictionary.png", figsize=(6.4, 0.8 * rows + 0.6),
        title=f"LCA dictionary ({shown} of {len(atoms)} atoms)",
    ) as ax:  # fmt: skip
        grid = np.full((rows * (PATCH + 1), cols * (PATCH + 1)), np.nan)
        for k in range(shown):
            r, c = divmod(k, cols)
            atom = atoms[k] / np.abs(atoms[k]).max()
            grid[
                r * (PATCH + 1) : r * (PATCH + 1) + PATCH, c * (PATCH + 1) : c * (PATCH + 1) + PATCH
            ] = atom
        ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(xticks=[], yticks=[], xlabel=f"atoms, {cols} per row", ylabel="row of atoms")


if __name__ == "__main__":
    sys.exit(main())
