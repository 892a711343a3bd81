"""Gradual magnitude pruning during training, as a mode around any other mode.

Zhu & Gupta (2017, "To prune, or not to prune") grow the sparsity of a network while it
trains, on the cubic schedule

    s(k) = s_f (1 - (1 - (k - k_0) / (k_1 - k_0))^3),     k_0 <= k <= k_1,

pruning every `every` updates (k counts updates), so the network adapts to each small cut
instead of losing a large part of its weights at once; Gupta et al. (global magnitude
pruning) add a minimum number of weights kept per layer. `GradualPruning(mode, ...)` does
both for any learner wrapped by `dynlearn.prune(learner, 0.0)` (masks of ones), in either
learning mode, on analog devices too.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._modes import AbstractMode
from ._pruning import SCOPES, Pruned
from .hardware import OnDevice

__all__ = ["GradualPruning", "cubic_sparsity"]


def cubic_sparsity(k, final: float, begin: int, end: int):
    """Zhu & Gupta's schedule: 0 before `begin`, `final` from `end` on, cubic between."""
    progress = jnp.clip((k - begin) / (end - begin), 0.0, 1.0)
    return final * (1.0 - (1.0 - progress) ** 3)


class GradualPruning(AbstractMode):
    """`mode`, pruning the learner's `prunable()` weights as it trains (see the module).

    Every `every` updates from `begin` to `end` the smallest-magnitude weights are zeroed
    (one threshold over all matrices, or per matrix with `scope="layer"`) up to the
    scheduled sparsity, and the masks held from then on (pruned weights never return);
    `min_per_layer` weights of each matrix are always kept. Ties at the threshold are
    pruned together (exact for distinct magnitudes).

    **Arguments:**
    - `mode`: the learning mode (`SettleThenUpdate` or `AlwaysOn`).
    - `sparsity`: the final sparsity, in [0, 1).
    - `end`: the update at which it is reached (e.g. 80% of the training's updates).
    - `begin`: the first pruning update (default 0).
    - `every`: updates between prunings (default 10).
    - `scope`: `"global"` or `"layer"` (see `dynlearn.prune`).
    - `min_per_layer`: weights kept per matrix at least (default 0).
    """

    mode: AbstractMode
    sparsity: float = eqx.field(static=True)
    end: int = eqx.field(static=True)
    begin: int = eqx.field(static=True, default=0)
    every: int = eqx.field(static=True, default=10)
    scope: str = eqx.field(static=True, default="global")
    min_per_layer: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if not isinstance(self.mode, AbstractMode):
            raise ValueError(f"mode: expected a dynlearn mode; got {type(self.mode).__name__}.")
        if not 0 <= self.sparsity < 1:
            raise ValueError(f"sparsity: expected a final sparsity in [0, 1); got {self.sparsity}.")
        if not (0 <= self.begin < self.end):
            raise ValueError(
                f"begin, end: expected 0 <= begin < end (updates); got {self.begin}, {self.end}."
            )
        if not self.every >= 1:
            raise ValueError(f"every: expected >= 1 updates between prunings; got {self.every}.")
        if self.scope not in SCOPES:
            raise ValueError(f"scope: expected one of {sorted(SCOPES)}; got {self.scope!r}.")
        if not (isinstance(self.min_per_layer, (int, np.integer)) and self.min_per_layer >= 0):
            raise ValueError(f"min_per_layer: expected an int >= 0; got {self.min_per_layer!r}.")

    def check(self, learner, batch_size):
        if not isinstance(_pruned(learner), Pruned):
            raise ValueError(
                f"learner: GradualPruning needs masks to grow; wrap it first with "
                f"dynlearn.prune(learner, 0.0) (got {type(learner).__name__})."
            )
        self.mode.check(learner, batch_size)

    def split_size(self, batch_size):
        return self.mode.split_size(batch_size)

    def init(self, learner):
        return {"mode": self.mode.init(learner), "updates": jnp.zeros((), jnp.int32)}

    def step(self, learner, state, x, y, key):
        learner, inner, metrics = self.mode.step(learner, state["mode"], x, y, key)
        k = state["updates"] + 1
        due = (k >= self.begin) & (k <= self.end) & ((k - self.begin) % self.every == 0)
        target = cubic_sparsity(k, self.sparsity, self.begin, self.end)
        target = jnp.where(k >= self.end, self.sparsity, target)
        arrays, static = eqx.partition(learner, eqx.is_array)

        def pruned(arrays):
            return eqx.partition(self.prune_to(eqx.combine(arrays, static), target), eqx.is_array)[
                0
            ]

        arrays = jax.lax.cond(due, pruned, lambda a: a, arrays)
        return eqx.combine(arrays, static), {"mode": inner, "updates": k}, metrics

    def prune_to(self, learner, sparsity):
        """`learner` with its masks grown to `sparsity` (traced) by magnitude."""
        wrapped = _pruned(learner)
        selected, rest = eqx.partition(wrapped.learner, wrapped.learner.prunable())
        leaves, treedef = jax.tree.flatten(selected)
        if self.scope == "global":
            masks = _grown_masks(leaves, wrapped.masks, sparsity, self.min_per_layer)
        else:
            masks = [
                _grown_masks([w], [m], sparsity, self.min_per_layer)[0]
                for w, m in zip(leaves, wrapped.masks)
            ]
        leaves = [w * m for w, m in zip(leaves, masks)]
        inner = Pruned(eqx.combine(jax.tree.unflatten(treedef, leaves), rest), masks)
        if isinstance(learner, OnDevice):
            return eqx.tree_at(lambda d: d.learner, learner, inner)
        return inner

    def config(self, learner):
        settings = {k: getattr(self, k) for k in ("sparsity", "begin", "end", "every")}
        settings |= {"scope": self.scope, "min_per_layer": self.min_per_layer}
        return self.mode.config(learner) | {"gradual_pruning": settings}


def _pruned(learner):
    return learner.learner if isinstance(learner, OnDevice) else learner


def _grown_masks(leaves, masks, sparsity, minimum: int):
    """Masks pruning the `round(sparsity * n)` smallest |w| of `leaves` together (already
    pruned entries count as zeros; each leaf keeps its `minimum` largest). Thresholds are
    found by bisection on the magnitudes (a sort costs ~10x more on CPU, and under `vmap`
    over seeds the pruning runs at every update, due or not)."""
    scores = []
    for w, m in zip(leaves, masks):
        values = (jnp.abs(w) * m).ravel()
        k = min(minimum, values.size)
        if k > 0:
            kth_largest = -_kth_smallest(-values, k)
            values = jnp.where(values >= kth_largest, jnp.inf, values)
        scores.append(values)
    scores = jnp.concatenate(scores)
    n_pruned = jnp.floor(sparsity * scores.size + 0.5).astype(jnp.int32)
    threshold = jnp.where(n_pruned > 0, _kth_smallest(scores, n_pruned), -jnp.inf)
    out, start = [], 0
    for w, m in zip(leaves, masks):
        keep = scores[start : start + w.size].reshape(w.shape) > threshold
        out.append(m * keep.astype(m.dtype))
        start += w.size
    return out


BISECTIONS = 48  # halvings of the magnitude range: past float32's resolution


def _kth_smallest(values, k):
    """The k-th smallest finite entry of `values` (1-based; the largest finite one if there
    are fewer), by bisection: the least t with #(values <= t) >= k."""
    finite = jnp.isfinite(values)
    lo = jnp.min(values) - 1.0
    hi = jnp.max(jnp.where(finite, values, -jnp.inf))

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        enough = jnp.sum(values <= mid) >= k
        return jnp.where(enough, lo, mid), jnp.where(enough, mid, hi)

    return jax.lax.fori_loop(0, BISECTIONS, halve, (lo, hi))[1]
