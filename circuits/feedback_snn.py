"""A feedback (recurrent) spiking network trained by implicit differentiation on the
equilibrium of its firing rates (IDE; Xiao, Meng, Zhang, Wang & Lin 2021, "Training
feedback spiking neural networks by implicit differentiation on the equilibrium state").

Hidden integrate-and-fire neurons (`dynlearn.spiking.LIF(leak=False)`, threshold `v_th`,
reset by subtraction) receive the input through `F` and their own spikes of the previous
time step through the recurrent `W`, in discrete time (the engine's Euler steps of dt = 1
with a spike trace of time constant 1, which then holds exactly the last step's spikes):

    u[t+1] = u[t] + W s[t] + F x + b,    s[t+1] = 1 if u[t+1] >= v_th (then u -= v_th),

at most one spike per step. Their average firing rates `a[T] = N(T) / T` converge (with
error O(1/T) when the map below is a contraction) to the fixed point

    a* = f(a*) = clamp((W a* + F x + b) / v_th, 0, 1)

(`theory/ide_equilibrium.py`). Training never backpropagates through the spikes: the
class scores are `O a* + c` under the softmax cross-entropy, and the gradient reaches W, F
and b through the fixed point by the implicit function theorem, `da*/dtheta = (I -
df/da)^{-1} df/dtheta`: the engine's `dynlearn.equilibrate` settles the rate equation
`da/dt = f(a) - a` from the spiking network's rates and differentiates implicitly.
Predictions are read from the spiking network's rates after `steps` time steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import CrossEntropy
from dynlearn.spiking import LIF

__all__ = ["FeedbackSNN", "FixedPointMap", "rule"]


class FixedPointMap(dynlearn.AbstractDynamics):
    """The rates' equation `da/dt = clamp((W a + F x + b) / v_th, 0, 1) - a` for an input
    `args = x` (inputs,) or a batch (batch, inputs); state `a` (hidden,) or (batch, hidden)."""

    forward: Array
    recurrent: Array
    bias: Array
    v_th: float = eqx.field(static=True)

    def target(self, a: Array, x: Array) -> Array:
        """f(a) = clamp((W a + F x + b) / v_th, 0, 1)."""
        drive = a @ self.recurrent.T + x @ self.forward.T + self.bias
        return jnp.clip(drive / self.v_th, 0.0, 1.0)

    def vector_field(self, t, a, x):
        return self.target(a, x) - a

    def time_constants(self) -> dict[str, float]:
        return {"tau": 1.0}


class _SpikingHidden(dynlearn.AbstractDynamics):
    """The hidden IF neurons in discrete time (Euler, dt = 1)."""

    rates: FixedPointMap

    @property
    def neurons(self) -> LIF:
        return LIF(tau_m=1.0, v_th=self.rates.v_th, reset="subtract", leak=False, tau_trace=1.0)

    def vector_field(self, t, y, x):
        r = self.rates
        current = y["trace"] @ r.recurrent.T + x @ r.forward.T + r.bias
        return self.neurons.drift(y, current)

    def event(self):
        return dynlearn.spiking.PopulationEvent(self.neurons)

    def time_constants(self) -> dict[str, float]:
        return self.neurons.time_constants()


class FeedbackSNN(dynlearn.AbstractBatchLearner):
    """784-H(+H recurrent)-10 feedback SNN (see the module docstring).

    **Arguments:** `sizes` (inputs, hidden, outputs), `key`; `v_th` threshold; `steps` time
    steps of the spiking simulation; `recurrent_scale` the initial recurrent weights' gain
    (kept small so that the rate map starts contractive).
    """

    forward: Array
    recurrent: Array
    bias: Array
    readout: Array
    readout_bias: Array
    v_th: float = eqx.field(static=True, default=1.0)
    steps: int = eqx.field(static=True, default=30)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        v_th: float = 1.0,
        steps: int = 30,
        recurrent_scale: float = 0.2,
    ):
        if len(sizes) != 3:
            raise ValueError(
                f"sizes: expected (inputs, hidden, outputs), one recurrent hidden layer; got "
                f"{list(sizes)}."
            )
        if not v_th > 0:
            raise ValueError(f"v_th: expected a positive threshold; got {v_th}.")
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"steps: expected a number of time steps >= 1; got {steps!r}.")
        n_in, n_hidden, n_out = sizes
        k_f, k_w, k_o = jax.random.split(key, 3)
        self.forward = jax.random.normal(k_f, (n_hidden, n_in)) * jnp.sqrt(2.0 / n_in)
        self.recurrent = jax.random.normal(k_w, (n_hidden, n_hidden)) * (
            recurrent_scale / jnp.sqrt(n_hidden)
        )
        self.bias = jnp.zeros(n_hidden)
        self.readout = jax.random.normal(k_o, (n_out, n_hidden)) * jnp.sqrt(1.0 / n_hidden)
        self.readout_bias = jnp.zeros(n_out)
        self.v_th, self.steps = v_th, steps

    @property
    def sizes(self) -> list[int]:
        return [self.forward.shape[1], self.forward.shape[0], self.readout.shape[0]]

    @property
    def rate_map(self) -> FixedPointMap:
        return FixedPointMap(self.forward, self.recurrent, self.bias, self.v_th)

    def spiking_rates(self, x: Array, steps: int | None = None) -> Array:
        """Average firing rates `N(T) / T` of the hidden neurons after T = `steps` steps."""
        steps = self.steps if steps is None else steps
        system = _SpikingHidden(jax.lax.stop_gradient(self.rate_map))
        start = system.neurons.init((x.shape[0], self.forward.shape[0]), x.dtype)
        end = dynlearn.simulate(system, start, 0.0, float(steps), args=x, dt=1.0, check=False).y1
        return end["count"] / steps

    def equilibrium(self, x: Array, adjoint_solver: lx.AbstractLinearSolver | None = None) -> Array:
        """The fixed point a* of the rate map, settled from the spiking rates; gradients
        flow to F, W, b by implicit differentiation, the linear system solved matrix-free
        by LSMR (default; the dense default of `equilibrate` materialises the batch's
        Jacobian: 60x slower at 784-400, batch 32, for the same gradient to 2e-5)."""
        start = jax.lax.stop_gradient(self.spiking_rates(x))
        solver = lx.LSMR(rtol=1e-6, atol=1e-6) if adjoint_solver is None else adjoint_solver
        return dynlearn.equilibrate(
            self.rate_map, start, x, rtol=1e-4, atol=1e-5, check=False, adjoint_solver=solver
        ).y

    def predict(self, x: Array) -> Array:
        dynlearn.check_batch(x, None, self.sizes[0])
        return self.spiking_rates(x) @ self.readout.T + self.readout_bias

    def updates(self, x, y, key):
        dynlearn.check_batch(x, y, self.sizes[0], self.sizes[-1])

        def loss(model):
            scores = model.equilibrium(x) @ model.readout.T + model.readout_bias
            return CrossEntropy()(scores, y), scores

        (value, scores), grads = eqx.filter_value_and_grad(loss, has_aux=True)(self)
        return grads, {"loss": value, "output": scores}


def rule(sizes: Sequence[int], key: PRNGKeyArray) -> dynlearn.Recipe:
    """The registered rule `ide`: a feedback SNN (one recurrent hidden layer of IF neurons,
    30 time steps) trained by implicit differentiation on its rates' equilibrium, Adam
    1e-3, batches of 32."""
    net = FeedbackSNN(sizes, key)
    return dynlearn.Recipe(net, dynlearn.SettleThenUpdate(optax.adam(1e-3)), 32)
