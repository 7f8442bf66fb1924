"""The paper profile, rehearsed on fixtures: ``python -m gradlime_utils.runs.rehearse`` (``make rehearse``).

Every chapter runs with ``profile="paper"`` on the CPU, through the same ``reproduce`` code a GPU user runs, against
the tiny datasets and randomly initialised torchvision weights of :mod:`gradlime_utils.runs.fixtures` (built in the
output folder, with ``$TORCH_HOME`` and ``$GRADLIME_DATA`` pointing at them). The scale is turned down only through
the chapters' sizes and declared parameters (:data:`REHEARSAL`); every cell of every paper branch executes. Then:

* the pre-flight check (``reproduce --check``) must fail on an empty machine and pass with the fixtures;
* what each chapter read (weights files, datasets; the manifests' ``inputs``) must be exactly what the check says
  it needs, so the check cannot drift from the chapters.

The numbers it produces mean nothing (random weights, flat-colour images): it proves that the paper path runs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path


from gradlime_utils.runs import reproduce
from gradlime_utils.runs.fixtures import UNKIND_PETS, paper_fixtures
from gradlime_utils.runs.paper import PAPER_WEIGHTS, chapter_needs, check
from gradlime_utils.runs.reproduce import NOTEBOOK_DIR, chapters, plan_runs
from gradlime_utils.runtime import progress_bar as tqdm

# Counts turned down through each chapter's sizes (its experiments module's SIZES) and declared parameters; their
# paper values stay the papers'.
REHEARSAL = {
    "00_setup_and_models": {},
    "01_lime": {"num_samples": 30, "stability_seeds": 2, "stability_sizes": [10, 20]},
    "02_gradlime": {"num_samples": 30},
    "03_gad": {"alphas": [2], "epochs": 1, "per_class": 1, "trainings": 1, "classifier_epochs": 1},
    "04_evaluation": {"n_images": 2, "num_samples": 30, "n_random_maps": 2, "metric_settings": "smoke",
                      "stability_seeds": 2, "stability_sizes": [10, 20], "localisation_seeds": [0],
                      "benchmark_images": (60, 4), "benchmark_epochs": (1, 1), "benchmark_samples": 20},
    "05_evolime": {"image_names": ["chelsea"], "population": 4, "generations": 2, "runs": 2, "draws": 2,
                   "lime_samples": 20},
    "06_normlime": {"per_class": 1, "num_samples": 20, "kar_seeds": [0], "n_random": 1, "fractions": [0.5],
                    "kar_epochs": 1, "kar_train_images": 200, "n_boot": 10},
    "07_lime_heatmap_vs_gradcam": {"max_images": 1, "num_samples": 20, "steps": 3, "n_random": 1, "n_perm": 5},
}
# Parameters pointing at fixture folders ("photos", "cub", ...: keys of `fixture_paths`), per chapter.
FIXTURE_PARAMETERS = {"07_lime_heatmap_vs_gradcam": {"data_root": "photos"}}
# Extra runs of one chapter with other choices of its paper parameters: (label, chapter, parameters).
VARIANTS = [("03_gad-cub", "03_gad", {"dataset": "cub_warbler_sparrow", "null": None})]


PAPER_BRANCH = re.compile(r'profile\s*[!=]=\s*"paper"')


def paper_chapters(notebook_dir: Path | None = None) -> dict[str, list[str]]:
    """Chapter -> its paper branches: the code lines that test ``profile == "paper"`` and the sizes whose paper
    value differs from the quick one (``SIZES.NAME: paper=VALUE``), for every chapter that has any."""
    out = {}
    for name, path in chapters(notebook_dir or NOTEBOOK_DIR).items():
        cells = json.loads(path.read_text())["cells"]
        lines = [line.strip() for c in cells if c["cell_type"] == "code"
                 for line in "".join(c["source"]).splitlines() if PAPER_BRANCH.search(line)]
        lines += [f"SIZES.{key}: paper={size.paper!r}" for key, size in reproduce.chapter_scale(name).items()
                  if size.paper != size.quick]
        if lines:
            out[name] = lines
    return out


def unrehearsed(branches: dict[str, list[str]]) -> list[str]:
    """The chapters with a paper branch that :data:`REHEARSAL` does not run."""
    return sorted(set(branches) - set(REHEARSAL))


def fixture_paths(folder: Path) -> dict[str, Path]:
    archs = sorted({a for archs in PAPER_WEIGHTS.values() for a in archs} | {"resnet18", "vgg16"})
    return paper_fixtures(folder, archs)


def _plans(names, out: Path, fixtures: dict, device: str = "cpu", runs_dir: str = "runs"):
    runs = [(name, name, {}) for name in names] + [v for v in VARIANTS if v[1] in names]
    plans = []
    for label, chapter, extra in runs:
        params = {**REHEARSAL[chapter], **extra,
                  **{k: str(fixtures[v]) for k, v in FIXTURE_PARAMETERS.get(chapter, {}).items()}}
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        plan, = plan_runs(chapter, "paper", device, out / runs_dir / label, params, NOTEBOOK_DIR)
        plans.append((label, plan))
    return plans


def _inputs_match(manifest: dict, chapter: str, parameters: dict) -> list[str]:
    """Differences between what the chapter read and what the pre-flight check says it needs."""
    needed = {(n.kind, n.name) for n in chapter_needs(chapter, parameters) if not n.optional}
    inputs = manifest.get("inputs", [])
    read = {(i["kind"], i["name"]) for i in inputs if i["kind"] != "skipped"}
    problems = [f"read but not listed by --check: {k} {n}" for k, n in sorted(read - needed)]
    problems += [f"listed by --check but never read: {k} {n}" for k, n in sorted(needed - read)]
    skipped = {Path(i["path"]).name for i in inputs if i["kind"] == "skipped"}
    if ("dataset", "oxford_pets") in read and skipped != {n for n, k in UNKIND_PETS.items() if k == "truncated"}:
        problems.append(f"the Pets fixture's truncated JPEG was not reported as skipped (skipped: {sorted(skipped)})")
    return problems


# what legitimately differs between two identical runs: clocks
_TIMING_KEY = re.compile(r"second|_ms_|ms_per|time|started|wall", re.IGNORECASE)


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not _TIMING_KEY.search(str(k))}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def compare_runs(first: Path, second: Path) -> list[str]:
    """The result files of two runs of one chapter that differ, timings aside: JSON files compared without keys
    that hold clock readings, every other file byte for byte (figures included). Empty when the runs agree."""
    differ = []
    a_files = {p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file()}
    b_files = {p.relative_to(second).as_posix() for p in second.rglob("*") if p.is_file()}
    for rel in sorted(a_files ^ b_files):
        differ.append(f"{rel}: only in one run")
    for rel in sorted(a_files & b_files):
        if rel.endswith("manifest.json") or rel.endswith(".ipynb") or rel.endswith(".pdf"):
            continue  # hold times and paths (PDFs embed a creation date)
        a, b = (first / rel), (second / rel)
        if rel.endswith(".json"):
            same = _without_timings(json.loads(a.read_text())) == _without_timings(json.loads(b.read_text()))
        else:
            same = a.read_bytes() == b.read_bytes()
        if not same:
            differ.append(rel)
    return differ


def rehearse(out: Path, names=None, progress: bool = True, device: str = "cpu", twice: bool = False) -> dict:
    """Build the fixtures under ``out``, check the pre-flight both ways, run the chapters on ``device``; with
    ``twice``, run each a second time and list the result files that differ (:func:`compare_runs`: on a GPU with
    determinism on, none should). Return the report."""
    out = Path(out).resolve()
    names = list(REHEARSAL) if names is None else list(names)
    unknown = [n for n in names if n not in REHEARSAL]
    if unknown:
        raise ValueError(f"no rehearsal for chapter(s) {unknown}; choose from {list(REHEARSAL)}")
    report = {"chapters": {}, "problems": [f"{c} has a paper branch but no rehearsal: add it to REHEARSAL"
                                           for c in unrehearsed(paper_chapters())]}
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "GRADLIME_DATA", "GRADLIME_CACHE")}
    started = time.time()
    try:
        os.environ["TORCH_HOME"], os.environ["GRADLIME_DATA"] = str(out / "empty" / "torch"), str(out / "empty" / "data")
        defaults = {n: {**reproduce.declared_values(reproduce.NOTEBOOK_DIR / f"{n}.ipynb"), **REHEARSAL[n]}
                    for n in names}
        ok_empty, _ = check(defaults)
        if ok_empty and any(n != "06_normlime" for n in names):
            report["problems"].append("the pre-flight check passed on an empty machine")
        fixtures = fixture_paths(out / "fixtures")
        os.environ["TORCH_HOME"], os.environ["GRADLIME_DATA"] = str(fixtures["torch"]), str(fixtures["data"])
        # a cache of its own, empty at first as on a fresh GPU machine: the models trained on fixtures and random
        # weights stay out of the user's cache
        os.environ["GRADLIME_CACHE"] = str(out / "cache")
        plans = _plans(names, out, fixtures, device)
        ok_full, text = check({label: {**reproduce.declared_values(p.notebook), **p.parameters}
                               for label, p in plans if label in REHEARSAL})
        report["check_with_fixtures"] = text
        if not ok_full:
            report["problems"].append("the pre-flight check failed with every fixture in place:\n" + text)
        report["fixtures_seconds"] = round(time.time() - started, 1)
        for label, plan in tqdm(plans, desc="paper rehearsal", unit="chapter", disable=not progress):
            manifest = reproduce.run_chapter(plan, force=True)
            entry = {"status": manifest["status"], "seconds": manifest.get("wall_seconds"),
                     "parameters": plan.parameters, "inputs": manifest.get("inputs", [])}
            if manifest["status"] != "ok":
                entry["error"] = manifest.get("error")
                report["problems"].append(f"{label} failed: {manifest.get('error')}")
            else:
                params = {**reproduce.declared_values(plan.notebook), **plan.parameters}
                for problem in _inputs_match(manifest, plan.chapter, params):
                    report["problems"].append(f"{label}: {problem}")
            report["chapters"][label] = entry
            if twice and manifest["status"] == "ok":
                (again,) = [p for lab, p in _plans(names, out, fixtures, device, "runs-again") if lab == label]
                second = reproduce.run_chapter(again, force=True)
                entry["second_run"] = compare_runs(plan.final_dir, again.final_dir) if second["status"] == "ok" \
                    else [f"second run failed: {second.get('error')}"]
                if entry["second_run"]:
                    report["problems"].append(f"{label}: two runs differ in {entry['second_run']}")
            if progress:
                tqdm.write(f"{entry['status']:<7} {label} ({entry['seconds']} s)", file=sys.stderr)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    report["seconds"] = round(time.time() - started, 1)
    (out / "rehearsal.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.runs.rehearse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("_build/rehearsal"), help="fixtures, runs and report")
    parser.add_argument("--chapter", default="all", help="'all' or comma-separated chapter names")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the CUDA rehearsal: book/reproducing.md)")
    parser.add_argument("--twice", action="store_true", help="run each chapter twice and compare the results")
    args = parser.parse_args(argv)
    names = None if args.chapter == "all" else [c.strip() for c in args.chapter.split(",")]
    try:
        report = rehearse(args.out.expanduser().resolve(), names, device=args.device, twice=args.twice)
    except ValueError as exc:
        print(f"rehearse: error: {exc}", file=sys.stderr)
        return 2
    for problem in report["problems"]:
        print(f"rehearse: {problem}", file=sys.stderr)
    total = report["seconds"]
    print(f"paper rehearsal: {len(report['chapters'])} run(s), {len(report['problems'])} problem(s), {total} s; "
          f"report in {args.out / 'rehearsal.json'}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.exit(main())
