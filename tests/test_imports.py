"""Every import inside a function of gradlime_utils says why it is there (issue: no function-level import without a
reason): a heavy third-party module that ``import gradlime_utils`` does not load, or a cycle it breaks."""
import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "gradlime_utils"
REASONS = ("# lazy:", "# cycle:")


def function_level_imports():
    for path in sorted(PKG.rglob("*.py")):  # sub-packages included
        lines = path.read_text().split("\n")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        text = "\n".join(lines[sub.lineno - 1:sub.end_lineno])
                        yield path.name, sub, text


def test_every_function_level_import_gives_its_reason():
    bare = [f"{name}:{node.lineno}: {text.strip()}" for name, node, text in function_level_imports()
            if not any(r in text for r in REASONS)]
    assert bare == []


def test_what_is_imported_lazily_is_not_already_loaded_by_the_package():
    """A 'lazy' import of a module that ``import gradlime_utils`` loads anyway saves nothing: it belongs at the top."""
    lazy = sorted({(node.module if isinstance(node, ast.ImportFrom) else node.names[0].name)
                   for _, node, text in function_level_imports() if "# lazy:" in text})
    code = f"import sys, gradlime_utils; print([m for m in {lazy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert lazy and loaded.strip() == "[]"
