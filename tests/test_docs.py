"""The documentation's own code: the maths hook, and a gallery that keeps up with theory/.

(The site itself is built with `mkdocs build --strict` and opened in headless Chromium by
`.ci/run`, see the README's Documentation section.)"""

import importlib
import importlib.util
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import xarray as xr

import theory

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "gallery" / "results"


def mathml_hook():
    pytest.importorskip("latex2mathml", reason="the docs extra: pip install '.[docs]'")
    spec = importlib.util.spec_from_file_location("mathml", ROOT / "docs" / "hooks" / "mathml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page(src: str):
    return SimpleNamespace(file=SimpleNamespace(src_uri=src))


def test_arithmatex_maths_becomes_mathml():
    hook = mathml_hook()
    html = (
        '<p>rate <span class="arithmatex">\\(\\tau \\dot u = -u\\)</span></p>'
        '<div class="arithmatex">\\[E = \\tfrac{1}{2} x^2\\]</div>'
    )
    out = hook.on_page_content(html, page("api/engine.md"), None, None)
    assert "arithmatex" not in out and "\\(" not in out and "\\[" not in out
    assert out.count("<math") == 2 and 'display="block"' in out and "&#x003C4;" in out


def test_notebook_dollars_become_mathml_but_code_and_prices_stay():
    hook = mathml_hook()
    html = (
        "<p>the flow $\\dot x = -x$ and</p><p>$$E = x^2$$</p>"
        "<pre>a = '$x$'</pre><p>costs $5 and $6</p>"
    )
    out = hook.on_page_content(html, page("tutorials/01.py"), None, None)
    assert out.count("<math") == 2
    assert "<pre>a = '$x$'</pre>" in out and "costs $5 and $6" in out
    markdown_page = hook.on_page_content(html, page("guide/data.md"), None, None)
    assert markdown_page == html  # Markdown pages' $ are arithmatex's business


SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(theory.__path__))


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_gallery_holds_a_passing_result_of_every_theory_script(name):
    """A new or reworded claim needs `python docs/gallery/refresh.py NAME` (the gallery
    shows the stored Dataset, which must be the script's current claim)."""
    path = RESULTS / f"{name}.nc"
    assert path.exists(), f"no gallery result for theory/{name}.py: run docs/gallery/refresh.py"
    assert (RESULTS / f"{name}.png").exists()
    module = importlib.import_module(f"theory.{name}")
    with xr.open_dataset(path) as ds:
        assert ds.attrs["claim"] == module.CLAIM, f"{name}: refresh the gallery's result"
        assert int(ds.attrs["passed"]) == 1


def test_the_hardware_summary_reads_only_stored_cells_and_the_complete_sweeps(tmp_path):
    """The gallery's hardware page is assembled from stored cells without computing any: a
    missing preset stays NaN and is named, and the rules with both sweeps stored (whether or
    not they have device cells) join the sweep variables (laid out as `dynlearn run
    hardware` assembles them)."""
    import json

    import numpy as np

    import dynlearn

    spec = importlib.util.spec_from_file_location("refresh", ROOT / "docs/gallery/refresh.py")
    refresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(refresh)
    config = {"dataset": "mnist", "hidden": [100], "seeds": [0, 1], "epochs": 2,
              "levels": [8, 16], "c2c": [0.0, 0.1]}  # fmt: skip
    (tmp_path / "study.json").write_text(json.dumps(config))
    curve = xr.Dataset({"accuracy": (("seed", "epoch"), [[0.5, 0.9], [0.7, 0.8]])})
    for rule, presets in (("bp", ["none", *dynlearn.hardware.PRESETS]), ("fa", ["none"])):
        for preset in presets:
            dynlearn.save_netcdf(curve, tmp_path / "cells" / rule / f"preset-{preset}.nc")
    for rule, axes in (("bp", ["levels", "c2c"]), ("fa", ["levels"]), ("pc", ["levels", "c2c"])):
        for axis in axes:
            sweep = xr.Dataset({"accuracy": ((axis, "seed"), [[0.5, 0.7], [0.8, 0.9]])})
            dynlearn.save_netcdf(sweep, tmp_path / "cells" / rule / f"sweep-{axis}.nc")

    ds = refresh.hardware_summary(tmp_path)
    # pc has sweeps only: a sweep rule, not a row of the presets table
    assert list(ds.rule.values) == ["bp", "fa"] and list(ds.sweep_rule.values) == ["bp", "pc"]
    np.testing.assert_allclose(ds.final_accuracy_mean.sel(rule="bp"), 0.85)
    assert np.isnan(ds.final_accuracy_mean.sel(rule="fa", preset="ideal"))
    assert ds.measured.sel(rule="fa").values.tolist() == [1, 0, 0, 0, 0]
    assert "fa/ideal" in ds.attrs["cells_missing"] and "bp/" not in ds.attrs["cells_missing"]
    assert ds.levels_accuracy.sel(sweep_rule="bp", levels=16).values.tolist() == [0.8, 0.9]
    assert list(ds.c2c.values) == [0.0, 0.1] and "units" in ds.c2c_accuracy.attrs
