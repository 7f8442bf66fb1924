"""Summary statistics shared by every chapter: a mean with its Student-t interval over images or seeds, and the
paired Wilcoxon test for per-image scores of two methods."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats
from scipy.stats import wilcoxon

from gradlime_utils.validation import check_int, check_probability


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


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (float, int, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def t_test_power(n: int, effect: float, sd: float, alpha: float = 0.05, arms: int = 1) -> float:
    """Power of the two-sided Student t-test that finds a true mean difference ``effect`` with ``n`` units per
    arm whose scores spread with standard deviation ``sd``: ``arms=1`` a one-sample or paired test (n - 1
    degrees of freedom), ``arms=2`` two independent arms of ``n`` each with equal spread (2n - 2; Welch's test
    with equal arms and spreads has nearly the same power). ``effect`` is the size of the difference (> 0). Exact,
    through the noncentral t distribution."""
    n = check_int("n", n, low=2)
    arms = check_int("arms", arms, low=1, high=2)
    effect, sd, alpha = _positive("effect", effect), _positive("sd", sd), check_probability("alpha", alpha)
    df = arms * (n - 1)
    ncp = effect / (sd * np.sqrt(arms / n))
    crit = stats.t.ppf(1 - alpha / 2, df)
    power = stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
    if not np.isfinite(power):  # scipy's noncentral t gives NaN far in its tail, where the normal limit is exact
        power = stats.norm.sf(crit - ncp) + stats.norm.cdf(-crit - ncp)
    return float(power)


def n_for_power(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, arms: int = 1,
                limit: int = 10**6) -> int | None:
    """The smallest number of units per arm (images, trainings, GA runs) at which :func:`t_test_power` reaches
    ``power``; ``None`` when not even ``limit`` units would (say so, never a made-up size)."""
    power = check_probability("power", power)
    t_test_power(2, effect, sd, alpha, arms)  # validates the rest
    if t_test_power(limit, effect, sd, alpha, arms) < power:
        return None
    if t_test_power(2, effect, sd, alpha, arms) >= power:
        return 2
    low, high = 2, 4  # power grows with n: double until it is reached, then bisect for the first n
    while t_test_power(high, effect, sd, alpha, arms) < power:
        low, high = high, min(2 * high, limit)
    while high - low > 1:
        mid = (low + high) // 2
        if t_test_power(mid, effect, sd, alpha, arms) >= power:
            high = mid
        else:
            low = mid
    return high


def draws_for_rank_test(cells: int, alpha: float = 0.05) -> int:
    """Random draws (maps, rankings) a rank p-value needs so that one effect among ``cells`` tested cells can be
    declared under Benjamini-Hochberg at level ``alpha``: its smallest attainable p, 1 / (draws + 1), must reach
    alpha / cells (BH's bar for the smallest p when it is the only effect; with every cell an effect, the bar is
    alpha itself)."""
    cells = check_int("cells", cells, low=1)
    alpha = check_probability("alpha", alpha)
    return max(1, int(np.ceil(cells / alpha - 1 - 1e-9)))
