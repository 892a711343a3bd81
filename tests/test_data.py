"""Tests for `dynlearn.data`: splits, normalisation, subsets, Yin-Yang geometry, files, batches.

The full MNIST / Fashion-MNIST tests read `$DYNLEARN_DATA` or `../shared/data` next to the
repository and skip when the files are absent; everything else runs on built-in, generated
or tiny synthetic data.
"""

import gzip
import hashlib
import math
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from dynlearn import data

REAL_DATA = Path(
    os.environ.get("DYNLEARN_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared/data"
)
# Label histograms of the official splits (shared/data/README.md, checked against the IDX
# files' published md5s).
HISTOGRAMS = {
    "mnist": (
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ),
    "fashion_mnist": ([6000] * 10, [1000] * 10),
}


def _shares(y, n_classes):
    return np.bincount(y, minlength=n_classes) / len(y)


# --------------------------------------------------------------------------- arguments


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="name: unknown data set 'cifar'.*digits.*yinyang"):
        data.load("cifar")


@pytest.mark.parametrize("fraction", [0, 0.0, -0.5, 1.5, True, "half"])
def test_fraction_outside_unit_interval(fraction):
    with pytest.raises(
        ValueError, match=rf"fraction must be a number in \(0, 1\]; got {fraction!r}"
    ):
        data.load("digits", fraction=fraction)


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="seed must be an int >= 0; got -1"):
        data.load("digits", seed=-1)
    with pytest.raises(ValueError, match="n_train: only the generated 'yinyang'"):
        data.load("digits", n_train=100)
    with pytest.raises(ValueError, match="n_test must be an int >= 1 or None; got 0"):
        data.load("yinyang", n_test=0)
    with pytest.raises(ValueError, match="path: only 'mnist' and 'fashion_mnist'"):
        data.load("digits", path="/tmp")


# --------------------------------------------------------------------- built-in sets


@pytest.mark.parametrize(
    "name, n_train, n_test, image, scale",
    [("digits", 1437, 360, (8, 8), 16), ("mnist5k", 4000, 1000, (28, 28), 255)],
)
def test_fixed_splits(name, n_train, n_test, image, scale):
    d = data.load(name)
    assert d.name == name and d.n_classes == 10 and d.n_features == math.prod(image)
    assert d.x_train.shape == (n_train, math.prod(image))
    assert d.x_test.shape == (n_test, math.prod(image))
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert d.y_test.dtype == np.int32
    # Normalised into [0, 1]; the brightest pixel reaches 1 exactly (x / max value).
    assert d.x_train.min() == 0 and d.x_train.max() == 1 and d.x_test.max() <= 1

    raw = data.load(name, normalize=False, flatten=False)
    assert raw.x_train.shape == (n_train, *image) and raw.x_train.dtype == np.float32
    np.testing.assert_array_equal(raw.x_train.reshape(n_train, -1) / scale, d.x_train)

    # Stratified: every class's share in train and in test within 1 percentage point of its
    # share overall.
    overall = _shares(np.concatenate([d.y_train, d.y_test]), 10)
    assert np.abs(_shares(d.y_train, 10) - overall).max() < 0.01
    assert np.abs(_shares(d.y_test, 10) - overall).max() < 0.01


def test_fraction_is_stratified_and_seeded():
    full = data.load("mnist5k")
    a = data.load("mnist5k", fraction=0.2, seed=3)
    counts = np.bincount(full.y_train, minlength=10)
    kept = np.bincount(a.y_train, minlength=10)
    assert np.all(np.abs(kept - 0.2 * counts) <= 1)
    # The test split is never subsampled.
    np.testing.assert_array_equal(a.x_test, full.x_test)
    # Every kept row is a training row with its own label.
    rows = {row.tobytes(): label for row, label in zip(full.x_train, full.y_train)}
    assert all(rows[row.tobytes()] == label for row, label in zip(a.x_train, a.y_train))

    b = data.load("mnist5k", fraction=0.2, seed=3)
    c = data.load("mnist5k", fraction=0.2, seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_tiny_fraction_keeps_one_per_class():
    d = data.load("digits", fraction=1e-4)
    np.testing.assert_array_equal(np.bincount(d.y_train), np.ones(10))


def test_one_hot():
    idx = data.load("digits")
    hot = data.load("digits", one_hot=True)
    assert hot.y_train.shape == (1437, 10) and hot.y_test.shape == (360, 10)
    assert hot.y_train.dtype == np.float32
    np.testing.assert_array_equal(hot.y_train.sum(axis=1), 1)
    np.testing.assert_array_equal(hot.y_train.argmax(axis=1), idx.y_train)
    np.testing.assert_array_equal(hot.y_test.argmax(axis=1), idx.y_test)


def test_loaded_arrays_are_private_copies():
    a = data.load("digits")
    a.x_train[:] = -1
    assert data.load("digits").x_train.min() == 0


def test_mnist1d_generated_standardised_seeded():
    d = data.load("mnist1d", seed=0)
    assert d.x_train.shape == (4000, 40) and d.x_test.shape == (1000, 40)
    assert d.n_classes == 10 and set(np.unique(d.y_train)) == set(range(10))
    # Standardised with the training split's own per-feature statistics (float32 sums of
    # 4,000 values: 1e-5 is ample).
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(d.x_train.std(axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(data.load("mnist1d", seed=0).x_train, d.x_train)

    # A new seed gives new data, and the generator's global-RNG seeding is undone.
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    other = data.load("mnist1d", seed=1)
    np.testing.assert_array_equal(np.random.rand(3), expected)
    assert not np.array_equal(other.x_train, d.x_train)


# --------------------------------------------------------------------------- Yin-Yang


def _yinyang_rule(x, y):
    """Independent re-derivation of the Yin-Yang classes (Kriener et al. 2021).

    Picture (y up): the big circle, centre C = (0.5, 0.5), radius 0.5, is cut by an S made
    of two semicircles of radius 0.25: the lower half of the circle around L = (0.25, 0.5)
    and the upper half of the circle around R = (0.75, 0.5). Class 1 is the part above the
    S: the upper half-disc with the disc around R cut out and the disc around L added; it
    has its round head on the left (around L) and its tail running down on the right.
    Class 0 is its point reflection through C (head around R, tail on the left). The dots
    (class 2) are the discs of radius 0.1 around L and R. The reference code names these
    classes ['yin', 'yang', 'dot'].
    """
    to_l = math.dist((x, y), (0.25, 0.5))
    to_r = math.dist((x, y), (0.75, 0.5))
    if min(to_l, to_r) < 0.1:
        return 2
    in_l_disc, in_r_disc = to_l <= 0.25, to_r <= 0.25
    upper = y > 0.5
    return 1 if in_l_disc or (upper and not in_r_disc) else 0


# (point, label): the dot centres; inside each head (the ring around a dot); the tops and
# bottoms; points in each tail just past the centre line.
KNOWN_POINTS = [
    ((0.25, 0.5), 2),
    ((0.75, 0.5), 2),
    ((0.25, 0.58), 2),
    ((0.25, 0.35), 1),  # head of 1 around L reaches below the centre line
    ((0.08, 0.5), 1),
    ((0.75, 0.65), 0),  # head of 0 around R reaches above the centre line
    ((0.92, 0.5), 0),
    ((0.5, 0.95), 1),
    ((0.5, 0.05), 0),
    # At x = 0.6 the S (upper half of the circle around R) is at y = 0.5 + sqrt(0.25^2 -
    # 0.15^2) = 0.7: above it is class 1's tail, below it class 0's head; and mirrored.
    ((0.6, 0.75), 1),
    ((0.6, 0.65), 0),
    ((0.4, 0.25), 0),
    ((0.4, 0.35), 1),
]


@pytest.mark.parametrize("point, label", KNOWN_POINTS)
def test_yinyang_known_points(point, label):
    assert _yinyang_rule(*point) == label
    assert data._yinyang_class(np.array(point[0]), np.array(point[1])) == label


def test_yinyang_samples():
    d = data.load("yinyang", seed=0)
    assert d.x_train.shape == (5000, 4) and d.x_test.shape == (1000, 4)
    assert d.n_classes == 3 and d.n_features == 4 and d.x_train.dtype == np.float32
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        # Balanced by rejection sampling: each class a third, within 2%.
        np.testing.assert_allclose(_shares(y, 3), 1 / 3, atol=0.02)
        # Inputs (x, y, 1 - x, 1 - y), in the big circle (float32 rounding: 1e-6).
        np.testing.assert_allclose(x[:, 2:], 1 - x[:, :2], atol=1e-6)
        assert np.all(np.hypot(x[:, 0] - 0.5, x[:, 1] - 0.5) <= 0.5 + 1e-6)
        assert x.min() >= 0 and x.max() <= 1
        labels = [_yinyang_rule(float(a), float(b)) for a, b in x[:, :2]]
        np.testing.assert_array_equal(labels, y)


def test_yinyang_seeds_and_sizes():
    a = data.load("yinyang", seed=5, n_train=300, n_test=30)
    assert a.x_train.shape == (300, 4) and a.x_test.shape == (30, 4)
    np.testing.assert_array_equal(np.bincount(a.y_test), [10, 10, 10])
    b = data.load("yinyang", seed=5, n_train=300, n_test=30)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = data.load("yinyang", seed=6, n_train=300, n_test=30)
    assert not np.array_equal(a.x_train, c.x_train)
    # Train and test come from different streams of the seed.
    assert not np.array_equal(a.x_train[:30], a.x_test)


# ------------------------------------------------------------------- files: synthetic

TINY = (30, 10)  # (n_train, n_test) of the synthetic "full" sets


def _tiny_arrays(seed=0):
    rng = np.random.default_rng(seed)
    n_train, n_test = TINY
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }


def _sha256(file):
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()


@pytest.fixture
def tiny(monkeypatch):
    """Let `mnist` be a 30/10 set so synthetic files pass the count check."""
    monkeypatch.setitem(data._COUNTS, "mnist", TINY)
    return _tiny_arrays()


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No `$DYNLEARN_DATA`, and a working directory whose ../shared/data does not exist."""
    monkeypatch.delenv("DYNLEARN_DATA", raising=False)
    cwd = tmp_path / "project" / "repo"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    return tmp_path


def test_npz_with_registered_hash_loads(tiny, tmp_path, monkeypatch):
    file = tmp_path / "mnist.npz"
    np.savez(file, **tiny)
    monkeypatch.setitem(data.SHA256, "mnist.npz", _sha256(file))
    for where in (tmp_path, file):
        d = data.load("mnist", path=where)
        np.testing.assert_array_equal(d.x_train, tiny["x_train"].reshape(30, -1) / np.float32(255))
        np.testing.assert_array_equal(d.y_test, tiny["y_test"])
    monkeypatch.setenv("DYNLEARN_DATA", str(tmp_path))
    d = data.load("mnist", flatten=False, normalize=False, fraction=0.5)
    assert d.x_train.shape == (20, 28, 28)
    np.testing.assert_array_equal(np.bincount(d.y_train), [2] * 10)  # 1.5 rounds half up


def test_corrupt_npz_names_file_and_hashes(tiny, tmp_path, monkeypatch):
    good = tmp_path / "good" / "mnist.npz"
    good.parent.mkdir()
    np.savez(good, **tiny)
    expected = _sha256(good)
    monkeypatch.setitem(data.SHA256, "mnist.npz", expected)
    data.load("mnist", path=good)

    bad = tmp_path / "bad" / "mnist.npz"
    bad.parent.mkdir()
    raw = bytearray(good.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(raw)
    with pytest.raises(ValueError, match="sha256 mismatch") as error:
        data.load("mnist", path=bad.parent)
    message = str(error.value)
    assert str(bad) in message and expected in message and _sha256(bad) in message


def test_unregistered_npz_fails_hash(tiny, tmp_path):
    # A well-formed file that is not the verified one: same names and arrays, wrong bytes.
    np.savez(tmp_path / "mnist.npz", **tiny)
    with pytest.raises(ValueError, match=data.SHA256["mnist.npz"]):
        data.load("mnist", path=tmp_path)


def test_missing_file_says_where_it_looked(no_data, monkeypatch):
    with pytest.raises(FileNotFoundError) as error:
        data.load("fashion_mnist")
    message = str(error.value)
    fallback = no_data / "project" / "shared" / "data"
    assert str(fallback) in message and "DYNLEARN_DATA" in message and "path=" in message
    assert "fashion_mnist.npz" in message and "IDX" in message
    # ... and where the data come from, with the original files' checksums
    assert "github.com/zalandoresearch/fashion-mnist" in message
    assert "f4a8712d7a061bf5bd6d2ca38dc4d50a" in message

    empty = no_data / "empty"
    empty.mkdir()
    monkeypatch.setenv("DYNLEARN_DATA", str(empty))
    with pytest.raises(FileNotFoundError) as error:
        data.load("mnist")
    assert str(empty) in str(error.value) and str(fallback) in str(error.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.load("mnist", path=no_data / "nowhere")


def test_describe_lists_every_set(no_data):
    rows = data.describe()
    assert [row["name"] for row in rows] == list(data.DATASETS)
    keys = {"name", "n_train", "n_test", "n_features", "n_classes", "source"}
    assert all(keys <= set(row) for row in rows)
    sources = {row["name"]: row["source"] for row in rows}
    assert sources["mnist"] == "missing" and sources["fashion_mnist"] == "missing"
    sizes = {row["name"]: (row["n_train"], row["n_test"], row["n_features"]) for row in rows}
    assert sizes["digits"] == (1437, 360, 64) and sizes["yinyang"] == (5000, 1000, 4)


def _write_idx(file, array):
    magic = 2051 if array.ndim == 3 else 2049
    raw = np.array([magic, *array.shape], dtype=">u4").tobytes() + array.tobytes()
    if file.name.endswith(".gz"):
        raw = gzip.compress(raw)
    file.write_bytes(raw)


IDX_STEMS = [("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1)]
IDX_SPELLINGS = {
    "plain": ("{}-idx{}-ubyte", ""),
    "gz": ("{}-idx{}-ubyte", ".gz"),
    "dot": ("{}.idx{}-ubyte", ""),
    "dot-gz": ("{}.idx{}-ubyte", ".gz"),
}


@pytest.mark.parametrize("spelling", IDX_SPELLINGS)
@pytest.mark.parametrize("subfolder", [False, True])
def test_idx_folder(tiny, tmp_path, spelling, subfolder):
    pattern, suffix = IDX_SPELLINGS[spelling]
    folder = tmp_path / "mnist" if subfolder else tmp_path
    folder.mkdir(exist_ok=True)
    for key, (stem, dim) in zip(data._KEYS, IDX_STEMS):
        _write_idx(folder / (pattern.format(stem, dim) + suffix), tiny[key])
    d = data.load("mnist", path=tmp_path, normalize=False, flatten=False)
    for key in data._KEYS:
        np.testing.assert_array_equal(getattr(d, key), tiny[key])
    assert data.describe(path=tmp_path)[4]["source"].endswith("(IDX files)")


def test_idx_header_errors(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    _write_idx(tmp_path / "labels", labels)
    np.testing.assert_array_equal(data._read_idx(tmp_path / "labels", 2049), labels)
    with pytest.raises(ValueError, match="magic number 2049; expected 2051"):
        data._read_idx(tmp_path / "labels", 2051)
    (tmp_path / "short").write_bytes((tmp_path / "labels").read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"promises shape \(10,\).*holds 9"):
        data._read_idx(tmp_path / "short", 2049)
    (tmp_path / "broken.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot be read as an IDX file"):
        data._read_idx(tmp_path / "broken.gz", 2049)


def test_wrong_counts_are_rejected(tmp_path):
    # Without the `tiny` fixture, mnist must hold 60000/10000 samples.
    arrays = _tiny_arrays()
    for key, (stem, dim) in zip(data._KEYS, IDX_STEMS):
        _write_idx(tmp_path / f"{stem}-idx{dim}-ubyte", arrays[key])
    with pytest.raises(ValueError, match=r"x_train has shape \(30, 28, 28\).*\(60000, 28, 28\)"):
        data.load("mnist", path=tmp_path)


# ------------------------------------------------------------------------ files: real


def _real(name):
    file = REAL_DATA / f"{name}.npz"
    if not file.is_file():
        pytest.skip(f"{file} absent: set DYNLEARN_DATA to a folder holding {name}.npz")
    return file


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_full_sets(name):
    file = _real(name)
    assert _sha256(file) == data.SHA256[f"{name}.npz"]
    d = data.load(name, path=REAL_DATA)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.x_train.dtype == np.float32 and d.x_train.min() == 0 and d.x_train.max() == 1
    train, test = HISTOGRAMS[name]
    np.testing.assert_array_equal(np.bincount(d.y_train, minlength=10), train)
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), test)
    small = data.load(name, path=REAL_DATA, fraction=0.1, flatten=False)
    assert small.x_train.shape[1:] == (28, 28)
    assert np.all(np.abs(np.bincount(small.y_train) - 0.1 * np.array(train)) <= 1)


def test_real_corrupt_copy_fails(tmp_path):
    file = _real("mnist")
    copy = tmp_path / "mnist.npz"
    shutil.copyfile(file, copy)
    with open(copy, "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ValueError, match=f"expected {data.SHA256['mnist.npz']}, got"):
        data.load("mnist", path=tmp_path)


def test_real_idx_equals_npz(tmp_path):
    _real("mnist")
    full = data.load("mnist", path=REAL_DATA, normalize=False, flatten=False)
    for key, (stem, dim) in zip(data._KEYS, IDX_STEMS):
        _write_idx(tmp_path / f"{stem}-idx{dim}-ubyte", getattr(full, key).astype(np.uint8))
    idx = data.load("mnist", path=tmp_path, normalize=False, flatten=False)
    for key in data._KEYS:
        np.testing.assert_array_equal(getattr(idx, key), getattr(full, key))


# ---------------------------------------------------------------------------- batches


def test_batches_cover_every_sample_once():
    x = np.arange(103)[:, None] * np.ones((1, 3))
    y = np.arange(103)
    out = list(data.batches(x, y, 10, key_or_seed=0, drop_last=False))
    assert len(out) == data.num_batches(103, 10, drop_last=False) == 11
    assert [len(b) for b, _ in out] == [10] * 10 + [3]
    seen = np.concatenate([labels for _, labels in out])
    np.testing.assert_array_equal(np.sort(seen), y)
    assert not np.array_equal(seen, y)  # shuffled
    for xb, yb in out:
        np.testing.assert_array_equal(xb[:, 0], yb)  # pairs stay together

    dropped = list(data.batches(x, y, 10, key_or_seed=0))
    assert len(dropped) == data.num_batches(103, 10) == 10
    assert all(len(b) == 10 for b, _ in dropped)


def test_batches_seeded():
    x, y = np.arange(50.0), np.arange(50)

    def order(**kwargs):
        return np.concatenate([b for _, b in data.batches(x, y, 7, drop_last=False, **kwargs)])

    np.testing.assert_array_equal(order(key_or_seed=1), order(key_or_seed=1))
    assert not np.array_equal(order(key_or_seed=1), order(key_or_seed=2))
    np.testing.assert_array_equal(order(key_or_seed=None, shuffle=False), y)
    key = jax.random.key(0)
    np.testing.assert_array_equal(order(key_or_seed=key), order(key_or_seed=key))
    np.testing.assert_array_equal(np.sort(order(key_or_seed=jax.random.PRNGKey(3))), y)


def test_batches_errors():
    x, y = np.zeros((20, 2)), np.zeros(20)
    with pytest.raises(ValueError, match=r"batch_size must be <= the number of samples \(20\)"):
        data.batches(x, y, 21, key_or_seed=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1; got 0"):
        data.batches(x, y, 0, key_or_seed=0)
    with pytest.raises(ValueError, match="same leading length"):
        data.batches(x, y[:10], 5, key_or_seed=0)
    with pytest.raises(ValueError, match="key_or_seed must be an int >= 0 or a JAX PRNG key"):
        data.batches(x, y, 5, key_or_seed=None)
    with pytest.raises(ValueError, match="key_or_seed must be an int >= 0"):
        data.batches(x, y, 5, key_or_seed=-3)


def test_validation_split_holds_out_the_end_of_the_training_set():
    digits = data.load("digits")
    split = digits.validation_split(0.2)
    n = len(digits.x_train)
    assert len(split.x_test) == round(0.2 * n) and len(split.x_train) == n - round(0.2 * n)
    np.testing.assert_array_equal(split.x_test, digits.x_train[n - len(split.x_test) :])
    np.testing.assert_array_equal(split.y_train, digits.y_train[: len(split.x_train)])
    assert split.name == "digits-validation" and split.n_classes == digits.n_classes
    with pytest.raises(ValueError, match=r"fraction: expected a value in \(0, 1\)"):
        digits.validation_split(1.0)
