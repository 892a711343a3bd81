"""One table of bad inputs across the engine, the learners, the data, the files the package
writes and the command line: each must be refused with the package's own error (a builtin
`ValueError` or `FileNotFoundError`, or dynlearn's subclass of one such as
`CheckpointMismatch`; never a raw library type such as a `TreePathError`, a
netCDF `OSError` or a `JSONDecodeError`) whose message names the culprit; on the command
line, with exit code 2 and one line that names the option."""

from __future__ import annotations

import json
import re
import shutil
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import dynlearn
from circuits import FeedbackMLP, HopfieldNetwork, LeakyNetwork, LENetwork, Microcircuit
from circuits.backprop import BackpropMLP
from circuits.delta import DeltaRule
from circuits.ep import EPNetwork, EulerPhases, SteadyStatePhases
from circuits.pc import EulerInference, PCNetwork, SteadyStateInference


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """What the cases share: small systems and learners, data, and one finished run."""
    d = load_digits()
    x, y = (d.data[:240] / 16).astype(np.float32), d.target[:240]
    data = types.SimpleNamespace(
        x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:], n_classes=10
    )
    root = tmp_path_factory.mktemp("bad-inputs")
    run = root / "finished-run"
    sgd = dynlearn.SettleThenUpdate(optax.sgd(0.1))
    dynlearn.fit(bp(), data, sgd, epochs=1, batch_size=50, run_dir=run, progress=False)
    (root / "a-file").write_text("not a folder")
    return types.SimpleNamespace(
        net=LeakyNetwork.random([4, 3, 2], jax.random.key(0)),
        hop=HopfieldNetwork.random(4, jax.random.key(0)),
        data=data,
        root=root,
        run=run,
        sgd=sgd,
        count=iter(range(10**6)),
    )


def bp(hidden=16, **kwargs):
    return BackpropMLP([64, hidden, 10], jax.random.key(0), **kwargs)


def with_data(ctx, **changes):
    return types.SimpleNamespace(**{**vars(ctx.data), **changes})


def damaged_copy(ctx, name: str, cut) -> Path:
    """A copy of the finished run with file `name` rewritten as `cut(its bytes)`."""
    folder = ctx.root / f"damaged-{next(ctx.count)}"
    shutil.copytree(ctx.run, folder)
    (folder / name).write_bytes(cut((folder / name).read_bytes()))
    return folder


def resume(ctx, run_dir, learner=None, mode=None, **kwargs):
    kwargs = dict(epochs=2, batch_size=50, progress=False, resume=True) | kwargs
    return dynlearn.fit(learner or bp(), ctx.data, mode or ctx.sgd, run_dir=run_dir, **kwargs)


def simulate(ctx, **overrides):
    kwargs = dict(y0=ctx.net.init_state(), t0=0.0, t1=1.0, args=jnp.ones(4), dt=0.1)
    kwargs.update(overrides)
    y0, t0, t1 = kwargs.pop("y0"), kwargs.pop("t0"), kwargs.pop("t1")
    return dynlearn.simulate(ctx.net, y0, t0, t1, **kwargs)


def leaky_state(ctx, layer, value):
    y0 = ctx.net.init_state()
    y0[layer]["u"] = value
    return y0


def fit(ctx, learner=None, mode=None, data=None, **kwargs):
    kwargs = dict(epochs=1, batch_size=50, progress=False) | kwargs
    return dynlearn.fit(learner or bp(), data or ctx.data, mode or ctx.sgd, **kwargs)


def optimizer(transform):
    return dynlearn.SettleThenUpdate(transform)


def pc(**options):
    return PCNetwork([4, 3, 2], jax.random.key(0), **options)


def ep(**options):
    return EPNetwork([4, 3, 2], jax.random.key(0), **options)


def host(kind, **options):
    """A host circuit of a feedback pathway, by kind, built with the given options."""
    circuit = {"le": LENetwork, "mc": Microcircuit, "mlp": FeedbackMLP}[kind]
    return circuit([4, 3, 2], jax.random.key(0), **options)


def study(ctx, config_text: bytes):
    """A study folder with finished cells and a `study.json` holding `config_text`."""
    from experiments.constraints import Study

    folder = ctx.root / f"study-{next(ctx.count)}"
    (folder / "cells" / "bp").mkdir(parents=True)
    dynlearn.save_netcdf(dynlearn.load_netcdf(ctx.run / "metrics.nc"), folder / "cells/bp/x.nc")
    (folder / "study.json").write_bytes(config_text)
    return Study(folder, STUDY)


def stream(width):
    return dynlearn.StimulusStream(jnp.ones((2, width)), t_pres=1.0)


STUDY = {  # a small study configuration (experiments/constraints.py)
    "dataset": "digits", "quick": True, "hidden": [8], "epochs": 1, "seeds": [0],
    "fractions": [1.0], "sparsities": [0.5], "noise_stds": [0.0], "retrain_epochs": 1,
}  # fmt: skip

C = types.SimpleNamespace  # one case: area, what, call(ctx) or argv, error type, message

CASES = [
    # ---------------------------------------------------------------- engine
    C(area="engine", what="a state of the wrong shape",
      call=lambda c: simulate(c, y0=leaky_state(c, "hidden1", jnp.zeros(5))),
      error=ValueError, names=r"y0 does not fit LeakyNetwork"),
    C(area="engine", what="a state of the wrong rank",
      call=lambda c: simulate(c, y0=leaky_state(c, "output", jnp.zeros((2, 2)))),
      error=ValueError, names=r"'output/u' has shape \(2, 2\)"),
    C(area="engine", what="a drive of the wrong width",
      call=lambda c: simulate(c, args=jnp.ones(7)), error=ValueError, names=r"args"),
    C(area="engine", what="a stimulus stream of the wrong width",
      call=lambda c: simulate(c, args=stream(7)), error=ValueError, names=r"args"),
    C(area="engine", what="a NaN in the state",
      call=lambda c: simulate(c, y0=leaky_state(c, "hidden1", jnp.array([jnp.nan, 0, 0]))),
      error=ValueError, names=r"y0 contains NaN or inf in 'hidden1/u'"),
    C(area="engine", what="an inf in the drive",
      call=lambda c: simulate(c, args=jnp.array([1, jnp.inf, 0, 0])),
      error=ValueError, names=r"args contains NaN or inf"),
    C(area="engine", what="a NaN stimulus", call=lambda c: simulate(
          c, args=dynlearn.StimulusStream(jnp.full((2, 4), jnp.nan), t_pres=1.0)),
      error=ValueError, names=r"args contains NaN or inf in 'samples'"),
    C(area="engine", what="an unknown solver name", call=lambda c: simulate(c, solver="rk99"),
      error=ValueError, names=r"unknown solver name 'rk99'"),
    C(area="engine", what="a solver of the wrong type", call=lambda c: simulate(c, solver=3),
      error=ValueError, names=r"solver: expected a diffrax.AbstractSolver"),
    C(area="engine", what="a function as the system",
      call=lambda c: dynlearn.simulate(lambda t, y, a: y, jnp.ones(2), 0.0, 1.0, dt=0.1),
      error=ValueError, names=r"system: expected a dynlearn.AbstractDynamics"),
    C(area="engine", what="t1 before t0", call=lambda c: simulate(c, t0=1.0, t1=0.0),
      error=ValueError, names=r"t1 must be greater than t0"),
    C(area="engine", what="no step for a fixed-step solver",
      call=lambda c: simulate(c, dt=None), error=ValueError, names=r"dt"),
    C(area="engine", what="a negative step", call=lambda c: simulate(c, dt=-0.1),
      error=ValueError, names=r"dt must be > 0"),
    C(area="engine", what="a step longer than the span", call=lambda c: simulate(c, dt=5.0),
      error=ValueError, names=r"dt=5.0 is longer than the span"),
    C(area="engine", what="an infinite t1", call=lambda c: simulate(c, t1=float("inf")),
      error=ValueError, names=r"t1 must be finite"),
    C(area="engine", what="a NaN step", call=lambda c: simulate(c, dt=float("nan")),
      error=ValueError, names=r"dt must be finite"),
    C(area="engine", what="save times out of the span",
      call=lambda c: simulate(c, ts=jnp.array([0.5, 2.0])), error=ValueError,
      names=r"ts: save times must lie"),
    C(area="engine", what="unordered save times",
      call=lambda c: simulate(c, ts=jnp.array([0.5, 0.2])), error=ValueError,
      names=r"ts: .*non-decreasing"),
    C(area="engine", what="NaN save times",
      call=lambda c: simulate(c, ts=jnp.array([0.5, jnp.nan])), error=ValueError,
      names=r"ts: contains NaN"),
    C(area="engine", what="a 2-D array of save times",
      call=lambda c: simulate(c, ts=jnp.ones((2, 2))), error=ValueError,
      names=r"ts: expected a non-empty 1-D"),
    C(area="engine", what="an unknown variable to save",
      call=lambda c: simulate(c, ts=jnp.ones(1), variables=["hidden9"]), error=ValueError,
      names=r"unknown state variable 'hidden9'"),
    C(area="engine", what="an integer state",
      call=lambda c: simulate(c, y0=leaky_state(c, "hidden1", jnp.zeros(3, jnp.int32))),
      error=ValueError, names=r"y0: 'hidden1/u' has dtype int32.*float32"),
    C(area="engine", what="a float16 state",
      call=lambda c: simulate(c, y0=leaky_state(c, "output", jnp.zeros(2, jnp.float16))),
      error=ValueError, names=r"y0: 'output/u' has dtype float16.*float32"),
    C(area="engine", what="equilibrate: a state of the wrong size",
      call=lambda c: dynlearn.equilibrate(c.hop, {"neurons": {"u": jnp.zeros(3)}}),
      error=ValueError, names=r"y0 does not fit HopfieldNetwork"),
    C(area="engine", what="equilibrate: an integer state",
      call=lambda c: dynlearn.equilibrate(c.hop, {"neurons": {"u": jnp.zeros(4, jnp.int32)}}),
      error=ValueError, names=r"y0: 'neurons/u' has dtype int32"),
    C(area="engine", what="equilibrate: an infinite state",
      call=lambda c: dynlearn.equilibrate(c.hop, {"neurons": {"u": jnp.full(4, jnp.inf)}}),
      error=ValueError, names=r"y0 contains NaN"),
    C(area="engine", what="equilibrate: a negative tolerance",
      call=lambda c: dynlearn.equilibrate(c.hop, {"neurons": {"u": jnp.zeros(4)}}, rtol=-1.0),
      error=ValueError, names=r"rtol and atol must be >= 0"),
    C(area="engine", what="equilibrate: no time to settle",
      call=lambda c: dynlearn.equilibrate(c.hop, {"neurons": {"u": jnp.zeros(4)}}, max_time=0.0),
      error=ValueError, names=r"max_time must be"),
    C(area="engine", what="weights that do not chain",
      call=lambda c: LeakyNetwork([jnp.ones((3, 4)), jnp.ones((2, 5))]),
      error=ValueError, names=r"weights\[1\] must have shape"),
    C(area="engine", what="a presentation step longer than the presentation",
      call=lambda c: dynlearn.Presentation(t_pres=1.0, dt=2.0), error=ValueError,
      names=r"dt"),
    # ---------------------------------------------------------------- learners and fit
    C(area="learners", what="an optimizer given by name",
      call=lambda c: dynlearn.SettleThenUpdate("adam"), error=ValueError,
      names=r"optimizer: expected an optax"),
    C(area="learners", what="a presentation given as a number",
      call=lambda c: dynlearn.AlwaysOn(1.0), error=ValueError,
      names=r"presentation: expected a dynlearn.Presentation"),
    C(area="learners", what="an optax optimizer as the mode",
      call=lambda c: fit(c, mode=optax.adam(1e-3)), error=ValueError,
      names=r"mode: expected SettleThenUpdate"),
    C(area="learners", what="a batch larger than the data", call=lambda c: fit(c, batch_size=5000),
      error=ValueError, names=r"batch_size must be"),
    C(area="learners", what="no epochs", call=lambda c: fit(c, epochs=0),
      error=ValueError, names=r"epochs must be"),
    C(area="learners", what="a negative seed", call=lambda c: fit(c, seed=-1),
      error=ValueError, names=r"seed"),
    C(area="learners", what="NaN inputs",
      call=lambda c: fit(c, data=with_data(c, x_train=np.full_like(c.data.x_train, np.nan))),
      error=ValueError, names=r"x_train contains NaN"),
    C(area="learners", what="inputs of the wrong width",
      call=lambda c: fit(c, data=with_data(c, x_train=c.data.x_train[:, :10])),
      error=ValueError, names=r"x_train"),
    C(area="learners", what="negative labels",
      call=lambda c: fit(c, data=with_data(c, y_train=-np.ones(200, int))), error=ValueError,
      names=r"y_train"),
    C(area="learners", what="labels beyond n_classes",
      call=lambda c: fit(c, data=with_data(c, y_train=np.full(200, 10))), error=ValueError,
      names=r"y_train"),
    C(area="learners", what="one-hot labels",
      call=lambda c: fit(c, data=with_data(c, y_train=np.eye(10)[c.data.y_train])),
      error=ValueError, names=r"y_train"),
    C(area="learners", what="a negative learning rate",
      call=lambda c: fit(c, mode=optimizer(optax.sgd(-0.1))), error=ValueError,
      names=r"optimizer: .*negative"),
    C(area="learners", what="a NaN learning rate",
      call=lambda c: fit(c, mode=optimizer(optax.adam(float("nan")))), error=ValueError,
      names=r"optimizer: .*NaN"),
    C(area="learners", what="a zero learning rate",
      call=lambda c: fit(c, mode=optimizer(optax.sgd(0.0))), error=ValueError,
      names=r"optimizer: .*zero"),
    C(area="learners", what="a negative learning rate inside a chain",
      call=lambda c: fit(c, mode=optimizer(optax.chain(optax.clip(1.0), optax.sgd(-1e-3)))),
      error=ValueError, names=r"optimizer: "),
    C(area="learners", what="a run folder under a file",
      call=lambda c: fit(c, run_dir=c.root / "a-file" / "run"), error=ValueError,
      names=r"run_dir: .*is a file"),
    C(area="learners", what="an unknown activation", call=lambda c: bp(activation="cube"),
      error=ValueError, names=r"activation: unknown name 'cube'"),
    C(area="learners", what="settle-then-update for an always-on learner",
      call=lambda c: fit(c, learner=DeltaRule(64, 10, jax.random.key(0))), error=ValueError,
      names=r"mode: DeltaRule has no settle-then-update rule"),
    C(area="learners", what="always-on for a learner without plasticity",
      call=lambda c: fit(c, mode=dynlearn.AlwaysOn(dynlearn.Presentation(1.0, 0.1))),
      error=ValueError, names=r"mode"),
    # ---------------------------------------------------------------- circuit options
    C(area="learners", what="a PC step beyond tau",
      call=lambda c: pc(inference=EulerInference(4, 2.0)),
      error=ValueError, names=r"inference: EulerInference.dt=2.0 is larger than the fastest time "
      r"constant of PCNetwork, tau=1"),
    C(area="learners", what="a PC step beyond a custom tau",
      call=lambda c: pc(inference=EulerInference(4, 0.5), tau=0.1), error=ValueError,
      names=r"EulerInference.dt=0.5 is larger .* tau=0.1"),
    C(area="learners", what="a negative PC step", call=lambda c: EulerInference(4, -0.1),
      error=ValueError, names=r"EulerInference.dt must be"),
    C(area="learners", what="no PC steps", call=lambda c: EulerInference(0, 0.1),
      error=ValueError, names=r"EulerInference.n_steps must be an"),
    C(area="learners", what="a fractional number of PC steps",
      call=lambda c: EulerInference(2.5, 0.1), error=ValueError,
      names=r"n_steps must be an integer"),
    C(area="learners", what="a zero PC tolerance", call=lambda c: SteadyStateInference(rtol=0.0),
      error=ValueError, names=r"SteadyStateInference.rtol must be"),
    C(area="learners", what="an infinite PC settling time",
      call=lambda c: SteadyStateInference(max_time=float("inf")), error=ValueError,
      names=r"SteadyStateInference.max_time must be a finite"),
    C(area="learners", what="an EP step beyond tau", call=lambda c: ep(phases=EulerPhases(dt=3.0)),
      error=ValueError, names=r"phases: EulerPhases.dt=3.0 is larger than the fastest time "
      r"constant of EPNetwork"),
    C(area="learners", what="an EP steady-state step beyond tau",
      call=lambda c: ep(phases=SteadyStatePhases(dt=2.0)), error=ValueError,
      names=r"phases: SteadyStatePhases.dt=2.0 is larger"),
    C(area="learners", what="no EP free steps", call=lambda c: EulerPhases(n_free=0),
      error=ValueError, names=r"EulerPhases.n_free must be"),
    C(area="learners", what="a NaN EP step", call=lambda c: EulerPhases(dt=float("nan")),
      error=ValueError, names=r"EulerPhases.dt must be a finite"),
    C(area="learners", what="a zero EP steady-state step", call=lambda c: SteadyStatePhases(dt=0.0),
      error=ValueError, names=r"SteadyStatePhases.dt must be"),
    C(area="learners", what="a pathway given by name to LE",
      call=lambda c: host("le", feedback="fa"), error=ValueError,
      names=r"feedback: expected a pathway .* got 'fa' \(for a name, use circuits.feedback"),
    C(area="learners", what="a pathway given by name to the microcircuit",
      call=lambda c: host("mc", feedback="kp"), error=ValueError,
      names=r"feedback: expected a pathway"),
    C(area="learners", what="a number as a pathway", call=lambda c: host("mlp", feedback=3),
      error=ValueError, names=r"feedback: expected a pathway .* got 3; known names"),
    # ---------------------------------------------------------------- data
    C(area="data", what="an unknown data set", call=lambda c: dynlearn.data.load("cifar"),
      error=ValueError, names=r"name: unknown data set 'cifar'"),
    C(area="data", what="a zero fraction", call=lambda c: dynlearn.data.load("digits", fraction=0),
      error=ValueError, names=r"fraction must be"),
    C(area="data", what="a negative data seed",
      call=lambda c: dynlearn.data.load("digits", seed=-1),
      error=ValueError, names=r"seed must be"),
    C(area="data", what="a path for a built-in set",
      call=lambda c: dynlearn.data.load("digits", path="x.npz"), error=ValueError,
      names=r"path: only"),
    C(area="data", what="a size for a fixed split",
      call=lambda c: dynlearn.data.load("digits", n_train=10), error=ValueError,
      names=r"n_train: only the generated 'yinyang'"),
    C(area="data", what="an empty generated set",
      call=lambda c: dynlearn.data.load("yinyang", n_train=0), error=ValueError,
      names=r"n_train must be"),
    C(area="data", what="a missing full MNIST file",
      call=lambda c: dynlearn.data.load("mnist", path=c.root / "nowhere.npz"),
      error=FileNotFoundError, names=r"mnist"),
    C(area="data", what="a damaged full MNIST file",
      call=lambda c: dynlearn.data.load("mnist", path=c.root / "a-file"), error=ValueError,
      names=r"a-file"),
    C(area="data", what="batches of x and y of different lengths",
      call=lambda c: next(dynlearn.data.batches(np.ones((5, 2)), np.ones(4), 2, key_or_seed=0)),
      error=ValueError, names=r"x and y must have the same leading length"),
    C(area="data", what="a batch size of zero",
      call=lambda c: next(dynlearn.data.batches(np.ones((5, 2)), np.ones(5), 0, key_or_seed=0)),
      error=ValueError, names=r"batch_size must be >= 1"),
    C(area="data", what="a string as the shuffling seed",
      call=lambda c: next(dynlearn.data.batches(np.ones((5, 2)), np.ones(5), 2,
                                                key_or_seed="abc")),
      error=ValueError, names=r"key_or_seed must be"),
    # ---------------------------------------------------------------- files read back
    C(area="files", what="a truncated checkpoint",
      call=lambda c: resume(c, damaged_copy(c, "checkpoint.eqx", lambda b: b[: len(b) // 2])),
      error=ValueError, names=r"checkpoint.eqx: it is damaged"),
    C(area="files", what="an empty checkpoint",
      call=lambda c: resume(c, damaged_copy(c, "checkpoint.eqx", lambda b: b"")),
      error=ValueError, names=r"checkpoint.eqx: it is damaged"),
    C(area="files", what="a checkpoint with trailing bytes",
      call=lambda c: resume(c, damaged_copy(c, "checkpoint.eqx", lambda b: b + b"\0")),
      error=ValueError, names=r"checkpoint.eqx: it is damaged"),
    C(area="files", what="a truncated checkpoint description",
      call=lambda c: resume(c, damaged_copy(c, "checkpoint.json", lambda b: b[:30])),
      error=ValueError, names=r"checkpoint.json is damaged"),
    C(area="files", what="a truncated metrics file",
      call=lambda c: resume(c, damaged_copy(c, "metrics.nc", lambda b: b[:200])),
      error=ValueError, names=r"metrics.nc: it is damaged"),
    C(area="files", what="a checkpoint of another learner",
      call=lambda c: dynlearn.load_checkpoint(c.run, (bp(8), None, jnp.asarray(0))),
      error=dynlearn.CheckpointMismatch,
      names=r"does not fit this learner and mode: saved leaf"),
    C(area="files", what="resume with another hidden size",
      call=lambda c: resume(c, c.run, learner=bp(8)), error=dynlearn.CheckpointMismatch,
      names=r"resume: .*learner.weights\[0\]"),
    C(area="files", what="resume with another activation",
      call=lambda c: resume(c, c.run, learner=bp(activation="relu")),
      error=dynlearn.CheckpointMismatch,
      names=r"resume: .*learner.activation: 'tanh' -> 'relu'"),
    C(area="files", what="resume with another learning rate",
      call=lambda c: resume(c, c.run, mode=optimizer(optax.sgd(0.2))),
      error=dynlearn.CheckpointMismatch,
      names=r"resume: .*optimizer_response"),
    C(area="files", what="resume with momentum added",
      call=lambda c: resume(c, c.run, mode=optimizer(optax.sgd(0.1, momentum=0.9))),
      error=dynlearn.CheckpointMismatch, names=r"resume: .*optimizer_response\[1\]"),
    C(area="files", what="a checkpoint description that is a list",
      call=lambda c: resume(c, damaged_copy(c, "checkpoint.json", lambda b: b"[1, 2]")),
      error=ValueError, names=r"checkpoint.json is damaged"),
    C(area="files", what="resume with another training set",
      call=lambda c: dynlearn.fit(bp(), with_data(c, x_train=c.data.x_train[:150],
                                                  y_train=c.data.y_train[:150]),
                                  c.sgd, epochs=2, batch_size=50, run_dir=c.run, resume=True,
                                  progress=False),
      error=dynlearn.CheckpointMismatch, names=r"resume: .*n_train: 200 -> 150"),
    C(area="files", what="resume with another batch size",
      call=lambda c: resume(c, c.run, batch_size=40), error=dynlearn.CheckpointMismatch,
      names=r"resume: .*batch_size: 50 -> 40"),
    C(area="files", what="a missing netCDF file",
      call=lambda c: dynlearn.load_netcdf(c.root / "none.nc"), error=FileNotFoundError,
      names=r"path: no netCDF file"),
    C(area="files", what="a text file read as netCDF",
      call=lambda c: dynlearn.load_netcdf(c.root / "a-file"), error=ValueError,
      names=r"path: cannot read .*a-file"),
    C(area="files", what="a damaged study.json",
      call=lambda c: study(c, b'{"dataset": "dig'), error=ValueError,
      names=r"run_dir: .*study.json is damaged"),
    C(area="files", what="a study.json that is not an object",
      call=lambda c: study(c, b"[1, 2]"), error=ValueError,
      names=r"study.json is damaged"),
    C(area="files", what="a study resumed with other settings",
      call=lambda c: study(c, json.dumps(STUDY | {"epochs": 2}).encode()), error=ValueError,
      names=r"run_dir: .*holds a study with another configuration"),
    # ---------------------------------------------------------------- command line
    C(area="cli", what="an unknown experiment", argv=["run", "nope"],
      names=r"unknown experiment 'nope'"),
    C(area="cli", what="an unknown benchmark", argv=["bench", "nope"], names=r"nope"),
    C(area="cli", what="an unknown theory check", argv=["check", "nope"], names=r"nope"),
    C(area="cli", what="a negative noise level",
      argv=["run", "constraints", "--quick", "--noise-stds", "-0.5"],
      names=r"--noise-stds: must be >= 0; got -0.5"),
    C(area="cli", what="a fraction of zero",
      argv=["run", "constraints", "--quick", "--fractions", "0"], names=r"--fractions: must be"),
    C(area="cli", what="a sparsity of one",
      argv=["run", "constraints", "--quick", "--sparsities", "1"], names=r"--sparsities: must be"),
    C(area="cli", what="--epochs 0", argv=["run", "feedback-comparison", "--epochs", "0"],
      names=r"--epochs: must be >= 1"),
    C(area="cli", what="--seeds -1", argv=["run", "microcircuit", "--seeds", "-1"],
      names=r"--seeds: must be >= 0"),
    C(area="cli", what="a word as a number", argv=["run", "bp", "--lr", "fast"],
      names=r"--lr: expected float; got 'fast'"),
    C(area="cli", what="an infinite learning rate", argv=["run", "bp", "--lr", "inf"],
      names=r"--lr: must be a finite number"),
    C(area="cli", what="--run-dir under a file",
      argv=["run", "bp", "--run-dir", "{root}/a-file/x"],
      names=r"--run-dir: cannot make a folder .*is a file"),
    C(area="cli", what="a theory check's run folder under a file",
      argv=["check", "pc_zil", "--fast", "--run-dir", "{root}/a-file/x"],
      names=r"--run-dir: cannot make a folder"),
    C(area="cli", what="the demo's runs folder is a file", argv=["demo", "--runs", "{root}/a-file"],
      names=r"root: cannot make a folder|is a file"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.what}" for c in CASES])
def test_a_bad_input_is_refused_by_name(ctx, case, capsys):
    if case.area == "cli":
        from dynlearn.cli import main

        argv = [a.format(root=ctx.root) for a in case.argv]
        code = main(argv)
        out = capsys.readouterr()
        text = " ".join((out.out + out.err).split())
        assert code == 2, text
        assert re.search(case.names, text), text
        assert "Traceback" not in text
        return
    with pytest.raises(case.error, match=case.names) as caught:
        case.call(ctx)
    module = type(caught.value).__module__  # builtin, or dynlearn's own subclass of one
    assert module == "builtins" or module.split(".")[0] == "dynlearn", type(caught.value)


def test_the_table_covers_every_area_with_sixty_cases():
    areas = {c.area for c in CASES}
    assert areas == {"engine", "learners", "data", "files", "cli"}
    assert len({c.what for c in CASES}) == len(CASES) >= 60
