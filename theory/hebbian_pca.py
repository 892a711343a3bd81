"""Claim: Oja's rule finds the top principal component, Sanger's GHA the top k in order.

A linear Hebbian layer (`circuits.hebbian.GeneralisedHebbian` in a `HebbianNetwork`
without read-out) learns always-on from a stream of zero-mean Gaussian inputs with a known
covariance C (eigenvalues 4, 2, 1, 0.5, ... in a random basis): neurons tau du/dt = -u + W x
and weights tau_w dW/dt = g(n) (u x^T - LT(u u^T) W), the plasticity gain annealed as
g(n) = 1 / (1 + n / n_0) over the n samples seen. Measured in float64 against
`numpy.linalg.eigh(C)`:
- Oja (one unit): |cos(w, v_1)| >= 0.999 and | |w| - 1 | <= 0.01;
- GHA (three units): unit k aligned with v_k, |cos| >= 0.999 for each, in order, norms
  within 0.01 of 1 (and the same with settle-then-update, optax SGD with the 1/n decay);
  measured after 40,000 samples: |cos| 0.99956-0.99982 (the eigenvectors of the samples'
  own covariance reach 0.99977-0.99998), norms 0.995-1.000; with a slower decay,
  n_0 = 4,000 samples instead of 500, the rate's noise left unit 2 at 0.9982;
- fast version (pytest): 6,000 samples, the gain halved after 4,000 (a faster decay leaves
  the third unit's norm at 0.95 in so few samples), |cos| >= 0.99 and norms within 0.03.

Run: `python -m theory.hebbian_pca [--fast]` or `dynlearn check hebbian_pca`.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import dynlearn
from circuits.hebbian import GeneralisedHebbian, HebbianNetwork, annealed_sgd, train_unlabelled

CLAIM = "Oja's rule -> top eigenvector, GHA -> top-k eigenvectors in order (norm 1)"
N_IN = 8
EIGENVALUES = 4.0 * 0.5 ** np.arange(N_IN)
STREAMS, T_PRES, DT = 16, 1.0, 0.01
N_0 = {False: 500, True: 4_000}  # the gain's half-life in samples, full and fast runs


def covariance(seed: int) -> np.ndarray:
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(N_IN, N_IN)))
    return basis @ np.diag(EIGENVALUES) @ basis.T


def samples(cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).multivariate_normal(np.zeros(N_IN), cov, size=n)


@eqx.filter_jit
def _stream_chunk(net, chunk, gain):
    """One always-on simulation over `chunk` `(presentations, streams, n_in)`."""
    system = dynlearn.Learning(net, gain=gain)
    stream = dynlearn.StimulusStream(chunk, t_pres=T_PRES)
    end = dynlearn.simulate(
        system, system.init_state(chunk[0]), 0.0, stream.t1, args=stream, dt=DT, check=False
    ).y1
    return system.learned(end)


def always_on(net, x: np.ndarray, n_0: float, chunk: int = 64):
    """Stream x through `Learning(net)` in chunks of `chunk` presentations per stream."""
    per_chunk = chunk * STREAMS
    for start in range(0, len(x) - per_chunk + 1, per_chunk):
        block = x[start : start + per_chunk].reshape(chunk, STREAMS, N_IN)
        net = _stream_chunk(net, jnp.asarray(block), dynlearn.inverse_time(n_0)(start))
    return net


def settle_then_update(net, x: np.ndarray, n_0: float, batch: int = 16):
    """SGD on the gradient-signed Hebbian updates, learning rate 0.05 / (1 + n / n_0)."""
    return train_unlabelled(net, x, annealed_sgd(0.05, n_0 / batch), batch_size=batch)


def _alignment(w: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|cos| of each row of w with the eigenvector of the same rank, and the row norms."""
    values, vectors = np.linalg.eigh(cov)
    top = vectors[:, np.argsort(values)[::-1][: len(w)]].T
    norms = np.linalg.norm(w, axis=1)
    return np.abs(np.sum(w * top, axis=1)) / norms, norms


def run(fast: bool) -> tuple[xr.Dataset, bool]:
    n = 6_000 if fast else 40_000
    cases = [("oja", 1, always_on), ("gha", 3, always_on), ("gha_settle", 3, settle_then_update)]
    cos = np.full((len(cases), 3), np.nan)
    norms = np.full((len(cases), 3), np.nan)
    with jax.enable_x64(True):
        cov = covariance(0)
        x = samples(cov, n, 0)
        for i, (_, k, train) in enumerate(cases):
            net = HebbianNetwork(
                [N_IN, k],
                GeneralisedHebbian(),
                jax.random.key(i),
                readout=False,
                tau=0.01,
                tau_w=20.0,
            )
            learned = train(net, x, N_0[fast])
            cos[i, :k], norms[i, :k] = _alignment(np.asarray(learned.weights[0]), cov)
    ds = xr.Dataset(
        {"abs_cosine": (("case", "unit"), cos), "norm": (("case", "unit"), norms)},
        coords={"case": [c[0] for c in cases], "unit": np.arange(1, 4)},
    )
    ds = dynlearn.describe(
        ds,
        abs_cosine=("|cos| between unit k's weights and the k-th eigenvector of C", "1"),
        norm=("length of unit k's weight vector", "1"),
        unit=("unit index k (the k-th principal component)", "1"),
    )
    ds.attrs["samples"] = n
    cos_min, norm_tol = (0.99, 0.03) if fast else (0.999, 0.01)
    found = ~np.isnan(cos)
    passed = bool(np.all(cos[found] >= cos_min) and np.all(np.abs(norms[found] - 1.0) <= norm_tol))
    return ds, passed


def plot(ds: xr.Dataset, path) -> None:
    with dynlearn.plot.figure(path, figsize=(5.6, 3.2), title=ds.attrs["claim"]) as ax:
        for i, case in enumerate(ds.case.values):
            ax.plot(
                ds.unit,
                1 - ds.abs_cosine.sel(case=case),
                label=str(case),
                **dynlearn.plot.style(i),
            )
        ax.set_yscale("log")
        ax.set(xlabel="unit k", ylabel="1 - |cos(w_k, v_k)|")
        ax.legend()


main = dynlearn.validation.script_main("hebbian_pca", CLAIM, run, plot)

if __name__ == "__main__":
    sys.exit(main())
