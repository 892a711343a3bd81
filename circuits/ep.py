"""Equilibrium propagation (EP) on a layered continuous Hopfield network.

Energy (Scellier & Bengio 2017), layers u_1..u_L, input x clamped (r_0 = x), r_l = rho(u_l):

    E(u) = 1/2 sum_l u_l.u_l - sum_l rho(u_l).(W_l r_{l-1} + b_l)

(the layered form of -1/2 sum_{i != j} W_ij rho_i rho_j with symmetric W). Cost
C = 1/2 |y - rho(u_L)|^2, or with the cross-entropy read-out (Laborieux et al. 2021)
C = CE(softmax(W_out rho(u_L) + b_out), y), the read-out outside the energy. Total
F = E + beta C; dynamics du/dt = -dF/du, derived by `dynlearn.gradient_flow` (the
continuous form; the discrete "primitive function" form s <- rho(dPhi/ds) of Ernoult et al.
2019 is Euler with dt = 1 for the hard sigmoid).

Free phase (beta = 0) to u^0, nudged phase from u^0 to u^beta. Gradient estimates of the
loss L = C(u^0), with the sign of a gradient (optax subtracts them):
- one-sided: (1/beta) [dF/dtheta(u^beta) - dF/dtheta(u^0)], bias O(beta);
- symmetric (Laborieux et al. 2021): (1/(2 beta)) [dF/dtheta(u^beta) - dF/dtheta(u^-beta)],
  bias O(beta^2);
- holomorphic (Laborieux & Zenke 2022): beta_k = |beta| e^{2 pi i k/N}, the real part of
  mean_k (1/beta_k) dF/dtheta(u^{beta_k}), exact up to O(|beta|^N); complex states, so rho
  must be holomorphic (sigmoid or tanh, not the hard sigmoid).
The reference they approach is recurrent backprop: the gradient of L through the free fixed
point by implicit differentiation (`dynlearn.equilibrate`; Scellier & Bengio 2019).

Continual EP (Ernoult et al. 2020), phase-free form: in one simulation over a stream, each
sample is shown for t_free + t_nudge with the nudge switched on for the last t_nudge, and
the weights move continuously, dtheta/dt = -(eta/beta) d/dt[dF/dtheta] along the neural
trajectory (at fixed theta), which sums to the one-shot EP update as eta -> 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits.backprop import ACTIVATIONS, init_layers

__all__ = [
    "EPNetwork",
    "EPDrive",
    "EulerPhases",
    "SteadyStatePhases",
    "ContinualEP",
    "ContinualEPDynamics",
    "ESTIMATORS",
]

ESTIMATORS = ("one_sided", "symmetric", "holomorphic")
HOLOMORPHIC = ("sigmoid", "tanh", "linear")


class EPDrive(eqx.Module):
    """Input x (clamped), target y and nudging strength beta (real or complex)."""

    x: Array
    y: Array
    beta: Array | float = 0.0


class EulerPhases(eqx.Module):
    """Fixed Euler steps: `n_free` for the free phase, `n_nudged` per nudged phase."""

    n_free: int = eqx.field(static=True, default=30)
    n_nudged: int = eqx.field(static=True, default=10)
    dt: float = eqx.field(static=True, default=0.5)


class SteadyStatePhases(eqx.Module):
    """Each phase integrated to a steady state (`equilibrate`): adaptive by default; with
    `dt`, fixed Euler steps with the same steady-state stop. The hard sigmoid's vector
    field has kinks at which adaptive step control stalls: use `dt` with it."""

    rtol: float = eqx.field(static=True, default=1e-4)
    atol: float = eqx.field(static=True, default=1e-4)
    solver: str = eqx.field(static=True, default="tsit5")
    max_time: float = eqx.field(static=True, default=500.0)
    dt: float | None = eqx.field(static=True, default=None)


class ContinualEP(eqx.Module):
    """Streaming continual EP: per sample `t_free` free then `t_nudge` nudged (step `dt`);
    weights learn with rate `eta` during the nudged part."""

    t_free: float = eqx.field(static=True, default=15.0)
    t_nudge: float = eqx.field(static=True, default=5.0)
    dt: float = eqx.field(static=True, default=1.0)
    eta: float = eqx.field(static=True, default=0.002)


class EPNetwork(dynlearn.AbstractEnergyDynamics, dynlearn.AbstractLearner):
    """Layered Hopfield network trained by EP; state `{"hidden<l>": {"u"}, ..., "output"}`.

    **Arguments:**
    - `sizes`: `(n_in, n_1, ..., n_L)`; with `readout="cross_entropy"` the last size is the
      number of classes, read out from layer L-1 by `W_out` (outside the energy).
    - `key`: initialisation; `activation`: rho (default `"hard_sigmoid"`).
    - `beta`: nudging strength (> 0); `estimator`: one of `ESTIMATORS`; `n_points`: N for
      the holomorphic estimator.
    - `phases`: `EulerPhases(...)` or `SteadyStatePhases(...)`.
    - `continual`: settings of `learn_online` (`fit(..., mode=AlwaysOn())`).
    """

    weights: list[Array]
    biases: list[Array]
    readout_weights: Array | None
    readout_bias: Array | None
    activation_name: str = eqx.field(static=True)
    readout: str = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    estimator: str = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    phases: EulerPhases | SteadyStatePhases = eqx.field(static=True)
    continual: ContinualEP = eqx.field(static=True)
    tau: float = eqx.field(static=True, default=1.0)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        activation: str = "hard_sigmoid",
        readout: str = "squared_error",
        beta: float = 0.1,
        estimator: str = "symmetric",
        n_points: int = 2,
        phases=EulerPhases(),
        continual=ContinualEP(),
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: unknown name {activation!r}; known: {sorted(ACTIVATIONS)}."
            )
        if readout not in ("squared_error", "cross_entropy"):
            raise ValueError(
                f"readout: unknown {readout!r}; known: ['squared_error', 'cross_entropy']."
            )
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator: unknown {estimator!r}; known: {list(ESTIMATORS)}.")
        if not beta > 0:
            raise ValueError(
                f"beta must be > 0: every EP estimator divides by it (got {beta}); the sign of "
                "the nudge is the estimator's business (symmetric uses +beta and -beta)."
            )
        if estimator == "holomorphic":
            if activation not in HOLOMORPHIC:
                raise ValueError(
                    f"activation: the holomorphic estimator needs a holomorphic rho, one of "
                    f"{list(HOLOMORPHIC)}; got {activation!r}."
                )
            if n_points < 2:
                raise ValueError(f"n_points must be >= 2 for holomorphic EP; got {n_points}.")
        key_w, key_out = jax.random.split(key)
        energy_sizes = list(sizes[:-1]) if readout == "cross_entropy" else list(sizes)
        if len(energy_sizes) < 2:
            raise ValueError(f"sizes: need at least one layer inside the energy; got {sizes}.")
        self.weights, self.biases = init_layers(energy_sizes, key_w)
        if readout == "cross_entropy":
            (w_out,), (b_out,) = init_layers([sizes[-2], sizes[-1]], key_out)
            self.readout_weights, self.readout_bias = w_out, b_out
        else:
            self.readout_weights = self.readout_bias = None
        self.activation_name = activation
        self.readout = readout
        self.beta = float(beta)
        self.estimator = estimator
        self.n_points = int(n_points)
        self.phases = phases
        self.continual = continual

    # ----------------------------------------------------------------- structure
    @property
    def sizes(self) -> list[int]:
        sizes = [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]
        if self.readout_weights is not None:
            sizes.append(self.readout_weights.shape[0])
        return sizes

    @property
    def layer_names(self) -> list[str]:
        n = len(self.weights)
        if self.readout == "cross_entropy":
            return [f"hidden{i}" for i in range(1, n + 1)]
        return [f"hidden{i}" for i in range(1, n)] + ["output"]

    def rho(self, u):
        return ACTIVATIONS[self.activation_name](u)

    def init_state(self, dtype=None) -> dict:
        dtype = dtype or self.weights[0].dtype
        return {
            name: {"u": jnp.zeros(w.shape[0], dtype)}
            for name, w in zip(self.layer_names, self.weights)
        }

    def params(self):
        return (self.weights, self.biases, self.readout_weights, self.readout_bias)

    def with_params(self, params) -> EPNetwork:
        return eqx.tree_at(
            lambda m: (m.weights, m.biases, m.readout_weights, m.readout_bias),
            self,
            params,
            is_leaf=lambda x: x is None,
        )

    # ----------------------------------------------------------------- energy
    def hopfield_energy(self, state, x, rho=None, *, with_input=True):
        """E(u) (holomorphic in u: squares, not absolute squares); `rho` overrides the
        activation; `with_input=False` leaves out the input coupling -rho(u_1).(W_1 x + b_1)
        (see `input_coupling`)."""
        rho_fn = rho or self.rho
        total, r = 0.0, x
        for i, (name, w, b) in enumerate(zip(self.layer_names, self.weights, self.biases)):
            u = state[name]["u"]
            rho = rho_fn(u)
            total = total + 0.5 * jnp.sum(u * u)
            if i > 0 or with_input:
                total = total - jnp.sum(rho * (r @ w.T + b))
            r = rho
        return total

    def input_coupling(self, rho_1, x):
        """-rho_1.(W_1 x + b_1): linear in rho_1, so a weighted sum over states can be
        taken before the largest product."""
        return -jnp.sum(rho_1 * (x @ self.weights[0].T + self.biases[0]))

    def output(self, state, rho=None):
        """rho(u_L) (squared error) or the read-out logits (cross-entropy)."""
        r = (rho or self.rho)(state[self.layer_names[-1]]["u"])
        if self.readout == "cross_entropy":
            return r @ self.readout_weights.T + self.readout_bias
        return r

    def cost(self, state, y, rho=None):
        out = self.output(state, rho)
        if self.readout == "cross_entropy":
            return jnp.sum(optax.softmax_cross_entropy(out, y))
        diff = y - out
        return 0.5 * jnp.sum(diff * diff)

    def energy(self, state, drive: EPDrive, rho=None):
        """F = E + beta C."""
        return self.hopfield_energy(state, drive.x, rho) + drive.beta * self.cost(
            state, drive.y, rho
        )

    def vector_field(self, t, state, drive: EPDrive):
        """-dF/du; for the hard sigmoid, the box-constrained flow on u in [0, 1].

        With the hard sigmoid the plain flow -u + rho'(u)(...) is discontinuous at 0 and 1:
        units whose input exceeds 1 rest on the kink and explicit steps chatter around it,
        which the 1/beta of EP amplifies into noise. As in Scellier & Bengio (2017), who
        keep u in [0, 1], the state is confined to the box, where rho(u) = u: the flow is
        clip(u - dF~/du, 0, 1) - u with F~ the energy at rho = identity. Its fixed points
        are the box-constrained minima u = clip(dPhi/du) of the primitive form (Ernoult et
        al. 2019), and Euler with dt = 1 is exactly that form's iteration.
        """
        if self.activation_name != "hard_sigmoid":
            return super().vector_field(t, state, drive)
        grad = jax.grad(lambda s: self.energy(s, drive, rho=lambda u: u))(state)
        return jax.tree.map(lambda u, g: (jnp.clip(u - g, 0.0, 1.0) - u) / self.tau, state, grad)

    # ----------------------------------------------------------------- phases
    def relax(self, state, drive: EPDrive, n_steps: int | None = None):
        """Run one phase from `state` under `drive` (free if beta = 0)."""
        phases = self.phases
        if isinstance(phases, EulerPhases):
            n = phases.n_free if n_steps is None else n_steps
            return dynlearn.simulate(
                self, state, 0.0, n * phases.dt, args=drive, dt=phases.dt, check=False
            ).y1
        solver = "euler" if phases.dt is not None else phases.solver
        eq = dynlearn.equilibrate(
            self,
            state,
            drive,
            solver=solver,
            rtol=phases.rtol,
            atol=phases.atol,
            max_time=phases.max_time,
            dt=phases.dt,
            max_steps=int(phases.max_time / phases.dt) + 1 if phases.dt else 100_000,
            check=False,
        )
        return eq.y

    def free_phase(self, x, y):
        """u^0 for one sample, from the zero state."""
        return self.relax(self.init_state(), EPDrive(x, y, jnp.zeros((), x.dtype)))

    def estimator_terms(self, estimator=None, beta=None, n_points=None) -> list[tuple]:
        """`(beta_k, c_k)` of an estimator (default: this network's): updates =
        d/dtheta Re sum_k c_k F(u^{beta_k}), with beta_k = 0 meaning the free fixed point."""
        estimator = estimator or self.estimator
        beta = self.beta if beta is None else beta
        if estimator == "one_sided":
            return [(0.0, -1.0 / beta), (beta, 1.0 / beta)]
        if estimator == "symmetric":
            return [(beta, 0.5 / beta), (-beta, -0.5 / beta)]
        n = n_points or self.n_points
        betas = [beta * complex(np.exp(2j * np.pi * k / n)) for k in range(n)]
        return [(b, 1.0 / (n * b)) for b in betas]

    def nudged_phase(self, u0, x, y, beta):
        """u^beta for one sample, from the free fixed point u0 (complex if beta is)."""
        n = self.phases.n_nudged if isinstance(self.phases, EulerPhases) else None
        if isinstance(beta, complex):
            u0 = jax.tree.map(lambda a: a.astype(jnp.result_type(a.dtype, 1j)), u0)
        # beta as an array: one compiled phase serves every nudging strength.
        beta = jnp.asarray(beta, jax.tree.leaves(u0)[0].dtype)
        return self.relax(u0, EPDrive(x, y, beta), n)

    # ----------------------------------------------------------------- learning
    def predict(self, x):
        """Outputs at the free fixed point for a batch (this settles the network)."""
        self._check_batch(x)
        y = jnp.zeros((x.shape[0], self.sizes[-1]), x.dtype)
        return jax.vmap(lambda xi, yi: self.output(self.free_phase(xi, yi)))(x, y)

    def updates(self, x, y, key):
        """EP estimate of dL/dtheta (batch mean), L the cost at the free fixed point."""
        return self.estimate(x, y)

    def estimate(self, x, y, *, estimator=None, beta=None, n_points=None):
        """`(updates, metrics)` with any estimator and beta (default: the network's own)."""
        x, y = self._check_batch(x, y)
        free = jax.vmap(self.free_phase)(x, y)
        terms = []
        for beta, coef in self.estimator_terms(estimator, beta, n_points):
            if beta == 0:
                terms.append((free, beta, coef))
            else:
                nudged = jax.vmap(lambda u, xi, yi: self.nudged_phase(u, xi, yi, beta))
                terms.append((nudged(free, x, y), beta, coef))

        def weighted_energy(params):
            # F sums over samples, so one batched call gives the batch total and the weight
            # gradients come out as matrix products over the batch (no per-sample outer
            # products).
            # The input coupling is linear in rho(u_1): its weighted sum over the states is
            # formed first, so dF/dW_1 costs one product with x, not one per state.
            net = self.with_params(params)
            total, rho_1 = 0.0, 0.0
            for state, beta, coef in terms:
                rest = net.hopfield_energy(state, x, with_input=False)
                total = total + coef * (rest + beta * net.cost(state, y))
                rho_1 = rho_1 + coef * net.rho(state[net.layer_names[0]]["u"])
            total = total + net.input_coupling(rho_1, x)
            return jnp.real(total) / x.shape[0]

        grads = self.with_params(jax.grad(weighted_energy)(self.params()))
        output = jax.vmap(self.output)(free)
        loss = jnp.mean(jax.vmap(self.cost)(free, y))
        return grads, {"loss": loss, "output": output}

    def learn_online(self, x, y, key):
        """Continual EP on the batch streamed sample by sample (see `ContinualEP`)."""
        x, y = self._check_batch(x, y)
        c = self.continual
        stream = dynlearn.StimulusStream(x, t_pres=c.t_free + c.t_nudge, targets=y)
        system = ContinualEPDynamics(self, c.eta, c.t_free)
        state0 = {"layers": self.init_state(), "params": self.params()}
        end = dynlearn.simulate(
            system, state0, 0.0, stream.t1, args=stream, dt=c.dt, check=False
        ).y1
        free = jax.vmap(self.free_phase)(x, y)
        output = jax.vmap(self.output)(free)
        loss = jnp.mean(jax.vmap(self.cost)(free, y))
        return self.with_params(end["params"]), {"loss": loss, "output": output}

    def _check_batch(self, x, y=None):
        if x.ndim != 2 or x.shape[-1] != self.sizes[0]:
            raise ValueError(
                f"x: expected a batch (batch, {self.sizes[0]}) for layer sizes {self.sizes}; "
                f"got shape {x.shape}."
            )
        if y is not None and y.shape != (x.shape[0], self.sizes[-1]):
            raise ValueError(
                f"y: expected targets of shape ({x.shape[0]}, {self.sizes[-1]}); got {y.shape}."
            )
        # Inside fit the data set was checked once; here only eager calls are checked.
        return dynlearn.check_finite((x, y), "inputs (x, y)", when_traced=False)


class ContinualDrive(eqx.Module):
    """A stream plus the nudge schedule: beta(t) = beta during the last part of a sample."""

    stream: dynlearn.StimulusStream
    beta: float
    t_free: float = eqx.field(static=True)

    def nudge(self, t):
        phase = t - self.stream.t0 - self.stream.index(t) * self.stream.t_pres
        return jnp.where(phase >= self.t_free, self.beta, 0.0)


class ContinualEPDynamics(dynlearn.AbstractDynamics):
    """Neurons follow -dF/du; weights follow -(eta/beta) d/dt[dF/dtheta] at fixed theta
    (the continuous-time limit of C-EP's difference of consecutive dF/dtheta)."""

    network: EPNetwork
    eta: float = eqx.field(static=True)
    t_free: float = eqx.field(static=True)

    def vector_field(self, t, state, stream):
        net = self.network.with_params(state["params"])
        beta = ContinualDrive(stream, net.beta, self.t_free).nudge(t)
        drive = EPDrive(stream.input(t), stream.target(t), beta)
        du = net.vector_field(t, state["layers"], drive)

        def param_grad(layers):
            return jax.grad(lambda p: net.with_params(p).energy(layers, drive))(net.params())

        _, d_grad = jax.jvp(param_grad, (state["layers"],), (du,))
        gate = (beta != 0).astype(du[net.layer_names[0]]["u"].dtype)
        dparams = jax.tree.map(lambda g: -gate * self.eta / net.beta * g, d_grad)
        return {"layers": du, "params": dparams}


def rule(sizes, key):
    """The registered rule `ep` (`dynlearn.rules`): equilibrium propagation with symmetric
    nudging (beta 0.1), hard sigmoid, Euler phases 30/10 steps of 0.5, Adam 1e-3, batches
    of 32."""
    return EPNetwork(sizes, key), {"optimizer": optax.adam(1e-3), "batch_size": 32}


def rule_continual(sizes, key):
    """The registered rule `ep-continual` (`dynlearn.rules`): continual EP — the weights
    learn during the nudged part of every presentation (15 ms free, 5 ms nudged, dt 1,
    eta 0.002), always-on, hard sigmoid, batches of 32."""
    return EPNetwork(sizes, key), {"mode": dynlearn.AlwaysOn(), "batch_size": 32}
