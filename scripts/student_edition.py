"""The student edition from the instructor build's executed notebooks, without executing anything again.

``make book`` executes every chapter once; Jupyter Book keeps the executed copies under
``_build/jupyter_execute``. This script copies the book's sources into a staging folder, puts the executed copy in
place of each notebook and turns execution off, so that ``GRADLIME_EDITION=student jupyter-book build`` (the
``student_build`` extension: no solutions, no page sources, no download button) takes a minute, not a second hour.
``make book-student`` runs it, builds, and places the edition at ``_build/html/student`` beside the instructor
edition, where the intro links it.

    python scripts/student_edition.py BOOK_ROOT STAGING [--executed BOOK_ROOT/_build/jupyter_execute]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

SKIP = {"_build", ".git", ".venv", ".ci", "tests", "bench", "outputs", ".pytest_cache", "__pycache__"}


def executed_copy(executed: Path, relative: Path) -> Path | None:
    """The executed copy of ``relative`` (a notebook path in the book) under ``executed``, or None."""
    direct = executed / relative
    if direct.is_file():
        return direct
    matches = sorted(executed.rglob(relative.name))
    return matches[0] if len(matches) == 1 else None


def stage(root: Path, staging: Path, executed: Path) -> list[str]:
    """Copy the book at ``root`` to ``staging`` with executed notebooks and execution off; returns the notebooks
    replaced. Fails naming every notebook of the table of contents that has no executed copy."""
    if not (root / "_config.yml").is_file():
        raise FileNotFoundError(f"root must be the book's folder (with _config.yml), got {root}")
    if not executed.is_dir():
        raise FileNotFoundError(f"no executed notebooks at {executed}: build the instructor edition first (make book)")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(root, staging, ignore=lambda folder, names: [n for n in names if n in SKIP])
    replaced, missing = [], []
    for notebook in sorted(staging.rglob("*.ipynb")):
        relative = notebook.relative_to(staging)
        copy = executed_copy(executed, relative)
        if copy is None:
            missing.append(str(relative))
            continue
        shutil.copyfile(copy, notebook)
        replaced.append(str(relative))
    toc = (staging / "_toc.yml").read_text()
    needed = [m for m in missing if m.rsplit(".", 1)[0] in toc]
    if needed:
        raise FileNotFoundError(f"no executed copy under {executed} of: {', '.join(needed)}")
    config_path = staging / "_config.yml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return replaced


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the book's folder (with _config.yml)")
    parser.add_argument("staging", type=Path, help="where to stage the student edition's sources")
    parser.add_argument("--executed", type=Path, default=None, help="default: ROOT/_build/jupyter_execute")
    args = parser.parse_args(argv)
    root = args.root.expanduser().resolve()
    staging = args.staging.expanduser().resolve()
    if staging == root or staging in root.parents:
        print(f"student_edition: error: staging must be a folder of its own, not the book or above it: {staging}",
              file=sys.stderr)
        return 2
    executed = (args.executed or root / "_build" / "jupyter_execute").expanduser().resolve()
    try:
        replaced = stage(root, staging, executed)
    except (OSError, ValueError) as exc:
        print(f"student_edition: error: {exc}", file=sys.stderr)
        return 2
    print(f"staged {len(replaced)} executed notebooks in {staging}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
