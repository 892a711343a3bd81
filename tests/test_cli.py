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
