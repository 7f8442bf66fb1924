"""The GitHub Pages workflow is valid GitHub Actions (actionlint) and builds the book the way CI does."""
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    """The actionlint of the test extra: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("actionlint")
    exe = str(beside) if beside.is_file() else shutil.which("actionlint")
    assert exe, "actionlint is part of the test extra (pip install -e .[test])"
    return exe


def test_workflows_pass_actionlint():
    exe = actionlint()
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = subprocess.run([exe, "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n"
                   "        with: {ref: ${{ github.event.nope.sha }}}\n      - run: echo ${{ steps.missing.outputs.x }}\n")
    result = subprocess.run([actionlint(), "-no-color", str(bad)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode != 0


def test_pages_workflow_builds_with_make_book_and_pins_actions():
    pages = yaml.safe_load((REPO / ".github" / "workflows" / "pages.yml").read_text())
    steps = [s for job in pages["jobs"].values() for s in job["steps"]]
    assert any(s.get("run", "").startswith("make book") for s in steps)
    uses = [s["uses"] for s in steps if "uses" in s]
    assert uses and all(u.rsplit("@", 1)[1].count(".") == 2 for u in uses), uses  # exact versions, not @v4
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    assert any(s.get("with", {}).get("path") == "_build/html" for s in steps)
