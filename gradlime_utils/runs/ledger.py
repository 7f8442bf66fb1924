"""The reproduction ledger: ``python -m gradlime_utils.runs.ledger``.

Builds ``book/reproduction.md`` from the manifests and result files that :mod:`gradlime_utils.runs.reproduce` wrote:
every figure and table of the papers, its status, our measured numbers beside the paper's and the
command that regenerates it. ``--store DIR`` also copies each chapter's manifest and the small result files the
ledger reads into ``DIR`` (the book keeps them in ``book/ledger/``), so the page can be rebuilt, and checked
against the hashes in the manifests, without rerunning anything.

::

    python -m gradlime_utils.runs.reproduce --chapter all --profile quick --out results
    python -m gradlime_utils.runs.ledger --results results --store book/ledger --out book/reproduction.md
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from gradlime_utils.experiments.ch03_gad import PAPER_TABLE1, PAPER_TABLE2
from gradlime_utils.experiments.ch05_evolime import null_counts
from gradlime_utils.experiments.ch06_normlime import above_random
from gradlime_utils.experiments.ch07_heatmap import (HEATMAP_METHODS, agreement_beyond_chance, insertion_beyond_random,
                                                     insertion_resolution)
from gradlime_utils.methods.attributions import METHODS
from gradlime_utils.metrics.stats import mean_ci
from gradlime_utils.plotting import pm
from gradlime_utils.runs.reproduce import sha256_file

PROFILE_ORDER = ("paper", "quick", "smoke")
# the result files the ledger reads (copied by --store); figures are referred to by name and hash only
DATA_FILES = ("summary.json", "lime_explanation.json", "lime_stability.csv", "gradlime_results.json",
              "gad_tables.json", "gad_table1.csv", "gad_table2.csv", "evaluation_tables.json", "evolime_runs.json",
              "normlime_kar.json", "heatmap_results.json")


def _json(folder: Path, name: str):
    path = folder / "results" / name
    return json.loads(path.read_text()) if path.is_file() else None


def _reads(name: str, needs: str | None = None):
    """Decorator of the item formatters: the formatter gets the parsed result file ``name`` (a dict, or a list of
    per-image rows); the item reads "" when the run wrote no such file, or one from before the key ``needs``
    existed (in the dict, or in the first row)."""
    def decorate(formatter):
        @functools.wraps(formatter)
        def read(folder: Path, *args) -> str:
            data = _json(folder, name)
            first = data[0] if isinstance(data, list) and data else data
            return formatter(data, *args) if data and (needs is None or needs in first) else ""
        return read
    return decorate


def _manifest_files(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text()).get("files", {})
    except (OSError, ValueError):
        return {}


def _figure(*names: str) -> Callable[[Path], str]:
    """The figure files a run wrote (as its manifest lists them: figures are not kept in the ledger store)."""
    def read(folder: Path) -> str:
        files = _manifest_files(folder)
        found = [n for n in names if f"results/{n}" in files or (folder / "results" / n).is_file()]
        return "figure " + ", ".join(f"`{n}`" for n in found) if found else ""
    return read


@_reads("lime_explanation.json")
def _l1(d: dict) -> str:
    return (f"{d['model']} on `{d['image']}`: {d['label_name']}, N = {d['num_samples']}, {d['num_superpixels']} "
            f"superpixels, surrogate R² {d['score']:.2f}")


def _gad_table(table: str, part: str = "numbers") -> Callable[[Path], str]:
    """D-7 / D-8: the real and null rows of class 1 under each hull rule (``part="numbers"``), or the verdicts of
    real − null (``part="verdicts"``)."""
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
                                 ", GAD 1: " + " / ".join(f"{v:.3g}" for v in t2["GAD 1"]))
            rows = [r for r in meta["null_comparison"] if r["rule"] == rule and r["table"] == f"Table {table}"
                    and r["occlusion"] in ("-", meta["occlusions"][0])]
            beyond = [m for m in cols if {r["verdict"] for r in rows if r["method"] == m} == {"GAD beyond null"}]
            against = [m for m in cols if any(r["verdict"] == "null beyond GAD" for r in rows if r["method"] == m)]
            if part == "numbers":
                parts.append(f"{rule}: {'; '.join(cells)}")
            else:
                parts.append(f"{rule}: GAD beyond its null (both classes): {', '.join(beyond) or 'none'}; null "
                             f"beyond GAD: {', '.join(against) or 'none'}")
        if part == "numbers":
            return f"{where} ({' / '.join(cols)}); " + " — ".join(parts)
        first = (meta["null_comparison"] or [{}])[0]
        if "trainings" not in first:  # a run from before trainings entered the interval
            return ("shuffled-label support models, one training per arm, 95% bootstrap CIs over images only "
                    "(not calibrated: a retrain moves every number); rerun for verdicts")
        trained = "/".join(str(k) for k in first["trainings"])
        return (f"shuffled-label support models, real − null with Welch's 95% CIs over {trained} trainings per arm, "
                f"Benjamini-Hochberg over each rule's 20 rows; " + " — ".join(parts))
    return read


def _paper_gad(table: str, rows: tuple[str, ...]) -> str:
    block = (PAPER_TABLE1 if table == "1" else PAPER_TABLE2)[("Cat×Dog", "ResNet")]
    return "Cat×Dog ResNet: " + " ; ".join(f"{r}: " + " / ".join(f"{v:g}" for v in block[r]) for r in rows if r in block)


def _band_text(band) -> str:
    return f"[{band[0]:.2f}, {band[1]:.2f}]" if band else "no band"


def _evaluation(keys: tuple[str, ...], metric: str) -> Callable[[Path], str]:
    """G-5/G-6/G-7: ``metric`` per method, mean ± 95% CI over images, beside the chance band of its kind."""
    def read(folder: Path) -> str:
        d = _json(folder, "evaluation_tables.json")
        if not d or "photo_chance" not in d:
            return ""
        rows = {r["method"]: r for r in d.get(keys[0], [])}
        cells = []
        for method in keys[1:]:
            r = rows.get(method)
            if r and r.get(metric) is not None:
                cells.append(f"{method} {pm(r[metric], r.get(f'{metric} ci95') or float('nan'))} "
                             f"(chance {_band_text(r.get(f'{metric} band'))})")
        return f"{metric} on {len(d['images'])} images ({d['model']}, N = {d['num_samples']}): " + "; ".join(cells)
    return read


def _evaluation_null(key: str, metrics: tuple[str, ...]) -> Callable[[Path], str]:
    """Which methods of a table lie outside the chance band of random maps of their kind, per metric."""
    def read(folder: Path) -> str:
        d = _json(folder, "evaluation_tables.json")
        if not d or "photo_chance" not in d:
            return ""
        rows = d.get(key, [])
        draws = next(iter(next(iter(d["photo_chance"]["bands"].values())).values()))["draws"]
        parts = []
        for m in metrics:
            notes = {r.get(f"{m} note") for r in rows if r.get(f"{m} note", "").startswith("n/a")}
            if notes and all(r.get(f"{m} note") for r in rows):
                parts.append(f"{m}: n/a ({next(iter(notes)).split(': ', 1)[-1].split(',')[0]})")
                continue
            marks = [f"{r['method']} {'▲' if r[f'{m} vs chance'] == 'above' else '▼'}" for r in rows
                     if r.get(f"{m} vs chance") in ("above", "below")]
            within = sum(r.get(f"{m} vs chance") == "within" for r in rows)
            flat = sum(r.get(f"{m} vs chance") == "degenerate" for r in rows)
            parts.append(f"{m}: {', '.join(marks) or 'none'} ({within} not shown beyond chance"
                         + (f", {flat} against a band with no spread" if flat else "") + ")")
        if not any("p chance" in k for r in rows for k in r):  # a run from before the rank rule
            return f"outside the 95% band of {draws} random maps of their kind (not calibrated): " + "; ".join(parts)
        return (f"beyond chance against {draws} random maps of their kind (rank p-values, Benjamini-Hochberg over "
                f"the table, then the method's own shifted maps): " + "; ".join(parts))
    return read


@_reads("evaluation_tables.json", "localisation_models")
def _localisation(d: dict) -> str:
    rows = {r["method"]: r for r in d["localisation"]}
    pick = [m for m in ("LIME", "GradLIME (feature)", "Grad-CAM", METHODS["guided_backprop"].label("GAD")) if m in rows]
    models = d["localisation_models"]
    return (f"tie-fair Pointing Game on {d['benchmark']['n']} benchmark images, mean ± 95% CI over "
            f"{len(models)} training seeds: " + "; ".join(
                f"{m} {pm(rows[m]['PointingGame'], rows[m]['PointingGame ci95'])}" for m in pick) +
            "; models (SHA-256, test accuracy): " + ", ".join(
                f"`{r['checkpoint_sha256'][:12]}` {r['test_accuracy']:.2f}" for r in models))


@_reads("evaluation_tables.json", "localisation_models")
def _localisation_null(d: dict) -> str:
    rows = d["localisation"]
    above = [r["method"] for r in rows if r.get("PointingGame vs chance") == "above" and r["method"] != "Oracle (ground truth)"]
    lime, cam = ({r["method"]: r for r in rows}.get(m, {}).get("PointingGame seeds") for m in ("LIME", "Grad-CAM"))
    order = ""
    if lime and cam:
        order = "; Grad-CAM above LIME in " + f"{sum(c > l for l, c in zip(lime, cam))} of {len(lime)} seeds"
    return f"above the random-map band (uniform / random blocks): {len(above)} of {len(rows) - 1} methods{order}"


def _stability_stats(d: dict, method: str, n: int, column: str) -> str:
    values = [r[column] for r in d["stability"] if r["method"] == method and r["N"] == n and r[column] is not None]
    mean, half = mean_ci(np.asarray(values, dtype=float))
    return pm(mean, half)


@_reads("evaluation_tables.json", "stability_summary")
def _stability(d: dict) -> str:
    n = max(r["N"] for r in d["stability"])
    images = len({r["image"] for r in d["stability"]})
    cells = [f"{m} {_stability_stats(d, m, n, 'jaccard_seeds')} / {_stability_stats(d, m, n, 'agreement_top_k')}"
             for m in ("LIME", "GradLIME (feature)")]
    return (f"N = {n}, {images} images, top-5 Jaccard across seeds / with the high-N LIME reference: "
            + "; ".join(cells))


@_reads("evaluation_tables.json", "stability_summary")
def _stability_null(d: dict) -> str:
    n = max(r["N"] for r in d["stability"])
    return (f"controls: Grad-CAM only (no samples) 1.00 / {_stability_stats(d, 'Grad-CAM only (no samples)', 0, 'agreement_top_k')}; "
            f"shuffled prior {_stability_stats(d, 'GradLIME (shuffled prior)', n, 'jaccard_seeds')} / "
            f"{_stability_stats(d, 'GradLIME (shuffled prior)', n, 'agreement_top_k')}")


@_reads("evolime_runs.json", "budget")
def _evolime_summary(rows: list[dict], kind: str) -> str:
    where = f"{rows[0]['model']} on {len(rows)} images, {rows[0]['runs']} runs each"
    if kind == "probability":
        return f"{where}: " + "; ".join(
            f"{r['image']} p {r['p_full']:.3f} (full) -> GA {r['evolved_mean']:.3f} [{r['evolved_low']:.3f}, "
            f"{r['evolved_high']:.3f}]" for r in rows)
    if kind == "probability-null":
        gains = "; ".join(f"{r['image']} {r['gain_over_random']:+.3f} [{r['gain_low']:+.3f}, {r['gain_high']:+.3f}]"
                          for r in rows)
        counts = null_counts(rows)
        beats, full = counts["beats"], counts["random_beats_full"]
        if "gain_p" not in rows[0]:  # a run from before independent random searches
            return (f"GA − random search (95% bootstrap CI over overlapping draws, not calibrated): {gains}; rerun "
                    f"for a verdict")
        return (f"random search with the GA's {rows[0]['budget']} queries beats the full image in {full} of "
                f"{len(rows)} images; GA − independent random searches (Welch's 95% CI): {gains}; beyond chance "
                f"(Benjamini-Hochberg over the images) in {beats} of {len(rows)} images")
    per_query = sum(r["lime_ms_per_query"] / r["ga_ms_per_query"] for r in rows) / len(rows)
    reach = sorted(q for r in rows for q in r["queries_to_random_median"] if q is not None)
    if kind == "time":
        return (f"{rows[0]['budget']} model queries vs LIME's {rows[0]['lime_queries']} (ratio "
                f"{rows[0]['lime_queries'] / rows[0]['budget']:.1f}); per query LIME/GA time {per_query:.2f}")
    return (f"at equal N the time per query is the same (ratio {per_query:.2f}); queries the GA needs to reach "
            f"random search's median: {reach[len(reach) // 2] if reach else 'never'} (median over runs)")


@_reads("normlime_kar.json")
def _kar(d: dict) -> str:
    parts = []
    for name, acc in d["accuracy"].items():
        means = [sum(a) / len(a) for a in acc]
        parts.append(f"{name} " + "/".join(f"{m:.3f}" for m in means))
    return (f"accuracy at {'/'.join(f'{f:.0%}' for f in d['fractions'])} kept ({len(d['seeds'])} paired seeds): "
            + "; ".join(parts))


@_reads("normlime_kar.json", "comparison")
def _kar_null(d: dict) -> str:
    if "differences" not in d["comparison"][0]:  # a run from before the rank rule
        return "random rankings' 95% range of an earlier run (not calibrated); rerun for verdicts"
    cells = []
    for r in d["comparison"]:
        diffs = "; ".join(f"NormLIME − {x['reference']} {pm(x['difference'], x['ci95'], 3, signed=True)}"
                          for x in r["differences"])
        state = ("undecided" if r.get("NormLIME vs random") == "undecided" else
                 ", ".join(above_random(r)) or "none")
        cells.append(f"{r['fraction']:.0%}: {diffs}; above {r['random n']} random rankings (rank p, "
                     f"Benjamini-Hochberg): {state}")
    s = d["agreement"]["spearman"]
    return "; ".join(cells) + f"; pooled NormLIME vs LIME-average Spearman {s[0]:.2f} [{s[1]:.2f}, {s[2]:.2f}]"


@_reads("heatmap_results.json", "insertion LIME linear")
def _heatmap(rows: list[dict]) -> str:
    mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    return (f"{len(rows)} photos: rho(LIME linear, Grad-CAM) {mean('rho_linear_gradcam'):.2f}, top-20% IoU "
            f"{mean('iou20_linear_gradcam'):.2f}; normalised insertion area LIME linear {mean('insertion LIME linear'):.3f} "
            f"vs Grad-CAM {mean('insertion Grad-CAM'):.3f}")


@_reads("heatmap_results.json", "insertion LIME linear")
def _heatmap_null(rows: list[dict]) -> str:
    n = len(rows)
    med = sum(r["insertion null superpixel"][0] for r in rows) / n
    if "insertion p superpixel LIME linear" not in rows[0]:  # a run from before the rank rule
        return (f"percentile rule of an earlier run, not calibrated (random superpixel maps: {med:.3f}); rerun "
                f"for verdicts")
    beyond = insertion_beyond_random(rows, HEATMAP_METHODS)
    agree = agreement_beyond_chance(rows)
    insertion = (f"LIME linear {beyond['LIME linear']}/{n}, Grad-CAM {beyond['Grad-CAM']}/{n} photos"
                 if insertion_resolution(rows) else
                 f"undecided ({rows[0]['n_random']} random maps per kind cannot reach p = 0.05)")
    return (f"insertion beyond both kinds of random maps (rank p, Benjamini-Hochberg): {insertion} (random "
            f"superpixel maps: {med:.3f}); agreement with Grad-CAM beyond superpixel permutations and map shifts "
            f"(Benjamini-Hochberg): rho {agree[('rho', 'linear')]}/{n}, IoU {agree[('iou20', 'linear')]}/{n}")


@_reads("heatmap_results.json", "top_rank_linear")
def _sensitivity(rows: list[dict]) -> str:
    ranks = sorted(r["top_rank_linear"] for r in rows)
    return (f"blur occlusion of every superpixel: LIME linear's top superpixel ranks {ranks} (1 = largest drop, of "
            f"~{rows[0]['M']}); label flips for some superpixel in {sum(r['flips_any'] > 0 for r in rows)}/{len(rows)}")


@_reads("heatmap_results.json", "top_rank_linear")
def _sensitivity_null(rows: list[dict]) -> str:
    top = sum(r["drop_top"] for r in rows) / len(rows)
    med = sum(r["drop_median"] for r in rows) / len(rows)
    return (f"drop of LIME's top superpixel {top:.3f} vs the median superpixel's {med:.3f}; Grad-CAM's top "
            f"superpixel ranks {sorted(r['top_rank_gradcam'] for r in rows)}")


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
    null: Callable[[Path], str] | str = "—"  # the comparison with chance / a null model that decides the number


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
         "no numbers published", _evaluation(("G-5", "LIME", "GradLIME (feature)", "Grad-CAM", "Saliency"),
                                             "FaithfulnessCorrelation"), "-p data_root=/path/to/imagenet/val",
         _evaluation_null("G-5", ("FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation",
                                  "IROF", "RegionPerturbation", "Sufficiency"))),
    Item("G-6", "GradLIME", "complexity table (3 Quantus metrics)", "04_evaluation", "partly reproduced",
         "no numbers published", _evaluation(("G-6", "LIME", "GradLIME (feature)", "Grad-CAM", "Saliency"),
                                             "Sparseness"), "-p data_root=/path/to/imagenet/val",
         _evaluation_null("G-6", ("Sparseness", "Complexity", "EffectiveComplexity"))),
    Item("G-7", "GradLIME", "cam_mode ablation", "04_evaluation", "partly reproduced",
         "FaithCorr 0.7222 for 'feature' (code comment, unverified)",
         _evaluation(("G-7", "none (LIME)", "feature (Eq. 9)", "importance"), "FaithfulnessCorrelation"),
         "-p data_root=/path/to/imagenet/val",
         _evaluation_null("G-7", ("FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation",
                                  "IROF"))),
    Item("D-1", "GAD", "Fig. 1: distancing", "03_gad", "reproduced", "schematic", _figure("D-1_distancing.png")),
    Item("D-2..D-5", "GAD", "Figs. 2-5: IG maps, support-model maps, hull, methods", "03_gad", "partly reproduced",
         "figures (ResNet18, cats vs dogs)", _figure("D-3_support_maps.png", "D-5_methods.png")),
    Item("D-6", "GAD", "Fig. 6: hulls of the least-activated images", "03_gad", "partly reproduced",
         "figure (2 datasets × 2 models)", _figure("D-6_hulls.png")),
    Item("D-7", "GAD", "Table 1: RC win counts", "03_gad", "partly reproduced",
         _paper_gad("1", ("Orig.1", "GAD 1")), _gad_table("1"),
         "-p dataset=oxford_pets -p arch=resnet18", _gad_table("1", "verdicts")),
    Item("D-8", "GAD", "Table 2: mean RS × 100", "03_gad", "partly reproduced",
         _paper_gad("2", ("Sup.1", "GAD 1")), _gad_table("2"),
         "-p dataset=oxford_pets -p arch=resnet18", _gad_table("2", "verdicts")),
    Item("E-1", "EvoLIME", "evolved explanations vs LIME", "05_evolime", "partly reproduced",
         "figure (4 ImageNet images, ResNet)", _figure("E-1_evolved_vs_lime.png")),
    Item("E-2", "EvoLIME", "DenseNet & MobileNet explanations", "05_evolime", "needs GPU and data",
         "figure", lambda f: "", "-p image_names=[...]"),
    Item("E-3", "EvoLIME", "probability statistics over seeded runs", "05_evolime", "partly reproduced",
         "\"improves the probability\"", lambda f: _evolime_summary(f, "probability"), "",
         lambda f: _evolime_summary(f, "probability-null")),
    Item("E-4", "EvoLIME", "run time vs LIME", "05_evolime", "partly reproduced",
         "\"more than ten times faster than LIME\"", lambda f: _evolime_summary(f, "time"), "",
         lambda f: _evolime_summary(f, "time-null")),
    Item("N-1", "NormLIME", "Fig. 1: digits 9 and 3", "06_normlime", "partly reproduced",
         "figure (VarGrad, SmoothGrad, LIME, NormLIME)", _figure("N-1_digits_9_and_3.png")),
    Item("N-2", "NormLIME", "KAR curve", "06_normlime", "partly reproduced", "unknown (full text unavailable)", _kar,
         "", _kar_null),
    Item("H-1/H-2", "LIME heat map", "LIME heat maps beside Grad-CAM", "07_lime_heatmap_vs_gradcam",
         "partly reproduced", "figures (fish, GoogLeNet, SqueezeNet)", _heatmap, "-p data_root=/path/to/fish",
         _heatmap_null),
    Item("H-3", "LIME heat map", "sensitivity analysis", "07_lime_heatmap_vs_gradcam", "partly reproduced",
         "unknown", _sensitivity, "-p data_root=/path/to/fish", _sensitivity_null),
    Item("H-4", "LIME heat map", "accuracy + LIME-vs-Grad-CAM metrics", "07_lime_heatmap_vs_gradcam",
         "not reproduced", "unknown (dataset and metrics not retrievable)", lambda f: ""),
    Item("new", "evaluation", "stability per model query", "04_evaluation", "new (not in the papers)", "—",
         _stability, "", _stability_null),
    Item("new", "evaluation", "localisation benchmark with ground truth", "04_evaluation", "new (not in the papers)",
         "—", _localisation, "", _localisation_null),
)


STORE = Path(__file__).resolve().parents[2] / "book" / "ledger"  # the book's store, in a checkout


def cost_text(chapter: str, store: str | Path = STORE, profile: str = "quick", missing_ok: bool = False) -> str:
    """How long ``chapter`` took in the ledger's run of ``profile`` (its manifest's ``wall_seconds``), as the
    chapters' headers and the teaching page say it: measured, never typed. ``missing_ok``: a chapter opened
    without the book's checkout (on Colab) says it has no measurement instead of failing."""
    path = Path(store) / chapter / profile / "manifest.json"
    if not path.is_file():
        if missing_ok:
            return "(not measured here: the ledger's store is not beside this copy of the package)"
        raise FileNotFoundError(f"chapter {chapter!r} has no {profile} manifest in the store (looked for {path})")
    seconds = float(json.loads(path.read_text())["wall_seconds"])
    amount = f"{seconds:.0f} seconds" if seconds < 90 else f"{seconds / 60:.0f} minutes"
    return f"about {amount} (measured in the ledger's run on a 2-core CPU)"


COST_MARK = re.compile(r"<!-- cost (\S+) -->.*?<!-- /cost -->", re.S)


def render_costs(page: str, store: str | Path = STORE) -> str:
    """``page`` with every ``<!-- cost CHAPTER -->...<!-- /cost -->`` span rewritten by :func:`cost_text`."""
    return COST_MARK.sub(lambda m: f"<!-- cost {m.group(1)} -->{cost_text(m.group(1), store)}<!-- /cost -->", page)


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
             "Every figure and table of the papers that this book reproduces, with its status, "
             "our numbers beside the paper's and, below each table, the command that regenerates it. This page is generated by "
             "`python -m gradlime_utils.runs.ledger` from the manifests that `python -m gradlime_utils.runs.reproduce` wrote; "
             "the manifests and the result files it reads are kept in `book/ledger/` (a test checks them against "
             "the hashes in the manifests and rebuilds this page from them).", "",
             "Status is that of the run listed under *Runs*: in the `quick` profile every model and dataset is a "
             "stand-in (EfficientNet-Lite0, scikit-image photos, MNIST 3 vs 8), so nothing computed on the papers' "
             "data can be called reproduced; items marked *needs GPU and data* only run in the `paper` profile.", "",
             "*Beyond chance / null* names the comparison that decides whether a number means anything: the "
             "chance band of random maps scored through the identical pipeline, a shuffled-label null model, or "
             "the controls. \"Not decided\" marks a number that has not yet been set against a matched null.", ""]
    methods: dict[str, list[Item]] = {}
    for item in ITEMS:
        methods.setdefault(item.method, []).append(item)
    used = {}
    for method, items in methods.items():
        lines += [f"## {method}", "", "| id | item | status | ours | beyond chance / null | paper |",
                  "|---|---|---|---|---|---|"]
        commands: dict[str, list[str]] = {}  # below the table, one line per command: the table stays narrow
        for item in items:
            folder, manifest = chapter_folder(results, item.chapter)
            null = ""
            if folder is None:
                status, ours, profile = "not run", "", "quick"
            else:
                used[item.chapter] = (folder, manifest)
                profile = manifest["profile"]
                status = item.status if profile != "smoke" else "smoke run only (numbers mean nothing)"
                ours = item.ours(folder)
                null = item.null(folder) if callable(item.null) else item.null
                # a figure reproduced from a stand-in run (D-1's logits, G-1's Z') is a stand-in too
                if profile != "paper" and item.status not in ("new (not in the papers)", "not reproduced",
                                                             "needs GPU and data"):
                    ours = f"{ours} (stand-in, `{profile}`)" if ours else ""
            command = (f"`python -m gradlime_utils.runs.reproduce --chapter {item.chapter} --profile "
                       f"{'paper' if item.status == 'needs GPU and data' else profile} --out results"
                       f"{' ' + item.params if item.params and item.status == 'needs GPU and data' else ''}`")
            if item.params and item.status != "needs GPU and data":
                command += f"; paper scale: `--profile paper --device cuda {item.params}`"
            commands.setdefault(command, []).append(item.id)
            lines.append(f"| {item.id} | {_cell(item.what)} | {status} | {_cell(ours)} | {_cell(null)} | "
                         f"{_cell(item.paper)} |")
        lines += ["", "Regenerate:", ""] + [f"- {', '.join(ids)}: {command}" for command, ids in commands.items()]
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
        # figures are not kept: the manifest names them and holds their hashes; reproduce regenerates them


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
            if path.is_file() and sha256_file(path) != digest:
                problems.append(f"{path}: hash differs from its manifest")
    return problems


# Keys and columns that a rerun of the same computation may change (timings, and whether a trained model came from
# the cache): a comparison of results leaves them out.
NOT_COMPARED = re.compile(r"second|(^|_)time|wall|started|elapsed|duration|ms_per|per_query|speed|cached|from_cache",
                          re.I)
# What a manifest records about the computation (the rest names the machine, the code and when it ran).
MANIFEST_RESULTS = ("parameters", "seed", "checkpoints", "inputs", "model_queries", "status")


def _differences(old, new, where: str, rtol: float) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{where}.{k}: only in the {'store' if k in old else 'new run'}"
               for k in sorted(set(old) ^ set(new)) if not NOT_COMPARED.search(str(k))]
        for k in sorted(set(old) & set(new)):
            if not NOT_COMPARED.search(str(k)):
                out += _differences(old[k], new[k], f"{where}.{k}", rtol)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} entries in the store, {len(new)} in the new run"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{where}[{i}]", rtol)]
    numbers = (int, float)
    if isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool) \
            and not isinstance(new, bool):
        same = (math.isnan(old) and math.isnan(new)) or math.isclose(old, new, rel_tol=rtol, abs_tol=1e-12)
        return [] if same else [f"{where}: {old!r} in the store, {new!r} in the new run"]
    if isinstance(old, str) and isinstance(new, str):  # display strings: a non-breaking space is still a space
        old, new = (" ".join(t.replace("\u200b", "").split()) for t in (old, new))
    return [] if old == new else [f"{where}: {old!r} in the store, {new!r} in the new run"]


def _csv_rows(path: Path) -> list[dict]:
    def value(text: str):
        try:
            return float(text)
        except ValueError:
            return text
    with path.open(newline="") as handle:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def compare(store_folder: Path, results: Path, rtol: float = 1e-9) -> list[str]:
    """Every number of the run under ``results`` that differs from the ledger's store ``store_folder``, timings (and
    cache provenance) aside:
    each chapter's stored data files and what its manifest records about the computation (parameters, seed,
    checkpoints, inputs, model query counts), compared value by value (floats to ``rtol``). A refactoring that
    preserves behaviour gives an empty list; so does a rerun of the same code."""
    out = []
    for manifest_path in sorted(Path(store_folder).glob("*/*/manifest.json")):
        chapter, profile = manifest_path.parent.parent.name, manifest_path.parent.name
        folder = Path(results) / chapter / profile
        if not (folder / "manifest.json").is_file():
            out.append(f"{chapter} ({profile}): not in the new run")
            continue
        old, new = (json.loads(p.read_text()) for p in (manifest_path, folder / "manifest.json"))
        for key in MANIFEST_RESULTS:
            out += _differences(old.get(key), new.get(key), f"{chapter} manifest {key}", rtol)
        for path in sorted((manifest_path.parent / "results").glob("*")):
            other = folder / "results" / path.name
            if not other.is_file():
                out.append(f"{chapter} {path.name}: not in the new run")
            elif path.suffix == ".json":
                out += _differences(json.loads(path.read_text()), json.loads(other.read_text()),
                                    f"{chapter} {path.name}", rtol)
            elif path.suffix == ".csv":
                out += _differences(_csv_rows(path), _csv_rows(other), f"{chapter} {path.name}", rtol)
            elif path.read_bytes() != other.read_bytes():
                out.append(f"{chapter} {path.name}: differs")
    return out


def machine_notes(store_folder: Path, results: Path) -> list[str]:
    """The chapters whose stored run was made on another CPU than the new one (or says nothing of its CPU): numbers
    equal bit for bit only on one kind of processor, so a difference there may be float32 rounding (and a model
    trained on each), not a change of behaviour. Compare a refactoring against a run of the old code made on the
    same machine."""
    notes = []
    for manifest_path in sorted(Path(store_folder).glob("*/*/manifest.json")):
        new_path = Path(results) / manifest_path.parent.parent.name / manifest_path.parent.name / "manifest.json"
        if not new_path.is_file():
            continue
        old, new = (json.loads(p.read_text()).get("cpu") for p in (manifest_path, new_path))
        if old != new:
            def name(cpu):
                return "an unrecorded CPU" if not cpu else f"{cpu['model']} ({', '.join(cpu['simd'] or ['?'])})"
            notes.append(f"{manifest_path.parent.parent.name}: stored on {name(old)}, rerun on {name(new)}")
    return notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.runs.ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="the --out folder of reproduce")
    parser.add_argument("--out", type=Path, default=Path("book/reproduction.md"))
    parser.add_argument("--store", type=Path, default=None, help="copy manifests and data files here first")
    parser.add_argument("--costs", type=Path, action="append", default=[],
                        help="a page whose <!-- cost CHAPTER --> spans to rewrite from the manifests (repeatable)")
    parser.add_argument("--compare", type=Path, default=None, metavar="STORE",
                        help="first list every number of --results that differs from STORE, timings aside; any "
                             "difference exits 1 and writes nothing (a refactoring's check that behaviour held)")
    args = parser.parse_args(argv)
    source = args.results.expanduser().resolve()
    if not source.is_dir():
        print(f"ledger: error: results folder {source} does not exist", file=sys.stderr)
        return 2
    if not any(source.rglob("manifest.json")):
        print(f"ledger: error: no manifest.json under {source}: give the --out folder of reproduce (nothing written; "
              f"a page of 'not run' items would replace the ledger)", file=sys.stderr)
        return 2
    if args.compare is not None:
        reference = args.compare.expanduser().resolve()
        if not any(reference.glob("*/*/manifest.json")):
            print(f"ledger: error: --compare {reference} holds no stored manifests", file=sys.stderr)
            return 2
        differences = compare(reference, source)
        for line in machine_notes(reference, source):
            print(f"note: {line}: float32 rounding differs between CPUs, so small differences here need not be a "
                  f"change of behaviour (compare with a run of the old code on this machine)", file=sys.stderr)
        for line in differences:
            print(f"differs: {line}")
        print(f"ledger: {len(differences)} differences from {reference} (timings aside)", file=sys.stderr)
        if differences:
            return 1
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
    for page in args.costs:
        try:
            page.write_text(render_costs(page.read_text(), source))
        except (OSError, KeyError, ValueError) as exc:
            print(f"ledger: error: cannot write the costs of {page}: {exc}", file=sys.stderr)
            return 2
        print(f"ledger: wrote the costs of {page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
