"""Summary statistics shared by every chapter: a mean with its Student-t interval over images or seeds, and the
paired Wilcoxon test for per-image scores of two methods."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats
from scipy.stats import wilcoxon


def _scores(name: str, values) -> np.ndarray:
    """A 1-D array of scores: NaN is an undefined score (dropped by the callers, counted where it matters),
    an infinite one is refused (a mean with it is not a number anyone can use)."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of numbers, got a string {values!r}")
    v = np.asarray(values)
    if v.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got an array of {v.dtype}")
    v = v.astype(float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per image or seed), got shape {v.shape}")
    if np.isinf(v).any():
        raise ValueError(f"{name} holds an infinite value: a score must be finite or undefined (NaN)")
    return v


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its ``confidence`` interval (Student t over images); NaN scores are dropped."""
    if isinstance(confidence, bool) or not isinstance(confidence, (float, int, np.floating)) \
            or not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    v = _scores("values", values)
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
    a, b = _scores("a", a), _scores("b", b)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b) & (a != b)
    if keep.sum() < 6:
        return float("nan")
    return float(wilcoxon(a[keep], b[keep]).pvalue)
