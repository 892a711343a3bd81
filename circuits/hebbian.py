"""Hebbian and competitive learning: layers that learn without labels under a linear
read-out that learns the labels.

Hebbian layer l sees the features f_{l-1} of the layer below (f_0 = x), centred on their
running mean c_l when its rule asks (tau_w dc_l/dt = f_{l-1} - c_l, an adapting baseline)
and scaled to unit length (a divisive normalisation), x_l = (f_{l-1} - c_l) / |f_{l-1} - c_l|:

    tau du_l/dt = -u_l + W_l f_{l-1}             settled: u_l = W_l f_{l-1}
    y_l = rule.response(u_l, b_l)                its competition (none, soft or hard WTA)
    tau_w dW_l/dt = rule.rate(f_{l-1}, u_l, y_l)  its local rule; it never sees a label
    f_l = rule.features(u_l, y_l)                what the layer above sees

and the read-out sees them divisively normalised, r = sqrt(n_L) f_L / |f_L| (each input
of order one, whatever the rule's feature scale), z = V r + c, and learns the labels t by
the delta rule of the softmax cross-entropy, tau dz/dt = -z + V r + c,
dV/dt = eta_r (t - softmax(z)) r^T, dc/dt = eta_r (t - softmax(z)). Settle-then-update
uses the settled values and the same rates (with a gradient's sign), applied by
`HebbianNetwork.optimizer`.

The rules (each implemented from its paper's equations):
- `GeneralisedHebbian`: Sanger's (1989) GHA, dW = y x^T - LT(y y^T) W with y = u; with one
  unit it is Oja's (1982) rule dw = y (x - y w); `ordered=False` is Oja's subspace rule.
- `SoftHebb`: Moraitis et al. (2022) soft winner-take-all, y = softmax((u + b) / T),
  dw_k = eta_k y_k (x - u_k w_k) with eta_k = |(|w_k| - 1)|^p, and the bias rule that makes
  e^{b_k / T} the mixture prior; the multilayer options of Journé et al. (2023): anti-Hebbian
  losers and the triangle activation ReLU(u - mean(u))^q.
- `HardWTA`: competitive Hebbian learning with one winner, dw_k = g_k (x - u_k w_k), g = 1
  for the winner, and, as in Krotov & Hopfield (2019), -delta for the unit ranked `rank`
  (and an optional homeostatic threshold).
- `CompetitiveSubspace`: rectified units that compete for the input by the residual they
  leave, dW = y x^T - (y^T y) W, the rule of `ActivationLearner`.

`ActivationLearner` is activation learning (Zhou 2022, "Activation learning by local
competitions"): Hebbian layers, trained without any error signal on the input *and its
label together*, whose output activation — the sum of the squared outputs, A = |f_L|^2 —
grows with how familiar a pattern is ("learn more, activate more"). A sample is classified
by the label that activates the trained network most, class(x) = argmax_c A([x, lambda
e_c]): no read-out, no backward signal of any kind. Details the paper's abstract leaves
open (its full text was not available when this was written), picked and documented: the
competition is the residual-driven one of Oja's subspace rule with rectified units (so a
pattern the layer has learned is reconstructed, x ≈ W^T y, and for unit-length x that is
where |y| is largest), the label a one-hot code of height `label_scale` appended to the
unit-length input, the same rule in every layer, the joint input centred on its running
mean.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

import dynlearn
from circuits._layers import CrossEntropy, check_positive, layer_names, sizes_of

__all__ = [
    "AbstractHebbianRule",
    "GeneralisedHebbian",
    "SoftHebb",
    "HardWTA",
    "CompetitiveSubspace",
    "HebbianNetwork",
    "ActivationLearner",
    "annealed_sgd",
    "train_unlabelled",
    "unit_rows",
]


def unit_rows(x: Array) -> Array:
    """`x / |x|` along the last axis (zero rows stay zero)."""
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(norm > 0, norm, 1.0)


class AbstractHebbianRule(eqx.Module):
    """A label-free local rule: the competition between a layer's units and its weight
    change. Rates are batch (stream) means with the sign of an increase (dW/dt)."""

    normalize_input: eqx.AbstractVar[bool]
    centre_input: eqx.AbstractVar[bool]
    init_radius: eqx.AbstractVar[float]

    @abc.abstractmethod
    def response(self, u: Array, b: Array) -> Array:
        """The post-synaptic factor y `(batch, n)` for drives u `(batch, n)`, biases b."""

    @abc.abstractmethod
    def rate(self, x: Array, u: Array, y: Array, w: Array, b: Array) -> tuple[Array, Array]:
        """`(dW, db)`: the weight and bias rates for inputs x, drives u, responses y."""

    def features(self, u: Array, y: Array) -> Array:
        """What the layer above (or the read-out) sees; default the response y."""
        return y

    def init_bias(self, n: int) -> Array:
        return jnp.zeros(n)


class GeneralisedHebbian(AbstractHebbianRule):
    """Sanger's generalised Hebbian algorithm: linear units y = u = W x and

        dW/dt = y x^T - LT(y y^T) W        (LT: the lower triangle, diagonal included)

    so unit k learns the k-th principal component of E[x x^T] (with norm 1) once the units
    above it have learned theirs; one unit is Oja's rule dw = y (x - y w). `ordered=False`
    keeps the whole y y^T (Oja's subspace rule: an orthonormal basis of the top-k subspace,
    in no particular order)."""

    ordered: bool = eqx.field(static=True, default=True)
    normalize_input: bool = eqx.field(static=True, default=False)
    centre_input: bool = eqx.field(static=True, default=False)
    init_radius: float = eqx.field(static=True, default=0.5)

    def response(self, u, b):
        return u

    def rate(self, x, u, y, w, b):
        n = x.shape[0]
        if not self.ordered:  # y^T (x - y W): no units x units product
            return (y.T @ (x - y @ w)) / n, jnp.zeros_like(b)
        return (y.T @ x - jnp.tril(y.T @ y) @ w) / n, jnp.zeros_like(b)


class SoftHebb(AbstractHebbianRule):
    """Soft winner-take-all with Hebbian plasticity (Moraitis et al. 2022).

    The layer is a mixture model: unit k a component with mean direction w_k, likelihood
    p(x | k) ∝ exp(w_k . x / T) for unit-length x (a von Mises-Fisher component of
    concentration 1/T) and prior pi_k = e^{b_k / T}; its soft WTA output is the posterior

        q_k = softmax_k((u_k + b_k) / T),     u_k = w_k . x,

    (the closed form of lateral inhibition settling to it). The rules

        dw_k/dt = eta_k q_k (x - u_k w_k),          eta_k = |(|w_k| - 1)|^p
        db_k/dt = r T (mean(q_k) - pi_k) / pi_k      (pi_k = softmax(b / T)_k -> mean(q_k))

    make |w_k| -> 1 and w_k the posterior-weighted mean direction of its inputs, the
    M-step of the mixture: the network minimises the cross-entropy of its model without a
    label (`theory/softhebb_mixture.py`). The bias rule is the paper's, with the priors
    normalised (the soft WTA ignores a common shift of b) and the 1 / pi_k factor capped at
    10 K (K units): uncapped, it overflowed for units that had lost for a while (NaN within
    one epoch on `digits`); the cap keeps the rule linear in q, so its fixed point stays
    pi_k = E[q_k] (a rule in the log domain, b -> T log mean(q), was biased low by
    E[log mean] < log E over small batches: priors 0.10 for 0.2, measured). With
    `anti_hebbian` (Journé et al. 2023) every unit but the winner learns with -q_k;
    `triangle_power` q passes ReLU(u - mean(u))^q on instead of the posterior (the
    multilayer variant's activation).

    **Arguments:**
    - `temperature`: T > 0 (the paper's MNIST layer: 1/12 ... 1).
    - `rate_power`: p >= 0 of the norm-adaptive rate (0: a constant rate).
    - `learn_bias`: the bias (prior) rule on or off (then b stays log(1/n) T, equal priors).
    - `bias_rate`: r, the prior's rate relative to the weights' (slower than the weights, or
      a unit that starts far from every input loses its prior before it has learned).
    - `anti_hebbian`, `triangle_power`: the multilayer options above.
    - `normalize_input`: scale the input to unit length (the model's assumption).
    - `init_radius`: initial |w_k| (!= 1, or the adaptive rate starts at zero).
    """

    temperature: float = eqx.field(static=True, default=1 / 12)
    rate_power: float = eqx.field(static=True, default=0.5)
    learn_bias: bool = eqx.field(static=True, default=True)
    bias_rate: float = eqx.field(static=True, default=0.1)
    anti_hebbian: bool = eqx.field(static=True, default=False)
    triangle_power: float | None = eqx.field(static=True, default=None)
    normalize_input: bool = eqx.field(static=True, default=True)
    centre_input: bool = eqx.field(static=True, default=True)
    init_radius: float = eqx.field(static=True, default=4.0)

    def __check_init__(self):
        check_positive(
            self,
            temperature=self.temperature,
            init_radius=self.init_radius,
            bias_rate=self.bias_rate,
        )
        if not self.rate_power >= 0:
            raise ValueError(f"SoftHebb.rate_power must be >= 0; got {self.rate_power!r}.")
        if self.triangle_power is not None:
            check_positive(self, triangle_power=self.triangle_power)

    def posterior(self, u, b):
        return jax.nn.softmax((u + b) / self.temperature, axis=-1)

    def response(self, u, b):
        q = self.posterior(u, b)
        if not self.anti_hebbian:
            return q
        winner = jax.nn.one_hot(jnp.argmax(u + b, axis=-1), u.shape[-1], dtype=q.dtype)
        return jnp.where(winner > 0, q, -q)

    def rate(self, x, u, y, w, b):
        n = x.shape[0]
        eta = jnp.abs(jnp.linalg.norm(w, axis=1) - 1.0) ** self.rate_power
        dw = eta[:, None] * (y.T @ x - jnp.sum(y * u, axis=0)[:, None] * w) / n
        if not self.learn_bias:
            return dw, jnp.zeros_like(b)
        mean_q = jnp.mean(self.posterior(u, b), axis=0)
        prior = jax.nn.softmax(b / self.temperature)
        floor = 0.1 / b.shape[-1]
        db = self.temperature * (mean_q - prior) / jnp.maximum(prior, floor)
        return dw, self.bias_rate * db

    def features(self, u, y):
        if self.triangle_power is None:
            return jnp.abs(y)
        return jax.nn.relu(u - jnp.mean(u, axis=-1, keepdims=True)) ** self.triangle_power

    def init_bias(self, n):
        return jnp.full(n, self.temperature * jnp.log(1.0 / n))


class HardWTA(AbstractHebbianRule):
    """Competitive Hebbian learning with a hard winner (Rumelhart & Zipser 1985) and Krotov
    & Hopfield's (2019) anti-Hebbian rank: g_k = 1 for the unit with the largest u_k + b_k,
    -delta for the unit ranked `rank`, 0 for the others, and

        dw_k/dt = g_k (x - u_k w_k)       (the Euclidean case of their rule: |w_k| -> 1)
        db_k/dt = h (1 / K - mean(win_k))  (`homeostasis` h: an adaptive threshold)

    The threshold (DeSieno's 1988 "conscience", a homeostatic excitability) lowers the
    bar of units that win less than their share 1 / K of the samples: without it (h = 0)
    a unit that starts far from the data never wins and never learns. The features passed
    on are ReLU(u)^n (`feature_power` n; Krotov & Hopfield read out with n = 4.5)."""

    delta: float = eqx.field(static=True, default=0.4)
    rank: int = eqx.field(static=True, default=2)
    feature_power: float = eqx.field(static=True, default=3.0)
    homeostasis: float = eqx.field(static=True, default=0.0)
    normalize_input: bool = eqx.field(static=True, default=True)
    centre_input: bool = eqx.field(static=True, default=True)
    init_radius: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        check_positive(self, feature_power=self.feature_power, init_radius=self.init_radius)
        if not self.delta >= 0:
            raise ValueError(f"HardWTA.delta must be >= 0; got {self.delta!r}.")
        if not self.homeostasis >= 0:
            raise ValueError(f"HardWTA.homeostasis must be >= 0; got {self.homeostasis!r}.")
        if not (isinstance(self.rank, int) and self.rank >= 2):
            raise ValueError(f"HardWTA.rank must be an int >= 2; got {self.rank!r}.")

    def response(self, u, b):
        n = u.shape[-1]
        _, order = jax.lax.top_k(u + b, min(self.rank, n))  # the leaders only, not a full sort
        winner = jax.nn.one_hot(order[:, 0], n, dtype=u.dtype)
        if n < self.rank:
            return winner
        return winner - self.delta * jax.nn.one_hot(order[:, -1], n, dtype=u.dtype)

    def rate(self, x, u, y, w, b):
        n = x.shape[0]
        dw = (y.T @ x - jnp.sum(y * u, axis=0)[:, None] * w) / n
        wins = jnp.mean(jnp.maximum(y, 0.0), axis=0)  # the fraction of the batch each unit won
        return dw, self.homeostasis * (1.0 / b.shape[-1] - wins)

    def features(self, u, y):
        return jax.nn.relu(u) ** self.feature_power


class HebbianNetwork(dynlearn.AbstractPlastic, dynlearn.AbstractBatchLearner):
    """Hebbian layers (each with its rule) under an optional linear read-out.

    State `{"hidden1": {"u"}, ..., "output": {"z"}}` (the last Hebbian layer is `output`
    when there is no read-out); see the module docstring for the equations.

    **Arguments:**
    - `sizes`: `[n_in, n_1, ..., n_L, n_classes]` (or without `n_classes` when
      `readout=False`).
    - `rules`: one `AbstractHebbianRule` per Hebbian layer, or one for all.
    - `key`: initialisation (Hebbian rows random with length `rule.init_radius`; the
      read-out starts at zero).
    - `readout`: a read-out that learns the labels (default) or none (unsupervised).
    - `tau`: neuron time constant; `tau_w`: the Hebbian plasticity's; `eta_readout`: the
      read-out's delta-rule rate per unit time (always-on).
    """

    weights: list[Array]
    biases: list[Array]
    centres: list[Array]
    rules: tuple[AbstractHebbianRule, ...]
    readout: bool = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    tau_w: float = eqx.field(static=True)
    eta_readout: float = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        rules: AbstractHebbianRule | Sequence[AbstractHebbianRule],
        key: PRNGKeyArray,
        *,
        readout: bool = True,
        tau: float = 1.0,
        tau_w: float = 100.0,
        eta_readout: float = 0.01,
    ):
        sizes = [int(n) for n in sizes]
        n_hebbian = len(sizes) - (2 if readout else 1)
        if n_hebbian < 1 or any(n < 1 for n in sizes):
            raise ValueError(
                f"sizes: need n_in, at least one Hebbian layer"
                f"{' and the read-out (n_classes)' if readout else ''}, all >= 1; got {sizes}."
            )
        if isinstance(rules, AbstractHebbianRule):
            rules = [rules] * n_hebbian
        rules = tuple(rules)
        if len(rules) != n_hebbian or not all(isinstance(r, AbstractHebbianRule) for r in rules):
            raise ValueError(
                f"rules: expected {n_hebbian} Hebbian rules (GeneralisedHebbian(), SoftHebb(), "
                f"HardWTA(), ...) for sizes {sizes}, or one for all; got {rules!r}."
            )
        check_positive(self, tau=tau, tau_w=tau_w, eta_readout=eta_readout)
        keys = jax.random.split(key, n_hebbian)
        self.weights = [
            rule.init_radius * unit_rows(jax.random.normal(k, (n_out, n_in)))
            for rule, k, n_in, n_out in zip(rules, keys, sizes[:-1], sizes[1:])
        ]
        self.biases = [rule.init_bias(n) for rule, n in zip(rules, sizes[1:])]
        self.centres = [jnp.zeros(n) for n in sizes[:n_hebbian]]
        if readout:
            self.weights.append(jnp.zeros((sizes[-1], sizes[-2])))
            self.biases.append(jnp.zeros(sizes[-1]))
        self.rules, self.readout = rules, readout
        self.tau, self.tau_w, self.eta_readout = float(tau), float(tau_w), float(eta_readout)

    @property
    def sizes(self) -> list[int]:
        return sizes_of(self.weights)

    @property
    def layer_names(self) -> list[str]:
        return layer_names(len(self.weights))

    def time_constants(self):
        return {"tau": self.tau, "tau_w": self.tau_w}

    def _input(self, rule: AbstractHebbianRule, f: Array, centre: Array) -> Array:
        if rule.centre_input:
            f = f - centre
        return unit_rows(f) if rule.normalize_input else f

    def readout_input(self, features: Array) -> Array:
        """r = sqrt(n_L) f_L / |f_L|: what the read-out sees."""
        return jnp.sqrt(features.shape[-1]) * unit_rows(features)

    def layer(self, index: int, f: Array) -> tuple[Array, Array, Array, Array]:
        """Hebbian layer `index` settled on the features f below it: `(input x_l as its
        rule sees it, drive u_l, response y_l, features f_l)`."""
        rule, w, b = self.rules[index], self.weights[index], self.biases[index]
        f_in = self._input(rule, f, self.centres[index])
        u = f_in @ w.T
        y = rule.response(u, b)
        return f_in, u, y, rule.features(u, y)

    def settle(self, x: Array) -> tuple[list[Array], ...]:
        """The settled layers for inputs x: `(raw inputs f_{l-1}, inputs x_l as each rule
        sees them, drives u_l, responses y_l, features f_L the read-out sees)`."""
        inputs, drives, responses, raw, f = [], [], [], [], x
        for index in range(len(self.rules)):
            raw.append(f)
            f_in, u, y, f = self.layer(index, f)
            inputs.append(f_in), drives.append(u), responses.append(y)
        return raw, inputs, drives, responses, f

    def predict(self, x):
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        features = self.settle(x)[-1]
        if not self.readout:
            return features
        return self.readout_input(features) @ self.weights[-1].T + self.biases[-1]

    def _hebbian_rates(self, raw, inputs, drives, responses) -> tuple[list, list, list]:
        """`(dW, db, dc)` of the Hebbian layers (dc: the centres' running mean)."""
        rates = [
            rule.rate(f_in, u, y, w, b)
            for rule, f_in, u, y, w, b in zip(
                self.rules, inputs, drives, responses, self.weights, self.biases
            )
        ]
        d_centres = [
            jnp.mean(f, axis=0) - c if rule.centre_input else jnp.zeros_like(c)
            for rule, f, c in zip(self.rules, raw, self.centres)
        ]
        return [r[0] for r in rates], [r[1] for r in rates], d_centres

    def _readout_error(self, z, target, what: str) -> Array:
        if target is None:
            raise ValueError(
                f"{what}: the read-out learns from labels, and none were given (one-hot "
                "targets, n_classes wide); the Hebbian layers alone need none: build the "
                "network with readout=False to train them unsupervised."
            )
        if target.shape != z.shape:
            raise ValueError(
                f"{what}: expected one-hot targets of shape {z.shape} for the read-out; got "
                f"{target.shape}."
            )
        return target - jax.nn.softmax(z, axis=-1)

    def updates(self, x, y, key):
        """Gradient-signed updates: minus the Hebbian rates of the settled layers, and the
        read-out's cross-entropy gradient -(t - softmax(z)) f^T (batch means)."""
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        return self.updates_at(self.settle(x), y)

    def updates_at(self, settled: tuple[list[Array], ...], y) -> tuple[HebbianNetwork, dict]:
        """`updates` from the layers already settled (`settle(x)`'s value)."""
        raw, inputs, drives, responses, features = settled
        d_w, d_b, d_c = self._hebbian_rates(raw, inputs, drives, responses)
        d_w, d_b, d_c = [-d for d in d_w], [-d for d in d_b], [-d for d in d_c]
        if self.readout:
            r = self.readout_input(features)
            z = r @ self.weights[-1].T + self.biases[-1]
            error = self._readout_error(z, y, "y")
            d_w.append(-(error.T @ r) / r.shape[0])
            d_b.append(-jnp.mean(error, axis=0))
            metrics = {"loss": CrossEntropy()(z, y), "output": z}
        else:
            metrics = {"loss": jnp.zeros(()), "output": features}
        grads = eqx.tree_at(lambda m: (m.weights, m.biases, m.centres), self, (d_w, d_b, d_c))
        return grads, metrics

    def optimizer(
        self,
        hebbian: optax.GradientTransformation,
        readout: optax.GradientTransformation | None = None,
        homeostatic: optax.GradientTransformation | None = None,
    ) -> optax.GradientTransformation:
        """One optax optimizer for settle-then-update: `hebbian` (e.g. `optax.sgd(0.05)`)
        applies the Hebbian weights' rates, `readout` (default `optax.adam(1e-3)`) the
        read-out's gradient, and `homeostatic` (default `optax.sgd(0.1)`) the slow
        variables that relax towards a statistic, the SoftHebb priors and the input
        centres (a step of at most 1 or they overshoot; the Hebbian rates are small
        products of activities and usually want a larger one)."""
        n_hebbian = len(self.rules)

        def label(path, _):  # the path ends in .<field>[index] (also inside a Pruned wrapper)
            field, index = getattr(path[-2], "name", None), getattr(path[-1], "idx", None)
            if field in ("weights", "biases") and index is not None and index >= n_hebbian:
                return "readout"
            return "hebbian" if field == "weights" else "homeostatic"

        transforms = {
            "hebbian": hebbian,
            "readout": readout or optax.adam(1e-3),
            "homeostatic": homeostatic or optax.sgd(0.1),
        }
        return optax.multi_transform(
            transforms, lambda params: jax.tree_util.tree_map_with_path(label, params)
        )

    # -- always on ---------------------------------------------------------------------

    def init_state(self, x=None):
        streams = 1 if x is None else x.shape[0]
        names = self.layer_names
        state = {name: {"u": jnp.zeros((streams, n))} for name, n in zip(names, self.sizes[1:])}
        if self.readout:
            state[names[-1]] = {"z": jnp.zeros((streams, self.sizes[-1]))}
        return state

    def _from_state(self, t, y, args):
        x, target = dynlearn.input_and_target(args, t)
        raw, inputs, drives, responses, f = [], [], [], [], x
        for name, rule, b, c in zip(self.layer_names, self.rules, self.biases, self.centres):
            f_in = self._input(rule, f, c)
            u = y[name]["u"]
            r = rule.response(u, b)
            raw.append(f), inputs.append(f_in), drives.append(u), responses.append(r)
            f = rule.features(u, r)
        return raw, inputs, drives, responses, f, target

    def vector_field(self, t, y, args):
        _, inputs, drives, _, features, _ = self._from_state(t, y, args)
        names = self.layer_names
        d = {
            name: {"u": (-u + f_in @ w.T) / self.tau}
            for name, f_in, u, w in zip(names, inputs, drives, self.weights)
        }
        if self.readout:
            z = y[names[-1]]["z"]
            drive = self.readout_input(features) @ self.weights[-1].T + self.biases[-1]
            d[names[-1]] = {"z": (-z + drive) / self.tau}
        return d

    def plasticity(self, t, y, args):
        raw, inputs, drives, responses, features, target = self._from_state(t, y, args)
        rates = self._hebbian_rates(raw, inputs, drives, responses)
        d_w, d_b, d_c = ([d / self.tau_w for d in group] for group in rates)
        if self.readout:
            z = y[self.layer_names[-1]]["z"]
            error = self._readout_error(z, target, "args")
            r = self.readout_input(features)
            d_w.append(self.eta_readout * (error.T @ r) / z.shape[0])
            d_b.append(self.eta_readout * jnp.mean(error, axis=0))
        return eqx.tree_at(lambda m: (m.weights, m.biases, m.centres), self, (d_w, d_b, d_c))


# -- activation learning (Zhou 2022) ----------------------------------------------------


class CompetitiveSubspace(AbstractHebbianRule):
    """Rectified units that compete for the input by the residual they leave:

        y = ReLU(u),    dW/dt = y x^T - (y^T y) W

    (batch means). With `rectify=False` it is Oja's subspace rule."""

    rectify: bool = eqx.field(static=True, default=True)
    normalize_input: bool = eqx.field(static=True, default=True)
    centre_input: bool = eqx.field(static=True, default=True)
    init_radius: float = eqx.field(static=True, default=0.5)

    def __check_init__(self):
        check_positive(self, init_radius=self.init_radius)

    def response(self, u, b):
        return jax.nn.relu(u) if self.rectify else u

    def rate(self, x, u, y, w, b):
        n = x.shape[0]
        # y^T (y W), not (y^T y) W: batch x units products instead of units x units
        return (y.T @ (x - y @ w)) / n, jnp.zeros_like(b)


class ActivationLearner(dynlearn.AbstractPlastic, dynlearn.AbstractBatchLearner):
    """A classifier by activation learning: `network` (Hebbian layers without a read-out)
    learns the joint patterns `[x / |x|, label_scale t]`; `predict(x)` returns the output
    activation `A([x / |x|, label_scale e_c])` for every class c (the arg-max is the
    predicted class).

    Both modes come from the Hebbian network: settle-then-update (`optimizer` as
    `HebbianNetwork.optimizer`, no read-out group) and always on (`tau_w dW/dt` the rule
    while samples stream by; the label is part of the input, so streaming without targets
    drives the network with the label code at zero).

    **Arguments:**
    - `sizes`: `[n_in, n_1, ..., n_L, n_classes]`.
    - `key`: initialisation.
    - `rules`: one `AbstractHebbianRule` per hidden layer, or one for all (default
      `CompetitiveSubspace()`).
    - `label_scale`: the height of the label code against the unit-length input (> 0).
    - `tau`, `tau_w`: the neurons' and the plasticity's time constants.
    """

    network: HebbianNetwork
    n_classes: int = eqx.field(static=True)
    label_scale: float = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        key: PRNGKeyArray,
        *,
        rules: AbstractHebbianRule | Sequence[AbstractHebbianRule] = CompetitiveSubspace(),
        label_scale: float = 1.0,
        tau: float = 1.0,
        tau_w: float = 100.0,
    ):
        sizes = [int(n) for n in sizes]
        if len(sizes) < 3 or any(n < 1 for n in sizes):
            raise ValueError(
                f"sizes: need n_in, at least one hidden layer and n_classes, all >= 1; got {sizes}."
            )
        check_positive(self, label_scale=label_scale)
        joint = [sizes[0] + sizes[-1], *sizes[1:-1]]
        self.network = HebbianNetwork(joint, rules, key, readout=False, tau=tau, tau_w=tau_w)
        self.n_classes, self.label_scale = sizes[-1], float(label_scale)

    @property
    def sizes(self) -> list[int]:
        return [self.network.sizes[0] - self.n_classes, *self.network.sizes[1:], self.n_classes]

    def time_constants(self):
        return self.network.time_constants()

    def joint(self, x: Array, target: Array | None) -> Array:
        """`[x / |x|, label_scale t]` (t = 0 without a target)."""
        label = jnp.zeros(x.shape[:-1] + (self.n_classes,), x.dtype) if target is None else target
        return jnp.concatenate([unit_rows(x), self.label_scale * label.astype(x.dtype)], -1)

    def activation(self, joint: Array) -> Array:
        """A = |f_L|^2, the output activation of the settled network, per sample."""
        return jnp.sum(self.network.settle(joint)[-1] ** 2, axis=-1)

    def predict(self, x):
        """The output activation for every class label, `(batch, n_classes)`.

        The first layer's drive is linear in its (centred) input, so it is computed once
        per sample and once per label code, W (x - c) = W_x (x - c_x) + W_t (lambda e_c -
        c_t), and divided by the joint norm |x - c_x|^2 + |lambda e_c - c_t|^2 (when the
        rule normalises): one matrix product instead of one per class."""
        dynlearn.check_batch(x, None, self.sizes[0], what=f"layer sizes {self.sizes}")
        net, n_in = self.network, self.sizes[0]
        rule, w, b, centre = net.rules[0], net.weights[0], net.biases[0], net.centres[0]
        if not rule.centre_input:
            centre = jnp.zeros_like(centre)
        dx = unit_rows(x) - centre[:n_in]  # (batch, n_in)
        dt = self.label_scale * jnp.eye(self.n_classes, dtype=x.dtype) - centre[n_in:]
        u = (dx @ w[:, :n_in].T)[None] + (dt @ w[:, n_in:].T)[:, None]  # (class, batch, n_1)
        if rule.normalize_input:
            norm = jnp.sqrt(jnp.sum(dx**2, -1)[None] + jnp.sum(dt**2, -1)[:, None])
            u = u / jnp.where(norm > 0, norm, 1.0)[..., None]
        u = u.reshape(-1, u.shape[-1])  # (class x batch, n_1): what the rules expect
        f = rule.features(u, rule.response(u, b))
        for index in range(1, len(net.rules)):
            f = net.layer(index, f)[-1]
        return jnp.sum(f**2, axis=-1).reshape(self.n_classes, -1).T

    def updates(self, x, y, key):
        """The Hebbian network's gradient-signed rates on the joint patterns; metrics: the
        layers' mean squared reconstruction residual |x_l - W_l^T y_l|^2 (what the
        competition reduces) as `loss`, and the class activations as `output`."""
        dynlearn.check_batch(x, y, self.sizes[0], self.n_classes, what=f"layer sizes {self.sizes}")
        if y is None:
            raise ValueError(
                "y: activation learning learns the label as part of the input; give one-hot "
                f"targets of shape ({x.shape[0]}, {self.n_classes})."
            )
        settled = self.network.settle(self.joint(x, y))
        grads, _ = self.network.updates_at(settled, None)
        _, inputs, _, responses, _ = settled
        residual = sum(
            jnp.mean(jnp.sum((f_in - r @ w) ** 2, axis=-1))
            for f_in, r, w in zip(inputs, responses, self.network.weights)
        )
        grads = eqx.tree_at(lambda m: m.network, self, grads)
        return grads, {"loss": residual, "output": self.predict(x)}

    def optimizer(self, hebbian, homeostatic=None):
        """`HebbianNetwork.optimizer` for the inner network (no read-out)."""
        return self.network.optimizer(hebbian, homeostatic=homeostatic)

    # -- always on ---------------------------------------------------------------------

    def _joint_drive(self, t, args) -> Array:
        x, target = dynlearn.input_and_target(args, t)
        return self.joint(x, target)

    def init_state(self, x=None):
        return self.network.init_state(x)

    def vector_field(self, t, y, args):
        return self.network.vector_field(t, y, self._joint_drive(t, args))

    def plasticity(self, t, y, args):
        rates = self.network.plasticity(t, y, self._joint_drive(t, args))
        return eqx.tree_at(lambda m: m.network, self, rates)


# -- training helpers ------------------------------------------------------------------


def annealed_sgd(rate: float, n_0: float) -> optax.GradientTransformation:
    """SGD at `rate / (1 + step / n_0)` (`dynlearn.inverse_time`'s 1/n decay, per update)."""
    gain = dynlearn.inverse_time(n_0)
    return optax.sgd(lambda step: rate * gain(step))


def train_unlabelled(net, x, hebbian: optax.GradientTransformation, batch_size: int, epochs=1):
    """Settle-then-update without labels (a `HebbianNetwork` with `readout=False`): `epochs`
    passes over x in order, in consecutive batches of `batch_size` (a last partial batch is
    dropped), with `net.optimizer(hebbian)`; returns the trained network."""
    mode = dynlearn.SettleThenUpdate(net.optimizer(hebbian))
    step, state = eqx.filter_jit(mode.step), mode.init(net)
    for _ in range(epochs):
        for start in range(0, len(x) - batch_size + 1, batch_size):
            batch = jnp.asarray(x[start : start + batch_size])
            net, state, _ = step(net, state, batch, None, None)
    return net


# -- registered rules (`dynlearn.rules`) ------------------------------------------------

SOFTHEBB_RULE = SoftHebb(temperature=1 / 30, triangle_power=2.0)

HARD_WTA_RULE = HardWTA(delta=0.4, rank=2, feature_power=2.0, homeostasis=10.0)
GHA_RULE = GeneralisedHebbian(normalize_input=True, centre_input=True)


def _settled_recipe(rule, sizes, key, lr_784: float) -> dynlearn.Recipe:
    """Settle-then-update, Hebbian SGD `lr_784 sqrt(n_in / 784)` (the rates' elements
    scale as 1 / sqrt(n_in) for unit-length inputs), read-out Adam 1e-3, batches of 64
    (with batches of 32 the 2000-unit SoftHebb layer on MNIST ended in NaN within 8
    epochs)."""
    net = HebbianNetwork(sizes, rule, key)
    # Each rate element clipped at 0.01: a unit that wins much of a batch otherwise overshoots
    # its decay term -sum(q u) w and its weights blow up (inf within 8 steps on full MNIST).
    hebbian = optax.chain(optax.clip(0.01), optax.sgd(lr_784 * (sizes[0] / 784) ** 0.5))
    mode = dynlearn.SettleThenUpdate(net.optimizer(hebbian, optax.adam(1e-3)))
    return dynlearn.Recipe(net, mode, 64)


def rule_softhebb(sizes, key) -> dynlearn.Recipe:
    """The registered rule `softhebb`: SoftHebb layers (T = 1/30, centred unit-length
    inputs, norm-adaptive rate, prior rule) passing ReLU(u - mean(u))^2 on, a read-out on
    the cross-entropy; settle-then-update, Hebbian SGD 10 (for 784 inputs), read-out Adam
    1e-3, batches of 64 (settings chosen on the full-MNIST validation split with 2000
    units: 97.2% after 5 epochs; T = 1/12: 96.0, 1/5: 88.4, inputs not centred: 92.6)."""
    return _settled_recipe(SOFTHEBB_RULE, sizes, key, 10.0)


def rule_hard_wta(sizes, key) -> dynlearn.Recipe:
    """The registered rule `hard-wta`: competitive Hebbian layers with Krotov & Hopfield's
    anti-Hebbian second place (delta 0.4), homeostatic thresholds (rate 10), ReLU(u)^2
    features, Hebbian SGD 0.3 / (1 + step / 300), a read-out as `softhebb`. Chosen on the
    mnist5k validation split (784-100-10, 10 epochs): 85.8%; without the thresholds only
    21 of the 100 units ever won and it reached 59%, falling from 70% after epoch 1."""
    net = HebbianNetwork(sizes, HARD_WTA_RULE, key)
    mode = dynlearn.SettleThenUpdate(net.optimizer(annealed_sgd(0.3, 300), optax.adam(1e-3)))
    return dynlearn.Recipe(net, mode, 64)


def rule_gha(sizes, key) -> dynlearn.Recipe:
    """The registered rule `gha`: Sanger's GHA on centred unit-length inputs (the hidden
    layer learns the principal components), a linear read-out on them."""
    return _settled_recipe(GHA_RULE, sizes, key, 2.0)


def rule_softhebb_always_on(sizes, key) -> dynlearn.Recipe:
    """The registered rule `sh-always-on` (SoftHebb, always on): the layers of `softhebb`
    and the read-out's delta rule learning while samples stream by (5 ms each, Euler dt
    0.5 ms, tau 1 ms, tau_w 8 ms, read-out rate 0.05 per ms), the plasticity gain annealed
    as 1/(1 + n/300) over the n samples seen; batches of 32. Chosen on the mnist5k
    validation split (784-100-10, 10 epochs): 88.9%; the previous settings (tau_w 2 ms,
    n_0 5,000) 74.4%, with the accuracy swinging by 5-8 points from epoch to epoch."""
    net = HebbianNetwork(sizes, SOFTHEBB_RULE, key, tau=1.0, tau_w=8.0, eta_readout=0.05)
    presentation = dynlearn.Presentation(t_pres=5.0, dt=0.5)
    mode = dynlearn.AlwaysOn(presentation, gain=dynlearn.inverse_time(300))
    return dynlearn.Recipe(net, mode, 32)


def rule_activation(sizes, key) -> dynlearn.Recipe:
    """The registered rule `activation`: activation learning with `CompetitiveSubspace`
    layers (label height 1), settle-then-update, Hebbian SGD 2 / (1 + step / 300),
    batches of 32 (chosen on the mnist5k validation split, 784-100-10, 10 epochs: 90.6%;
    a constant rate 1: 90.1, peaking at epoch 6; 2: 86.3; with the constant rate 1, label
    heights 0.5 and 0.7: 88.4 and 88.6)."""
    net = ActivationLearner(sizes, key)
    # without the decay the validation accuracy peaked after ~5 epochs and fell back 3-4 points
    mode = dynlearn.SettleThenUpdate(net.optimizer(annealed_sgd(2.0, 300)))
    return dynlearn.Recipe(net, mode, 32)
