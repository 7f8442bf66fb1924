"""Calibration of every decision rule the book prints a verdict from.

Each test draws the "method" from the null itself, so that every "beyond" is a false alarm, and checks that the
rule raises one no more often than its nominal level (plus a tolerance of three binomial standard errors for the
number of simulations); a second simulation plants an effect and checks that the rule finds it. Where the book
used a rule before that is not calibrated (an empirical 2.5-97.5% band of a finite sample, a uniform band for
structured maps, per-arm dropping of undefined values, an interval over images with the trained models held
fixed, marks over a table with no multiplicity control), the same simulation shows that it fails, so these
tests would fail on it. The small sizes run in ``make test-fast``; the ``slow`` versions use more simulations.
"""
import warnings

import numpy as np
import pytest
from skimage.transform import resize

from gradlime_utils.metrics import nulls

ALPHA = 0.05


def tolerance(trials: int, level: float = ALPHA) -> float:
    """Three binomial standard errors of a rate ``level`` estimated from ``trials`` simulations."""
    return 3 * np.sqrt(level * (1 - level) / trials)


def band_rule(value: float, null: np.ndarray) -> bool:
    """The rule the book used before: outside the empirical 2.5-97.5% range of the B draws."""
    lo, hi = np.quantile(null, [0.025, 0.975])
    return value < lo or value > hi


# ---------------------------------------------------------------------------------------------------------
# beyond chance: the rank rule against B random maps


def _band_false_alarms(draws: int, trials: int, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    sample = rng.gamma(2.0, size=(trials, draws + 1))  # skewed, as image-mean scores of few images are
    old = np.mean([band_rule(s[0], s[1:]) for s in sample])
    new = np.mean([nulls.mc_pvalue(s[0], s[1:]) <= ALPHA for s in sample])
    return float(old), float(new)


@pytest.mark.parametrize("draws", [20, 50])
def test_rank_rule_holds_its_level_where_the_empirical_band_does_not(draws):
    trials = 3000
    old, new = _band_false_alarms(draws, trials)
    assert new <= ALPHA + tolerance(trials)
    assert old > ALPHA + tolerance(trials)  # the old band: about 13% with 20 draws, 8% with 50


@pytest.mark.slow
@pytest.mark.parametrize("draws", [4, 19, 99, 100])
def test_rank_rule_holds_its_level_for_any_number_of_draws(draws):
    trials = 20000
    _, new = _band_false_alarms(draws, trials, seed=draws)
    assert new <= ALPHA + tolerance(trials)
    for alternative in ("greater", "less"):
        rng = np.random.default_rng(draws + 1)
        s = rng.normal(size=(trials, draws + 1))
        rate = np.mean([nulls.mc_pvalue(x[0], x[1:], alternative) <= ALPHA for x in s])
        assert rate <= ALPHA + tolerance(trials)


def test_rank_rule_finds_a_planted_effect():
    rng = np.random.default_rng(1)
    null = rng.normal(size=(500, 50))
    found = np.mean([nulls.mc_pvalue(4.0 + rng.normal(), n) <= ALPHA for n in null])
    assert found > 0.8


def test_a_band_of_zero_width_decides_nothing():
    band = nulls.chance_band(np.full((50, 4), 0.33))
    assert band.degenerate and band.verdict(0.9) == "degenerate" and np.isnan(band.p_value(0.9))
    verdicts, raw, _ = nulls.decide([0.9, 100.0], [band, nulls.chance_band(np.arange(200.0).reshape(50, 4))])
    assert verdicts[0] == "degenerate" and np.isnan(raw[0]) and verdicts[1] == "within"


# ---------------------------------------------------------------------------------------------------------
# multiplicity: a table of null cells


def test_benjamini_hochberg_keeps_a_table_of_null_cells_quiet():
    """70 cells (methods × metrics), every one a random map against 50 random maps: without a control some cell
    is marked in most tables; with Benjamini-Hochberg over the table, in at most 5% (every cell null: the false
    discovery rate is the family-wise rate)."""
    rng = np.random.default_rng(2)
    trials, cells, draws = 400, 70, 50
    any_raw = any_bh = 0
    for _ in range(trials):
        sample = rng.normal(size=(cells, draws + 1))
        p = np.array([nulls.mc_pvalue(s[0], s[1:]) for s in sample])
        any_raw += (p <= ALPHA).any()
        any_bh += (nulls.adjust_pvalues(p, "bh") <= ALPHA).any()
    assert any_raw / trials > 0.5
    assert any_bh / trials <= ALPHA + tolerance(trials)


def test_holm_and_bh_find_planted_effects_and_agree_with_scipy():
    from scipy.stats import false_discovery_control

    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 1e-4, 5), rng.uniform(size=30)])
    np.testing.assert_allclose(nulls.adjust_pvalues(p, "bh"), false_discovery_control(p))
    for method in ("bh", "holm"):
        assert (nulls.adjust_pvalues(p, method)[:5] <= ALPHA).all()
    holm = nulls.adjust_pvalues(np.array([0.01, 0.04, 0.03, 0.5]), "holm")
    np.testing.assert_allclose(holm, [0.04, 0.09, 0.09, 0.5])


# ---------------------------------------------------------------------------------------------------------
# structure: sparse and smooth maps that carry no information


def _toy_faithfulness(maps: np.ndarray, weights: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """A FaithfulnessCorrelation on a linear toy model: Pearson correlation, over random pixel subsets, of the
    map's sum over the subset with the model's drop when the subset is removed (``weights`` = the model's
    per-pixel contributions). ``maps``: ...×N×P; ``weights``: N×P; ``subsets``: R×P booleans. Returns the mean
    over the N images."""
    a = maps @ subsets.T.astype(float)                  # ...×N×R
    d = weights @ subsets.T.astype(float)               # N×R
    a = a - a.mean(-1, keepdims=True)
    d = d - d.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * d).sum(-1) / np.sqrt((a ** 2).sum(-1) * (d ** 2).sum(-1))
    return np.nanmean(r, axis=-1)


def _smooth(rng, count: int, size: int, grid: int = 4) -> np.ndarray:
    return np.stack([resize(rng.uniform(size=(grid, grid)), (size, size), order=1, mode="edge", anti_aliasing=False)
                     for _ in range(count)])


def _sparse(rng, count: int, size: int, zeros: float = 0.8) -> np.ndarray:
    u = rng.uniform(size=(count, size, size))
    return np.where(rng.uniform(size=u.shape) < zeros, 0.0, u)


def _structure_false_alarms(kind: str, trials: int, draws: int = 39, size: int = 16, n: int = 4,
                            seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    weights = np.stack([_smooth(rng, 1, size, 3)[0] * rng.uniform(size=(size, size)) for _ in range(n)])
    weights = weights.reshape(n, -1)
    subsets = rng.uniform(size=(40, size * size)) < 0.25
    uniform_alarms = matched_alarms = 0
    for t in range(trials):
        method = (_smooth if kind == "smooth" else _sparse)(rng, n, size)
        value = _toy_faithfulness(method.reshape(n, -1), weights, subsets)
        uniform = _toy_faithfulness(rng.uniform(size=(draws, n, size * size)), weights, subsets)
        shifted = nulls.shifted_maps(method, draws, seed=t).reshape(draws, n, -1)
        matched = _toy_faithfulness(shifted, weights, subsets)
        uniform_alarms += nulls.mc_pvalue(value, uniform) <= ALPHA
        matched_alarms += nulls.mc_pvalue(value, matched) <= ALPHA
    return uniform_alarms / trials, matched_alarms / trials


@pytest.mark.parametrize("kind", ["sparse", "smooth"])
def test_structure_matched_null_does_not_flag_structured_random_maps(kind):
    trials = 300
    uniform, matched = _structure_false_alarms(kind, trials)
    assert matched <= ALPHA + tolerance(trials)
    assert uniform > ALPHA + tolerance(trials)  # a uniform band flags structure alone


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sparse", "smooth"])
def test_structure_matched_null_holds_its_level_over_many_simulations(kind):
    trials = 1500
    _, matched = _structure_false_alarms(kind, trials, seed=11)
    assert matched <= ALPHA + tolerance(trials)


def test_structure_matched_null_finds_a_map_that_follows_the_model():
    rng = np.random.default_rng(4)
    size, n = 16, 4
    weights = np.stack([_smooth(rng, 1, size, 3)[0] * rng.uniform(size=(size, size)) for _ in range(n)])
    subsets = rng.uniform(size=(40, size * size)) < 0.25
    found = 0
    for t in range(50):
        method = np.where(weights > np.quantile(weights, 0.8), weights, 0.0) + 0.05 * rng.uniform(size=weights.shape)
        value = _toy_faithfulness(method.reshape(n, -1), weights.reshape(n, -1), subsets)
        matched = _toy_faithfulness(nulls.shifted_maps(method, 39, seed=t).reshape(39, n, -1),
                                    weights.reshape(n, -1), subsets)
        found += nulls.mc_pvalue(value, matched) <= ALPHA
    assert found / 50 > 0.8


def test_shifted_maps_keep_values_and_structure():
    rng = np.random.default_rng(5)
    maps = _sparse(rng, 2, 12)
    draws = nulls.shifted_maps(maps, 5, seed=0)
    assert draws.shape == (5, 2, 12, 12)
    for d in draws:
        for i in range(2):
            assert np.isin(d[i], maps[i]).all()  # only the map's own values
            assert abs((d[i] == 0).mean() - (maps[i] == 0).mean()) < 0.15  # about the same sparsity
    assert not all(np.array_equal(d[0], maps[0]) for d in draws)
    np.testing.assert_array_equal(draws, nulls.shifted_maps(maps, 5, seed=0))


# ---------------------------------------------------------------------------------------------------------
# agreement of two smooth maps: exchangeable superpixels against shifts


def _agreement_false_alarms(trials: int, seed: int = 0) -> tuple[float, float]:
    from skimage.segmentation import slic

    from gradlime_utils.metrics.compare import rank_agreement

    rng = np.random.default_rng(seed)
    size = 32
    segments = np.arange(64).reshape(8, 8).repeat(4, 0).repeat(4, 1)  # an 8×8 grid of superpixels
    perm = shift = 0
    for t in range(trials):
        a, b = _smooth(rng, 2, size, grid=3)
        values = np.array([a[segments == k].mean() for k in range(64)])
        _, p_perm = nulls.permutation_pvalue(values, segments, b, "rho", n_perm=59, seed=t)
        _, p_shift = nulls.shift_pvalue(rank_agreement, values[segments], b, n_shift=59, seed=t)
        perm += p_perm <= ALPHA
        shift += p_shift <= ALPHA
    del slic
    return perm / trials, shift / trials


def test_shift_null_holds_its_level_where_permuting_superpixels_does_not():
    trials = 150
    perm, shift = _agreement_false_alarms(trials)
    assert shift <= ALPHA + tolerance(trials)
    assert perm > ALPHA + tolerance(trials)  # superpixels of a smooth map are not exchangeable


# ---------------------------------------------------------------------------------------------------------
# paired differences with undefined values


def _old_paired_bootstrap(a, b, n_boot=500, seed=0) -> tuple[float, float]:
    """The book's former rule: NaN-ignoring means of each arm over the images *it* defines."""
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        boot = np.nanmean(a[idx], axis=1) - np.nanmean(b[idx], axis=1)
    return tuple(np.percentile(boot[np.isfinite(boot)], [2.5, 97.5]))


def _undefined_sims(trials: int, n: int = 60, seed: int = 0):
    """Both arms give the same value wherever both define one (image effect plus small noise), but one arm is
    undefined on half of the images with the largest values (an empty mask that goes with a large score)."""
    rng = np.random.default_rng(seed)
    for t in range(trials):
        v = rng.normal(size=n)
        a, b = v + 0.3 * rng.normal(size=n), v + 0.3 * rng.normal(size=n)
        a[(v > np.quantile(v, 0.7)) & (rng.uniform(size=n) < 0.5)] = np.nan
        yield t, a, b


def test_paired_difference_ignores_value_linked_undefined_pairs_and_reports_them():
    trials = 300
    old = new = undefined_flagged = 0
    for t, a, b in _undefined_sims(trials):
        lo, hi = _old_paired_bootstrap(a, b, seed=t)
        old += lo > 0 or hi < 0
        d = nulls.paired_difference(a, b, n_boot=500, seed=t)
        new += d.low > 0 or d.high < 0
        undefined_flagged += d.p_undefined <= ALPHA
        assert d.undefined_a > 0 and d.undefined_b == 0 and d.pairs == np.isfinite(a).sum()
    assert old / trials > 0.5  # per-arm dropping compares two image sets
    assert new / trials <= ALPHA + tolerance(trials)
    assert undefined_flagged / trials > 0.5  # the difference in undefinedness is reported, and tested


def test_paired_difference_finds_a_planted_effect():
    rng = np.random.default_rng(6)
    found = 0
    for t in range(100):
        v = rng.normal(size=40)
        d = nulls.paired_difference(v + 0.3 + 0.3 * rng.normal(size=40), v + 0.3 * rng.normal(size=40), 500, t)
        found += d.low > 0
    assert found > 80


# ---------------------------------------------------------------------------------------------------------
# retrains: the training seed inside the interval


def _retrain_sims(trials: int, trainings: int, seed: int = 0, effect: float = 0.0):
    """Per-image scores of two arms, each trained ``trainings`` times: a training shifts all of its images by a
    seed effect (sd 0.1) larger than the image noise allows an image-only interval to see (sd 0.3 over 200
    images: a standard error of 0.02)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=200)
    for t in range(trials):
        arms = []
        for shift in (effect, 0.0):
            arms.append([images + shift + 0.1 * rng.normal() + 0.3 * rng.normal(size=200) for _ in range(trainings)])
        yield t, arms


def test_an_interval_over_trainings_holds_its_level_where_one_over_images_does_not():
    trials = 300
    image_only = seeds = 0
    for t, (real, null) in _retrain_sims(trials, trainings=3):
        d = nulls.paired_difference(real[0], null[0], n_boot=300, seed=t)
        image_only += d.low > 0 or d.high < 0
        w = nulls.welch_difference([r.mean() for r in real], [n.mean() for n in null])
        seeds += w.low > 0 or w.high < 0
        assert np.isfinite(w.p) and (w.p <= ALPHA) == (w.low > 0 or w.high < 0)
    assert image_only / trials > 0.3
    assert seeds / trials <= ALPHA + tolerance(trials)


def test_an_interval_over_trainings_finds_a_planted_effect():
    found = sum(nulls.welch_difference([r.mean() for r in real], [n.mean() for n in null]).low > 0
                for _, (real, null) in _retrain_sims(100, trainings=4, seed=1, effect=0.5))
    assert found > 80


def test_one_training_per_arm_gives_no_interval():
    w = nulls.welch_difference([0.5], [0.1, 0.2])
    assert np.isnan(w.low) and np.isnan(w.p)
    verdicts, _, _ = nulls.decide_intervals([w.p], [w.difference])
    assert verdicts == ["undefined"]


# ---------------------------------------------------------------------------------------------------------
# EvoLIME: a search against random search


def _landscape(rng, m: int = 30):
    """A synthetic landscape over superpixel masks: p(mask) = sigmoid of a sparse linear score plus noise."""
    w = rng.normal(size=m) * (rng.uniform(size=m) < 0.3)

    def p(masks):
        return 1 / (1 + np.exp(-(masks @ w - 1 + 0.3 * rng.normal(size=len(masks)))))
    return p


def _random_search(p, rng, budget: int, m: int = 30) -> float:
    return float(p(rng.integers(0, 2, size=(budget, m))).max())


def _old_gain_interval(a, b, rng, n_boot=1000):
    boot = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(n_boot)]
    return np.quantile(boot, [0.025, 0.975])


def test_two_random_searches_do_not_differ_beyond_the_level():
    """Two random searches of the same budget compared as the GA is compared with one: the former rule (30 draws
    from one shared pool of 1,000 masks, a bootstrap interval) against independent searches and Welch."""
    rng = np.random.default_rng(7)
    trials, runs, budget = 150, 10, 100
    old = new = 0
    for _ in range(trials):
        p = _landscape(rng)
        searches = np.array([_random_search(p, rng, budget) for _ in range(runs)])
        pool = p(rng.integers(0, 2, size=(1000, 30)))
        shared = np.array([pool[rng.choice(1000, budget, replace=False)].max() for _ in range(30)])
        lo, hi = _old_gain_interval(searches, shared, rng)
        old += lo > 0 or hi < 0
        independent = np.array([_random_search(p, rng, budget) for _ in range(runs)])
        w = nulls.welch_difference(searches, independent)
        new += w.low > 0 or w.high < 0
    assert old / trials > ALPHA + tolerance(trials)
    assert new / trials <= ALPHA + tolerance(trials)


# ---------------------------------------------------------------------------------------------------------
# KAR: a ranking against random rankings


def test_a_seed_averaged_ranking_against_single_random_rankings_is_conservative():
    """NormLIME's KAR: a ranking's accuracy averaged over 5 retrains against random rankings retrained once each.
    Under the null (the ranking is itself random) the rank rule holds its level, and with 10 random rankings it
    cannot reach 2.5% at all: the book then says the comparison is undecided instead of "above"."""
    rng = np.random.default_rng(8)
    trials = 3000
    for rankings in (10, 39):
        quality = rng.normal(size=(trials, rankings + 1))        # a ranking's own effect
        noise = rng.normal(scale=0.5, size=(trials, rankings + 1, 5))  # retraining noise
        method = quality[:, 0] + noise[:, 0].mean(axis=1)
        random = quality[:, 1:] + noise[:, 1:, 0]
        p = np.array([nulls.mc_pvalue(m, r, "greater") for m, r in zip(method, random)])
        assert np.mean(p <= 0.025) <= 0.025 + tolerance(trials, 0.025)
        if rankings == 10:
            assert p.min() > 0.025
