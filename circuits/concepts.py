"""Hierarchical concepts learned by Oja's rule and winner-take-all in a layered threshold
network (Lynch & Mallmann-Trenn, "Learning hierarchically-structured concepts", Neural
Networks 2021; arXiv:1909.04559).

**Data model** (`concept_hierarchy`, seeded). A universe of `n` concepts per level
0..l_max; the hierarchy has `roots` top-level concepts, every concept at level l >= 1 has
exactly `k` children at level l-1 and children sets are disjoint (a forest), so a level-l
concept has k^l leaves and the hierarchy uses L = roots k^l_max of the `n` level-0
concepts. A set B of presented leaves *r-supports* a leaf in B, and a concept at level
l >= 1 when at least r k of its children are r-supported (`ConceptHierarchy.supported`).

**Network** (`concept_network`). Layers 0..l_net (l_net >= l_max) of `n` deterministic
threshold neurons, neuron i of layer l standing for the i-th level-l concept of the
universe when l = 0; all-to-all non-negative weights from layer l-1 to layer l. In each
synchronous round a neuron of layer l >= 1 fires when its potential reaches tau:

    S_v^l(t+1) = H( sum_u w_vu^l S_u^{l-1}(t) - tau ),       S^0(t) = 1_B (held),

so with the input held from t = 0 layer l has settled at t = l (`ConceptNetwork.rounds`;
`ConceptNetwork.fire` computes the settled pattern layer by layer). The network
*(r1, r2)-recognises* the hierarchy when, whatever B, the neuron of each concept fires if
B r1-supports the concept and stays silent if B does not r2-support it (`recognises`).

**Learning** (`ConceptNetwork.learn`, `train_bottom_up`). A level-l concept c is presented
by firing all its leaves; the learned lower layers pass it up, so layer l sees x = S^{l-1}
(its children's neurons). A winner-take-all picks the layer-l neuron v with the largest
potential (ties at random); only v learns, by Oja's rule with its potential as output:

    y = sum_u w_vu x_u,        w_v <- w_v + eta y (x - y w_v).

With the k children firing and equal weights w on them, y = k w: the child weights follow
the scalar map w <- w + eta k w (1 - k w^2), whose fixed point is w = 1/sqrt(k) (y = sqrt(k)),
and every other ("irrelevant") incoming weight shrinks by (1 - eta y^2) per presentation
(`oja_presentations`). Schedule: levels bottom up; at level l, `rounds` rounds, each
presenting every level-l concept once in a fresh random order (concepts interleaved).

**Theorem** (stated in the paper's abstract; the full text could not be read here): the
time to learn each concept once its sub-concepts are learned is about

    O( (1/(eta k)) (l_max log k + 1/eps) + b log k )

(k children per concept, l_max the depth, eta the learning rate, eps the uncertainty allowed
in robust recognition, b the decrease of the weights of irrelevant edges).
`theory/concept_learning_time.py` measures it, and also reports the reading with the b-term
inside the 1/(eta k) factor (the abstract's typesetting is ambiguous).

Readings chosen here (the simplest that make the abstract's statement well defined):
- threshold tau = r1 (1 - eps) sqrt(k): a neuron whose child weights are all within
  (1 +- eps)/sqrt(k) fires for every r1-supported input and, since r2 (1 + eps) <
  r1 (1 - eps) is required, stays silent (irrelevant weights aside) without r2-support;
  this is what "learned to tolerance eps" means (`Recognition`);
- initial weights, all equal, w0 = r2 sqrt(k) / (2 L): a neuron that never won stays below
  tau whatever is presented (its potential is at most L w0 < tau). Oja's growth from w0 to
  1/sqrt(k) then takes about ln(1/(sqrt(k) w0)) / (eta k) = ((l_max - 1) ln k + const) /
  (eta k) presentations: the l_max log k term of the bound;
- "irrelevant edges decreased by b": every non-child weight of the neuron below w0 k^-b;
- when c is presented only layer l(c) learns; the winner's Oja output is its potential.

Dynamics: the paper's network is synchronous and discrete-time (each neuron updates once
per round) and learning is one discrete Oja step per presentation, so the network is a
`lax.scan` over rounds and presentations, not an ODE with spike events (the events of
`dynlearn.spiking` would only approximate the rounds). The hierarchy and the test inputs
are data, built with numpy from a seed; learning is one jit-compiled program whose shape
depends only on (l_net, n, rounds, width), so hierarchies of any k and depth that fit share
it. Run in float64 (`jax.enable_x64`): in deep hierarchies the first decrements of a
winner's irrelevant weights, eta (k w0)^2 per presentation, fall below float32's
resolution, and the WTA could no longer tell a neuron that won from a fresh one.
"""

from __future__ import annotations

import math
import numbers
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

__all__ = [
    "ConceptHierarchy",
    "ConceptNetwork",
    "LearningRecord",
    "Recognition",
    "concept_hierarchy",
    "concept_network",
    "first_stable",
    "oja_presentations",
    "recognises",
    "train_bottom_up",
]


def _need(r: float, k: int) -> int:
    """The number of supported children that r-support a concept, ceil(r k)."""
    return math.ceil(r * k - 1e-9)  # r k integral up to rounding counts as integral


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not (isinstance(value, numbers.Integral) and value >= least):
        raise ValueError(f"{name}: expected an integer >= {least}; got {value!r}.")


class ConceptHierarchy(eqx.Module):
    """A concept hierarchy (module docstring), as numpy data. `members[l][j]` is the index,
    among the `n` concepts of level l, of the hierarchy's j-th level-l concept; the children
    of the j-th level-l concept are `members[l-1][j k : (j+1) k]`, so its leaves are the
    block `members[0][j k^l : (j+1) k^l]`."""

    members: tuple[np.ndarray, ...]
    k: int = eqx.field(static=True)
    n: int = eqx.field(static=True)

    @property
    def levels(self) -> int:
        return len(self.members) - 1

    def count(self, level: int) -> int:
        """The number of level-`level` concepts in the hierarchy."""
        return len(self.members[level])

    def children(self, level: int) -> np.ndarray:
        """(m, k): the level-(`level` - 1) indices of each level-`level` concept's children."""
        return self.members[level - 1].reshape(self.count(level), self.k)

    def _sets(self, level: int, inside: np.ndarray, outside: float = 0.0) -> np.ndarray:
        """Leaf sets (m, n): `inside[j]` (k^level values) on concept j's leaves, `outside` on
        the hierarchy's other leaves, 0 on level-0 concepts outside the hierarchy."""
        m = self.count(level)
        out = np.zeros((m, self.n))
        out[:, self.members[0]] = outside
        out[np.arange(m)[:, None], self.members[0].reshape(m, -1)] = inside
        return out

    def leaves(self, level: int) -> np.ndarray:
        """(m, n): the presentation of each level-`level` concept, 1 on its leaves."""
        return self._sets(level, np.ones((self.count(level), self.k**level)))

    def supported(self, presented, r: float) -> list[np.ndarray]:
        """Which concepts of each level 0..l_max the leaf sets `presented` (..., n)
        r-support: a list of boolean arrays (..., m_l)."""
        out = [np.asarray(presented)[..., self.members[0]] > 0]
        for level in range(1, self.levels + 1):
            grouped = out[-1].reshape(*out[-1].shape[:-1], self.count(level), self.k)
            out.append(grouped.sum(-1) >= _need(r, self.k))
        return out

    def _top_down(self, rng, level: int, root: bool, keep: int) -> np.ndarray:
        """Per level-`level` concept, a boolean state of each of its leaves, from the root
        (state `root`) down: a node in the root's state gives it to `keep` random children
        and the opposite state to the others; a node in the opposite state gives its state
        to all its children."""
        state = np.full((self.count(level), 1), root)
        for _ in range(level):
            rank = rng.permuted(np.tile(np.arange(self.k), (state.size, 1)), axis=1)
            like_root = state.reshape(-1, 1) == root
            child = np.where(like_root, np.where(rank < keep, root, not root), state.reshape(-1, 1))
            state = child.reshape(self.count(level), -1)
        return state

    def minimal_support(self, rng: np.random.Generator, level: int, r: float) -> np.ndarray:
        """(m, n): for each level-`level` concept, a smallest leaf set that r-supports it:
        ceil(r k) random children r-supported in the same way, down to the leaves; nothing
        else presented."""
        return self._sets(level, self._top_down(rng, level, True, _need(r, self.k)))

    def maximal_unsupported(self, rng: np.random.Generator, level: int, r: float) -> np.ndarray:
        """(m, n): for each level-`level` concept, a largest leaf set that does not r-support
        it: every leaf of the hierarchy outside it, and inside it ceil(r k) - 1 random
        children fully presented, the others again largest not r-supported, down to the
        leaves."""
        inside = self._top_down(rng, level, False, self.k - _need(r, self.k) + 1)
        return self._sets(level, inside, outside=1.0)


def concept_hierarchy(
    seed: int, k: int, levels: int, n: int | None = None, roots: int = 1
) -> ConceptHierarchy:
    """A random hierarchy (module docstring): `roots` top-level concepts, `k` children per
    concept, depth `levels` (l_max), in a universe of `n` concepts per level (default: just
    enough, `roots k^levels`). Which universe concepts are used, and how they are grouped,
    is drawn by `numpy.random.default_rng(seed)`."""
    _check_int("seed", seed, 0)
    _check_int("k", k, 2)
    _check_int("levels", levels, 1)
    _check_int("roots", roots, 1)
    leaves = roots * k**levels
    n = leaves if n is None else n
    if isinstance(n, bool) or not (isinstance(n, numbers.Integral) and n >= leaves):
        raise ValueError(
            f"n: expected at least roots k^levels = {leaves} concepts per level (one input "
            f"neuron per leaf); got {n!r}."
        )
    rng = np.random.default_rng(seed)
    members = tuple(
        rng.permutation(n)[: roots * k ** (levels - level)] for level in range(levels + 1)
    )
    return ConceptHierarchy(members, k, int(n))


class Recognition(eqx.Module):
    """Robust recognition: fire when r1-supported, stay silent when not r2-supported, with
    child weights learned to within a factor (1 +- eps) of 1/sqrt(k)."""

    r1: float = 0.8
    r2: float = 0.4
    eps: float = 0.1

    def __check_init__(self):
        for name in ("r1", "r2", "eps"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and 0 < value <= 1):
                raise ValueError(f"Recognition.{name}: expected a number in (0, 1]; got {value!r}.")
        if not self.r2 * (1 + self.eps) < self.r1 * (1 - self.eps):
            raise ValueError(
                f"Recognition.eps: need r2 (1 + eps) < r1 (1 - eps) so that one threshold "
                f"separates supported from unsupported concepts; got r1={self.r1}, "
                f"r2={self.r2}, eps={self.eps}: use eps < (r1 - r2)/(r1 + r2) = "
                f"{(self.r1 - self.r2) / (self.r1 + self.r2):.4g}."
            )

    def threshold(self, k: int) -> float:
        """tau = r1 (1 - eps) sqrt(k)."""
        return self.r1 * (1 - self.eps) * math.sqrt(k)

    def initial_weight(self, k: int, leaves: int) -> float:
        """w0 = r2 sqrt(k) / (2 leaves): a neuron that never won stays below tau."""
        return self.r2 * math.sqrt(k) / (2 * leaves)


class ConceptNetwork(eqx.Module):
    """The layered threshold network (module docstring). `weights[l - 1, v, u]` is the weight
    from neuron u of layer l-1 to neuron v of layer l; the scalars are arrays so that new
    values reuse compiled code."""

    weights: Float[Array, "layers n n"]
    threshold: Float[Array, ""]
    eta: Float[Array, ""]
    init_weight: Float[Array, ""]

    def fire(self, presented: Float[Array, "... n"]) -> list[Float[Array, "... n"]]:
        """The settled firing of layers 0..l_net for the leaf sets `presented` (layer 0)."""
        out = [jnp.asarray(presented, self.weights.dtype)]
        for w in self.weights:
            out.append((out[-1] @ w.T >= self.threshold).astype(w.dtype))
        return out

    def rounds(self, presented: Float[Array, " n"], steps: int) -> Float[Array, "steps layers n"]:
        """Synchronous rounds from silence with the input held: every layer updates from the
        previous round's layer below; the firing of all layers after each round."""
        presented = jnp.asarray(presented, self.weights.dtype)

        def step(state, _):
            below = jnp.concatenate([presented[None], state[1:-1]])  # layers 0..l_net-1
            upper = jnp.einsum("lvu,lu->lv", self.weights, below) >= self.threshold
            state = jnp.concatenate([presented[None], upper.astype(presented.dtype)])
            return state, state

        start = jnp.zeros((self.weights.shape[0] + 1, presented.shape[-1]), presented.dtype)
        return jax.lax.scan(step, start, None, length=steps)[1]

    def learn(
        self, level, x: Float[Array, " n"], priority: Float[Array, " n"]
    ) -> tuple[ConceptNetwork, Int[Array, ""]]:
        """One presentation at layer `level` whose layer below fires `x`: the WTA winner (the
        largest potential; among equal ones, the largest `priority`) takes one Oja step,
        y = w.x, w += eta y (x - y w). Returns the new network and the winner."""
        w = self.weights[level - 1]
        potential = w @ x
        tied = potential >= potential.max()  # exact ties: the neurons that never won
        winner = jnp.argmax(jnp.where(tied, priority, -jnp.inf))
        y = potential[winner]
        row = w[winner] + self.eta * y * (x - y * w[winner])
        weights = self.weights.at[level - 1, winner].set(row)
        return eqx.tree_at(lambda net: net.weights, self, weights), winner


def concept_network(
    hierarchy: ConceptHierarchy,
    recognition: Recognition,
    eta: float,
    *,
    layers: int | None = None,
    init_weight: float | None = None,
) -> ConceptNetwork:
    """A network for `hierarchy`: `layers` (default l_max, at least l_max) layers of `n`
    neurons above the input, every weight `init_weight` (default
    `recognition.initial_weight`), threshold `recognition.threshold`. `eta` must lie in
    (0, 1/(2k)]: then the scalar Oja map w -> w + eta k w (1 - k w^2) is increasing and
    approaches 1/sqrt(k) from below without overshooting."""
    k = hierarchy.k
    if not (isinstance(eta, numbers.Real) and 0 < eta <= 1 / (2 * k)):
        raise ValueError(
            f"eta: expected a learning rate in (0, 1/(2k)] = (0, {1 / (2 * k):.4g}] for k={k} "
            f"(larger steps overshoot Oja's fixed point 1/sqrt(k)); got {eta!r}."
        )
    layers = hierarchy.levels if layers is None else layers
    _check_int("layers", layers, hierarchy.levels)
    leaves = hierarchy.count(0)
    w0 = recognition.initial_weight(k, leaves) if init_weight is None else init_weight
    if not (isinstance(w0, numbers.Real) and 0 < w0 * leaves < recognition.threshold(k)):
        raise ValueError(
            f"init_weight: expected 0 < init_weight < tau / leaves = "
            f"{recognition.threshold(k) / leaves:.4g} (a neuron that never won must stay "
            f"silent); got {w0!r}."
        )
    dtype = jnp.result_type(float)
    weights = jnp.full((layers, hierarchy.n, hierarchy.n), w0, dtype)
    scalars = (jnp.asarray(v, dtype) for v in (recognition.threshold(k), eta, w0))
    return ConceptNetwork(weights, *scalars)


class LearningRecord(eqx.Module):
    """What `train_bottom_up` measured, one entry per level 1..l_max, after each round
    (a round presents every concept of the level once): `reps` (m,) each concept's neuron;
    `switches` (m,) how often a concept's winner changed; `child_low`, `child_high`
    (rounds, m) its smallest and largest child weight times sqrt(k); `irrelevant`
    (rounds, m) its largest other weight over w0; `fires`, `quiet` (rounds, m) whether it
    fires for a smallest r1-supporting input and stays silent for a largest input that does
    not r2-support the concept."""

    reps: tuple[np.ndarray, ...]
    switches: tuple[np.ndarray, ...]
    child_low: tuple[np.ndarray, ...]
    child_high: tuple[np.ndarray, ...]
    irrelevant: tuple[np.ndarray, ...]
    fires: tuple[np.ndarray, ...]
    quiet: tuple[np.ndarray, ...]


def _learn_level(network, level, x_train, x_fire, x_quiet, active, orders, priority, k):
    """Rounds of presentations of one level's concepts (their layer-below inputs `x_train`,
    inactive rows padding; `orders[r]` the order in round r; the WTA's ties broken by
    `priority`, a random ranking of the neurons: fresh neurons are alike, so each new
    concept gets a uniformly random fresh one), and the measurements of `LearningRecord`."""

    def present(carry, concept):
        def learn(carry):
            net, rep, switches = carry
            net, winner = net.learn(level, x_train[concept], priority)
            changed = (rep[concept] >= 0) & (rep[concept] != winner)
            return net, rep.at[concept].set(winner), switches.at[concept].add(changed)

        return jax.lax.cond(active[concept], learn, lambda carry: carry, carry), None

    def one_round(carry, order):
        carry, _ = jax.lax.scan(present, carry, order)
        rows = carry[0].weights[level - 1][jnp.maximum(carry[1], 0)]  # each concept's neuron
        child = x_train > 0
        stats = (
            jnp.where(child, rows, jnp.inf).min(-1) * jnp.sqrt(k),
            jnp.where(child, rows, -jnp.inf).max(-1) * jnp.sqrt(k),
            jnp.where(child, 0.0, rows).max(-1) / network.init_weight,
            (rows * x_fire).sum(-1) >= network.threshold,
            (rows * x_quiet).sum(-1) < network.threshold,
        )
        return carry, stats

    m = x_train.shape[0]
    start = (network, jnp.full(m, -1), jnp.zeros(m, int))
    (network, rep, switches), stats = jax.lax.scan(one_round, start, orders)
    return network, rep, switches, stats


@eqx.filter_jit
def _teach(network, inputs, active, k, key, rounds):
    """Every layer in turn (one scan; a layer without concepts learns nothing): `inputs`
    (layers, 3, width, n) the leaf sets that present each concept and test it, `active`
    (layers, width) which rows are concepts."""
    layers, _, width, n = inputs.shape
    draws = jax.random.uniform(key, (layers, rounds * width + n))
    orders = jnp.argsort(
        jnp.where(active[:, None], draws[:, : rounds * width].reshape(layers, rounds, width), 2.0),
        axis=-1,
    )  # each round's random order, padding last
    priority = draws[:, rounds * width :]

    def teach(net, per_layer):
        level, presented, act, order, rank = per_layer
        below = jnp.stack(net.fire(presented))[level - 1]  # (3, width, n): layer level-1
        net, rep, switches, stats = _learn_level(net, level, *below, act, order, rank, k)
        return net, (rep, switches, *stats)

    levels = jnp.arange(1, layers + 1)
    return jax.lax.scan(teach, network, (levels, inputs, active, orders, priority))


def train_bottom_up(
    network: ConceptNetwork,
    hierarchy: ConceptHierarchy,
    recognition: Recognition,
    key: PRNGKeyArray,
    rounds: int,
    *,
    seed: int = 0,
    width: int | None = None,
) -> tuple[ConceptNetwork, LearningRecord]:
    """Learn `hierarchy` level by level (module docstring): `rounds` presentations of every
    concept, interleaved within a level in an order drawn from `key` (as are the WTA's
    ties). The lower layers do not learn while a level is taught, so each concept's input to
    its layer is computed once per level, as are those of the worst-case recognition tests
    (drawn from `seed`). `width` (>= the level-1 concept count) pads every level's concepts
    to one count, so that hierarchies of different k and depth share one compiled program.
    Returns the trained network and a `LearningRecord`."""
    _check_int("rounds", rounds, 1)
    _check_int("seed", seed, 0)
    h, layers = hierarchy, network.weights.shape[0]
    if network.weights.shape[1] != h.n or layers < h.levels:
        raise ValueError(
            f"network: expected at least {h.levels} layers of n={h.n} neurons for this "
            f"hierarchy; got weights of shape {network.weights.shape}."
        )
    width = h.count(1) if width is None else width
    _check_int("width", width, h.count(1))
    rng = np.random.default_rng(seed)
    inputs = np.zeros((layers, 3, width, h.n))
    active = np.zeros((layers, width), bool)
    for level in range(1, h.levels + 1):
        m = h.count(level)
        inputs[level - 1, 0, :m] = h.leaves(level)
        inputs[level - 1, 1, :m] = h.minimal_support(rng, level, recognition.r1)
        inputs[level - 1, 2, :m] = h.maximal_unsupported(rng, level, recognition.r2)
        active[level - 1, :m] = True
    k = jnp.asarray(h.k, network.weights.dtype)  # an array: no recompilation per k
    network, measured = _teach(network, inputs, active, k, key, rounds)
    measured = [np.asarray(value) for value in measured]
    per_level = [
        tuple(value[level - 1][..., : h.count(level)] for value in measured)
        for level in range(1, h.levels + 1)
    ]
    record = LearningRecord(*(tuple(field) for field in zip(*per_level, strict=True)))
    for level, (reps, switches) in enumerate(zip(record.reps, record.switches), 1):
        if len(np.unique(reps)) < len(reps) or switches.any():
            step = float(network.eta) * (h.k * float(network.init_weight)) ** 2
            warnings.warn(
                f"level {level}: the WTA gave two concepts one neuron, or moved a concept to "
                f"another; the premise of the analysis fails. Either the level below was not "
                f"learned yet (increase rounds: its concepts must fire when presented), or "
                f"float32 hid a used neuron's first decrements, eta (k w0)^2 = {step:.2g} "
                f"(run in float64, jax.enable_x64).",
                stacklevel=2,
            )
    return network, record


def first_stable(condition: Bool[Array, "... rounds m"]) -> np.ndarray:
    """The number of presentations after which `condition` holds and keeps holding to the
    end (axis -2 counts rounds); -1 where it does not hold at the end."""
    condition = np.asarray(condition, bool)
    rounds = condition.shape[-2]
    trailing = np.cumprod(condition[..., ::-1, :], axis=-2).sum(-2)  # rounds held at the end
    return np.where(trailing > 0, rounds - trailing + 1, -1)


def recognises(
    network: ConceptNetwork,
    hierarchy: ConceptHierarchy,
    reps: tuple[np.ndarray, ...],
    recognition: Recognition,
    seed: int = 0,
) -> list[np.ndarray]:
    """Per level 1..l_max, whether each concept's neuron (`reps`) fires for a random smallest
    r1-supporting input and stays silent for a random largest input that does not r2-support
    the concept: the worst cases of robust recognition, since the potentials grow with the
    input (non-negative weights)."""
    rng = np.random.default_rng(seed)
    out = []
    for level in range(1, hierarchy.levels + 1):
        on = hierarchy.minimal_support(rng, level, recognition.r1)
        off = hierarchy.maximal_unsupported(rng, level, recognition.r2)
        fired = np.asarray(_fire(network, np.concatenate([on, off]))[level])
        rows, reps_l = np.arange(len(on)), np.asarray(reps[level - 1])
        out.append((fired[: len(on)][rows, reps_l] > 0) & (fired[len(on) :][rows, reps_l] == 0))
    return out


_fire = eqx.filter_jit(lambda network, presented: network.fire(presented))


def oja_presentations(
    k: int, levels: int, eta: float, eps: float, b: float, recognition: Recognition, roots=1
) -> tuple[int, int]:
    """The presentations one concept needs, by the scalar map its neuron follows once its
    children are learned (module docstring): (child weights within (1 +- eps)/sqrt(k),
    irrelevant weights below w0 k^-b), iterating w <- w + eta k w (1 - k w^2) and
    v <- v (1 - eta (k w)^2) from w = v = w0 (float64, numpy)."""
    w = v = w0 = recognition.initial_weight(k, roots * k**levels)
    child = irrelevant = None
    for t in range(1, 10_000_000):
        y = k * w
        w, v = w + eta * y * (1 - y * w), v * (1 - eta * y * y)
        if child is None and abs(w * math.sqrt(k) - 1) <= eps:
            child = t
        if irrelevant is None and v <= w0 * k ** (-b):
            irrelevant = t
        if child is not None and irrelevant is not None:
            return child, irrelevant
    raise ValueError(f"eta: the Oja map did not converge in 10^7 steps with eta={eta}.")
