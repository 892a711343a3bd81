"""The learning-rule registry, training seeds together (`fit_seeds`), and pruned learners."""

import json

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import dynlearn
from circuits.backprop import BackpropMLP
from circuits.feedback import KolenPollack
from circuits.latent_equilibrium import LENetwork, always_on_rule
from dynlearn import registry

RULES = sorted(registry.entries("rules"))
SIZES = [64, 8, 10]


@pytest.fixture(scope="module")
def digits():
    return dynlearn.data.load("digits", fraction=0.5)


def zeros(learner) -> int:
    leaves = jax.tree.leaves(eqx.filter(learner, learner.prunable()))
    return sum(int(np.sum(np.asarray(w) == 0)) for w in leaves)


def test_the_registry_has_every_rule_of_the_study():
    study = {"bp", "pc", "ep", "microcircuit", "le", "fa", "dfa", "sign", "kp", "pal"}
    assert study | {"pc-always-on", "ep-continual", "le-fa"} <= set(RULES)


@pytest.mark.parametrize("rule", RULES)
def test_every_registered_rule_stacks_learns_and_prunes_its_forward_weights(rule, digits):
    """What the constraints study needs of a rule: seeds that stack (vmap), a training run
    with its own fit arguments, and `prunable()` = the forward weights."""
    factory = registry.load("rules", rule)
    built = [factory(SIZES, jax.random.key(seed)) for seed in (0, 1)]
    assert all(isinstance(recipe, dynlearn.Recipe) for recipe in built)
    learners, (_, mode, batch_size) = [b.learner for b in built], built[0]
    assert isinstance(mode, dynlearn.AbstractMode) and isinstance(batch_size, int)

    def forward(learner):
        return jax.tree.leaves(eqx.filter(learner, learner.prunable()))

    # activation learning has no read-out: the label is part of its input; GAIT-prop's
    # layers are as wide as the input (invertible), the classes its first units; the
    # feedback SNN's recurrent synapses are weights too
    expected = {
        "activation": [(8, 64 + 10)],
        "gait-prop": [(64, 64), (64, 64)],
        "ide": [(8, 64), (8, 8), (10, 8)],
    }.get(rule, [(8, 64), (10, 8)])
    assert [w.shape for w in forward(learners[0])] == expected
    stacked, accuracy = dynlearn.fit_seeds(
        dynlearn.stack(learners), digits, mode, seeds=[0, 1], epochs=2, batch_size=batch_size
    )
    assert accuracy.shape == (2, 2) and np.all((accuracy >= 0) & (accuracy <= 1))
    for w0, w1 in zip(forward(learners[1]), forward(dynlearn.unstack(stacked, 1))):
        assert not np.allclose(w0, w1)  # it trained (how well: each circuit's own tests)
    pruned = dynlearn.prune(dynlearn.unstack(stacked, 1), 0.5)
    assert zeros(pruned.learner) == round(0.5 * sum(a * b for a, b in expected))


def test_fit_seeds_equals_fit_seed_by_seed(digits):
    nets = [BackpropMLP(SIZES, jax.random.key(s)) for s in (3, 4)]
    mode = dynlearn.SettleThenUpdate(optax.adam(1e-3))
    stacked, accuracy = dynlearn.fit_seeds(
        dynlearn.stack(nets), digits, mode, seeds=[3, 4], epochs=2, batch_size=16
    )
    for i, seed in enumerate((3, 4)):
        alone = dynlearn.fit(
            nets[i], digits, mode, epochs=2, batch_size=16, seed=seed, progress=False
        )
        np.testing.assert_allclose(accuracy[i], alone.metrics.test_accuracy.values, atol=2e-3)
        for w_seeds, w_alone in zip(stacked.weights, alone.learner.weights):
            np.testing.assert_allclose(w_seeds[i], w_alone, atol=1e-5)


def test_fit_seeds_resumes_an_interrupted_run_as_if_uninterrupted(digits, tmp_path, monkeypatch):
    """Killed after its first epoch, a checkpointed `fit_seeds` continues from the saved
    stack and Adam states (and the device's PRNG keys) to the uninterrupted result."""
    device = dynlearn.hardware.RRAM_AG_A_SI_STOCHASTIC
    nets = [
        dynlearn.hardware.on_device(BackpropMLP(SIZES, jax.random.key(s)), device, seed=s)
        for s in (3, 4)
    ]
    mode = dynlearn.SettleThenUpdate(optax.adam(1e-2))
    args = dict(seeds=[3, 4], epochs=2, batch_size=16)
    whole, accuracy = dynlearn.fit_seeds(dynlearn.stack(nets), digits, mode, **args)

    evaluate, calls = dynlearn._seeds.evaluate_seeds, []

    def killed_in_epoch_two(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*a, **k)

    monkeypatch.setattr(dynlearn._seeds, "evaluate_seeds", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        dynlearn.fit_seeds(dynlearn.stack(nets), digits, mode, run_dir=tmp_path, **args)
    monkeypatch.undo()
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 1
    with pytest.raises(ValueError, match="resume=True"):
        dynlearn.fit_seeds(dynlearn.stack(nets), digits, mode, run_dir=tmp_path, **args)
    with pytest.raises(ValueError, match="other settings.*seeds"):
        other = dict(args, seeds=[3, 5])
        dynlearn.fit_seeds(
            dynlearn.stack(nets), digits, mode, run_dir=tmp_path, resume=True, **other
        )
    resumed, again = dynlearn.fit_seeds(
        dynlearn.stack(nets), digits, mode, run_dir=tmp_path, resume=True, **args
    )
    np.testing.assert_array_equal(again, accuracy)
    for a, b in zip(
        jax.tree.leaves(eqx.filter(whole, eqx.is_inexact_array)),
        jax.tree.leaves(eqx.filter(resumed, eqx.is_inexact_array)),
    ):
        np.testing.assert_array_equal(a, b)


def test_stack_and_fit_seeds_reject_what_does_not_match(digits):
    with pytest.raises(ValueError, match="static configuration"):
        dynlearn.stack(
            [
                BackpropMLP(SIZES, jax.random.key(0), activation="tanh"),
                BackpropMLP(SIZES, jax.random.key(1), activation="relu"),
            ]
        )
    with pytest.raises(ValueError, match="same layer sizes"):
        dynlearn.stack(
            [BackpropMLP(SIZES, jax.random.key(0)), BackpropMLP([64, 9, 10], jax.random.key(0))]
        )
    two = dynlearn.stack([BackpropMLP(SIZES, jax.random.key(s)) for s in (0, 1)])
    with pytest.raises(ValueError, match="len\\(seeds\\) = 3"):
        dynlearn.fit_seeds(two, digits, dynlearn.SettleThenUpdate(optax.sgd(0.1)), seeds=[0, 1, 2])


def test_prune_is_global_or_per_layer_and_leaves_feedback_and_biases_alone():
    net = LENetwork(SIZES, jax.random.key(0), feedback=KolenPollack(jax.random.key(1)))
    big = net.weights[1] + 10 * np.sign(net.weights[1])  # every entry larger than layer 1's
    net = eqx.tree_at(lambda n: n.weights[1], net, big)
    pruned = dynlearn.prune(net, 0.8).learner
    n = 8 * 64 + 10 * 8
    assert zeros(pruned) == round(0.8 * n)
    assert int(np.sum(np.asarray(pruned.weights[1]) == 0)) == 0  # global: the big layer kept
    assert all(np.all(b == b0) for b, b0 in zip(pruned.biases, net.biases))
    fb = jax.tree.leaves(pruned.feedback.feedback)
    assert all(np.all(np.asarray(b) != 0) for b in fb)
    with pytest.raises(ValueError, match="sparsity"):
        dynlearn.prune(net, 1.0)
    # one threshold per matrix: each reaches the sparsity, the big layer too
    per_layer = dynlearn.prune(net, 0.8, scope="layer").learner
    for w, size in zip(per_layer.weights, (8 * 64, 10 * 8)):
        assert int(np.sum(np.asarray(w) == 0)) == round(0.8 * size)
    with pytest.raises(ValueError, match="scope: expected one of \\['global', 'layer'\\]"):
        dynlearn.prune(net, 0.5, scope="row")


@pytest.mark.parametrize("mode", ["settle-then-update", "always-on"])
def test_retraining_a_pruned_learner_keeps_the_pruned_weights_at_zero(mode, digits):
    if mode == "always-on":
        net, mode, batch_size = always_on_rule(SIZES, jax.random.key(0))
    else:
        net, mode = (
            BackpropMLP(SIZES, jax.random.key(0)),
            dynlearn.SettleThenUpdate(optax.adam(1e-2)),
        )
        batch_size = 64
    pruned = dynlearn.prune(net, 0.9)
    before = [np.asarray(w).copy() for w in pruned.learner.weights]
    result = dynlearn.fit(pruned, digits, mode, epochs=1, batch_size=batch_size, progress=False)
    after = result.learner
    assert isinstance(after, dynlearn.Pruned)
    assert zeros(after.learner) == round(0.9 * (8 * 64 + 10 * 8))
    for w0, w1, mask in zip(before, after.learner.weights, after.masks):
        assert np.all(np.asarray(w1)[np.asarray(mask) == 0] == 0)
        assert not np.allclose(w0[np.asarray(mask) == 1], np.asarray(w1)[np.asarray(mask) == 1])
