"""MkDocs hook: LaTeX maths in the built pages becomes MathML (rendered natively by browsers).

`pymdownx.arithmatex` (generic mode) wraps `$...$` and `$$...$$` of Markdown pages and
docstrings in `<span class="arithmatex">\\(...\\)</span>` / `<div class="arithmatex">\\[...\\]
</div>`; notebook pages (the tutorials) keep `$...$` as text. Both are converted here with
`latex2mathml`, so the site needs no JavaScript and no network to show equations.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_ARITHMATEX = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*'
    r"\\(?P<open>[\(\[])(?P<tex>.*?)\\[\)\]]\s*</(?P=tag)>",
    re.DOTALL,
)
# Outside <pre>, <code> and <script>: $$display$$ and $inline$ (not "$ 5" or "5$").
_PROTECTED = re.compile(r"(<(pre|code|script|style)\b.*?</\2>)", re.DOTALL)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
_INLINE = re.compile(r"(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])")


def mathml(tex: str, display: bool) -> str:
    """`tex` (HTML-escaped as it comes out of Markdown) as a MathML element."""
    return convert(html.unescape(tex).strip(), display="block" if display else "inline")


def _replace_arithmatex(match: re.Match) -> str:
    return mathml(match["tex"], display=match["open"] == "[")


def _replace_dollars(text: str) -> str:
    parts = _PROTECTED.split(text)
    out = []
    skip = 0
    for part in parts:
        if skip:  # the group captured by _PROTECTED's inner (pre|code|...) name
            skip -= 1
            continue
        if _PROTECTED.fullmatch(part):
            out.append(part)
            skip = 1
            continue
        part = _DISPLAY.sub(lambda m: mathml(m[1], True), part)
        part = _INLINE.sub(lambda m: mathml(m[1], False), part)
        out.append(part)
    return "".join(out)


def on_page_content(html_text: str, page, config, files) -> str:
    html_text = _ARITHMATEX.sub(_replace_arithmatex, html_text)
    if page.file.src_uri.endswith((".py", ".ipynb")):
        html_text = _replace_dollars(html_text)
    return html_text
