"""Every chapter ends with exercises, each with a solution; the student edition has none of the solutions."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
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


def build(tmp_path, edition, execution="'off'", cache=None, pages=()):
    """Build a one-page book (plus `pages`: name -> notebook) in `edition`; `cache` shares the execution."""
    book = tmp_path / edition
    book.mkdir()
    (book / "intro.md").write_text(PAGE)
    for name, notebook in dict(pages).items():
        nbformat.write(notebook, book / name)
    chapters = "".join(f"  - file: {Path(name).stem}\n" for name in dict(pages))
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n" + (f"chapters:\n{chapters}" if chapters else ""))
    (book / "_config.yml").write_text(
        f"title: t\nexecute:\n  execute_notebooks: {execution}\nsphinx:\n  extra_extensions: [sphinx_exercise]\n"
        f"  local_extensions:\n    student_build: {REPO / '_ext'}\n")
    env = {**os.environ, "GRADLIME_EDITION": edition}
    if cache is not None:
        env["GRADLIME_EXECUTION_CACHE"] = str(cache)
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


@pytest.mark.slow
def test_the_student_edition_reuses_the_instructor_run_with_its_glued_values(tmp_path):
    """`make book`'s two builds share one execution: the student edition executes nothing and shows the numbers
    glued by the instructor build's run (a forced build's executed copies lose glue data, so without the shared
    cache the student build would have to run every chapter again)."""
    runs = tmp_path / "runs.txt"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"from pathlib import Path\nPath({str(runs)!r}).open('a').write('ran\\n')"),
        nbformat.v4.new_code_cell("import random\nfrom myst_nb import glue\n"
                                  "glue('draw', random.randint(10**8, 10**9), display=False)"),
        nbformat.v4.new_markdown_cell("# Chapter\n\nThe draw was {glue:text}`draw`."),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cache = tmp_path / "jupyter_cache"
    instructor = build(tmp_path, "instructor", execution="force", cache=cache, pages={"chapter.ipynb": notebook})
    student = build(tmp_path, "student", execution="force", cache=cache, pages={"chapter.ipynb": notebook})
    assert runs.read_text() == "ran\n"  # one execution for both editions, although _config.yml says force
    glued = re.compile(r"The draw was <span class=\"pasted-text\">(\d{9})<")
    drawn = glued.search((instructor / "chapter.html").read_text()).group(1)
    assert glued.search((student / "chapter.html").read_text()).group(1) == drawn
    assert "SECRET-ANSWER-FOUR" not in everything(student)


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
