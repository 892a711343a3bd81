"""The backprop baseline: a multilayer perceptron trained with `jax.grad`.

Layer conventions shared with the other circuits: layer l computes
`a_l = W_l r_{l-1} + b_l`, `r_l = phi(a_l)` with `W_l` of shape `(n_l, n_{l-1})`,
`r_0 = x`, and a linear output layer `a_L`. Loss: softmax cross-entropy (default) or
squared error `1/2 |a_L - y|^2` on one-hot targets, averaged over the batch. Its update is
the exact gradient dL/dtheta (Rumelhart, Hinton & Williams 1986) — the reference every
bio-plausible rule is compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn

__all__ = ["BackpropMLP", "init_layers", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable] = {
    "linear": lambda a: a,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": lambda a: jnp.clip(a, 0.0, 1.0),
}
LOSSES = ("cross_entropy", "squared_error")


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


class BackpropMLP(dynlearn.AbstractLearner):
    """MLP trained by backpropagation (settle-then-update with the exact gradient).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`.
    - `key`: initialisation key.
    - `activation`: hidden nonlinearity, a name from `ACTIVATIONS` or a function.
    - `loss`: `"cross_entropy"` (softmax on the output) or `"squared_error"`.
    """

    weights: list[Array]
    biases: list[Array]
    activation: Callable = eqx.field(static=True)
    loss_name: str = eqx.field(static=True)

    def __init__(self, sizes, key, *, activation="tanh", loss="cross_entropy"):
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"activation: unknown name {activation!r}; known: {sorted(ACTIVATIONS)}."
                )
            activation = ACTIVATIONS[activation]
        if loss not in LOSSES:
            raise ValueError(f"loss: unknown {loss!r}; known: {list(LOSSES)}.")
        self.weights, self.biases = init_layers(sizes, key)
        self.activation = activation
        self.loss_name = loss

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def predict(self, x):
        if x.shape[-1] != self.sizes[0]:
            raise ValueError(
                f"x: expected {self.sizes[0]} input features (layer sizes {self.sizes}); got "
                f"shape {x.shape}."
            )
        r = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = r @ w.T + b
            r = a if i == len(self.weights) - 1 else self.activation(a)
        return r

    def loss(self, x, y):
        out = self.predict(x)
        if y.shape != out.shape:
            raise ValueError(f"y: expected targets of shape {out.shape}; got {y.shape}.")
        if self.loss_name == "cross_entropy":
            return jnp.mean(optax.softmax_cross_entropy(out, y))
        return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))

    def updates(self, x, y, key):
        loss, grads = eqx.filter_value_and_grad(lambda m: m.loss(x, y))(self)
        return grads, {"loss": loss}


def rule(sizes: Sequence[int], key: PRNGKeyArray):
    """The registered rule `bp` (`dynlearn.rules`): backprop through a tanh MLP on the
    squared error (the loss the local rules descend), Adam 1e-3, batches of 32."""
    net = BackpropMLP(sizes, key, activation="tanh", loss="squared_error")
    return net, {"optimizer": optax.adam(1e-3), "batch_size": 32}
