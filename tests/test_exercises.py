"""Every chapter ends with exercises, each with a solution; the student edition has none of the solutions."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_chapter_ends_with_exercises_that_have_solutions(notebook):
    text = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                     if c["cell_type"] == "markdown")
    exercises = re.findall(r"```\{exercise\}\n:label: (ex-[\w-]+)", text)
    solutions = re.findall(r"```\{solution\} (ex-[\w-]+)\n:class: dropdown", text)
    assert len(exercises) >= 2, f"{notebook.stem} has {len(exercises)} exercises"
    assert exercises == solutions  # one folded solution per exercise, in order
    assert all(label.startswith(f"ex-{notebook.stem[:2]}-") for label in exercises)  # labels unique across the book


PAGE = """# Exercises

```{exercise}
:label: ex-t-1

What is two plus two?
```

```{solution} ex-t-1
:class: dropdown

SECRET-ANSWER-FOUR
```
"""


def build(tmp_path, edition):
    book = tmp_path / edition
    book.mkdir()
    (book / "intro.md").write_text(PAGE)
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (book / "_config.yml").write_text(
        "title: t\nexecute:\n  execute_notebooks: 'off'\nsphinx:\n  extra_extensions: [sphinx_exercise]\n"
        f"  local_extensions:\n    student_build: {REPO / '_ext'}\n")
    env = {**os.environ, "GRADLIME_EDITION": edition}
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jb), "build", "-W", "-n", str(book)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return book / "_build" / "html"


def everything(html: Path) -> str:
    return "\n".join(p.read_text(errors="ignore") for p in html.rglob("*") if p.is_file())


@pytest.mark.slow
def test_student_edition_has_no_solutions_and_instructor_edition_folds_them(tmp_path):
    instructor = build(tmp_path, "instructor")
    assert "SECRET-ANSWER-FOUR" in (instructor / "intro.html").read_text()
    assert "dropdown" in (instructor / "intro.html").read_text()
    student = build(tmp_path, "student")
    page = (student / "intro.html").read_text()
    assert "What is two plus two?" in page
    assert "SECRET-ANSWER-FOUR" not in everything(student)  # pages, search index and sources alike
    assert not (student / "_sources").exists()


def test_the_teaching_page_cites_exercises_by_their_labels():
    """Exercise numbers are the book's own ({numref} of a label), never typed; every label cited exists, and the
    single-session plan walks LIME, GradLIME and GAD with learning goals and what students should see."""
    teaching = (REPO / "book" / "teaching.md").read_text()
    labels = set()
    for notebook in CHAPTERS:
        labels |= set(re.findall(r":label: (ex-[\w-]+)", notebook.read_text()))
    cited = re.findall(r"\{numref\}`(ex-[\w-]+)`", teaching)
    assert cited and set(cited) <= labels, set(cited) - labels
    assert not re.search(r"\bexercises? \d", teaching, re.I)
    single = teaching.split("## One session: LIME, GradLIME and GAD (90 minutes)", 1)[1].split("\n## ", 1)[0]
    assert "Learning goals" in single and "what students should see" in single
    for chapter in ("01_lime", "02_gradlime", "03_gad"):
        assert f"notebooks/{chapter}.ipynb" in single
