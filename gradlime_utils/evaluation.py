"""Evaluating explanations with Quantus: attribution maps, faithfulness, complexity, localisation, statistics.

Every explanation becomes a per-pixel attribution map the same way before Quantus sees it. For LIME and
GradLIME that is :func:`superpixel_attribution` (each pixel carries its superpixel's surrogate weight); the
GradLIME repository's own conversion (:func:`repo_markboundaries_attribution`, METHODS 2.6) is kept only as a
labelled reproduction column, because it mostly measures image brightness.

Known problems of the released Quantus 0.6.0 that this module works around through Quantus' public
parameters, without changing Quantus:

- ``IROF`` passes a one-channel segment mask to its default perturbation function, which asserts that the mask
  has the image's three channels; we pass :func:`broadcast_mask_replacement` as ``perturb_func``.
- ``IROF`` (and any metric computing an area under a curve) calls ``np.trapz``, which NumPy 2.4 removed;
  :func:`_numpy_trapz_alias` restores the name as an alias of ``np.trapezoid``, the same function renamed in
  NumPy 2.0.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .attributions import attribute, baseline_input, check_relu_modules
from .models import ModelBundle
from .surrogate import SurrogateExplanation

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
FAITHFULNESS = ("FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation", "IROF",
                "RegionPerturbation", "Sufficiency")
COMPLEXITY = ("Sparseness", "Complexity", "EffectiveComplexity")
LOCALISATION = ("PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy", "AUC", "TopKIntersection")
METRIC_PROFILES = ("paper", "quick", "smoke")


def _numpy_trapz_alias() -> None:
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # removed in NumPy 2.4; trapezoid is the same function (renamed in 2.0)


def _quantus():
    _numpy_trapz_alias()
    import quantus

    return quantus


@dataclass(frozen=True)
class Failed:
    """A method or metric that could not run on a model, and why (kept in the tables, never dropped)."""

    reason: str

    def __str__(self) -> str:
        return f"failed: {self.reason}"


# ---------------------------------------------------------------------------------------------------------
# attribution maps


def superpixel_attribution(explanation: SurrogateExplanation, num_features: int | None = None) -> np.ndarray:
    """H×W map A(p) = coef of p's superpixel, for the ``num_features`` most important superpixels (all if None).

    For GradLIME ``coef`` is the effective weight b = a * w, so LIME and GradLIME maps are on the same scale.
    """
    coef = np.asarray(explanation.coef, dtype=float)
    if num_features is not None:
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer or None, got {num_features!r}")
        keep = np.zeros(len(coef), bool)
        keep[explanation.ranking[:num_features]] = True
        coef = np.where(keep, coef, 0.0)
    return coef[explanation.segments]


def repo_markboundaries_attribution(explanation: SurrogateExplanation, image: np.ndarray, num_features: int = 20,
                                    positive_only: bool = True) -> np.ndarray:
    """The GradLIME repository's conversion (METHODS 2.6), for reproduction only.

    lime's ``ImageExplanation.get_image_and_mask(label, positive_only, num_features, hide_rest=False)``, then
    ``skimage.segmentation.mark_boundaries(temp / 255, mask)`` summed over RGB. With ``positive_only=True``
    this is the image's brightness plus yellow boundary lines: it carries almost no explanation signal.
    """
    from lime.lime_image import ImageExplanation
    from skimage.segmentation import mark_boundaries

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
                          methods: Sequence[str] | None = None, seed: int = 0,
                          baseline: str = "black") -> dict[str, np.ndarray | Failed]:
    """Per-pixel maps (N×H×W) of the gradient baselines and controls, through ``quantus.explain``.

    Captum with the channel sum as reduction, as the GradLIME evaluation scripts. Integrated Gradients (10 steps,
    Quantus' setting), GradientShap and Input × Gradient are measured against ``baseline``
    (:func:`gradlime_utils.attributions.baseline_input`): by default the model's preprocessed *black* image, the
    reference that the faithfulness metrics' "black" perturbation and LIME's hiding use; Quantus' own default is
    the normalised zero (raw grey). Quantus passes a ``baseline`` keyword to IG and GradientShap; its
    Input × Gradient has none, so that one is computed as (x - x̄) ⊙ ∇ by
    :func:`gradlime_utils.attributions.attribute`. Grad-CAM at the bundle's first ``cam_layers`` entry
    upsampled to the image. A method that cannot run on the model is returned as :class:`Failed` with the
    reason: Deconvolution on a model without ``nn.ReLU`` modules (captum would silently return the plain
    gradient), or any exception.
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
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = quantus.explain(bundle.model, x, y, method=method, device=str(bundle.device), **kwargs)
            out[name] = np.asarray(a, dtype=float).reshape(len(x), *x.shape[-2:])
        except Exception as exc:  # noqa: BLE001 - recorded, not dropped
            out[name] = Failed(f"{type(exc).__name__} raised: {str(exc).splitlines()[0][:160]}")
    return out


def _inputs(bundle: ModelBundle, images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    return np.ascontiguousarray(bundle.preprocess(images).detach().cpu().contiguous().numpy())


def _labels(bundle: ModelBundle, labels, n: int) -> np.ndarray:
    y = np.asarray(labels, dtype=int).reshape(-1)
    if y.shape != (n,):
        raise ValueError(f"got {y.size} labels for {n} images")
    if (y < 0).any() or (y >= bundle.num_classes).any():
        raise ValueError(f"labels must be class indices in [0, {bundle.num_classes}), got {y.tolist()}")
    return y


# ---------------------------------------------------------------------------------------------------------
# metrics


def broadcast_mask_replacement(arr: np.ndarray, mask: np.ndarray, **kwargs) -> np.ndarray:
    """``quantus.perturb_func.baseline_replacement_by_mask`` with a one-channel mask broadcast to the image."""
    quantus = _quantus()
    return quantus.perturb_func.baseline_replacement_by_mask(arr=arr, mask=np.broadcast_to(mask, arr.shape),
                                                             **kwargs)


def faithfulness_metrics(profile: str = "paper", image_size: int = 224) -> dict:
    """The six faithfulness metrics with the GradLIME evaluation's parameters (METHODS 2.6).

    The parameters are those of 224-pixel images: one image row (224 pixels) per FaithfulnessCorrelation subset
    and FaithfulnessEstimate step, 1/16 of the image (3136 pixels) per MonotonicityCorrelation step. For another
    ``image_size`` they keep those proportions. ``profile="quick"`` lowers the three most expensive counts so
    that a CPU run takes seconds per image: FaithfulnessCorrelation ``nr_runs`` 100 -> 30, FaithfulnessEstimate
    steps of 1/16 of the image instead of one row, MonotonicityCorrelation ``nr_samples`` 10 -> 3.
    ``profile="smoke"`` only checks that everything runs: 5 runs, steps of 1/4 of the image, 1 sample.
    """
    if profile not in METRIC_PROFILES:
        raise ValueError(f"profile must be one of {METRIC_PROFILES}, got {profile!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 16 or image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 and >= 16, got {image_size!r}")
    quantus = _quantus()
    quick, smoke = profile == "quick", profile == "smoke"
    row, sixteenth = int(image_size), int(image_size) ** 2 // 16
    quarter = int(image_size) ** 2 // 4
    kw = {"disable_warnings": True, "display_progressbar": False}
    return {
        "FaithfulnessCorrelation": quantus.FaithfulnessCorrelation(
            nr_runs=5 if smoke else 30 if quick else 100, subset_size=row, perturb_baseline="black", abs=False,
            similarity_func=quantus.similarity_func.correlation_pearson, return_aggregate=False, **kw),
        "FaithfulnessEstimate": quantus.FaithfulnessEstimate(
            features_in_step=quarter if smoke else sixteenth if quick else row, perturb_baseline="black",
            similarity_func=quantus.similarity_func.correlation_pearson, **kw),
        "MonotonicityCorrelation": quantus.MonotonicityCorrelation(
            nr_samples=1 if smoke else 3 if quick else 10, features_in_step=quarter if smoke else sixteenth,
            perturb_baseline="uniform",
            similarity_func=quantus.similarity_func.correlation_spearman, **kw),
        "IROF": quantus.IROF(segmentation_method="slic", perturb_baseline="mean",
                             perturb_func=broadcast_mask_replacement, return_aggregate=False, **kw),
        "RegionPerturbation": quantus.RegionPerturbation(patch_size=max(2, row // 16), regions_evaluation=1,
                                                         perturb_baseline="uniform", normalise=True, **kw),
        "Sufficiency": quantus.Sufficiency(threshold=0.6, return_aggregate=False, **kw),
    }


def complexity_metrics() -> dict:
    """Sparseness, Complexity and EffectiveComplexity at Quantus' defaults (abs and normalise on)."""
    quantus = _quantus()
    kw = {"disable_warnings": True, "display_progressbar": False}
    return {"Sparseness": quantus.Sparseness(**kw), "Complexity": quantus.Complexity(**kw),
            "EffectiveComplexity": quantus.EffectiveComplexity(**kw)}


def localisation_metrics(top_k: int = 64) -> dict:
    """Pointing Game, Relevance Mass Accuracy, Relevance Rank Accuracy, AUC and Top-K Intersection (k = ``top_k``)."""
    quantus = _quantus()
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    kw = {"disable_warnings": True, "display_progressbar": False}
    return {"PointingGame": quantus.PointingGame(**kw), "RelevanceMassAccuracy": quantus.RelevanceMassAccuracy(**kw),
            "RelevanceRankAccuracy": quantus.RelevanceRankAccuracy(**kw), "AUC": quantus.AUC(**kw),
            "TopKIntersection": quantus.TopKIntersection(k=int(top_k), **kw)}


def _score_vector(raw, n: int) -> np.ndarray:
    scores = np.asarray(raw, dtype=float).reshape(n, -1)
    # RegionPerturbation returns one curve per image; with regions_evaluation=1 it holds one drop
    return scores[:, 0] if scores.shape[1] >= 1 else np.full(n, np.nan)


def score_attributions(bundle: ModelBundle | None, images: np.ndarray | None, labels: Sequence[int],
                       attributions: Mapping[str, np.ndarray | Failed], metrics: Mapping[str, object],
                       masks: np.ndarray | None = None, seed: int = 0) -> dict[str, dict[str, np.ndarray | Failed]]:
    """Run every metric on every method's maps; ``result[method][metric]`` is one score per image or :class:`Failed`.

    ``images`` are the uint8 images (normalised here through the bundle, as the metrics perturb the model
    input); ``masks`` (N×H×W, booleans) are the ground truth for localisation metrics, which need neither
    model nor images. Each call is seeded (NumPy and torch), so reruns give the same numbers. A metric that
    raises is recorded as :class:`Failed` with the reason.
    """
    quantus = _quantus()  # noqa: F841 - applies the NumPy alias before any metric runs
    n = len(np.asarray(labels).reshape(-1))
    if bundle is not None and images is not None:
        x = _inputs(bundle, images)
        y = _labels(bundle, labels, n)
        model, device = bundle.model, str(bundle.device)
    else:
        x = np.zeros((n, 1, 1, 1))
        y = np.asarray(labels, dtype=int).reshape(-1)
        model, device = None, "cpu"
    s = None
    if masks is not None:
        masks = np.asarray(masks)
        if masks.ndim != 3 or len(masks) != n:
            raise ValueError(f"masks must be N×H×W with N = {n}, got shape {masks.shape}")
        s = masks[:, None].astype(float)
    result: dict[str, dict[str, np.ndarray | Failed]] = {}
    for method, a in attributions.items():
        result[method] = {}
        for metric_name, metric in metrics.items():
            if isinstance(a, Failed):
                result[method][metric_name] = a
                continue
            a = np.asarray(a, dtype=float)
            if a.ndim != 3 or len(a) != n:
                raise ValueError(f"attributions of {method!r} must be N×H×W with N = {n}, got shape {a.shape}")
            if s is not None and a.shape[1:] != s.shape[2:]:
                raise ValueError(f"attributions of {method!r} have shape {a.shape[1:]}, the masks {s.shape[2:]}")
            if model is None and type(metric).__name__ in FAITHFULNESS:
                raise ValueError(f"{metric_name} needs a model and images (bundle=..., images=...)")
            np.random.seed(seed)
            torch.manual_seed(seed)
            xb = x if model is not None else np.zeros((n, 1) + a.shape[1:])  # shape only: no model reads it
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    raw = metric(model=model, x_batch=xb, y_batch=y, a_batch=a[:, None], s_batch=s,
                                 device=device, channel_first=True)
                result[method][metric_name] = _score_vector(raw, n)
            except Exception as exc:  # noqa: BLE001 - recorded, not dropped
                result[method][metric_name] = Failed(f"{type(exc).__name__} raised: {str(exc).splitlines()[0][:160]}")
    return result


# ---------------------------------------------------------------------------------------------------------
# statistics and tables


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its ``confidence`` interval (Student t over images); NaN scores are dropped."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half)


def paired_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired per-image scores (NaN when fewer than 6 pairs differ:
    with n pairs the smallest attainable p is 2 / 2**n, so below 6 pairs it cannot reach 0.05)."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b) & (a != b)
    if keep.sum() < 6:
        return float("nan")
    return float(wilcoxon(a[keep], b[keep]).pvalue)


def summary_rows(scores: Mapping[str, Mapping[str, np.ndarray | Failed]], metrics: Sequence[str],
                 reference: str | None = None) -> list[dict]:
    """One row per method: mean, 95% CI half-width and (against ``reference``) the paired p-value per metric."""
    rows = []
    for method, per_metric in scores.items():
        row = {"method": method}
        for m in metrics:
            v = per_metric.get(m)
            if isinstance(v, Failed) or v is None:
                row[m] = row[f"{m} ci95"] = float("nan")
                row[f"{m} note"] = str(v) if v is not None else "not run"
                continue
            row[m], row[f"{m} ci95"] = mean_ci(v)
            ref = scores.get(reference, {}).get(m) if reference else None
            if ref is not None and not isinstance(ref, Failed) and method != reference:
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
                cells.append(f"{'failed':>{width}}")
                continue
            mean, ci = r[m], r[f"{m} ci95"]
            star = "*" if r.get(f"{m} p", 1.0) < 0.05 else " "
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


def surrogate_maps(bundle: ModelBundle, images: np.ndarray, labels: Sequence[int], num_samples: int = 1000,
                   num_features: int = 20, seed: int = 0, segmentation: str = "quickshift", hide_color=0,
                   progress: bool = False, **segmentation_params) -> tuple[dict[str, np.ndarray], list]:
    """LIME and GradLIME maps (N×H×W) for each image and label, from one shared neighbourhood per image.

    Returns the maps by name ("LIME", "GradLIME (feature)", "GradLIME (importance)", and the repository's
    mark_boundaries conversions "LIME (repo, both signs)", "LIME (repo, positive)", "GradLIME (repo, positive)")
    and the per-image ``(neighbourhood, cam, explanations)`` for further use (stability, figures).
    """
    from tqdm.auto import tqdm

    from .gradcam import gradcam
    from .neighborhood import sample_neighborhood
    from .surrogate import explain_gradlime, explain_lime

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
        details.append((nb, cam, exps))
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
    from tqdm.auto import tqdm

    from .attributions import ATTRIBUTION_METHODS, attribution_maps
    from .gad import gad_map
    from .gradcam import gradcam
    from .neighborhood import segment_image, sample_neighborhood
    from .surrogate import explain_gradlime, explain_lime

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
        name = method.replace("_", " ")
        try:
            out[f"{name} (Orig.)"] = attribution_maps(bundle.model, inputs, labels, method).cpu().numpy()
        except ValueError as exc:
            out[f"{name} (Orig.)"] = Failed(str(exc))
        if support is not None:
            try:
                out[f"{name} (GAD)"] = gad_map(support, images, labels, method).gad
            except ValueError as exc:
                out[f"{name} (GAD)"] = Failed(str(exc))
    return out
