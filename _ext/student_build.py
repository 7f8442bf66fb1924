"""The student edition: ``GRADLIME_EDITION=student`` builds the book without exercise solutions.

sphinx-exercise's ``hide_solutions`` drops every ``{solution}`` block from the pages and the search index. The
page sources (``_sources/``, behind the download button) would still carry them, so the student edition copies no
sources and shows no download button. ``make book-student`` sets the variable; ``make book`` builds the full
(instructor) edition with the solutions folded.
"""
from __future__ import annotations

import os

EDITIONS = ("instructor", "student")


def edition() -> str:
    value = os.environ.get("GRADLIME_EDITION", "instructor")
    if value not in EDITIONS:
        raise ValueError(f"GRADLIME_EDITION must be one of {EDITIONS}, got {value!r}")
    return value


def _configure(app, config):
    if edition() != "student":
        return
    app.tags.add("student")  # pages can leave out what only the instructor edition has: {only} not student
    config.hide_solutions = True
    config.html_copy_source = False
    options = dict(config.html_theme_options or {})
    options["use_download_button"] = False
    config.html_theme_options = options
    config.html_title = f"{config.html_title or config.project} (student edition)"


def setup(app):
    app.connect("config-inited", _configure, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
