"""The backprop baseline: a multilayer perceptron trained with `jax.grad`.

Layer l computes `a_l = W_l r_{l-1} + b_l`, `r_l = phi(a_l)` (the toolbox's conventions,
`circuits._layers`) with a linear output layer `a_L`. Loss: softmax cross-entropy (default)
or squared error `1/2 |a_L - y|^2` on one-hot targets, averaged over the batch. Its update
is the exact gradient dL/dtheta (Rumelhart, Hinton & Williams 1986) — the reference every
bio-plausible rule is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import ACTIVATIONS, CrossEntropy, SquaredError, init_layers, sizes_of

__all__ = ["BackpropMLP", "rule"]


class BackpropMLP(dynlearn.AbstractBatchLearner):
    """MLP trained by backpropagation (settle-then-update with the exact gradient).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`.
    - `key`: initialisation key.
    - `activation`: hidden nonlinearity, a name from `circuits._layers.ACTIVATIONS`.
    - `loss`: `CrossEntropy()` (softmax on the output) or `SquaredError()`.
    """

    weights: list[Array]
    biases: list[Array]
    activation: str = eqx.field(static=True)
    loss_fn: SquaredError | CrossEntropy

    def __init__(self, sizes, key, *, activation: str = "tanh", loss=CrossEntropy()):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: unknown name {activation!r}; known: {sorted(ACTIVATIONS)}."
            )
        if not isinstance(loss, SquaredError | CrossEntropy):
            raise ValueError(
                f"loss: expected SquaredError() or CrossEntropy() (circuits._layers); got {loss!r}."
            )
        self.weights, self.biases = init_layers(sizes, key)
        self.activation = activation
        self.loss_fn = loss

    @property
    def sizes(self) -> list[int]:
        return sizes_of(self.weights)

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        phi = ACTIVATIONS[self.activation]
        r = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = r @ w.T + b
            r = a if i == len(self.weights) - 1 else phi(a)
        return r

    def loss(self, x, y):
        out = self.predict(x)
        if y.shape != out.shape:
            raise ValueError(f"y: expected targets of shape {out.shape}; got {y.shape}.")
        return self.loss_fn(out, y)

    def updates(self, x, y, key):
        loss, grads = eqx.filter_value_and_grad(lambda m: m.loss(x, y))(self)
        return grads, {"loss": loss}


def rule(sizes: Sequence[int], key: PRNGKeyArray) -> dynlearn.Recipe:
    """The registered rule `bp` (`dynlearn.rules`): backprop through a tanh MLP on the
    squared error (the loss the local rules descend), Adam 1e-3, batches of 32."""
    net = BackpropMLP(sizes, key, activation="tanh", loss=SquaredError())
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-3)), 32)
