"""Desire backpropagation: ternary desires from the output error, STDP-like weight updates.

Gerlinghoff, Luo, Goh & Wong (2023), "Desire backpropagation: a lightweight training
algorithm for multi-layer spiking neural networks based on spike-timing-dependent
plasticity", Neurocomputing 560. A layered network of leaky integrate-and-fire neurons
(`dynlearn.spiking.LIF`, time constant tau_m = 1 / (1 - decay) so that one Euler step of
dt = 1 is a discrete neuron with the paper's decay and threshold; reset to 0 is our choice)

    v_l[t+1] = decay v_l[t] + W_l s_{l-1}[t],   s_l[t+1] = 1 if v_l[t+1] >= v_th (v -> 0),

sees the input as regular spike trains (pixel value = spikes per step) for `steps` steps;
each layer receives the previous layer's spikes of the step before (the synaptic current is
the presynaptic trace with time constant 1, i.e. last step's spikes). After the
presentation, with output rates r_i = count_i / steps and one-hot targets y:

- output desire: m_i = sign(y_i - r_i) if |y_i - r_i| > theta_out, else 0 (ternary:
  spike more, spike less, leave as it is);
- hidden desire, layer by layer downwards: m_j = sign(sum_i W_ij m_i) if |sum_i W_ij m_i|
  >= theta_hidden, else 0;
- update, STDP-like (a desired neuron's spikes pair with the presynaptic spikes that caused
  them): dW_ij = eta e_i sum_t s_i[t+1] s_j[t], with the neuron's error e_i read from its
  desire as a target rate (`error="rate"`, the default): e_i = 1 - r_i if m_i = +1 (spike
  at every step), -r_i if m_i = -1 (stay silent), 0 if m_i = 0; or the desire itself
  (`error="sign"`, e_i = m_i).

The rule is local in space (pre and post activity, the post neuron's desire and rate) and
its backward pass carries only ternary signs. Here the step is `optax.sgd` (with momentum
in the registered rule) on -dW averaged over the batch (the paper: one sample per update,
eta = 1e-5 decayed by e^{-0.04 epoch}).
The paper's method section could not be read here (only its abstract: the desire is
"incorporated into the local STDP weight update"), so how the desire enters the update is
our reading. The two readings measured (docs/results/spiking.md): with e_i = m_i a
neuron asked to spike more keeps being pushed after it saturates (the update has no fixed
point), the hidden rates climb to saturation, and two hidden layers do not learn (mnist5k
784-100-100-10: 10%); with the target rate the push fades as the desire is met, and two
hidden layers learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import sizes_of
from dynlearn.spiking import LIF, SpikeEvent, SpikeTrain, regular_spikes

__all__ = ["DesireSNN", "ERRORS", "desires", "neuron_errors", "rule"]

ERRORS = ("rate", "sign")


def _layer(index: int) -> str:
    return f"layer{index + 1}"


class _Layers(dynlearn.AbstractDynamics):
    """The layered LIF populations driven by an input `SpikeTrain` (Euler, dt = 1)."""

    weights: tuple[Array, ...]
    neurons: LIF

    def vector_field(self, t, y, spikes_in):
        pre = spikes_in(t)
        out = {}
        for index, w in enumerate(self.weights):
            name = _layer(index)
            # tau_m dv/dt = -v + tau_m W s: one Euler step is v <- decay v + W s
            out[name] = self.neurons.drift(y[name], self.neurons.tau_m * pre @ w.T)
            pre = y[name]["trace"]  # tau_trace = 1 and dt = 1: the last step's spikes
        return out

    def event(self):
        return SpikeEvent({_layer(i): self.neurons for i in range(len(self.weights))})

    def time_constants(self) -> dict[str, float]:
        return self.neurons.time_constants()


def desires(
    weights: Sequence[Array], rates: Array, targets: Array, theta_out: float, theta_hidden: float
) -> list[Array]:
    """The ternary desires (-1, 0, +1) of every layer, output last, from the output rates
    and the targets (see the module docstring)."""
    error = targets - rates
    desire = jnp.where(jnp.abs(error) > theta_out, jnp.sign(error), 0.0)
    out = [desire]
    for w in weights[:0:-1]:  # W_L ... W_2: from layer l+1 down to layer l
        drive = desire @ w
        desire = jnp.where(jnp.abs(drive) >= theta_hidden, jnp.sign(drive), 0.0)
        out.append(desire)
    return out[::-1]


def neuron_errors(desire: Array, rates: Array, error: str) -> Array:
    """Each neuron's error e_i in the STDP update (module docstring): with `"rate"` the
    distance to the rate its desire asks for (1 - r for +1, -r for -1, 0 for 0); with
    `"sign"` the desire itself."""
    if error == "sign":
        return desire
    return jnp.where(desire > 0, 1.0 - rates, jnp.where(desire < 0, -rates, 0.0))


class DesireSNN(dynlearn.AbstractBatchLearner):
    """A layered LIF network trained by desire backpropagation (module docstring).

    **Arguments:** `sizes` (inputs, hidden..., outputs), `key`; `steps` time steps per
    sample (paper: 20); `v_th` threshold (1); `decay` membrane decay per step (0.75);
    `theta_out`, `theta_hidden` the desire thresholds (0.3, 0.05); `error`: how a desire
    enters the update, `"rate"` (the distance to the rate it asks for, default) or
    `"sign"` (the desire itself). Weights start He-normal (std sqrt(2 / fan-in)); the
    network has no biases.
    """

    weights: tuple[Array, ...]
    steps: int = eqx.field(static=True, default=20)
    v_th: float = eqx.field(static=True, default=1.0)
    decay: float = eqx.field(static=True, default=0.75)
    theta_out: float = eqx.field(static=True, default=0.3)
    theta_hidden: float = eqx.field(static=True, default=0.05)
    error: str = eqx.field(static=True, default="rate")

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        steps: int = 20,
        v_th: float = 1.0,
        decay: float = 0.75,
        theta_out: float = 0.3,
        theta_hidden: float = 0.05,
        error: str = "rate",
    ):
        if len(sizes) < 2 or any(not (isinstance(n, int) and n >= 1) for n in sizes):
            raise ValueError(f"sizes: expected two or more positive layer sizes; got {sizes}.")
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"steps: expected a number of time steps >= 1; got {steps!r}.")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay: expected a membrane decay per step in [0, 1); got {decay}.")
        if not (0.0 <= theta_out < 1.0 and theta_hidden >= 0.0):
            raise ValueError(
                f"theta_out, theta_hidden: expected 0 <= theta_out < 1 and theta_hidden >= 0; "
                f"got {theta_out}, {theta_hidden}."
            )
        if error not in ERRORS:
            raise ValueError(f"error: expected one of {ERRORS}; got {error!r}.")
        keys = jax.random.split(key, len(sizes) - 1)
        self.weights = tuple(
            jax.random.normal(k, (n_out, n_in)) * jnp.sqrt(2.0 / n_in)
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
        )
        self.steps, self.v_th, self.decay = steps, float(v_th), float(decay)
        self.theta_out, self.theta_hidden = float(theta_out), float(theta_hidden)
        self.error = error
        LIF(tau_m=self.tau_m, v_th=self.v_th)  # its checks: v_th > 0

    @property
    def sizes(self) -> list[int]:
        return sizes_of(self.weights)

    @property
    def layer_names(self) -> list[str]:
        """The populations' names in the state, input side first: layer1, layer2, ..."""
        return [_layer(i) for i in range(len(self.weights))]

    @property
    def tau_m(self) -> float:
        return 1.0 / (1.0 - self.decay)

    @property
    def neurons(self) -> LIF:
        return LIF(tau_m=self.tau_m, v_th=self.v_th, reset="zero", tau_trace=1.0)

    def input_spikes(self, x: Array) -> Array:
        """Regular spike trains `(steps, batch, n_in)`: input value = spikes per step."""
        return regular_spikes(jnp.clip(x, 0.0, 1.0), 1.0, self.steps)

    def run(self, x: Array) -> tuple[Array, dict[str, Array], dict[str, Array]]:
        """Simulate a batch: `(input spikes (steps, batch, n_in), spikes per layer
        (steps + 1, batch, n) at t = 0 .. steps, final state)`."""
        spikes_in = self.input_spikes(x)
        system = _Layers(self.weights, self.neurons)
        names = self.layer_names
        y0 = {
            name: self.neurons.init((x.shape[0], w.shape[0]))
            for name, w in zip(names, self.weights)
        }
        trajectory = dynlearn.simulate(
            system,
            y0,
            0.0,
            float(self.steps),
            args=SpikeTrain(spikes_in, 1.0),
            dt=1.0,
            ts=jnp.arange(self.steps + 1.0),
            variables=lambda y: {name: y[name]["trace"] for name in names},
            check=False,
        )
        return spikes_in, trajectory.ys, trajectory.y1

    def scores(self, final: dict[str, Array]) -> Array:
        """Output rates (spikes per step), ties broken by the final membrane potential."""
        out = final[self.layer_names[-1]]
        return out["count"] / self.steps + 1e-3 * out["v"] / self.v_th

    def predict(self, x: Array) -> Array:
        dynlearn.check_batch(x, None, self.sizes[0])
        return self.scores(self.run(x)[2])

    def updates(self, x, y, key):
        """`-dW` (batch mean) for a descent step, with the loss 1/2 |y - r|^2."""
        dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        spikes_in, spikes, final = self.run(x)
        names = self.layer_names
        rates = final[names[-1]]["count"] / self.steps
        wanted = desires(self.weights, rates, y, self.theta_out, self.theta_hidden)
        pre = [spikes_in, *(spikes[name][:-1] for name in names[:-1])]  # s_{l-1}[t], t < T
        grads = []
        for desire, name, before in zip(wanted, names, pre):
            errors = neuron_errors(desire, final[name]["count"] / self.steps, self.error)
            after = spikes[name][1:] * errors  # e_i s_i[t+1]
            grads.append(-jnp.einsum("tbi,tbj->ij", after, before) / x.shape[0])
        loss = 0.5 * jnp.mean(jnp.sum((y - rates) ** 2, axis=-1))
        updates = eqx.tree_at(lambda m: m.weights, self, tuple(grads))
        return updates, {"loss": loss, "output": self.scores(final)}


def rule(sizes: Sequence[int], key: PRNGKeyArray) -> dynlearn.Recipe:
    """The registered rule `desire`: desire backpropagation (20 steps, thresholds 0.3 /
    0.05, each neuron's error the distance to the rate its desire asks for), SGD 1e-3 with
    momentum 0.9 on the batch-mean STDP update, batches of 32. On mnist5k's validation
    split (10 epochs, seed 0; 784-100-10 / 784-100-100-10), plain SGD 3e-3 85.9 / 81.4%,
    1e-2 89.6 / 88.5, 3e-2 83.3 / 49.5; SGD 1e-3 with momentum 0.9 (the same effective
    step as 1e-2) 90.1 / 87.9. Momentum was chosen for the devices: on a soft-bounds
    device a weight decays by the distance its updates travel, and averaged steps travel
    less (mnist5k, 784-100-10, 5 epochs, seed 0, no device / soft bounds: plain 1e-2 87.7 /
    59.8%, with momentum 90.6 / 86.0; docs/results/hardware.md)."""
    optimizer = optax.sgd(1e-3, momentum=0.9)
    return dynlearn.Recipe(DesireSNN(sizes, key), dynlearn.SettleThenUpdate(optimizer), 32)
