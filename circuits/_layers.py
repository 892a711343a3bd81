"""The circuits' toolbox: activations, layer initialisation, sizes, names, losses.

Layer conventions shared by every layered circuit: layer l computes `a_l = W_l r_{l-1} +
b_l` with `W_l` of shape `(n_l, n_{l-1})`, `r_0 = x`; layers are named `hidden1, ...,
hidden{L-1}, output`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

__all__ = [
    "AbstractLayered",
    "ACTIVATIONS",
    "phi_of",
    "init_layers",
    "sizes_of",
    "layer_names",
    "layer_rates",
    "slope",
    "known_affine",
    "feedforward",
    "forward_weights",
    "learning_filter",
    "check_options",
    "check_positive",
    "check_steps",
    "SquaredError",
    "CrossEntropy",
]

ACTIVATIONS: dict[str, Callable] = {
    "linear": lambda a: a,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": lambda a: jnp.clip(a, 0.0, 1.0),
}


def phi_of(name: str, argument: str = "activation") -> Callable:
    """The function `ACTIVATIONS[name]`, or a `ValueError` naming `argument`."""
    if name not in ACTIVATIONS:
        raise ValueError(f"{argument}: unknown name {name!r}; known: {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def init_layers(sizes: Sequence[int], key: PRNGKeyArray) -> tuple[list[Array], list[Array]]:
    """Weights `(n_l, n_{l-1})` ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) (PyTorch's default), zero
    biases, for layer sizes `(n_in, n_1, ..., n_L)`."""
    if len(sizes) < 2 or any(int(n) < 1 for n in sizes):
        raise ValueError(f"sizes: need at least two positive layer sizes; got {list(sizes)}.")
    keys = jax.random.split(key, len(sizes) - 1)
    weights = [
        jax.random.uniform(k, (n_out, n_in), minval=-1.0, maxval=1.0) / jnp.sqrt(n_in)
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
    ]
    biases = [jnp.zeros(n) for n in sizes[1:]]
    return weights, biases


def sizes_of(weights: Sequence[Array]) -> list[int]:
    """Layer sizes `[n_in, n_1, ..., n_L]` of weight matrices `(n_l, n_{l-1})`."""
    return [weights[0].shape[-1]] + [w.shape[-2] for w in weights]


def layer_names(n_layers: int) -> list[str]:
    """`hidden1, ..., hidden{n_layers - 1}, output`."""
    return [f"hidden{i}" for i in range(1, n_layers)] + ["output"]


def layer_rates(eta: float | Sequence[float], n_layers: int, name: str = "eta") -> tuple:
    """One learning rate per layer from one value or `n_layers` values, all >= 0."""
    rates = (float(eta),) * n_layers if isinstance(eta, int | float) else tuple(map(float, eta))
    if len(rates) != n_layers or min(rates) < 0:
        raise ValueError(f"{name}: need one value >= 0 or {n_layers} (one per layer); got {eta}.")
    return rates


def slope(phi: Callable, v: Array) -> Array:
    """phi'(v) elementwise (forward mode, fused with phi by XLA)."""
    return jax.jvp(phi, (v,), (jnp.ones_like(v),))[1]


@jax.custom_vjp
def known_affine(w, b, r, value):
    """`r @ w.T + b` whose value is already known (e.g. a clamped input's drive, computed
    once before a settling loop instead of at every step).

    Forward returns `value` without the product; backward is that of the affine map, so
    gradients with respect to `w`, `b` and `r` are those of `r @ w.T + b`.
    """
    return value


def _known_affine_fwd(w, b, r, value):
    return value, (w, r)


def _known_affine_bwd(res, g):
    w, r = res
    dw = jnp.einsum("...o,...i->oi", g, r)
    db = jnp.sum(g.reshape(-1, g.shape[-1]), axis=0)
    return dw, db, g @ w, jnp.zeros_like(g)


known_affine.defvjp(_known_affine_fwd, _known_affine_bwd)


def feedforward(weights, biases, phis, x) -> list[Array]:
    """`a_l = W_l phi_{l-1}(a_{l-1}) + b_l` with `a_0`'s rate `x`: every layer's drive of
    the feed-forward pass (`biases` may be None)."""
    biases = biases if biases is not None else [0.0] * len(weights)
    voltages, rate = [], x
    for w, b, phi in zip(weights, biases, phis):
        voltages.append(rate @ w.T + b)
        rate = phi(voltages[-1])
    return voltages


class AbstractLayered(eqx.Module):
    """The structure every layered rate circuit shares: forward weights `(n_l, n_{l-1})`,
    a hidden activation and an output activation (names in `ACTIVATIONS`)."""

    weights: eqx.AbstractVar[list[Array]]
    activation: eqx.AbstractVar[str]
    output_activation: eqx.AbstractVar[str]

    @property
    def sizes(self) -> list[int]:
        return sizes_of(self.weights)

    @property
    def layer_names(self) -> list[str]:
        return layer_names(len(self.weights))

    @property
    def phis(self) -> list[Callable]:
        hidden = phi_of(self.activation)
        return [hidden] * (len(self.weights) - 1) + [phi_of(self.output_activation)]


def learning_filter(module, fields: Sequence[str], pathway: str | None = None) -> PyTree[bool]:
    """A `trainable()` filter: the arrays in the list fields `fields` learn, and so do the
    learning leaves of the feedback pathway in field `pathway` (its own `trainable()`)."""
    spec = jax.tree.map(lambda _: False, module)
    spec = eqx.tree_at(
        lambda m: tuple(getattr(m, f) for f in fields),
        spec,
        tuple([True] * len(getattr(module, f)) for f in fields),
    )
    if pathway is None:
        return spec
    return eqx.tree_at(lambda m: getattr(m, pathway), spec, getattr(module, pathway).trainable())


def check_options(module: str, kinds: dict, **given) -> None:
    """Each option in `given` must be an instance of its `kinds[name] = (class, examples)`,
    or a `ValueError` names the argument, the examples and what was given."""
    for name, value in given.items():
        kind, examples = kinds[name]
        if not isinstance(value, kind):
            raise ValueError(
                f"{name}: expected a {module} {name} option ({examples}); got {value!r}."
            )


def forward_weights(circuit) -> PyTree[bool]:
    """A filter selecting only `circuit.weights`, the forward weight matrices (what
    magnitude pruning acts on in circuits with feedback or interneuron matrices)."""
    spec = jax.tree.map(lambda _: False, circuit)
    return eqx.tree_at(lambda c: c.weights, spec, [True] * len(circuit.weights))


class SquaredError(eqx.Module):
    """`1/2 |y - output|^2` per sample; calling it averages over the batch."""

    def per_sample(self, output: Array, target: Array) -> Array:
        return 0.5 * jnp.sum((target - output) ** 2, axis=-1)

    def __call__(self, output: Array, target: Array) -> Array:
        return jnp.mean(self.per_sample(output, target))


class CrossEntropy(eqx.Module):
    """Softmax cross-entropy of logits `output` against one-hot targets, per sample; calling
    it averages over the batch."""

    def per_sample(self, output: Array, target: Array) -> Array:
        return optax.softmax_cross_entropy(output, target)

    def __call__(self, output: Array, target: Array) -> Array:
        return jnp.mean(self.per_sample(output, target))


def check_positive(option, **values) -> None:
    """Raise if a setting of an option object is not a finite number > 0, naming it as
    `Option.name`."""
    for name, value in values.items():
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
            raise ValueError(
                f"{type(option).__name__}.{name} must be a finite number > 0; got {value!r}."
            )


def check_steps(option, dt, **counts) -> None:
    """`check_positive` for a step `dt`, and step counts that must be integers >= 1."""
    check_positive(option, dt=dt)
    for name, value in counts.items():
        if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1):
            raise ValueError(
                f"{type(option).__name__}.{name} must be an integer >= 1 (a number of Euler "
                f"steps); got {value!r}."
            )
