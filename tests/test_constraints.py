"""The constraints study (`experiments/constraints.py`) on a tiny configuration: every axis,
the Dataset layout, exact global sparsity, the noise levels, and resume."""

import json

import numpy as np
import pytest

import dynlearn
from experiments import constraints

ARGS = [
    "--dataset", "digits", "--rules", "bp", "le", "--hidden", "16", "--epochs", "2",
    "--seeds", "0", "1", "--fractions", "1.0", "0.5", "--sparsities", "0.5", "0.9",
    "--noise-stds", "0", "0.5",
]  # fmt: skip
N_WEIGHTS = 64 * 16 + 16 * 10


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("constraints")
    assert constraints.main(ARGS + ["--run-dir", str(run_dir)]) == 0
    return run_dir


def test_the_dataset_has_every_constraint_axis(study):
    ds = dynlearn.load_netcdf(study / "constraints.nc")
    assert ds.accuracy.dims == ("rule", "fraction", "seed", "epoch")
    assert ds.pruned_accuracy.dims == ("rule", "sparsity", "retrained", "seed")
    assert ds.noisy_accuracy.dims == ("rule", "noise_std", "seed")
    assert list(ds.rule.values) == ["bp", "le"]
    assert list(ds.fraction.values) == [1.0, 0.5] and list(ds.epoch.values) == [1, 2]
    assert list(ds.sparsity.values) == [0.5, 0.9] and list(ds.noise_std.values) == [0, 0.5]
    for name in ("accuracy", "pruned_accuracy", "noisy_accuracy"):
        values = ds[name].values
        assert np.all((values >= 0) & (values <= 1)), name
    assert set(np.unique(ds.epochs_to_95.values)) <= {1.0, 2.0}
    # both rules learn digits well above chance (0.1) in 2 epochs on all data
    assert np.all(ds.accuracy.sel(fraction=1.0).isel(epoch=-1) > 0.5)
    # re-training after pruning to 90% recovers accuracy
    pruned = ds.pruned_accuracy.sel(sparsity=0.9)
    assert float(pruned.sel(retrained=True).mean()) > float(pruned.sel(retrained=False).mean())


def test_pruning_reaches_the_exact_global_sparsity_before_and_after_retraining(study):
    ds = dynlearn.load_netcdf(study / "constraints.nc")
    for level in (0.5, 0.9):
        expected = round(level * N_WEIGHTS) / N_WEIGHTS
        np.testing.assert_array_equal(ds.sparsity_reached.sel(sparsity=level), expected)


def test_layer_wise_pruning_reaches_the_study(tmp_path, monkeypatch):
    scopes, prune = [], dynlearn.prune

    def recording(learner, sparsity, **kwargs):
        scopes.append(kwargs.get("scope"))
        return prune(learner, sparsity, **kwargs)

    monkeypatch.setattr(dynlearn, "prune", recording)
    args = [
        "--dataset", "digits", "--rules", "bp", "--hidden", "16", "--epochs", "1",
        "--seeds", "0", "--fractions", "1.0", "--sparsities", "0.5", "--noise-stds", "0",
        "--retrain-epochs", "0", "--prune-scope", "layer", "--run-dir", str(tmp_path),
    ]  # fmt: skip
    assert constraints.main(args) == 0
    assert scopes == ["layer"]
    ds = dynlearn.load_netcdf(tmp_path / "constraints.nc")
    expected = (round(0.5 * 64 * 16) + round(0.5 * 16 * 10)) / N_WEIGHTS
    np.testing.assert_array_equal(ds.sparsity_reached.sel(retrained=False), expected)
    assert ds.attrs["prune_scope"] == "layer"
    assert "pruned 50% layer-wise" in (tmp_path / "constraints.md").read_text()
    # a study saved before the option was global: resuming it with another scope is refused
    config = json.loads((tmp_path / "study.json").read_text())
    del config["prune_scope"]
    (tmp_path / "study.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="prune_scope"):
        constraints.Study(tmp_path, {**config, "prune_scope": "layer"})


def test_noise_levels(study):
    ds = dynlearn.load_netcdf(study / "constraints.nc")
    # std 0 is the clean test set: the same number as the last epoch on all data
    np.testing.assert_array_equal(
        ds.noisy_accuracy.sel(noise_std=0).values,
        ds.accuracy.sel(fraction=1.0).isel(epoch=-1).values,
    )
    drop = ds.noisy_accuracy.sel(noise_std=0) - ds.noisy_accuracy.sel(noise_std=0.5)
    assert float(drop.mean()) > 0.05
    x = np.random.default_rng(0).random((200, 64)).astype(np.float32)
    np.testing.assert_array_equal(constraints.noisy_inputs(x, 0.0), x)
    noisy = constraints.noisy_inputs(x, 0.3)
    np.testing.assert_array_equal(noisy, constraints.noisy_inputs(x, 0.3))  # one fixed draw
    assert abs(float(np.std(noisy - x)) - 0.3) < 0.01


def test_table_and_one_figure_per_constraint(study):
    text = (study / "constraints.md").read_text()
    assert "| bp |" in text and "| le |" in text and "pruned 90% (re-trained)" in text
    for axis in ("data", "epochs", "sparsity", "noise"):
        assert (study / f"constraints-{axis}.png").stat().st_size > 0


def test_epochs_to_fraction_of_final():
    curves = np.array([[0.5, 0.9, 0.95, 1.0], [0.2, np.nan, np.nan, np.nan], [1.0, 1.0, 1, 1]])
    np.testing.assert_array_equal(
        constraints.epochs_to_fraction_of_final(curves), [3.0, np.nan, 1.0]
    )


def test_an_interrupted_study_resumes_without_recomputing_finished_cells(study, tmp_path):
    """Interrupt a study in its 4th training run; the second call computes only the cells
    that were not finished, leaves the finished files untouched, and gives the same result
    as the uninterrupted study."""
    calls = {"n": 0}
    original = constraints.train

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    run_dir = tmp_path / "study"
    constraints.train = interrupting
    try:
        with pytest.raises(KeyboardInterrupt):
            constraints.main(ARGS + ["--run-dir", str(run_dir)])
    finally:
        constraints.train = original
    finished = {p: p.read_bytes() for p in run_dir.glob("cells/*/*.nc")}
    assert len(finished) == 2  # bp's fractions 1 and 0.5; its 2nd re-training was cut off

    computed = []
    config = json.loads((run_dir / "study.json").read_text())
    resumed = constraints.Study(run_dir, config, log=computed.append)
    ds = constraints.run_study(resumed, ["bp", "le"])
    assert len(resumed.computed) == 2 * 4 - 2  # 4 cells per rule, 2 were on disk
    assert {p: p.read_bytes() for p in finished} == finished
    reference = dynlearn.load_netcdf(study / "constraints.nc")
    for name in ("accuracy", "pruned_accuracy", "noisy_accuracy", "sparsity_reached"):
        np.testing.assert_allclose(ds[name].values, reference[name].values, atol=1e-6)

    again = constraints.Study(run_dir, config, log=computed.append)
    constraints.run_study(again, ["bp", "le"])
    assert again.computed == []

    with pytest.raises(ValueError, match="epochs"):
        constraints.Study(run_dir, {**config, "epochs": 3})


def test_a_cell_killed_midway_continues_from_its_last_epoch(study, tmp_path, monkeypatch):
    """A cell's trainings checkpoint every epoch under `partial/`: killed in its second
    epoch, the cell trains only that epoch again, gives the uninterrupted result and
    removes its partial folder once saved."""
    config = json.loads((study / "study.json").read_text())  # 2 epochs, seeds 0 and 1
    evaluate, epochs_run = dynlearn._seeds.evaluate_seeds, []

    def counted(*args, **kwargs):
        epochs_run.append(1)
        if len(epochs_run) == 2 and kill:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(dynlearn._seeds, "evaluate_seeds", counted)
    kill = True
    with pytest.raises(KeyboardInterrupt):
        constraints.Study(tmp_path, config).fraction("bp", 0.5)
    partial = tmp_path / "partial" / "bp" / "fraction-0.5"
    saved = json.loads((partial / "training-0" / "seeds" / "checkpoint.json").read_text())
    assert saved["epoch"] == 1 and not constraints.Study(tmp_path, config).finished_cells()

    # another version of the rule (here: another hidden size) is refused, naming the folder
    kill, epochs_run = False, []
    other = constraints.Study(tmp_path, {**config, "hidden": [5]})
    with pytest.raises(dynlearn.CheckpointMismatch, match="delete that folder"):
        other.fraction("bp", 0.5)
    assert epochs_run == [] and partial.exists()
    ds = constraints.Study(tmp_path, config).fraction("bp", 0.5)
    assert len(epochs_run) == 1 and "resumed" in ds.attrs  # the second epoch only
    reference = dynlearn.load_netcdf(study / "cells" / "bp" / "fraction-0.5.nc")
    np.testing.assert_allclose(ds.accuracy.values, reference.accuracy.values, atol=1e-6)
    assert not partial.exists()


def test_a_diverging_seed_is_nan_and_the_other_seeds_are_kept(tmp_path):
    """Seeds train vmapped; when one blows up (the engine raises) they re-run one by one;
    checkpointed (a cell's `run_dir`), the diverged seed's finished epochs are read back."""
    import equinox as eqx
    import jax

    from circuits.latent_equilibrium import LENetwork

    data = dynlearn.data.load("digits", fraction=0.5)
    nets = [
        LENetwork([64, 8, 10], jax.random.key(seed), activation="linear", eta=1.0, tau_error=0.1)
        for seed in (0, 1)
    ]
    nets[1] = eqx.tree_at(lambda n: n.weights, nets[1], [30 * w for w in nets[1].weights])
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(1.0, 0.1, streams=16))
    trained, accuracy = constraints.train(nets, data, [0, 1], 2, dynlearn.Recipe(nets[0], mode, 64))
    assert trained[0] is not None and trained[1] is None
    assert np.all(accuracy[0] > 0.3) and np.all(np.isnan(accuracy[1]))
    noisy = constraints.evaluate(trained, data.x_test, data.y_test)
    assert noisy[0] == accuracy[0, -1] and np.isnan(noisy[1])
    recipe = dynlearn.Recipe(nets[0], mode, 64)
    kept, again = constraints.train(nets, data, [0, 1], 2, recipe, run_dir=tmp_path)
    assert kept[1] is None and (tmp_path / "seed-0" / "checkpoint.eqx").exists()
    np.testing.assert_array_equal(again, accuracy)


def test_a_study_without_finished_cells_takes_new_settings(study, tmp_path):
    """A study refused or stopped before its first cell does not block the corrected
    command: with no finished cell its saved configuration is replaced; with one, a
    changed configuration is refused, and a damaged cell names itself and the fix."""
    config = json.loads((study / "study.json").read_text())
    run_dir = tmp_path / "study"
    constraints.Study(run_dir, {**config, "epochs": 5})
    corrected = constraints.Study(run_dir, config)
    assert json.loads((run_dir / "study.json").read_text()) == config
    cell = corrected.cell("bp", "noise")
    cell.parent.mkdir(parents=True)
    cell.write_bytes((study / "cells" / "bp" / "noise.nc").read_bytes()[:100])
    with pytest.raises(ValueError, match="epochs"):
        constraints.Study(run_dir, {**config, "epochs": 5})
    with pytest.raises(ValueError, match=r"noise.nc: it is damaged.*delete the cell file"):
        corrected.noise("bp")


def test_retraining_continues_an_always_on_gain_and_can_be_skipped(tmp_path):
    import jax

    from dynlearn import registry

    sizes = [64, 10, 10]
    annealed = registry.load("rules", "pc-always-on")(sizes, jax.random.key(0))
    later = constraints.continued(annealed, n_train=100, epochs=2)  # 3 batches of 32 each
    assert float(later.mode.gain(0)) == float(annealed.mode.gain(2 * 3 * 32))
    phased = registry.load("rules", "bp")(sizes, jax.random.key(0))
    assert constraints.continued(phased, 100, 2) is phased
    argv = ["--quick", "--rules", "bp", "--fractions", "1", "--sparsities", "0.9",
            "--noise-stds", "0", "--retrain-epochs", "0", "--run-dir", str(tmp_path)]  # fmt: skip
    assert constraints.main(argv) == 0
    assert "(not re-trained)" in (tmp_path / "constraints.md").read_text()


def test_gradual_pruning_and_device_columns(tmp_path):
    """`--gradual`, `--min-per-layer` and `--presets` add their cells, variables and columns;
    a study saved before these options resumes with their defaults."""
    args = [
        "--dataset", "digits", "--rules", "bp", "--hidden", "16", "--epochs", "1",
        "--seeds", "0", "--fractions", "1.0", "--sparsities", "0.9", "--noise-stds", "0",
        "--gradual", "--min-per-layer", "50", "--presets", "ideal", "soft-bounds",
        "--run-dir", str(tmp_path),
    ]  # fmt: skip
    assert constraints.main(args) == 0
    ds = dynlearn.load_netcdf(tmp_path / "constraints.nc")
    assert ds.gradual_accuracy.dims == ("rule", "sparsity", "seed")
    assert ds.device_accuracy.dims == ("rule", "preset", "seed", "epoch")
    assert list(ds.preset.values) == ["ideal", "soft-bounds"]
    assert np.all(ds.device_accuracy.sel(preset="ideal") > 0.3)  # it learns on the device
    # the minimum is kept: 10% of 1184 weights is 118, at least 50 of them in the 16x10 matrix
    np.testing.assert_allclose(ds.sparsity_reached.sel(sparsity=0.9), 1 - 118 / N_WEIGHTS)
    text = (tmp_path / "constraints.md").read_text()
    assert "gradual 90%" in text and "device soft-bounds" in text and "at least 50" in text
    config = json.loads((tmp_path / "study.json").read_text())
    for key in ("gradual", "min_per_layer", "presets"):
        del config[key]
    (tmp_path / "study.json").write_text(json.dumps(config))
    assert constraints.Study(tmp_path, {**config, **constraints.LATER_SETTINGS}).config
