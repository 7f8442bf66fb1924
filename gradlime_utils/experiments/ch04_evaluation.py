"""Evaluating explanations with Quantus: attribution maps, faithfulness, complexity, localisation, statistics.

Every explanation becomes a per-pixel attribution map the same way before Quantus sees it. For LIME and
GradLIME that is :func:`superpixel_attribution` (each pixel carries its superpixel's surrogate weight); the
GradLIME repository's own conversion (:func:`repo_markboundaries_attribution`, from its evaluation scripts) is kept only as a
labelled reproduction column, because it mostly measures image brightness.

Faithfulness is scored by :mod:`gradlime_utils.metrics.faithfulness`, complexity, localisation and Sufficiency by
:mod:`gradlime_utils.metrics.quantus_bridge` (Quantus, with the workarounds for Quantus 0.6 listed there).
"""
from __future__ import annotations

import csv
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import ttest_1samp
from skimage.segmentation import mark_boundaries

from gradlime_utils.cache import state_digest
from gradlime_utils.data.datasets import default_imagenet_val, one_class_files
from gradlime_utils.data.models import ModelBundle
from gradlime_utils.data.shapes import oracle_map, train_shapes_cnn
from gradlime_utils.experiments.ch01_lime import stability_summary
from gradlime_utils.methods.attributions import (ATTRIBUTION_METHODS, METHODS, attribute, attribution_maps,
                                                 baseline_input, check_relu_modules, images_per_batch)
from gradlime_utils.methods.gad import gad_map, train_support_models
from gradlime_utils.methods.gradcam import gradcam
from gradlime_utils.methods.neighborhood import Neighborhood, sample_neighborhood, segment_image
from gradlime_utils.methods.surrogate import SurrogateExplanation, explain_gradlime, explain_lime
from gradlime_utils.metrics.faithfulness import ChanceStudy, FaithfulnessSettings, matched_chance
from gradlime_utils.metrics.nulls import (RANDOM_MAP_KINDS, adjust_pvalues, bands_by_metric, chance_band, decide,
                                          decide_one, random_maps)
from gradlime_utils.metrics.quantus_bridge import (Failed, NotApplicable, _inputs, _labels, _quantus,
                                                   localisation_metrics, score_attributions, score_many)
from gradlime_utils.metrics.stats import mean_ci, paired_test
from gradlime_utils.plotting import CMAPS, NBSP, finish_figure, header, pm
from gradlime_utils.runtime import Size, Sizes, progress_bar as tqdm
from gradlime_utils.validation import check_int, check_seed, derive_seed

# name in our tables -> quantus.explain method (the GradLIME repository's short names in brackets)
BASELINES = {
    "Integrated Gradients": "IntegratedGradients",   # IG
    "Saliency": "Saliency",                          # SA
    "GradientShap": "GradientShap",                  # GS
    "Input x Gradient": "InputXGradient",            # IXG
    "Deconvolution": "Deconvolution",                # DeCon
    "KernelShap": "KernelShap",                      # KH
    "LRP": "LRP",                                    # LRP (captum's rules; fails on layers it has none for)
    "Gradient": "Gradient",                          # Gradient
    "Grad-CAM": "LayerGradCam",
    "Sobel (control)": "Control Var. Sobel Filter",  # CVSF
    "Random (control)": "Control Var. Random Uniform",  # CVRU
}


# ---------------------------------------------------------------------------------------------------------
# attribution maps


def superpixel_attribution(explanation: SurrogateExplanation, num_features: int | None = None) -> np.ndarray:
    """H×W map A(p) = coef of p's superpixel, for the ``num_features`` most important superpixels (all if None).

    For GradLIME ``coef`` is the effective weight b = a * w, so LIME and GradLIME maps are on the same scale.
    """
    coef = np.asarray(explanation.coef, dtype=float)
    if num_features is not None:
        num_features = check_int("num_features", num_features, low=1)
        keep = np.zeros(len(coef), bool)
        keep[explanation.ranking[:num_features]] = True
        coef = np.where(keep, coef, 0.0)
    return coef[explanation.segments]


def repo_markboundaries_attribution(explanation: SurrogateExplanation, image: np.ndarray, num_features: int = 20,
                                    positive_only: bool = True) -> np.ndarray:
    """The GradLIME repository's conversion (its ``MyFaithfulness.py`` evaluation script), for reproduction only.

    lime's ``ImageExplanation.get_image_and_mask(label, positive_only, num_features, hide_rest=False)``, then
    ``skimage.segmentation.mark_boundaries(temp / 255, mask)`` summed over RGB. With ``positive_only=True``
    this is the image's brightness plus yellow boundary lines: it carries almost no explanation signal.
    """
    from lime.lime_image import ImageExplanation  # lazy: heavy import

    image = np.asarray(image)
    if image.shape[:2] != explanation.segments.shape:
        raise ValueError(f"image has shape {image.shape[:2]}, the explanation's segments {explanation.segments.shape}")
    exp = ImageExplanation(image, explanation.segments)
    order = [int(j) for j in explanation.ranking if explanation.importance[j] > 0]
    exp.local_exp = {explanation.label: [(j, float(explanation.coef[j])) for j in order]}
    temp, mask = exp.get_image_and_mask(explanation.label, positive_only=positive_only, num_features=num_features,
                                        hide_rest=False)
    return mark_boundaries(temp / 255.0, mask).sum(axis=-1)


def baseline_attributions(bundle: ModelBundle, images: np.ndarray, labels: Sequence[int],
                          methods: Sequence[str] | None = None, seed: int = 0, baseline: str = "black",
                          segments: Sequence[np.ndarray] | None = None,
                          kernel_shap_samples: int = 200) -> dict[str, np.ndarray | Failed]:
    """Per-pixel maps (N×H×W) of the gradient baselines and controls, through ``quantus.explain``.

    Captum with the channel sum as reduction, as the GradLIME evaluation scripts. Integrated Gradients (10 steps,
    Quantus' setting), GradientShap and Input × Gradient are measured against ``baseline``
    (:func:`gradlime_utils.methods.attributions.baseline_input`): by default the model's preprocessed *black* image, the
    reference that the faithfulness metrics' "black" perturbation and LIME's hiding use; Quantus' own default is
    the normalised zero (raw grey). Quantus passes a ``baseline`` keyword to IG and GradientShap; its
    Input × Gradient has none, so that one is computed as (x - x̄) ⊙ ∇ by
    :func:`gradlime_utils.methods.attributions.attribute`. Grad-CAM at the bundle's first ``cam_layers`` entry
    upsampled to the image. A method that cannot run on the model is returned as :class:`Failed` with the
    reason: Deconvolution on a model without ``nn.ReLU`` modules (captum would silently return the plain
    gradient), or any exception.

    KernelShap through ``quantus.explain`` is captum's default: every input scalar is a feature (150,528 for a
    224-pixel image) and 25 samples fit them, which costs about 20 s per image on a CPU and returns noise. Given
    ``segments`` (one superpixel map per image, e.g. LIME's), KernelShap is instead computed by captum over
    those superpixels with ``kernel_shap_samples`` samples and the same black reference: the method as its
    authors use it on images.
    """
    quantus = _quantus()
    methods = list(BASELINES) if methods is None else list(methods)
    unknown = [m for m in methods if m not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline method(s) {unknown}; choose from {list(BASELINES)}")
    x = _inputs(bundle, images)
    y = _labels(bundle, labels, len(x))
    reference = baseline_input(bundle.preprocess, images, baseline).to(bundle.device)
    modules = dict(bundle.model.named_modules())
    out: dict[str, np.ndarray | Failed] = {}
    for name in methods:
        method = BASELINES[name]
        kwargs = {}
        if method == "InputXGradient":
            inputs = torch.as_tensor(x, device=bundle.device)
            out[name] = attribute(bundle.model, inputs, y, "gradient_x_input", reference).sum(dim=1).cpu().numpy()
            continue
        if method == "KernelShap" and segments is not None:
            out[name] = _superpixel_kernel_shap(bundle, x, y, reference, segments, kernel_shap_samples, seed)
            continue
        if method in ("IntegratedGradients", "GradientShap"):
            kwargs = {"baseline": reference.expand(len(x), *reference.shape[1:]).contiguous()}
        if method == "LayerGradCam":
            if not bundle.cam_layers:
                out[name] = Failed(f"{bundle.name} has no Grad-CAM layer")
                continue
            kwargs = {"gc_layer": modules[bundle.cam_layers[0]], "interpolate": tuple(x.shape[-2:])}
        if method == "Deconvolution":
            try:
                check_relu_modules(bundle.model, "deconvolution")
            except ValueError as exc:
                out[name] = Failed(str(exc))
                continue
        torch.manual_seed(seed)
        np.random.seed(seed)
        # images in chunks that fit the device (8 photos of 224 pixels on a CPU; the quick profile's 4 photos
        # and the 28-pixel benchmark in one chunk): 50 photos at once, with IG's steps, would not fit in memory
        chunk = images_per_batch(torch.empty(1, 1, *x.shape[-2:], device=bundle.device), len(x))
        try:
            parts = []
            for start in range(0, len(x), chunk):
                part = {k: v[start:start + chunk] if k == "baseline" else v for k, v in kwargs.items()}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    parts.append(np.asarray(quantus.explain(bundle.model, x[start:start + chunk], y[start:start + chunk],
                                                            method=method, device=str(bundle.device), **part),
                                            dtype=float).reshape(-1, *x.shape[-2:]))
            out[name] = np.concatenate(parts)
        except Exception as exc:  # noqa: BLE001 - recorded, not dropped
            out[name] = Failed(f"{type(exc).__name__} raised: {str(exc).splitlines()[0][:160]}")
    return out


def _superpixel_kernel_shap(bundle: ModelBundle, x: np.ndarray, y: np.ndarray, reference: torch.Tensor,
                            segments: Sequence[np.ndarray], n_samples: int, seed: int) -> np.ndarray:
    from captum.attr import KernelShap  # lazy: heavy import

    if len(segments) != len(x):
        raise ValueError(f"segments must hold one superpixel map per image ({len(x)}), got {len(segments)}")
    n_samples = check_int("kernel_shap_samples", n_samples, 2)
    explainer = KernelShap(bundle.forward_inputs)  # no gradients needed: the bundle's fast engine
    maps = []
    for i, seg in enumerate(segments):
        seg = np.asarray(seg)
        if seg.shape != x.shape[2:]:
            raise ValueError(f"segments[{i}] has shape {seg.shape}, the images {x.shape[2:]}")
        mask = torch.as_tensor(seg, device=bundle.device).long().expand(1, x.shape[1], *seg.shape)
        torch.manual_seed(seed)
        a = explainer.attribute(torch.as_tensor(x[i:i + 1], device=bundle.device), baselines=reference[:1],
                                target=int(y[i]), feature_mask=mask, n_samples=n_samples,
                                perturbations_per_eval=min(64, n_samples))
        maps.append(a.sum(dim=1)[0].detach().cpu().numpy())
    return np.stack(maps)


# ---------------------------------------------------------------------------------------------------------
# statistics and tables


def summary_rows(scores: Mapping[str, Mapping[str, np.ndarray | Failed]], metrics: Sequence[str],
                 reference: str | None = None) -> list[dict]:
    """One row per method: mean, 95% CI half-width and (against ``reference``) the paired p-value per metric."""
    rows = []
    for method, per_metric in scores.items():
        row = {"method": method}
        for m in metrics:
            v = per_metric.get(m)
            if isinstance(v, (Failed, NotApplicable)) or v is None:
                row[m] = row[f"{m} ci95"] = float("nan")
                row[f"{m} note"] = str(v) if v is not None else "not run"
                continue
            row[m], row[f"{m} ci95"] = mean_ci(v)
            ref = scores.get(reference, {}).get(m) if reference else None
            if ref is not None and not isinstance(ref, (Failed, NotApplicable)) and method != reference:
                row[f"{m} p"] = paired_test(v, ref)
        rows.append(row)
    return rows


def format_summary(rows: Sequence[dict], metrics: Sequence[str], width: int = 16) -> str:
    """A plain-text table: mean ± CI per metric, a star where the paired test against the reference gives p < 0.05."""
    head = f"{'method':<26}" + "".join(f"{m[:width - 1]:>{width}}" for m in metrics)
    lines = [head]
    for r in rows:
        cells = []
        for m in metrics:
            if r.get(f"{m} note"):
                cells.append(f"{'n/a' if str(r[f'{m} note']).startswith('n/a') else 'failed':>{width}}")
                continue
            mean, ci = r[m], r[f"{m} ci95"]
            star = "*" if _starred(r, m) else " "
            text = f"{mean:.3g}" + (f"±{ci:.2g}" if np.isfinite(ci) else "") + star
            cells.append(f"{text:>{width}}")
        lines.append(f"{r['method'][:25]:<26}" + "".join(cells))
    notes = [f"  {r['method']}: {r[f'{m} note']}" for r in rows for m in metrics if r.get(f"{m} note")]
    seen = []
    for note in notes:
        if note not in seen:
            seen.append(note)
    return "\n".join(lines + (["failures:"] + seen if seen else []))


# ---------------------------------------------------------------------------------------------------------
# explanations to evaluate


@dataclass
class SurrogateDetail:
    """What :func:`surrogate_maps` keeps of one image: its shared neighbourhood, the Grad-CAM map GradLIME used
    and the explanations by name."""

    neighborhood: Neighborhood
    cam: np.ndarray
    explanations: dict


def surrogate_maps(bundle: ModelBundle, images: np.ndarray, labels: Sequence[int], num_samples: int = 1000,
                   num_features: int = 20, seed: int = 0, segmentation: str = "quickshift", hide_color=0,
                   progress: bool = False, **segmentation_params) -> tuple[dict[str, np.ndarray],
                                                                           list[SurrogateDetail]]:
    """LIME and GradLIME maps (N×H×W) for each image and label, from one shared neighbourhood per image.

    Returns the maps by name ("LIME", "GradLIME (feature)", "GradLIME (importance)", and the repository's
    mark_boundaries conversions "LIME (repo, both signs)", "LIME (repo, positive)", "GradLIME (repo, positive)")
    and a :class:`SurrogateDetail` per image for further use (stability, figures).
    """
    images = np.asarray(images)
    labels = _labels(bundle, labels, len(images))
    maps: dict[str, list] = {k: [] for k in ("LIME", "GradLIME (feature)", "GradLIME (importance)",
                                             "LIME (repo, both signs)", "LIME (repo, positive)",
                                             "GradLIME (repo, positive)")}
    details = []
    for image, label in tqdm(list(zip(images, labels)), desc="LIME/GradLIME", disable=not progress):
        nb = sample_neighborhood(bundle, image, num_samples=num_samples, seed=seed, segmentation=segmentation,
                                 hide_color=hide_color, progress=False, **segmentation_params)
        cam = gradcam(bundle, image, int(label)).heatmap
        exps = {"LIME": explain_lime(nb, int(label)),
                "GradLIME (feature)": explain_gradlime(nb, int(label), cam, "feature"),
                "GradLIME (importance)": explain_gradlime(nb, int(label), cam, "importance")}
        for name, exp in exps.items():
            maps[name].append(superpixel_attribution(exp, num_features))
        maps["LIME (repo, both signs)"].append(repo_markboundaries_attribution(exps["LIME"], image, num_features, False))
        maps["LIME (repo, positive)"].append(repo_markboundaries_attribution(exps["LIME"], image, num_features, True))
        maps["GradLIME (repo, positive)"].append(
            repo_markboundaries_attribution(exps["GradLIME (feature)"], image, num_features, True))
        details.append(SurrogateDetail(nb, cam, exps))
    return {k: np.stack(v) for k, v in maps.items()}, details


def benchmark_maps(bundle: ModelBundle, images: np.ndarray, labels: Sequence[int], num_samples: int = 300,
                   cell_size: int = 7, num_features: int = 10, support=None, seed: int = 0,
                   progress: bool = False) -> dict[str, np.ndarray | Failed]:
    """Every method's map (N×H×W) on localisation-benchmark images, for the classes in ``labels``.

    LIME and GradLIME (feature, importance) on a grid of ``cell_size`` cells with black hiding and
    ``num_samples`` samples, the ``num_features`` most important cells kept (so that GradLIME's modes differ
    in which cells they select) and only their positive weights; Grad-CAM at the bundle's layer; the five gradient methods of
    the GAD chapter on the trained model ("Orig.") and, given ``support`` (trained support models), their GAD
    maps. A method that cannot run is :class:`Failed` with the reason.
    """
    images = np.asarray(images)
    labels = _labels(bundle, labels, len(images))
    segments = segment_image(images[0], "grid", cell_size=cell_size)
    lime_maps: dict[str, list] = {"LIME": [], "GradLIME (feature)": [], "GradLIME (importance)": [], "Grad-CAM": []}
    fallbacks = 0
    for image, label in tqdm(list(zip(images, labels)), desc="LIME/GradLIME on the benchmark", disable=not progress):
        nb = sample_neighborhood(bundle, image, num_samples=num_samples, seed=seed, segments=segments, hide_color=0,
                                 progress=False)
        cam_map = gradcam(bundle, image, int(label)).heatmap
        cam = cam_map
        if cam_map.max() <= 0:
            fallbacks += 1
            cam = np.ones_like(cam_map)  # what GradLIME falls back to (a = 1), without one warning per image
        k = num_features
        # positive evidence only: a negative surrogate weight argues against the class, it does not locate it
        lime_maps["LIME"].append(np.clip(superpixel_attribution(explain_lime(nb, int(label), k), k), 0, None))
        lime_maps["GradLIME (feature)"].append(np.clip(
            superpixel_attribution(explain_gradlime(nb, int(label), cam, "feature", k), k), 0, None))
        lime_maps["GradLIME (importance)"].append(np.clip(
            superpixel_attribution(explain_gradlime(nb, int(label), cam, "importance", k), k), 0, None))
        lime_maps["Grad-CAM"].append(cam_map)
    if fallbacks:
        warnings.warn(f"Grad-CAM was zero on {fallbacks} of {len(images)} images; GradLIME equals LIME there",
                      RuntimeWarning, stacklevel=2)
    out: dict[str, np.ndarray | Failed] = {k: np.stack(v) for k, v in lime_maps.items()}
    inputs = bundle.preprocess(images)
    for method in ATTRIBUTION_METHODS:
        orig, gad = METHODS[method].label("Orig."), METHODS[method].label("GAD")
        try:
            out[orig] = attribution_maps(bundle.model, inputs, labels, method).cpu().numpy()
        except ValueError as exc:
            out[orig] = Failed(str(exc))
        if support is not None:
            try:
                out[gad] = gad_map(support, images, labels, method).gad
            except ValueError as exc:
                out[gad] = Failed(str(exc))
    return out


# ---------------------------------------------------------------------------------------------------------
# tables with chance bands

LIME_FAMILY = ("LIME", "GradLIME (feature)", "GradLIME (importance)")
REPO_CONVERSIONS = ("LIME (repo, both signs)", "LIME (repo, positive)", "GradLIME (repo, positive)")

#: The attribution baselines computed by captum (every one of BASELINES but the random control).
CAPTUM_BASELINES = [b for b in BASELINES if b != "Random (control)"]

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(
    photos=Size(2, None, None, "sample photos explained without data_root (None: all of image_names)"),
    num_samples=Size(50, 1000, 8000, "LIME / GradLIME samples per photo"),
    n_random_maps=Size(4, 50, 100, "random maps of each kind per chance band"),
    n_matched=Size(4, 39, 99, "structure-matched random draws per marked method"),
    baselines=Size(["Saliency", "Grad-CAM"], CAPTUM_BASELINES, CAPTUM_BASELINES, "captum baselines compared"),
    conversions=Size(["LIME (repo, positive)"], list(REPO_CONVERSIONS), list(REPO_CONVERSIONS),
                     "the repository's map conversions scored (smoke: does one run at all?)"),
    stability_seeds=Size(2, 4, 4, "seeds per stability curve"),
    stability_sizes=Size([20, 40], [100, 250, 500, 1000], [100, 250, 500, 1000], "sample sizes N of the curves"),
    localisation_seeds=Size([0, 1], [0, 1, 2], [0, 1, 2], "shapes-CNN training seeds"),
    benchmark_images=Size((400, 8), (1000, 100), (1000, 400), "shapes benchmark (training, test) images"),
    benchmark_epochs=Size((4, 1), (12, 10), (12, 10), "shapes-CNN and support-model epochs"),
    benchmark_samples=Size(50, 300, 1000, "LIME samples per benchmark image"),
)


def granularity(method: str) -> str:
    """The random-map kind a method is compared with: LIME's family with random *superpixel* maps (the same
    blocks and sparsity), every pixel-level method with uniform random maps."""
    return "superpixel" if method in LIME_FAMILY else "uniform"


def banded_rows(scores: Mapping[str, Mapping[str, np.ndarray | Failed | NotApplicable]], metrics: Sequence[str],
                bands: Mapping[str, Mapping[str, object]], reference: str | None = "LIME",
                kind_of=granularity, null: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                matched: Mapping[str, Mapping[str, object]] | None = None) -> list[dict]:
    """One row per method: per metric the mean, 95% CI half-width, the chance band of its kind
    (``bands[kind][metric]``, a :class:`gradlime_utils.metrics.nulls.ChanceBand`), the verdict against it
    ("above" / "below" / "within" / "degenerate", see :func:`add_bands`), and the paired p-value against
    ``reference``.

    ``null`` (kind -> metric -> draws×N per-image scores of the random maps): where a method's score is
    undefined on some images (an empty map), its band is rebuilt from the random maps' scores on the images the
    method *is* defined on, so both means cover the same images, and the row says how many were undefined.
    ``matched`` (method -> metric -> band of the method's own maps moved off their images,
    :func:`gradlime_utils.metrics.faithfulness.matched_chance`): a cell is beyond chance only when it is beyond both.
    """
    rows = summary_rows(scores, metrics, reference)
    cell_bands: dict = {}
    for row in rows:
        kind = kind_of(row["method"])
        for m in metrics:
            v = scores[row["method"]].get(m)
            if not isinstance(v, np.ndarray):
                continue
            undefined = ~np.isfinite(np.asarray(v, dtype=float))
            row[f"{m} undefined"] = int(undefined.sum())
            if null is not None and undefined.any() and (~undefined).any() and m in null.get(kind, {}):
                cell_bands[(row["method"], m)] = chance_band(null[kind][m], images=~undefined)
    return add_bands(rows, metrics, bands, kind_of, cell_bands, matched)


def add_bands(rows: list[dict], metrics: Sequence[str], bands: Mapping[str, Mapping[str, object]],
              kind_of=granularity, cell_bands: Mapping[tuple, object] | None = None,
              matched: Mapping[str, Mapping[str, object]] | None = None, alpha: float = 0.05) -> list[dict]:
    """Decide each row's means against the chance band of its method's kind (in place; returns ``rows``).

    Every cell gets the two-sided rank p-value of its mean among the band's random-map means
    (:func:`gradlime_utils.metrics.nulls.mc_pvalue`: exact size, whatever the number of random maps); where a
    structure-matched band is given (``matched``), the larger of the two p-values (beyond chance only if beyond
    both). The p-values of the whole table are one family, adjusted by Benjamini-Hochberg
    (:data:`gradlime_utils.metrics.nulls.MULTIPLICITY`); a cell is marked "above" / "below" when its adjusted
    p is at most ``alpha``, "within" otherwise, "degenerate" when the band has zero width (it decides nothing).
    ``cell_bands`` ((method, metric) -> band) replaces the kind's band for single cells.
    """
    adjust_reference_tests(rows, metrics)
    cells = []
    for row in rows:
        kind = kind_of(row["method"])
        row["kind"] = kind
        for m in metrics:
            band = (cell_bands or {}).get((row["method"], m), bands.get(kind, {}).get(m))
            if band is None or row.get(f"{m} note"):
                continue
            row[f"{m} band"] = (band.low, band.high)
            cells.append((row, m, band))
    if not cells:
        return rows
    values = [r[m] for r, m, _ in cells]
    _, raw, _ = decide(values, [b for _, _, b in cells], alpha)
    for j, (r, m, _) in enumerate(cells):
        other = (matched or {}).get(r["method"], {}).get(m)
        if other is not None and np.isfinite(raw[j]):
            r[f"{m} p matched"] = other.p_value(r[m])
            raw[j] = max(raw[j], r[f"{m} p matched"]) if np.isfinite(r[f"{m} p matched"]) else raw[j]
    adjusted = adjust_pvalues(raw)
    for (r, m, band), p, a in zip(cells, raw, adjusted):
        r[f"{m} p chance"], r[f"{m} p adjusted"] = float(p), float(a)
        r[f"{m} vs chance"] = decide_one(r[m], a, band, alpha)
    return rows


def adjust_reference_tests(rows: Sequence[dict], metrics: Sequence[str]) -> None:
    """The paired tests against the reference method (``"<metric> p"``) of one table are one family too: each
    gets ``"<metric> p reference adjusted"`` by Benjamini-Hochberg over the table, and the star (*) reads that
    one (in place)."""
    keys = [(r, m) for r in rows for m in metrics if np.isfinite(r.get(f"{m} p", np.nan))]
    adjusted = adjust_pvalues([r[f"{m} p"] for r, m in keys])
    for (r, m), a in zip(keys, adjusted):
        r[f"{m} p reference adjusted"] = float(a)


def _starred(row: dict, metric: str) -> bool:
    return row.get(f"{metric} p reference adjusted", 1.0) <= 0.05


def candidates(*tables: tuple[Sequence[dict], Sequence[str]]) -> dict[str, list[str]]:
    """The cells marked beyond chance against their kind's band, over one or more (rows, metrics) tables:
    method -> metrics. Only these can stay marked once a structure-matched null is added (the larger p-value
    never marks more), so only these need one."""
    out: dict[str, list[str]] = {}
    for rows, metrics in tables:
        for r in rows:
            for m in metrics:
                if r.get(f"{m} vs chance") in ("above", "below") and m not in out.get(r["method"], []):
                    out.setdefault(r["method"], []).append(m)
    return out


def seed_rows(runs: Sequence[Mapping[str, Mapping[str, np.ndarray | Failed]]], metrics: Sequence[str],
              reference: str | None = "LIME") -> list[dict]:
    """Rows over training seeds: per metric the mean of the per-seed image means and its 95% CI across seeds
    (Student t), the per-seed means, and the test against ``reference`` at the level of the unit that varies:
    a paired t-test over the training seeds of the two methods' per-seed means (a Wilcoxon test over images
    of seed-averaged scores treats three retrains as if they were a hundred). ``runs[s][method][metric]`` are
    one seed's per-image scores."""
    if len(runs) < 1:
        raise ValueError("need the scores of at least one seed")
    rows = []
    for method in runs[0]:
        row = {"method": method}
        for m in metrics:
            values = [run.get(method, {}).get(m) for run in runs]
            bad = next((v for v in values if v is None or isinstance(v, (Failed, NotApplicable))), False)
            if bad is not False:
                row[m] = row[f"{m} ci95"] = float("nan")
                row[f"{m} note"] = str(bad) if bad is not None else "not run"
                continue
            per_seed = [float(np.nanmean(v)) for v in values]
            row[m], row[f"{m} ci95"] = mean_ci(per_seed)
            row[f"{m} seeds"] = per_seed
            refs = [run.get(reference, {}).get(m) for run in runs] if reference else []
            if reference and method != reference and all(isinstance(r, np.ndarray) for r in refs):
                row[f"{m} p"] = seed_paired_p(per_seed, [float(np.nanmean(r)) for r in refs])
        rows.append(row)
    return rows


def seed_paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value over training seeds (NaN with fewer than two seeds, or no spread)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be per-seed values of equal length, got shapes {a.shape} and {b.shape}")
    d = a - b
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return float("nan")
    if np.ptp(d) == 0:
        return float("nan") if d[0] == 0 else 0.0
    return float(ttest_1samp(d, 0.0).pvalue)


def banded_frame(rows: Sequence[dict], metrics: Sequence[str], bands: Mapping[str, Mapping[str, object]],
                 digits: int = 2):
    """A DataFrame for the book: "mean ± CI" per cell, ▲ / ▼ where the mean is beyond the chance band of the
    method's kind after the table's Benjamini-Hochberg control and the structure-matched null
    (:func:`add_bands`; △ / ▽: beyond the kind's band, the structure-matched null not run), * where the paired
    test against the reference gives p ≤ 0.05 after Benjamini-Hochberg over the table's tests
    (:func:`adjust_reference_tests`); one "chance" row per random-map kind with the band's mean and
    [2.5%, 97.5%] range ("no spread" where every random map scores the same: no verdict comes from it);
    "n/a" or "failed" with the reason."""
    def cell(r, m):
        note = r.get(f"{m} note")
        if note:
            return "n/a" if str(note).startswith("n/a") else "failed"
        mean, ci = r[m], r[f"{m} ci95"]
        if not np.isfinite(mean):
            return "nan"
        text = pm(mean, ci, digits)
        mark = {"above": "▲", "below": "▼"}.get(r.get(f"{m} vs chance"), "")
        if r.get(f"{m} vs chance") == "unchecked":
            mark = "△" if mean > np.median(r.get(f"{m} band", (0, 0))) else "▽"
        return NBSP.join(filter(None, (text, mark, "*" if _starred(r, m) else "")))

    table = {r["method"]: {m: cell(r, m) for m in metrics} for r in rows}
    for kind, per_metric in bands.items():
        table[f"chance ({kind} random maps)"] = {
            m: (f"{b.mean:.{digits}f} (no spread)" if b.degenerate and np.isfinite(b.mean) else
                f"{b.mean:.{digits}f} [{b.low:.{digits}f}, {b.high:.{digits}f}]" if np.isfinite(b.mean) else "n/a")
            if (b := per_metric.get(m)) is not None else "" for m in metrics}
    frame = pd.DataFrame.from_dict(table, orient="index")[list(metrics)]
    return frame.rename(columns=header)


def notes_of(rows: Sequence[dict], metrics: Sequence[str]) -> list[str]:
    """The distinct "n/a" and "failed" reasons of a table, one line each."""
    seen: list[str] = []
    for r in rows:
        for m in metrics:
            note = r.get(f"{m} note")
            line = f"{r['method']} / {m}: {note}" if note else None
            if line and note not in [s.split(": ", 1)[1] for s in seen]:
                seen.append(line)
    return seen


def beyond_chance(rows: Sequence[dict], metrics: Sequence[str]) -> dict[str, list[str]]:
    """Per metric, the methods whose mean is beyond their chance band (above or below, after the table's
    multiplicity control)."""
    return {m: [r["method"] for r in rows if r.get(f"{m} vs chance") in ("above", "below")] for m in metrics}


def decided_cells(rows: Sequence[dict], metrics: Sequence[str]) -> int:
    """How many cells a verdict was possible for (a defined value against a band with spread): the denominator
    of "k of n cells beyond chance". Failed, n/a and degenerate cells are not in it."""
    return sum(r.get(f"{m} vs chance") in ("above", "below", "within", "unchecked") for r in rows for m in metrics)


def localisation_over_seeds(train_set, test_set, seeds: Sequence[int], epochs: int = 12, support_epochs: int = 10,
                            num_samples: int = 300, top_k: int | None = None, device: str = "auto",
                            progress: bool = False) -> list[dict]:
    """The localisation benchmark once per training seed: a ShapesCNN trained with seed ``s``, GAD support models
    trained with ``s``, every method's maps with LIME sampled with ``s``, and the localisation metrics.

    Returns one dict per seed: ``seed``, ``bundle``, ``support``, ``maps``, ``scores`` (method -> metric ->
    per-image scores; the ground-truth mask itself is scored as "Oracle (ground truth)", the ceiling), ``info``
    (the CNN's accuracies) and ``checkpoint`` (the SHA-256 of its weights, for the
    manifest and the ledger). Localisation mixes the model with the method, so a table from one training seed
    says as much about that model as about the methods.
    """
    seeds = [check_seed(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and non-empty, got {seeds}")
    top_k = int(test_set.masks.sum(axis=(1, 2)).min()) if top_k is None else top_k
    metrics = localisation_metrics(top_k=top_k)
    runs = []
    for s in tqdm(seeds, desc="localisation seeds", disable=not progress):
        bundle = train_shapes_cnn(train_set, test_set, epochs=epochs, seed=s, device=device, progress=False)
        support = train_support_models(bundle, train_set.images, train_set.labels, epochs=support_epochs, seed=s,
                                       dataset_name=f"shapes-{len(train_set)}-{s}", progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # Grad-CAM fallbacks are counted in the maps' info
            maps = benchmark_maps(bundle, test_set.images, test_set.labels, num_samples=num_samples, support=support,
                                  seed=s)
        maps["Oracle (ground truth)"] = oracle_map(test_set.masks)
        scores = score_attributions(None, None, test_set.labels, maps, metrics, masks=test_set.masks)
        runs.append({"seed": s, "bundle": bundle, "support": support, "maps": maps, "scores": scores,
                     "info": dict(bundle.info), "checkpoint": state_digest(bundle.model.state_dict())})
    return runs


# ---------------------------------------------------------------------------------------------------------
# the chapter's inputs, controls and outputs


def photo_sources(profile: str, image_names: Sequence[str], data_root=None, n_images: int = 50,
                  class_name: str | None = None, seed: int = 0, photos: int | None = None) -> list:
    """The images the evaluation explains: ``n_images`` of *one* class of ``data_root`` (an ImageNet-validation
    style folder, as the paper profile uses, so Sufficiency is defined), else the first ``photos`` of the named
    sample photos (``None``: all of them; :data:`SIZES` gives two in ``smoke``). The paper profile without ``data_root`` reads ``$GRADLIME_DATA/imagenet_val`` (see
    :func:`gradlime_utils.data.datasets.default_imagenet_val`) and stops with instructions when it is not there."""
    if data_root is None and profile == "paper":
        data_root = default_imagenet_val()
        if not data_root.is_dir():
            raise FileNotFoundError(
                f"the paper profile explains ImageNet validation images, and data_root=None: {data_root} does not "
                f"exist. Pass -p data_root=FOLDER (one sub-folder of images per class); "
                f"`python -m gradlime_utils.runs.fetch --datasets imagenet_val` says how to get them")
    if data_root is not None:
        return one_class_files(data_root, n_images, seed=seed, class_name=class_name)[1]
    if photos is not None:
        check_int("photos", photos, low=1)
    return list(image_names)[:photos]


def plot_method_maps(image: np.ndarray, title: str, maps: Mapping[str, np.ndarray], cols: int = 6, path=None):
    """The first image and every method's map of it (``maps``: name -> N×H×W, the first is drawn), on a grid of
    ``cols`` columns. A map with negative values is drawn signed (blue-red, centred on zero), others from zero.
    The colour scale ends at the 99th percentile of ``|value|`` (beyond it, clipped): pixel gradients put most of
    their magnitude in a few pixels, and scaled to the maximum the rest of the map would be drawn blank."""
    fig, axes = plt.subplots(int(np.ceil((len(maps) + 1) / cols)), cols, figsize=(13, 4.6), squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(image); axes[0].set_title(title, fontsize=8)
    for ax, (name, a) in zip(axes[1:], maps.items()):
        lim = float(np.percentile(np.abs(a[0]), 99)) or float(np.abs(a[0]).max()) or 1.0
        signed = a[0].min() < 0
        ax.imshow(a[0], cmap=CMAPS["signed"] if signed else CMAPS["map"], vmin=-lim if signed else 0, vmax=lim)
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return finish_figure(fig, path=path, dpi=80)


def plot_localisation_maps(test_set, maps: Mapping[str, np.ndarray], methods: Sequence[str],
                           examples: Sequence[int], scores: Mapping | None = None, size: float = 1.9, path=None):
    """Benchmark images (rows: ``examples``) with each method's map (columns) and the object's outline (cyan).
    With ``scores`` (method -> metric -> per-image scores) each map's title gives its Pointing Game and
    relevance-rank accuracy; otherwise the first row names the methods."""
    fig, axes = plt.subplots(len(examples), len(methods) + 1, squeeze=False,
                             figsize=(size * (len(methods) + 1), 1.05 * size * len(examples)))
    for r, i in enumerate(examples):
        axes[r, 0].imshow(test_set.images[i])
        axes[r, 0].set_title(test_set.class_names[test_set.labels[i]], fontsize=8)
        for c, m in enumerate(methods, start=1):
            axes[r, c].imshow(maps[m][i], cmap=CMAPS["map"])
            axes[r, c].contour(test_set.masks[i], levels=[0.5], colors="c", linewidths=0.6)
            if scores is not None:
                point, rank = (float(scores[m][k][i]) for k in ("PointingGame", "RelevanceRankAccuracy"))
                axes[r, c].set_title(f"{m}: pointing {point:.2f}, rank acc. {rank:.2f}", fontsize=8)
            else:
                axes[r, c].set_title(m if r == 0 else "", fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    return finish_figure(fig, path=path, dpi=80)


def score_records(scores: Mapping[str, Mapping[str, object]], image_names: Sequence[str], group: str) -> list[dict]:
    """Long-format rows (group, method, metric, image, score, note) of ``scores[method][metric]``."""
    rows = []
    for method, per_metric in scores.items():
        for metric, v in per_metric.items():
            if isinstance(v, (Failed, NotApplicable)):
                rows.append({"group": group, "method": method, "metric": metric, "image": "", "score": "",
                             "note": str(v)})
            else:
                rows += [{"group": group, "method": method, "metric": metric, "image": str(n), "score": float(s),
                          "note": ""} for n, s in zip(image_names, v)]
    return rows


def write_score_csv(path, records: Sequence[dict]) -> None:
    """Write :func:`score_records` rows as CSV (commas inside notes become semicolons)."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["group", "method", "metric", "image", "score", "note"])
        writer.writeheader()
        writer.writerows({k: str(v).replace(",", ";") for k, v in r.items()} for r in records)


def localisation_chance(test_set, n_random: int, cell_size: int = 7, keep: int = 10, top_k: int | None = None,
                        seed: int = 0, seeds: int = 1) -> tuple[dict, dict]:
    """Random maps on the benchmark, scored by the localisation metrics: uniform pixels, and random *blocks* on
    the grid LIME uses there (``keep`` positive cells, as LIME's benchmark maps). Returns (scores, bands), each
    keyed by kind then metric. The maps do not depend on the model, so one set serves every training seed.

    A method's localisation score is a mean over ``seeds`` training seeds, each on its own maps; so each draw of
    the band is the mean of ``seeds`` independent random maps (``scores`` holds draws×N of those per-image
    means): a band of single random maps is wider than the null of a seed-averaged method, and would compare
    unlike with unlike."""
    seeds = check_int("seeds", seeds, 1)
    grid = segment_image(test_set.images[0], "grid", cell_size=cell_size)
    top_k = int(test_set.masks.sum(axis=(1, 2)).min()) if top_k is None else top_k
    metrics = localisation_metrics(top_k=top_k)
    scores, bands = {}, {}
    for j, kind in enumerate(RANDOM_MAP_KINDS):
        per_seed = []
        for s in range(seeds):
            maps = random_maps(kind, n_random, test_set.masks.shape, segments=[grid] * len(test_set), keep=keep,
                               positive=True, seed=derive_seed(seed, 101 + j + 1000 * s))
            per_seed.append(score_many(maps, metrics, test_set.labels, masks=test_set.masks))
        scores[kind] = {m: next((ps[m] for ps in per_seed if isinstance(ps[m], Failed)), None)
                        or np.mean([ps[m] for ps in per_seed], axis=0) for m in per_seed[0]}
        bands[kind] = bands_by_metric(scores[kind])
    return scores, bands


def per_seed_frame(rows: Sequence[dict], metric: str, seeds: Sequence[int], digits: int = 2):
    """Methods × seeds: each training seed's image mean of ``metric`` (from :func:`seed_rows`), so a reader sees
    whether a ranking survives a retrain."""
    table = {r["method"]: {f"seed {s}": round(v, digits) for s, v in zip(seeds, r.get(f"{metric} seeds", []))}
             for r in rows}
    return pd.DataFrame.from_dict(table, orient="index")


def _listing(names: Sequence[str], everyone: Sequence[str]) -> str:
    """``names`` in a sentence: "every method", "all 15 but A, B" when most are in it, else the names."""
    if len(names) == len(everyone):
        return f"every method ({len(everyone)})"
    if len(names) > len(everyone) / 2:
        return f"all {len(everyone)} methods but {', '.join(m for m in everyone if m not in names)}"
    return ", ".join(names)


def describe_chance(rows: Sequence[dict], metrics: Sequence[str], where: str) -> list[str]:
    """The table's reading against chance: one line per group of metrics that read the same (which methods lie
    above / below their chance band after the control, the rest not shown beyond it), so that a table where
    nothing is beyond chance reads in one line, not one per metric."""
    bodies: dict[str, list[str]] = {}
    for m in metrics:
        above = [r["method"] for r in rows if r.get(f"{m} vs chance") == "above"]
        below = [r["method"] for r in rows if r.get(f"{m} vs chance") == "below"]
        within = [r["method"] for r in rows if r.get(f"{m} vs chance") == "within"]
        unchecked = [r["method"] for r in rows if r.get(f"{m} vs chance") == "unchecked"]
        notes = {str(r.get(f"{m} note")) for r in rows if r.get(f"{m} note")}
        if any(r.get(f"{m} vs chance") == "degenerate" for r in rows):
            notes.add("every random map scores the same (a band of zero width decides nothing)")
        if not (above or below or within or unchecked):
            body = f"no verdict — {'; '.join(sorted(notes)) or 'no band'}."
        else:
            decided = [r["method"] for r in rows if r.get(f"{m} vs chance") in ("above", "below", "within",
                                                                                 "unchecked")]
            parts = ([f"above chance: {_listing(above, decided)}"] if above else []) + \
                ([f"below chance: {_listing(below, decided)}"] if below else [])
            if not (above or below):
                parts.append(f"no method beyond chance after the control ({len(decided)} methods)")
            elif within:
                parts.append(f"not shown beyond chance: {len(within)} of {len(decided)}")
            if unchecked:
                parts.append("beyond the band of its kind but not checked against its own shifted maps (not "
                             f"counted): {', '.join(unchecked)}")
            undefined = [f"{r['method']} ({r[f'{m} undefined']})" for r in rows if r.get(f"{m} undefined")]
            if undefined:
                parts.append("undefined on some images (compared with random maps on the same images): "
                             + ", ".join(undefined))
            body = "; ".join(parts) + "."
        bodies.setdefault(body, []).append(m)
    return [f"- {', '.join(ms)} ({where}): {body}" for body, ms in bodies.items()]


def rows_for_json(rows: Sequence[dict]) -> list[dict]:
    """Table rows with NaN as None and tuples as lists, for JSON."""
    def clean(v):
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, (tuple, list)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v
    return [{k: clean(v) for k, v in r.items()} for r in rows]


def describe_modes(rows: Sequence[dict], metrics: Sequence[str], reference: str = "LIME") -> list[str]:
    """The G-7 reading: each GradLIME mode's difference from ``reference`` (LIME, the mode without a prior; the
    row whose method is that name) per metric, and whether any mode lies outside the superpixel chance band."""
    ref = next((r for r in rows if r["method"] == reference), None)
    if ref is None:
        raise ValueError(f"reference must name one of the rows' methods {[r['method'] for r in rows]}, "
                         f"got {reference!r}")
    lines = []
    for r in rows:
        if r is ref:
            continue
        diffs = [f"{m} {r[m] - ref[m]:+.2f}" + (" (p ≤ 0.05, BH)" if _starred(r, m) else "")
                 for m in metrics if np.isfinite(r.get(m, np.nan)) and np.isfinite(ref.get(m, np.nan))]
        outside = [m for m in metrics if r.get(f"{m} vs chance") in ("above", "below")]
        lines.append(f"- G-7, {r['method']} − LIME: {', '.join(diffs)}; outside the superpixel chance band on: "
                     f"{', '.join(outside) or 'no metric'}.")
    return lines


def evaluation_results(*, model: str, images: Sequence[str], num_samples: int, settings, photo, g5, g6, g7, bench,
                       bench_rows, loc_rows, runs, benchmark: dict, stability: Sequence[dict]) -> dict:
    """Everything the ledger and a reader need from the chapter, JSON-ready: the tables with their bands and
    verdicts, the checkpoint hash and accuracy of each benchmark model, and where the time went."""
    return {
        "model": model, "images": list(images), "num_samples": num_samples, "metric_settings": asdict(settings),
        "G-5": rows_for_json(g5), "G-6": rows_for_json(g6), "G-7": rows_for_json(g7),
        "photo_chance": photo.to_json(), "benchmark_faithfulness": rows_for_json(bench_rows),
        "benchmark_chance": bench.to_json(), "localisation": rows_for_json(loc_rows),
        "localisation_models": [{"seed": r["seed"], "checkpoint_sha256": r["checkpoint"],
                                 "test_accuracy": r["info"].get("test_accuracy")} for r in runs],
        "benchmark": benchmark, "stability": rows_for_json(stability),
        "stability_summary": stability_summary(stability).to_dict(orient="records"),
        "seconds": {"photo_metrics": photo.seconds, "benchmark_metrics": bench.seconds},
    }


def chance_tables(study: ChanceStudy, tables: Mapping[str, Sequence[str]], bundle: ModelBundle, images,
                  labels: Sequence[int], maps: Mapping[str, object], settings: FaithfulnessSettings,
                  n_matched: int = 50, seed: int = 0, reference: str | None = "LIME", kind_of=None,
                  matched_metrics: Sequence[str] | None = None, progress: bool = False) -> dict[str, list[dict]]:
    """The chapter's tables (name -> metrics) with their verdicts against chance, each table one family under
    Benjamini-Hochberg: the rank p-value against the band of the method's kind (on the images the method is
    defined on), and for every cell marked by it the larger p-value with a structure-matched band
    (:func:`matched_chance`, ``n_matched`` draws). Returns name -> rows
    (:func:`banded_rows`), with ``scores`` taken from ``study``.

    ``matched_metrics`` limits the structure-matched null to those metrics (None: all); a marked cell of any
    other metric reads "unchecked" (beyond its kind's band, the structure-matched null not run: the four
    metrics that perturb in each map's own order cost a model query per image and draw, which the `quick`
    benchmark does not pay). It is not counted as beyond chance.
    """
    kw = dict(reference=reference, null=study.null, **({"kind_of": kind_of} if kind_of else {}))
    first = {name: banded_rows(study.scores, metrics, study.bands, **kw) for name, metrics in tables.items()}
    todo = candidates(*((first[name], metrics) for name, metrics in tables.items()))
    checked = {m: [x for x in metrics if matched_metrics is None or x in matched_metrics] for m, metrics in todo.items()}
    checked = {m: v for m, v in checked.items() if v}
    matched = matched_chance(bundle, images, labels, maps, checked, settings, n_matched, seed, progress) \
        if checked else {}
    out = {name: banded_rows(study.scores, metrics, study.bands, matched=matched, **kw)
           for name, metrics in tables.items()}
    for rows in out.values():
        for r in rows:
            for m in todo.get(r["method"], []):
                if m not in checked.get(r["method"], []) and r.get(f"{m} vs chance") in ("above", "below"):
                    r[f"{m} vs chance"] = "unchecked"
    return out
