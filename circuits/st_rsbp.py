"""Spike-train level recurrent SNN backpropagation (ST-RSBP; Zhang & Li 2019, "Spike-Train
Level Backpropagation for Training Deep Recurrent Spiking Neural Networks", NeurIPS 2019,
arXiv:1908.06378).

**Network.** Input neurons -> a recurrent hidden layer of leaky integrate-and-fire neurons
(feed-forward weights F, recurrent weights R, no self-connections) -> LIF output neurons
(weights O), simulated by the engine (`dynlearn.simulate`, Euler steps of dt = 1, threshold
crossings and resets as `dynlearn.spiking` events). The input neurons integrate the pixel
intensity x in [0, 1] (threshold 1: regular spike trains, x spikes per step). A hidden or
output neuron i (`LIF(tau_m, v_th = nu, reset to 0)`) integrates the spikes s_j of the step
before through its weights, `tau_m du_i/dt = -u_i + sum_j w_ij s_j(t)`, and resets to 0
when u_i reaches nu.

**Spike-train level quantities (forward pass).** The post-synaptic potential that the spikes
of pre-synaptic neuron j leave on neuron i *since i's last reset* is a state p_ij,

    tau_m dp_ij/dt = -p_ij + s_j(t),     p_ij -> 0 when i fires,

so that u_i = sum_j w_ij p_ij at all times (the PSP kernel with the reset's effect). The
spike-train level PSP (S-PSP) of the synapse j -> i sums it over i's firing times,

    e_{i|j} = sum_f p_ij(t_i^f)                                   (S-PSP)

accumulated during the simulation as state: at each spike of i, e_{i|j} += p_ij (post spike
times pre PSP). The total S-PSP of neuron i is

    a_i = sum_j w_ij e_{i|j}  [ + sum_p r_ip e_{i|p} in the recurrent layer ]   (total S-PSP)

and since u_i(t_i^f) = nu at each firing time (to the overshoot of a fixed step), the
firing count o_i obeys

    o_i ~= g(a_i) = max(a_i, 0) / nu                              (firing-count relation)

a ReLU of the total S-PSP. In the recurrent layer a_i depends on the layer's own counts, so
the counts are the fixed point o_h = g(M_F o_in + M_R o_h) with M_ij = w_ij e_{i|j} / o_j:
the S-PSP is taken proportional to the pre-synaptic count, `d e_{i|j} / d o_j = e_{i|j} /
o_j` (0 for a silent pre-synaptic neuron).

**Loss and backward pass.** On the output firing counts o against target counts y (y_high
for the label's neuron, y_low for the others),

    E = 1/2 sum_k (o_k - y_k)^2                                   (loss)
    delta_k = dE/da_k = (o_k - y_k) g'(a_k)                       (output error)
    lambda_h = dE/do_h = sum_k delta_k M_O[k, h]                  (error reaching layer h)
    delta_h = g'(a_h) (lambda_h + sum_q M_R[q, h] delta_q),  i.e.
    delta_h = (I - D M_R^T)^{-1} D lambda_h,  D = diag(g'(a_h))   (recurrent layer)
    dE/dw_ij = delta_i e_{i|j}                                   (weight gradient, F, R, O)

The recurrent equation is the exact derivative of the spike-train level model's fixed point
(the implicit function theorem on o_h = g(a_h(o_h))); it is solved per sample by a dense
linear solve (H x H). Weight updates are the batch mean of dE/dw, applied by an optax
optimizer (the registered rule: Adam).

**Provenance and what we could not check.** Only the paper's abstract and introduction
could be read here (the stored text of arXiv:1908.06378 returned no method section), so the
equations above are written from the method as we understand it (S-PSP, firing count as a
function of the total S-PSP, spike-train level backprop through feed-forward and
recurrent layers) and are *not* checked against the paper's text: the paper's equation
numbers are not given for that reason, and its kernel (a first-order synaptic response
filtered by the membrane) and its handling of the recurrent dependencies may differ in
detail from ours. No code was read.

Choices of ours (not from the paper): discrete time (Euler, dt = 1, one step = one time
unit), the synaptic response is the spike itself (no synaptic time constant), reset to 0,
no refractory period, regular (deterministic) input spike trains instead of Poisson ones,
no biases; `residual=True` (default) adds the PSP left at the end of the window, p_ij(T),
to e_{i|j}, so that a neuron that did not fire still has a nonzero S-PSP and a gradient
(without it a silent output neuron whose target is high would never be pushed up, as
g'(a) = 0 there); target counts are fractions of the window (`targets`). Predictions are
the output's total S-PSP a / nu (its count, ties broken by the residual potential).

Reported (paper, as we recall its abstract and results; not re-read here): ST-RSBP
surpasses HM2-BP and non-spiking baselines on TI46, N-TIDIGITS, Fashion-MNIST and MNIST;
Fashion-MNIST about 90.0% with one recurrent layer of 400 neurons (HM2-BP 88.99% with 400
feed-forward neurons); MNIST about 99.5%; these figures need checking against the paper.

Measured here (CPU, seed 0): `dynlearn demo --rules st-rsbp` (digits, 64-64-10, 3 epochs,
Adam 1e-2) 92.5% test accuracy in 26 s of training (Adam 3e-2: 96.7%; `residual=False`:
81.7%); `theory/st_rsbp_gradient.py`: the formulas equal `jax.grad` of the spike-train level
model to 2e-16, and predict the simulated network's finite differences with cosines 0.93 (F),
0.89 (R), 0.82 (O); MNIST subset (10,001 training images, the full test set), 784-R100-10,
2 epochs, Adam 1e-2: 92.3% then 92.9% test accuracy (130 s); Fashion-MNIST at the
paper's 784-R400-10, Adam 1e-3, 2 epochs (`dynlearn run spiking --dataset fashion_mnist
--parts st-rsbp --st-rsbp-lr 1e-3`, 37 min on one core): 85.30% then 85.60% -- not a
reproduction of the paper's number, which we could not read.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import dynlearn
from dynlearn.spiking import LIF, SpikeEvent

__all__ = [
    "SpikeTrainLevel",
    "STRSBP",
    "spike_train_gradient",
    "fixed_point_counts",
    "rule",
]


class SpikeTrainLevel(eqx.Module):
    """The spike-train level quantities of one simulation (batch-first arrays).

    `o_in`, `o_hidden`, `o_out`: firing counts; `e_forward` (batch, H, N), `e_recurrent`
    (batch, H, H), `e_readout` (batch, K, H): S-PSPs e_{i|j}; `a_hidden`, `a_out`: total
    S-PSPs (with the weights of the simulation).
    """

    o_in: Array
    o_hidden: Array
    o_out: Array
    e_forward: Array
    e_recurrent: Array
    e_readout: Array
    a_hidden: Array
    a_out: Array


def _per_spike(e: Array, o_pre: Array) -> Array:
    """e_{i|j} / o_j (0 where the pre-synaptic neuron is silent): d e_{i|j} / d o_j."""
    silent = o_pre[:, None, :] <= 0
    return jnp.where(silent, 0.0, e / jnp.where(silent, 1.0, o_pre[:, None, :]))


def spike_train_gradient(
    forward: Array,
    recurrent: Array,
    readout: Array,
    level: SpikeTrainLevel,
    target: Array,
    v_th: float = 1.0,
) -> tuple[Array, Array, Array]:
    """ST-RSBP's `(dE/dF, dE/dR, dE/dO)` (batch mean) of `E = 1/2 sum (o_out - target)^2`
    from the spike-train level quantities (module docstring, backward pass)."""
    slope_out = (level.a_out > 0).astype(level.a_out.dtype) / v_th
    slope_hidden = (level.a_hidden > 0).astype(level.a_hidden.dtype) / v_th
    delta_out = (level.o_out - target) * slope_out  # (B, K)
    m_out = readout[None] * _per_spike(level.e_readout, level.o_hidden)  # (B, K, H)
    m_rec = recurrent[None] * _per_spike(level.e_recurrent, level.o_hidden)  # (B, H, H)
    reaching = jnp.einsum("bk,bkh->bh", delta_out, m_out)  # lambda_h
    eye = jnp.eye(recurrent.shape[0], dtype=recurrent.dtype)
    # (I - D M_R^T) delta = D lambda, row h: delta_h - D_h sum_q M_R[q, h] delta_q
    system = eye[None] - slope_hidden[:, :, None] * jnp.swapaxes(m_rec, 1, 2)
    delta_hidden = jnp.linalg.solve(system, (slope_hidden * reaching)[..., None])[..., 0]
    batch = level.o_out.shape[0]
    g_readout = jnp.einsum("bk,bkh->kh", delta_out, level.e_readout) / batch
    g_forward = jnp.einsum("bh,bhj->hj", delta_hidden, level.e_forward) / batch
    g_recurrent = jnp.einsum("bh,bhq->hq", delta_hidden, level.e_recurrent) / batch
    return g_forward, g_recurrent * (1.0 - eye), g_readout


def fixed_point_counts(
    forward, recurrent, readout, level: SpikeTrainLevel, v_th: float = 1.0, iterations: int = 200
):
    """The spike-train level model's counts `(o_hidden, o_out)`: o_h = g(M_F o_in + M_R
    o_h) settled by `iterations` fixed-point iterations from the measured counts (per-spike
    S-PSPs e / o_pre held at their measured values), o_out = g(M_O o_h). Differentiable
    (`jax.grad` backpropagates through the iterations)."""
    m_f = forward[None] * _per_spike(level.e_forward, level.o_in)
    m_r = (
        recurrent[None]
        * (1.0 - jnp.eye(recurrent.shape[0]))
        * _per_spike(level.e_recurrent, level.o_hidden)
    )
    m_o = readout[None] * _per_spike(level.e_readout, level.o_hidden)
    drive = jnp.einsum("bhj,bj->bh", m_f, level.o_in)

    def step(o, _):
        return jax.nn.relu(drive + jnp.einsum("bhq,bq->bh", m_r, o)) / v_th, None

    o_hidden, _ = jax.lax.scan(step, level.o_hidden, None, length=iterations)
    o_out = jax.nn.relu(jnp.einsum("bkh,bh->bk", m_o, o_hidden)) / v_th
    return o_hidden, o_out


# ---------------------------------------------------------------------- the spiking network
class _Event(dynlearn.AbstractEvent):
    """The spikes of the input, hidden and output populations; a hidden or output spike adds
    its PSP states to its S-PSPs and resets them."""

    neurons: SpikeEvent

    def condition(self, t, y, args):
        return self.neurons.condition(t, y, args)

    def jump(self, t, y, args, fired):
        out = self.neurons.jump(t, y, args, fired)
        for layer in ("hidden", "output"):
            post = out[layer]["count"] - y[layer]["count"]  # 1 where the neuron fired
            psp = y[f"psp_{layer}"]
            out[f"spsp_{layer}"] = y[f"spsp_{layer}"] + post[..., None] * psp
            out[f"psp_{layer}"] = psp * (1.0 - post[..., None])
        return out


class _Network(dynlearn.AbstractDynamics):
    """Inputs (IF, threshold 1, intensity = spikes per step), the recurrent LIF layer, the
    LIF output, and the PSP / S-PSP states (Euler, dt = 1; spike traces of time constant 1
    hold the last step's spikes)."""

    forward: Array
    recurrent: Array
    readout: Array
    inputs: LIF
    neurons: LIF

    def vector_field(self, t, y, x):
        s_in, s_h = y["input"]["trace"], y["hidden"]["trace"]
        recurrent = self.recurrent * (1.0 - jnp.eye(self.recurrent.shape[0]))
        current_h = s_in @ self.forward.T + s_h @ recurrent.T
        out = {
            "input": self.inputs.drift(y["input"], x),
            "hidden": self.neurons.drift(y["hidden"], current_h),
            "output": self.neurons.drift(y["output"], s_h @ self.readout.T),
        }
        pre = {"hidden": jnp.concatenate([s_in, s_h], axis=-1), "output": s_h}
        for layer in ("hidden", "output"):
            held = (y[layer]["refractory"] > 0)[..., None]
            psp = y[f"psp_{layer}"]
            out[f"psp_{layer}"] = jnp.where(
                held, 0.0, (pre[layer][:, None, :] - psp) / self.neurons.tau_m
            )
            out[f"spsp_{layer}"] = jnp.zeros_like(psp)
        return out

    def event(self):
        return _Event(
            SpikeEvent({"input": self.inputs, "hidden": self.neurons, "output": self.neurons})
        )

    def time_constants(self) -> dict[str, float]:
        return self.neurons.time_constants()


def _check_positive_int(name, value):
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{name}: expected an integer >= 1; got {value!r}.")


def _check_positive(name, value):
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name}: expected a number > 0; got {value!r}.")


class STRSBP(dynlearn.AbstractBatchLearner):
    """Input -> recurrent LIF layer -> LIF output, trained by ST-RSBP (module docstring).

    **Arguments:**
    - `sizes`: (inputs, hidden, outputs): one recurrent hidden layer; `key` draws the
      weights (normal, std `gain / sqrt(fan-in)`; recurrent std `recurrent_gain /
      sqrt(hidden)`, no self-connections).
    - `steps`: T, the presentation in time steps (default 30); `tau_m`: membrane time
      constant in steps (default 5); `v_th`: threshold nu (default 1).
    - `targets`: (low, high) target counts as fractions of T (default (0.1, 0.5)).
    - `residual`: add the PSP left at the end of the window to the S-PSPs (default True).
    """

    forward: Array
    recurrent: Array
    readout: Array
    steps: int = eqx.field(static=True, default=30)
    tau_m: float = eqx.field(static=True, default=5.0)
    v_th: float = eqx.field(static=True, default=1.0)
    targets: tuple[float, float] = eqx.field(static=True, default=(0.1, 0.5))
    residual: bool = eqx.field(static=True, default=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        steps: int = 30,
        tau_m: float = 5.0,
        v_th: float = 1.0,
        targets: tuple[float, float] = (0.1, 0.5),
        residual: bool = True,
        gain: float = 4.0,
        recurrent_gain: float = 0.5,
    ):
        if len(sizes) != 3 or any(
            not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1)
            for n in sizes
        ):
            raise ValueError(
                f"sizes: expected (inputs, hidden, outputs) of positive integers, one "
                f"recurrent hidden layer; got {list(sizes)}."
            )
        _check_positive_int("steps", steps)
        for name, value in (("tau_m", tau_m), ("v_th", v_th), ("gain", gain)):
            _check_positive(name, value)
        if not (isinstance(recurrent_gain, numbers.Real) and recurrent_gain >= 0):
            raise ValueError(f"recurrent_gain: expected a number >= 0; got {recurrent_gain!r}.")
        if not (
            isinstance(targets, Sequence)
            and len(targets) == 2
            and all(isinstance(v, numbers.Real) for v in targets)
            and 0 <= targets[0] < targets[1] <= 1
        ):
            raise ValueError(
                f"targets: expected (low, high) fractions of the window with 0 <= low < high "
                f"<= 1; got {targets!r}."
            )
        n_in, n_hidden, n_out = (int(n) for n in sizes)
        k_f, k_r, k_o = jax.random.split(key, 3)
        self.forward = jax.random.normal(k_f, (n_hidden, n_in)) * (gain / jnp.sqrt(n_in))
        self.recurrent = (
            jax.random.normal(k_r, (n_hidden, n_hidden))
            * (recurrent_gain / jnp.sqrt(n_hidden))
            * (1.0 - jnp.eye(n_hidden))
        )
        self.readout = jax.random.normal(k_o, (n_out, n_hidden)) * (gain / jnp.sqrt(n_hidden))
        self.steps, self.tau_m, self.v_th = int(steps), float(tau_m), float(v_th)
        self.targets = (float(targets[0]), float(targets[1]))
        self.residual = bool(residual)

    @property
    def sizes(self) -> list[int]:
        return [self.forward.shape[1], self.forward.shape[0], self.readout.shape[0]]

    @property
    def neurons(self) -> LIF:
        return LIF(tau_m=self.tau_m, v_th=self.v_th, reset="zero", tau_trace=1.0)

    @property
    def inputs(self) -> LIF:
        return LIF(tau_m=1.0, v_th=1.0, reset="subtract", leak=False, tau_trace=1.0)

    def prunable(self):
        """The feed-forward weights F and O (not the recurrent R)."""
        spec = jax.tree.map(lambda _: False, self)
        return eqx.tree_at(lambda m: (m.forward, m.recurrent, m.readout), spec, (True, False, True))

    def simulate(self, x: Float[Array, "batch n_in"]) -> tuple[SpikeTrainLevel, dict]:
        """One presentation of T steps: the spike-train level quantities and the end state."""
        batch = x.shape[0]
        n_in, n_hidden, n_out = self.sizes
        weights = jax.lax.stop_gradient((self.forward, self.recurrent, self.readout))
        system = _Network(*weights, inputs=self.inputs, neurons=self.neurons)
        rest = self.inputs.init((batch, n_in), x.dtype)
        zeros = jnp.zeros
        start = {
            "input": {**rest, "v": rest["v"] + 0.5},  # half-way: unbiased regular trains
            "hidden": self.neurons.init((batch, n_hidden), x.dtype),
            "output": self.neurons.init((batch, n_out), x.dtype),
            "psp_hidden": zeros((batch, n_hidden, n_in + n_hidden), x.dtype),
            "spsp_hidden": zeros((batch, n_hidden, n_in + n_hidden), x.dtype),
            "psp_output": zeros((batch, n_out, n_hidden), x.dtype),
            "spsp_output": zeros((batch, n_out, n_hidden), x.dtype),
        }
        end = dynlearn.simulate(
            system, start, 0.0, float(self.steps), args=jnp.clip(x, 0.0, 1.0), dt=1.0, check=False
        ).y1
        e_hidden, e_out = end["spsp_hidden"], end["spsp_output"]
        if self.residual:
            e_hidden, e_out = e_hidden + end["psp_hidden"], e_out + end["psp_output"]
        e_forward, e_recurrent = e_hidden[..., :n_in], e_hidden[..., n_in:]
        forward, recurrent, readout = weights
        level = SpikeTrainLevel(
            o_in=end["input"]["count"],
            o_hidden=end["hidden"]["count"],
            o_out=end["output"]["count"],
            e_forward=e_forward,
            e_recurrent=e_recurrent,
            e_readout=e_out,
            a_hidden=jnp.einsum("hj,bhj->bh", forward, e_forward)
            + jnp.einsum("hq,bhq->bh", recurrent, e_recurrent),
            a_out=jnp.einsum("kh,bkh->bk", readout, e_out),
        )
        return level, end

    def target_counts(self, y: Array) -> Array:
        low, high = self.targets
        return self.steps * (low + (high - low) * y)

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0])
        level, _ = self.simulate(x)
        return level.a_out / self.v_th

    def updates(self, x, y, key):
        """ST-RSBP's gradient (batch mean) of `E = 1/2 sum (o_out - y_counts)^2`; the loss
        reported is E on the counts divided by T^2 (rates)."""
        dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])
        level, _ = self.simulate(x)
        target = self.target_counts(y.astype(x.dtype))
        grads = spike_train_gradient(
            self.forward, self.recurrent, self.readout, level, target, self.v_th
        )
        metrics = {
            "loss": dynlearn.squared_error(level.o_out / self.steps, target / self.steps),
            "output": level.a_out / self.v_th,
        }
        return eqx.tree_at(lambda m: (m.forward, m.recurrent, m.readout), self, grads), metrics


def rule(sizes: Sequence[int], key: PRNGKeyArray) -> dynlearn.Recipe:
    """The registered rule `st-rsbp`: one recurrent LIF layer, T = 30 steps, ST-RSBP's
    spike-train level gradient, Adam 1e-2 (chosen on digits), batches of 32. On full-size
    data a lower rate does better: Fashion-MNIST's validation split (last 20%), 784-R100-10,
    seed 0, after epochs 1 / 2: Adam 1e-3 82.9 / 85.4%, 3e-3 82.3 / 81.5, 1e-2 56.7 / 66.8
    (`dynlearn run spiking --parts st-rsbp --st-rsbp-lr` takes another rate)."""
    net = STRSBP(sizes, key)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-2)), 32)
