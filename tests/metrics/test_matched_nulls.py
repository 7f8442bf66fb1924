"""Matched nulls of chapters 05-07 on hand-made cases: random search at the GA's budget, LIME's best k."""

import numpy as np
import pytest
import torch

import gradlime_utils as gu
from gradlime_utils.experiments import ch05_evolime as evolime
from gradlime_utils.methods.evolime import ga_budget, queries_to_reach, render
from gradlime_utils.methods.normlime import LocalExplanation, ranking_of
from gradlime_utils.metrics import maps as map_metrics
from gradlime_utils.metrics import nulls
from gradlime_utils.data.shapes import ShapesCNN, _bundle, make_shapes_benchmark


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    bundle = _bundle(ShapesCNN(), torch.device("cpu"), 56, {})
    image = make_shapes_benchmark(2, seed=0).images[0]
    segments = gu.segment_image(image, "grid", cell_size=14)  # 16 superpixels
    return bundle, image, segments


def test_ga_budget_is_the_queries_of_a_run(tiny):
    bundle, image, segments = tiny
    run = gu.evolve_explanation(bundle, image, segments, 0, population=6, generations=3, seed=0)
    assert run.queries == ga_budget(6, 3) == 6 + 3 * 5
    assert ga_budget() == 400
    # queries to reach: the first population reaches its own best at once; an unreachable target is None
    assert queries_to_reach(run, run.history_best[0]) == 6
    assert queries_to_reach(run, 2.0) is None


def test_random_search_draws_fresh_independent_masks_within_the_budget(tiny):
    bundle, image, segments = tiny
    calls = []
    original = bundle.predict_proba

    def counting(x):
        calls.append(len(x))
        return original(x)

    bundle.predict_proba = counting
    try:
        best = nulls.random_search(bundle, image, segments, 0, budget=30, draws=4, seed=3)
    finally:
        bundle.predict_proba = original
    assert best.shape == (4,) and sum(calls) == 4 * 30  # exactly draws × budget fresh queries
    assert len(set(best)) > 1  # independent draws differ
    np.testing.assert_array_equal(best, nulls.random_search(bundle, image, segments, 0, 30, 4, seed=3))
    # the best of b masks is the largest probability among them: a budget of one mask is a single draw
    everything = bundle.predict_proba(render(image, segments, np.ones((1, 16), np.uint8)))[0, 0]
    single = nulls.random_search(bundle, image, segments, 0, budget=1, draws=50, seed=4)
    assert (single <= 1).all() and (single >= 0).all() and single.max() >= min(single.min(), everything)
    with pytest.raises(ValueError, match="target"):
        nulls.random_search(bundle, image, segments, -1, budget=5)
    with pytest.raises(ValueError, match="budget"):
        nulls.random_search(bundle, image, segments, 0, budget=0)


def test_lime_best_k_scores_every_k_of_the_positive_ranking(tiny):
    bundle, image, segments = tiny
    hood = gu.sample_neighborhood(bundle, image, num_samples=80, segments=segments, progress=False)
    exp = gu.explain_lime(hood, 0)
    p = evolime.lime_best_k(bundle, image, exp, 0)
    positive = exp.top_superpixels(16, positive_only=True)
    assert len(p) == len(positive)
    masks = np.zeros((1, 16), np.uint8)
    masks[0, positive[:2]] = 1
    np.testing.assert_allclose(p[1], bundle.predict_proba(render(image, segments, masks))[0, 0], rtol=1e-6)


# --- NormLIME -------------------------------------------------------------------------------------------

def test_ink_scores_rank_cells_by_mean_intensity():
    from gradlime_utils.experiments import ch06_normlime as nl
    segments = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 2, axis=0), 2, axis=1)  # 2x2 cells of 2x2 pixels
    images = np.zeros((3, 4, 4))
    images[:, :2, 2:] = 200   # cell 1 always inked
    images[0, 2:, :2] = 90    # cell 2 inked in one image
    scores = nl.ink_scores(images, segments)
    np.testing.assert_allclose(scores, [0, 200, 30, 0])
    assert ranking_of(scores).tolist() == [1, 2, 0, 3]  # ties by id
    with pytest.raises(ValueError, match="segments"):
        nl.ink_scores(np.zeros((2, 5, 5)), segments)


def test_bootstrap_agreement_of_identical_rankings():
    from gradlime_utils.experiments import ch06_normlime as nl
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 2, size=12)
    local = [LocalExplanation(0, np.arange(12), base * (1 + 0.01 * rng.standard_normal(12))) for _ in range(30)]
    agreement = nl.bootstrap_agreement(local, 12, n_boot=20, top=3)
    assert agreement["spearman"][0] > 0.95 and agreement["top_overlap"][0] >= 2.5


# --- heat maps ----------------------------------------------------------------------------------------

def test_normalised_areas_divide_by_the_full_image_probability():
    from gradlime_utils.metrics.maps import DeletionInsertion

    f = np.linspace(0, 1, 5)
    di = DeletionInsertion(fractions=f, deletion=np.array([0.8, 0.4, 0.2, 0.0, 0.0]),
                           insertion=np.array([0.0, 0.8, 0.8, 0.8, 0.8]))
    assert di.p_full == 0.8
    assert di.deletion_auc_normalised == pytest.approx(di.deletion_auc / 0.8)
    assert di.insertion_auc_normalised == pytest.approx((0.1 + 0.2 + 0.2 + 0.2) / 0.8)
    zero = DeletionInsertion(fractions=f, deletion=np.zeros(5), insertion=np.zeros(5))
    assert np.isnan(zero.insertion_auc_normalised)


def test_permutation_pvalue_of_a_perfectly_aligned_pair_is_minimal():
    segments = np.arange(16).reshape(4, 4).repeat(4, axis=0).repeat(4, axis=1)  # 16 blocks of 4x4
    values = np.arange(16, dtype=float)
    other = values[segments]  # the same map
    for stat in ("rho", "iou"):
        observed, p = nulls.permutation_pvalue(values, segments, other, stat, n_perm=99, seed=0)
        assert observed == pytest.approx(1.0) and p == pytest.approx(1 / 100)
    unrelated = np.random.default_rng(1).uniform(size=(16, 16))
    _, p = nulls.permutation_pvalue(values, segments, unrelated, "rho", n_perm=99, seed=0)
    assert p > 0.05
    with pytest.raises(ValueError, match="statistic"):
        nulls.permutation_pvalue(values, segments, other, "tau")


def test_random_heatmaps_have_the_granularity_of_their_kind():
    segments = np.arange(4).reshape(2, 2).repeat(8, axis=0).repeat(8, axis=1)
    sp = nulls.random_heatmaps("superpixel", 5, segments, seed=0)
    assert sp.shape == (5, 16, 16) and all(len(np.unique(m)) == 4 for m in sp)
    smooth = nulls.random_heatmaps("smooth", 3, segments, grid=4, seed=0)
    assert smooth.shape == (3, 16, 16) and np.abs(np.diff(smooth, axis=2)).max() < 0.5  # no jumps between pixels
    assert nulls.null_percentile(1.0, [0.1, 0.2, 0.3]) == 1.0 and nulls.null_percentile(0.2, [0.1, 0.2, 0.3]) == 0.5
    assert nulls.null_percentile(0.0, [0.1, 0.2], higher_is_better=False) == 1.0


def test_occlusion_scan_and_top_rank(tiny):
    bundle, image, segments = tiny
    scan = map_metrics.occlusion_drops(bundle, image, segments, 0, fill="blur")
    assert scan.drops.shape == (16,) and scan.labels.shape == (16,)
    values = np.zeros(16)
    values[int(np.argmax(scan.drops))] = 1.0
    assert map_metrics.top_rank(values, scan) == 1
    values = np.zeros(16)
    values[int(np.argmin(scan.drops))] = 1.0
    assert map_metrics.top_rank(values, scan) == 16 - np.sum(scan.drops == scan.drops.min()) + 1
