"""Summary statistics shared by every chapter: a mean with its Student-t interval over images or seeds, and the
paired Wilcoxon test for per-image scores of two methods."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats
from scipy.stats import wilcoxon


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its ``confidence`` interval (Student t over images); NaN scores are dropped."""
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
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b) & (a != b)
    if keep.sum() < 6:
        return float("nan")
    return float(wilcoxon(a[keep], b[keep]).pvalue)
