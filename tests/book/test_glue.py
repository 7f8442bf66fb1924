"""The chapters' prose cites this run's numbers through ``{glue:md}`` (gradlime_utils.plotting.glue)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gradlime_utils.plotting import glue

REPO = Path(__file__).resolve().parents[2]


def test_glue_formats_and_refuses_non_finite_numbers():
    assert glue({"a": 0.12345, "b": 3}, ".2f") == {"a": "0.12", "b": "3.00"}
    assert glue({"share": 0.5}, ".1%") == {"share": "50.0%"} and glue({"s": "slic"}) == {"s": "slic"}
    with pytest.raises(ValueError, match=r"values\['x'\] must be finite"):
        glue({"x": float("nan")})


def test_glue_inside_a_kernel_stores_markdown_for_the_book():
    """In IPython with myst_nb, the value is displayed as Markdown with the glue metadata myst-nb reads."""
    code = ("from IPython.core.interactiveshell import InteractiveShell; sh = InteractiveShell.instance();"
            "out = []; sh.display_pub.publish = lambda data, metadata=None, **k: out.append((data, metadata));"
            "from gradlime_utils.plotting import glue; glue({'acc': 0.875}, '.1%'); print(repr(out))")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'application/papermill.record/text/markdown': '87.5%'" in printed and "'name': 'acc'" in printed


def test_every_glued_reference_in_a_chapter_is_glued_by_that_chapter():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        cited = set(re.findall(r"\{glue:md\}`([\w]+)`", prose))
        # a key is glued as a literal ("name") or by an f-string template (f"{key}_beyond")
        templates = [re.sub(r"\\\{[^}]*\\\}", r"\\w+", re.escape(t)) for t in re.findall(r"""f["']([\w{}]+)["']""", code)]
        missing = [k for k in cited if f'"{k}"' not in code and not any(re.fullmatch(t, k) for t in templates)]
        assert cited, f"{path.name}: the prose cites no number of its own run"
        assert missing == [], f"{path.name} cites unglued {missing}"


def test_a_glue_call_ending_a_cell_shows_no_raw_dict():
    """`gu.glue({...})` as a cell's last line used to print `{'stab_n': '500', ...}` on the page: its result now
    formats to no data at all, which a Jupyter kernel does not send (a plain dict still formats as text)."""
    code = ("from IPython.core.interactiveshell import InteractiveShell; sh = InteractiveShell.instance();"
            "from IPython.utils.capture import capture_output\n"
            "with capture_output() as c: sh.run_cell(\"from gradlime_utils.plotting import glue; glue({'n': 500})\")\n"
            "print('STDOUT=' + repr(c.stdout) + ' DATA=' + repr([o.data for o in c.outputs]))")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "DATA=" in printed and "'n': '500'" not in printed, printed
    code_dict = code.replace("glue({'n': 500})", "dict(n='500')")
    shown = subprocess.run([sys.executable, "-c", code_dict], capture_output=True, text=True, check=True).stdout
    assert "'n': '500'" in shown  # the check itself sees a dict that ends a cell
