"""Analysis helpers on arrays and pytrees: similarity of updates, errors, settling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

__all__ = [
    "cosine_similarity",
    "angle_deg",
    "relative_error",
    "loglog_slope",
    "settling_time",
    "flatten",
    "prune_global",
    "prune_per_layer",
]


def flatten(tree: PyTree) -> Array:
    """All leaves of a pytree as one vector (the order of `jax.tree.leaves`)."""
    leaves = [jnp.ravel(jnp.asarray(x)) for x in jax.tree.leaves(tree)]
    if not leaves:
        raise ValueError("tree: it has no array leaves.")
    return jnp.concatenate(leaves)


def _pair(a: PyTree, b: PyTree) -> tuple[Array, Array]:
    if jax.tree.structure(a) != jax.tree.structure(b):
        raise ValueError(
            f"a and b must have the same structure; got {jax.tree.structure(a)} and "
            f"{jax.tree.structure(b)}."
        )
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jnp.shape(x) != jnp.shape(y):
            raise ValueError(f"a and b leaves differ in shape: {jnp.shape(x)} vs {jnp.shape(y)}.")
    return flatten(a), flatten(b)


def cosine_similarity(a: PyTree, b: PyTree) -> Array:
    """`<a, b> / (|a| |b|)` over all elements of two pytrees of equal structure."""
    x, y = _pair(a, b)
    return jnp.dot(x, y) / (jnp.linalg.norm(x) * jnp.linalg.norm(y))


def angle_deg(a: PyTree, b: PyTree) -> Array:
    """The angle between two pytrees seen as vectors, in degrees (0 = aligned, 90 = orthogonal).

    Used for alignment of feedback with transposed forward weights (Lillicrap et al. 2016).
    """
    return jnp.degrees(jnp.arccos(jnp.clip(cosine_similarity(a, b), -1.0, 1.0)))


def relative_error(estimate: PyTree, reference: PyTree) -> Array:
    """`|estimate - reference| / |reference|` (Euclidean norms over all elements)."""
    x, y = _pair(estimate, reference)
    return jnp.linalg.norm(x - y) / jnp.linalg.norm(y)


def loglog_slope(x: ArrayLike, y: ArrayLike) -> float:
    """The least-squares slope of log y against log x: the order p of y ~ x^p (how an
    error falls with a step, a nudge, a rate). Zeros in y count as 1e-300."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2 or np.any(x <= 0):
        raise ValueError(
            f"x, y: need two 1-d arrays of the same length >= 2, x > 0; got {x.shape}, {y.shape}."
        )
    return float(np.polyfit(np.log(x), np.log(np.maximum(y, 1e-300)), 1)[0])


def settling_time(
    ts: ArrayLike, ys: PyTree, *, rtol: float = 1e-2, atol: float = 0.0, final: PyTree = None
) -> float:
    """First time after which the trajectory stays within tolerance of its final value.

    `|y(t) - y_final| <= atol + rtol |y_final|` for all later saved times (norms over all
    elements of the state at one time). `ys` leaves have a leading time axis; `final`
    defaults to the last saved state. Returns `inf` if even the last point is out of band
    (possible only with an explicit `final`).
    """
    ts = np.asarray(ts)
    leaves = [np.asarray(x).reshape(len(ts), -1) for x in jax.tree.leaves(ys)]
    traj = np.concatenate(leaves, axis=1)
    end = traj[-1] if final is None else np.asarray(flatten(final))
    dist = np.linalg.norm(traj - end, axis=1)
    inside = dist <= atol + rtol * np.linalg.norm(end)
    if not inside[-1]:
        return float("inf")
    outside = np.nonzero(~inside)[0]
    return float(ts[0] if outside.size == 0 else ts[outside[-1] + 1])


def prune_global(tree: PyTree, sparsity: float, minimum: int = 0) -> tuple[PyTree, PyTree]:
    """Global magnitude pruning: zero the `round(sparsity * n)` smallest-magnitude entries
    over all leaves of `tree` together (n = their total size), not layer by layer.

    With `minimum` > 0 every leaf keeps at least its `minimum` largest entries (all of them
    if it has fewer), the other leaves losing more so the total still reaches the sparsity
    where it can: the minimum threshold of Gupta et al. (global magnitude pruning), against
    the collapse of a layer whose weights are all small. Ties at the threshold are broken by
    position (a stable sort), so exactly that many entries are pruned. Pass only the arrays
    to prune (e.g. `[w for w in net.weights]`).

    **Returns:** `(pruned tree, mask tree)` with masks of 1 (kept) and 0 (pruned), for
    re-training with the pruned entries held at zero.
    """
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1); got {sparsity}.")
    if not (isinstance(minimum, (int, np.integer)) and minimum >= 0):
        raise ValueError(f"minimum: expected an int >= 0 weights kept per layer; got {minimum!r}.")
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        raise ValueError("tree: it has no array leaves to prune.")
    flat = [np.abs(np.asarray(leaf)).ravel() for leaf in leaves]
    magnitudes = np.concatenate(flat)
    protected = np.zeros(magnitudes.size, dtype=bool)
    start = 0
    for values in flat:
        largest = np.argsort(-values, kind="stable")[: min(minimum, values.size)]
        protected[start + largest] = True
        start += values.size
    n_pruned = int(np.floor(sparsity * magnitudes.size + 0.5))
    order = np.argsort(magnitudes, kind="stable")
    order = order[~protected[order]]
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[order[:n_pruned]] = False
    masks, start = [], 0
    for leaf in leaves:
        size = np.size(leaf)
        masks.append(keep[start : start + size].reshape(np.shape(leaf)))
        start += size
    pruned = [
        jnp.where(m, leaf, 0).astype(jnp.asarray(leaf).dtype) for leaf, m in zip(leaves, masks)
    ]
    masks = [jnp.asarray(m, jnp.asarray(leaf).dtype) for leaf, m in zip(leaves, masks)]
    return jax.tree.unflatten(treedef, pruned), jax.tree.unflatten(treedef, masks)


def prune_per_layer(tree: PyTree, sparsity: float, minimum: int = 0) -> tuple[PyTree, PyTree]:
    """Layer-wise magnitude pruning: every leaf of `tree` loses its own `round(sparsity *
    size)` smallest-magnitude entries (one threshold per weight matrix), for networks whose
    layers live on different scales (e.g. unit-length Hebbian rows under a read-out with
    small weights, which one global threshold would remove first). Returns `(pruned tree,
    mask tree)` as `prune_global`."""
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        raise ValueError("tree: it has no array leaves to prune.")
    pruned, masks = zip(*(prune_global([leaf], sparsity, minimum) for leaf in leaves))
    return (
        jax.tree.unflatten(treedef, [p[0] for p in pruned]),
        jax.tree.unflatten(treedef, [m[0] for m in masks]),
    )
