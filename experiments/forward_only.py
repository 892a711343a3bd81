"""Forward-only learning next to backprop: PEPITA and FDFA, each on its paper's network.

- `pepita`: PEPITA (`circuits.forward_only`, rule `pepita`: SGD 0.1 with momentum 0.9,
  batches of 64) and BP (cross-entropy, SGD 0.01 with momentum 0.9 — 0.1 is PEPITA's
  rate, not BP's — batches of 64) on n_in-1024-10 ReLU, no biases for PEPITA
  (Dellaferrera & Kreiman 2022's MNIST network).
- `fdfa`: FDFA (rule `fdfa`: feedback learned from directional derivatives), DFA (the same
  network and loss with fixed random feedback) and BP, n_in-256x3-10 tanh, softmax
  cross-entropy, Adam 1e-4 (Bacho & Chu 2022's optimizer), batches of 64.

Paper figure: PEPITA 98.01% on MNIST after 100 epochs (learning rate 0.1, decayed x0.1 at
epochs 60 and 90, dropout 10%; as recalled in `../shared/FAMILIES.md`, not re-checked);
here fewer epochs, no dropout and no decay — the table says how many. Writes
`forward_only.nc`, `forward_only.md` and `forward_only.png`; a rerun with the same
`--run-dir` resumes.

Run: `dynlearn run forward-only --dataset mnist --epochs 10` (`fashion_mnist` too);
`--quick` for a smoke run (digits, 1 epoch, narrow).
"""

from __future__ import annotations

import sys

import optax

import dynlearn
from circuits._layers import CrossEntropy
from circuits.backprop import BackpropMLP
from circuits.forward_only import FDFANetwork
from dynlearn import registry
from experiments._compare import main as comparison_main

GROUPS = {"pepita": ("pepita", "bp"), "fdfa": ("fdfa", "dfa", "bp")}


def network(group: str, n_in: int, n_out: int, quick: bool) -> list[int]:
    if group == "pepita":
        return [n_in, 64 if quick else 1024, n_out]
    return [n_in] + [32 if quick else 256] * 3 + [n_out]


def recipe(group: str, rule: str, sizes: list[int], key) -> dynlearn.Recipe:
    """The registered rule, or BP / DFA with the group's settings on its network."""
    if group == "pepita" and rule == "bp":
        net = BackpropMLP(sizes, key, activation="relu", loss=CrossEntropy())
        return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.sgd(0.01, momentum=0.9)), 64)
    if group == "fdfa" and rule in ("bp", "dfa"):
        if rule == "bp":
            net = BackpropMLP(sizes, key, activation="tanh", loss=CrossEntropy())
        else:
            net = FDFANetwork(sizes, key, feedback="random")
        return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-4)), 64)
    return registry.load("rules", rule)(sizes, key)


def main(argv: list[str] | None = None) -> int:
    return comparison_main(
        argv,
        command="forward-only",
        description=__doc__.splitlines()[0],
        name="forward_only",
        title="Forward-only learning",
        groups=GROUPS,
        network=network,
        recipe=recipe,
    )


if __name__ == "__main__":
    sys.exit(main())
