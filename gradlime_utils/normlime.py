"""NormLIME (Ahern et al.): class-specific global importance aggregated from many local LIME explanations.

Each local explanation's weights are normalised as in Baidu's implementation (InterpretDL / PaddleX, from the
paper's institution): omega_j = w_j**2 / sum_k |w_k| (|w| times its share of the L1 mass; the sign is dropped).
Every local feature is mapped to a global feature id, and NormLIME_y(g) is the mean of omega over all
occurrences of g in explanations of label y (0 where g never occurs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .validation import check_finite, check_int

NORMALISATIONS = ("squared_over_l1", "l1")


def normalise_weights(weights, rule: str = "squared_over_l1") -> np.ndarray:
    """One explanation's weights normalised: ``w**2 / sum|w|`` (default) or ``|w| / sum|w|``."""
    w = np.asarray(weights, dtype=float)
    if rule not in NORMALISATIONS:
        raise ValueError(f"rule must be one of {NORMALISATIONS}, got {rule!r}")
    total = np.abs(w).sum()
    if total == 0:
        return np.zeros_like(w)
    return w ** 2 / total if rule == "squared_over_l1" else np.abs(w) / total


@dataclass
class LocalExplanation:
    """A local explanation: its label, the global ids of its features and their weights."""

    label: int
    feature_ids: np.ndarray
    weights: np.ndarray


@dataclass
class NormLime:
    """Class-specific global importance: ``importance[label]`` over global features, with occurrence counts."""

    importance: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]
    num_features: int

    def ranking(self, label: int) -> np.ndarray:
        """Global feature ids of ``label`` by decreasing importance (ties by id)."""
        if label not in self.importance:
            raise ValueError(f"label {label!r} has no explanation in this NormLIME; labels: {sorted(self.importance)}")
        imp = self.importance[label]
        return np.lexsort((np.arange(len(imp)), -imp))


def aggregate(explanations: Sequence[LocalExplanation], num_features: int,
              rule: str = "squared_over_l1") -> NormLime:
    """Average the normalised local weights per (label, global feature)."""
    check_int("num_features", num_features, 1)
    explanations = list(explanations)
    if not explanations:
        raise ValueError("explanations is empty: NormLIME aggregates at least one local explanation")
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, np.ndarray] = {}
    for exp in explanations:
        ids = np.asarray(exp.feature_ids, dtype=int)
        check_finite("weights", exp.weights)
        if ids.shape != np.shape(exp.weights):
            raise ValueError(f"feature_ids {ids.shape} and weights {np.shape(exp.weights)} differ in shape")
        if ids.size and (ids.min() < 0 or ids.max() >= num_features):
            raise ValueError(f"feature ids must be in [0, {num_features}), got {ids.min()}..{ids.max()}")
        label = int(exp.label)
        sums.setdefault(label, np.zeros(num_features))
        counts.setdefault(label, np.zeros(num_features, dtype=int))
        np.add.at(sums[label], ids, normalise_weights(exp.weights, rule))
        np.add.at(counts[label], ids, 1)
    importance = {y: np.divide(sums[y], counts[y], out=np.zeros(num_features), where=counts[y] > 0) for y in sums}
    return NormLime(importance=importance, counts=counts, num_features=num_features)


def grid_feature_ids(segments: np.ndarray) -> np.ndarray:
    """For a fixed grid (``segment_image(..., "grid")``) the local superpixel id is already the global one."""
    return np.arange(int(segments.max()) + 1)


def keep_top_features(images: np.ndarray, segments: np.ndarray, rankings: np.ndarray, fraction: float,
                      fill: int = 0) -> np.ndarray:
    """KAR's inputs: each image keeps only the top ``fraction`` of the grid cells of its own ranking.

    ``rankings`` holds one ranking of the global features per image (e.g. the NormLIME ranking of the image's
    class); every other cell is set to ``fill``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    images = np.asarray(images)
    rankings = np.asarray(rankings)
    n_features = int(segments.max()) + 1
    if rankings.shape != (len(images), n_features):
        raise ValueError(f"rankings must have shape ({len(images)}, {n_features}), got {rankings.shape}")
    k = max(1, int(round(fraction * n_features)))
    keep = np.zeros((len(images), n_features), dtype=bool)
    np.put_along_axis(keep, rankings[:, :k], True, axis=1)
    mask = keep[:, segments]
    if images.ndim == 4:
        mask = mask[..., None]
    return np.where(mask, images, np.asarray(fill, dtype=images.dtype))
