"""Parameter sweeps over a chapter on Dask distributed: ``python -m gradlime_utils.runs.sweep``.

::

    # GAD over datasets x architectures on a GPU machine (one Dask worker per point, a LocalCluster)
    python -m gradlime_utils.runs.sweep --chapter 03_gad --profile paper --device cuda --out results \\
        --grid dataset=[oxford_pets,cub_warbler_sparrow] --grid arch=[resnet18,vgg16] --workers 2

    # the evaluation chapter over image shards, on an existing cluster
    python -m gradlime_utils.runs.sweep --chapter 04_evaluation --profile paper --out results --scheduler tcp://host:8786 \\
        --grid 'image_names=[["/val/a.JPEG","/val/b.JPEG"],["/val/c.JPEG","/val/d.JPEG"]]'

Every point of the grid is one :mod:`gradlime_utils.runs.reproduce` run of the chapter with those parameters, written to
``OUT/<chapter>/<profile>/sweep/<point>/`` with its own manifest (and skipped when that manifest still matches).
Dask only schedules the points: a ``LocalCluster`` with ``--workers`` processes by default, or the cluster at
``--scheduler``. The merge does not depend on the order in which points finish: points are sorted by their
parameters, every CSV table a chapter writes is concatenated across points in that order with the point's
parameters as leading columns, and ``sweep.json`` lists every point with its status and manifest.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import re
import sys
from pathlib import Path


from gradlime_utils.runs.paper import check
from gradlime_utils.runs.reproduce import (NOTEBOOK_DIR, Plan, ReproduceError, check_writable, declared_values,
                                           parse_parameter, plan_runs, resolved_device, run_chapter)
from gradlime_utils.runtime import progress_bar as tqdm


def parse_grid(items: list[str]) -> dict[str, list]:
    """``key=[v1,v2,...]`` per axis; values are Python literals when they are one, else strings."""
    grid: dict[str, list] = {}
    for item in items:
        key, value = parse_parameter(item)
        if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
            parts = [v.strip() for v in value[1:-1].split(",")]
            if any(not v for v in parts) and value[1:-1].strip():
                raise ReproduceError(f"grid axis {key!r} has an empty value in {value}: write {key}=[v1,v2,...]")
            value = [parse_parameter(f"x={v}")[1] for v in parts if v]
        if not isinstance(value, list) or not value:
            raise ReproduceError(f"grid axis {key!r} needs a non-empty list of values, e.g. {key}=[1,2]")
        seen = [json.dumps(v, sort_keys=True) for v in value]
        repeated = sorted({v for v in seen if seen.count(v) > 1})
        if repeated:
            raise ReproduceError(f"grid axis {key!r} repeats {', '.join(repeated)}: each point runs once")
        if key in grid:
            raise ReproduceError(f"grid axis {key!r} is given twice")
        grid[key] = value
    if not grid:
        raise ReproduceError("a sweep needs at least one --grid axis")
    return grid


def point_id(params: dict) -> str:
    """A stable folder name for one point: its sorted key=value pairs, made file-system safe."""
    text = "__".join(f"{k}={json.dumps(params[k], sort_keys=True)}" for k in sorted(params))
    slug = re.sub(r"[^A-Za-z0-9=._-]+", "-", text).strip("-")
    if len(slug) > 120:
        slug = slug[:100] + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return slug


def plan_sweep(chapter: str, profile: str, device: str, out: Path, grid: dict[str, list], fixed: dict,
               notebook_dir: Path = NOTEBOOK_DIR) -> list[tuple[dict, Plan]]:
    """One checked :class:`Plan` per grid point, sorted by point id (the merge order)."""
    if chapter == "all":
        raise ReproduceError("a sweep runs one chapter; name it with --chapter")
    overlap = sorted(set(grid) & set(fixed))
    if overlap:
        raise ReproduceError(f"parameter(s) {overlap} are both swept (--grid) and fixed (-p)")
    points = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        (plan,) = plan_runs(chapter, profile, device, out, {**fixed, **point}, notebook_dir)
        plan.final_dir = out / chapter / profile / "sweep" / point_id(point)
        points.append((point, plan))
    return sorted(points, key=lambda pp: point_id(pp[0]))


def merge(points: list[tuple[dict, Plan]], manifests: list[dict], sweep_dir: Path) -> dict:
    """Write ``sweep.json`` and every CSV table concatenated across points, in point order."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    order = sorted(range(len(points)), key=lambda i: point_id(points[i][0]))
    summary = {"points": [{"point": points[i][0], "id": point_id(points[i][0]), "status": manifests[i]["status"],
                           "error": manifests[i].get("error"), "folder": str(points[i][1].final_dir),
                           "wall_seconds": manifests[i].get("wall_seconds")} for i in order]}
    tables: dict[str, list[tuple[dict, Path]]] = {}
    for i in order:
        if manifests[i]["status"] == "failed":
            continue
        for csv_path in sorted((points[i][1].final_dir / "results").rglob("*.csv")):
            rel = csv_path.relative_to(points[i][1].final_dir / "results").as_posix()
            tables.setdefault(rel, []).append((points[i][0], csv_path))
    for rel, parts in sorted(tables.items()):
        target = sweep_dir / "merged" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        axes = list(parts[0][0])
        with open(target, "w", newline="") as out:
            writer = None
            for point, path in parts:
                with open(path, newline="") as fh:
                    reader = csv.reader(fh)
                    header = next(reader, None)
                    if header is None:
                        continue
                    if writer is None:
                        writer = csv.writer(out)
                        writer.writerow(axes + header)
                    for row in reader:
                        writer.writerow([json.dumps(point[a]) if not isinstance(point[a], str) else point[a]
                                         for a in axes] + row)
        summary.setdefault("merged_tables", []).append(str(target.relative_to(sweep_dir)))
    (sweep_dir / "sweep.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run_sweep(points: list[tuple[dict, Plan]], scheduler: str | None = None, workers: int = 2,
              force: bool = False, progress: bool = True) -> list[dict]:
    """Run every point on Dask (a LocalCluster of ``workers`` processes, or the cluster at ``scheduler``)."""
    from dask.distributed import Client, LocalCluster, as_completed  # lazy: heavy import

    if scheduler is None:
        if not isinstance(workers, int) or workers < 1:
            raise ReproduceError(f"--workers must be a positive integer, got {workers!r}")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        cluster = None
        if not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://[^\s/:]+(:\d+)?/?", scheduler or ""):
            raise ReproduceError(f"--scheduler must be a Dask scheduler address such as tcp://host:8786, got "
                                 f"{scheduler!r}")
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as exc:
            raise ReproduceError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    try:
        futures = {client.submit(run_chapter, plan, force=force, key=f"point-{point_id(point)}", pure=False): i
                   for i, (point, plan) in enumerate(points)}
        manifests: list[dict | None] = [None] * len(points)
        for future in tqdm(as_completed(futures), total=len(futures), desc="sweep points", disable=not progress):
            i = futures[future]
            try:
                manifests[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker is one failed point, not a lost sweep
                manifests[i] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return manifests


def sweep_preflight(points: list[tuple[dict, Plan]], profile: str) -> tuple[bool, str]:
    """:func:`gradlime_utils.runs.paper.check` over every point of the grid (each point's parameters decide what it
    reads: ``-p`` ``dataset`` or ``arch`` may be swept), labelled by point."""
    wanted = {f"{plan.chapter} ({point_id(point)})": {**declared_values(plan.notebook), **plan.parameters}
              for point, plan in points}
    return check(wanted, profile)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.runs.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", required=True)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=[V1,V2,...]",
                        help="one swept parameter and its values (repeatable: the sweep is their product)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter fixed for every point")
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (without --scheduler)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        grid = parse_grid(args.grid)
        fixed = dict(parse_parameter(p) for p in args.parameter)
        points = plan_sweep(args.chapter, args.profile, args.device, args.out, grid, fixed, args.notebooks)
        check_writable(args.out)
        resolved_device(args.device)
        ok, report = sweep_preflight(points, args.profile)
        if not ok:  # before any worker starts: a missing file found now, not after an hour of other points
            print(report, file=sys.stderr)
            print("sweep: error: the grid needs files that are missing (listed above); fetch them first",
                  file=sys.stderr)
            return 2
        manifests = run_sweep(points, args.scheduler, args.workers, args.force)
    except ReproduceError as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        return 2
    sweep_dir = args.out / args.chapter / args.profile / "sweep"
    summary = merge(points, manifests, sweep_dir)
    failed = [p["id"] for p in summary["points"] if p["status"] == "failed"]
    print(f"sweep: {len(points) - len(failed)} of {len(points)} point(s) ok; summary in {sweep_dir / 'sweep.json'}",
          file=sys.stderr)
    for p in summary["points"]:
        if p["status"] == "failed":
            print(f"FAILED  {p['id']}: {p['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
