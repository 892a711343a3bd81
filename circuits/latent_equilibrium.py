"""Latent Equilibrium: prospective rate neurons that learn while the inputs stream in.

Haider, Ellenberger, Kriener, Jordan, Senn & Petrovici 2021, "Latent Equilibrium: A unified
learning theory for arbitrarily fast computation with arbitrarily slow neurons" (NeurIPS).
Layers l = 1..L, input r_0 = x(t), target y(t):

    tau du_l/dt = -u_l + W_l r_{l-1} + b_l + e_l
    ubreve_l    = u_l + tau du_l/dt  = W_l r_{l-1} + b_l + e_l        (prospective voltage)
    r_l         = phi_l(ubreve_l)              (ordinary neurons, prospective=False: phi_l(u_l))
    e_l         = phi_l'(ubreve_l) * B_l (ubreve_{l+1} - W_{l+1} r_l - b_{l+1}),     l < L
    e_L         = beta phi_L'(ubreve_L) (y - r_L)
    dW_l/dt     = eta_l e_l r_{l-1}^T,    db_l/dt = eta_l e_l          (always on)

B_l = W_{l+1}^T is LE as published; any feedback pathway (`circuits.feedback`) can replace
it. With no error the prospective voltages are the feed-forward values W_l r_{l-1}(t) + b_l
at every instant: the network answers at once, while ordinary leaky neurons lag by about
tau per layer.

The errors are defined implicitly (e_l enters ubreve_l, which enters e_l and e_{l-1}). Here
the error neurons relax to their right-hand side with a fast time constant,
`tau_error de_l/dt = -e_l + (...)`: Euler with `dt = tau_error` is the published scheme, in
which the errors use the previous step's voltages, and tau_error -> 0 is the algebraic limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

import dynlearn
from circuits.backprop import ACTIVATIONS, init_layers
from circuits.feedback import (
    AbstractFeedback,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    KolenPollack,
    SignSymmetry,
    WeightTransport,
)

__all__ = [
    "LENetwork",
    "feedforward_voltages",
    "slope",
    "check_step",
    "check_batch",
    "learn_on_stream",
    "n_streams",
    "forward_weights",
    "always_on_rule",
    "pathway_rule",
]


def slope(phi, v: Array) -> Array:
    """phi'(v) elementwise (forward-mode, fused with phi by XLA)."""
    return jax.jvp(phi, (v,), (jnp.ones_like(v),))[1]


def feedforward_voltages(weights, biases, phis, x) -> list[Array]:
    """a_l = W_l phi_{l-1}(a_{l-1}) + b_l with a_0's rate x: the error-free steady state."""
    voltages, rate = [], x
    for w, b, phi in zip(weights, biases, phis):
        voltages.append(rate @ w.T + b)
        rate = phi(voltages[-1])
    return voltages


class LENetwork(dynlearn.AbstractDynamics, dynlearn.AbstractLearner):
    """A layered Latent-Equilibrium network; weights learn always-on (`fit(mode=AlwaysOn())`).

    State: `{"neurons": {name: {"u", "e"}}, "params": {"weights", "biases"}}`, every neuron
    array `(streams, n_l)` (parallel streams share the weights; their updates are averaged).
    Layer names `hidden1, ..., output`. `args` is the drive: a `StimulusStream` with targets
    (learning) or any stimulus (no teacher).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; `key`: initialisation.
    - `activation`, `output_activation`: names from `circuits.backprop.ACTIVATIONS`.
    - `tau`: membrane time constant (reference: 20 with dt 0.01, Haider et al. 2021).
    - `tau_error`: error neurons' time constant (fast; the Euler step must not exceed it).
    - `beta`: nudging strength of the output error.
    - `eta`: learning rate, one value or one per layer.
    - `prospective`: rates from ubreve (LE) or from u (ordinary leaky neurons).
    - `feedback`: a pathway from `circuits.feedback` (default: weight transport).
    - `presentation`: how `learn_online` streams a batch (`dynlearn.Presentation`).
    """

    weights: list[Array]
    biases: list[Array]
    feedback: AbstractFeedback
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    tau_error: float = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    eta: tuple[float, ...] = eqx.field(static=True)
    prospective: bool = eqx.field(static=True)
    presentation: dynlearn.Presentation = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "sigmoid",
        output_activation: str = "linear",
        tau: float = 10.0,
        tau_error: float = 0.05,
        beta: float = 0.1,
        eta: float | Sequence[float] = 0.2,
        prospective: bool = True,
        feedback: AbstractFeedback = WeightTransport(),
        presentation: dynlearn.Presentation = dynlearn.Presentation(t_pres=1.0, dt=0.05),
    ):
        for name, value in (("activation", activation), ("output_activation", output_activation)):
            if value not in ACTIVATIONS:
                raise ValueError(f"{name}: unknown {value!r}; known: {sorted(ACTIVATIONS)}.")
        n_layers = len(sizes) - 1
        eta = (float(eta),) * n_layers if isinstance(eta, int | float) else tuple(map(float, eta))
        if len(eta) != n_layers or min(eta) < 0:
            raise ValueError(f"eta: need one value >= 0 or {n_layers} (one per layer); got {eta}.")
        if not (tau > 0 and tau_error > 0 and beta >= 0):
            raise ValueError(
                f"need tau > 0, tau_error > 0 and beta >= 0; got tau={tau}, "
                f"tau_error={tau_error}, beta={beta}."
            )
        check_step(
            presentation.dt, {"tau": tau, "tau_error": tau_error} | feedback.time_constants()
        )
        self.weights, self.biases = init_layers(sizes, key)
        self.feedback = feedback.bind(sizes)
        self.activation = activation
        self.output_activation = output_activation
        self.tau, self.tau_error, self.beta = float(tau), float(tau_error), float(beta)
        self.eta = eta
        self.prospective = bool(prospective)
        self.presentation = presentation

    # ----------------------------------------------------------------- structure
    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def layer_names(self) -> list[str]:
        n_hidden = len(self.weights) - 1
        return [f"hidden{i}" for i in range(1, n_hidden + 1)] + ["output"]

    @property
    def phis(self) -> list:
        hidden = ACTIVATIONS[self.activation]
        return [hidden] * (len(self.weights) - 1) + [ACTIVATIONS[self.output_activation]]

    def params(self) -> dict:
        """The plastic arrays: weights, biases and a plastic pathway's matrices (or None)."""
        return {
            "weights": list(self.weights),
            "biases": list(self.biases),
            "feedback": self.feedback.params(),
        }

    def with_params(self, params: dict) -> LENetwork:
        feedback = self.feedback.with_params(params["feedback"])
        return eqx.tree_at(
            lambda n: (n.weights, n.biases, n.feedback),
            self,
            (params["weights"], params["biases"], feedback),
        )

    def init_state(self, x: Array | None = None) -> dict:
        """The error-free steady state for input `x` `(streams, n_in)` (default: one stream
        of zeros), with the current weights as the plastic part of the state (and a
        pathway's own state, e.g. PAL's noise and filters, under `neurons["pathway"]`)."""
        x = jnp.zeros((1, self.sizes[0])) if x is None else x
        voltages = feedforward_voltages(self.weights, self.biases, self.phis, x)
        neurons = {
            name: {"u": v, "e": jnp.zeros_like(v)} for name, v in zip(self.layer_names, voltages)
        }
        rates = [phi(v) for phi, v in zip(self.phis, voltages)]
        pathway = self.feedback.init_state(self.weights, rates[1:])
        if pathway is not None:
            neurons["pathway"] = pathway
        return {"neurons": neurons, "params": self.params()}

    def expected_state(self, y: dict) -> dict:
        """`init_state` for as many parallel streams as `y` has."""
        return self.init_state(jnp.zeros((n_streams(y), self.sizes[0])))

    # ----------------------------------------------------------------- dynamics
    def vector_field(self, t, state, drive):
        x, y = dynlearn.input_and_target(drive, t)
        params = state["params"]
        feedback = self.feedback.with_params(params["feedback"])
        neurons = [state["neurons"][name] for name in self.layer_names]
        pathway = state["neurons"].get("pathway")
        voltages, rates, basal = self.sweep(params, neurons, x, feedback.perturbation(pathway))
        error_targets = self._error_targets(feedback, params, voltages, rates, basal, y)
        d_neurons = {
            name: {
                "u": (b + n["e"] - n["u"]) / self.tau,
                "e": (target - n["e"]) / self.tau_error,
            }
            for name, n, b, target in zip(self.layer_names, neurons, basal, error_targets)
        }
        presynaptic = [x] + rates[:-1]
        n_streams = x.shape[0]
        d_weights = [
            eta * (n["e"].T @ r) / n_streams for eta, n, r in zip(self.eta, neurons, presynaptic)
        ]
        d_biases = [eta * jnp.mean(n["e"], axis=0) for eta, n in zip(self.eta, neurons)]
        d_feedback = feedback.rate(params["weights"], d_weights, pathway, rates[1:])
        if pathway is not None:
            d_neurons["pathway"] = feedback.state_rates(pathway, rates[1:], d_weights)
            d_weights = feedback.forward_rates(pathway, d_weights)
        decay = feedback.decay()
        if decay:
            d_weights = [d - decay * w for d, w in zip(d_weights, params["weights"])]
        d_params = {"weights": d_weights, "biases": d_biases, "feedback": d_feedback}
        return {"neurons": d_neurons, "params": d_params}

    def diffusion(self, t, state, drive):
        pathway = state["neurons"].get("pathway")
        noise = None if pathway is None else self.feedback.state_noise(pathway)
        if noise is None:
            return None
        neurons = {name: None for name in self.layer_names} | {"pathway": noise}
        return {"neurons": neurons, "params": None}

    def sweep(self, params, neurons, x, perturbation=None):
        """Bottom-up: basal input W_l r_{l-1} + b_l, voltage (ubreve_l or u_l, plus a
        pathway's perturbation of hidden layers, e.g. PAL's noise), rate."""
        n_hidden = len(self.weights) - 1
        perturbation = perturbation or [0.0] * n_hidden
        voltages, rates, basal, rate = [], [], [], x
        for k, (w, b, phi, n) in enumerate(
            zip(params["weights"], params["biases"], self.phis, neurons)
        ):
            basal.append(rate @ w.T + b)
            voltage = basal[-1] + n["e"] if self.prospective else n["u"]
            voltages.append(voltage + perturbation[k] if k < n_hidden else voltage)
            rate = phi(voltages[-1])
            rates.append(rate)
        return voltages, rates, basal

    def _error_targets(self, feedback, params, voltages, rates, basal, y):
        """Right-hand sides of the error neurons: top-down through B_l from the layer above,
        or, for a direct pathway, from the output layer."""
        phis = self.phis
        if y is None:
            top = jnp.zeros_like(rates[-1])
        else:
            top = self.beta * slope(phis[-1], voltages[-1]) * (y - rates[-1])
        matrices = feedback.matrices(params["weights"])
        targets = [top]
        for i in reversed(range(len(matrices))):
            source = -1 if feedback.direct else i + 1
            mismatch = voltages[source] - basal[source]
            targets.insert(0, slope(phis[i], voltages[i]) * (mismatch @ matrices[i].T))
        return targets

    # ----------------------------------------------------------------- learning
    def predict(self, x):
        """Output rates at the error-free steady state (the feed-forward pass)."""
        voltages = feedforward_voltages(self.weights, self.biases, self.phis, x)
        return self.phis[-1](voltages[-1])

    def pathway_errors(self, x, y) -> tuple[list[Array], list[Array]]:
        """Errors at the steady state in the weak-nudging limit (beta -> 0, scaled by
        1/beta), with the pathway's B: e_L = phi_L'(a_L)(y - r_L),
        e_l = phi_l'(a_l) * B_l e_{l+1} (direct pathways: B_l e_L). Returns (errors, rates
        with the input first). With B = W^T these are backprop's deltas."""
        voltages = feedforward_voltages(self.weights, self.biases, self.phis, x)
        rates = [x] + [phi(v) for phi, v in zip(self.phis, voltages)]
        errors = [slope(self.phis[-1], voltages[-1]) * (y - rates[-1])]
        matrices = self.feedback.matrices(self.weights)
        for i in reversed(range(len(matrices))):
            above = errors[-1] if self.feedback.direct else errors[0]
            errors.insert(0, slope(self.phis[i], voltages[i]) * (above @ matrices[i].T))
        return errors, rates

    def updates(self, x, y, key):
        """Settle-then-update: dL/dtheta-like updates from the pathway's errors
        (-e_l r_{l-1}^T, batch means), for any optax optimizer. Kolen-Pollack: B_l gets the
        transposed update of W_{l+1}, and both the decay."""
        x, y = check_batch(x, y, self.sizes)
        errors, rates = self.pathway_errors(x, y)
        n = x.shape[0]
        d_weights = [-(e.T @ r) / n for e, r in zip(errors, rates[:-1])]
        d_biases = [-jnp.mean(e, axis=0) for e in errors]
        decay = self.feedback.decay()
        d_feedback = None
        if self.feedback.plastic:
            d_feedback = [d.T + decay * b for d, b in zip(d_weights[1:], self.feedback.params())]
        d_weights = [d + decay * w for d, w in zip(d_weights, self.weights)]
        output = rates[-1]
        loss = 0.5 * jnp.mean(jnp.sum((y - output) ** 2, axis=-1))
        grads = self.with_params({"weights": d_weights, "biases": d_biases, "feedback": d_feedback})
        return grads, {"loss": loss, "output": output}

    def trainable(self):
        """Weights, biases and a plastic pathway's matrices (fixed random B stays fixed)."""
        spec = jax.tree.map(lambda _: False, self)
        feedback = spec.feedback
        if self.feedback.plastic:
            feedback = feedback.with_params(jax.tree.map(lambda _: True, self.feedback.params()))
        return eqx.tree_at(
            lambda n: (n.weights, n.biases, n.feedback),
            spec,
            ([True] * len(self.weights), [True] * len(self.biases), feedback),
        )

    def prunable(self):
        """The forward weights W_l (a plastic pathway's B is not pruned)."""
        return forward_weights(self)

    def learn_online(self, x, y, key):
        """Stream the batch (see `presentation`); weights and neurons evolve together."""
        return learn_on_stream(self, x, y, key)


def forward_weights(circuit) -> PyTree[bool]:
    """Filter selecting only `circuit.weights`, the forward weight matrices."""
    spec = jax.tree.map(lambda _: False, circuit)
    return eqx.tree_at(lambda n: n.weights, spec, [True] * len(circuit.weights))


def learn_on_stream(circuit, x, y, key):
    """Always-on learning shared by the streaming circuits: present the batch as
    `circuit.presentation` says, from `circuit.init_state` of the first samples, in one
    `simulate` whose state holds the plastic weights; `key` draws any noise (somatic, PAL).
    Returns `(learned circuit, {"loss", "output"})`, the metrics of the circuit before the
    batch (its `predict`, squared error)."""
    x, y = check_batch(x, y, circuit.sizes)
    output = circuit.predict(x)
    loss = 0.5 * jnp.mean(jnp.sum((y - output) ** 2, axis=-1))
    stream = circuit.presentation.stream(x, y)
    end = dynlearn.simulate(
        circuit,
        circuit.init_state(stream.samples[0]),
        0.0,
        stream.t1,
        args=stream,
        dt=circuit.presentation.dt,
        key=key,
        check=False,
    ).y1
    return circuit.with_params(end["params"]), {"loss": loss, "output": output}


def check_step(dt: float, time_constants: dict[str, float]) -> None:
    """Refuse an Euler step longer than the fastest time constant (Euler's stability bound
    on a leak is 2 tau; at dt = tau the leak is applied in one step)."""
    name, fastest = min(time_constants.items(), key=lambda item: item[1])
    if dt > fastest:
        raise ValueError(
            f"dt={dt} is larger than the fastest time constant, {name}={fastest:.4g}; use "
            f"dt <= {fastest:.4g} (or slow that time constant down)."
        )


def n_streams(state) -> int:
    """The number of parallel streams of a `{"neurons": {layer: {quantity: (streams, n)}}}`
    state (a `ValueError` if it is not one)."""
    try:
        return jax.tree.leaves(state["neurons"])[0].shape[0]
    except (TypeError, KeyError, IndexError, AttributeError) as err:
        raise ValueError(
            "y0: expected a state {'neurons': {layer: {quantity: (streams, n)}}, 'params': ...} "
            f"as made by init_state; got {type(state).__name__}."
        ) from err


def check_batch(x, y, sizes):
    """Shapes of a batch against layer sizes (at trace time), finiteness on eager calls."""
    if x.ndim != 2 or x.shape[-1] != sizes[0]:
        raise ValueError(
            f"x: expected a batch (batch, {sizes[0]}) for layer sizes {list(sizes)}; got shape "
            f"{x.shape}."
        )
    if y is not None and y.shape != (x.shape[0], sizes[-1]):
        raise ValueError(
            f"y: expected targets of shape ({x.shape[0]}, {sizes[-1]}) for output width "
            f"{sizes[-1]}; got {y.shape}."
        )
    return dynlearn.check_finite((x, y), "inputs (x, y)", when_traced=False)


def pathway_rule(feedback: AbstractFeedback, sizes: Sequence[int], key: PRNGKeyArray):
    """A settle-then-update rule (`dynlearn.rules`): a tanh rate network whose hidden errors
    travel through `feedback` (`LENetwork.updates`), Adam 1e-3, batches of 32."""
    net = LENetwork(sizes, key, activation="tanh", feedback=feedback)
    return net, {"optimizer": optax.adam(1e-3), "batch_size": 32}


def always_on_rule(
    sizes: Sequence[int], key: PRNGKeyArray, feedback: AbstractFeedback = WeightTransport()
):
    """An always-on Latent-Equilibrium network as a registered rule (`dynlearn.rules`):
    tanh, eta 1/ms, tau_error 0.1 ms, 16 parallel streams, t_pres 1 ms, dt 0.1 ms; fit
    batches of 320 (20 presentations per stream). Rule `le` is this with B = W^T."""
    net = LENetwork(
        sizes,
        key,
        activation="tanh",
        eta=1.0,
        tau_error=0.1,
        feedback=feedback,
        presentation=dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=16),
    )
    return net, {"mode": dynlearn.AlwaysOn(), "batch_size": 320}


def rule(sizes: Sequence[int], key: PRNGKeyArray):
    """The registered rule `le`: `always_on_rule` with weight transport (B = W^T)."""
    return always_on_rule(sizes, key)


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
