"""Every experiment and benchmark runs end to end in its `--quick` configuration as
`python -m experiments.NAME` (a fresh process, not through the `dynlearn` command), exits 0
and writes its files.

The quick configurations are sized to take seconds each (small data, one seed, few epochs);
most of their time is Python and JAX start-up and XLA compilation, so the processes run with
`JAX_DISABLE_MOST_OPTIMIZATIONS=1` (faster compiles; what is checked here is that the
scripts work, not how fast: benchmarks print their ratios under `--quick` without judging
them). Set the variable to 0 to run them as a user would. As in the test process
(pyproject's `filterwarnings`), a file written without units/long_name or an unreadable
figure is an error.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Experiments take `--run-dir`; these files must be in it afterwards.
EXPERIMENTS = {
    "always_on": ["always_on.nc", "always_on.md", "always_on.png"],
    "bp_baseline": ["metrics.nc", "checkpoint.eqx", "learning_curves.png"],
    "hebbian": ["hebbian.nc", "hebbian.md", "hebbian.png"],
    "target_prop": ["target_prop.nc", "target_prop.md", "target_prop.png"],
    "forward_only": ["forward_only.nc", "forward_only.md", "forward_only.png"],
    "alignment_rules": [
        "alignment_rules.nc",
        "alignment_rules.md",
        "alignment_rules.png",
        "alignment_rules_angles.png",
    ],
    "ntk_alignment": ["ntk_alignment.nc", "ntk_alignment.md", "ntk_alignment.png"],
    "meta_plasticity": ["meta_plasticity.nc", "meta_plasticity.md", "meta_plasticity.png"],
    "pc_vs_bp": ["results.nc", "table.md", "learning_curves.png"],
    "pc_transformer": ["results.nc", "table.md", "curves.png"],
    "ep_mnist": ["results.nc", "table.md", "learning_curves.png"],
    "microcircuit": ["microcircuit.nc", "microcircuit.md", "microcircuit.png"],
    "feedback_comparison": [
        "feedback_comparison.nc",
        "feedback_comparison.md",
        "feedback_comparison.png",
    ],
    "spiking": ["spiking.nc", "spiking.md", "spiking.png", "spiking-dictionary.png"],
    "data_parallel": ["metrics.nc", "checkpoint.eqx"],
    "hardware": ["study.json", "hardware.nc", "hardware.md", "hardware.png", "hardware-cost.png"],
    "constraints": [
        "study.json",
        "constraints.nc",
        "constraints.md",
        "constraints-data.png",
        "constraints-epochs.png",
        "constraints-sparsity.png",
        "constraints-noise.png",
    ],
}
# Benchmarks write no files: a line of their report must be printed.
BENCHMARKS = {
    "bench_engine": "peak memory",
    "bench_pc": "ratio",
    "bench_ep": "ratio",
    "bench_microcircuit": "max rel diff",
    "bench_seeds": "vmapped s",
    "bench_steady_state": "settled",
    "bench_spiking": "identical counts: True",
    "bench_scale": "of the matmul peak",
    "bench_hardware": "ratio to none",
}


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> Path:
    """One JAX persistent compilation cache for the scripts' processes: programs that
    several scripts compile alike (same network, same shapes) compile once. The session's
    (tests/conftest.py), shared by every pytest-xdist worker, when there is one."""
    shared = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(shared) if shared else tmp_path_factory.mktemp("jax-cache")


def run_module(name: str, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = os.environ.copy()
    env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    if cache is not None:
        env.update(
            JAX_COMPILATION_CACHE_DIR=str(cache),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        )
    strict = (
        "import runpy, sys, warnings;"
        "from dynlearn import MetadataWarning; from dynlearn.plot import FigureWarning;"
        "warnings.simplefilter('error', MetadataWarning);"
        "warnings.simplefilter('error', FigureWarning);"
        "sys.argv = sys.argv[1:];"
        "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
    )
    result = subprocess.run(
        [sys.executable, "-c", strict, f"experiments.{name}", "--quick", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"python -m experiments.{name} --quick exited {result.returncode} (warnings as errors)\n"
        f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_quick(name, tmp_path, jax_cache):
    run_dir = tmp_path / name
    run_module(name, "--run-dir", str(run_dir), cache=jax_cache)
    missing = [f for f in EXPERIMENTS[name] if not (run_dir / f).is_file()]
    assert not missing, f"{name}: missing {missing}; found {sorted(os.listdir(run_dir))}"
    for f in EXPERIMENTS[name]:
        assert (run_dir / f).stat().st_size > 0, f


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_quick(name, jax_cache):
    result = run_module(name, cache=jax_cache)
    assert BENCHMARKS[name] in result.stdout, result.stdout


def test_every_module_is_covered_and_none_uses_the_cli():
    """Each script runs as `python -m experiments.NAME` without the `dynlearn` command."""
    scripts = {p.stem for p in (ROOT / "experiments").glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(EXPERIMENTS) | set(BENCHMARKS)
    for path in (ROOT / "experiments").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"dynlearn\.cli|from dynlearn import .*\bcli\b", text), path.name


def test_always_on_study_labels_each_variant_once():
    """The variants are a Dataset coordinate: a label used twice would break the table."""
    from experiments.always_on import STUDY

    labels = [label for _, variants in STUDY.values() for label, _ in variants]
    twins = {f"{twin} (phased twin)" for twin, _ in STUDY.values()}
    assert len(set(labels)) == len(labels) and not twins & set(labels)


def test_feedback_comparison_forward_plasticity_changes_only_the_le_rules():
    import equinox as eqx
    import jax

    import dynlearn
    from experiments.feedback_comparison import make

    sizes, key = [8, 6, 6, 3], jax.random.key(0)
    for rule in ("le", "le-fa", "pal"):
        plain = make(rule, sizes, key, forward_plasticity="constant")
        option = make(rule, sizes, key, forward_plasticity=True)
        assert plain.mode.rms is None and plain.mode.gain is None
        assert option.mode.rms.scope == "forward" and option.mode.gain_response()[0] == 1.0
        assert option.mode.presentation == plain.mode.presentation
        registered = make(rule, sizes, key)  # the registered rules: normalised per neuron
        assert registered.mode.rms.per == "neuron" and option.mode.rms.per == "synapse"
        assert registered.mode.gain_response()[:3] == pytest.approx([1.0, 8 / 9, 8 / 18])
        assert bool(eqx.tree_equal(plain.learner, registered.learner))
    fa = make("fa", sizes, key, forward_plasticity=True)
    assert isinstance(fa.mode, dynlearn.SettleThenUpdate)  # a phased rule is left as it is


def test_feedback_comparison_le_options_and_the_registered_rules_without_them():
    import equinox as eqx
    import jax

    from dynlearn import registry
    from experiments.feedback_comparison import make

    sizes, key = [8, 6, 6, 3], jax.random.key(0)
    for rule in ("le", "le-fa", "pal"):
        ours, registered = make(rule, sizes, key), registry.load("rules", rule)(sizes, key)
        assert bool(eqx.tree_equal(ours.learner, registered.learner))
        assert ours.mode == registered.mode and ours.batch_size == registered.batch_size
        tuned = make(rule, sizes, key, le={"eta": 2.0, "n_0": 1000.0})
        assert tuned.learner.eta == (2.0, 2.0, 2.0)
        assert tuned.mode.gain_response()[:2] == [1.0, 0.5]  # 1/(1 + n/1000), n = 0, 1000
    both = make("pal", sizes, key, forward_plasticity=True, le={"eta": 1.0, "n_0": 500.0})
    assert both.mode.rms.scope == "forward" and both.mode.gain(500.0) == 0.5


def test_feedback_comparison_validation_scores_on_the_training_sets_tail(tmp_path):
    import xarray as xr

    from experiments import feedback_comparison

    argv = ["--quick", "--rules", "le", "--validation", "--le-n0", "2000", "--run-dir"]
    assert feedback_comparison.main([*argv, str(tmp_path)]) == 0
    ds = xr.open_dataset(tmp_path / "feedback_comparison.nc")
    assert ds.attrs["dataset"].endswith("-validation") and ds.attrs["le_n0"] == 2000.0
    assert ds.test_accuracy.notnull().all()
    assert "validation accuracy" in (tmp_path / "feedback_comparison.md").read_text()
