"""The site check (scripts/check_site.py) catches what it is there to catch: a table, code or printed output
past the text column at 1280 px, a progress bar or a raw dict in an output, a "±" cell broken over two lines."""
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import check_site  # noqa: E402  (a script, not a package)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Skipped on a machine without Chromium, never in CI: .ci/run installs it (make chromium) before the tests, and a
# missing browser there fails these tests instead of hiding them.
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="needs Chromium (make chromium; CI installs it before the tests)")

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>t</title><link rel="icon" href="data:,">
<style>pre {{ overflow-x: auto; }} {css}</style></head><body>
<article class="bd-article" style="width: 600px; padding: 0 20px">{body}</article></body></html>"""
WIDE = "<table class='dataframe'><tr>" + "".join(f"<td>{'x' * 30}</td>" for _ in range(6)) + "</tr></table>"
NARROW = "<table class='dataframe'><tr><td>0.25 ± 0.01</td><td>0.30 ± 0.02</td></tr></table>"
CODE = "<div class='cell_input'><pre>" + "y = 1  # " + "z" * 200 + "</pre></div>"
SHORT_CODE = "<div class='cell_input'><pre>y = 1  # a comment</pre></div>"
OUTPUT = "<div class='cell_output'><pre>" + "w" * 200 + "</pre></div>"


def _check(tmp_path, body, css=""):
    """check_page's problems and moved sliders for one page holding ``body``."""
    (tmp_path / "index.html").write_text(PAGE.format(css=css, body=body))
    from playwright.sync_api import sync_playwright

    server, base = check_site.serve(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=check_site.CHROMIUM_FLAGS)
            problems, moved = check_site.check_page(browser, base, "index.html", None)
            browser.close()
    finally:
        server.shutdown()
    return problems, moved


@pytest.mark.parametrize("body, css, wide", [
    (NARROW + SHORT_CODE, "", 0),
    (NARROW + CODE, (REPO / "book" / "static" / "book.css").read_text(), 1),  # code is never wrapped
    (WIDE, "", 1),
    (OUTPUT, "", 1),
    (OUTPUT, (REPO / "book" / "static" / "book.css").read_text(), 0),  # the book's stylesheet wraps outputs
])
def test_tables_code_and_outputs_past_the_column_fail(tmp_path, body, css, wide):
    problems, moved = _check(tmp_path, body, css)
    assert sum("past the column" in p for p in problems) == wide and moved == 0, problems


PROGRESS = "<div class='cell_output'><pre>faithfulness: 45%|████▌     | 9/20 [00:03<00:04,  2.41it/s]</pre></div>"
RAW_DICT = "<div class='cell_output'><pre>{'stab_n': '500', 'seeds': 4}</pre></div>"
WRAPPED = "<table><tr><td style='width: 40px'>0.27 ± 0.25 ▲</td><td>x</td></tr></table>"
# a long cell may wrap between its intervals, never inside one (non-breaking spaces, gradlime_utils.plotting.pm)
LONG_CELL = ("<table><tr><td style='width: 120px'>" + "; ".join(["LIME 0.27\u00a0±\u00a00.25"] * 4) +
             "</td></tr></table>")
PROSE = "<p>A dict such as {'a': 1} in prose, and 10/20 [00:01 in text, are not outputs.</p>"


@pytest.mark.parametrize("body, expected", [
    (NARROW + PROSE, []),
    (PROGRESS, ["progress bar in an output"]),
    (RAW_DICT, ["raw dict printed in an output"]),
    (WRAPPED, ['"±" interval broken over two lines']),
    (LONG_CELL, []),
])
def test_progress_bars_raw_dicts_and_wrapped_intervals_fail(tmp_path, body, expected):
    problems, _ = _check(tmp_path, body)
    kinds = [p for p in problems if "past the column" not in p]
    assert len(kinds) == len(expected) and all(e in k for e, k in zip(expected, kinds)), problems
