"""Property-based tests of the statistical core (Hypothesis): for any valid input the null and chance machinery
keeps the promises its verdicts rest on. Failing examples Hypothesis found became the regular tests at the end."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradlime_utils.metrics import nulls
from gradlime_utils.metrics.stats import mean_ci

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
scores = arrays(np.float64, st.integers(2, 40), elements=finite)


@FAST
@given(scores, st.floats(0.5, 0.99), st.floats(0.5, 0.99))
def test_a_confidence_interval_contains_its_mean_and_widens_with_confidence(values, c1, c2):
    lo_c, hi_c = sorted((c1, c2))
    mean, half_lo = mean_ci(values, lo_c)
    _, half_hi = mean_ci(values, hi_c)
    assert np.isfinite(mean) and half_lo >= 0
    assert half_hi >= half_lo - 1e-9 * max(1.0, abs(half_lo))
    assert mean - half_lo <= np.mean(values) + 1e-6 * max(1.0, abs(mean)) <= mean + half_lo + 2e-6 * max(1.0, abs(mean))


@FAST
@given(finite, arrays(np.float64, st.integers(1, 60), elements=finite),
       st.sampled_from(nulls.ALTERNATIVES))
def test_a_rank_p_value_lies_between_its_floor_and_one(value, null, alternative):
    p = nulls.mc_pvalue(value, null, alternative)
    floor = 1 / (len(null) + 1)
    assert floor - 1e-12 <= p <= 1.0
    if alternative == "greater" and value > null.max():
        assert p == pytest.approx(floor)


@FAST
@given(arrays(np.float64, st.integers(2, 30), elements=st.floats(0, 1)), st.sampled_from(["bh", "holm"]))
def test_adjusted_p_values_never_fall_below_the_raw_ones_and_keep_their_order(p, method):
    adjusted = nulls.adjust_pvalues(p, method)
    assert (adjusted >= p - 1e-12).all() and (adjusted <= 1).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adjusted[order]) >= -1e-12).all()
    if method == "holm":
        assert (adjusted >= nulls.adjust_pvalues(p, "bh") - 1e-12).all()  # Holm is the stricter control


@FAST
@given(arrays(np.float64, st.integers(1, 30), elements=finite), st.integers(0, 2**32 - 1))
def test_the_bootstrap_of_identical_arms_has_zero_width(values, seed):
    d = nulls.paired_difference(values, values.copy(), n_boot=50, seed=seed)
    assert d.difference == 0
    if len(values) > 1:
        assert d.low == d.high == 0 and nulls.verdict(d.low, d.high) == "no difference"


@FAST
@given(arrays(np.float64, st.integers(2, 30), elements=st.floats(-10, 10)),
       arrays(np.float64, st.integers(2, 30), elements=st.floats(-10, 10)))
def test_a_verdict_agrees_with_its_interval(a, b):
    w = nulls.welch_difference(a, b)
    verdicts, raw, _ = nulls.decide_intervals([w.p], [w.difference])
    if not w.decided:
        assert verdicts == ["undefined"]
        return
    assert w.low <= w.difference <= w.high
    excludes_zero = w.low > 0 or w.high < 0
    assert (raw[0] <= 0.05) == excludes_zero or abs(raw[0] - 0.05) < 1e-9
    if verdicts[0] != "no difference":
        assert excludes_zero
        assert (verdicts[0] == "beyond") == (w.difference > 0)


@st.composite
def label_maps(draw):
    """Segmentations with gaps in the ids, or a single segment."""
    h, w = draw(st.integers(2, 12)), draw(st.integers(2, 12))
    ids = draw(st.lists(st.integers(0, 40), min_size=1, max_size=6, unique=True))
    cells = draw(arrays(np.int64, (h, w), elements=st.sampled_from(ids)))
    return cells


@FAST
@given(label_maps(), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_random_heatmaps_have_the_shape_and_support_asked_for(segments, count, seed):
    maps = nulls.random_heatmaps("superpixel", count, segments, seed=seed)
    assert maps.shape == (count, *segments.shape)
    for m in maps:  # constant on every superpixel, and in [0, 1)
        for k in np.unique(segments):
            assert np.ptp(m[segments == k]) == 0
        assert (m >= 0).all() and (m < 1).all()


@FAST
@given(label_maps(), st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_superpixel_random_maps_keep_the_number_of_segments_asked_for(segments, keep, count, seed):
    maps = nulls.random_maps("superpixel", count, (1, *segments.shape), segments=[segments], keep=keep, seed=seed)
    present = np.unique(segments)
    for m in maps[:, 0]:
        nonzero = {k for k in present if m[segments == k][0] != 0}
        assert len(nonzero) == min(keep, len(present))


@FAST
@given(arrays(np.float64, (3, 6, 6), elements=st.floats(0, 1)), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_shifted_maps_only_move_a_maps_own_values(maps, count, seed):
    draws = nulls.shifted_maps(maps, count, seed)
    assert draws.shape == (count, *maps.shape)
    for d in draws:
        for i in range(len(maps)):
            assert np.isin(d[i], maps[i]).all()


@FAST
@given(st.integers(2, 6), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_a_perfectly_aligned_superpixel_map_has_the_smallest_permutation_p_value(k, seed, shuffle):
    segments = np.repeat(np.arange(k), 4).reshape(k, 4).repeat(2, axis=1)
    values = np.arange(k, dtype=float)
    other = values[segments]
    _, p_aligned = nulls.permutation_pvalue(values, segments, other, "rho", n_perm=30, seed=seed)
    shuffled = np.random.default_rng(shuffle).permutation(values)
    _, p_other = nulls.permutation_pvalue(shuffled, segments, other, "rho", n_perm=30, seed=seed)
    assert 1 / 31 - 1e-12 <= p_aligned <= p_other <= 1.0  # the same permutations: none beats the aligned map


def test_under_the_null_a_random_map_is_beyond_chance_at_most_at_the_nominal_rate():
    """The band's own decision rule with the method drawn from the band's kind (the issue's simulation, small)."""
    rng = np.random.default_rng(0)
    trials, alarms = 600, 0
    for _ in range(trials):
        draws = rng.uniform(size=(51, 4)).mean(axis=1)  # 51 random maps' image means; the first is the "method"
        band = nulls.ChanceBand(0, 0, 0, 50, values=tuple(draws[1:]))
        alarms += band.verdict(draws[0]) in ("above", "below")
    assert alarms / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)


# ---------------------------------------------------------------------------------------------------------
# examples Hypothesis found, kept as regular tests


def test_a_single_value_has_no_interval():
    assert np.isnan(mean_ci([3.0])[1])
    d = nulls.paired_difference([1.0], [0.0])
    assert np.isnan(d.low) and np.isnan(d.p)


def test_a_segmentation_with_gaps_puts_no_value_of_a_missing_superpixel_into_the_null():
    segments = np.array([[0, 0, 3, 3], [0, 0, 3, 3]])
    values = np.array([1.0, 99.0, 99.0, 2.0])  # ids 1 and 2 have no pixels
    _, p = nulls.permutation_pvalue(values, segments, values[segments], "rho", n_perm=50, seed=0)
    assert 0 < p <= 1
    maps = nulls.random_heatmaps("superpixel", 3, segments, seed=0)
    assert len(np.unique(maps[0])) == 2
