"""The repository's own contracts: dependency lists in sync, notebooks parameterised and clean."""
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_environment_yml_and_pyproject_declare_the_same_runtime_dependencies(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_reqs = {_norm(r) for r in pip_section if not r.startswith("-e")}
    assert env_reqs == {_norm(r) for r in project["dependencies"]}
    assert any(r.startswith("-e .[") for r in pip_section)
    python_pin = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python_pin == "python=3.11"


def test_runtime_dependencies_are_pinned(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        assert "==" in req, f"{req} is not pinned"


def test_every_notebook_is_parameterised_clean_and_in_the_toc(repo_root):
    notebooks = sorted((repo_root / "notebooks").glob("*.ipynb"))
    assert notebooks
    toc = (repo_root / "_toc.yml").read_text()
    for path in notebooks:
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one 'parameters' cell"
        source = "".join(tagged[0]["source"])
        for name in ("profile", "device", "seed", "output_dir"):
            assert re.search(rf"^{name}\s*=", source, re.M), f"{path.name}: parameter {name} missing"
        assert re.search(r'^profile\s*=\s*"quick"', source, re.M), f"{path.name}: default profile must be quick"
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, \
                    f"{path.name}: commit notebooks without outputs"
        assert f"notebooks/{path.stem}" in toc, f"{path.name} is not in _toc.yml"
        ids = [c["id"] for c in nb["cells"]]
        assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat (nbformat would rewrite them)"


def test_every_cited_key_exists_in_the_bibliography(repo_root):
    bib = (repo_root / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set()
    for page in list((repo_root / "book").glob("*.md")) + list((repo_root / "notebooks").glob("*.ipynb")):
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited <= keys, f"unknown citation keys: {cited - keys}"
    assert keys <= cited, f"bibliography entries never cited: {keys - cited}"


def test_every_chapter_opens_on_colab_with_the_same_first_cell(repo_root):
    """One cell text (gradlime_utils.runs.colab), first in every notebook; `--check` fails on a notebook without it."""
    import json

    import yaml

    from gradlime_utils.runs import colab
    notebooks = sorted((repo_root / "notebooks").glob("*.ipynb"))
    assert notebooks and colab.main(["--check", *map(str, notebooks)]) == 0
    for path in notebooks:
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert "".join(cells[0]["source"]) == colab.cell_source(), path.name
        assert "parameters" in cells[1]["metadata"].get("tags", []), path.name  # papermill's cell comes next
    config = yaml.safe_load((repo_root / "_config.yml").read_text())
    assert config["repository"]["url"] == colab.repository() and config["launch_buttons"]["colab_url"]
    bare = {"cells": [c for c in json.loads(notebooks[0].read_text())["cells"]
                      if colab.TAG not in c["metadata"].get("tags", [])]}
    assert not colab.has_colab_cell(bare) and colab.has_colab_cell(colab.with_colab_cell(bare))
    assert colab.with_colab_cell(colab.with_colab_cell(bare)) == colab.with_colab_cell(bare)  # never twice


def test_the_repository_address_is_one_setting(repo_root, tmp_path):
    """_config.yml's repository url is the only place the address is written: every Colab cell, and the clone
    commands of the README and the reproducing page, use it; a fork that changes it and runs the colab tool gets
    cells with its own address, and --check fails until it does."""
    import json
    import re
    import shutil

    from gradlime_utils.runs import colab
    url = colab.repository()
    texts = {p: p.read_text() for p in [*repo_root.glob("*.md"), *repo_root.glob("book/*.md"),
                                         *repo_root.glob("notebooks/*.ipynb"), *repo_root.glob("gradlime_utils/*.py"),
                                         *repo_root.glob(".github/workflows/*.yml")]}
    addresses = {m for text in texts.values() for m in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text)}
    assert addresses <= {url}, f"repository addresses other than _config.yml's: {addresses - {url}}"
    assert f"git clone {url}" in (repo_root / "book" / "reproducing.md").read_text()
    fork = tmp_path / "fork"
    (fork / "notebooks").mkdir(parents=True)
    config = (repo_root / "_config.yml").read_text().replace(url, "https://github.com/someone/my-fork")
    (fork / "_config.yml").write_text(config)
    shutil.copy(repo_root / "notebooks" / "01_lime.ipynb", fork / "notebooks")
    nb = fork / "notebooks" / "01_lime.ipynb"
    args = ["--config", str(fork / "_config.yml"), str(nb)]
    assert colab.main(["--check", *args]) == 1  # the cell still names the old address
    assert colab.main(args) == 0 and colab.main(["--check", *args]) == 0
    first = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    assert "git+https://github.com/someone/my-fork" in "".join(first["source"])
    (fork / "_config.yml").write_text("repository: {url: not-an-address}\n")
    assert colab.main(args) == 2


def test_chapter_code_cells_stay_short_and_narrow(repo_root):
    """Notebooks tell the story, the package does the work: no code cell over 15 lines, the parameters cells
    included (their counts are one ``sizes`` dict, the chapter's ``SIZES`` holds the values), and no code line wider
    than the book's column (88 characters; at 1280 px it holds about 90, see scripts/check_site.py). The messages
    list the offenders."""
    import json

    lengths, wide = [], []
    for path in sorted((repo_root / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                lengths.append((len(lines), f"{path.stem} cell {i}"))
                wide += [f"{path.stem} cell {i}: {line}" for line in lines if len(line) > 88]
    lengths.sort(reverse=True)
    report = ", ".join(f"{where}: {n}" for n, where in lengths[:8])
    assert lengths[0][0] <= 15, f"longest code cells: {report}"
    assert not wide, "code lines wider than the column:\n" + "\n".join(wide)


def test_the_packages_data_files_are_declared_so_that_a_wheel_carries_them(repo_root):
    declared = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = repo_root / "gradlime_utils"
    data = {}
    for p in package.rglob("*"):
        if p.is_file() and p.suffix not in (".py", ".pyc"):
            data.setdefault(".".join(p.parent.relative_to(repo_root).parts), []).append(p.name)
    assert {k: sorted(v) for k, v in data.items()} == {k: sorted(v) for k, v in declared.items()}


def test_the_gad_papers_tables_load_from_their_data_file():
    from gradlime_utils.experiments.ch03_gad import PAPER_TABLE1, PAPER_TABLE2

    assert set(PAPER_TABLE1) == set(PAPER_TABLE2) == {(d, m) for d in ("Cat×Dog", "Birds") for m in ("VGG", "ResNet")}
    assert PAPER_TABLE1[("Cat×Dog", "VGG")]["Orig.1"] == [357, 0, 15, 4, 17]  # GAD, Table 1, first row
    assert PAPER_TABLE2[("Birds", "ResNet")]["GAD 2"] == [0.05, 0.0048, 0.16, 1.04, 0.20]  # Table 2, last row
    assert all(sorted(b) == ["GAD 1", "GAD 2", "Orig.1", "Orig.2"] for b in PAPER_TABLE1.values())
    assert all(sorted(b) == ["GAD 1", "GAD 2", "Sup.1", "Sup.2"] for b in PAPER_TABLE2.values())
    assert all(len(v) == 5 and all(0 <= x <= 512 for x in v) for b in PAPER_TABLE1.values() for v in b.values())


def test_the_api_page_documents_every_module(repo_root):
    page = (repo_root / "book" / "api.md").read_text()
    import importlib

    package = repo_root / "gradlime_utils"
    modules = {".".join(p.relative_to(package).with_suffix("").parts) for p in package.rglob("*.py")
               if p.stem != "__init__"}
    # every module is its own (no shim handing over another module) and documented under its name
    own = {m for m in modules if importlib.import_module(f"gradlime_utils.{m}").__name__ == f"gradlime_utils.{m}"}
    assert own == modules and {m for m in own if f".. automodule:: gradlime_utils.{m}\n" not in page} == set()


def test_every_sub_package_is_declared_so_that_a_wheel_carries_it(repo_root):
    declared = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = sorted(".".join(p.parent.relative_to(repo_root).parts) for p in (repo_root / "gradlime_utils").rglob("__init__.py"))
    assert sorted(declared) == found


def test_the_tools_are_real_modules_and_installed_commands(repo_root):
    """No shim: the tools the README names are the modules themselves, and each console script of pyproject.toml
    runs (its --help exits 0 and names the module's own program)."""
    import importlib
    import subprocess
    import sys

    for shim in ("reproduce", "ledger", "sweep", "localisation"):
        assert not (repo_root / "gradlime_utils" / f"{shim}.py").exists(), shim
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"gradlime_utils.{shim}")
    scripts = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"gradlime-reproduce", "gradlime-sweep", "gradlime-ledger", "gradlime-fetch"} <= set(scripts)
    bin_dir = Path(sys.executable).parent
    for name, target in scripts.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
        script = bin_dir / name
        if not script.exists():  # installed without the console scripts: the module's own entry point instead
            pytest.fail(f"{name} is not installed next to {sys.executable}: reinstall the package (pip install -e .)")
        done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage" in done.stdout.lower(), (name, done.stderr[-500:])
    readme = (repo_root / "README.md").read_text()
    assert "python -m gradlime_utils.runs.reproduce" in readme


def test_a_test_run_removes_its_model_cache(repo_root, tmp_path):
    """Each run trains into a fresh cache folder of a few hundred MB; left behind, a hundred runs filled a disk."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    cheap = "tests/test_packaging.py::test_runtime_dependencies_are_pinned"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cheap],
                         cwd=repo_root, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not list(tmp_path.glob("gradlime-test-cache-*"))


def test_the_makefile_takes_torch_from_the_index_it_is_given_and_names_a_missing_python(repo_root, tmp_path):
    """TORCH_INDEX (README, "GPU") installs pyproject's torch and torchvision pins from PyTorch's index for an older
    driver; without it nothing changes. With no usable Python the Makefile says which it wants and how to get it."""
    import subprocess

    venv = tmp_path / "venv"
    run = lambda *extra: subprocess.run(["make", "-n", f"{venv}/.installed-test", f"VENV={venv}", *extra],  # noqa: E731
                                        cwd=repo_root, capture_output=True, text=True)
    plain = run().stdout
    assert "--index-url" not in plain and '-e ".[test]"' in plain
    line = next(l for l in run("TORCH_INDEX=https://download.pytorch.org/whl/cu126").stdout.splitlines()
                if "--index-url" in l)
    assert "--index-url https://download.pytorch.org/whl/cu126" in line
    pins = subprocess.run(["bash", "-c", line.split("cu126 ", 1)[1].replace("$(", "echo $(")], cwd=repo_root,
                          capture_output=True, text=True).stdout.split()
    declared = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert pins == [d for d in declared if d.startswith(("torch==", "torchvision=="))]
    missing = subprocess.run(["make", f"{venv}/bin/python", f"VENV={venv}", "PYTHON="], cwd=repo_root,
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "no Python 3.11 or 3.12 found" in missing.stdout
    assert "make PYTHON=/path/to/python3.12" in missing.stdout and not venv.exists()
