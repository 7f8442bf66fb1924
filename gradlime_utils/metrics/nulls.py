"""Every null and chance construct of the book, in one place: random maps of every kind, chance bands and
the rules that turn a score into a verdict against them, permutation tests and paired bootstraps.

A number in this book means something only beside what a random map, a permutation or a null model scores
under the identical pipeline; this module draws those nulls and decides against them. Each decision rule here
has a simulation in the tests (``tests/metrics/test_calibration.py``) that draws the "method" from the null itself and
checks that the rule says "beyond" no more often than its nominal level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import binomtest
from scipy.stats import t as student_t

from gradlime_utils.data.images import render_masks
from gradlime_utils.data.models import ModelBundle
from gradlime_utils.metrics.compare import as_map, rank_agreement, top_region_iou
from gradlime_utils.validation import (check_choice, check_finite, check_hide_color, check_int, check_label,
                                       check_probability, check_seed, check_segments)

RANDOM_MAP_KINDS = ("uniform", "superpixel")
RANDOM_HEATMAPS = ("superpixel", "smooth")


def random_maps(kind: str, count: int, shape: tuple, segments: Sequence[np.ndarray] | None = None,
                keep: int | None = None, positive: bool = False, seed: int = 0) -> np.ndarray:
    """``count`` random maps for N images (count×N×H×W), the chance level of a metric.

    ``"uniform"``: i.i.d. U(0, 1) pixels (Quantus' random control). ``"superpixel"``: one N(0, 1) value per
    segment of each image's ``segments`` (the granularity of LIME's maps), and, given ``keep``, only the
    ``keep`` segments of largest ``|value|`` non-zero, as LIME's maps keep their top features; ``positive`` takes
    ``|value|`` (for maps that keep only positive evidence).
    """
    kind = check_choice("kind", kind, RANDOM_MAP_KINDS)
    count = check_int("count", count, 1)
    n, h, w = (int(s) for s in shape)
    rng = np.random.default_rng(check_seed(seed))
    if kind == "uniform":
        return rng.uniform(size=(count, n, h, w))
    if segments is None or len(segments) != n:
        raise ValueError(f"superpixel random maps need one segmentation per image ({n}), got "
                         f"{None if segments is None else len(segments)}")
    out = np.zeros((count, n, h, w))
    for i, seg in enumerate(segments):
        seg = np.asarray(seg)
        if seg.shape != (h, w):
            raise ValueError(f"segments[{i}] has shape {seg.shape}, expected {(h, w)}")
        _, inverse = np.unique(seg, return_inverse=True)
        inverse = inverse.reshape(h, w)
        k = inverse.max() + 1
        values = rng.standard_normal((count, k))
        if keep is not None and check_int("keep", keep, 1) < k:
            cut = -np.sort(-np.abs(values), axis=1)[:, keep - 1:keep]
            values = np.where(np.abs(values) >= cut, values, 0.0)
        out[:, i] = np.abs(values[:, inverse]) if positive else values[:, inverse]
    return out


ALPHA = 0.05
#: the multiplicity control of every table that marks many cells (the What-held page's claims are held to
#: Bonferroni within each paper instead: :mod:`gradlime_utils.runs.claims`)
MULTIPLICITY = "Benjamini-Hochberg"
ALTERNATIVES = ("two-sided", "greater", "less")


def _numeric(name: str, values) -> np.ndarray:
    """``values`` as a float array, refusing text and objects with a TypeError naming ``name``."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got an array of {arr.dtype}")
    return arr.astype(float)


def _band(band, name: str = "band") -> "ChanceBand":
    if not isinstance(band, ChanceBand):
        raise TypeError(f"{name} must be a ChanceBand (from chance_band), got {type(band).__name__}")
    return band


def mc_pvalue(value: float, null_values, alternative: str = "two-sided") -> float:
    """Monte Carlo p-value of ``value`` among B draws of its null, by rank (Davison & Hinkley 1997, Eq. 4.11).

    ``"greater"``: p = (1 + #{null >= value}) / (B + 1); ``"less"`` likewise; ``"two-sided"``: twice the smaller,
    at most 1. When ``value`` is itself a draw from the null, exchangeability makes P(p <= a) <= a for every a,
    whatever B: the size is exact, where an empirical 2.5-97.5% range of B draws is not (with 50 draws a random
    map falls outside it in about 8% of trials). Ties count against the method. The smallest attainable p is
    1 / (B + 1) (two-sided 2 / (B + 1)): with B = 19 a one-sided test can just reach 0.05. Undefined null draws
    are left out; an undefined ``value`` gives NaN.
    """
    alternative = check_choice("alternative", alternative, ALTERNATIVES)
    null = _numeric("null_values", null_values)
    if null.ndim != 1:
        raise ValueError(f"null_values must be 1-D, got shape {null.shape}")
    if np.isinf(null).any():
        raise ValueError("null_values holds an infinite value: a chance level must be finite or undefined (NaN)")
    if isinstance(value, (bool, str)) or np.ndim(value) != 0:
        raise TypeError(f"value must be a real number, got {value!r}")
    value = float(value)
    if np.isinf(value):
        raise ValueError(f"value must be finite or NaN (undefined), got {value!r}")
    null = null[np.isfinite(null)]
    if not np.isfinite(value) or len(null) == 0:
        return float("nan")
    greater = (1 + np.sum(null >= value)) / (len(null) + 1)
    less = (1 + np.sum(null <= value)) / (len(null) + 1)
    if alternative == "greater":
        return float(greater)
    if alternative == "less":
        return float(less)
    return float(min(1.0, 2 * min(greater, less)))


def adjust_pvalues(pvalues, method: str = "bh") -> np.ndarray:
    """Multiplicity-adjusted p-values over one family: ``"bh"`` (Benjamini & Hochberg 1995, the false discovery
    rate) or ``"holm"`` (Holm 1979, the family-wise error rate). Undefined (NaN) p-values stay NaN and are not
    counted in the family. A cell is marked when its adjusted p is at most the level."""
    method = check_choice("method", method, ("bh", "holm"))
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    defined = np.isfinite(p)
    if ((p[defined] < 0) | (p[defined] > 1)).any():
        raise ValueError("pvalues must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    q = p[defined]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1) * ranked[::-1]))[::-1]
        adj = np.minimum(1.0, adj)
    back = np.empty(m)
    back[order] = adj
    out[defined] = back
    return out


def degenerate(null_values, rtol: float = 1e-9) -> bool:
    """True when the null's draws do not vary (every random map scores the same, as uniform maps do on
    Sparseness): such a band decides nothing, whatever a method scores."""
    v = _numeric("null_values", null_values).ravel()
    if isinstance(rtol, bool) or not isinstance(rtol, (float, int, np.floating, np.integer)) \
            or not (np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    v = v[np.isfinite(v)]
    return len(v) < 2 or float(np.ptp(v)) <= rtol * max(1.0, float(np.abs(v).max()))


@dataclass(frozen=True)
class ChanceBand:
    """The distribution of a metric's image-mean over random maps: its mean, its central ``level`` range (for the
    eye) and the draws themselves (``values``), from which :meth:`p_value` decides by rank."""

    mean: float
    low: float
    high: float
    draws: int
    level: float = 0.95
    values: tuple = ()

    def __post_init__(self):
        _level(self.level)
        if isinstance(self.draws, bool) or not isinstance(self.draws, (int, np.integer)) or self.draws < 0:
            raise ValueError(f"draws must be a non-negative integer, got {self.draws!r}")
        if self.low > self.high:  # NaN bounds (too few draws) compare False and pass
            raise ValueError(f"low must not exceed high, got low={self.low!r}, high={self.high!r}")

    @property
    def degenerate(self) -> bool:
        """A band of zero width (or fewer than two draws): no verdict can come from it."""
        return degenerate(self.values)

    def p_value(self, value: float, alternative: str = "two-sided") -> float:
        """:func:`mc_pvalue` of ``value`` among the band's draws (NaN when the band is degenerate)."""
        return float("nan") if self.degenerate else mc_pvalue(value, self.values, alternative)

    def verdict(self, value: float, alpha: float = ALPHA) -> str:
        """One cell on its own: "above" / "below" when the two-sided rank p-value is at most ``alpha``, "within"
        otherwise, "degenerate" for a band of zero width, "n/a" for an undefined value. A table of many cells
        decides with :func:`decide` instead, which controls the multiplicity."""
        return decide_one(value, self.p_value(value) if np.isfinite(value) else float("nan"), self, alpha)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "draws": self.draws, "level": self.level,
                "degenerate": self.degenerate, "values": [float(v) for v in self.values]}


def decide_one(value: float, p_adjusted: float, band: ChanceBand, alpha: float = ALPHA) -> str:
    """The verdict of one cell from its (adjusted) p-value: the side is where ``value`` lies from the null's
    median."""
    _band(band)
    alpha = check_probability("alpha", alpha)
    if isinstance(value, (bool, str)) or np.ndim(value) != 0:
        raise TypeError(f"value must be a real number, got {value!r}")
    if not np.isfinite(value):
        return "n/a"
    if band.degenerate:
        return "degenerate"
    if not np.isfinite(p_adjusted) or p_adjusted > alpha:
        return "within"
    return "above" if value > np.median(band.values) else "below"


def decide(values: Sequence[float], bands: Sequence[ChanceBand], alpha: float = ALPHA,
           method: str = "bh") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Verdicts for one table's cells against their bands, with the multiplicity control over the table.

    The family is every cell with a defined value and a non-degenerate band; each gets its two-sided rank
    p-value (:func:`mc_pvalue`), adjusted over the family by :func:`adjust_pvalues` (``method``). Returns
    (verdicts, raw p-values, adjusted p-values), one per cell.
    """
    if len(values) != len(bands):
        raise ValueError(f"values and bands must have equal lengths, got {len(values)} and {len(bands)}")
    for k, b in enumerate(bands):
        _band(b, f"bands[{k}]")
    alpha = check_probability("alpha", alpha)
    raw = np.array([b.p_value(v) if np.isfinite(v) else np.nan for v, b in zip(values, bands)], dtype=float)
    adj = adjust_pvalues(raw, method)
    return [decide_one(v, a, b, alpha) for v, a, b in zip(values, adj, bands)], raw, adj


def chance_band(null_scores, level: float = 0.95, images=None) -> ChanceBand:
    """Band of the image-mean score over random maps: ``null_scores`` is draws×N (one row per random map).

    Each random map is scored on every image; its mean over images is one draw of what a method scores by
    chance on this image set, so the band is directly comparable with a method's mean over the same images.
    ``images`` (a boolean mask over the N images) restricts the means to the images a method was defined on,
    so that a method whose map is undefined on some images (an empty map) is compared with random maps on the
    same images, never on a different set.
    """
    s = _numeric("null_scores", null_scores)
    if s.ndim != 2 or len(s) < 2:
        raise ValueError(f"null_scores must be draws×images with at least 2 draws, got shape {s.shape}")
    if isinstance(level, bool) or not isinstance(level, (float, int)) or not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if np.isinf(s).any():
        raise ValueError("null_scores holds an infinite score: a random map's score must be finite or undefined")
    if images is not None:
        images = np.asarray(images)
        if images.dtype != bool or images.shape != (s.shape[1],):
            raise ValueError(f"images must be a boolean mask of the {s.shape[1]} images, got {images.dtype} "
                             f"{images.shape}")
        s = s[:, images]
    finite = np.isfinite(s)
    counts = finite.sum(axis=1)
    means = np.where(finite, s, 0.0).sum(axis=1)[counts > 0] / counts[counts > 0]  # a map undefined everywhere: dropped
    if len(means) < 2:
        return ChanceBand(float("nan"), float("nan"), float("nan"), int(len(means)), level, tuple(means.tolist()))
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return ChanceBand(float(means.mean()), float(lo), float(hi), int(len(means)), level, tuple(means.tolist()))


def bands_by_metric(null_scores: Mapping[str, np.ndarray], level: float = 0.95) -> dict[str, ChanceBand]:
    """:func:`chance_band` of every metric's draws×N scores."""
    if not isinstance(null_scores, Mapping):
        raise TypeError(f"null_scores must map each metric to its draws×N scores, got {type(null_scores).__name__}")
    return {metric: chance_band(s, level) for metric, s in null_scores.items()}


def random_heatmaps(kind: str, count: int, segments: np.ndarray, grid: int = 7, seed: int = 0) -> np.ndarray:
    """``count`` random heat maps (count×H×W) of the granularity of the maps they are a null for.

    ``"superpixel"``: one U(0, 1) value per superpixel of ``segments`` (the structure of a LIME heat map, with a
    random ranking). ``"smooth"``: a ``grid``×``grid`` U(0, 1) map upsampled bilinearly to H×W (the structure of
    a Grad-CAM map from a 7×7 layer). A pixel-level random map is a much weaker null for deletion and
    insertion: scattered pixels leave every object half visible.
    """
    from skimage.transform import resize  # lazy: heavy import

    kind = check_choice("kind", kind, RANDOM_HEATMAPS)
    count = check_int("count", count, 1)
    segments = _label_map(segments)
    rng = np.random.default_rng(check_seed(seed))
    if kind == "superpixel":
        present, inverse = np.unique(segments, return_inverse=True)  # ids with pixels (gaps draw nothing)
        return rng.uniform(size=(count, len(present)))[:, inverse.reshape(segments.shape)]
    grid = check_int("grid", grid, 2)
    return np.stack([resize(rng.uniform(size=(grid, grid)), segments.shape, order=1, mode="edge",
                            anti_aliasing=False) for _ in range(count)])


def _label_map(segments, name: str = "segments") -> np.ndarray:
    """A 2-D integer label map with non-negative ids (gaps in the ids are allowed)."""
    seg = np.asarray(segments)
    if seg.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer label map, got dtype {seg.dtype}")
    if seg.ndim != 2 or seg.size == 0:
        raise ValueError(f"{name} must be a non-empty H×W label map, got shape {seg.shape}")
    if seg.min() < 0:
        raise ValueError(f"{name} labels must be >= 0, got {seg.min()}")
    return seg


def null_percentile(value: float, null_values, higher_is_better: bool = True) -> float:
    """Share of the null's values that ``value`` beats (ties count half), for display: a verdict comes from
    :func:`mc_pvalue`, whose size is exact."""
    if np.ndim(value) != 0 or isinstance(value, (str, bool)):
        raise TypeError(f"value must be a real number, got {value!r}")
    null = np.asarray(null_values, dtype=float)
    if null.ndim != 1 or np.isinf(null).any():
        raise ValueError("null_values must be a 1-D array of finite (or undefined) values")
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
    statistic = check_choice("statistic", statistic, ("rho", "iou"))
    values = check_finite("values", np.asarray(values, dtype=float))
    segments = _label_map(segments)
    if values.shape != (int(segments.max()) + 1,):
        raise ValueError(f"values has shape {values.shape}; the segmentation has {int(segments.max()) + 1} superpixels")
    other = as_map("other", other, segments.shape)
    n_perm = check_int("n_perm", n_perm, 1)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    rng = np.random.default_rng(check_seed(seed))
    present = np.unique(segments)  # a superpixel id without pixels takes no part in the permutations

    def stat(v):
        return rank_agreement(v[segments], other) if statistic == "rho" else top_region_iou(v[segments], other, fraction)

    def permuted():
        v = values.copy()
        v[present] = rng.permutation(values[present])
        return v

    observed = stat(values)
    null = np.array([stat(permuted()) for _ in range(n_perm)])
    if not np.isfinite(observed):
        return observed, float("nan")
    return float(observed), float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm))


@dataclass(frozen=True)
class Difference:
    """A difference of two arms with its interval, and how many values each arm contributed or left undefined.

    ``pairs`` is the number of paired units both arms define (images, or seeds for :func:`welch_difference`);
    ``undefined_a`` / ``undefined_b`` count the units undefined in that arm only; ``p_undefined`` is the exact
    two-sided sign test of those two counts (do the arms differ in how often they are undefined?), NaN when
    none is undefined in exactly one arm.
    """

    difference: float
    low: float
    high: float
    pairs: int
    undefined_a: int = 0
    undefined_b: int = 0
    p_undefined: float = float("nan")
    p: float = float("nan")  # two-sided p-value of "no difference", from the same construction as the interval

    def __post_init__(self):
        if self.low > self.high:  # an undefined interval (NaN bounds) compares False and passes
            raise ValueError(f"low must not exceed high, got low={self.low!r}, high={self.high!r}")

    @property
    def decided(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    def as_dict(self) -> dict:
        return {"difference": self.difference, "ci_low": self.low, "ci_high": self.high, "pairs": self.pairs,
                "undefined_a": self.undefined_a, "undefined_b": self.undefined_b, "p_undefined": self.p_undefined,
                "p": self.p}


def _arm(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got an array of {arr.dtype}")
    arr = arr.astype(float)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} holds an infinite value: a score must be finite or undefined (NaN)")
    return arr


def _level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (float, int, np.floating)) or not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    return float(level)


def paired_difference(a, b, n_boot: int = 2000, seed: int = 0, scale: float = 1.0,
                      level: float = 0.95) -> Difference:
    """Mean of a - b over the units both arms define, with a percentile bootstrap interval (units resampled
    with replacement, one draw shared by both arms).

    **Undefined values** (NaN: an empty mask's RS, a constant map's correlation) are never dropped per arm:
    comparing the mean of a over the images a defines with the mean of b over the images b defines compares
    two image sets, and when undefinedness goes with the value (an empty mask goes with an extreme score) that
    interval excludes 0 in nearly every simulation of two identical arms. Here only pairs defined in both
    arms enter the difference (under the null the two values of a pair are exchangeable, so this stays
    calibrated), and the pairs undefined in one arm only are counted and tested (:class:`Difference`).
    """
    a, b = _arm("a", a), _arm("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (equal lengths), got {a.shape} and {b.shape}")
    n_boot = check_int("n_boot", n_boot, 1)
    seed = check_seed(seed)
    level = _level(level)
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) or not np.isfinite(scale) \
            or scale == 0:
        raise ValueError(f"scale must be a finite non-zero number, got {scale!r}")
    both = np.isfinite(a) & np.isfinite(b)
    only_a, only_b = int((np.isfinite(a) & ~np.isfinite(b)).sum()), int((np.isfinite(b) & ~np.isfinite(a)).sum())
    undefined_a, undefined_b = only_b, only_a  # undefined in a only = defined in b only
    p_undef = float(binomtest(undefined_a, undefined_a + undefined_b).pvalue) if undefined_a + undefined_b else \
        float("nan")
    d = (a[both] - b[both]) * scale
    if len(d) == 0:
        return Difference(float("nan"), float("nan"), float("nan"), 0, undefined_a, undefined_b, p_undef)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    boot = d[idx].mean(axis=1)
    low, high = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    p = min(1.0, 2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0))))
    if len(d) < 2:
        low = high = p = float("nan")
    return Difference(float(d.mean()), float(low), float(high), int(len(d)), undefined_a, undefined_b, p_undef,
                      p)


def welch_difference(a, b, level: float = 0.95) -> Difference:
    """Mean of ``a`` minus mean of ``b`` for two *independent* samples (Welch's t interval), each value one
    unit that varies: a training seed (real and null support models trained with their own seeds), a GA run
    against a random search drawn independently. An interval over images with the trained models held fixed
    says nothing about a retrain; this one does. Undefined values are left out and counted; with fewer than
    two defined values in either arm, or no spread within either (two trainings that give the same share of 24
    images say little about a third), the interval is undefined."""
    a, b = _arm("a", a), _arm("b", b)
    level = _level(level)
    fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(fa.mean() - fb.mean()) if len(fa) and len(fb) else float("nan")
    undefined = (int(len(a) - len(fa)), int(len(b) - len(fb)))
    if len(fa) < 2 or len(fb) < 2:
        return Difference(diff, float("nan"), float("nan"), min(len(fa), len(fb)), *undefined)
    va, vb = fa.var(ddof=1) / len(fa), fb.var(ddof=1) / len(fb)
    se = float(np.sqrt(va + vb))
    if se == 0:  # every unit gave the same value in each arm: no spread to build an interval from, no verdict
        return Difference(diff, float("nan"), float("nan"), min(len(fa), len(fb)), *undefined)
    df = (va + vb) ** 2 / (va ** 2 / (len(fa) - 1) + vb ** 2 / (len(fb) - 1))
    half = float(student_t.ppf(0.5 + level / 2, df) * se)
    p = float(2 * student_t.sf(abs(diff) / se, df))
    return Difference(diff, diff - half, diff + half, min(len(fa), len(fb)), *undefined, p=p)


def verdict(low: float, high: float, favour: str = "GAD beyond null", against: str = "null beyond GAD") -> str:
    """How an interval of a difference reads: beyond 0 in the method's favour (``favour``), against it, or not
    distinguishable ("no difference"); "undefined" when the interval is."""
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    if low > high:
        raise ValueError(f"low must not exceed high, got [{low}, {high}]")
    if low > 0:
        return favour
    if high < 0:
        return against
    return "no difference"


def decide_intervals(pvalues: Sequence[float], differences: Sequence[float], alpha: float = ALPHA,
                     favour: str = "beyond", against: str = "below", method: str = "bh"
                     ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Verdicts for one family of differences (a table's rows): ``favour`` / ``against`` where the
    multiplicity-adjusted p-value (:func:`adjust_pvalues`) is at most ``alpha``, by the sign of the difference;
    "no difference" otherwise; "undefined" where the p-value is. A marked row's unadjusted interval excludes 0
    as well; an unmarked one's may, when the control over the family holds it back. Returns (verdicts, raw,
    adjusted)."""
    raw = np.asarray(pvalues, dtype=float)
    diffs = np.asarray(differences, dtype=float)
    if raw.shape != diffs.shape or raw.ndim != 1:
        raise ValueError(f"pvalues and differences must be 1-D of equal length, got {raw.shape} and {diffs.shape}")
    adj = adjust_pvalues(raw, method)
    out = []
    for a, d in zip(adj, diffs):
        if not np.isfinite(a):
            out.append("undefined")
        elif a <= alpha and d != 0:
            out.append(favour if d > 0 else against)
        else:
            out.append("no difference")
    return out, raw, adj


# ---------------------------------------------------------------------------------------------------------
# structure-matched nulls


def _reflect_shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``m`` moved by (dy, dx) on its mirror torus: the map reflected at its edges into a 2H×2W period, then an
    H×W window. Unlike a circular shift this adds no seam: every value stays next to a value it was next to."""
    h, w = m.shape
    tiled = np.block([[m, m[:, ::-1]], [m[::-1], m[::-1, ::-1]]])
    rows = (np.arange(h) + dy) % (2 * h)
    cols = (np.arange(w) + dx) % (2 * w)
    return tiled[np.ix_(rows, cols)]


def shifted_maps(maps, count: int, seed: int = 0) -> np.ndarray:
    """``count`` structure-matched null draws of N maps (N×H×W -> count×N×H×W): each map moved by a random shift
    on its mirror torus (reflected at the edges, so no seam is added) and a random flip / transpose.

    A draw keeps nearly everything about the map but its registration with the image: the map's own values in
    about the same proportions (so about the same sparsity: Grad-CAM after its ReLU, Guided Backprop and GAD's min maps are
    mostly exact zeros), the same smoothness and block sizes. A uniform random map shares none of that, and a
    structured map that carries no information about the model can lie outside a uniform band by its structure
    alone. The rank p-value against these draws holds its level for sparse and smooth random maps in the
    tests' simulations (``tests/metrics/test_calibration.py``).
    """
    maps = np.asarray(maps)
    if maps.dtype.kind not in "biuf":
        raise TypeError(f"maps must be numeric, got an array of {maps.dtype}")
    maps = check_finite("maps", maps.astype(float))
    if maps.ndim != 3 or 0 in maps.shape:
        raise ValueError(f"maps must be a non-empty N×H×W array, got shape {maps.shape}")
    count = check_int("count", count, 1)
    rng = np.random.default_rng(check_seed(seed))
    n, h, w = maps.shape
    out = np.empty((count, n, h, w))
    for c in range(count):
        for i in range(n):
            m = _reflect_shift(maps[i], int(rng.integers(2 * h)), int(rng.integers(2 * w)))
            if h == w and rng.random() < 0.5:
                m = m.T
            out[c, i] = m
    return out


def shift_pvalue(statistic, values: np.ndarray, other: np.ndarray, n_shift: int = 199, seed: int = 0,
                 alternative: str = "greater") -> tuple[float, float]:
    """A spatially aware null for the agreement of two maps: ``statistic(values, other)`` against the same
    statistic with ``other`` moved by :func:`shifted_maps` (``n_shift`` draws). Permuting superpixels treats them
    as exchangeable and two unrelated smooth maps then agree "beyond chance" far too often; a shift keeps the
    smoothness of both. Returns (observed, rank p-value)."""
    other = as_map("other", other)
    values = as_map("values", values, other.shape)
    n_shift = check_int("n_shift", n_shift, 1)
    observed = float(statistic(values, other))
    null = np.array([statistic(values, s[0]) for s in shifted_maps(other[None], n_shift, seed)], dtype=float)
    return observed, mc_pvalue(observed, null, alternative)


# Null controls for the support models: the same schedule, images and training, with labels that carry no
# class information, so that any "distancing" effect on the maps that survives is not GAD's.
NULL_CONTROLS = ("shuffled_labels",)


def null_labels(labels: np.ndarray, null: str | None, seed: int = 0) -> np.ndarray:
    """The labels the support models are distanced by: ``labels`` itself, or a seeded permutation of them."""
    labels = np.asarray(labels)
    if null is None:
        return labels
    if null not in NULL_CONTROLS:
        raise ValueError(f"null must be None or one of {NULL_CONTROLS}, got {null!r}")
    if len(np.unique(labels)) < 2:  # a permutation of one class is the labels themselves: no null at all
        raise ValueError(f"labels hold one class only ({np.unique(labels).tolist()}): a shuffled-label null needs "
                         f"both classes, or it equals the real models")
    # its own stream (seed + a constant), so that the permutation does not repeat the training shuffle
    return permuted(labels, seed, 0x6E756C6C)


def random_search(bundle: ModelBundle, image: np.ndarray, segments: np.ndarray, target: int, budget: int,
                  draws: int = 8, seed: int = 0, hide_color=0) -> np.ndarray:
    """The matched null of EvoLIME: ``draws`` independent random searches, each the best probability of
    ``target`` among ``budget`` fresh random masks (every superpixel kept with probability 1/2, as LIME draws its
    neighbourhood), rendered with ``hide_color`` as the GA renders its chromosomes.

    The searches are independent of each other and of LIME's neighbourhood: an earlier version picked each
    search's masks from LIME's 1,000 already-queried rows, so the searches overlapped and two of them compared
    like the GA and one "differed" in about a third of synthetic landscapes. This costs ``draws × budget``
    queries.
    """
    image = np.asarray(image)
    segments = check_segments(segments, image.shape[:2])
    budget, draws = check_int("budget", budget, 1), check_int("draws", draws, 1)
    target = check_label(target, bundle.num_classes, "target")
    hide_color = check_hide_color(hide_color)
    rng = np.random.default_rng(check_seed(seed))
    m = int(segments.max()) + 1
    best = np.empty(draws)
    for d in range(draws):
        masks = rng.integers(0, 2, size=(budget, m), dtype=np.uint8)
        p = np.concatenate([bundle.predict_proba(render_masks(image, segments, masks[i:i + 100], hide_color))[:, target]
                            for i in range(0, budget, 100)])
        best[d] = float(p.max())
    return best


def permuted(values, seed: int, stream: int) -> np.ndarray:
    """A seeded permutation of ``values`` (an array, or an int n for 0..n-1) on its own random stream
    ``[seed, stream]``: the one shuffle behind the book's permutation nulls: GAD's shuffled labels
    (:func:`null_labels`), keep-and-retrain's random rankings (:func:`random_ranking`) and GradLIME's shuffled
    prior in the stability study. Each caller names its stream, so that no two nulls reuse one sequence."""
    seed = check_seed(seed)
    stream = check_int("stream", stream, low=0)
    return np.random.default_rng([seed, stream]).permutation(values)


def random_ranking(n_features: int, seed: int, draw: int) -> np.ndarray:
    """Keep-and-retrain's null: random ranking number ``draw`` of ``n_features`` features (Hooker et al. 2019)."""
    return permuted(check_int("n_features", n_features, low=1), seed, draw)


def bootstrap(items: Sequence, statistic, n_boot: int, seed: int = 0) -> list:
    """``statistic`` of ``n_boot`` bootstrap resamples of ``items`` (drawn with replacement, each the size of
    ``items``), in the order drawn from ``seed``."""
    items = list(items)
    if not items:
        raise ValueError("items is empty: nothing to resample")
    rng = np.random.default_rng(check_seed(seed))
    return [statistic([items[i] for i in rng.integers(0, len(items), len(items))])
            for _ in range(check_int("n_boot", n_boot, low=2))]


def random_subsets(pool, size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` random subsets of ``size`` distinct elements of ``pool``, in the order drawn from ``seed``: the
    random control of an occlusion test (as many random superpixels occluded as the map's top ones)."""
    pool = np.asarray(pool)
    size = check_int("size", size, low=1, high=len(pool))
    rng = np.random.default_rng(check_seed(seed))
    return [rng.choice(pool, size=size, replace=False) for _ in range(check_int("count", count, low=1))]
