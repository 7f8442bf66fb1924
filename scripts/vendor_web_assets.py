"""Vendor the JavaScript the published book needs, from npm at pinned versions, into ``_vendor/``.

Out of the box the built pages load MathJax, require.js and the ipywidgets html-manager from CDNs,
so offline (a classroom, a laptop on a train) math shows as raw TeX and widgets are blank. This
script fetches the pinned npm tarballs with ``npm pack`` and copies only the files the pages use.
It is idempotent: a ``_vendor/VERSIONS`` file that matches skips the work.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

COMPAT_VERSION = 2  # bump when BOOK_COMPAT or REQUIRE_CONFIG change, so the stamp forces a refresh
PACKAGES = {
    "mathjax": "3.2.2",
    "requirejs": "2.3.8",
    "@jupyter-widgets/html-manager": "1.0.15",  # renders ipywidgets 8.1 widget state
}

# Map the AMD module ids defined in embed-amd.js to this folder, so that webpack's public path
# (derived from the module URI) points here and the icon fonts load locally instead of 404ing.
REQUIRE_CONFIG = """\
(function () {
  var src = document.currentScript ? document.currentScript.src : "";
  var base = src.substring(0, src.lastIndexOf("/") + 1);
  var bundle = base + "embed-amd";
  require.config({
    paths: {
      "@jupyter-widgets/base": bundle,
      "@jupyter-widgets/base7": bundle,
      "@jupyter-widgets/controls": bundle,
      "@jupyter-widgets/controls7": bundle,
      "@jupyter-widgets/html-manager": bundle,
      "@jupyter-widgets/html-manager/dist/libembed-amd": bundle
    }
  });
})();
"""

# Loaded by every page before MathJax and the widget manager (html_js_files).
# 1. The book theme replaces <i> icons through Font Awesome's mutation observer, which breaks widgets
#    that render icons (Play, buttons): switch the observer off.
# 2. html-manager 1.0.15 typesets widget labels with MathJax 2's `MathJax.Hub.Queue`; the book loads
#    MathJax 3, which has no Hub, so every labelled widget threw "reading 'Queue'". Give whatever object
#    becomes window.MathJax a Hub.Queue that forwards "Typeset" jobs to MathJax 3's typesetPromise.
BOOK_COMPAT = """\
window.FontAwesomeConfig = Object.assign({}, window.FontAwesomeConfig, {observeMutations: false});
(function () {
  function withHub(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      mj.Hub = {Queue: function () {
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          var mj3 = window.MathJax;
          if (Array.isArray(job) && job[0] === "Typeset" && mj3 && mj3.typesetPromise) {
            mj3.typesetPromise(job[2] ? [job[2]] : undefined).catch(function () {});
          }
        }
      }};
    }
    return mj;
  }
  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {configurable: true, enumerable: true,
    get: function () { return current; }, set: function (value) { current = withHub(value); }});
})();
"""


def _unpack(spec: str, workdir: Path) -> Path:
    out = subprocess.run(["npm", "pack", "--silent", spec], cwd=workdir, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    dest = workdir / out.replace(".tgz", "")
    with tarfile.open(workdir / out) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package"


def vendor(target: Path) -> None:
    stamp = target / "VERSIONS"
    wanted = json.dumps({**PACKAGES, "compat": COMPAT_VERSION}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == wanted:
        print(f"{target}: vendored assets up to date")
        return
    if shutil.which("npm") is None:
        sys.exit("npm is needed to vendor MathJax, require.js and the widget manager (apt-get install npm)")
    if target.exists():
        shutil.rmtree(target)
    (target / "widgets").mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mathjax = _unpack(f"mathjax@{PACKAGES['mathjax']}", tmp)
        (target / "mathjax").mkdir()
        shutil.copy(mathjax / "es5" / "tex-mml-chtml.js", target / "mathjax" / "tex-mml-chtml.js")
        shutil.copytree(mathjax / "es5" / "output" / "chtml" / "fonts" / "woff-v2",
                        target / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2")
        shutil.copy(mathjax / "LICENSE", target / "mathjax" / "LICENSE")
        requirejs = _unpack(f"requirejs@{PACKAGES['requirejs']}", tmp)
        shutil.copy(requirejs / "require.js", target / "widgets" / "require.js")
        manager = _unpack(f"@jupyter-widgets/html-manager@{PACKAGES['@jupyter-widgets/html-manager']}", tmp)
        for f in (manager / "dist").iterdir():
            if f.suffix in {".woff2", ".woff", ".ttf", ".eot", ".svg"} or f.name in {"embed-amd.js", "embed.js.LICENSE.txt"}:
                shutil.copy(f, target / "widgets" / f.name)
    (target / "widgets" / "require-config.js").write_text(REQUIRE_CONFIG)
    (target / "book-compat.js").write_text(BOOK_COMPAT)
    stamp.write_text(wanted)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"{target}: vendored {', '.join(f'{k}@{v}' for k, v in PACKAGES.items())} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    vendor(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "_vendor")
