"""How much an explanation changes when only LIME's random sample changes."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.stats import spearmanr

from .neighborhood import Neighborhood
from .surrogate import SurrogateExplanation, explain_lime


def jaccard(a, b) -> float:
    """|A ∩ B| / |A ∪ B| of two sets of superpixel ids (1 when both are empty)."""
    a, b = set(map(int, a)), set(map(int, b))
    return 1.0 if not a | b else len(a & b) / len(a | b)


def mean_pairwise_jaccard(sets: Sequence) -> float:
    pairs = list(itertools.combinations(sets, 2))
    if not pairs:
        raise ValueError("need at least two explanations to compare")
    return float(np.mean([jaccard(a, b) for a, b in pairs]))


def mean_pairwise_spearman(vectors: Sequence[np.ndarray]) -> float:
    """Mean Spearman rank correlation of weight vectors over all pairs (NaN pairs, e.g. constant, skipped)."""
    values = []
    for a, b in itertools.combinations(vectors, 2):
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            values.append(spearmanr(a, b).statistic)
    return float(np.mean(values)) if values else float("nan")


@dataclass
class StabilityCurve:
    """Mean pairwise top-k Jaccard and weight rank correlation across seeds, per neighbourhood size."""

    sizes: np.ndarray
    jaccard: np.ndarray
    spearman: np.ndarray
    k: int
    num_seeds: int


def stability_curve(neighborhoods: Sequence[Neighborhood], label: int, sizes: Sequence[int], k: int = 5,
                    explain: Callable[[Neighborhood, int], SurrogateExplanation] = explain_lime) -> StabilityCurve:
    """Stability of ``explain`` across neighbourhoods that differ only in their seed.

    Each size n uses the first n samples of every neighbourhood (``Neighborhood.head``), so one
    sample of the largest size per seed serves the whole curve.
    """
    if len(neighborhoods) < 2:
        raise ValueError(f"need neighbourhoods from at least two seeds, got {len(neighborhoods)}")
    first = neighborhoods[0]
    if any(nb.segments.shape != first.segments.shape or not np.array_equal(nb.segments, first.segments)
           for nb in neighborhoods[1:]):
        raise ValueError("the neighbourhoods must share one segmentation so that superpixel ids match")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    jac, rho = [], []
    for n in sizes:
        exps = [explain(nb.head(int(n)), label) for nb in neighborhoods]
        jac.append(mean_pairwise_jaccard([e.ranking[:k] for e in exps]))
        rho.append(mean_pairwise_spearman([e.coef for e in exps]))
    return StabilityCurve(sizes=np.asarray(sizes), jaccard=np.asarray(jac), spearman=np.asarray(rho), k=k,
                          num_seeds=len(neighborhoods))
