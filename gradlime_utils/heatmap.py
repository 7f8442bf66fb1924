"""LIME heat maps (Farhood, Najafi, Saberi) and their comparison with Grad-CAM.

A LIME heat map gives every pixel the importance of the superpixel it belongs to (MATLAB's ``imageLIME``
``scoreMap``). Two surrogates fit the same neighbourhood: the weighted ridge of LIME
(``"linear"``: signed weights) and a weighted regression tree (``"tree"``, MATLAB's default: impurity-based
feature importances, never negative). The comparison tools (rank agreement, top-region IoU, occlusion of the
top superpixel, deletion and insertion curves) work on any per-pixel map, so Grad-CAM goes through the same code.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr
from sklearn.metrics import r2_score

from .gradcam import gradcam
from .models import ModelBundle
from .neighborhood import Neighborhood, render_masks, sample_neighborhood, segment_image
from .plotting import show_heatmap
from .stats import mean_ci, paired_test
from .surrogate import explain_lime, superpixel_means
from .validation import check_finite, check_int, check_label, check_rgb_image, ranking

SURROGATES = ("linear", "tree")


@dataclass
class LimeHeatmap:
    """One LIME heat map: per-superpixel ``importance`` and the per-pixel ``heatmap`` built from it."""

    label: int
    surrogate: str
    importance: np.ndarray
    segments: np.ndarray
    score: float

    @property
    def heatmap(self) -> np.ndarray:
        """H×W map: each pixel carries its superpixel's importance."""
        return self.importance[self.segments]

    @property
    def ranking(self) -> np.ndarray:
        """Superpixel ids by decreasing importance (ties broken by id)."""
        return ranking(self.importance)


def lime_heatmap(neighborhood: Neighborhood, label: int, surrogate: str = "linear", seed: int = 0,
                 **tree_params) -> LimeHeatmap:
    """The LIME heat map of ``label`` from a sampled neighbourhood.

    ``surrogate="linear"``: lime's weighted ridge on every superpixel; importance = the signed weight.
    ``surrogate="tree"``: ``sklearn.tree.DecisionTreeRegressor`` fitted on Z' with LIME's kernel weights as
    sample weights (``tree_params`` are passed to it, ``random_state=seed``); importance = the tree's
    ``feature_importances_``, the weighted impurity decrease each superpixel accounts for (non-negative,
    summing to 1 unless the tree has no split). ``score`` is the surrogate's weighted R^2 on the neighbourhood.
    """
    from sklearn.tree import DecisionTreeRegressor  # lazy: heavy import

    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    label = check_label(label, neighborhood.predictions.shape[1])
    if surrogate == "linear":
        exp = explain_lime(neighborhood, label)
        return LimeHeatmap(label=label, surrogate=surrogate, importance=exp.coef, segments=neighborhood.segments,
                           score=exp.score)
    y = neighborhood.predictions[:, label]
    try:
        tree = DecisionTreeRegressor(random_state=seed, **tree_params)
    except TypeError as exc:
        raise TypeError(f"invalid tree_params {sorted(tree_params)}: {exc}") from exc
    tree.fit(neighborhood.data, y, sample_weight=neighborhood.kernel_weights)
    # splits that only fit float round-off can carry importances of -1e-17: clip them to zero
    importance = np.clip(tree.feature_importances_.astype(float), 0, None)
    return LimeHeatmap(label=label, surrogate=surrogate, importance=importance,
                       segments=neighborhood.segments,
                       score=float(tree.score(neighborhood.data, y, sample_weight=neighborhood.kernel_weights)))


def _as_map(name: str, heatmap, shape=None) -> np.ndarray:
    heatmap = np.asarray(heatmap, dtype=float)
    if heatmap.ndim != 2:
        raise ValueError(f"{name} must be an H×W map, got shape {heatmap.shape}")
    if shape is not None and heatmap.shape != tuple(shape):
        raise ValueError(f"{name} has shape {heatmap.shape}, expected {tuple(shape)}")
    if not np.isfinite(heatmap).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return heatmap


def pixel_order(heatmap: np.ndarray) -> np.ndarray:
    """Flat pixel indices by decreasing heat; ties keep raster order, so the order is deterministic."""
    heatmap = _as_map("heatmap", heatmap)
    return np.argsort(-heatmap.ravel(), kind="stable")


def top_fraction_mask(heatmap: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of exactly ``round(fraction * H * W)`` hottest pixels (ties in raster order)."""
    heatmap = _as_map("heatmap", heatmap)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    k = max(1, int(round(fraction * heatmap.size)))
    mask = np.zeros(heatmap.size, bool)
    mask[pixel_order(heatmap)[:k]] = True
    return mask.reshape(heatmap.shape)


def top_region_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.2) -> float:
    """Intersection over union of the top-``fraction`` regions of two maps of the same shape."""
    a = _as_map("a", a)
    b = _as_map("b", b, a.shape)
    ma, mb = top_fraction_mask(a, fraction), top_fraction_mask(b, fraction)
    return float((ma & mb).sum() / (ma | mb).sum())


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation between two maps over all pixels (NaN when one map is constant)."""
    a = _as_map("a", a)
    b = _as_map("b", b, a.shape)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def _image_and_segments(image, segments) -> tuple[np.ndarray, np.ndarray]:
    image = check_rgb_image(image)
    segments = np.asarray(segments)
    if segments.shape != image.shape[:2]:
        raise ValueError(f"segments has shape {segments.shape}, the image {image.shape[:2]}")
    return image, segments


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
    if not isinstance(top_k, (int, np.integer)) or not 1 <= top_k < m:
        raise ValueError(f"top_k must be an integer in [1, {m - 1}], got {top_k!r}")
    if not isinstance(n_random, (int, np.integer)) or n_random < 1:
        raise ValueError(f"n_random must be a positive integer, got {n_random!r}")
    base = predict(image[None])[0]
    if label is None:
        label = int(np.argmax(base))
    elif not isinstance(label, (int, np.integer)) or not 0 <= label < len(base):
        raise ValueError(f"label must be a class index in [0, {len(base)}), got {label!r}")
    top = ranking(importance)[:top_k]
    rest = np.setdiff1d(np.arange(m), top)
    rng = np.random.default_rng(seed)
    masks = np.ones((1 + n_random, m), np.uint8)
    masks[0, top] = 0
    for r in range(n_random):
        masks[1 + r, rng.choice(rest, size=top_k, replace=False)] = 0
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
    heatmap = _as_map("heatmap", heatmap, image.shape[:2])
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
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


# ---------------------------------------------------------------------------------------------------------
# matched nulls: random maps of the right granularity, permutation tests, occlusion of every superpixel

RANDOM_HEATMAPS = ("superpixel", "smooth")


def random_heatmaps(kind: str, count: int, segments: np.ndarray, grid: int = 7, seed: int = 0) -> np.ndarray:
    """``count`` random heat maps (count×H×W) of the granularity of the maps they are a null for.

    ``"superpixel"``: one U(0, 1) value per superpixel of ``segments`` (the structure of a LIME heat map, with a
    random ranking). ``"smooth"``: a ``grid``×``grid`` U(0, 1) map upsampled bilinearly to H×W (the structure of
    a Grad-CAM map from a 7×7 layer). A pixel-level random map is a much weaker null for deletion and
    insertion: scattered pixels leave every object half visible.
    """
    from skimage.transform import resize  # lazy: heavy import

    if kind not in RANDOM_HEATMAPS:
        raise ValueError(f"kind must be one of {RANDOM_HEATMAPS}, got {kind!r}")
    count = check_int("count", count, 1)
    segments = np.asarray(segments)
    rng = np.random.default_rng(seed)
    if kind == "superpixel":
        return rng.uniform(size=(count, int(segments.max()) + 1))[:, segments]
    grid = check_int("grid", grid, 2)
    return np.stack([resize(rng.uniform(size=(grid, grid)), segments.shape, order=1, mode="edge",
                            anti_aliasing=False) for _ in range(count)])


def null_percentile(value: float, null_values, higher_is_better: bool = True) -> float:
    """Share of the null's values that ``value`` beats (ties count half): 0.975 or more is beyond a two-sided
    95% band on the good side."""
    null = np.asarray(null_values, dtype=float)
    null = null[np.isfinite(null)]
    if not np.isfinite(value) or len(null) == 0:
        return float("nan")
    better = (null < value) if higher_is_better else (null > value)
    return float((better.sum() + 0.5 * (null == value).sum()) / len(null))


def permutation_pvalue(values: np.ndarray, segments: np.ndarray, other: np.ndarray, statistic: str = "rho",
                       n_perm: int = 200, fraction: float = 0.2, seed: int = 0) -> tuple[float, float]:
    """Agreement of a superpixel map (``values[segments]``) with ``other`` and its permutation p-value.

    The null permutes the superpixel values (the same blocks, a random assignment), so it keeps the map's
    granularity, which alone produces sizeable agreement with any smooth map. ``statistic`` is ``"rho"``
    (:func:`rank_agreement`) or ``"iou"`` (:func:`top_region_iou` at ``fraction``). Returns (observed, p) with
    p = (1 + #null >= observed) / (1 + n_perm): 1 / (n_perm + 1) when no permutation does as well.
    """
    if statistic not in ("rho", "iou"):
        raise ValueError(f"statistic must be 'rho' or 'iou', got {statistic!r}")
    values = check_finite("values", np.asarray(values, dtype=float))
    segments = np.asarray(segments)
    if values.shape != (int(segments.max()) + 1,):
        raise ValueError(f"values has shape {values.shape}; the segmentation has {int(segments.max()) + 1} superpixels")
    other = _as_map("other", other, segments.shape)
    n_perm = check_int("n_perm", n_perm, 1)

    def stat(v):
        return rank_agreement(v[segments], other) if statistic == "rho" else top_region_iou(v[segments], other, fraction)

    observed = stat(values)
    rng = np.random.default_rng(seed)
    null = np.array([stat(rng.permutation(values)) for _ in range(n_perm)])
    if not np.isfinite(observed):
        return observed, float("nan")
    return float(observed), float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm))


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
    values, drops = np.asarray(values, dtype=float), np.asarray(drops, dtype=float)
    if values.shape != drops.shape:
        raise ValueError(f"values {values.shape} and drops {drops.shape} must have one entry per superpixel")
    top = int(ranking(values)[0])
    return int(1 + np.sum(drops > drops[top]))


def holdout_r2(neighborhood: Neighborhood, label: int, surrogate: str = "linear", test_fraction: float = 0.25,
               seed: int = 0, **tree_params) -> float:
    """Weighted R² of a surrogate on held-out rows of the neighbourhood (fitted on the rest).

    An unpruned tree fits its own samples almost perfectly, so its in-sample R² says nothing; out of sample the
    two surrogates can be compared.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    label = check_label(label, neighborhood.predictions.shape[1])
    n = neighborhood.num_samples
    rng = np.random.default_rng(seed)
    test = np.zeros(n, bool)
    test[rng.choice(np.arange(1, n), size=max(1, int(round(test_fraction * n))), replace=False)] = True
    fields = ("data", "predictions", "distances", "kernel_weights")
    train = replace(neighborhood, **{f: getattr(neighborhood, f)[~test] for f in fields})
    x, y, w = neighborhood.data[test], neighborhood.predictions[test, label], neighborhood.kernel_weights[test]
    if surrogate == "linear":
        exp = explain_lime(train, label)
        pred = exp.intercept + x @ exp.surrogate_coef
    else:
        from sklearn.tree import DecisionTreeRegressor  # lazy: heavy import

        tree = DecisionTreeRegressor(random_state=seed, **tree_params).fit(
            train.data, train.predictions[:, label], sample_weight=train.kernel_weights)
        pred = tree.predict(x)
    return float(r2_score(y, pred, sample_weight=w))


def photo_study(bundle: ModelBundle, image: np.ndarray, n_features: int = 49, num_samples: int = 2048,
                steps: int = 20, n_random: int = 10, n_perm: int = 200, seed: int = 0,
                tree_params: dict | None = None, neighborhood: Neighborhood | None = None) -> tuple[dict, dict, tuple]:
    """Every comparison of the chapter for one photo, each beside its matched null.

    LIME heat maps (linear and tree, one neighbourhood with imageLIME's mean-colour hiding) and Grad-CAM of the
    predicted class; agreement ρ and top-20% IoU with permutation p-values (:func:`permutation_pvalue`);
    deletion and insertion areas normalised by the full image's probability, each with its percentile among
    ``n_random`` random maps of each kind in :data:`RANDOM_HEATMAPS` (same curves, same fill); every
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
    cam_values = superpixel_means(_as_map("cam", cam, segments.shape), segments)
    row = {"class": bundle.class_names[label], "p": float(nb.predictions[0, label]), "M": int(segments.max()) + 1,
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
                row[f"{metric} pct {kind} {m}"] = null_percentile(getattr(c, f"{metric}_auc_normalised"), values,
                                                                  higher_is_better=metric == "insertion")
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
    return row, curves, (image, segments, label, lin, tree, cam, scan)


HEATMAP_METHODS = ("LIME linear", "LIME tree", "Grad-CAM")


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
                            level: float = 0.975) -> dict[str, int]:
    """Per method, the photos whose insertion area lies above ``level`` of both the random superpixel maps and the
    smooth random maps (:func:`photo_study` rows)."""
    return {m: sum(r[f"insertion pct superpixel {m}"] >= level and r[f"insertion pct smooth {m}"] >= level
                   for r in rows) for m in methods}


def describe_study(rows: list[dict]) -> list[str]:
    """The chapter's reading, generated from :func:`photo_study` rows."""
    n = len(rows)
    lines = []
    for m in HEATMAP_METHODS:
        beyond = sum(r[f"insertion pct superpixel {m}"] >= 0.975 and r[f"insertion pct smooth {m}"] >= 0.975
                     for r in rows)
        lines.append(f"- Insertion, {m}: above every random superpixel and smooth map (97.5th percentile of both) in "
                     f"{beyond} of {n} photos; mean normalised area {np.mean([r[f'insertion {m}'] for r in rows]):.2f} "
                     f"vs random superpixel maps {np.mean([r['insertion null superpixel'][0] for r in rows]):.2f}.")
    diff = [r["insertion LIME linear"] - r["insertion Grad-CAM"] for r in rows]
    mean, half = mean_ci(diff)
    p = paired_test([r["insertion LIME linear"] for r in rows], [r["insertion Grad-CAM"] for r in rows])
    lines.append(f"- LIME linear − Grad-CAM, normalised insertion: {mean:+.3f}" +
                 (f" (95% CI ± {half:.3f})" if np.isfinite(half) else "") +
                 (f", paired Wilcoxon p = {p:.3g}" if np.isfinite(p) else f"; no paired test can reach p < 0.05 "
                  f"with {n} photos") + ("; the interval includes 0: unresolved." if np.isfinite(half) and
                                         abs(mean) <= half else "."))
    for name in ("linear", "tree"):
        rho = sum(r[f"rho_{name}_gradcam_p"] < 0.05 for r in rows)
        iou = sum(r[f"iou20_{name}_gradcam_p"] < 0.05 for r in rows)
        lines.append(f"- Agreement of LIME {name} with Grad-CAM beyond permutations of its superpixels (p < 0.05): "
                     f"rho in {rho} of {n} photos, top-20% IoU in {iou} of {n}.")
    ranks = {k: [r[f"top_rank_{k}"] for r in rows] for k in ("linear", "tree", "gradcam")}
    lines.append("- Occlusion (blur) of every superpixel: the top superpixel of each map ranks " + ", ".join(
        f"{k} {np.median(v):.0f}" for k, v in ranks.items()) + f" (median over photos; 1 = the largest drop of about "
        f"{int(np.median([r['M'] for r in rows]))}); the label flips for at least one superpixel in "
        f"{sum(r['flips_any'] > 0 for r in rows)} of {n} photos.")
    lines.append(f"- The tree's R² is {np.mean([r['tree_r2'] for r in rows]):.2f} on its own samples but "
                 f"{np.mean([r['tree_r2_holdout'] for r in rows]):.2f} on held-out ones (linear: "
                 f"{np.mean([r['linear_r2'] for r in rows]):.2f} / {np.mean([r['linear_r2_holdout'] for r in rows]):.2f}).")
    return lines


def occluded_image(image: np.ndarray, segments: np.ndarray, superpixel: int, fill="blur") -> np.ndarray:
    """``image`` with one superpixel replaced by ``fill`` (as :func:`occlusion_drops` shows it to the model)."""
    image = check_rgb_image(image)
    segments = np.asarray(segments)
    masks = np.ones((1, int(segments.max()) + 1), np.uint8)
    masks[0, int(superpixel)] = 0
    return render_masks(image, segments, masks, _fill_image(image, fill))[0]


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
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90, bbox_inches="tight")
    return fig
