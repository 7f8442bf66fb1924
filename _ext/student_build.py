"""The student edition: ``GRADLIME_EDITION=student`` builds the book without exercise solutions.

sphinx-exercise's ``hide_solutions`` drops every ``{solution}`` block from the pages and the search index. The
page sources (``_sources/``, behind the download button) would still carry them, so the student edition copies no
sources and shows no download button. ``make book`` builds the full (instructor) edition with the solutions folded,
then the student edition from the same executed notebooks.

Sharing the execution: ``GRADLIME_EXECUTION_CACHE=DIR`` switches myst-nb to its jupyter-cache mode with that cache.
``make book`` empties the cache first (``jupyter-book clean --all``), so the instructor build executes every
notebook afresh into it, exactly as ``execute_notebooks: force`` would; the student build then finds every notebook
there (the cache matches code cells, which the two editions share) and executes nothing. The cached notebooks keep
their glue data and widget state, which the ``jupyter_execute`` copies of a forced build do not, so the student
edition's glued numbers are the instructor edition's, from one run. Without the variable, ``_config.yml``'s
``force`` holds: a build by hand never publishes stale cached outputs.
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
    cache = os.environ.get("GRADLIME_EXECUTION_CACHE")
    if cache:
        config.nb_execution_mode = "cache"
        config.nb_execution_cache_path = cache
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
