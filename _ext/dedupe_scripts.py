"""Drop duplicate <script> entries from every page.

sphinx-thebe and sphinx-togglebutton each register their inline scripts twice under Jupyter Book 1,
so every page logs ``Identifier 'THEBE_JS_URL' has already been declared`` in the browser console.
"""
from __future__ import annotations


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    # the same inline script is registered once with filename None and once with ""
    filename = getattr(script, "filename", str(script)) or ""
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    # run after the extensions that add the duplicates
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
