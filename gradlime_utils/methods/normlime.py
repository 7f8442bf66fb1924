"""NormLIME (Ahern et al.): class-specific global importance aggregated from many local LIME explanations.

Each local explanation's weights are normalised as in Baidu's implementation (InterpretDL / PaddleX, from the
paper's institution): ``omega_j = w_j**2 / sum_k |w_k|`` (``|w|`` times its share of the L1 mass; the sign is dropped).
Every local feature is mapped to a global feature id, and NormLIME_y(g) is the mean of omega over all
occurrences of g in explanations of label y (0 where g never occurs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gradlime_utils.validation import check_choice, check_finite, check_int, ranking


NORMALISATIONS = ("squared_over_l1", "l1")


def normalise_weights(weights, rule: str = "squared_over_l1") -> np.ndarray:
    """One explanation's weights normalised: ``w**2 / sum|w|`` (default) or ``|w| / sum|w|``."""
    w = np.asarray(weights, dtype=float)
    rule = check_choice("rule", rule, NORMALISATIONS)
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
        return ranking(imp)


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


def pooled_importance(normlime: NormLime) -> np.ndarray:
    """One global ranking's scores from the class-specific NormLIME: the occurrence-weighted mean over classes
    (KAR needs one ranking for every image: a class-specific mask would leak the label through its shape)."""
    total = sum(normlime.importance[y] * normlime.counts[y] for y in normlime.importance)
    count = sum(normlime.counts[y] for y in normlime.importance)
    return np.divide(total, count, out=np.zeros(normlime.num_features), where=count > 0)


def ranking_of(scores: np.ndarray) -> np.ndarray:
    """Feature ids by decreasing score (ties by id)."""
    scores = np.asarray(scores, dtype=float)
    return ranking(scores)
