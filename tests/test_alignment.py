"""Alignment rules for feedback pathways: weight mirror, information and symmetric alignment."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn
from circuits.alignment import InformationAlignment, SymmetricAlignment, WeightMirror
from circuits.feedback import FeedbackAlignment, Signals, alignment_angles, by_name
from circuits.feedback_mlp import FeedbackMLP
from circuits.latent_equilibrium import LENetwork

SIZES = [5, 7, 6, 3]


def signals_for(pathway, key=None, n=16):
    weights = [
        jax.random.normal(k, (o, i)) / jnp.sqrt(i)
        for k, i, o in zip(jax.random.split(jax.random.key(3), 3), SIZES[:-1], SIZES[1:])
    ]
    below = [jax.random.uniform(jax.random.key(4 + k), (n, s)) for k, s in enumerate(SIZES[1:-1])]
    return pathway.bind(SIZES), Signals(weights, None, None, below, key)


def cosine(a, b):
    return float(jnp.sum(a * b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


def test_information_alignment_descends_the_reconstruction_error():
    """dB/dt = -eta d/dB [1/2 <|x - B W x|^2> + decay/2 |B|^2] (null = 1), x the layer's
    rates centred over the batch (sigma=None)."""
    ia = InformationAlignment(jax.random.key(0), sigma=None, decay=0.3, eta=2.0)
    pathway, signals = signals_for(ia)
    rates = pathway.plasticity(0.0, None, signals).feedback
    for layer, (b, w) in enumerate(zip(pathway.feedback, signals.weights[1:])):
        x = signals.rates_below[layer]
        x = x - x.mean(axis=0)

        def regulariser(b, x=x, w=w):
            residual = x - (x @ w.T) @ b.T
            return 0.5 * jnp.mean(jnp.sum(residual**2, axis=1)) + 0.15 * jnp.sum(b**2)

        np.testing.assert_allclose(rates[layer], -2.0 * jax.grad(regulariser)(b), atol=1e-5)


def test_symmetric_alignment_has_w_transpose_over_decay_as_its_fixed_point():
    pathway, signals = signals_for(SymmetricAlignment(jax.random.key(0), decay=2.0))
    fixed = eqx.tree_at(lambda p: p.feedback, pathway, [w.T / 2.0 for w in signals.weights[1:]])
    for rate in fixed.plasticity(0.0, None, signals).feedback:
        assert float(jnp.max(jnp.abs(rate))) < 1e-6
    rates = pathway.plasticity(0.0, None, signals).feedback
    assert float(jnp.max(jnp.abs(rates[0]))) > 0.1


def test_the_weight_mirror_estimates_w_transpose_from_noise():
    """<xi (W xi)^T> = sigma^2 W^T: with many noise samples the rate is sigma^2 W^T - decay B."""
    mirror = WeightMirror(jax.random.key(0), sigma=0.5, decay=1.0)
    pathway, signals = signals_for(mirror, key=jax.random.key(7), n=20000)
    rates = pathway.plasticity(0.0, None, signals).feedback
    for rate, b, w in zip(rates, pathway.feedback, signals.weights[1:]):
        expected = 0.25 * w.T - b
        assert cosine(rate, expected) > 0.99
    # from the layer's own rates instead (sigma=None): C W^T - decay B, C their covariance
    own, signals = signals_for(WeightMirror(jax.random.key(0), sigma=None))
    x, w = signals.rates_below[0] - signals.rates_below[0].mean(axis=0), signals.weights[1]
    np.testing.assert_allclose(
        own.plasticity(0.0, None, signals).feedback[0],
        (x.T @ x / x.shape[0]) @ w.T - own.feedback[0],
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda k: WeightMirror(k, sigma=0.0), "sigma"),
        (lambda k: InformationAlignment(k, decay=-1.0), "decay"),
        (lambda k: SymmetricAlignment(k, noise=-0.1), "noise"),
        (lambda k: InformationAlignment(k, eta=-1.0), "eta"),
    ],
)
def test_bad_metaparameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make(jax.random.key(0))


def test_noise_without_a_key_and_hosts_without_rates_are_clear_errors():
    pathway, signals = signals_for(WeightMirror(jax.random.key(0)))  # no key
    with pytest.raises(ValueError, match="sigma=None"):
        pathway.plasticity(0.0, None, signals)
    pathway, signals = signals_for(InformationAlignment(jax.random.key(0)))
    with pytest.raises(ValueError, match="rates_below"):
        pathway.plasticity(0.0, None, Signals(signals.weights))


def test_learned_pathways_align_where_fixed_random_feedback_does_not():
    """Settle-then-update on Yin-Yang (Adam 1e-2 so that 300 steps suffice): every
    alignment rule's B ends closer to W^T than fixed random feedback's (which aligns only
    through W's own learning); the weight mirror and symmetric alignment nearly reach it."""
    data = dynlearn.data.load("yinyang", n_train=960, n_test=100)
    sizes = [4, 32, 32, 3]
    angles = {}
    for name, pathway in {
        "fa": FeedbackAlignment(jax.random.key(1)),
        "wm": WeightMirror(jax.random.key(1)),
        "ia": InformationAlignment(jax.random.key(1)),
        "sa": SymmetricAlignment(jax.random.key(1), noise=0.05),
    }.items():
        net = FeedbackMLP(sizes, jax.random.key(0), feedback=pathway)
        mode = dynlearn.SettleThenUpdate(optax.adam(1e-2))
        learned = dynlearn.fit(net, data, mode, epochs=10, batch_size=32, progress=False).learner
        angles[name] = np.asarray(alignment_angles(learned.feedback.feedback, learned.weights))
    for name in ("wm", "ia", "sa"):
        assert np.all(angles[name] < angles["fa"] - 10), angles
    assert np.all(angles["sa"] < 15) and np.all(angles["wm"] < 20), angles


def test_an_always_on_host_learns_its_pathway_and_refuses_the_noise_mirror():
    x = jax.random.uniform(jax.random.key(2), (4, 4))
    y = jax.nn.one_hot(jnp.arange(4) % 3, 3)
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=4))
    sizes = [4, 6, 5, 3]
    own = InformationAlignment(jax.random.key(1), sigma=None)
    net = LENetwork(sizes, jax.random.key(0), feedback=own, tau_error=0.1)
    learned, _, _ = mode.step(net, None, x, y, jax.random.key(3))
    for before, after in zip(net.feedback.feedback, learned.feedback.feedback):
        assert not jnp.array_equal(before, after)
    mirror = LENetwork(
        sizes, jax.random.key(0), feedback=WeightMirror(jax.random.key(1)), tau_error=0.1
    )
    with pytest.raises(ValueError, match="sigma=None"):
        mode.step(mirror, None, x, y, jax.random.key(3))


def test_short_names_build_the_pathways():
    for name, kind in (
        ("wm", WeightMirror),
        ("ia", InformationAlignment),
        ("sa", SymmetricAlignment),
    ):
        assert isinstance(by_name(name, jax.random.key(0)), kind)
