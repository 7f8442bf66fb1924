"""Comparing two per-pixel maps: rank agreement (Spearman over all pixels) and the overlap of their hottest
regions (top-region IoU), on any maps of one shape: a LIME heat map, Grad-CAM, a gradient attribution. What
chance gives for these comparisons is in :mod:`gradlime_utils.metrics.nulls`.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def as_map(name: str, heatmap, shape=None) -> np.ndarray:
    """``heatmap`` as a finite float H×W array (of ``shape`` when given), or a ValueError naming ``name``."""
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
    heatmap = as_map("heatmap", heatmap)
    return np.argsort(-heatmap.ravel(), kind="stable")


def top_fraction_mask(heatmap: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of exactly ``round(fraction * H * W)`` hottest pixels (ties in raster order)."""
    heatmap = as_map("heatmap", heatmap)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    k = max(1, int(round(fraction * heatmap.size)))
    mask = np.zeros(heatmap.size, bool)
    mask[pixel_order(heatmap)[:k]] = True
    return mask.reshape(heatmap.shape)


def top_region_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.2) -> float:
    """Intersection over union of the top-``fraction`` regions of two maps of the same shape."""
    a = as_map("a", a)
    b = as_map("b", b, a.shape)
    ma, mb = top_fraction_mask(a, fraction), top_fraction_mask(b, fraction)
    return float((ma & mb).sum() / (ma | mb).sum())


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation between two maps over all pixels (NaN when one map is constant)."""
    a = as_map("a", a)
    b = as_map("b", b, a.shape)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a.ravel(), b.ravel()).statistic)
