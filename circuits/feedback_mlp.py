"""Rate networks that learn through a feedback pathway: FA, DFA, sign symmetry, KP.

A feed-forward rate network `a_l = W_l r_{l-1} + b_l`, `r_l = phi_l(a_l)`, trained
settle-then-update with the errors its pathway (`circuits.feedback`) carries down:

    e_L = phi_L'(a_L) (y - r_L),    e_l = phi_l'(a_l) * B_l e_{l+1}    (direct: B_l e_L)
    dW_l = -e_l r_{l-1}^T (batch mean, a gradient's sign for optax)

With B_l = W_{l+1}^T these are backprop's deltas; fixed random B is feedback alignment
(Lillicrap et al. 2016), B_l from the output is DFA (Nøkland 2016), sign-transported B is
sign symmetry (Liao et al. 2016), and Kolen-Pollack (Akrout et al. 2019) lets B learn the
transposed update of W while both decay. These are the steady-state errors of a
Latent-Equilibrium network in the weak-nudging limit (`circuits.latent_equilibrium`).

`linearised=True` takes every factor of the credit except the output error from the network
at birth (slopes phi'(a_l(0)), rates r_{l-1}(0), with `InitialTransport`'s B = W(0)^T): the
gradient of the NTK-linearised network f(0) + J(0)(theta - theta(0)), which is BP's in the
infinite-width limit (`rule_align_zero`).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import (
    AbstractLayered,
    SquaredError,
    feedforward,
    forward_weights,
    init_layers,
    learning_filter,
    phi_of,
    slope,
)
from circuits.alignment import InformationAlignment, SymmetricAlignment, WeightMirror
from circuits.feedback import (
    AbstractFeedback,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    InitialTransport,
    KolenPollack,
    Signals,
    SignSymmetry,
    WeightTransport,
    bind_pathway,
)

__all__ = [
    "FeedbackMLP",
    "pathway_rule",
    "rule_fa",
    "rule_dfa",
    "rule_sign",
    "rule_kp",
    "rule_weight_mirror",
    "rule_information_alignment",
    "rule_symmetric_alignment",
    "rule_align_zero",
    "rule_align_ada",
]


class FeedbackMLP(AbstractLayered, dynlearn.AbstractBatchLearner):
    """A rate network whose hidden errors travel through a feedback pathway.

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; `key`: initialisation.
    - `activation`, `output_activation`: names from `circuits._layers.ACTIVATIONS`.
    - `feedback`: a fixed or plastic pathway from `circuits.feedback` (not one with a state
      of its own, such as PAL, which needs time: use an always-on circuit).
    - `linearised`: take the credit's slopes and presynaptic rates from the network at
      birth (kept frozen in `initial_weights`, `initial_biases`), see the module docstring.
    """

    weights: list[Array]
    biases: list[Array]
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True)
    feedback: AbstractFeedback
    linearised: bool = eqx.field(static=True)
    initial_weights: list[Array] | None
    initial_biases: list[Array] | None

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "tanh",
        output_activation: str = "linear",
        feedback: AbstractFeedback = WeightTransport(),
        linearised: bool = False,
    ):
        phi_of(activation, "activation")
        phi_of(output_activation, "output_activation")
        self.weights, self.biases = init_layers(sizes, key)
        self.feedback = bind_pathway(feedback, sizes, self.weights)
        if self.feedback.init_state(Signals(self.weights, self._zero_rates())) is not None:
            raise ValueError(
                f"feedback: {type(feedback).__name__} has a state of its own (it learns over "
                "time); use it in an always-on circuit such as LENetwork."
            )
        self.activation, self.output_activation = activation, output_activation
        self.linearised = bool(linearised)
        self.initial_weights = list(self.weights) if linearised else None
        self.initial_biases = list(self.biases) if linearised else None

    def _zero_rates(self):
        return [jax.numpy.zeros((1, w.shape[0])) for w in self.weights[1:]]

    def trainable(self):
        """Weights, biases and a plastic pathway's matrices (fixed random B stays fixed)."""
        return learning_filter(self, ("weights", "biases"), pathway="feedback")

    def prunable(self):
        """The forward weights W_l (a plastic pathway's B is not pruned)."""
        return forward_weights(self)

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return self.phis[-1](feedforward(self.weights, self.biases, self.phis, x)[-1])

    def pathway_errors(self, x, y) -> tuple[list[Array], list[Array]]:
        """`(errors e_1..e_L, rates r_0..r_L)` for a batch (see the module docstring;
        `linearised`: the slopes and r_0..r_{L-1} of the network at birth, r_L its own)."""
        voltages = feedforward(self.weights, self.biases, self.phis, x)
        rates = [x] + [phi(v) for phi, v in zip(self.phis, voltages)]
        output = rates[-1]
        if self.linearised:
            voltages = feedforward(self.initial_weights, self.initial_biases, self.phis, x)
            rates = [x] + [phi(v) for phi, v in zip(self.phis[:-1], voltages[:-1])] + [output]
        errors = [slope(self.phis[-1], voltages[-1]) * (y - output)]
        matrices = self.feedback.matrices(self.weights)
        for i in reversed(range(len(matrices))):
            above = errors[-1] if self.feedback.direct else errors[0]
            errors.insert(0, slope(self.phis[i], voltages[i]) * (above @ matrices[i].T))
        return errors, rates

    def updates(self, x, y, key):
        """Updates with a gradient's sign: -e_l r_{l-1}^T and -e_l (batch means), plus the
        pathway's forward decay; a plastic pathway's B gets minus its rate for the weight
        rates -updates (Kolen-Pollack: the transposed update of W, and the decay)."""
        x, y = dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        errors, rates = self.pathway_errors(x, y)
        output = rates[-1]
        n = x.shape[0]
        d_weights = [-(e.T @ r) / n for e, r in zip(errors, rates[:-1])]
        d_biases = [-e.mean(axis=0) for e in errors]
        above = [rates[-1]] * (len(rates) - 3) if self.feedback.direct else rates[2:]
        signals = Signals(list(self.weights), above, [-d for d in d_weights], rates[1:-1], key)
        b_rates = self.feedback.plasticity(0.0, None, signals)
        d_feedback = jax.tree.map(lambda r: -r, eqx.filter(b_rates, self.feedback.trainable()))
        decay = self.feedback.forward_decay
        d_weights = [d + decay * w for d, w in zip(d_weights, self.weights)]
        grads = eqx.tree_at(
            lambda m: (m.weights, m.biases, m.feedback), self, (d_weights, d_biases, d_feedback)
        )
        return grads, {"loss": SquaredError()(output, y), "output": output}


def pathway_rule(
    feedback: AbstractFeedback, sizes: Sequence[int], key: PRNGKeyArray
) -> dynlearn.Recipe:
    """A settle-then-update rule (`dynlearn.rules`): a tanh rate network whose hidden errors
    travel through `feedback`, Adam 1e-3, batches of 32."""
    net = FeedbackMLP(sizes, key, activation="tanh", feedback=feedback)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-3)), 32)


def rule_fa(sizes, key):
    """The registered rule `fa`: feedback alignment (fixed random B), settle-then-update."""
    k_net, k_fb = jax.random.split(key)
    return pathway_rule(FeedbackAlignment(k_fb), sizes, k_net)


def rule_dfa(sizes, key):
    """The registered rule `dfa`: direct feedback alignment, settle-then-update."""
    k_net, k_fb = jax.random.split(key)
    return pathway_rule(DirectFeedbackAlignment(k_fb), sizes, k_net)


def rule_sign(sizes, key):
    """The registered rule `sign`: sign-symmetric feedback, settle-then-update."""
    return pathway_rule(SignSymmetry(), sizes, key)


def rule_kp(sizes, key):
    """The registered rule `kp`: Kolen-Pollack (B learns W's transposed update; both decay
    by 1e-3 per step), settle-then-update."""
    k_net, k_fb = jax.random.split(key)
    return pathway_rule(KolenPollack(k_fb, weight_decay=1e-3), sizes, k_net)


def rule_weight_mirror(sizes, key):
    """The registered rule `wm`: B mirrors W from noise (`circuits.alignment.WeightMirror`,
    sigma 1, decay 1: B -> W^T), settle-then-update."""
    k_net, k_fb = jax.random.split(key)
    return pathway_rule(WeightMirror(k_fb), sizes, k_net)


def rule_information_alignment(sizes, key):
    """The registered rule `ia`: B by information alignment from noise
    (`circuits.alignment.InformationAlignment`, sigma 1, null 1, decay 0.1),
    settle-then-update."""
    k_net, k_fb = jax.random.split(key)
    return pathway_rule(InformationAlignment(k_fb), sizes, k_net)


def rule_symmetric_alignment(sizes, key):
    """The registered rule `sa`: B by symmetric alignment from exact estimates of W
    (`circuits.alignment.SymmetricAlignment`, decay 1: B -> W^T), settle-then-update."""
    k_net, k_fb = jax.random.split(key)
    return pathway_rule(SymmetricAlignment(k_fb), sizes, k_net)


def rule_align_zero(sizes, key):
    """The registered rule `align-zero`: credit from the network at birth (B = W(0)^T, its
    slopes and rates; `linearised=True`), settle-then-update: the gradient of the
    NTK-linearised network, BP's as the width grows (input-weight alignment, after
    Boopathy & Fiete 2022; our reconstruction from the principle the paper's abstract
    states, its rule definitions were not available to us; `theory/ntk_alignment.py`)."""
    net = FeedbackMLP(sizes, key, activation="tanh", feedback=InitialTransport(), linearised=True)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-3)), 32)


def rule_align_ada(sizes, key):
    """The registered rule `align-ada`: errors through the weights at birth (B = W(0)^T,
    `InitialTransport`), the current slopes and rates, settle-then-update (the adaptive
    variant of `align-zero`)."""
    return pathway_rule(InitialTransport(), sizes, key)
