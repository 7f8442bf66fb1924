"""The package's folders are the book's architecture, and these tests hold them to it.

Rooms, in order: the core (checks, profiles, caches, plotting, sliders), ``data`` (data and models), ``metrics``
(how any map is scored, and what chance scores), ``methods`` (the explanation methods), ``experiments`` (one
module per chapter) and ``runs`` (running the chapters and recording what ran). A module imports only from its own
room and the rooms before it; nothing imports in a circle; every null and chance construct is defined in
``metrics.nulls``; and no module hands out names it only imported (no shims, no re-exports).
"""
import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gradlime_utils"
ROOMS = ("core", "data", "metrics", "methods", "experiments", "runs")  # in reading order (book/api.md)


def _name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else "core"


def imported(module: str) -> set[str]:
    """The package's modules that ``module`` imports (anywhere in it, functions included)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:
                    found.add(target)
                elif base in MODULES:
                    found.add(base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
    return found - {module, "gradlime_utils"}


def test_every_module_is_in_a_room():
    stray = [m for m in MODULES if m.count(".") > 1 and m.split(".")[1] not in ROOMS]
    assert not stray
    assert {room(m) for m in MODULES} == set(ROOMS)


def test_no_module_imports_from_a_later_room():
    """The package root (the chapters' ``gu`` facade) is exempt: it is the one place that gathers every room."""
    upward = [f"{m} ({room(m)}) imports {t} ({room(t)})" for m in MODULES if m != "gradlime_utils"
              for t in sorted(imported(m)) if ROOMS.index(room(t)) > ROOMS.index(room(m))]
    assert not upward, "\n".join(upward)


def test_the_imports_have_no_cycle():
    graph = {m: imported(m) for m in MODULES if m != "gradlime_utils"}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in graph.get(m, ()):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_layout_test_sees_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a data module that imported a method would be reported."""
    fake = tmp_path / "gradlime_utils" / "data" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from gradlime_utils.methods.gad import gad_map\n")
    monkeypatch.setitem(MODULES, "gradlime_utils.data.fake", fake)
    assert imported("gradlime_utils.data.fake") == {"gradlime_utils.methods.gad"}
    assert ROOMS.index(room("gradlime_utils.methods.gad")) > ROOMS.index(room("gradlime_utils.data.fake"))


# --- one home for every null and chance construct ---------------------------------------------------------------

# Each kind of null the book draws, and the construct that draws it.
NULL_CONSTRUCTS = {
    "random maps (uniform pixels, random superpixel values)": "random_maps",
    "random heat maps (superpixel, smooth grid, pixel)": "random_heatmaps",
    "shifted maps (the structure-matched null)": "shifted_maps",
    "random superpixel sets (occlusion's control)": "random_subsets",
    "a seeded permutation (every permutation null)": "permuted",
    "shuffled labels (GAD's null support models)": "null_labels",
    "random rankings (keep-and-retrain's null)": "random_ranking",
    "a query-matched random search (EvoLIME's null)": "random_search",
    "bootstrap resamples": "bootstrap",
    "paired bootstrap differences": "paired_difference",
    "Welch differences over trainings": "welch_difference",
    "permutation p-values of a map comparison": "permutation_pvalue",
    "shift p-values": "shift_pvalue",
    "Monte-Carlo rank p-values": "mc_pvalue",
    "chance bands": "chance_band",
    "percentiles among random maps": "null_percentile",
    "multiplicity adjustment": "adjust_pvalues",
}


@pytest.mark.parametrize("kind", sorted(NULL_CONSTRUCTS))
def test_each_kind_of_null_is_defined_in_the_null_module(kind):
    from gradlime_utils.metrics import nulls

    construct = getattr(nulls, NULL_CONSTRUCTS[kind])
    assert construct.__module__ == "gradlime_utils.metrics.nulls"


def test_every_random_map_kind_is_drawn_by_the_null_module():
    from gradlime_utils.metrics import nulls

    segments = np.repeat(np.arange(4), 16).reshape(8, 8)
    for kind in nulls.RANDOM_MAP_KINDS:
        maps = nulls.random_maps(kind, 3, (2, 8, 8), segments=[segments] * 2, seed=1)
        assert maps.shape == (3, 2, 8, 8) and np.isfinite(maps).all()
    for kind in nulls.RANDOM_HEATMAPS:
        assert nulls.random_heatmaps(kind, 3, segments, grid=2, seed=1).shape == (3, 8, 8)
    assert nulls.shifted_maps(np.arange(128.0).reshape(2, 8, 8), 3, seed=1).shape[0] == 3


# Randomness in methods, metrics and experiments that is not a null: each with its reason.
OWN_RANDOMNESS = {
    ("gradlime_utils.methods.evolime", "tournament_select"): "the GA's tournament",
    ("gradlime_utils.methods.evolime", "uniform_crossover"): "the GA's crossover",
    ("gradlime_utils.methods.evolime", "bitflip"): "the GA's mutation",
    ("gradlime_utils.methods.evolime", "evolve_explanation"): "the GA's first population and crossover draws",
    ("gradlime_utils.methods.neighborhood", "sample_neighborhood"): "LIME's own sample Z'",
    ("gradlime_utils.methods.lime_heatmap", "holdout_r2"): "a held-out split of LIME's samples",
    ("gradlime_utils.metrics.faithfulness", "_replace"): "Quantus' random fill, part of the metric",
    ("gradlime_utils.metrics.faithfulness", "PerturbationScorer"): "Quantus' random pixel subsets, part of the metric",
    ("gradlime_utils.experiments.ch06_normlime", "explain_digits"): "which training digits are explained",
}
DRAWS = {"permutation", "choice", "uniform", "random", "standard_normal", "normal", "integers", "shuffle", "rand",
         "randn", "randint"}


def _random_draws(module: str) -> set[tuple[str, str]]:
    """(module, enclosing top-level name) of every random draw in ``module``."""
    text = MODULES[module].read_text()
    found = set()
    for top in ast.parse(text).body:
        for node in ast.walk(top):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DRAWS:
                receiver = ast.get_source_segment(text, node.func.value) or ""
                if "rng" in receiver or "random" in receiver:
                    found.add((module, getattr(top, "name", "<module>")))
    return found


def test_nothing_outside_the_null_module_draws_a_null():
    scanned = [m for m in MODULES if room(m) in ("methods", "metrics", "experiments") and m != "gradlime_utils.metrics.nulls"]
    draws = set().union(*(_random_draws(m) for m in scanned))
    assert draws - set(OWN_RANDOMNESS) == set()
    assert set(OWN_RANDOMNESS) <= draws  # the list names no draw that has gone


# --- no shims and no re-exports ----------------------------------------------------------------------------------

def defined(module: str) -> set[str]:
    """Names a module defines itself (functions, classes, assignments) and its sub-modules."""
    tree = ast.parse(MODULES[module].read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names |= {t.id for t in ast.walk(target) if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names | {m.rsplit(".", 1)[1] for m in MODULES if m.rsplit(".", 1)[0] == module}


def _sources() -> dict[str, str]:
    out = {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "tests").rglob("*.py")}
    out |= {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "bench").glob("*.py")}
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")) + sorted((REPO / "book").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        out[str(nb.relative_to(REPO))] = "\n".join(  # IPython magics read as the statement they stand for
            re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in code.splitlines())
    return out


def borrowed_names(text: str) -> list[tuple[str, str]]:
    """(module, name) of every name taken from a package module (not the ``gu`` facade) by import or attribute."""
    uses, aliases = [], {}
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module in MODULES \
                and node.module != "gradlime_utils":
            for a in node.names:
                target = f"{node.module}.{a.name}"
                if target in MODULES:
                    aliases[a.asname or a.name] = target
                else:
                    uses.append((node.module, a.name))
        elif isinstance(node, ast.ImportFrom) and node.module == "gradlime_utils":
            for a in node.names:
                if f"gradlime_utils.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"gradlime_utils.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            uses.append((aliases[node.value.id], node.attr))
    return uses


def test_every_name_a_chapter_or_test_borrows_is_defined_where_it_is_taken_from():
    wrong = sorted({f"{where}: {module}.{name}" for where, text in _sources().items()
                    for module, name in borrowed_names(text)
                    if name not in defined(module) and not name.startswith("__")})
    assert not wrong, "names taken from a module that only imports them:\n" + "\n".join(wrong)


def test_the_re_export_check_sees_a_re_export():
    text = "from gradlime_utils.experiments.ch07_heatmap import gradcam\n"  # ch07 imports it from methods.gradcam
    assert borrowed_names(text) == [("gradlime_utils.experiments.ch07_heatmap", "gradcam")]
    assert "gradcam" not in defined("gradlime_utils.experiments.ch07_heatmap")


def chapter_aliases(text: str) -> list[str]:
    """``import ... as`` renamings of the package's modules in ``text``; ``gradlime_utils as gu``, the facade every
    chapter imports the way it imports ``numpy as np``, is the one allowed."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gradlime_utils"):
            found += [f"{node.module}.{a.name} as {a.asname}" for a in node.names
                      if a.asname and a.asname != a.name and f"{node.module}.{a.name}" in MODULES]
        elif isinstance(node, ast.Import):
            found += [f"{a.name} as {a.asname}" for a in node.names if a.name.startswith("gradlime_utils")
                      and a.asname and (a.name, a.asname) != ("gradlime_utils", "gu")]
    return found


def test_the_chapters_import_no_module_under_a_short_alias():
    """A reader meets ``ch04_evaluation.chance_tables``, not ``ev.chance_tables``: the chapter says where a function
    lives (issue: one home per idea)."""
    found = {where: chapter_aliases(text) for where, text in _sources().items() if where.startswith(("notebooks",
                                                                                                      "book"))}
    assert not {k: v for k, v in found.items() if v}, found
    assert chapter_aliases("from gradlime_utils.experiments import ch04_evaluation as ev\n") == [
        "gradlime_utils.experiments.ch04_evaluation as ev"]
    assert chapter_aliases("import gradlime_utils.metrics.nulls as nu\nimport gradlime_utils as gu\n") == [
        "gradlime_utils.metrics.nulls as nu"]


def test_the_tests_have_the_package_rooms():
    """Tests mirror the layout: a folder of tests per room of the package (``tests/core`` for the core modules),
    ``tests/book`` for the built pages, and at the top only the checks that cut across every room."""
    folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders == set(ROOMS) | {"book"}
    assert all(list((REPO / "tests" / f).glob("test_*.py")) for f in folders)  # no empty room
    top = {p.stem for p in (REPO / "tests").glob("test_*.py")}
    assert top == {"test_bad_inputs", "test_layout", "test_packaging", "test_imports"}
