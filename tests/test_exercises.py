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


NOTEBOOK = {"cells": [
    {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# Chapter\n"]},
    {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None, "outputs": [],
     "source": ["print('EXECUTED-' + str(6 * 7))"]},
    {"cell_type": "markdown", "id": "c", "metadata": {},
     "source": ["```{exercise}\n:label: ex-t-2\n\nSix times seven?\n```\n\n"
                "```{solution} ex-t-2\n:class: dropdown\n\nSECRET-ANSWER-42\n```\n"]}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5}


@pytest.mark.slow
def test_student_edition_is_built_from_the_executed_chapters_without_running_them(tmp_path):
    """make book-student: stage the sources with the instructor build's executed notebooks, execution off; the
    student pages show the outputs, no solution, and not the instructor-only link."""
    sys.path.insert(0, str(REPO / "scripts"))
    import student_edition

    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "intro.md").write_text("# Intro\n\n```{only} not student\nINSTRUCTOR-ONLY\n```\n")
    (book / "chapters" / "one.ipynb").write_text(json.dumps(NOTEBOOK))
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapters/one\n")
    (book / "_config.yml").write_text(
        "title: t\nexecute:\n  execute_notebooks: force\nsphinx:\n  extra_extensions: [sphinx_exercise]\n"
        f"  local_extensions:\n    student_build: {REPO / '_ext'}\n")
    jb = Path(sys.executable).parent / "jupyter-book"
    run = lambda *args, edition: subprocess.run([str(jb), "build", "-W", "-n", *args],  # noqa: E731
                                                env={**os.environ, "GRADLIME_EDITION": edition},
                                                capture_output=True, text=True)
    result = run(str(book), edition="instructor")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "INSTRUCTOR-ONLY" in (book / "_build" / "html" / "intro.html").read_text()
    staging = tmp_path / "student-src"
    replaced = student_edition.stage(book, staging, book / "_build" / "jupyter_execute")
    assert replaced == ["chapters/one.ipynb"]
    staged = json.loads((staging / "chapters" / "one.ipynb").read_text())
    assert "EXECUTED-42" in json.dumps(staged["cells"][1]["outputs"])  # the executed copy, outputs and all
    (staging / "chapters" / "one.ipynb").write_text(  # nothing may run again: a cell that would fail if it did
        json.dumps({**staged, "cells": [*staged["cells"][:1],
                                        {**staged["cells"][1], "source": ["raise SystemExit('ran again')"]},
                                        *staged["cells"][2:]]}))
    result = run("--path-output", str(tmp_path / "out"), str(staging), edition="student")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    html = tmp_path / "out" / "_build" / "html"
    page = (html / "chapters" / "one.html").read_text()
    assert "EXECUTED-42" in page and "Six times seven?" in page
    assert "SECRET-ANSWER-42" not in everything(html) and "INSTRUCTOR-ONLY" not in everything(html)
    with pytest.raises(FileNotFoundError, match="build the instructor edition first"):
        student_edition.stage(book, tmp_path / "again", tmp_path / "no-executed")


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
