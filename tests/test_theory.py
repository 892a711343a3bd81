"""The fast version of every theory script passes (each exits non-zero when its claim fails)."""

import importlib
import pkgutil

import pytest

import theory

SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(theory.__path__))


def test_every_script_is_registered_with_the_cli():
    from dynlearn import registry

    assert set(SCRIPTS) <= set(registry.entries("checks")), "register theory scripts in pyproject"


@pytest.mark.parametrize("name", SCRIPTS)
def test_fast_check_passes(name, tmp_path):
    module = importlib.import_module(f"theory.{name}")
    assert module.main(["--fast", "--run-dir", str(tmp_path)]) == 0
    assert (tmp_path / f"{name}.nc").stat().st_size > 0
    assert (tmp_path / f"{name}.png").stat().st_size > 0
