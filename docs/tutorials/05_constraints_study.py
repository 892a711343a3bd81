# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Running the constraints study
#
# How does a rule without backpropagation cope when conditions get worse? The constraints
# study (`experiments/constraints.py`, `dynlearn run constraints`) trains every registered
# rule and backprop with the same architecture, samples and epochs, and measures test
# accuracy under four constraints:
#
# 1. **less data**: a stratified fraction $f$ of the training set;
# 2. **fewer epochs**: the first epoch reaching 95% of the final accuracy;
# 3. **sparsity**: the trained network's forward weights pruned by magnitude to a fraction
#    $s$ of zeros (one global threshold $\lvert w\rvert < w_s$), as is and after re-training
#    with the pruned weights held at zero;
# 4. **input noise**: test inputs $x + \sigma\,\epsilon$, $\epsilon \sim \mathcal N(0, I)$.
#
# The full study (10 epochs, 3 seeds, mnist5k, every rule) takes hours; `--quick` is a smoke
# run. Here we pick our own tiny settings: two registered rules — `bp` (backprop) and `fa`
# (feedback alignment, the rule written by hand in the tutorial
# [Your own learning rule](02_your_own_rule.py)) — on scikit-learn's digits, one hidden layer
# of 32, 5 epochs, 2 seeds, two levels per constraint.

# %%
import contextlib
import io
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import dynlearn
from experiments import constraints

run_dir = Path(tempfile.mkdtemp()) / "constraints"
argv = [
    "--dataset", "digits", "--rules", "bp", "fa", "--hidden", "32",
    "--epochs", "5", "--seeds", "0", "1",
    "--fractions", "1", "0.2", "--sparsities", "0.5", "0.9", "--noise-stds", "0", "0.3",
    "--run-dir", str(run_dir),
]  # fmt: skip
with contextlib.redirect_stdout(io.StringIO()) as log:
    constraints.main(argv)  # the same as `dynlearn run constraints ...` on the command line
print("\n".join(line for line in log.getvalue().splitlines() if "done in" in line))

# %% [markdown]
# `main(argv)` is the command line's entry point, callable from Python. Each *cell* (a rule
# × a constraint) is written to `run_dir/cells/` as soon as it is done, so an interrupted
# study resumes where it stopped: running the same command again computes nothing.

# %%
with contextlib.redirect_stdout(io.StringIO()) as log:
    constraints.main(argv)
print(log.getvalue().splitlines()[-1])
print(sorted(p.name for p in run_dir.iterdir()))

# %% [markdown]
# ## The results as a Dataset
#
# `constraints.nc` holds every number, with dimensions `rule`, `seed`, `epoch` and one per
# constraint (`fraction`, `sparsity` with `retrained`, `noise_std`); accuracies are
# fractions in $[0, 1]$ and every variable has a `long_name` and `units`.

# %%
ds = dynlearn.load_netcdf(run_dir / "constraints.nc")
ds

# %% [markdown]
# The study's table (`constraints.md`, mean ± std over seeds) is made from it by
# `constraints.table(ds)`:

# %%
display(Markdown(constraints.table(ds)))

# %% [markdown]
# And any other view is a line of xarray, e.g. how much each rule keeps of its full-data
# accuracy with a fifth of the data, or what re-training recovers after pruning 90% of the
# weights:

# %%
final = ds.accuracy.isel(epoch=-1).mean("seed")
kept = final.sel(fraction=0.2) / final.sel(fraction=1.0)
pruned = ds.pruned_accuracy.sel(sparsity=0.9).mean("seed")
for rule in ds.rule.values:
    print(
        f"{rule}: keeps {100 * float(kept.sel(rule=rule)):.0f}% of its accuracy on 20% "
        f"of the data; 90% pruned: {100 * float(pruned.sel(rule=rule, retrained=False)):.1f}%"
        f" -> re-trained {100 * float(pruned.sel(rule=rule, retrained=True)):.1f}%"
    )

# %%
fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
for rule in ds.rule.values:
    curve = 100 * ds.accuracy.sel(rule=rule, fraction=1.0)
    ax.errorbar(
        curve.epoch, curve.mean("seed"), yerr=curve.std("seed"), marker="o", capsize=2, label=rule
    )
ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="digits, 64-32-10: all the data")
ax.legend()
plt.show()

# %% [markdown]
# The study also wrote one figure per constraint (`constraints-data.png`, ...), in the
# shared style of `dynlearn.plot`. Other options: `--gradual` (pruning while training),
# `--presets` (training on simulated analog devices, `dynlearn.hardware`), `--cluster`
# (one dask task per cell). To run the study on your own rule, register it
# (`dynlearn.registry.register`, see [Your own learning rule](02_your_own_rule.py)) and pass
# its name to `--rules`.
