"""Quantus, called through its public API: complexity, localisation and Sufficiency metrics, and the scoring
loop every table of the evaluation chapter uses (:func:`score_attributions`, :func:`score_many`).

Faithfulness is scored by :mod:`gradlime_utils.metrics.faithfulness` (the same computations as Quantus 0.6, on
perturbations shared by many maps, so that every metric gets a chance band from random maps); complexity,
localisation and Sufficiency go through Quantus. Known problems of the released Quantus 0.6.0 that this package
works around through Quantus' public parameters and functions, without changing Quantus (each tested):

- ``IROF`` passes a one-channel segment mask to its default perturbation function, which asserts that the mask
  has the image's three channels: :func:`broadcast_mask_replacement` broadcasts it. It also fills with the mean
  of the whole batch and does not divide by the number of segments (fixed in the faithfulness module).
- ``IROF`` (and any metric computing an area under a curve) calls ``np.trapz``, which NumPy 2.4 removed;
  :func:`_numpy_trapz_alias` restores the name as an alias of ``np.trapezoid``, the same function renamed in
  NumPy 2.0.
- ``PointingGame`` scores a hit when *any* pixel tied at the maximum lies on the object, so a block map (LIME)
  or a blank map wins by its plateau: :class:`TieFairPointingGame` scores the share of the maximal plateau on
  the object, and a constant map as a miss.
- ``Sufficiency`` is 0 when no two images share a predicted class (no neighbour can agree): it is undefined
  there, and :func:`sufficiency_applicability` says so (the tables print "n/a" with the reason, never 0).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from gradlime_utils.data.models import ModelBundle
from gradlime_utils.validation import check_int

FAITHFULNESS = ("FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation", "IROF",
                "RegionPerturbation", "Sufficiency")
COMPLEXITY = ("Sparseness", "Complexity", "EffectiveComplexity")
LOCALISATION = ("PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy", "AUC", "TopKIntersection")


def _numpy_trapz_alias() -> None:
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # removed in NumPy 2.4; trapezoid is the same function (renamed in 2.0)


def _quantus():
    _numpy_trapz_alias()
    import quantus  # lazy: heavy import

    return quantus


@dataclass(frozen=True)
class Failed:
    """A method or metric that could not run on a model, and why (kept in the tables, never dropped)."""

    reason: str

    def __str__(self) -> str:
        return f"failed: {self.reason}"


@dataclass(frozen=True)
class NotApplicable:
    """A metric that is undefined for the data (e.g. Sufficiency with one image per class), and why."""

    reason: str

    def __str__(self) -> str:
        return f"n/a: {self.reason}"


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


def broadcast_mask_replacement(arr: np.ndarray, mask: np.ndarray, **kwargs) -> np.ndarray:
    """``quantus.perturb_func.baseline_replacement_by_mask`` with a one-channel mask broadcast to the image."""
    quantus = _quantus()
    return quantus.perturb_func.baseline_replacement_by_mask(arr=arr, mask=np.broadcast_to(mask, arr.shape),
                                                             **kwargs)


def sufficiency_metric():
    """Quantus' Sufficiency (Dasgupta et al. 2022) at threshold 0.6: of the images whose thresholded maps lie
    close to an image's, the share predicted as its class. Defined only when classes repeat in the batch
    (:func:`sufficiency_applicability`)."""
    quantus = _quantus()
    return quantus.Sufficiency(threshold=0.6, return_aggregate=False, disable_warnings=True, display_progressbar=False)


def sufficiency_applicability(labels: Sequence[int]) -> NotApplicable | None:
    """``None`` when Sufficiency is defined for these (predicted) labels, else why not.

    Sufficiency asks whether images with similar explanations share the class; with no class predicted for two
    images there is nothing to agree with, and Quantus returns 0 for every method.
    """
    y = np.asarray(labels).reshape(-1)
    counts = np.unique(y, return_counts=True)[1]
    if len(y) < 2 or counts.max() < 2:
        return NotApplicable(f"each of the {len(y)} images has its own predicted class, so no image has a "
                             f"neighbour of its class (use images of one class, as the paper profile does)")
    return None


def complexity_metrics() -> dict:
    """Sparseness, Complexity and EffectiveComplexity at Quantus' defaults (abs and normalise on)."""
    quantus = _quantus()
    kw = {"disable_warnings": True, "display_progressbar": False}
    return {"Sparseness": quantus.Sparseness(**kw), "Complexity": quantus.Complexity(**kw),
            "EffectiveComplexity": quantus.EffectiveComplexity(**kw)}


class TieFairPointingGame:
    """Pointing Game (Zhang et al. 2018) that is fair to ties: the share of the map's maximal plateau that lies on
    the object (1 or 0 for a unique maximum, as Quantus; a plateau half on the object scores 0.5).

    Quantus 0.6 counts a hit when any pixel tied at the maximum is on the object, so a block map, whose maximum
    is a whole superpixel, or a blank map, whose maximum is every pixel, wins by its plateau. A constant (e.g.
    blank) map points nowhere and scores 0. Called like a Quantus metric (``a_batch`` N×1×H×W, ``s_batch``).
    """

    def __init__(self, rtol: float = 1e-9):
        self.rtol = float(rtol)

    def __call__(self, model=None, x_batch=None, y_batch=None, a_batch=None, s_batch=None, **kwargs) -> np.ndarray:
        if a_batch is None or s_batch is None:
            raise ValueError("the Pointing Game needs maps (a_batch) and ground-truth masks (s_batch)")
        a = np.asarray(a_batch, dtype=float).reshape(len(a_batch), -1)
        s = np.asarray(s_batch).reshape(len(s_batch), -1) > 0
        if a.shape != s.shape:
            raise ValueError(f"maps {a.shape} and masks {s.shape} differ in shape")
        if not np.isfinite(a).all():
            raise ValueError("a_batch contains non-finite values")
        top, low = a.max(axis=1, keepdims=True), a.min(axis=1, keepdims=True)
        plateau = a >= top - self.rtol * np.maximum(np.abs(top), 1e-300)
        share = (plateau & s).sum(axis=1) / plateau.sum(axis=1)
        return np.where(top[:, 0] > low[:, 0], share, 0.0)


def localisation_metrics(top_k: int = 64) -> dict:
    """Pointing Game (tie-fair, :class:`TieFairPointingGame`), and Quantus' Relevance Mass Accuracy, Relevance
    Rank Accuracy, AUC and Top-K Intersection (k = ``top_k``)."""
    quantus = _quantus()
    top_k = check_int("top_k", top_k, low=1)
    kw = {"disable_warnings": True, "display_progressbar": False}
    return {"PointingGame": TieFairPointingGame(), "RelevanceMassAccuracy": quantus.RelevanceMassAccuracy(**kw),
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


BATCH_COUPLED = ("Sufficiency",)  # a score that compares the images of one call with each other


def score_many(maps, metrics: Mapping[str, object], labels: Sequence[int], masks: np.ndarray | None = None,
               bundle: ModelBundle | None = None, images: np.ndarray | None = None,
               seed: int = 0) -> dict[str, np.ndarray | Failed]:
    """Scores (M×N) of M maps of the same N images, e.g. a hundred random maps for a chance band.

    Metrics that treat images independently get all M×N maps in one call; a batch-coupled metric
    (:data:`BATCH_COUPLED`: Sufficiency compares the maps of one call) is called once per map on the N images.
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 4:
        raise ValueError(f"maps must be M×N×H×W, got shape {maps.shape}")
    m, n = maps.shape[:2]
    labels = np.asarray(labels).reshape(-1)
    out: dict[str, np.ndarray | Failed] = {}
    independent = {k: v for k, v in metrics.items() if type(v).__name__ not in BATCH_COUPLED}
    if independent:
        flat = score_attributions(bundle, None if images is None else np.tile(np.asarray(images), (m, 1, 1, 1)),
                                  np.tile(labels, m), {"maps": maps.reshape(m * n, *maps.shape[2:])}, independent,
                                  masks=None if masks is None else np.tile(np.asarray(masks), (m, 1, 1)),
                                  seed=seed)["maps"]
        out.update({k: v if isinstance(v, Failed) else v.reshape(m, n) for k, v in flat.items()})
    for name, metric in metrics.items():
        if name in independent:
            continue
        rows = [score_attributions(bundle, images, labels, {"map": a}, {name: metric}, masks=masks,
                                   seed=seed)["map"][name] for a in maps]
        failed = next((r for r in rows if isinstance(r, Failed)), None)
        out[name] = failed if failed is not None else np.stack(rows)
    return out
