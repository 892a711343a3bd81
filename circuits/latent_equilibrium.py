r"""Latent Equilibrium: prospective rate neurons that learn while the inputs stream in.

Haider, Ellenberger, Kriener, Jordan, Senn & Petrovici 2021, "Latent Equilibrium: A unified
learning theory for arbitrarily fast computation with arbitrarily slow neurons" (NeurIPS).
Layers $l = 1, \dots, L$, input $r_0 = x(t)$, target $y(t)$:

$$
\begin{array}{rcll}
\tau\, du_l/dt & = & -u_l + W_l r_{l-1} + b_l + e_l & \\
\breve u_l & = & u_l + \tau\, du_l/dt = W_l r_{l-1} + b_l + e_l
  & \text{(prospective voltage)} \\
r_l & = & \phi_l(\breve u_l) & \text{(ordinary neurons, prospective=False: } \phi_l(u_l)) \\
e_l & = & \phi_l'(\breve u_l) \odot B_l (\breve u_{l+1} - W_{l+1} r_l - b_{l+1}) & l < L \\
e_L & = & \beta\, \phi_L'(\breve u_L) \odot (y - r_L) & \\
dW_l/dt & = & \eta_l e_l r_{l-1}^\top, \quad db_l/dt = \eta_l e_l & \text{(always on)}
\end{array}
$$

$B_l = W_{l+1}^\top$ is LE as published; any feedback pathway (`circuits.feedback`, PAL) can
replace it. With no error the prospective voltages are the feed-forward values
$W_l r_{l-1}(t) + b_l$ at every instant: the network answers at once, while ordinary leaky
neurons lag by about $\tau$ per layer.

Ordinary neurons (`prospective=False`, Haider et al.'s comparison network) use $u_l$ wherever LE
uses $\breve u_l$: rates $\phi_l(u_l)$ and errors $e_l = \phi_l'(u_l)\, B_l (u_{l+1} - W_{l+1} r_l -
b_{l+1})$. While a layer catches up with a changing input, its voltage differs from its bottom-up
prediction, and that lag is sent down as an error even without a target: the ordinary network is not
a plain low-pass chain but one whose layers are also driven by these lag errors (the lags in
`theory/le_no_lag.py`, 1.0 / 2.2 / 3.5 / 5.1 tau for 1-4 layers, are this network's), and with a
target it learns them (`theory/le_short_presentation.py`).

The errors are defined implicitly ($e_l$ enters $\breve u_l$, which enters $e_l$ and
$e_{l-1}$). Here the error neurons relax to their right-hand side with a fast time constant,
$\tau_\mathrm{error}\, de_l/dt = -e_l + (\dots)$: Euler with `dt = tau_error` is the
published scheme, in which the errors use the previous step's voltages, and
$\tau_\mathrm{error} \to 0$ is the algebraic limit.

A pathway's exploration noise xi_l (PAL) perturbs hidden layer l's prospective voltage and
rates, so the layers above carry it (what PAL's B learns from); it is not a prediction
error, and by default the error neurons below compare the noise-free voltage with its
prediction, e_{l-1} = phi' B (ubreve_l - xi_l - W_l r_{l-1} - b_l). With `noise_in_errors=True`
the noise is sent down too, as in the PAL paper, which then low-passes the forward updates
(`tau_lo`) to average it out. Measured during development with rule `pal`'s settings on
mnist5k's validation split (784-H-H-10, 10 epochs, 3 seeds): with the noise in the errors
PAL reached 86.6 (H = 20) and 84.6 (H = 100), below fixed random B (88.5, 91.0); without,
89.0 and 92.4 (test set, H = 100: 84.97 ± 1.40 and 92.77 ± 0.17, `dynlearn run
feedback-comparison`; all with constant rates, the rule then). With one hidden layer the
option changes nothing (the output has no noise).

With `tau_lo`, the forward-weight updates pass through a low-pass filter, $\tau_\mathrm{lo}\,
dF_l/dt = \eta_l e_l r_{l-1}^\top - F_l$, $dW_l/dt = F_l$, which averages out the exploration noise
a PAL pathway puts into the errors (Max et al. 2024).

The circuit writes only these equations (`vector_field`: neurons, error neurons, filters;
`plasticity`: dW/dt, db/dt and the pathway's dB/dt); streaming a batch through it is
`fit(..., dynlearn.AlwaysOn(presentation))`.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import (
    AbstractLayered,
    feedforward,
    forward_weights,
    init_layers,
    layer_rates,
    learning_filter,
    phi_of,
    slope,
)
from circuits.feedback import (
    AbstractFeedback,
    FeedbackAlignment,
    Signals,
    WeightTransport,
    bind_pathway,
)
from circuits.pal import PAL

__all__ = [
    "FORWARD",
    "LENetwork",
    "always_on_rule",
    "le_rule",
    "rule",
    "rule_le_fa",
    "rule_pal",
    "FORWARD_N0",
    "LE_KINDS",
    "FORWARD_RMS",
    "FORWARD_RMS_PER_NEURON",
    "PAL_SETTINGS",
    "with_forward_plasticity",
]


class _Sweep(eqx.Module):
    """One bottom-up pass: basal inputs W_l r_{l-1} + b_l, voltages (with a pathway's
    perturbation of hidden layers), rates."""

    basal: list[Array]
    voltages: list[Array]
    rates: list[Array]
    noise: list  # the pathway's perturbation of each hidden layer (0.0 without)


class LENetwork(AbstractLayered, dynlearn.AbstractPlastic):
    r"""A layered Latent-Equilibrium network whose weights learn always-on.

    State: `{name: {"u", "e"}}` for layers `hidden1, ..., output`, every array `(streams,
    n_l)` (parallel streams share the weights); a pathway's own state (PAL: noise and
    filters) under `"pathway"`; the low-pass filtered updates under `"forward_lp"` when
    `tau_lo` is set. `args` is the drive: a `StimulusStream` with targets (learning) or any
    stimulus (no teacher).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; `key`: initialisation.
    - `activation`, `output_activation`: names from `circuits._layers.ACTIVATIONS`.
    - `tau`: membrane time constant (reference: 20 with dt 0.01, Haider et al. 2021).
    - `tau_error`: error neurons' time constant (fast; the Euler step must not exceed it).
    - `beta`: nudging strength of the output error.
    - `eta`: learning rate, one value or one per layer.
    - `prospective`: rates from $\breve u$ (LE) or from $u$ (ordinary leaky neurons).
    - `feedback`: a pathway from `circuits.feedback` (default: weight transport).
    - `tau_lo`: low-pass time constant of the forward updates (None: unfiltered).
    - `noise_in_errors`: whether a pathway's exploration noise in a hidden layer is also
      sent down as part of that layer's mismatch (default False, see the module docstring).
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
    tau_lo: float | None = eqx.field(static=True)
    noise_in_errors: bool = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        feedback: AbstractFeedback = WeightTransport(),
        eta: float | Sequence[float] = 0.2,
        activation: str = "sigmoid",
        output_activation: str = "linear",
        tau: float = 10.0,
        tau_error: float = 0.05,
        beta: float = 0.1,
        prospective: bool = True,
        tau_lo: float | None = None,
        noise_in_errors: bool = False,
    ):
        phi_of(activation, "activation")
        phi_of(output_activation, "output_activation")
        if not (tau > 0 and tau_error > 0 and beta >= 0):
            raise ValueError(
                f"need tau > 0, tau_error > 0 and beta >= 0; got tau={tau}, "
                f"tau_error={tau_error}, beta={beta}."
            )
        if tau_lo is not None and not tau_lo > 0:
            raise ValueError(f"tau_lo must be > 0 or None; got {tau_lo}.")
        self.eta = layer_rates(eta, len(sizes) - 1)
        self.weights, self.biases = init_layers(sizes, key)
        self.feedback = bind_pathway(feedback, sizes, self.weights)
        self.activation = activation
        self.output_activation = output_activation
        self.tau, self.tau_error, self.beta = float(tau), float(tau_error), float(beta)
        self.prospective = bool(prospective)
        self.tau_lo = None if tau_lo is None else float(tau_lo)
        self.noise_in_errors = bool(noise_in_errors)

    # ----------------------------------------------------------------- structure
    def time_constants(self):
        return {"tau": self.tau, "tau_error": self.tau_error}

    def components(self):
        return {"pathway": self.feedback}

    def trainable(self):
        """Weights, biases and a plastic pathway's matrices (fixed random B stays fixed)."""
        return learning_filter(self, ("weights", "biases"), pathway="feedback")

    def prunable(self):
        """The forward weights W_l (a plastic pathway's B is not pruned)."""
        return forward_weights(self)

    def init_state(self, x: Array | None = None) -> dict:
        """The error-free steady state for input `x` `(streams, n_in)` (default: one stream
        of zeros), a pathway's own state for it, and empty update filters."""
        x = jnp.zeros((1, self.sizes[0])) if x is None else x
        voltages = feedforward(self.weights, self.biases, self.phis, x)
        state = {
            name: {"u": v, "e": jnp.zeros_like(v)} for name, v in zip(self.layer_names, voltages)
        }
        rates = [phi(v) for phi, v in zip(self.phis, voltages)]
        pathway = self.feedback.init_state(self._signals(rates))
        if pathway is not None:
            state["pathway"] = pathway
        if self.tau_lo is not None:
            state["forward_lp"] = [jnp.zeros_like(w) for w in self.weights]
        return state

    # ----------------------------------------------------------------- dynamics
    def vector_field(self, t, y, drive):
        x, target = dynlearn.input_and_target(drive, t)
        s = self._sweep(y, x)
        error_targets = self._error_targets(s, target)
        d = {
            name: {
                "u": (b + y[name]["e"] - y[name]["u"]) / self.tau,
                "e": (e_target - y[name]["e"]) / self.tau_error,
            }
            for name, b, e_target in zip(self.layer_names, s.basal, error_targets)
        }
        if "pathway" in y:
            d["pathway"] = self.feedback.vector_field(t, y["pathway"], self._signals(s.rates))
        if self.tau_lo is not None:
            raw = self._weight_rates(y, s, x)
            d["forward_lp"] = [(r - f) / self.tau_lo for r, f in zip(raw, y["forward_lp"])]
        return d

    def plasticity(self, t, y, drive):
        """dW_l/dt = eta_l e_l r_{l-1}^T (low-passed with `tau_lo`), db_l/dt = eta_l e_l
        (stream means), minus the pathway's forward decay; the pathway's own dB/dt."""
        x, _ = dynlearn.input_and_target(drive, t)
        s = self._sweep(y, x)
        raw = self._weight_rates(y, s, x)
        d_biases = [
            eta * jnp.mean(y[name]["e"], axis=0) for eta, name in zip(self.eta, self.layer_names)
        ]
        signals = self._signals(s.rates, raw)
        d_feedback = self.feedback.plasticity(t, y.get("pathway"), signals)
        d_weights = raw if self.tau_lo is None else list(y["forward_lp"])
        if decay := self.feedback.forward_decay:
            d_weights = [d - decay * w for d, w in zip(d_weights, self.weights)]
        return eqx.tree_at(
            lambda n: (n.weights, n.biases, n.feedback), self, (d_weights, d_biases, d_feedback)
        )

    def _weight_rates(self, y, s: _Sweep, x) -> list[Array]:
        presynaptic = [x] + s.rates[:-1]
        return [
            eta * (y[name]["e"].T @ r) / x.shape[0]
            for eta, name, r in zip(self.eta, self.layer_names, presynaptic)
        ]

    def _signals(self, rates, weight_rates=None) -> Signals:
        n_hidden = len(self.weights) - 1
        above = [rates[-1] if self.feedback.direct else rates[k + 1] for k in range(n_hidden)]
        return Signals(list(self.weights), above, weight_rates, rates[:n_hidden])

    def _sweep(self, y, x) -> _Sweep:
        n_hidden = len(self.weights) - 1
        extra = None if "pathway" not in y else self.feedback.perturbation(y["pathway"])
        extra = extra or [0.0] * n_hidden
        basal, voltages, rates, rate = [], [], [], x
        for k, (w, b, phi, name) in enumerate(
            zip(self.weights, self.biases, self.phis, self.layer_names)
        ):
            basal.append(rate @ w.T + b)
            voltage = basal[-1] + y[name]["e"] if self.prospective else y[name]["u"]
            voltages.append(voltage + extra[k] if k < n_hidden else voltage)
            rate = phi(voltages[-1])
            rates.append(rate)
        return _Sweep(basal, voltages, rates, list(extra))

    def _error_targets(self, s: _Sweep, target) -> list[Array]:
        """Right-hand sides of the error neurons: top-down through B_l from the layer above,
        or, for a direct pathway, from the output layer."""
        phis = self.phis
        if target is None:
            top = jnp.zeros_like(s.rates[-1])
        else:
            top = self.beta * slope(phis[-1], s.voltages[-1]) * (target - s.rates[-1])
        matrices = self.feedback.matrices(self.weights)
        targets = [top]
        for i in reversed(range(len(matrices))):
            source = -1 if self.feedback.direct else i + 1
            mismatch = s.voltages[source] - s.basal[source]
            if not self.noise_in_errors and source != -1 and source < len(s.noise):
                mismatch = mismatch - s.noise[source]  # exploration is not an error
            targets.insert(0, slope(phis[i], s.voltages[i]) * (mismatch @ matrices[i].T))
        return targets

    # ----------------------------------------------------------------- learning
    def predict(self, x):
        """Output rates at the error-free steady state (the feed-forward pass)."""
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return self.phis[-1](feedforward(self.weights, self.biases, self.phis, x)[-1])


FORWARD_RMS = dynlearn.RMSNormalised(tau=2000.0, lr=1e-2, scope="forward")
# one running mean square per postsynaptic neuron (a neuron-wide plasticity gain); its rate
# chosen on mnist5k's validation split (see `always_on_rule`)
FORWARD_RMS_PER_NEURON = dynlearn.RMSNormalised(tau=2000.0, lr=3e-3, scope="forward", per="neuron")
FORWARD_RMS_BY = {"synapse": FORWARD_RMS, "neuron": FORWARD_RMS_PER_NEURON}
FORWARD_N0 = 8000.0  # the option's gain, 1/(1 + n/n_0): the microcircuit's


def with_forward_plasticity(
    recipe: dynlearn.Recipe, n_0: float = FORWARD_N0, per: str = "synapse"
) -> dynlearn.Recipe:
    """An always-on recipe with the microcircuit's forward plasticity (`always_on_rule`'s
    option): its presentation, the normalisation per synapse (`FORWARD_RMS`, default) or
    per neuron (`FORWARD_RMS_PER_NEURON`), and the gain `inverse_time(n_0)` (default
    `FORWARD_N0`)."""
    if per not in FORWARD_RMS_BY:
        raise ValueError(f"per: expected one of {sorted(FORWARD_RMS_BY)}; got {per!r}.")
    gain = dynlearn.inverse_time(n_0)
    mode = dynlearn.AlwaysOn(recipe.mode.presentation, gain=gain, rms=FORWARD_RMS_BY[per])
    return recipe._replace(mode=mode)


def always_on_rule(
    sizes: Sequence[int],
    key: PRNGKeyArray,
    feedback: AbstractFeedback = WeightTransport(),
    tau_lo: float | None = None,
    rms: dynlearn.RMSNormalised | None = None,
    n_0: float | None = None,
    eta: float = 1.0,
) -> dynlearn.Recipe:
    """An always-on Latent-Equilibrium network: tanh, eta 1/ms (`eta`), tau_error 0.1 ms, 16
    parallel streams, t_pres 1 ms, dt 0.1 ms; batches of 320 (20 presentations per
    stream); by default the circuit's own constant rates, as in the LE and PAL papers
    (`rms`, `n_0`: a per-synapse normalisation and an annealed gain). The registered rules
    `le` (B = W^T), `le-fa` (fixed random B) and `pal` (B learned) are this with their
    forward synapses normalised per neuron and annealed (`le_rule`, `forward="neuron"`).

    The forward plasticity, measured (test sets, `dynlearn run feedback-comparison`,
    784-H-H-10; `le` / `le-fa` / `pal`): per synapse (`FORWARD_RMS`, lr 1e-2 per ms, the
    microcircuit's) and per neuron (`FORWARD_RMS_PER_NEURON`, lr 3e-3: one running mean
    square per postsynaptic neuron, a neuron-wide plasticity gain), each with the rates
    annealed as 1/(1 + n/8000), against constant rates. mnist5k at H = 10 (10 epochs, 10
    seeds): per neuron 88.75 / 85.00 / **87.20** (PAL +2.2 above random B; validation split
    +1.8), per synapse 88.62 / 86.43 / 87.12 (+0.7; validation +1.8), constant 88.87 /
    83.83 / 88.87 (3 seeds; validation +3.5). Full MNIST (5 epochs, 3 seeds) at H = 10: per
    neuron 90.71 / 87.21 / 89.49 (+2.3), per synapse 91.42 / 88.79 / 90.54, constant 91.38 /
    88.32 / 91.64; at 784-100-100-10 `le-fa` / `pal`: per neuron 96.31 / **96.39**, per
    synapse 96.8 / 96.9, constant 95.8 / 95.9 (`fa` 96.7). So per synapse lifts the deep
    network but also fixed random feedback at narrow widths (PAL's lead shrinks to +0.7);
    constant rates keep PAL's lead but leave the deep network short of 96; per neuron does
    both. A plausible reason, not measured: a neuron-wide gain keeps the direction of each
    neuron's update (where learned and random feedback differ) and equalises only its
    size. mnist5k width sweep per neuron (3 seeds): H = 20 91.23 / 90.13 / 90.33, H =
    50 93.50 / 92.53 / 92.80, H = 100 94.20 / 94.47 / 94.10. The per-neuron state is one
    number per neuron (docs/results/phase-free.md)."""
    net = LENetwork(
        sizes, key, activation="tanh", eta=eta, tau_error=0.1, feedback=feedback, tau_lo=tau_lo
    )
    presentation = dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=16)
    gain = None if n_0 is None else dynlearn.inverse_time(n_0)
    return dynlearn.Recipe(net, dynlearn.AlwaysOn(presentation, gain=gain, rms=rms), 320)


LE_KINDS = ("le", "le-fa", "pal")
FORWARD = ("neuron", "synapse", "constant")  # how the LE rules' forward synapses learn


def le_rule(
    kind: str,
    sizes: Sequence[int],
    key: PRNGKeyArray,
    pal: dict | None = None,
    forward: str = "neuron",
    **options,
) -> dynlearn.Recipe:
    """Rule `le`, `le-fa` or `pal` (`kind`); `pal` overrides `PAL_SETTINGS`. `forward`:
    how the forward synapses learn — `"neuron"` (the registered rules: each forward rate
    divided by its postsynaptic neuron's running RMS, `FORWARD_RMS_PER_NEURON`, and every
    rate annealed as 1/(1 + n/n_0)), `"synapse"` (the same per synapse, `FORWARD_RMS`: the
    microcircuit's forward plasticity) or `"constant"` (the circuit's own constant rates,
    as in the LE and PAL papers). `options` go to `always_on_rule` (`eta`, `n_0`, `tau_lo`;
    `rms` only with `"constant"`); with `"neuron"` or `"synapse"`, `n_0` (default
    `FORWARD_N0`) is the annealed gain's. Without options: the registered rule."""
    if kind not in LE_KINDS:
        raise ValueError(f"kind: expected one of {LE_KINDS}; got {kind!r}.")
    if forward not in FORWARD:
        raise ValueError(f"forward: expected one of {FORWARD}; got {forward!r}.")
    if forward != "constant" and options.get("rms") is not None:
        raise ValueError(f"rms: the forward plasticity {forward!r} sets its own; use 'constant'.")
    # with a forward plasticity, n_0 is its gain's (the mode is built once, below)
    n_0 = options.pop("n_0", None) if forward != "constant" else None
    if kind == "le":
        recipe = always_on_rule(sizes, key, WeightTransport(), **options)
    else:
        k_net, k_fb = jax.random.split(key)
        if kind == "le-fa":
            feedback = FeedbackAlignment(k_fb)
        else:
            feedback = PAL(k_fb, **(PAL_SETTINGS | (pal or {})))
        recipe = always_on_rule(sizes, k_net, feedback, **options)
    if forward == "constant":
        return recipe
    return with_forward_plasticity(recipe, FORWARD_N0 if n_0 is None else n_0, per=forward)


def rule(sizes: Sequence[int], key: PRNGKeyArray) -> dynlearn.Recipe:
    """The registered rule `le`: `always_on_rule` with weight transport (B = W^T), forward
    synapses normalised per neuron and annealed (`le_rule`)."""
    return le_rule("le", sizes, key)


def rule_le_fa(sizes: Sequence[int], key: PRNGKeyArray) -> dynlearn.Recipe:
    """The registered rule `le-fa`: `always_on_rule` with fixed random feedback (always-on
    feedback alignment; PAL's like-for-like reference), forward synapses normalised per
    neuron and annealed (`le_rule`)."""
    return le_rule("le-fa", sizes, key)


PAL_SETTINGS = {"sigma": 0.1, "eta": 0.9, "alpha": 1.1e-3}


def rule_pal(sizes: Sequence[int], key: PRNGKeyArray, **pal) -> dynlearn.Recipe:
    """The registered rule `pal`: an always-on LE network (as rule `le`) whose feedback
    weights are learned by PAL (sigma 0.1, eta 0.9, alpha 1.1e-3; `pal` overrides these PAL
    settings); the forward updates are not low-pass filtered; forward synapses normalised
    per neuron and annealed (`le_rule`; why, and the alternatives measured: see
    `always_on_rule`). The settings below were chosen with constant rates.

    Why these settings (full MNIST, 784-10-10-10, the last 10,000 training images held out,
    3 seeds): with sigma 0.03, eta 10, alpha 1e-4 (the previous rule) PAL collapsed as the
    narrow first layer saturated (|r| > 0.95 for 39% -> 70% of its units over 5 epochs,
    mean rho' 0.32 -> 0.17): B1's noise-driven signal, 1/2 sigma^2 (W2^T * <rho'_1
    rho'_2^T>) / alpha, shrank until B1 was mostly its own fluctuation (two runs differing
    only in the noise seed, forward weights frozen: B1 estimates 69-82 degrees apart; B2
    12-18), the input switches leaking through the 1 ms high-pass filter. A learned but
    drifting B1 is worse than a fixed random one (B1 learned, B2 frozen: 84.8 +/- 1.4;
    `le-fa` 88.6 +/- 1.0), so validation accuracy fell to 65.9 +/- 5.2. Noise 3.3x larger
    relative to the activity, alpha scaled by sigma^2 (B's size 1/2 sigma^2 / alpha kept)
    and eta by 1/sigma^2 (B's averaging time 1/(eta alpha) ~ 1000 ms kept): 91.5 +/- 0.2
    (never below 90.1 after the first epoch; B1 levels at ~50 degrees). Of that, about one
    point is B1's learning (B1 frozen at random with the new settings: 90.5 +/- 0.4); the
    rest is the larger noise acting on the top layer like weight decay (|W3| 1.9 vs 6.5).
    Ruled out: annealing (`inverse_time(20000)` helps PAL, 90.0, by keeping layer 1
    unsaturated, but costs `le-fa` 2 points), the output nudging leaking
    into B1 (without it B1 is as far off), B1 lagging a moving target (relaxed on frozen
    weights it is as far off), shorter noise / filter time constants. The mechanism, that
    B1's signal-to-noise ratio in a saturated layer grows with sigma: `dynlearn check
    pal_noise_scale`.

    Why no filter (mnist5k, 784-100-10, 10 epochs, 3 seeds, validation split: the last 20%
    of the training set): the previous rule low-passed the forward updates with tau_lo =
    100 ms, as the PAL paper does to average out the exploration noise. Here that filter,
    not the noise, cost the accuracy: with it 86.0 ± 0.3, without it 92.5 ± 0.5, against
    92.3 ± 0.1 for fixed random B (`le-fa`) and 91.6 ± 0.2 for `fa` (`dynlearn run
    always-on`). The filter delays the updates by
    tau_lo on average, 100 presentations of each of the 16 streams (1,600 samples): the
    weights follow old errors (a heavy-ball momentum of 0.999 per Euler step)."""
    return le_rule("pal", sizes, key, pal)
