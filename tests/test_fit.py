"""fit: both learning modes, metrics, atomic checkpoints, resume, bad input."""

import types

import equinox as eqx
import jax
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import dynlearn
from circuits.backprop import BackpropMLP
from circuits.delta import DeltaRule


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.data / 16).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], d.target[order]
    return types.SimpleNamespace(
        x_train=x[:1200],
        y_train=y[:1200],
        x_test=x[1200:],
        y_test=y[1200:],
        n_classes=10,
        name="digits-test",
    )


def bp(seed=0):
    return BackpropMLP([64, 32, 10], jax.random.key(seed))


def adam(lr=1e-3):
    return dynlearn.SettleThenUpdate(optax.adam(lr))


def sgd(lr=0.1):
    return dynlearn.SettleThenUpdate(optax.sgd(lr))


def leaves_equal(a, b):
    la, lb = (
        jax.tree.leaves(eqx.filter(a, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b, eqx.is_array)),
    )
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def test_settle_then_update_learns_and_logs(digits, tmp_path):
    result = dynlearn.fit(
        bp(),
        digits,
        adam(3e-3),
        epochs=3,
        batch_size=32,
        run_dir=tmp_path,
        progress=False,
    )
    m = result.metrics
    assert list(m.epoch.values) == [1, 2, 3]
    assert set(m.data_vars) == {"train_loss", "train_accuracy", "test_accuracy", "wall_time"}
    assert float(m.train_loss[-1]) < float(m.train_loss[0])
    assert float(m.test_accuracy[-1]) > 0.85
    on_disk = dynlearn.load_netcdf(tmp_path / "metrics.nc")
    np.testing.assert_array_equal(on_disk.test_accuracy, m.test_accuracy)
    assert (tmp_path / "checkpoint.eqx").exists() and (tmp_path / "checkpoint.json").exists()


def test_always_on_mode_learns(digits):
    net = DeltaRule(64, 10, jax.random.key(0), eta=0.05)
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.05))
    result = dynlearn.fit(net, digits, mode, epochs=2, batch_size=20, progress=False)
    assert float(result.metrics.test_accuracy[-1]) > 0.8
    assert not np.array_equal(result.learner.weights, net.weights)


def test_resume_equals_uninterrupted(digits, tmp_path):
    mode = adam()
    kwargs = dict(batch_size=50, seed=3, progress=False)
    straight = dynlearn.fit(bp(), digits, mode, epochs=2, run_dir=tmp_path / "a", **kwargs)
    dynlearn.fit(bp(), digits, mode, epochs=1, run_dir=tmp_path / "b", **kwargs)
    resumed = dynlearn.fit(
        bp(), digits, mode, epochs=2, run_dir=tmp_path / "b", resume=True, **kwargs
    )
    for name in ("train_loss", "train_accuracy", "test_accuracy"):
        np.testing.assert_array_equal(resumed.metrics[name], straight.metrics[name])
    assert leaves_equal(resumed.learner, straight.learner)
    assert leaves_equal(resumed.state, straight.state)


def test_existing_checkpoint_is_not_overwritten_without_resume(digits, tmp_path):
    kwargs = dict(batch_size=100, progress=False, run_dir=tmp_path)
    dynlearn.fit(bp(), digits, sgd(), epochs=1, **kwargs)
    with pytest.raises(ValueError, match="resume=True"):
        dynlearn.fit(bp(), digits, sgd(), epochs=2, **kwargs)
    with pytest.raises(ValueError, match="batch_size: 100 -> 50"):
        dynlearn.fit(bp(), digits, sgd(), epochs=2, resume=True, **{**kwargs, "batch_size": 50})
    with pytest.raises(ValueError, match="mode_state: 'EmptyState"):
        dynlearn.fit(bp(), digits, adam(), epochs=2, resume=True, **kwargs)


def test_interrupted_checkpoint_write_keeps_previous(digits, tmp_path, monkeypatch):
    kwargs = dict(batch_size=100, progress=False, run_dir=tmp_path)
    first = dynlearn.fit(bp(), digits, sgd(), epochs=1, **kwargs)
    before = (tmp_path / "checkpoint.eqx").read_bytes()

    def crash_midway(f, tree, **kwargs):  # write some bytes, then die like a killed process
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(eqx, "tree_serialise_leaves", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        dynlearn.fit(bp(), digits, sgd(), epochs=2, resume=True, **kwargs)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.eqx").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    like = (bp(), optax.sgd(0.1).init(eqx.filter(bp(), eqx.is_inexact_array)), jax.numpy.asarray(0))
    (learner, _, epoch), info = dynlearn.load_checkpoint(tmp_path, like)
    assert int(epoch) == 1 and info["epoch"] == 1
    assert leaves_equal(learner, first.learner)


def test_bad_arguments(digits):
    with pytest.raises(ValueError, match="optimizer: expected an optax"):
        dynlearn.SettleThenUpdate("adam")
    with pytest.raises(ValueError, match="presentation: expected a dynlearn.Presentation"):
        dynlearn.AlwaysOn(1.0)
    with pytest.raises(ValueError, match="mode: expected SettleThenUpdate"):
        dynlearn.fit(bp(), digits, optax.adam(1e-3))
    with pytest.raises(ValueError, match=r"batch_size must be .* \(1200\); got 5000"):
        dynlearn.fit(bp(), digits, sgd(), batch_size=5000)
    with pytest.raises(ValueError, match="epochs must be"):
        dynlearn.fit(bp(), digits, sgd(), epochs=0)
    bad = types.SimpleNamespace(**{**vars(digits), "x_train": digits.x_train.copy()})
    bad.x_train[3, 5] = np.nan
    with pytest.raises(ValueError, match="data: x_train contains NaN"):
        dynlearn.fit(bp(), bad, sgd())
    with pytest.raises(ValueError, match="learner: expected"):
        dynlearn.fit(object(), digits, sgd())
    # Each mode names what it needs of the learner, before any work.
    always_on = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.05, streams=4))
    with pytest.raises(ValueError, match="BackpropMLP has no always-on plasticity"):
        dynlearn.fit(bp(), digits, always_on)
    delta = DeltaRule(64, 10, jax.random.key(0))
    with pytest.raises(ValueError, match="DeltaRule has no settle-then-update rule"):
        dynlearn.fit(delta, digits, sgd())
    with pytest.raises(ValueError, match="batch_size: 30 samples do not split into 4"):
        dynlearn.fit(delta, digits, always_on, batch_size=30)
    too_coarse = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.5))
    with pytest.raises(ValueError, match="dt=0.5 is larger than the fastest time constant"):
        dynlearn.fit(delta, digits, too_coarse)
    with pytest.raises(ValueError, match="n_classes=10"):
        dynlearn.fit(BackpropMLP([64, 32, 3], jax.random.key(0)), digits, sgd())
    with pytest.raises(ValueError, match="data: the learner cannot take"):
        dynlearn.fit(BackpropMLP([60, 32, 10], jax.random.key(0)), digits, sgd())
    with pytest.raises(ValueError, match=r"x: expected a batch \(batch, 64\)"):
        bp().predict(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match="activation: unknown name 'swish'"):
        BackpropMLP([4, 2], jax.random.key(0), activation="swish")
    with pytest.raises(ValueError, match="loss: expected SquaredError"):
        BackpropMLP([4, 2], jax.random.key(0), loss="squared_error")


def test_bp_baseline_on_mnist5k_end_to_end():
    """784-128-10 through fit on real MNIST digits; the 5-epoch figure is in docs/results."""
    data = dynlearn.data.load("mnist5k")
    net = BackpropMLP([784, 128, 10], jax.random.key(0))
    result = dynlearn.fit(net, data, adam(), epochs=2, batch_size=64, progress=False)
    assert float(result.metrics.test_accuracy[-1]) >= 0.85


class _Exploding(dynlearn.AbstractBatchLearner):
    """Toy whose weight grows 10x per batch under SGD(1); the check fires at 1e3."""

    w: jax.Array

    def predict(self, x):
        return x[:, :10] * self.w

    def updates(self, x, y, key):
        w = eqx.error_if(self.w, 10 * self.w > 1e3, "diverged")
        return _Exploding(-9 * w), {"loss": jax.numpy.sum(w)}


def test_accuracy_curve_keeps_the_epochs_before_a_divergence(digits):
    # 1200 samples in batches of 600: 2 batches per epoch, so w = 100 after epoch 1 and the
    # second epoch raises; the finished epoch is kept and the rest is NaN.
    curve = dynlearn.accuracy_curve(
        _Exploding(jax.numpy.asarray(1.0)),
        digits,
        sgd(1.0),
        epochs=3,
        batch_size=600,
        updates_per_dispatch=1,
    )
    assert np.isfinite(curve[0]) and np.isnan(curve[1:]).all()


def test_on_epoch_sees_every_epoch_and_the_learner(digits):
    seen = []
    dynlearn.fit(
        bp(),
        digits,
        sgd(),
        epochs=2,
        batch_size=100,
        progress=False,
        on_epoch=lambda epoch, learner, row: seen.append((epoch, type(learner), row)),
    )
    assert [epoch for epoch, _, _ in seen] == [1, 2]
    assert all(kind is BackpropMLP and 0 <= row["test_accuracy"] <= 1 for _, kind, row in seen)


BAD_OPTIMIZERS = [  # a learning rate that would train silently to nothing or blow up
    ("negative", optax.sgd(-0.1), "steps up the gradient"),
    ("NaN", optax.adam(float("nan")), "NaN or inf"),
    ("zero", optax.sgd(0.0), "are zero"),
    ("negative inside a chain", optax.chain(optax.clip(1.0), optax.adam(-1e-3)), "steps up"),
]


@pytest.mark.parametrize(
    "optimizer, message", [c[1:] for c in BAD_OPTIMIZERS], ids=[c[0] for c in BAD_OPTIMIZERS]
)
def test_a_bad_learning_rate_is_refused_before_training(digits, optimizer, message):
    net = BackpropMLP([64, 8, 10], jax.random.key(0))
    with pytest.raises(ValueError, match=f"optimizer: .*{message}"):
        dynlearn.fit(net, digits, dynlearn.SettleThenUpdate(optimizer), progress=False)


def test_a_warm_up_or_accumulated_steps_are_valid_learning_rates(digits):
    net = BackpropMLP([64, 8, 10], jax.random.key(0))
    warm_up = optax.adam(optax.linear_schedule(0.0, 1e-3, 10))
    dynlearn.SettleThenUpdate(warm_up).probe(net)  # no error
    accumulated = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4).gradient_transformation()
    dynlearn.SettleThenUpdate(accumulated).probe(net)  # no error


BAD_LABELS = [
    ("one-hot", lambda y: np.eye(10, dtype=np.int64)[y], "one-hot targets"),
    ("negative", lambda y: y - 1, r"must lie in \[0, n_classes\)"),
    ("too large", lambda y: y + 1, r"must lie in \[0, n_classes\)"),
    ("floats", lambda y: y.astype(np.float32), "1-D integer array"),
]


@pytest.mark.parametrize(
    "change, message", [c[1:] for c in BAD_LABELS], ids=[c[0] for c in BAD_LABELS]
)
def test_bad_labels_are_refused_before_training(digits, change, message):
    bad = types.SimpleNamespace(**{**vars(digits), "y_train": change(digits.y_train)})
    net = BackpropMLP([64, 8, 10], jax.random.key(0))
    with pytest.raises(ValueError, match=f"data.y_train: .*{message}"):
        dynlearn.fit(net, bad, dynlearn.SettleThenUpdate(optax.adam(1e-3)), progress=False)
