"""Check that the built documentation site renders in a real browser (headless Chromium).

    mkdocs build --strict && python docs/check_site.py            # checks ./site
    python docs/check_site.py --site /tmp/site --browser /usr/bin/chromium

The built directory is served over http by a local server (in a thread, on a free port) and
four pages are opened in headless Chromium through selenium: the home page, an API page with
equations (`api/engine/`), one tutorial page and one gallery page (the first under
`tutorials/` and `gallery/` other than their index, preferring pages that contain maths or
images). Each must

- load (HTTP 200) with a non-empty title and a non-empty main article;
- show every image: each `<img>` is complete with `naturalWidth > 0` (lazy images are made
  eager first), measured by the browser;
- show its maths: no raw LaTeX left in the visible text (`\\(`, `\\[`, `$$`, `$\\cmd`), no
  unconverted command or alignment `&` inside a `<math>` element (latex2mathml passes
  unknown commands through as text, and `aligned`'s `&`: use `array`), and every visible
  `<math>` element laid out by the browser (a bounding box of positive width and height).
  The API page must contain at least one; a tutorial's maths is checked when it has some.

Exit status 0 when every check passes, 1 when one fails (the report names the page and the
check), 2 when the site, the browser or its driver cannot be found. A tutorial or gallery page
that does not exist yet is reported as MISSING and fails, unless `--allow-missing` is given.

Needs `selenium` (the `docs` extra) and a Chromium with its driver; on Debian/Ubuntu
`apt-get install chromium chromium-driver`. No network is needed: selenium is given the driver
explicitly, and requests that leave the local server (web fonts) fail without harm.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
DRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
INSTALL_HINT = (
    "install them with `apt-get install chromium chromium-driver` (Debian/Ubuntu), or pass "
    "--browser PATH and --driver PATH"
)

# Everything one page needs, measured in the browser in one call.
_MEASURE = r"""
const article = document.querySelector("article.md-content__inner")
    || document.querySelector("main article") || document.querySelector("article")
    || document.querySelector("main") || document.querySelector("[role=main]");
let text = "";
if (article) {
    const copy = article.cloneNode(true);
    copy.querySelectorAll("pre, code, script, style, math, .headerlink").forEach(e => e.remove());
    text = (copy.innerText || copy.textContent || "");
}
const images = Array.from(document.images).map(img => ({
    src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth,
}));
const maths = Array.from(document.querySelectorAll("math")).map(m => {
    const box = m.getBoundingClientRect();
    const style = window.getComputedStyle(m);
    let hidden = false;
    for (let e = m; e; e = e.parentElement) {
        const s = window.getComputedStyle(e);
        if (s.display === "none" || s.visibility === "hidden") { hidden = true; break; }
        if (e.tagName === "DETAILS" && !e.open && e !== m) { hidden = true; break; }
    }
    return {width: box.width, height: box.height, hidden: hidden, display: style.display,
            text: (m.textContent || "").trim().slice(0, 80),
            error: m.querySelector("merror") !== null};
});
return {title: document.title, hasArticle: article !== null,
        articleText: article ? (article.innerText || "").trim().length : 0,
        visibleText: text, images: images, maths: maths};
"""

_EAGER_IMAGES = """
document.querySelectorAll("img[loading=lazy]").forEach(img => { img.loading = "eager"; });
"""
_IMAGES_SETTLED = "return Array.from(document.images).every(img => img.complete);"

_RAW_TEX = (
    ("\\(", "raw inline LaTeX delimiter \\("),
    ("\\[", "raw display LaTeX delimiter \\["),
    ("$$", "raw display LaTeX delimiter $$"),
)


@dataclass
class Result:
    label: str
    path: str | None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: bool = False


def find_browser(explicit: str | None) -> str:
    if explicit:
        found = shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
        if not found:
            raise SystemExit(f"check_site: browser {explicit!r} not found; {INSTALL_HINT}.")
        return found
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    names = ", ".join(BROWSERS)
    raise SystemExit(f"check_site: no Chromium/Chrome found ({names}); {INSTALL_HINT}.")


def find_driver(explicit: str | None) -> str:
    candidates = [explicit] if explicit else [shutil.which("chromedriver"), *DRIVER_PATHS]
    for path in candidates:
        if path and Path(path).is_file():
            return path
    what = f"chromedriver {explicit!r} not found" if explicit else "no chromedriver found"
    raise SystemExit(f"check_site: {what}; {INSTALL_HINT}.")


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `site` on a free local port from a daemon thread; returns (server, base URL)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the report readable
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            if not isinstance(sys.exc_info()[1], ConnectionError):  # the browser hung up
                super().handle_error(request, client_address)

    handler = functools.partial(Quiet, directory=str(site))
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def pick_page(site: Path, section: str) -> str | None:
    """The first built page under `section/` other than its index (and the navigation's
    SUMMARY), preferring one with maths, then one with images; None if there is none."""
    pages = sorted(
        p
        for p in (site / section).rglob("*.html")
        if p.relative_to(site / section).as_posix() != "index.html"
        and "SUMMARY" not in p.relative_to(site).parts
    )
    if not pages:
        return None
    for marker in ("<math", "<img"):
        for page in pages:
            if marker in page.read_text(encoding="utf-8", errors="replace"):
                return _url_path(site, page)
    return _url_path(site, pages[0])


def _url_path(site: Path, page: Path) -> str:
    rel = page.relative_to(site).as_posix()
    return rel[: -len("index.html")] if rel.endswith("/index.html") else rel


def make_driver(browser: str, driver_path: str, width: int = 1280, height: int = 1024):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise SystemExit(
            "check_site: selenium is not installed; `pip install selenium` (the docs extra)."
        ) from None
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as err:  # selenium's errors say what the driver or browser reported
        raise SystemExit(
            f"check_site: could not start {browser} with {driver_path}: {err}\n{INSTALL_HINT} "
            "(the browser and the driver must have the same major version)."
        ) from None
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def check_page(driver, base: str, result: Result, maths: str, timeout: float) -> None:
    """Load one page and record its failures. `maths`: "required", "if-any"."""
    from selenium.webdriver.support.ui import WebDriverWait

    url = base + result.path
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    if status != 200:
        result.failures.append(f"HTTP {status} for {url}")
        return
    driver.get(url)
    driver.execute_script(_EAGER_IMAGES)
    try:
        WebDriverWait(driver, timeout).until(lambda d: d.execute_script(_IMAGES_SETTLED))
    except Exception:
        pass  # the images still loading are reported below
    page = driver.execute_script(_MEASURE)

    if not page["title"].strip():
        result.failures.append("the page has no title")
    if not page["hasArticle"]:
        result.failures.append("no main article element")
    elif page["articleText"] == 0:
        result.failures.append("the main article is empty")
    result.notes.append(f"title {page['title'].strip()!r}, article {page['articleText']} chars")

    images = page["images"]
    broken = [img for img in images if not (img["complete"] and img["width"] > 0)]
    for img in broken:
        state = "not loaded" if not img["complete"] else "broken (naturalWidth 0)"
        result.failures.append(f"missing image, {state}: {_short(img['src'])}")
    result.notes.append(f"{len(images)} images, {len(images) - len(broken)} shown")

    text = page["visibleText"]
    for needle, what in _RAW_TEX:
        where = text.find(needle)
        if where >= 0:
            context = text[max(0, where - 30) : where + 50]
            result.failures.append(f"{what} in the text: ...{context!r}")
    raw_inline = re.search(r"\$\\[A-Za-z]+", text)
    if raw_inline:
        start = raw_inline.start()
        result.failures.append(f"raw inline LaTeX in the text: ...{text[start : start + 60]!r}")

    found = page["maths"]
    visible = [m for m in found if not m["hidden"]]
    laid_out = [m for m in visible if m["width"] > 0 and m["height"] > 0]
    for m in found:
        if m["error"]:
            result.failures.append(f"<merror> in a <math> element: {m['text']!r}")
        elif re.search(r"\\[A-Za-z]+", m["text"]):
            result.failures.append(f"unconverted TeX command inside <math>: {m['text']!r}")
        elif "&" in m["text"]:  # latex2mathml leaves aligned's & as text (array works)
            result.failures.append(f"alignment & left as text inside <math>: {m['text']!r}")
    for m in visible:
        if not (m["width"] > 0 and m["height"] > 0):
            result.failures.append(
                f"<math> not laid out (box {m['width']:.0f}x{m['height']:.0f}): {m['text']!r}"
            )
    if maths == "required" and not laid_out:
        result.failures.append(
            f"no rendered <math> element ({len(found)} found, {len(visible)} visible)"
        )
    if found or maths == "required":
        result.notes.append(f"{len(found)} <math> elements, {len(laid_out)} laid out")


def _short(src: str, n: int = 100) -> str:
    return src if len(src) <= n else src[: n - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", default="site", help="the built site directory (default: site)")
    parser.add_argument("--browser", help="Chromium/Chrome executable (default: found on PATH)")
    parser.add_argument("--driver", help="chromedriver executable (default: found on PATH)")
    parser.add_argument(
        "--api-page", default="api/engine/", help="the API page with maths (default: api/engine/)"
    )
    parser.add_argument("--tutorial-page", help="the tutorial page (default: picked from the site)")
    parser.add_argument("--gallery-page", help="the gallery page (default: picked from the site)")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="a missing tutorial or gallery page is a warning, not a failure",
    )
    parser.add_argument("--timeout", type=float, default=30, help="seconds per page (default 30)")
    args = parser.parse_args(argv)

    site = Path(args.site)
    if not (site / "index.html").is_file():
        print(f"check_site: {site}/index.html not found; build the site first (mkdocs build).")
        return 2
    try:
        browser = find_browser(args.browser)
        driver_path = find_driver(args.driver)
    except SystemExit as err:
        print(err)
        return 2

    api = args.api_page.lstrip("/")
    results = [
        (Result("home", ""), "if-any"),
        (Result("api", api), "required"),
        (Result("tutorial", args.tutorial_page or pick_page(site, "tutorials")), "if-any"),
        (Result("gallery", args.gallery_page or pick_page(site, "gallery")), "if-any"),
    ]
    for result, _ in results:
        if result.path is None:
            result.missing = True
            continue
        result.path = result.path.lstrip("/")
        built = site / result.path
        if not (built / "index.html" if built.is_dir() else built).is_file():
            result.missing = True

    server, base = serve(site)
    try:
        try:
            driver = make_driver(browser, driver_path)
        except SystemExit as err:
            print(err)
            return 2
        try:
            for result, maths in results:
                if not result.missing:
                    check_page(driver, base, result, maths, args.timeout)
        finally:
            driver.quit()
    finally:
        server.shutdown()
        server.server_close()

    print(f"check_site: {site} in {Path(browser).name} (headless)")
    failed = 0
    for result, _ in results:
        if result.missing:
            where = {"tutorial": "tutorials/", "gallery": "gallery/"}.get(result.label)
            allowed = args.allow_missing and where is not None
            what = f"{result.path} was not built" if result.path else f"no page under {where}"
            print(f"  {'MISSING':8} {result.label}: {what}{' (allowed)' if allowed else ''}")
            if not allowed:
                failed += 1
            continue
        status = "FAIL" if result.failures else "ok"
        page = result.path or "index.html"
        print(f"  {status:8} {result.label}: {page}  ({'; '.join(result.notes)})")
        for failure in result.failures:
            print(f"           - {failure}")
        failed += bool(result.failures)
    print(f"check_site: {'all pages pass' if not failed else f'{failed} page(s) failed'}.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
