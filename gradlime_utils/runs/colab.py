"""The first cell of every chapter, written once: on Google Colab it installs the companion package.

A chapter opened from the book's launch button on Colab has no ``gradlime_utils``; this cell installs it (with the
pinned dependencies) before anything imports it, and does nothing anywhere else. It cannot be a function of the
package it installs, so its text lives here, with the repository address read from ``_config.yml`` (the one
setting), and ``python -m gradlime_utils.runs.colab`` puts the same cell at the top of every notebook (``--check`` only reports the notebooks that lack it; a test runs the check). The book hides it
(tag ``remove-cell``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "_config.yml"  # the book's configuration, in a checkout
TAG = "colab-install"


def repository(config: Path = CONFIG) -> str:
    """The repository address: ``_config.yml``'s ``repository: url``, the one setting that the launch buttons, the
    repository button and every chapter's Colab install cell take it from (a fork sets it there, then runs
    ``python -m gradlime_utils.runs.colab notebooks/*.ipynb`` to rewrite the cells)."""
    import yaml  # lazy: only the tool and the tests need it

    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"config must be the book's _config.yml, got {config} (not a file)")
    url = (yaml.safe_load(config.read_text()) or {}).get("repository", {}).get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ValueError(f"{config}: repository: url must be an http(s) address, got {url!r}")
    return url.rstrip("/")


def cell_source(repo: str | None = None) -> str:
    """The install cell's text for the repository at ``repo`` (default: :func:`repository`)."""
    repo = repository() if repo is None else repo
    return ("# On Google Colab, install the companion package first (anywhere else this does nothing)\n"
            "import sys\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    %pip install --quiet git+{repo}")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def has_colab_cell(notebook: dict, repo: str | None = None) -> bool:
    """Is the notebook's first code cell exactly :func:`cell_source` of ``repo``?"""
    first = next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)
    return first is not None and _source(first) == cell_source(repo)


def with_colab_cell(notebook: dict, repo: str | None = None) -> dict:
    """``notebook`` with :func:`cell_source` as its first code cell (replacing an older version of it, such as
    one that names another repository)."""
    cells = [c for c in notebook["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    lines = cell_source(repo).split("\n")
    cell = {"cell_type": "code", "execution_count": None, "id": "colab-install",
            "metadata": {"tags": [TAG, "remove-cell"]}, "outputs": [],
            "source": [line + "\n" for line in lines[:-1]] + [lines[-1]]}
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    return {**notebook, "cells": cells[:first_code] + [cell] + cells[first_code:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.runs.colab", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only list the notebooks without the cell")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the book's _config.yml (default: the checkout's)")
    args = parser.parse_args(argv)
    try:
        repo = repository(args.config.expanduser().resolve())
    except (OSError, ValueError) as exc:
        print(f"colab: error: {exc}", file=sys.stderr)
        return 2
    missing = []
    for path in args.notebooks:
        path = path.expanduser().resolve()
        notebook = json.loads(path.read_text())
        if has_colab_cell(notebook, repo):
            continue
        missing.append(path)
        if not args.check:
            path.write_text(json.dumps(with_colab_cell(notebook, repo), indent=1, ensure_ascii=False) + "\n")
    for path in missing:
        print(f"{'lacks' if args.check else 'added to'}: {path}", file=sys.stderr)
    return 1 if (missing and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
