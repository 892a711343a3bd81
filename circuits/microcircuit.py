"""The dendritic cortical microcircuit, with optional prospective (Latent-Equilibrium) rates.

Sacramento, Ponte Costa, Bengio & Senn 2018, "Dendritic cortical microcircuits approximate
the backpropagation algorithm" (NeurIPS); prospective rates from Haider et al. 2021 (NeurIPS).
Hidden layer k (1 <= k < L) has pyramidal neurons (soma u_k, basal v_B = W_k r_{k-1},
apical v_A) and interneurons u^I_k, one per neuron of layer k+1 (capacitance C = 1):

    du_k/dt   = -g_l u_k + g_B (v_B - u_k) + g_A (v_A - u_k)               (+ somatic noise)
    du^I_k/dt = -g_l u^I_k + g_D (W^IP_k r_k - u^I_k) + g_som (u_{k+1} - u^I_k)
    v_A       = B_k r_{k+1} + W^PI_k r^I_k
    output:     du_L/dt = -g_l u_L + g_B (W_L r_{L-1} - u_L) + g_nudge (y - u_L)

with rates r = phi(u) (ordinary) or r = phi(ubreve), ubreve = u + tau_eff du/dt, tau_eff =
C / (total conductance): the conductance-weighted mean of the compartments' potentials, which
answers without the somatic lag (prospective). The apical potential follows its input with
a fast dendritic time constant, tau_dend dv_A/dt = -v_A + B_k r_{k+1} + W^PI_k r^I_k (it
closes the loop top-down; Euler with dt = tau_dend uses the previous step's rates).

Plasticity, always on (Urbanczik & Senn 2014 for the forward weights):

    dW_k/dt    = eta_k [phi(u_k) - phi(vhat_k)] r_{k-1}^T,  vhat_k = g_B/(g_l+g_B+g_A) v_B
                                                           (output: g_B/(g_l+g_B) v_B)
    dW^IP_k/dt = eta_IP [phi(u^I_k) - phi(g_D/(g_l+g_D) W^IP_k r_k)] r_k^T
    dW^PI_k/dt = -eta_PI v_A (r^I_k)^T

Self-predicting state (`self_predicting`): W^PI_k = -B_k and
W^IP_k = g_B (g_l+g_D) / (g_D G_{k+1}) W_{k+1} with G_{k+1} = g_l+g_B+g_A for a hidden layer
above (g_l+g_B for the output); then, with no target, v_A = 0 and the apical potential
carries only the top-down error. (SCIENCE.md states the hidden-layer factor; below the
output, which has no apical compartment, the factor loses g_A.)
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits.backprop import ACTIVATIONS, init_layers
from circuits.feedback import AbstractFeedback, FeedbackAlignment
from circuits.latent_equilibrium import check_step, forward_weights, learn_on_stream, n_streams

__all__ = [
    "Conductances",
    "Microcircuit",
    "FrozenMicrocircuit",
    "Sweep",
    "self_predicting",
]


class Conductances(eqx.Module):
    """Conductances (per ms, C = 1) of the microcircuit.

    Defaults: the values of the Bern re-implementations of Sacramento et al. 2018
    (SCIENCE.md §3): leak 0.03, basal 0.1, apical 0.06, dendrite (interneuron) 0.1,
    somatic (interneuron nudging) 0.06; `nudge` is the output's target conductance
    (default g_som). The paper's own values differ (its Table S1).
    """

    leak: float = 0.03
    basal: float = 0.1
    apical: float = 0.06
    dendrite: float = 0.1
    somatic: float = 0.06
    nudge: float = 0.06

    def __check_init__(self):
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        bad = {k: v for k, v in values.items() if not (v >= 0 and v < float("inf"))}
        if bad:
            raise ValueError(f"Conductances: must be finite and >= 0; got {bad}.")
        for name in ("basal", "dendrite"):
            if not values[name] > 0:
                raise ValueError(
                    f"Conductances: {name} must be > 0 (it carries the feed-forward input and "
                    f"is divided by in vhat and the self-predicting weights); got 0."
                )

    @property
    def hidden(self) -> float:
        """Total conductance of a hidden pyramidal soma: g_l + g_B + g_A."""
        return self.leak + self.basal + self.apical

    def output(self, nudged: bool) -> float:
        return self.leak + self.basal + (self.nudge if nudged else 0.0)

    @property
    def interneuron(self) -> float:
        return self.leak + self.dendrite + self.somatic


class Microcircuit(dynlearn.AbstractDynamics, dynlearn.AbstractLearner):
    """Layers of dendritic microcircuits learning always-on (`fit(mode=AlwaysOn())`).

    State: `{"neurons": {name: {...}}, "params": {"weights", "inter_weights",
    "lateral_weights"}}`; hidden layers hold `u`, `u_inter`, `v_apical`, the output `u`, each
    `(streams, n)`. `args` is a `StimulusStream` with targets (voltage targets for the output
    soma, e.g. one-hot labels) or any stimulus (free network).

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; `key`: initialisation (weights, interneurons).
    - `conductances`: a `Conductances`.
    - `eta`: forward learning rate (one value or one per layer; default 3 for hidden layers,
      1 for the output); `eta_inter` (W^IP), `eta_lateral` (W^PI). Per ms: a sample shown
      for t_pres moves W by about eta t_pres times the rule's rate. The defaults were tuned
      here (digits, mnist5k, t_pres = 2 ms); the papers' values belong to their time scales.
    - `activation`: hidden rate function (default logistic); `output_activation`.
    - `prospective`: rates from the prospective voltage (LE) instead of the soma.
    - `feedback`: the top-down pathway B (default fixed random, as in the paper), any of
      `circuits.feedback` or `circuits.pal.PAL`; with a direct pathway (DFA) the apical
      dendrites and the interneurons of every hidden layer see the output layer.
    - `noise`: standard deviation of white somatic noise (per sqrt(ms)) in hidden
      pyramidal neurons (an SDE; `learn_online` draws it from its key); ordinary rates only.
    - `tau_dend`: apical time constant (the fastest; dt must not exceed it).
    - `presentation`: how `learn_online` streams a batch.
    - `t_settle`: how long `predict` lets the free network settle (default: 5 slowest
      somatic time constants, or 20 tau_dend per layer when prospective).
    """

    weights: list[Array]
    inter_weights: list[Array]
    lateral_weights: list[Array]
    feedback: AbstractFeedback
    direct: bool = eqx.field(static=True)
    conductances: Conductances = eqx.field(static=True)
    eta: tuple[float, ...] = eqx.field(static=True)
    eta_inter: float = eqx.field(static=True)
    eta_lateral: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True)
    prospective: bool = eqx.field(static=True)
    noise: float = eqx.field(static=True)
    tau_dend: float = eqx.field(static=True)
    presentation: dynlearn.Presentation = eqx.field(static=True)
    t_settle: float = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        conductances: Conductances = Conductances(),
        eta: float | Sequence[float] | None = None,
        eta_inter: float = 0.5,
        eta_lateral: float = 0.2,
        activation: str = "sigmoid",
        output_activation: str = "linear",
        prospective: bool = True,
        feedback: AbstractFeedback | None = None,
        noise: float = 0.0,
        tau_dend: float = 0.1,
        presentation: dynlearn.Presentation = dynlearn.Presentation(t_pres=2.0, dt=0.1),
        t_settle: float | None = None,
    ):
        for name, value in (("activation", activation), ("output_activation", output_activation)):
            if value not in ACTIVATIONS:
                raise ValueError(f"{name}: unknown {value!r}; known: {sorted(ACTIVATIONS)}.")
        n_layers = len(sizes) - 1
        if eta is None:  # tuned here on digits and mnist5k (t_pres 2 ms, 16-32 streams)
            eta = (3.0,) * (n_layers - 1) + (1.0,)
        eta = (float(eta),) * n_layers if isinstance(eta, int | float) else tuple(map(float, eta))
        if len(eta) != n_layers or min(eta) < 0 or eta_inter < 0 or eta_lateral < 0:
            raise ValueError(
                f"learning rates must be >= 0 (eta: one value or {n_layers}); got eta={eta}, "
                f"eta_inter={eta_inter}, eta_lateral={eta_lateral}."
            )
        if not (noise >= 0 and tau_dend > 0):
            raise ValueError(f"need noise >= 0 and tau_dend > 0; got {noise}, {tau_dend}.")
        if noise > 0 and prospective:
            raise ValueError(
                "noise: white somatic noise never reaches prospective rates (they follow the "
                "conductance-weighted mean of the compartments' inputs); use prospective=False "
                "or apical exploration noise (circuits.pal)."
            )
        g = conductances
        check_step(
            presentation.dt,
            {
                "1/(g_l+g_B+g_A)": 1 / g.hidden,
                "1/(g_l+g_D+g_som)": 1 / g.interneuron,
                "1/(g_l+g_B+g_nudge)": 1 / g.output(True),
                "tau_dend": tau_dend,
            }
            | (feedback.time_constants() if feedback is not None else {}),
        )
        k_forward, k_inter, k_lateral, k_feedback = jax.random.split(key, 4)
        self.weights, _ = init_layers(sizes, k_forward)
        feedback = feedback or FeedbackAlignment(k_feedback)
        self.feedback = feedback.bind(sizes)
        self.direct = feedback.direct
        # Interneuron weights start random: W^IP_k (n_src, n_k), W^PI_k (n_k, n_src), src the
        # layer above (or the output, for direct pathways).
        keys_inter = jax.random.split(k_inter, max(n_layers - 1, 1))
        keys_lateral = jax.random.split(k_lateral, max(n_layers - 1, 1))
        source = [n_layers if feedback.direct else k + 1 for k in range(1, n_layers)]
        self.inter_weights = [
            init_layers([sizes[k], sizes[src]], key)[0][0]
            for k, src, key in zip(range(1, n_layers), source, keys_inter)
        ]
        self.lateral_weights = [
            init_layers([sizes[src], sizes[k]], key)[0][0]
            for k, src, key in zip(range(1, n_layers), source, keys_lateral)
        ]
        self.conductances = g
        self.eta, self.eta_inter, self.eta_lateral = eta, float(eta_inter), float(eta_lateral)
        self.activation, self.output_activation = activation, output_activation
        self.prospective = bool(prospective)
        self.noise, self.tau_dend = float(noise), float(tau_dend)
        self.presentation = presentation
        if t_settle is None:
            t_settle = 20 * tau_dend * n_layers if prospective else 5 / g.output(False)
        self.t_settle = float(t_settle)

    # ----------------------------------------------------------------- structure
    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def layer_names(self) -> list[str]:
        return [f"hidden{i}" for i in range(1, len(self.weights))] + ["output"]

    @property
    def phis(self) -> list:
        hidden = ACTIVATIONS[self.activation]
        return [hidden] * (len(self.weights) - 1) + [ACTIVATIONS[self.output_activation]]

    def source(self, k: int) -> int:
        """Index of the layer whose rates reach hidden layer k's apical dendrites (and whose
        soma teaches its interneurons): the layer above, or the output (direct pathways)."""
        return len(self.weights) - 1 if self.direct else k + 1

    def attenuations(self) -> list[float]:
        """g_B / G_k: the free steady state of soma k is this times its basal potential."""
        g = self.conductances
        n_hidden = len(self.weights) - 1
        return [g.basal / g.hidden] * n_hidden + [g.basal / g.output(False)]

    def params(self) -> dict:
        """The plastic arrays (a plastic pathway's matrices under "feedback", else None)."""
        return {
            "weights": list(self.weights),
            "inter_weights": list(self.inter_weights),
            "lateral_weights": list(self.lateral_weights),
            "feedback": self.feedback.params(),
        }

    def with_params(self, params: dict) -> Microcircuit:
        names = ("weights", "inter_weights", "lateral_weights")
        values = tuple(params[n] for n in names) + (self.feedback.with_params(params["feedback"]),)
        return eqx.tree_at(
            lambda c: tuple(getattr(c, n) for n in names) + (c.feedback,), self, values
        )

    def init_state(self, x: Array | None = None) -> dict:
        """The feed-forward state for input `x` `(streams, n_in)`: somata at their free steady
        state with silent apical dendrites, interneurons equal to the layer above."""
        x = jnp.zeros((1, self.sizes[0])) if x is None else x
        somata, rate = [], x
        for w, a, phi in zip(self.weights, self.attenuations(), self.phis):
            somata.append(a * (rate @ w.T))
            rate = phi(somata[-1])
        neurons = {
            name: {
                "u": somata[k],
                "u_inter": somata[self.source(k)],
                "v_apical": jnp.zeros_like(somata[k]),
            }
            for k, name in enumerate(self.layer_names[:-1])
        }
        neurons["output"] = {"u": somata[-1]}
        rates = [phi(u) for phi, u in zip(self.phis, somata)]
        pathway = self.feedback.init_state(self.weights, rates[1:])
        if pathway is not None:  # e.g. PAL's noise and filters
            neurons["pathway"] = pathway
        return {"neurons": neurons, "params": self.params()}

    def expected_state(self, y: dict) -> dict:
        """`init_state` for as many parallel streams as `y` has."""
        return self.init_state(jnp.zeros((n_streams(y), self.sizes[0])))

    # ----------------------------------------------------------------- dynamics
    def vector_field(self, t, state, drive):
        x, y = dynlearn.input_and_target(drive, t)
        d_neurons, d_params = self.rates_of_change(state["params"], state["neurons"], x, y)
        return {"neurons": d_neurons, "params": d_params}

    def diffusion(self, t, state, drive):
        pathway = state["neurons"].get("pathway")
        pathway_noise = None if pathway is None else self.feedback.state_noise(pathway)
        if self.noise == 0 and pathway_noise is None:
            return None
        somatic = self.noise if self.noise > 0 else None
        neurons = {
            name: {"u": somatic, "u_inter": None, "v_apical": None}
            for name in self.layer_names[:-1]
        }
        neurons["output"] = {"u": None}
        if pathway is not None:
            neurons["pathway"] = pathway_noise
        return {"neurons": neurons, "params": None}

    def apical(self, neurons) -> list[Array]:
        """Apical potentials of the hidden layers, with a pathway's perturbation (PAL's
        exploration noise) added."""
        apical = [neurons[name]["v_apical"] for name in self.layer_names[:-1]]
        pathway = neurons.get("pathway")
        extra = None if pathway is None else self.feedback.perturbation(pathway)
        return apical if extra is None else [a + e for a, e in zip(apical, extra)]

    def frozen(self) -> FrozenMicrocircuit:
        """The neurons alone with the weights fixed (state: the `"neurons"` dict)."""
        return FrozenMicrocircuit(self)

    def sweep(self, params, neurons, x, y=None):
        """Bottom-up pass: basal potentials W_k r_{k-1}, voltages (prospective ubreve: the
        conductance-weighted mean of the inputs; else the soma u) and rates of the pyramidal
        neurons; then the interneurons' dendritic potentials W^IP_k r_k, voltages and rates."""
        g = self.conductances
        n_hidden = len(self.weights) - 1
        apical = self.apical(neurons)
        basal, voltages, rates, rate = [], [], [], x
        for k, (w, name, phi) in enumerate(zip(params["weights"], self.layer_names, self.phis)):
            n = neurons[name]
            basal.append(rate @ w.T)
            if not self.prospective:
                voltages.append(n["u"])
            elif k < n_hidden:
                voltages.append((g.basal * basal[k] + g.apical * apical[k]) / g.hidden)
            elif y is None:
                voltages.append(g.basal * basal[k] / g.output(False))
            else:
                voltages.append((g.basal * basal[k] + g.nudge * y) / g.output(True))
            rate = phi(voltages[k])
            rates.append(rate)
        dendrites, inter_voltages, inter_rates = [], [], []
        for k in range(n_hidden):
            dendrites.append(rates[k] @ params["inter_weights"][k].T)
            if self.prospective:  # nudged by the prospective voltage of the layer above
                teacher = voltages[self.source(k)]
                u_inter = (g.dendrite * dendrites[k] + g.somatic * teacher) / g.interneuron
            else:
                u_inter = neurons[self.layer_names[k]]["u_inter"]
            inter_voltages.append(u_inter)
            inter_rates.append(self.phis[self.source(k)](u_inter))
        return Sweep(basal, voltages, rates, dendrites, inter_voltages, inter_rates, apical)

    def rates_of_change(self, params, neurons, x, y=None, *, learn: bool = True):
        """`(d neurons/dt, d params/dt)` at a state (the second is None when not learning)."""
        g = self.conductances
        s = self.sweep(params, neurons, x, y)
        pathway = self.feedback.with_params(params["feedback"])
        feedback = pathway.matrices(params["weights"])
        d_neurons = {}
        for k, name in enumerate(self.layer_names[:-1]):
            n = neurons[name]
            src = self.source(k)
            teacher = neurons[self.layer_names[src]]["u"]
            apical_input = (
                s.rates[src] @ feedback[k].T + s.inter_rates[k] @ params["lateral_weights"][k].T
            )
            d_neurons[name] = {
                "u": g.basal * s.basal[k] + g.apical * s.apical[k] - g.hidden * n["u"],
                "u_inter": g.dendrite * s.dendrites[k]
                + g.somatic * teacher
                - g.interneuron * n["u_inter"],
                "v_apical": (apical_input - n["v_apical"]) / self.tau_dend,
            }
        u_out = neurons["output"]["u"]
        d_out = g.basal * s.basal[-1] - g.output(False) * u_out
        if y is not None:
            d_out = d_out + g.nudge * (y - u_out)
        d_neurons["output"] = {"u": d_out}
        if not learn:
            if "pathway" in neurons:
                d_neurons["pathway"] = pathway.state_rates(neurons["pathway"], s.rates[1:], None)
            return d_neurons, None
        d_params, d_pathway = self._plasticity(pathway, params, neurons, x, s)
        if d_pathway is not None:
            d_neurons["pathway"] = d_pathway
        return d_neurons, d_params

    def _plasticity(self, feedback, params, neurons, x, s: Sweep) -> tuple[dict, dict | None]:
        """Urbanczik-Senn for W, the interneuron rules for W^IP and W^PI (stream means), the
        pathway's rule for B; and the rate of change of the pathway's own state."""
        g = self.conductances
        n_streams = x.shape[0]
        presynaptic = [x] + s.rates[:-1]
        d_weights = [
            eta * ((rate - phi(a * b)).T @ pre) / n_streams
            for eta, rate, phi, a, b, pre in zip(
                self.eta, s.rates, self.phis, self.attenuations(), s.basal, presynaptic
            )
        ]
        state = neurons.get("pathway")
        d_state = None if state is None else feedback.state_rates(state, s.rates[1:], d_weights)
        d_feedback = feedback.rate(params["weights"], d_weights, state, s.rates[1:])
        if state is not None:
            d_weights = feedback.forward_rates(state, d_weights)
        if decay := feedback.decay():
            d_weights = [d - decay * w for d, w in zip(d_weights, params["weights"])]
        d_inter, d_lateral = [], []
        for k, name in enumerate(self.layer_names[:-1]):
            phi = self.phis[self.source(k)]
            predicted = phi(g.dendrite / (g.leak + g.dendrite) * s.dendrites[k])
            error = s.inter_rates[k] - predicted
            d_inter.append(self.eta_inter * (error.T @ s.rates[k]) / n_streams)
            apical = neurons[name]["v_apical"]
            d_lateral.append(-self.eta_lateral * (apical.T @ s.inter_rates[k]) / n_streams)
        d_params = {
            "weights": d_weights,
            "inter_weights": d_inter,
            "lateral_weights": d_lateral,
            "feedback": d_feedback,
        }
        return d_params, d_state

    # ----------------------------------------------------------------- learning
    def settle(self, x: Array, t_settle: float | None = None) -> dict:
        """Neurons of the free network (no target, weights fixed) after `t_settle` from
        `init_state(x)`."""
        t_settle = self.t_settle if t_settle is None else t_settle
        neurons0 = self.init_state(x)["neurons"]
        return dynlearn.simulate(
            self.frozen(), neurons0, 0.0, t_settle, args=x, dt=self.presentation.dt, check=False
        ).y1

    def predict(self, x):
        """Output rates of the free network after settling for `t_settle`."""
        neurons = self.settle(x)
        return self.sweep(self.params(), neurons, x).rates[-1]

    def learn_online(self, x, y, key):
        """Stream the batch (see `presentation`); neurons and all weights evolve together."""
        return learn_on_stream(self, x, y, key)

    def prunable(self):
        """The forward (bottom-up) weights W_l; interneuron, lateral and feedback matrices
        keep the circuit self-predicting and are not pruned."""
        return forward_weights(self)


class Sweep(eqx.Module):
    """What a bottom-up pass through the microcircuit computes (lists over layers)."""

    basal: list[Array]
    voltages: list[Array]
    rates: list[Array]
    dendrites: list[Array]
    inter_voltages: list[Array]
    inter_rates: list[Array]
    apical: list[Array]


class FrozenMicrocircuit(dynlearn.AbstractDynamics):
    """A microcircuit's neurons with its weights fixed; `args` is the drive."""

    circuit: Microcircuit

    def vector_field(self, t, neurons, drive):
        x, y = dynlearn.input_and_target(drive, t)
        return self.circuit.rates_of_change(self.circuit.params(), neurons, x, y, learn=False)[0]


def self_predicting(circuit: Microcircuit) -> Microcircuit:
    """`circuit` in the self-predicting state: W^PI_k = -B_k, W^IP_k = g_B (g_l + g_D) /
    (g_D G_{k+1}) W_{k+1} (G_{k+1}: total conductance of the free layer above)."""
    g = circuit.conductances
    if circuit.direct and len(circuit.weights) > 2:
        raise ValueError(
            "self_predicting: with a direct pathway the interneurons of the lower hidden "
            "layers must predict the output, which has no closed form; let them learn it "
            "(eta_inter, eta_lateral) without target first."
        )
    feedback = circuit.feedback.matrices(circuit.weights)
    above = circuit.attenuations()[1:]  # g_B / G_{k+1}
    inter = [a * (g.leak + g.dendrite) / g.dendrite * w for a, w in zip(above, circuit.weights[1:])]
    lateral = [-b for b in feedback]
    return eqx.tree_at(lambda c: (c.inter_weights, c.lateral_weights), circuit, (inter, lateral))


def rule(sizes: Sequence[int], key: PRNGKeyArray):
    """The registered rule `microcircuit` (`dynlearn.rules`): the prospective dendritic
    microcircuit (sigmoid, fixed random feedback, default conductances and rates) from its
    self-predicting state, always-on over 16 parallel streams (t_pres 2 ms, dt 0.1 ms); fit
    batches of 320."""
    net = Microcircuit(
        sizes, key, presentation=dynlearn.Presentation(t_pres=2.0, dt=0.1, streams=16)
    )
    return self_predicting(net), {"mode": dynlearn.AlwaysOn(), "batch_size": 320}
