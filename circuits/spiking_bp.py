"""Backprop approximated by spiking neurons, with error neurons and an STDP-like local update.

Shrestha, Fang, Wu & Qiu (2019), "Approximating back-propagation for a biologically
plausible local learning rule in spiking neural networks", ICONS 2019
(doi:10.1145/3354265.3354275); the same group's "error-modulated STDP" (EMSTDP) on Loihi:
Shrestha, Fang, Rider, Mei & Qiu (2021), "In-hardware learning of multilayer spiking
neural networks on a neuromorphic processor", DAC 2021 (arXiv:2105.03649).

**Forward network.** Layers of integrate-and-fire neurons (`dynlearn.spiking.LIF(leak=False,
reset="subtract")`, threshold `v_th`) in discrete time (the engine's Euler steps of dt = 1,
spike traces of time constant 1 that hold the last step's spikes); each layer receives the
previous layer's spikes of the step before. The input neurons integrate the pixel
intensity x in [0, 1] with threshold 1 (regular spike trains, x spikes per step):

    v_l[t+1] = v_l[t] + W_l s_{l-1}[t] + v_th c e_l[t],   s_l[t+1] = 1 if v_l[t+1] >= v_th
    (then v_l -= v_th).

Their rates converge (error O(1/T)) to r_l = clip(W_l r_{l-1} / v_th, 0, 1), a clipped ReLU.

**Error neurons.** Each forward unit has a pair of error neurons, a positive and a negative
one (spike counts cannot be negative), that share one signed potential u: the positive
neuron fires when u reaches +theta (then u -= theta), the negative one when u reaches -theta
(then u += theta); e[t] = (positive - negative spikes) in {-1, 0, 1}. The output pair of
class k integrates the target spike train minus the output neuron's spikes (one error spike
per step of mismatch, theta = 1); a hidden pair integrates the error spikes of the layer
above through the feedback matrix B_l (B_l = W_{l+1}^T, or a fixed random matrix:
feedback alignment, or DFA from the output), gated by its forward unit having fired in
the first phase (the derivative of the clipped ReLU approximated by "did it fire"):

    u_L[t+1] = u_L[t] + y - s_L[t],    u_l[t+1] = u_l[t] + g_l * B_l e_{l+1}[t],
    g_l = 1[h_l^I > 0].

**Two phases.** A sample is shown for `warmup + 2 T` steps. The first `warmup` steps (default:
the number of weight layers, the time spikes need to reach the output) are not counted.
Phase I (T steps): the forward network alone; h_l^I its spike counts (h_0^I the input's).
Phase II (T more steps, the forward network carries on): the error neurons run. The update
has one of two forms (an option object, `update=`):

- `ErrorSpikes()` -- the spiking approximation of backprop: no injection (c = 0), and each
  synapse pairs its pre-synaptic spike count with the spike count of its post-synaptic
  unit's error neurons, E_l = sum_t e_l[t] over phase II,

      dW_l = eta E_l (h_{l-1}^I)^T / T^2.

  In the rate limit (T -> inf) E_L / T = y - r_L and E_l / T = clip(g_l * B_l E_{l+1} /
  (T theta), -1, 1): with B_l = W_{l+1}^T and no clipping this is backprop's delta of the
  loss 1/2 |y - r_L|^2 through the clipped-ReLU rate network (derivative 1[r > 0], output
  error un-gated), up to a factor v_th / theta per layer, so dW_l tends to the direction of
  -grad W_l in every layer (`theory/spiking_bp_alignment.py`).
- `PhaseDifference(scale=c)` -- the local, STDP-like form (EMSTDP): the error spikes are
  injected into their forward unit (each adds or removes c thresholds of charge), so the
  forward unit's own spike count changes between the phases, and the synapse needs only
  its pre- and post-synaptic spikes:

      dW_l = eta (h_l^{II} - h_l^I) (h_{l-1}^I)^T / T^2

  (potentiation by the post-synaptic spikes of phase II, depression by those of phase I,
  each weighted by the pre-synaptic activity). In the rate limit the phase-II rates solve
  r_l^{II} = clip(W_l r_{l-1}^{II} / v_th + c eps_l, 0, 1) with the error rates eps_l of the
  equations above; the update is then close to, but not equal to, backprop's (the changes
  of the layers below feed forward too).

Provenance: neither paper's body could be read here, only their abstracts. The two-phase
scheme was read from the algorithm file of the authors' public EMSTDP repository
(zmeidd/EMSTDP, which has no licence) -- against this project's rule to implement from
papers, not from reference code. No code or text was taken from it; the equations above
are written out here, and should be checked against the papers' text when it is at hand.

Readings we had to choose: reset by
subtraction (so that rates are exactly the clipped ReLU); the potentials start half-way to
threshold and a `warmup` is not counted, both so that the phase-I count is not biased low
by the start from rest (a bias of ~1 spike per neuron and phase that otherwise accumulates
into ever larger weights); the target of the label's output neuron is one spike per step,
of the others none; the output error pair's threshold is 1 and the hidden pairs'
`error_th`; updates are averaged over the batch and applied by an optax optimizer (the
registered rule: Adam). Predictions are the phase-I output counts, ties broken by the
output potentials.

Reported (Shrestha et al. 2021, as tabulated by Renner et al. 2024, Nat. Commun., Table 1):
MNIST test accuracy 94.7% on Loihi (EMSTDP with FA/DFA, network CNN-CNN-100-10). The ICONS
2019 paper's settings and numbers we could not read.
"""

from __future__ import annotations

import abc
import numbers
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import dynlearn
from circuits._layers import forward_weights, learning_filter, sizes_of
from circuits.feedback import AbstractFeedback, WeightTransport, bind_pathway
from dynlearn.spiking import LIF, SpikeEvent

__all__ = [
    "AbstractUpdate",
    "ErrorSpikes",
    "PhaseDifference",
    "ErrorPair",
    "SpikingBP",
    "rule",
]


def _layer(index: int) -> str:
    return f"layer{index + 1}"


def _error(index: int) -> str:
    return f"error{index + 1}"


class AbstractUpdate(eqx.Module):
    """Which post-synaptic spike count a synapse pairs with its pre-synaptic one."""

    @property
    @abc.abstractmethod
    def injection(self) -> float:
        """Charge (in thresholds) an error spike adds to its forward unit in phase II."""

    @abc.abstractmethod
    def post(self, first: Array, second: Array, errors: Array) -> Array:
        """The post-synaptic factor (spikes, `(batch, n_l)`) from the forward unit's counts
        in phase I and II and its error neurons' net count."""


class ErrorSpikes(AbstractUpdate):
    """`dW_l ∝ E_l (h_{l-1}^I)^T`: the error neurons' net spike count (no injection)."""

    @property
    def injection(self) -> float:
        return 0.0

    def post(self, first, second, errors):
        return errors


class PhaseDifference(AbstractUpdate):
    """`dW_l ∝ (h_l^{II} - h_l^I) (h_{l-1}^I)^T` with the error spikes injected into the
    forward units (each adds or removes `scale` thresholds of charge): EMSTDP's local form."""

    scale: float = 1.0

    def __check_init__(self):
        if not (isinstance(self.scale, numbers.Real) and self.scale > 0):
            raise ValueError(
                f"PhaseDifference.scale: expected an injection strength > 0 (thresholds per "
                f"error spike); got {self.scale!r}."
            )

    @property
    def injection(self) -> float:
        return float(self.scale)

    def post(self, first, second, errors):
        return second - first


class ErrorPair(eqx.Module):
    """A positive and a negative error neuron per unit sharing one signed potential `v`:
    the positive fires at `v >= v_th` (v -= v_th), the negative at `v <= -v_th` (v +=
    v_th). State: `{"v", "trace", "plus", "minus"}`; `trace` holds the last step's net
    output (+1, -1 or 0; time constant 1 with Euler steps of 1), `plus`/`minus` count."""

    v_th: float = 1.0

    def __check_init__(self):
        if not (isinstance(self.v_th, numbers.Real) and self.v_th > 0):
            raise ValueError(f"ErrorPair.v_th: expected a positive threshold; got {self.v_th!r}.")

    def init(self, shape: tuple[int, ...], dtype=None) -> dict[str, Array]:
        zeros = jnp.zeros(shape, dtype or jnp.result_type(float))
        return {"v": zeros, "trace": zeros, "plus": zeros, "minus": zeros}

    def drift(self, state: dict[str, Array], current: Array) -> dict[str, Array]:
        return {
            "v": current,
            "trace": -state["trace"],
            "plus": jnp.zeros_like(current),
            "minus": jnp.zeros_like(current),
        }

    def condition(self, state: dict[str, Array]) -> Array:
        """`(v - v_th, -v - v_th)` stacked on a leading axis of 2."""
        return jnp.stack([state["v"] - self.v_th, -state["v"] - self.v_th])

    def fire(self, state: dict[str, Array], fired: Array) -> dict[str, Array]:
        plus, minus = fired[0].astype(state["v"].dtype), fired[1].astype(state["v"].dtype)
        return {
            "v": state["v"] - self.v_th * (plus - minus),
            "trace": state["trace"] + plus - minus,
            "plus": state["plus"] + plus,
            "minus": state["minus"] + minus,
        }


class _Event(dynlearn.AbstractEvent):
    """The forward populations' spikes and the error pairs' (positive and negative). The
    forward spikes after `count_from` (the warm-up's end) are also counted in
    `y["counted"]`, so that one solve holds the warm-up and phase I."""

    forward: SpikeEvent
    pairs: dict[str, ErrorPair]
    count_from: float = eqx.field(static=True, default=0.0)

    def condition(self, t, y, args):
        parts = [self.forward.condition(t, y, args)]
        parts += [pair.condition(y[name]).ravel() for name, pair in self.pairs.items()]
        return jnp.concatenate(parts)

    def jump(self, t, y, args, fired):
        n_forward = sum(y[name]["v"].size for name in self.forward.neurons)
        out = self.forward.jump(t, y, args, fired[:n_forward])
        # jumps come at the steps' ends, t = 1, 2, ... (to round-off): those after count_from
        on = jnp.asarray(t > self.count_from + 0.5, y["counted"]["input"].dtype)
        counted, start = dict(y["counted"]), 0
        for name in self.forward.neurons:
            shape = y[name]["v"].shape
            size = y[name]["v"].size
            counted[name] = counted[name] + on * fired[start : start + size].reshape(shape)
            start += size
        out["counted"] = counted
        for name, pair in self.pairs.items():
            shape = (2, *y[name]["v"].shape)
            size = 2 * y[name]["v"].size
            out[name] = pair.fire(y[name], fired[start : start + size].reshape(shape))
            start += size
        return out


class _Drive(eqx.Module):
    """What drives the network: the input intensities, and in phase II the targets and the
    phase-I gates."""

    x: Array
    target: Array | None = None
    gates: tuple[Array, ...] = ()


class _Network(dynlearn.AbstractDynamics):
    """Input neurons, the forward IF layers, and with `errors=True` the error pairs (Euler,
    dt = 1). The input neurons integrate the pixel intensity (threshold 1): regular spike
    trains with one spike per step at intensity 1."""

    weights: tuple[Array, ...]
    feedback: tuple[Array, ...]
    inputs: LIF
    neurons: LIF
    hidden_pair: ErrorPair
    output_pair: ErrorPair
    injection: float = eqx.field(static=True)
    errors: bool = eqx.field(static=True)
    direct: bool = eqx.field(static=True)
    count_from: float = eqx.field(static=True, default=0.0)

    def vector_field(self, t, y, drive):
        n = len(self.weights)
        out = {"input": self.inputs.drift(y["input"], drive.x)}
        out["counted"] = jax.tree.map(jnp.zeros_like, y["counted"])
        pre = y["input"]["trace"]
        for index, w in enumerate(self.weights):
            current = pre @ w.T
            if self.errors and self.injection:
                current = current + self.injection * self.neurons.v_th * y[_error(index)]["trace"]
            out[_layer(index)] = self.neurons.drift(y[_layer(index)], current)
            pre = y[_layer(index)]["trace"]
        if self.errors:
            top = y[_error(n - 1)]["trace"]
            mismatch = drive.target - y[_layer(n - 1)]["trace"]
            out[_error(n - 1)] = self.output_pair.drift(y[_error(n - 1)], mismatch)
            for index in range(n - 2, -1, -1):
                above = top if self.direct else y[_error(index + 1)]["trace"]
                signal = drive.gates[index] * (above @ self.feedback[index].T)
                out[_error(index)] = self.hidden_pair.drift(y[_error(index)], signal)
        return out

    def event(self):
        n = len(self.weights)
        forward = SpikeEvent({"input": self.inputs} | {_layer(i): self.neurons for i in range(n)})
        pairs = {}
        if self.errors:
            pairs = {_error(i): self.hidden_pair for i in range(n - 1)}
            pairs[_error(n - 1)] = self.output_pair
        return _Event(forward, pairs, self.count_from)

    def time_constants(self) -> dict[str, float]:
        return self.neurons.time_constants()


def _check_count(name: str, value, minimum: int) -> None:
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        raise ValueError(f"{name}: expected an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}; got {value}.")


class SpikingBP(dynlearn.AbstractBatchLearner):
    """A layered IF network whose errors are spiking neurons (module docstring).

    **Arguments:**
    - `sizes`: (inputs, hidden..., outputs); `key`: draws the weights (He-normal, std
      sqrt(2 / fan-in), no biases).
    - `feedback`: the pathway of the hidden error neurons, `circuits.feedback.WeightTransport()`
      (default, B_l = W_{l+1}^T: backprop), `FeedbackAlignment(key)` or
      `DirectFeedbackAlignment(key)` (fixed random B); plastic pathways are refused.
    - `update`: `ErrorSpikes()` (default) or `PhaseDifference(scale)` (module docstring).
    - `steps`: T, time steps per phase (default 20); `warmup`: uncounted steps before
      phase I (default: the number of weight layers).
    - `v_th`: threshold of the forward neurons (default 1); `error_th`: threshold of the
      hidden error pairs (default 1; the output pair's is 1).
    """

    weights: list[Array]
    feedback: AbstractFeedback
    update: AbstractUpdate
    steps: int = eqx.field(static=True, default=20)
    warmup: int = eqx.field(static=True, default=2)
    v_th: float = eqx.field(static=True, default=1.0)
    error_th: float = eqx.field(static=True, default=1.0)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        feedback: AbstractFeedback | None = None,
        update: AbstractUpdate | None = None,
        steps: int = 20,
        warmup: int | None = None,
        v_th: float = 1.0,
        error_th: float = 1.0,
    ):
        if len(sizes) < 2 or any(not (isinstance(n, numbers.Integral) and n >= 1) for n in sizes):
            raise ValueError(f"sizes: expected two or more positive layer sizes; got {sizes}.")
        _check_count("steps", steps, 1)
        warmup = len(sizes) - 1 if warmup is None else warmup
        _check_count("warmup", warmup, 0)
        for name, value in (("v_th", v_th), ("error_th", error_th)):
            if not (isinstance(value, numbers.Real) and value > 0):
                raise ValueError(f"{name}: expected a positive threshold; got {value!r}.")
        update = ErrorSpikes() if update is None else update
        if not isinstance(update, AbstractUpdate):
            raise ValueError(
                f"update: expected an update option, ErrorSpikes() or PhaseDifference(scale); "
                f"got {update!r}."
            )
        keys = jax.random.split(key, len(sizes) - 1)
        self.weights = [
            jax.random.normal(k, (n_out, n_in)) * jnp.sqrt(2.0 / n_in)
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
        ]
        feedback = WeightTransport() if feedback is None else feedback
        self.feedback = bind_pathway(feedback, list(sizes), self.weights)
        if self.feedback.plastic:
            raise ValueError(
                f"feedback: {type(feedback).__name__} learns its matrices, which this circuit "
                "does not do; use WeightTransport(), FeedbackAlignment(key) or "
                "DirectFeedbackAlignment(key)."
            )
        self.update = update
        self.steps, self.warmup = int(steps), int(warmup)
        self.v_th, self.error_th = float(v_th), float(error_th)

    # ------------------------------------------------------------------ structure
    @property
    def sizes(self) -> list[int]:
        return sizes_of(self.weights)

    @property
    def layer_names(self) -> list[str]:
        """The forward populations in the state, input side first: layer1, layer2, ..."""
        return [_layer(i) for i in range(len(self.weights))]

    @property
    def neurons(self) -> LIF:
        return LIF(tau_m=1.0, v_th=self.v_th, reset="subtract", leak=False, tau_trace=1.0)

    def trainable(self):
        return learning_filter(self, ("weights",))

    def prunable(self):
        return forward_weights(self)

    @property
    def inputs(self) -> LIF:
        """The input neurons: threshold 1, so intensity 1 is one spike per step."""
        return LIF(tau_m=1.0, v_th=1.0, reset="subtract", leak=False, tau_trace=1.0)

    def _system(self, errors: bool, count_from: float = 0.0) -> _Network:
        return _Network(
            weights=tuple(self.weights),
            feedback=tuple(self.feedback.matrices(self.weights)),
            inputs=self.inputs,
            neurons=self.neurons,
            hidden_pair=ErrorPair(self.error_th),
            output_pair=ErrorPair(1.0),
            injection=self.update.injection,
            errors=errors,
            direct=type(self.feedback).direct,
            count_from=count_from,
        )

    # ------------------------------------------------------------------ simulation
    def _first_phase(self, x):
        """Warm-up and phase I, one solve of `warmup + T` Euler steps (dt = 1): `(counts in
        phase I by population, end state)`."""
        batch = x.shape[0]
        populations = [("input", self.inputs, x.shape[1])]
        populations += [
            (n, self.neurons, w.shape[0]) for n, w in zip(self.layer_names, self.weights)
        ]
        start = {"counted": {}}
        for name, neurons, size in populations:
            rest = neurons.init((batch, size), x.dtype)
            # half-way to threshold: the mean of a steady phase, so that phase I's count
            # is not biased low by the start from rest (see the module docstring)
            start[name] = {**rest, "v": rest["v"] + 0.5 * neurons.v_th}
            start["counted"][name] = rest["count"]
        end = dynlearn.simulate(
            self._system(errors=False, count_from=float(self.warmup)),
            start,
            0.0,
            float(self.warmup + self.steps),
            args=_Drive(jnp.clip(x, 0.0, 1.0)),
            dt=1.0,
            check=False,
        ).y1
        return end["counted"], end

    def run(self, x: Float[Array, "batch n_in"], y: Float[Array, "batch n_out"]) -> dict:
        """Both phases for a batch; returns a dict of spike counts per layer (lists, input
        side first): `"input"` (phase I input counts), `"first"`, `"second"` (forward
        units in phase I and II), `"errors"` (net error spikes in phase II), and the
        phase-I end `"state"`."""
        first, state = self._first_phase(x)
        names = self.layer_names
        gates = tuple((first[name] > 0).astype(x.dtype) for name in names[:-1])
        start = dict(state)
        for index, w in enumerate(self.weights):
            start[_error(index)] = ErrorPair().init((x.shape[0], w.shape[0]), x.dtype)
        end = dynlearn.simulate(
            self._system(errors=True),
            start,
            0.0,
            float(self.steps),
            args=_Drive(jnp.clip(x, 0.0, 1.0), y.astype(x.dtype), gates),
            dt=1.0,
            check=False,
        ).y1
        return {
            "input": first["input"],
            "first": [first[name] for name in names],
            "second": [end["counted"][name] - first[name] for name in names],
            "errors": [end[_error(i)]["plus"] - end[_error(i)]["minus"] for i in range(len(names))],
            "state": state,
        }

    def scores(self, counts: Array, state: dict) -> Array:
        """Phase-I output rates (spikes per step), ties broken by the output potentials."""
        v = state[self.layer_names[-1]]["v"]
        return counts / self.steps + 1e-3 * v / self.v_th

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0])
        counts, state = self._first_phase(x)
        name = self.layer_names[-1]
        return self.scores(counts[name], state)

    def updates(self, x, y, key):
        """`-dW` (batch mean, per step squared) for a descent step; the loss is
        1/2 |y - r_L|^2 on the phase-I output rates."""
        dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        counts = self.run(x, y)
        pre = [counts["input"], *counts["first"][:-1]]
        scale = 1.0 / (x.shape[0] * self.steps**2)
        grads = []
        for first, second, errors, before in zip(
            counts["first"], counts["second"], counts["errors"], pre
        ):
            post = self.update.post(first, second, errors)
            grads.append(-scale * post.T @ before)
        rates = counts["first"][-1] / self.steps
        metrics = {
            "loss": dynlearn.squared_error(rates, y),
            "output": self.scores(counts["first"][-1], counts["state"]),
        }
        return eqx.tree_at(lambda m: m.weights, self, grads), metrics


def rule(sizes: Sequence[int], key: PRNGKeyArray) -> dynlearn.Recipe:
    """The registered rule `stdp-bp`: the spiking approximation of backprop (error spikes
    times pre-synaptic spikes, B = W^T, T = 20 steps per phase), Adam 3e-3 on the
    batch-mean update, batches of 32."""
    net = SpikingBP(sizes, key)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(3e-3)), 32)
