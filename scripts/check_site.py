"""Check every page of the built book in headless Chromium, served from 127.0.0.1.

Per page: every <img> loaded, zero console errors, zero failed requests, zero requests leaving
127.0.0.1, no traceback or error output in executed cells, math typeset where there is math, widgets
rendered where there are widgets, and nothing hidden past the text column at 1280 px: no table, no code,
no printed output and no shell command wider than the column (a chapter's code lines stay within 88
characters, which tests/test_packaging.py holds); no progress bar or raw Python dict in an output, and no table
cell whose "±" breaks over two lines. One screenshot per page. Exit status 1 if any page fails. The student
edition under student/ is the same pages without the solutions and is left out (its build is checked by -W).
"""
from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_SCHEMES = {"data", "blob", "about"}
SKIP_DIRS = {"_static", "_sources", "_images", "reports", "_sphinx_design_static", "student"}

PAGE_PROBE = """() => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  const outputs = [...document.querySelectorAll('.cell_output, .output')];
  const errorOutputs = outputs.filter(o => o.matches('.error, .traceback, .stderr') ||
      o.querySelector('.error, .traceback, .stderr') ||
      /Traceback \\(most recent call last\\)|Error:\\s/.test(o.innerText)).length;
  const article = document.querySelector('article') || document.body;
  const hasMath = article.querySelector('.math, div.math, span.math') !== null;
  const mathRendered = document.querySelectorAll('mjx-container').length;
  const widgetViews = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const widgetsRendered = document.querySelectorAll('.widget-inline-hbox, .jupyter-widgets, .widget-box, .widget-image').length;
  return {images: imgs.length, broken, errorOutputs, hasMath, mathRendered, widgetViews, widgetsRendered,
          title: document.title};
}"""


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the browser's own checks report problems
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html") if not SKIP_DIRS.intersection(p.relative_to(root).parts))


# Sphinx's generated indexes lay out their own multi-column tables.
WIDTH_EXEMPT = {"genindex.html", "py-modindex.html", "search.html"}
WIDTH_PROBE = """() => {
  const art = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
  const box = art.getBoundingClientRect();
  const edge = box.right - parseFloat(getComputedStyle(art).paddingRight);
  const text = e => e.innerText.replace(/\\s+/g, ' ').trim().slice(0, 60);
  const wide = [];
  for (const t of art.querySelectorAll('table')) {
    if (t.offsetParent === null) continue;
    const past = Math.max(t.getBoundingClientRect().right - edge, t.parentElement.scrollWidth - t.parentElement.clientWidth);
    if (past > 1) wide.push(`table ${Math.round(past)} px past the column: ${text(t)}`);
  }
  for (const p of art.querySelectorAll('pre')) {
    if (p.offsetParent === null || p.scrollWidth - p.clientWidth <= 1) continue;
    const kind = p.closest('.cell_input, .highlight-python, .highlight-ipython3') ? 'code' : 'output or command';
    wide.push(`${kind} ${p.scrollWidth - p.clientWidth} px past the column: ${text(p)}`);
  }
  return wide;
}"""

# What a reader should never see on a page: a progress bar or a raw Python dict printed by a cell, and a table cell
# with a "±" whose text breaks over two lines (a number and its interval torn apart).
CONTENT_PROBE = """() => {
  const art = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
  const found = [];
  const text = e => e.innerText.replace(/\\s+/g, ' ').trim().slice(0, 60);
  for (const o of art.querySelectorAll('.cell_output, .output')) {
    if (o.parentElement && o.parentElement.closest('.cell_output, .output')) continue;
    const t = o.innerText;
    if (/\\d+%\\|[^|\\n]*\\||\\d+\\/\\d+ \\[\\d+:\\d+|\\d\\s?(it|s)\\/(s|it)\\]/.test(t))
      found.push(`progress bar in an output: ${text(o)}`);
    if (/\\{'[^'\\n]{1,40}': /.test(t)) found.push(`raw dict printed in an output: ${text(o)}`);
  }
  // in a table cell, every "number ± number" must sit on one line (the rest of a long cell may wrap)
  const pattern = /[-+−]?\\d[\\d.,]*[\\s\\u00a0]*±[\\s\\u00a0]*\\d[\\d.,]*/g;
  for (const cell of art.querySelectorAll('td, th')) {
    if (cell.offsetParent === null || !cell.innerText.includes('±')) continue;
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(pattern)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (tops.size > 1) found.push(`"±" interval broken over two lines in a table cell: ${m[0]} (${text(cell)})`);
      }
    }
  }
  return found;
}"""

VISIBLE_WIDGET_IMAGES = """() => [...document.querySelectorAll('img.widget-image, .widget-image img, .jupyter-widgets img')]
    .filter(i => i.offsetParent !== null && i.getBoundingClientRect().width > 0).map(i => i.src)"""


def check_sliders(page) -> tuple[list[str], int]:
    """Move every widget slider one step with the keyboard; the figure it drives must change.

    This is what a reader of the static book does, with no Python kernel behind the page. A slider with a
    single position (a parameter a profile fixes, shown disabled) has nowhere to move and is not counted.
    """
    problems, moved = [], 0
    handles = page.locator(".widget-slider .noUi-handle, .jupyter-widgets .noUi-handle")
    for i in range(handles.count()):
        handle = handles.nth(i)
        if handle.get_attribute("aria-valuemin") == handle.get_attribute("aria-valuemax"):
            continue
        moved += 1
        handle.scroll_into_view_if_needed()
        before = page.evaluate(VISIBLE_WIDGET_IMAGES)
        now = handle.get_attribute("aria-valuenow")
        at_max = now is not None and now == handle.get_attribute("aria-valuemax")
        handle.focus()
        page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
        page.wait_for_timeout(300)
        after = page.evaluate(VISIBLE_WIDGET_IMAGES)
        if not before:
            problems.append(f"slider {i}: no widget image visible next to it")
        elif before == after:
            problems.append(f"slider {i}: moving it did not change the displayed figure")
    return problems, moved


def check_page(browser, base: str, rel: str, shot: Path | None) -> tuple[list[str], int]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    origin = urlparse(base).netloc
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text[:300]}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {str(e)[:300]}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))

    def on_request(request):
        url = urlparse(request.url)
        if url.scheme not in LOCAL_SCHEMES and url.netloc != origin:
            problems.append(f"external request: {request.url}")

    def on_response(response):
        if response.status >= 400:
            problems.append(f"HTTP {response.status}: {response.url}")

    page.on("request", on_request)
    page.on("response", on_response)
    page.goto(f"{base}/{rel}", wait_until="networkidle", timeout=60_000)
    page.wait_for_timeout(800)  # MathJax and the widget manager render after load
    info = page.evaluate(PAGE_PROBE)
    if info["broken"]:
        problems.append(f"images not loaded: {info['broken']}")
    if info["errorOutputs"]:
        problems.append(f"{info['errorOutputs']} cell output(s) with an error or traceback")
    if info["hasMath"] and not info["mathRendered"]:
        problems.append("math present but MathJax rendered nothing")
    if info["widgetViews"] and not info["widgetsRendered"]:
        problems.append(f"{info['widgetViews']} widget view(s) embedded but none rendered")
    if rel.split("/")[-1] not in WIDTH_EXEMPT:
        problems += page.evaluate(WIDTH_PROBE)
    problems += page.evaluate(CONTENT_PROBE)
    slider_problems, moved = check_sliders(page)
    problems += slider_problems
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    page.close()
    return problems, moved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--require-sliders", default="notebooks/*.html",
                        help="pages (a glob relative to html_dir) that must each have at least one working slider")
    args = parser.parse_args(argv)
    if not (args.html_dir / "index.html").is_file():
        print(f"{args.html_dir} holds no built book (index.html missing)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    server, base = serve(args.html_dir)
    failures = 0
    all_pages = pages(args.html_dir)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
            for path in all_pages:
                rel = path.relative_to(args.html_dir).as_posix()
                shot = args.screenshots / (rel.replace("/", "__")[:-5] + ".png") if args.screenshots else None
                problems, moved = check_page(browser, base, rel, shot)
                if fnmatch.fnmatch(rel, args.require_sliders) and moved == 0:
                    problems.append("no slider moved: every chapter has at least one slider that must respond")
                print(f"{'FAIL' if problems else 'ok  '} {rel}" + (f" ({moved} sliders moved)" if moved else ""))
                for p in problems:
                    print(f"       {p}")
                failures += bool(problems)
            browser.close()
    finally:
        server.shutdown()
    print(f"{len(all_pages) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
