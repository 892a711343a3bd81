"""The `dynlearn` command, run in-process."""

import os
import stat

import numpy as np
import pytest
from typer.testing import CliRunner

import dynlearn
from dynlearn.cli import app

runner = CliRunner()


def test_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output


DEMO_RULES = ["bp", "le", "pc"]  # one per mode; tests/test_rules.py trains every rule


def test_demo_quick_trains_rules_runs_a_check_and_writes_its_results(tmp_path):
    """Also: every file it writes describes its variables in CF terms (units UDUNITS can
    read, long names) and says where it comes from; every figure passed the house-style
    lint (pyproject turns `FigureWarning` into an error) and has a vector copy on request."""
    cf_units = pytest.importorskip("cf_xarray.units").units
    result = runner.invoke(
        app,
        ["demo", "--quick", "--runs", str(tmp_path), "--figure-formats", "png,svg"]
        + [arg for rule in DEMO_RULES for arg in ("--rules", rule)],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    assert str(run_dir.name) in result.output.replace("\n", "")
    assert sorted(p.name for p in run_dir.glob("rule-*.nc")) == [f"rule-{r}.nc" for r in DEMO_RULES]
    for rule in DEMO_RULES:
        assert f"{rule} " in result.output, rule
        metrics = dynlearn.load_netcdf(run_dir / f"rule-{rule}.nc")
        assert metrics.sizes["epoch"] == 1 and 0 <= float(metrics.test_accuracy[0]) <= 1
    assert "delta_rule" in result.output and "PASS" in result.output
    assert "hopfield" in result.output and "leaky" in result.output
    for name in ("rules.png", "delta_rule.nc", "delta_rule.png", "hopfield.nc", "leaky.png"):
        assert (run_dir / name).stat().st_size > 0, name
    energy = dynlearn.load_netcdf(run_dir / "hopfield.nc").energy.values
    assert energy[0] > energy[-1] and np.all(np.diff(energy) <= 1e-6)
    umask = os.umask(0)
    os.umask(umask)
    for path in run_dir.glob("*.nc"):  # every file says where it comes from, readable as usual
        ds = dynlearn.load_netcdf(path)
        assert {"created", "command", "versions", "code_revision"} <= set(ds.attrs), path.name
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name
        assert dynlearn.missing_metadata(ds) == [], path.name
        for var in ds.variables.values():
            if "units" in var.attrs:
                cf_units.parse_units(var.attrs["units"])
        for key, value in ds.attrs.items():  # native types, no JSON in disguise
            assert not (isinstance(value, str) and value[:1] in "{["), (path.name, key)
    pngs = sorted(p.stem for p in run_dir.glob("*.png"))
    assert pngs and pngs == sorted(p.stem for p in run_dir.glob("*.svg"))


def test_demo_rejects_an_unknown_check_before_training(tmp_path):
    result = runner.invoke(app, ["demo", "--checks", "nope", "--runs", str(tmp_path)])
    assert result.exit_code == 2 and "unknown ['nope']" in result.output
    assert not list(tmp_path.iterdir())
    result = runner.invoke(app, ["demo", "--figure-formats", "gif", "--runs", str(tmp_path)])
    assert result.exit_code == 2 and "--figure-formats: unknown figure formats" in result.output
    result = runner.invoke(
        app, ["demo", "--rules", "bp", "--rules", "nope", "--runs", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--rules: unknown ['nope']" in result.output
    assert not list(tmp_path.iterdir())


def test_demo_exits_non_zero_when_a_check_fails(tmp_path, monkeypatch):
    from dynlearn import cli

    fake = {"rules": {"r": None}, "checks": {"x": None}}
    monkeypatch.setattr(cli.registry, "entries", lambda group: fake.get(group, {}))
    monkeypatch.setattr(cli, "train_rules", lambda *args, **kwargs: [])
    monkeypatch.setattr(
        cli, "run_checks", lambda names, run_dir: [{"check": "x", "passed": False, "seconds": 0}]
    )
    result = runner.invoke(app, ["demo", "--checks", "x", "--runs", str(tmp_path)])
    assert result.exit_code == 1 and "FAIL" in result.output


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


def test_a_user_error_is_one_line_and_exit_code_2(capsys, tmp_path):
    from dynlearn.cli import main

    (tmp_path / "file").write_text("")
    code = main(["demo", "--runs", str(tmp_path / "file" / "runs")])
    out = capsys.readouterr().out
    assert code == 2
    assert "error: root: cannot make a folder at" in out and "is a file" in out
    assert "Traceback" not in out and "--debug" in out


def test_an_option_out_of_range_is_a_usage_error_before_any_work(capsys, tmp_path):
    from dynlearn.cli import main

    code = main(["run", "bp", "--epochs", "0", "--run-dir", str(tmp_path / "bp")])
    assert code == 2
    assert "argument --epochs: must be >= 1; got 0" in capsys.readouterr().err
    assert not (tmp_path / "bp").exists()  # nothing left behind by a refused run


def test_debug_shows_the_original_exception(tmp_path):
    import pytest

    from dynlearn.cli import main

    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="root: cannot make a folder"):
        main(["demo", "--runs", str(tmp_path / "file"), "--debug"])


def test_help_after_a_name_is_that_experiments_or_benchmarks(capsys):
    from dynlearn.cli import main

    assert main(["run", "bp", "--help"]) == 0
    assert "usage: dynlearn run bp" in capsys.readouterr().out
    assert main(["bench", "pc", "--help"]) == 0
    assert "usage: dynlearn bench pc" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: dynlearn run" in out and "pc-vs-bp" in out


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path):
    """`run_folder` makes the folder at once (its name is printed), but a process that
    fails before writing into it leaves nothing behind; a folder that was written keeps its
    files."""
    import subprocess
    import sys

    script = (
        "import sys, dynlearn; empty = dynlearn.run_folder(sys.argv[1], 'failed'); "
        "(empty / 'sub').mkdir(); kept = dynlearn.run_folder(sys.argv[1], 'kept'); "
        "(kept / 'a.txt').write_text('x'); raise SystemExit(3)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)])
    assert done.returncode == 3
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == ["kept"]
