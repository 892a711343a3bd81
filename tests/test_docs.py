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
