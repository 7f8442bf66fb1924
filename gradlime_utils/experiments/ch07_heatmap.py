"""Chapter 07 (LIME heat maps vs Grad-CAM): every photo and model through one study (agreement beyond
granularity, deletion and insertion against random maps, occlusion of the marked regions), the tables, the verdicts
and the figures; the LIME heat map itself is :mod:`gradlime_utils.methods.lime_heatmap`."""
from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gradlime_utils.data.images import load_image
from gradlime_utils.data.models import ModelBundle, load_model
from gradlime_utils.methods.gradcam import gradcam
from gradlime_utils.methods.lime_heatmap import LimeHeatmap, holdout_r2, lime_heatmap
from gradlime_utils.methods.neighborhood import Neighborhood, sample_neighborhood, segment_image
from gradlime_utils.methods.surrogate import superpixel_means
from gradlime_utils.metrics.compare import as_map, rank_agreement, top_fraction_mask, top_region_iou
from gradlime_utils.metrics.maps import deletion_insertion, occluded_image, occlusion_drops, top_rank
from gradlime_utils.metrics.nulls import (ALPHA, RANDOM_HEATMAPS, adjust_pvalues, mc_pvalue, null_percentile,
                                          permutation_pvalue, random_heatmaps, shift_pvalue)
from gradlime_utils.metrics.stats import mean_ci, paired_test
from gradlime_utils.plotting import finish_figure, show_heatmap
from gradlime_utils.runtime import Size, Sizes
from gradlime_utils.validation import check_rgb_image, ranking


# ---------------------------------------------------------------------------------------------------------
# matched nulls: random maps of the right granularity, permutation tests, occlusion of every superpixel


@dataclass
class PhotoExample:
    """What :func:`photo_study` keeps of one photo for the chapter's figures: the photo, its superpixels, the
    explained class, the two LIME heat maps, Grad-CAM's map and the occlusion scan."""

    image: np.ndarray
    segments: np.ndarray
    label: int
    linear: "LimeHeatmap"
    tree: "LimeHeatmap"
    gradcam: np.ndarray
    scan: object  # map_metrics.OcclusionScan


def photo_study(bundle: ModelBundle, image: np.ndarray, n_features: int = 49, num_samples: int = 2048,
                steps: int = 20, n_random: int = 19, n_perm: int = 200, seed: int = 0,
                tree_params: dict | None = None, neighborhood: Neighborhood | None = None) -> tuple[dict, dict, PhotoExample]:
    """Every comparison of the chapter for one photo, each beside its matched null.

    LIME heat maps (linear and tree, one neighbourhood with imageLIME's mean-colour hiding) and Grad-CAM of the
    predicted class; agreement ρ and top-20% IoU with two p-values: superpixel permutations
    (:func:`permutation_pvalue`, which treats superpixels as exchangeable) and shifts of the Grad-CAM map
    (:func:`shift_pvalue`, which keeps both maps' smoothness; ``n_perm`` draws each); deletion and insertion
    areas normalised by the full image's probability, each with its percentile and its one-sided rank p-value
    (:func:`mc_pvalue`) among ``n_random`` random maps of each kind in :data:`RANDOM_HEATMAPS` (same curves,
    same fill; with 19 maps the smallest p is 0.05); every
    superpixel occluded once with a blur (:func:`occlusion_drops`) and the rank each map's top superpixel gets
    there; and the surrogates' R² in sample and on held-out samples.

    ``neighborhood``: one already sampled for this image with the same settings (SLIC with ``n_features``,
    ``num_samples``, ``seed``, mean-colour hiding), to save its queries; it is checked, not trusted.

    Returns (row, curves by method, the maps for figures).
    """
    tree_params = dict(tree_params or {})
    image = check_rgb_image(image)
    segments = segment_image(image, "slic", n_segments=n_features)
    label = int(bundle.predict_proba(image[None]).argmax())
    start = time.perf_counter()
    hide = image.reshape(-1, 3).mean(axis=0)
    nb = neighborhood
    if nb is not None and not (np.array_equal(nb.segments, segments) and nb.num_samples == num_samples
                               and nb.seed == seed and np.allclose(np.asarray(nb.hide_color, float), hide)
                               and np.array_equal(nb.image, image)):
        raise ValueError("neighborhood was not sampled for this image with these settings (segments, num_samples, "
                         "seed, mean-colour hiding)")
    if nb is None:
        nb = sample_neighborhood(bundle, image, num_samples=num_samples, seed=seed, segments=segments,
                                 hide_color=hide, progress=False)
    lin, tree = lime_heatmap(nb, label, "linear"), lime_heatmap(nb, label, "tree", seed=seed, **tree_params)
    lime_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cam = gradcam(bundle, image, label).heatmap
    cam_seconds = time.perf_counter() - start
    cam_values = superpixel_means(as_map("cam", cam, segments.shape), segments)
    row = {"class": bundle.class_names[label], "p": float(nb.predictions[0, label]), "M": int(segments.max()) + 1,
           "n_random": int(n_random), "n_perm": int(n_perm),
           "lime_seconds": lime_seconds, "gradcam_seconds": cam_seconds,
           "linear_r2": lin.score, "tree_r2": tree.score,
           "linear_r2_holdout": holdout_r2(nb, label, "linear", seed=seed),
           "tree_r2_holdout": holdout_r2(nb, label, "tree", seed=seed, **tree_params),
           "rho_linear_tree": rank_agreement(lin.heatmap, tree.heatmap),
           "iou20_linear_tree": top_region_iou(lin.heatmap, tree.heatmap)}
    for name, values in (("linear", lin.importance), ("tree", tree.importance)):
        for stat in ("rho", "iou"):
            key = f"{stat}_{name}_gradcam" if stat == "rho" else f"iou20_{name}_gradcam"
            row[key], row[f"{key}_p"] = permutation_pvalue(values, segments, cam, stat, n_perm=n_perm, seed=seed)
            statistic = rank_agreement if stat == "rho" else top_region_iou
            row[f"{key}_p_shift"] = shift_pvalue(statistic, values[segments], cam, n_shift=n_perm, seed=seed)[1]
    maps = {"LIME linear": lin.heatmap, "LIME tree": tree.heatmap, "Grad-CAM": cam}
    curves = {m: deletion_insertion(bundle, image, h, label, steps=steps, fill="blur") for m, h in maps.items()}
    null = {kind: [deletion_insertion(bundle, image, h, label, steps=steps, fill="blur")
                   for h in random_heatmaps(kind, n_random, segments, seed=seed)] for kind in RANDOM_HEATMAPS}
    for kind, runs in null.items():
        for metric in ("insertion", "deletion"):
            values = [getattr(r, f"{metric}_auc_normalised") for r in runs]
            row[f"{metric} null {kind}"] = [float(np.median(values)), float(np.quantile(values, 0.025)),
                                            float(np.quantile(values, 0.975))]
            for m, c in curves.items():
                value = getattr(c, f"{metric}_auc_normalised")
                row[f"{metric} pct {kind} {m}"] = null_percentile(value, values, higher_is_better=metric == "insertion")
                row[f"{metric} p {kind} {m}"] = mc_pvalue(value, values,
                                                          "greater" if metric == "insertion" else "less")
    for m, c in curves.items():
        row[f"deletion {m}"], row[f"insertion {m}"] = c.deletion_auc_normalised, c.insertion_auc_normalised
    scan = occlusion_drops(bundle, image, segments, label, fill="blur")
    for name, values in (("linear", lin.importance), ("tree", tree.importance), ("gradcam", cam_values)):
        row[f"top_rank_{name}"] = top_rank(values, scan)
    top = int(ranking(lin.importance)[0])
    row.update({"drop_top": float(scan.drops[top]), "drop_median": float(np.median(scan.drops)),
                "flip_top": bool(scan.flips()[top]), "flips_any": int(scan.flips().sum()),
                "label_after_top": bundle.class_names[int(scan.labels[top])]})
    curves.update({f"random {kind}": runs[0] for kind, runs in null.items()})
    return row, curves, PhotoExample(image, segments, label, lin, tree, cam, scan)


def photos_study(models: Sequence[str], sources: Sequence, device: str = "cpu", reuse: tuple | None = None,
                 progress: bool = True, **study) -> tuple[list[dict], dict, dict]:
    """:func:`photo_study` for every model (names) and photo (sample names or paths), with the keyword
    arguments ``study``. ``reuse``: an already loaded (bundle, neighbourhood of the first photo): that bundle
    serves its model and the neighbourhood its first photo, so their queries are not spent twice.

    Returns the rows (each with "model" and "image"), the curves by (model, image, method) and the examples
    (for the figures) by (model, image); ``progress`` prints each photo's LIME and Grad-CAM times.
    """
    records, curves, examples = [], {}, {}
    for model_name in models:
        shared = reuse is not None and model_name == reuse[0].name
        bundle = reuse[0] if shared else load_model(model_name, device=device)
        for k, source in enumerate(sources):
            name = Path(str(source)).stem
            hood = reuse[1] if shared and k == 0 else None
            row, photo_curves, example = photo_study(bundle, load_image(source, size=bundle.input_size),
                                                     neighborhood=hood, **study)
            records.append({"model": model_name, "image": name, **row})
            curves.update({(model_name, name, m): c for m, c in photo_curves.items()})
            examples[(model_name, name)] = example
            if progress:
                print(f"{model_name:<20}{name:<12}{row['class'][:22]:<23} LIME {row['lime_seconds']:5.1f} s, "
                      f"Grad-CAM {row['gradcam_seconds']:.2f} s")
    return records, curves, examples


HEATMAP_METHODS = ("LIME linear", "LIME tree", "Grad-CAM")

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(
    models=Size(["efficientnet_lite0"], ["efficientnet_lite0"], ["googlenet", "squeezenet1_1"],
                "networks explained"),
    photos=Size(1, None, None, "sample photos explained without data_root (None: all of image_names)"),
    num_samples=Size(64, 2048, 2048, "LIME samples (MATLAB imageLIME's NumSamples)"),
    steps=Size(5, 20, 20, "deletion / insertion curve steps"),
    n_random=Size(2, 39, 2399, "random maps of each kind per photo (paper: chosen by power)"),
    n_perm=Size(10, 100, 200, "superpixel permutations per agreement p-value"),
    shown=Size(1, 4, 6, "photos drawn in H-1/H-2"),
    thresholds=Size([10, 30], [5, 10, 20, 40], [5, 10, 20, 40], "top-percent thresholds of the agreement curve"),
)


def study_frames(rows: list[dict]):
    """Three DataFrames for the chapter: insertion / deletion areas with their percentiles among random maps,
    agreement with permutation p-values, and occlusion ranks with the surrogates' R²; indexed by model and image.

    The first table's columns are (insertion or deletion, method), so that its headers stay short enough for the
    book's column."""
    faith, agree, occl = [], [], []
    for r in rows:
        key = {"model": r["model"], "image": r["image"]}
        cell = {}
        for metric in ("insertion", "deletion"):
            for m in HEATMAP_METHODS:
                cell[(metric, m)] = (f"{r[f'{metric} {m}']:.2f} ({100 * r[f'{metric} pct superpixel {m}']:.0f}/"
                                     f"{100 * r[f'{metric} pct smooth {m}']:.0f})")
            lo = r[f"{metric} null superpixel"]
            cell[(metric, "random (superpixel)")] = f"{lo[0]:.2f} [{lo[1]:.2f}, {lo[2]:.2f}]"
        faith.append(cell)
        agree.append({**key, **{f"{s} {n}/GC": f"{r[k]:.2f} (p = {r[k + '_p']:.3f})" for n in ("linear", "tree")
                                for s, k in (("rho", f"rho_{n}_gradcam"), ("IoU", f"iou20_{n}_gradcam"))},
                      "rho lin/tree": f"{r['rho_linear_tree']:.2f}"})
        occl.append({**key, "M": r["M"], **{f"top rank {n}": r[f"top_rank_{n}"] for n in ("linear", "tree", "gradcam")},
                     "drop top (linear)": f"{r['drop_top']:.3f}", "median drop": f"{r['drop_median']:.3f}",
                     "label flips (any superpixel)": r["flips_any"],
                     "R² linear in/out": f"{r['linear_r2']:.2f} / {r['linear_r2_holdout']:.2f}",
                     "R² tree in/out": f"{r['tree_r2']:.2f} / {r['tree_r2_holdout']:.2f}"})
    index = pd.MultiIndex.from_tuples([(r["model"], r["image"]) for r in rows], names=["model", "image"])
    faith = pd.DataFrame(faith, index=index)
    faith.columns = pd.MultiIndex.from_tuples(faith.columns)  # insertion / deletion over the methods
    return (faith, *(pd.DataFrame(rows).set_index(["model", "image"]) for rows in (agree, occl)))


def insertion_beyond_random(rows: Sequence[dict], methods: Sequence[str] = ("LIME linear", "Grad-CAM"),
                            alpha: float = ALPHA) -> dict[str, int]:
    """Per method, the photos whose insertion area is beyond both the random superpixel maps and the smooth
    random maps (:func:`photo_study` rows): the larger of the two one-sided rank p-values, adjusted by
    Benjamini-Hochberg over every photo and method of ``rows`` (one family), at most ``alpha``. With ``n``
    random maps of a kind no p is below 1 / (n + 1): see :func:`insertion_resolution`."""
    p = insertion_pvalues(rows, methods)
    adjusted = adjust_pvalues(np.ravel([p[m] for m in methods])).reshape(len(methods), -1)
    return {m: int(np.sum(adjusted[j] <= alpha)) for j, m in enumerate(methods)}


def insertion_pvalues(rows: Sequence[dict], methods: Sequence[str]) -> dict[str, np.ndarray]:
    """Per method, one p-value per photo: the larger of the insertion area's rank p-values against the two
    kinds of random maps (beyond chance only if beyond both). Rows from before the p-values existed give NaN."""
    return {m: np.array([max(r.get(f"insertion p {kind} {m}", np.nan) for kind in RANDOM_HEATMAPS) for r in rows],
                        dtype=float) for m in methods}


def insertion_resolution(rows: Sequence[dict], alpha: float = ALPHA) -> bool:
    """Whether the random maps of these rows can decide at all: with n random maps the smallest one-sided p is
    1 / (n + 1), and under the Benjamini-Hochberg control over m photos × methods a mark needs at least that."""
    n = min(r.get("n_random", 0) for r in rows) if rows else 0
    return n > 0 and 1 / (n + 1) <= alpha


def agreement_beyond_chance(rows: Sequence[dict], alpha: float = ALPHA) -> dict[tuple[str, str], int]:
    """(statistic, surrogate) -> photos whose agreement with Grad-CAM is beyond chance: the larger of the
    superpixel-permutation and the shift p-value, adjusted by Benjamini-Hochberg over every photo, statistic and
    surrogate of ``rows`` (one family)."""
    keys = [(s, n) for s in ("rho", "iou20") for n in ("linear", "tree")]
    p = np.array([[np.fmax(r[f"{s}_{n}_gradcam_p"], r.get(f"{s}_{n}_gradcam_p_shift", np.nan)) for r in rows]
                  for s, n in keys], dtype=float)
    adjusted = adjust_pvalues(p.ravel()).reshape(p.shape)
    return {k: int(np.sum(adjusted[j] <= alpha)) for j, k in enumerate(keys)}


def describe_study(rows: list[dict]) -> list[str]:
    """The chapter's reading, generated from :func:`photo_study` rows."""
    n = len(rows)
    lines = []
    beyond = insertion_beyond_random(rows, HEATMAP_METHODS)
    decidable = insertion_resolution(rows)
    for m in HEATMAP_METHODS:
        verdict = (f"beyond both kinds of random maps in {beyond[m]} of {n} photos (one-sided rank p-values, the "
                   f"larger of the two kinds, Benjamini-Hochberg over {n * len(HEATMAP_METHODS)} photos × "
                   f"methods)" if decidable else
                   f"undecided: {min(r.get('n_random', 0) for r in rows)} random maps per kind cannot give a "
                   f"p-value at or below 0.05")
        lines.append(f"- Insertion, {m}: {verdict}; mean normalised area "
                     f"{np.mean([r[f'insertion {m}'] for r in rows]):.2f} vs random superpixel maps "
                     f"{np.mean([r['insertion null superpixel'][0] for r in rows]):.2f}.")
    diff = [r["insertion LIME linear"] - r["insertion Grad-CAM"] for r in rows]
    mean, half = mean_ci(diff)
    p = paired_test([r["insertion LIME linear"] for r in rows], [r["insertion Grad-CAM"] for r in rows])
    lines.append(f"- LIME linear − Grad-CAM, normalised insertion: {mean:+.3f}" +
                 (f" (95% CI ± {half:.3f})" if np.isfinite(half) else "") +
                 (f", paired Wilcoxon p = {p:.3g}" if np.isfinite(p) else f"; no paired test can reach p < 0.05 "
                  f"with {n} photos") + ("; the interval includes 0: unresolved." if np.isfinite(half) and
                                         abs(mean) <= half else "."))
    agreement = agreement_beyond_chance(rows)
    for name in ("linear", "tree"):
        lines.append(f"- Agreement of LIME {name} with Grad-CAM beyond chance (the larger of the superpixel-"
                     f"permutation and the map-shift p-values, Benjamini-Hochberg over the "
                     f"{4 * n} agreement tests): rho in {agreement[('rho', name)]} of {n} photos, top-20% IoU in "
                     f"{agreement[('iou20', name)]} of {n}. Permuting superpixels alone treats them as "
                     f"exchangeable, and two unrelated smooth maps then agree \"beyond chance\" too often.")
    ranks = {k: [r[f"top_rank_{k}"] for r in rows] for k in ("linear", "tree", "gradcam")}
    lines.append("- Occlusion (blur) of every superpixel: the top superpixel of each map ranks " + ", ".join(
        f"{k} {np.median(v):.0f}" for k, v in ranks.items()) + f" (median over photos; 1 = the largest drop of about "
        f"{int(np.median([r['M'] for r in rows]))}); the label flips for at least one superpixel in "
        f"{sum(r['flips_any'] > 0 for r in rows)} of {n} photos.")
    lines.append(f"- The tree's R² is {np.mean([r['tree_r2'] for r in rows]):.2f} on its own samples but "
                 f"{np.mean([r['tree_r2_holdout'] for r in rows]):.2f} on held-out ones (linear: "
                 f"{np.mean([r['linear_r2'] for r in rows]):.2f} / {np.mean([r['linear_r2_holdout'] for r in rows]):.2f}).")
    return lines


def plot_step_by_step(image: np.ndarray, neighborhood: Neighborhood, linear: LimeHeatmap, tree: LimeHeatmap,
                      cam, class_name: str, path=None):
    """The photo, one perturbed sample, both LIME heat maps and Grad-CAM, side by side."""
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.3))
    axes[0].imshow(image); axes[0].set_title(class_name, fontsize=9); axes[0].set_axis_off()
    axes[1].imshow(neighborhood.perturbed_image(1)); axes[1].set_title("one perturbed sample", fontsize=9)
    axes[1].set_axis_off()
    show_heatmap(axes[2], image, linear.heatmap, "LIME heat map, linear (signed)", alpha=0.6, signed=True)
    show_heatmap(axes[3], image, tree.heatmap, "LIME heat map, tree", alpha=0.55)
    show_heatmap(axes[4], image, cam.heatmap, f"Grad-CAM ({', '.join(cam.layer_maps)})", alpha=0.55)
    return finish_figure(fig, path=path, dpi=90)


def plot_examples(examples: dict, keys: Sequence, title: str = "", path=None):
    """H-1/H-2: per (model, image) key of ``examples`` (the third value :func:`photo_study` returns) the photo,
    the signed linear LIME heat map, the tree one and Grad-CAM."""
    fig, axes = plt.subplots(len(keys), 4, figsize=(11, 2.9 * len(keys)), squeeze=False)
    for r, key in enumerate(keys):
        ex = examples[key]
        img, lin, tr, gc = ex.image, ex.linear, ex.tree, ex.gradcam
        axes[r, 0].imshow(img); axes[r, 0].set_title(f"{key[1]} ({key[0]})", fontsize=8)
        axes[r, 0].set_axis_off()
        show_heatmap(axes[r, 1], img, lin.heatmap, "LIME linear", alpha=0.6, signed=True)
        show_heatmap(axes[r, 2], img, tr.heatmap, "LIME tree", alpha=0.55)
        show_heatmap(axes[r, 3], img, gc, "Grad-CAM", alpha=0.55)
    return finish_figure(fig, title, path, dpi=80)


def plot_curves(curves: dict, methods: Sequence[str], path=None):
    """Mean deletion and insertion curves per method over every (model, image, method) key of ``curves``, each
    normalised by the full image's probability; the random maps (nulls) dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for method in methods:
        runs = [v for k, v in curves.items() if k[2] == method]
        for ax, kind in zip(axes, ("deletion", "insertion")):
            ax.plot(runs[0].fractions, np.mean([getattr(d, kind) / d.p_full for d in runs], axis=0),
                    label=method, ls="--" if method.startswith("random") else "-")
    for ax, t in zip(axes, ["deletion (lower is better)", "insertion (higher is better)"]):
        ax.set_xlabel("fraction of pixels"); ax.set_ylabel("p(class) / p(full image)")
        ax.set_title(t, fontsize=9); ax.legend(fontsize=7)
    return finish_figure(fig, path=path, dpi=90)


def plot_sensitivity(example: PhotoExample, name: str, title: str = "", path=None):
    """H-3: the photo (an example of :func:`photo_study`) beside it with its most sensitive superpixel blurred,
    each with the model's probability of the class."""
    img, seg, scan = example.image, example.segments, example.scan
    worst = int(np.argmax(scan.drops))
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.3))
    axes[0].imshow(img); axes[0].set_title(f"{name}: p = {scan.p_original:.2f}", fontsize=9)
    axes[1].imshow(occluded_image(img, seg, worst, fill="blur"))
    p_blurred = scan.p_original - scan.drops[worst]
    axes[1].set_title(f"most sensitive superpixel blurred: p = {p_blurred:.2f}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return finish_figure(fig, title, path, dpi=90)


def plot_top_regions(example: PhotoExample, name: str, top_percent: float):
    """The top ``top_percent`` % pixels of each map of an example of :func:`photo_study` (the rest dimmed), with
    each LIME map's top-region IoU with Grad-CAM."""
    img, lin, tr, gc = example.image, example.linear, example.tree, example.gradcam
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for ax, (method, h) in zip(axes, [("LIME linear", lin.heatmap), ("LIME tree", tr.heatmap), ("Grad-CAM", gc)]):
        keep = top_fraction_mask(h, top_percent / 100)
        ax.imshow(np.where(keep[..., None], img, (img * 0.25).astype(np.uint8)))
        iou = "" if method == "Grad-CAM" else f", IoU with Grad-CAM {top_region_iou(h, gc, top_percent / 100):.2f}"
        ax.set_title(f"{method}{iou}", fontsize=8); ax.set_axis_off()
    fig.suptitle(f"{name}: top {top_percent}% of each map", fontsize=9)
    fig.tight_layout()
    return fig
