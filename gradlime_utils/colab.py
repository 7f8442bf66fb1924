"""The first cell of every chapter, written once: on Google Colab it installs the companion package.

A chapter opened from the book's launch button on Colab has no ``gradlime_utils``; this cell installs it (with the
pinned dependencies) before anything imports it, and does nothing anywhere else. It cannot be a function of the
package it installs, so its text lives here and ``python -m gradlime_utils.colab`` puts the same cell at the top
of every notebook (``--check`` only reports the notebooks that lack it; a test runs the check). The book hides it
(tag ``remove-cell``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPOSITORY = "https://github.com/xai-companions/gradlime-book"  # _config.yml's repository url (tested)
TAG = "colab-install"
CELL_SOURCE = (
    "# On Google Colab, install the companion package first (anywhere else this does nothing)\n"
    "import sys\n"
    "if \"google.colab\" in sys.modules:\n"
    f"    %pip install --quiet git+{REPOSITORY}"
)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def has_colab_cell(notebook: dict) -> bool:
    """Is the notebook's first code cell exactly :data:`CELL_SOURCE`?"""
    first = next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)
    return first is not None and _source(first) == CELL_SOURCE


def with_colab_cell(notebook: dict) -> dict:
    """``notebook`` with :data:`CELL_SOURCE` as its first code cell (replacing an older version of it)."""
    cells = [c for c in notebook["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    lines = CELL_SOURCE.split("\n")
    cell = {"cell_type": "code", "execution_count": None, "id": "colab-install",
            "metadata": {"tags": [TAG, "remove-cell"]}, "outputs": [],
            "source": [line + "\n" for line in lines[:-1]] + [lines[-1]]}
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    return {**notebook, "cells": cells[:first_code] + [cell] + cells[first_code:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.colab", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only list the notebooks without the cell")
    args = parser.parse_args(argv)
    missing = []
    for path in args.notebooks:
        notebook = json.loads(path.read_text())
        if has_colab_cell(notebook):
            continue
        missing.append(path)
        if not args.check:
            path.write_text(json.dumps(with_colab_cell(notebook), indent=1, ensure_ascii=False) + "\n")
    for path in missing:
        print(f"{'lacks' if args.check else 'added to'}: {path}", file=sys.stderr)
    return 1 if (missing and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
