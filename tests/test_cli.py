"""The `dynlearn` command, run in-process."""

import numpy as np
from typer.testing import CliRunner

import dynlearn
from dynlearn.cli import app

runner = CliRunner()


def test_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output


def test_demo_quick_writes_datasets_and_figures(tmp_path):
    result = runner.invoke(app, ["demo", "--quick", "--runs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "hopfield" in result.output and "leaky" in result.output
    (run_dir,) = tmp_path.iterdir()
    for name in ("hopfield.nc", "hopfield.png", "leaky.nc", "leaky.png"):
        assert (run_dir / name).stat().st_size > 0, name
    energy = dynlearn.load_netcdf(run_dir / "hopfield.nc").energy.values
    assert energy[0] > energy[-1] and np.all(np.diff(energy) <= 1e-6)


def test_unknown_benchmark():
    result = runner.invoke(app, ["bench", "nope"])
    assert result.exit_code == 2 and "registered" in result.output


def test_data_list():
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    for name in ("digits", "mnist5k", "mnist1d", "yinyang", "mnist", "fashion_mnist"):
        assert name in result.output


def test_listings_and_unknown_names():
    for command in (["run"], ["check"], ["bench"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    assert "pc-vs-bp" in runner.invoke(app, ["run"]).output
    assert "pc_zil" in runner.invoke(app, ["check"]).output
    result = runner.invoke(app, ["run", "nope"])
    assert result.exit_code == 2 and "unknown experiment 'nope'" in result.output


def test_check_runs_a_fast_theory_check(tmp_path):
    result = runner.invoke(app, ["check", "pc_zil", "--fast", "--run-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and (tmp_path / "pc_zil.nc").exists()


def test_help_on_every_command():
    for command in ("demo", "run", "check", "bench", "data"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_run_bp_trains_briefly(tmp_path):
    args = [
        "run",
        "bp",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--no-progress",
        "--run-dir",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "metrics.nc").exists() and (tmp_path / "learning_curves.png").exists()
