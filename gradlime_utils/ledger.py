"""The reproduction ledger: ``python -m gradlime_utils.ledger``.

Builds ``book/reproduction.md`` from the manifests and result files that :mod:`gradlime_utils.reproduce` wrote:
every paper figure and table of METHODS section 7, its status, our measured numbers beside the paper's and the
command that regenerates it. ``--store DIR`` also copies each chapter's manifest and the small result files the
ledger reads into ``DIR`` (the book keeps them in ``book/ledger/``), so the page can be rebuilt, and checked
against the hashes in the manifests, without rerunning anything.

::

    python -m gradlime_utils.reproduce --chapter all --profile quick --out results
    python -m gradlime_utils.ledger --results results --store book/ledger --out book/reproduction.md
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .reproduce import sha256_file

PROFILE_ORDER = ("paper", "quick", "smoke")
# the result files the ledger reads (copied by --store); figures are referred to by name and hash only
DATA_FILES = ("summary.json", "lime_explanation.json", "lime_stability.csv", "gradlime_results.json",
              "gad_tables.json", "gad_table1.csv", "gad_table2.csv", "evaluation_tables.json", "evolime_runs.json",
              "normlime_kar.json", "heatmap_results.json")


def _json(folder: Path, name: str):
    path = folder / "results" / name
    return json.loads(path.read_text()) if path.is_file() else None


def _figure(*names: str) -> Callable[[Path], str]:
    def read(folder: Path) -> str:
        found = [n for n in names if (folder / "results" / n).is_file()]
        return "figure " + ", ".join(f"`{n}`" for n in found) if found else ""
    return read


def _l1(folder: Path) -> str:
    d = _json(folder, "lime_explanation.json")
    if not d:
        return ""
    return (f"{d['model']} on `{d['image']}`: {d['label_name']}, N = {d['num_samples']}, {d['num_superpixels']} "
            f"superpixels, surrogate R² {d['score']:.2f}")


def _gad_table(table: str) -> Callable[[Path], str]:
    """D-7 / D-8: the real and null rows of class 1 under each hull rule, and the verdicts of real - null."""
    def read(folder: Path) -> str:
        meta = _json(folder, "gad_tables.json")
        if not meta or "null_comparison" not in meta:
            return ""
        cols = meta["methods"]
        where = f"{meta.get('model', '?')} on {meta.get('dataset', '?')}, {meta.get('n_images', '?')} images"
        parts = []
        for rule, models in meta["tables"].items():
            cells = []
            for model, tables in models.items():
                if table == "1":
                    row = tables["table1"]["GAD 1"]
                    cells.append(f"{model} GAD 1: " + " / ".join(f"{v:g}" for v in row))
                else:
                    t2 = tables["table2"][meta["occlusions"][0]]
                    cells.append(f"{model} Sup.1: " + " / ".join(f"{v:.3g}" for v in t2["Sup.1"]) +
                                 f", GAD 1: " + " / ".join(f"{v:.3g}" for v in t2["GAD 1"]))
            rows = [r for r in meta["null_comparison"] if r["rule"] == rule and r["table"] == f"Table {table}"
                    and r["occlusion"] in ("-", meta["occlusions"][0])]
            beyond = [m for m in cols if {r["verdict"] for r in rows if r["method"] == m} == {"GAD beyond null"}]
            against = [m for m in cols if any(r["verdict"] == "null beyond GAD" for r in rows if r["method"] == m)]
            parts.append(f"{rule}: {'; '.join(cells)}; GAD beyond its null (both classes): "
                         f"{', '.join(beyond) or 'none'}; null beyond GAD: {', '.join(against) or 'none'}")
        return f"{where} ({' / '.join(cols)}); " + " — ".join(parts)
    return read


def _paper_gad(table: str, rows: tuple[str, ...]) -> str:
    from .gad_eval import PAPER_TABLE1, PAPER_TABLE2

    block = (PAPER_TABLE1 if table == "1" else PAPER_TABLE2)[("Cat×Dog", "ResNet")]
    return "Cat×Dog ResNet: " + " ; ".join(f"{r}: " + " / ".join(f"{v:g}" for v in block[r]) for r in rows if r in block)


def _evaluation(keys: tuple[str, ...], metric: str) -> Callable[[Path], str]:
    def read(folder: Path) -> str:
        d = _json(folder, "evaluation_tables.json")
        if not d:
            return ""
        table = d.get(keys[0], [])
        cells = []
        for method in keys[1:]:
            row = next((r for r in table if r["method"] == method), None)
            if row and row.get(metric) == row.get(metric):  # not NaN
                cells.append(f"{method} {row[metric]:.3f} ± {row[f'{metric} ci95']:.2g}")
        return f"{metric} on {len(d['images'])} images ({d['model']}, N = {d['num_samples']}): " + "; ".join(cells)
    return read


def _localisation(folder: Path) -> str:
    d = _json(folder, "evaluation_tables.json")
    if not d:
        return ""
    rows = {r["method"]: r for r in d["localisation"]}
    pick = [m for m in ("LIME", "GradLIME (feature)", "Grad-CAM", "guided backprop (GAD)", "Random (control)")
            if m in rows]
    return f"Pointing Game on {d['benchmark']['n']} benchmark images: " + "; ".join(
        f"{m} {rows[m]['PointingGame']:.2f}" for m in pick)


def _stability(folder: Path) -> str:
    d = _json(folder, "evaluation_tables.json")
    if not d:
        return ""
    n = max(r["N"] for r in d["stability"])
    j = {r["method"]: r["jaccard_top5"] for r in d["stability"] if r["N"] == n}
    return f"top-5 Jaccard across seeds at N = {n}: " + "; ".join(f"{m} {v:.2f}" for m, v in j.items())


def _evolime_summary(folder: Path, kind: str) -> str:
    rows = _json(folder, "evolime_runs.json")
    if not rows:
        return ""
    r = rows[0]
    if kind == "probability":
        return (f"{r['model']} on `{r['image']}`: p {r['p_full']:.3f} (full image) -> {r['evolved_mean']:.3f} ± "
                f"{r['evolved_std']:.3f} evolved, better in {r['improves_in']}/{r['runs']} runs")
    return (f"{r['ga_queries']} model queries vs LIME's {r['lime_queries']}; {r['ga_seconds']:.1f} s vs "
            f"{r['lime_seconds']:.1f} s: speed-up {r['lime_seconds'] / r['ga_seconds']:.1f}x")


def _kar(folder: Path) -> str:
    d = _json(folder, "normlime_kar.json")
    if not d:
        return ""
    parts = []
    for name, acc in d["accuracy"].items():
        means = [sum(a) / len(a) for a in acc]
        parts.append(f"{name} " + "/".join(f"{m:.3f}" for m in means))
    return f"accuracy at {'/'.join(f'{f:.0%}' for f in d['fractions'])} kept ({len(d['seeds'])} seeds): " + "; ".join(parts)


def _heatmap(folder: Path) -> str:
    rows = _json(folder, "heatmap_results.json")
    if not rows:
        return ""
    mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    return (f"{len(rows)} photos: rho(LIME linear, Grad-CAM) {mean('rho_linear_gradcam'):.2f}, top-20% IoU "
            f"{mean('iou20_linear_gradcam'):.2f}; insertion AUC LIME {mean('insertion_auc LIME linear'):.3f} vs "
            f"Grad-CAM {mean('insertion_auc Grad-CAM'):.3f} vs random {mean('insertion_auc random'):.3f}")


def _sensitivity(folder: Path) -> str:
    rows = _json(folder, "heatmap_results.json")
    if not rows:
        return ""
    top = sum(r["drop_top"] for r in rows) / len(rows)
    rnd = sum(r["drop_random"] for r in rows) / len(rows)
    flips = sum(bool(r["flip_top"]) for r in rows)
    return f"probability drop, top superpixel {top:.3f} vs random {rnd:.3f}; label flips {flips}/{len(rows)}"


class LedgerError(ValueError):
    """A results folder the ledger cannot read, or a destination it cannot write (the message names the file)."""


@dataclass(frozen=True)
class Item:
    id: str
    method: str
    what: str
    chapter: str
    status: str  # in the quick profile (the paper profile upgrades nothing automatically: see the note)
    paper: str
    ours: Callable[[Path], str]
    params: str = ""


ITEMS = (
    Item("L-1", "LIME", "top-label explanation of one image", "01_lime", "partly reproduced",
         "ImageNet photo, Inception (Ribeiro et al.)", _l1),
    Item("G-1", "GradLIME", "framework diagram", "02_gradlime", "reproduced", "schematic",
         _figure("G-1_framework.png")),
    Item("G-2", "GradLIME", "6 black boxes × {Original, Activation, LIME, Ours}", "02_gradlime", "partly reproduced",
         "figure (ImageNet bolete, six torchvision models)", _figure("G-2_black_boxes.png")),
    Item("G-3", "GradLIME", "ResNet layer1..4 × {Original, Activation, LIME, Ours}", "02_gradlime",
         "partly reproduced", "figure (ResNet18)", _figure("G-3_layers.png")),
    Item("G-4", "GradLIME", "feature vs weight curves", "02_gradlime", "partly reproduced", "figure",
         _figure("G-4_feature_weights.png")),
    Item("G-5", "GradLIME", "faithfulness table (6 Quantus metrics)", "04_evaluation", "partly reproduced",
         "no numbers published", _evaluation(("G-5", "LIME", "GradLIME (feature)", "Random (control)"),
                                             "FaithfulnessCorrelation"), "-p data_root=/path/to/imagenet/val"),
    Item("G-6", "GradLIME", "complexity table (3 Quantus metrics)", "04_evaluation", "partly reproduced",
         "no numbers published", _evaluation(("G-6", "LIME", "GradLIME (feature)", "Random (control)"),
                                             "Sparseness"), "-p data_root=/path/to/imagenet/val"),
    Item("G-7", "GradLIME", "cam_mode ablation", "04_evaluation", "partly reproduced",
         "FaithCorr 0.7222 for 'feature' (code comment, unverified)",
         _evaluation(("G-7", "none (LIME)", "feature (Eq. 9)", "importance"), "FaithfulnessCorrelation"),
         "-p data_root=/path/to/imagenet/val"),
    Item("D-1", "GAD", "Fig. 1: distancing", "03_gad", "reproduced", "schematic", _figure("D-1_distancing.png")),
    Item("D-2..D-5", "GAD", "Figs. 2-5: IG maps, support-model maps, hull, methods", "03_gad", "partly reproduced",
         "figures (ResNet18, cats vs dogs)", _figure("D-3_support_maps.png", "D-5_methods.png")),
    Item("D-6", "GAD", "Fig. 6: hulls of the least-activated images", "03_gad", "partly reproduced",
         "figure (2 datasets × 2 models)", _figure("D-6_hulls.png")),
    Item("D-7", "GAD", "Table 1: RC win counts", "03_gad", "partly reproduced",
         _paper_gad("1", ("Orig.1", "GAD 1")), _gad_table("1"),
         "-p dataset=oxford_pets -p arch=resnet18"),
    Item("D-8", "GAD", "Table 2: mean RS × 100", "03_gad", "partly reproduced",
         _paper_gad("2", ("Sup.1", "GAD 1")), _gad_table("2"),
         "-p dataset=oxford_pets -p arch=resnet18"),
    Item("E-1", "EvoLIME", "evolved explanations vs LIME", "05_evolime", "partly reproduced",
         "figure (4 ImageNet images, ResNet)", _figure("E-1_evolved_vs_lime.png")),
    Item("E-2", "EvoLIME", "DenseNet & MobileNet explanations", "05_evolime", "needs GPU and data",
         "figure", lambda f: "", "-p image_names=[...]"),
    Item("E-3", "EvoLIME", "30-run probability statistics", "05_evolime", "partly reproduced",
         "\"improves the probability\"", lambda f: _evolime_summary(f, "probability")),
    Item("E-4", "EvoLIME", "run time vs LIME", "05_evolime", "partly reproduced",
         "\"more than ten times faster than LIME\"", lambda f: _evolime_summary(f, "time")),
    Item("N-1", "NormLIME", "Fig. 1: digits 9 and 3", "06_normlime", "partly reproduced",
         "figure (VarGrad, SmoothGrad, LIME, NormLIME)", _figure("N-1_digits_9_and_3.png")),
    Item("N-2", "NormLIME", "KAR curve", "06_normlime", "partly reproduced", "unknown (full text unavailable)", _kar),
    Item("H-1/H-2", "LIME heat map", "LIME heat maps beside Grad-CAM", "07_lime_heatmap_vs_gradcam",
         "partly reproduced", "figures (fish, GoogLeNet, SqueezeNet)", _heatmap, "-p data_root=/path/to/fish"),
    Item("H-3", "LIME heat map", "sensitivity analysis", "07_lime_heatmap_vs_gradcam", "partly reproduced",
         "unknown", _sensitivity, "-p data_root=/path/to/fish"),
    Item("H-4", "LIME heat map", "accuracy + LIME-vs-Grad-CAM metrics", "07_lime_heatmap_vs_gradcam",
         "not reproduced", "unknown (dataset and metrics not retrievable)", lambda f: ""),
    Item("new", "evaluation", "stability per model query", "04_evaluation", "new (not in the papers)", "—",
         _stability),
    Item("new", "evaluation", "localisation benchmark with ground truth", "04_evaluation", "new (not in the papers)",
         "—", _localisation),
)


def chapter_folder(results: Path, chapter: str) -> tuple[Path | None, dict | None]:
    """The most complete successful run of a chapter (paper before quick before smoke)."""
    for profile in PROFILE_ORDER:
        folder = results / chapter / profile
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                m = json.loads(manifest.read_text())
            except (OSError, ValueError) as exc:
                raise LedgerError(f"manifest {manifest} is unreadable ({type(exc).__name__}: {exc}); rerun that "
                                  f"chapter with reproduce --force or remove the file") from exc
            if m.get("status") == "ok":
                return folder, m
    return None, None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def render(results: Path) -> str:
    """The ledger page (MyST Markdown) for the runs under ``results``."""
    lines = ["# Reproduction ledger", "",
             "Every figure and table of the papers that this book reproduces (METHODS section 7), with its status, "
             "our numbers beside the paper's and the command that regenerates it. This page is generated by "
             "`python -m gradlime_utils.ledger` from the manifests that `python -m gradlime_utils.reproduce` wrote; "
             "the manifests and the result files it reads are kept in `book/ledger/` (a test checks them against "
             "the hashes in the manifests and rebuilds this page from them).", "",
             "Status is that of the run listed under *Runs*: in the `quick` profile every model and dataset is a "
             "stand-in (EfficientNet-Lite0, scikit-image photos, MNIST 3 vs 8), so nothing computed on the papers' "
             "data can be called reproduced; items marked *needs GPU and data* only run in the `paper` profile.", ""]
    methods: dict[str, list[Item]] = {}
    for item in ITEMS:
        methods.setdefault(item.method, []).append(item)
    used = {}
    for method, items in methods.items():
        lines += [f"## {method}", "", "| id | item | status | ours | paper | command |", "|---|---|---|---|---|---|"]
        for item in items:
            folder, manifest = chapter_folder(results, item.chapter)
            if folder is None:
                status, ours, profile = "not run", "", "quick"
            else:
                used[item.chapter] = (folder, manifest)
                profile = manifest["profile"]
                status = item.status if profile != "smoke" else "smoke run only (numbers mean nothing)"
                ours = item.ours(folder)
                if profile != "paper" and item.status not in ("reproduced", "new (not in the papers)", "not reproduced",
                                                             "needs GPU and data"):
                    ours = f"{ours} (stand-in, `{profile}`)" if ours else ""
            command = (f"`python -m gradlime_utils.reproduce --chapter {item.chapter} --profile "
                       f"{'paper' if item.status == 'needs GPU and data' else profile} --out results"
                       f"{' ' + item.params if item.params and item.status == 'needs GPU and data' else ''}`")
            if item.params and item.status != "needs GPU and data":
                command += f"; paper scale: `--profile paper --device cuda {item.params}`"
            lines.append(f"| {item.id} | {_cell(item.what)} | {status} | {_cell(ours)} | {_cell(item.paper)} | "
                         f"{command} |")
        lines.append("")
    lines += ["## Runs", "", "| chapter | profile | commit | code changed | device | wall time | finished files |",
              "|---|---|---|---|---|---|---|"]
    for chapter, (folder, m) in sorted(used.items()):
        commit = (m.get("git") or {}).get("commit") or "unknown"
        dirty = (m.get("git") or {}).get("dirty")
        lines.append(f"| {chapter} | {m['profile']} | `{commit[:10]}` | {'yes' if dirty else 'no'} | "
                     f"{m['device']['resolved']} | {m.get('wall_seconds', '?')} s | {len(m.get('files', {}))} |")
    lines.append("")
    return "\n".join(lines)


def store(results: Path, target: Path) -> None:
    """Copy each chapter's manifest and the ledger's data files from ``results`` into ``target``."""
    if target.exists():
        shutil.rmtree(target)
    for chapter in sorted({item.chapter for item in ITEMS} | {"00_setup_and_models"}):
        folder, manifest = chapter_folder(results, chapter)
        if folder is None:
            continue
        dest = target / chapter / manifest["profile"]
        (dest / "results").mkdir(parents=True)
        shutil.copy2(folder / "manifest.json", dest / "manifest.json")
        for name in DATA_FILES:
            if (folder / "results" / name).is_file():
                shutil.copy2(folder / "results" / name, dest / "results" / name)
        for rel in manifest.get("files", {}):  # figures: an empty marker keeps the name, the hash stays in the manifest
            if rel.startswith("results/") and rel.endswith(".png") and not (dest / rel).exists():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_text("")


def verify(stored: Path) -> list[str]:
    """Stored data files whose SHA-256 differs from the one their manifest recorded."""
    problems = []
    for manifest_path in sorted(stored.glob("*/*/manifest.json")):
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise LedgerError(f"manifest {manifest_path} is unreadable ({type(exc).__name__}: {exc})") from exc
        folder = manifest_path.parent
        for rel, digest in manifest.get("files", {}).items():
            path = folder / rel
            if path.is_file() and path.stat().st_size and sha256_file(path) != digest:
                problems.append(f"{path}: hash differs from its manifest")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="the --out folder of reproduce")
    parser.add_argument("--out", type=Path, default=Path("book/reproduction.md"))
    parser.add_argument("--store", type=Path, default=None, help="copy manifests and data files here first")
    args = parser.parse_args(argv)
    source = args.results.expanduser().resolve()
    if not source.is_dir():
        print(f"ledger: error: results folder {source} does not exist", file=sys.stderr)
        return 2
    try:
        if args.store is not None:
            store(source, args.store)
            source = args.store
        problems = verify(source)
        if problems:
            print("ledger: error: " + "; ".join(problems), file=sys.stderr)
            return 1
        page = render(source)
    except LedgerError as exc:
        print(f"ledger: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ledger: error: cannot write {exc.filename or args.store}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        args.out.write_text(page)
    except OSError as exc:
        print(f"ledger: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"ledger: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
