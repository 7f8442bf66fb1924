"""Measuring per-pixel maps against the model: occlusion of superpixels, deletion and insertion curves (their
random controls and nulls are drawn in :mod:`gradlime_utils.metrics.nulls`; comparisons of two maps are in
:mod:`gradlime_utils.metrics.compare`).

They work on any per-pixel map (a LIME heat map, Grad-CAM, a gradient attribution).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

from gradlime_utils.data.images import render_masks
from gradlime_utils.data.models import ModelBundle
from gradlime_utils.metrics.compare import as_map, pixel_order
from gradlime_utils.metrics.nulls import random_subsets
from gradlime_utils.validation import check_finite, check_int, check_rgb_image, check_segments, ranking


def _image_and_segments(image, segments) -> tuple[np.ndarray, np.ndarray]:
    image = check_rgb_image(image)
    return image, check_segments(segments, image.shape[:2])  # integer ids >= 0: every superpixel is occluded


def _predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(model, ModelBundle):
        return model.predict_proba
    if callable(model):
        return model
    raise TypeError(f"model must be a ModelBundle or a callable images -> probabilities, got {type(model).__name__}")


def _fill_image(image: np.ndarray, fill) -> np.ndarray:
    """The replacement image: "mean" (the image's mean colour), "black", "blur" or a colour."""
    if isinstance(fill, str):
        if fill == "mean":
            colour = image.reshape(-1, 3).mean(axis=0)
        elif fill == "black":
            colour = np.zeros(3)
        elif fill == "blur":
            return np.clip(gaussian_filter(image.astype(float), sigma=(10, 10, 0)), 0, 255).round().astype(np.uint8)
        else:
            raise ValueError(f"fill must be 'mean', 'black', 'blur' or an RGB colour, got {fill!r}")
    else:
        colour = np.asarray(fill, dtype=float)
        if colour.shape != (3,) or not ((colour >= 0) & (colour <= 255)).all():
            raise ValueError(f"fill colour must be 3 values in [0, 255], got {fill!r}")
    out = np.empty_like(image)
    out[:] = np.round(colour).astype(np.uint8)
    return out


@dataclass
class OcclusionResult:
    """Occluding the top superpixel(s) vs random ones (the sensitivity test of our reconstructed protocol)."""

    label: int
    p_original: float
    p_top: float
    p_random: np.ndarray
    label_top: int
    labels_random: np.ndarray
    occluded_top: np.ndarray

    @property
    def drop_top(self) -> float:
        return self.p_original - self.p_top

    @property
    def drop_random(self) -> float:
        """Mean probability drop over the random occlusions."""
        return float(self.p_original - self.p_random.mean())

    @property
    def flip_top(self) -> bool:
        return self.label_top != self.label

    @property
    def flip_rate_random(self) -> float:
        return float(np.mean(self.labels_random != self.label))


def occlusion_sensitivity(model, image: np.ndarray, segments: np.ndarray, importance: np.ndarray,
                          label: int | None = None, top_k: int = 1, n_random: int = 10, fill="mean",
                          seed: int = 0) -> OcclusionResult:
    """Occlude the ``top_k`` most important superpixels, and ``n_random`` random sets of ``top_k`` others.

    ``label`` defaults to the model's prediction on ``image``; the random sets are drawn (seeded) from the
    superpixels outside the top ``top_k``. Probabilities and predicted labels are recorded for each image.
    """
    predict = _predictor(model)
    image, segments = _image_and_segments(image, segments)
    m = int(segments.max()) + 1
    importance = check_finite("importance", np.asarray(importance, dtype=float))
    if importance.shape != (m,):
        raise ValueError(f"importance has shape {importance.shape}; the segmentation has {m} superpixels")
    top_k = check_int("top_k", top_k, low=1, high=m - 1)
    n_random = check_int("n_random", n_random, low=1)
    base = predict(image[None])[0]
    if label is None:
        label = int(np.argmax(base))
    elif not isinstance(label, (int, np.integer)) or not 0 <= label < len(base):
        raise ValueError(f"label must be a class index in [0, {len(base)}), got {label!r}")
    top = ranking(importance)[:top_k]
    rest = np.setdiff1d(np.arange(m), top)
    masks = np.ones((1 + n_random, m), np.uint8)
    masks[0, top] = 0
    for r, chosen in enumerate(random_subsets(rest, top_k, n_random, seed), start=1):
        masks[r, chosen] = 0
    occluded = render_masks(image, segments, masks, _fill_image(image, fill))
    proba = predict(occluded)
    labels = proba.argmax(axis=1)
    p_top = float(proba[0, label])
    if importance.max() == importance.min():  # no superpixel is more important than another
        warnings.warn("importance is constant (e.g. all zero): the top superpixels are undefined, p_top is NaN",
                      RuntimeWarning, stacklevel=2)
        p_top = float("nan")
    return OcclusionResult(label=int(label), p_original=float(base[label]), p_top=p_top,
                           p_random=proba[1:, label].astype(float), label_top=int(labels[0]),
                           labels_random=labels[1:], occluded_top=occluded[0])


@dataclass
class DeletionInsertion:
    """Class probability as the hottest pixels are deleted from the image / inserted into the fill image."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> float:
        """Area under the deletion curve (lower = the map found what the prediction needs)."""
        return float(np.trapezoid(self.deletion, self.fractions))

    @property
    def insertion_auc(self) -> float:
        """Area under the insertion curve (higher = better)."""
        return float(np.trapezoid(self.insertion, self.fractions))

    @property
    def p_full(self) -> float:
        """p(label) on the unperturbed image (the deletion curve's first point)."""
        return float(self.deletion[0])

    @property
    def deletion_auc_normalised(self) -> float:
        """Deletion area divided by the full image's probability: comparable across photos (1 = no drop)."""
        return self.deletion_auc / self.p_full if self.p_full > 0 else float("nan")

    @property
    def insertion_auc_normalised(self) -> float:
        """Insertion area divided by the full image's probability (1 = the full image's confidence throughout)."""
        return self.insertion_auc / self.p_full if self.p_full > 0 else float("nan")


def deletion_insertion(model, image: np.ndarray, heatmap: np.ndarray, label: int, steps: int = 20,
                       fill="blur", batch_size: int | None = None) -> DeletionInsertion:
    """Deletion and insertion curves (Petsiuk et al.) of ``label`` for one per-pixel ``heatmap``.

    Pixels are taken in decreasing heat (:func:`pixel_order`); at step i of ``steps`` the first
    round(i / steps * H * W) of them are replaced by the ``fill`` image (deletion) or copied onto it
    (insertion). ``fill`` is "blur" (Gaussian blur, sigma 10, the insertion baseline of RISE), "mean",
    "black" or a colour. The ``2 * (steps + 1)`` images go through the model in batches.
    """
    predict = _predictor(model)
    image = check_rgb_image(image)
    heatmap = as_map("heatmap", heatmap, image.shape[:2])
    steps = check_int("steps", steps, low=1, high=heatmap.size)  # more steps than pixels repeat images
    if not isinstance(label, (int, np.integer)) or label < 0:
        raise ValueError(f"label must be a non-negative class index, got {label!r}")
    filler = _fill_image(image, fill)
    n = heatmap.size
    fractions = np.arange(steps + 1) / steps
    if heatmap.max() == heatmap.min():  # no order to follow: the curves would only follow the raster order
        warnings.warn("heatmap is constant (e.g. all zero): deletion and insertion are undefined (NaN)",
                      RuntimeWarning, stacklevel=2)
        undefined = np.full(steps + 1, np.nan)
        return DeletionInsertion(fractions=fractions, deletion=undefined, insertion=undefined.copy())
    order = pixel_order(heatmap)
    counts = np.round(fractions * n).astype(int)
    flat_img, flat_fill = image.reshape(n, 3), filler.reshape(n, 3)
    curves = {"deletion": [], "insertion": []}
    batch_size = batch_size or (model.resolved_batch_size() if isinstance(model, ModelBundle) else 16)
    for start in range(0, steps + 1, batch_size):
        chunk = counts[start:start + batch_size]
        dele = np.repeat(flat_img[None], len(chunk), axis=0)
        ins = np.repeat(flat_fill[None], len(chunk), axis=0)
        for row, c in enumerate(chunk):
            dele[row, order[:c]] = flat_fill[order[:c]]
            ins[row, order[:c]] = flat_img[order[:c]]
        for name, batch in (("deletion", dele), ("insertion", ins)):
            proba = predict(batch.reshape((len(chunk),) + image.shape))
            if label >= proba.shape[1]:
                raise ValueError(f"label {label} is out of range for a model with {proba.shape[1]} classes")
            curves[name].append(proba[:, label])
    return DeletionInsertion(fractions=fractions, deletion=np.concatenate(curves["deletion"]).astype(float),
                             insertion=np.concatenate(curves["insertion"]).astype(float))


@dataclass
class OcclusionScan:
    """Every superpixel occluded once: the probability drop of ``label`` and the predicted label each time."""

    label: int
    p_original: float
    drops: np.ndarray
    labels: np.ndarray

    def flips(self) -> np.ndarray:
        return self.labels != self.label


def occlusion_drops(model, image: np.ndarray, segments: np.ndarray, label: int, fill="blur") -> OcclusionScan:
    """Occlude each superpixel once (M queries, one batch) and record p(label)'s drop and the predicted label.

    The fill should not be the hiding colour of the LIME neighbourhood being tested (LIME then learns exactly the
    effect of that fill, and the test is circular): the default is a Gaussian blur.
    """
    predict = _predictor(model)
    image, segments = _image_and_segments(image, segments)
    m = int(segments.max()) + 1
    masks = np.ones((m + 1, m), np.uint8)
    masks[np.arange(1, m + 1), np.arange(m)] = 0
    proba = predict(render_masks(image, segments, masks, _fill_image(image, fill)))
    if not isinstance(label, (int, np.integer)) or not 0 <= label < proba.shape[1]:
        raise ValueError(f"label must be a class index in [0, {proba.shape[1]}), got {label!r}")
    return OcclusionScan(label=int(label), p_original=float(proba[0, label]),
                         drops=(proba[0, label] - proba[1:, label]).astype(float), labels=proba[1:].argmax(axis=1))


def top_rank(values: np.ndarray, drops) -> int:
    """Rank (1 = largest drop) in the occlusion ranking of the superpixel a map ranks first (``drops``: an
    :class:`OcclusionScan` or its drops)."""
    drops = drops.drops if isinstance(drops, OcclusionScan) else drops
    values = check_finite("values", np.asarray(values, dtype=float))
    drops = check_finite("drops", np.asarray(drops, dtype=float))
    if values.ndim != 1 or values.size == 0 or values.shape != drops.shape:
        raise ValueError(f"values {values.shape} and drops {drops.shape} must have one entry per superpixel")
    top = int(ranking(values)[0])
    return int(1 + np.sum(drops > drops[top]))


def occluded_image(image: np.ndarray, segments: np.ndarray, superpixel: int, fill="blur") -> np.ndarray:
    """``image`` with one superpixel replaced by ``fill`` (as :func:`occlusion_drops` shows it to the model)."""
    image = check_rgb_image(image)
    segments = np.asarray(segments)
    masks = np.ones((1, int(segments.max()) + 1), np.uint8)
    masks[0, int(superpixel)] = 0
    return render_masks(image, segments, masks, _fill_image(image, fill))[0]
