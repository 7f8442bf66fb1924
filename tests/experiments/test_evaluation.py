import numpy as np
import pytest

import gradlime_utils as gu
from gradlime_utils.experiments.ch04_evaluation import (baseline_attributions, format_summary,
                                                        repo_markboundaries_attribution, summary_rows,
                                                        superpixel_attribution)
from gradlime_utils.metrics.quantus_bridge import (Failed, complexity_metrics, localisation_metrics, score_attributions,
                                                   sufficiency_metric)
from gradlime_utils.metrics.stats import mean_ci, paired_test
from gradlime_utils.data.shapes import CLASS_SHAPES, make_shapes_benchmark, oracle_map, shape_mask, train_shapes_cnn
from gradlime_utils.methods.surrogate import SurrogateExplanation
from gradlime_utils.metrics import nulls


def hand_explanation():
    segments = np.repeat(np.arange(4), 4).reshape(4, 4)  # row r is superpixel r
    coef = np.array([0.5, -2.0, 0.0, 1.0])
    return SurrogateExplanation(label=0, mode="none", coef=coef, surrogate_coef=coef, intercept=0.0, score=1.0,
                                local_pred=0.0, activation=None, segments=segments, importance=np.abs(coef))


def test_superpixel_attribution_puts_each_weight_on_its_superpixel():
    exp = hand_explanation()
    full = superpixel_attribution(exp)
    np.testing.assert_array_equal(full, np.repeat([0.5, -2.0, 0.0, 1.0], 4).reshape(4, 4))
    top2 = superpixel_attribution(exp, num_features=2)  # superpixels 1 (|-2|) and 3 (1.0)
    np.testing.assert_array_equal(top2[:, 0], [0.0, -2.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="num_features"):
        superpixel_attribution(exp, 0)


def test_repo_conversion_is_brightness_plus_boundaries():
    exp = hand_explanation()
    grey = np.full((4, 4, 3), 51, np.uint8)  # 0.2 per channel
    a = repo_markboundaries_attribution(exp, grey, num_features=1, positive_only=True)
    # positive_only keeps superpixel 3 (the only positive one in the top 1 by weight order); rows away from its
    # boundary are the image's channel sum, 3 x 0.2, and the boundary is yellow (1, 1, 0) -> 2
    assert a.shape == (4, 4)
    np.testing.assert_allclose(a[0], 0.6)
    assert set(np.round(np.unique(a), 6)) <= {0.6, 2.0}
    assert (np.isclose(a, 2.0)).any()
    with pytest.raises(ValueError, match="segments"):
        repo_markboundaries_attribution(exp, np.zeros((5, 5, 3), np.uint8))


# --- localisation metrics on hand-made cases with known answers -------------------------------------------

def _loc(maps, masks, **kw):
    maps, masks = np.asarray(maps, float), np.asarray(masks, bool)
    scores = score_attributions(None, None, np.zeros(len(maps), int), {"m": maps}, localisation_metrics(**kw),
                                masks=masks)
    return {k: v for k, v in scores["m"].items()}


def test_localisation_metrics_on_a_hand_made_case():
    a = np.zeros((2, 4, 4))
    s = np.zeros((2, 4, 4), bool)
    s[:, 0, :2] = True  # the object: two pixels in the top-left corner
    a[0, 0, 0], a[0, 0, 1], a[0, 3, 3] = 5, 3, 1  # image 0: peak on the object, 8/9 of the mass on it
    a[1, 3, 3], a[1, 0, 0], a[1, 2, 2] = 4, 2, 2  # image 1: peak off the object, 2/8 of the mass on it
    r = _loc(a, s, top_k=3)
    np.testing.assert_array_equal(r["PointingGame"], [1.0, 0.0])
    np.testing.assert_allclose(r["RelevanceMassAccuracy"], [8 / 9, 2 / 8])
    # rank accuracy: of the |s| = 2 highest pixels, the fraction on the object
    np.testing.assert_allclose(r["RelevanceRankAccuracy"][0], 1.0)
    # top-3 intersection: image 0 has 2 of its top 3 pixels on the object
    np.testing.assert_allclose(r["TopKIntersection"][0], 2 / 3)
    # AUC: image 0 ranks both object pixels above all 14 others -> 1.0
    np.testing.assert_allclose(r["AUC"][0], 1.0)


def test_the_oracle_scores_at_the_top_and_random_at_chance_on_the_benchmark():
    bench = make_shapes_benchmark(60, seed=3)
    frac = bench.masks.mean()
    oracle = _loc(oracle_map(bench.masks), bench.masks, top_k=40)
    for metric in ("PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy", "AUC", "TopKIntersection"):
        assert np.mean(oracle[metric]) == pytest.approx(1.0), metric
    rand = _loc(nulls.random_maps("uniform", 1, bench.masks.shape, seed=0)[0], bench.masks, top_k=40)
    assert np.mean(rand["AUC"]) == pytest.approx(0.5, abs=0.03)
    assert np.mean(rand["RelevanceMassAccuracy"]) == pytest.approx(frac, abs=0.01)
    assert np.mean(rand["RelevanceRankAccuracy"]) < 5 * frac
    assert np.mean(rand["TopKIntersection"]) < 5 * frac
    assert np.mean(rand["PointingGame"]) < 0.2


# --- the benchmark -----------------------------------------------------------------------------------------

def test_benchmark_is_deterministic_and_balanced():
    a, b = make_shapes_benchmark(40, seed=7), make_shapes_benchmark(40, seed=7)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(make_shapes_benchmark(40, seed=8).images, a.images)
    assert np.bincount(a.labels).tolist() == [20, 20]
    assert a.images.dtype == np.uint8 and a.images.shape == (40, 56, 56, 3)


def test_ground_truth_masks_cover_exactly_the_class_object():
    bench = make_shapes_benchmark(30, seed=1)
    stamps = {name: shape_mask(name, 12) for name in CLASS_SHAPES}
    for img, label, mask in zip(bench.images, bench.labels, bench.masks):
        ys, xs = np.nonzero(mask)
        y0, x0 = ys.min(), xs.min()
        stamp = stamps[CLASS_SHAPES[label]]
        # the mask is the class stamp at one position, and nothing else
        box = mask[y0:y0 + 12, x0:x0 + 12]
        top, left = np.nonzero(stamp)[0].min(), np.nonzero(stamp)[1].min()
        expected = np.zeros_like(mask)
        expected[y0 - top:y0 - top + 12, x0 - left:x0 - left + 12] = stamp
        np.testing.assert_array_equal(mask, expected)
        # every mask pixel has the object's single colour, which is bright; background noise is dark
        colours = np.unique(img[mask], axis=0)
        assert len(colours) == 1 and colours.min() >= 120
        assert box.sum() == stamp.sum()
        # inside the object's 12x12 box every pixel off the mask is dark background: the mask misses nothing
        window = (slice(y0 - top, y0 - top + 12), slice(x0 - left, x0 - left + 12))
        assert img[window][~mask[window]].max() < 120


def test_benchmark_bad_inputs():
    with pytest.raises(ValueError, match="room for"):
        make_shapes_benchmark(4, size=28, n_distractors=5)
    with pytest.raises(ValueError, match="n must be"):
        make_shapes_benchmark(1)
    with pytest.raises(ValueError, match="shape must be"):
        shape_mask("star", 12)


@pytest.fixture(scope="module")
def shapes_bundle():
    train, test = make_shapes_benchmark(1000, seed=0), make_shapes_benchmark(100, seed=1)
    return train_shapes_cnn(train, test, device="cpu", progress=False), test.subset(np.arange(8))


@pytest.mark.slow
def test_shapes_cnn_learns_the_benchmark(shapes_bundle):
    bundle, _ = shapes_bundle
    assert bundle.info["test_accuracy"] > 0.95 and bundle.info["n_test"] == 100


# --- faithfulness / complexity through Quantus, on a real model ------------------------------------------


@pytest.mark.slow
def test_baselines_and_metrics_run_and_failures_are_recorded_with_a_reason(shapes_bundle, lite0):
    bundle, test = shapes_bundle
    maps = baseline_attributions(bundle, test.images, test.labels, seed=0)
    assert set(maps) == set(gu.experiments.ch04_evaluation.BASELINES)
    for name, a in maps.items():
        assert not isinstance(a, Failed), (name, a)
        assert a.shape == (8, 56, 56)
    again = baseline_attributions(bundle, test.images, test.labels, methods=["Random (control)"], seed=0)
    np.testing.assert_array_equal(again["Random (control)"], maps["Random (control)"])  # seeded
    # EfficientNet-Lite0 has ReLU6 modules only: Deconvolution is refused, not silently a gradient
    img = gu.load_image("chelsea")[None]
    lite = baseline_attributions(lite0, img, [285], methods=["Deconvolution", "Saliency"])
    assert isinstance(lite["Deconvolution"], Failed) and "nn.ReLU" in lite["Deconvolution"].reason
    assert lite["Saliency"].shape == (1, 224, 224)

    metrics = {"Sufficiency": sufficiency_metric(), **complexity_metrics()}  # faithfulness: test_faithfulness.py
    chosen = {k: maps[k] for k in ("Saliency", "Grad-CAM", "Random (control)")}
    chosen["broken"] = Failed("could not run")
    scores = score_attributions(bundle, test.images, test.labels, chosen, metrics, seed=0)
    for method in ("Saliency", "Grad-CAM", "Random (control)"):
        for metric in metrics:
            v = scores[method][metric]
            assert not isinstance(v, Failed), (method, metric, v)
            assert v.shape == (8,) and np.isfinite(v).sum() >= 6, (method, metric, v)  # a constant curve gives NaN
    assert all(isinstance(v, Failed) for v in scores["broken"].values())
    # effective complexity counts pixels above eps: a Grad-CAM map upsampled from 14x14 covers most of the image
    assert scores["Random (control)"]["Sparseness"].mean() < scores["Grad-CAM"]["Sparseness"].mean()
    again = score_attributions(bundle, test.images, test.labels, {"Saliency": maps["Saliency"]},
                               {"Sufficiency": metrics["Sufficiency"]}, seed=0)
    np.testing.assert_array_equal(again["Saliency"]["Sufficiency"], scores["Saliency"]["Sufficiency"])
    rows = summary_rows(scores, list(metrics), reference="Random (control)")
    text = format_summary(rows, list(metrics))
    assert "broken" in text and "failed: could not run" in text


def test_statistics():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / np.sqrt(3), rel=1e-3)
    assert np.isnan(mean_ci([5.0])[1]) and np.isnan(mean_ci([])[0])
    assert np.isnan(paired_test([1, 2, 3], [0, 1, 2]))  # 3 pairs cannot reach p < 0.05
    assert paired_test(np.arange(10) + 1.0, np.zeros(10)) < 0.01
    with pytest.raises(ValueError, match="equal lengths"):
        paired_test([1, 2], [1])


def test_bad_inputs(shapes_bundle):
    bundle, test = shapes_bundle
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_attributions(bundle, test.images, test.labels, methods=["LRP!"])
    with pytest.raises(ValueError, match="labels"):
        baseline_attributions(bundle, test.images, [0, 1], methods=["Saliency"])
    with pytest.raises(ValueError, match="top_k"):
        localisation_metrics(top_k=0)
    with pytest.raises(ValueError, match="masks must be"):
        score_attributions(None, None, [0, 1], {"m": np.zeros((2, 4, 4))}, localisation_metrics(), masks=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="must be N×H×W"):
        score_attributions(None, None, [0, 1], {"m": np.zeros((3, 4, 4))}, localisation_metrics(),
                           masks=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="needs a model"):
        score_attributions(None, None, [0, 1], {"m": np.zeros((2, 4, 4))}, {"Sufficiency": sufficiency_metric()})


def test_the_chapters_map_figures_draw_what_they_are_given(tmp_path):
    """The evaluation chapter's two map grids: every method's map (signed maps centred on zero) and the benchmark's
    maps with the object outline, scored in the titles when scores are given."""
    import matplotlib
    import matplotlib.pyplot as plt

    from gradlime_utils.experiments import ch04_evaluation as ev
    matplotlib.use("Agg")
    rng = np.random.default_rng(1)
    bench = make_shapes_benchmark(6, seed=2)
    maps = {"LIME": rng.random((6, 32, 32)), "saliency (Orig.)": rng.normal(size=(6, 32, 32))}
    fig = ev.plot_method_maps(bench.images[0], "first image", maps, cols=3, path=tmp_path / "maps.png")
    signed = fig.axes[2].images[0]
    assert signed.get_cmap().name == "RdBu_r" and signed.get_clim()[0] == -signed.get_clim()[1]
    assert fig.axes[1].images[0].get_clim()[0] == 0 and (tmp_path / "maps.pdf").is_file()
    spiky = maps["saliency (Orig.)"].copy()
    spiky[0, 0, 0] = 1e4  # one extreme pixel, as pixel gradients have, must not wash the rest of the map out
    fig = ev.plot_method_maps(bench.images[0], "first image", {"spiky": spiky})
    assert fig.axes[1].images[0].get_clim()[1] == np.percentile(np.abs(spiky[0]), 99) < 10

    scores = {m: {"PointingGame": np.arange(6) / 10, "RelevanceRankAccuracy": np.full(6, 0.25)} for m in maps}
    fig = ev.plot_localisation_maps(bench, maps, ["LIME"], [4], scores=scores)
    assert fig.axes[1].get_title() == "LIME: pointing 0.40, rank acc. 0.25"
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), maps["LIME"][4])
    assert fig.axes[1].collections  # the object's outline
    fig = ev.plot_localisation_maps(bench, maps, list(maps), [0, 1])
    assert [ax.get_title() for ax in fig.axes[1:3]] == list(maps) and fig.axes[4].get_title() == ""
    plt.close("all")


def test_the_chance_reading_groups_metrics_that_read_the_same():
    """'What the numbers say' was one bullet per metric listing method names; metrics that read the same now
    share a line, and a list of most methods is said as 'all but'."""
    from gradlime_utils.experiments import ch04_evaluation as ev
    rows = [{"method": m, "A vs chance": "within", "B vs chance": "within", "C vs chance": v}
            for m, v in (("x", "above"), ("y", "above"), ("z", "within"))]
    lines = ev.describe_chance(rows, ["A", "B", "C"], "3 images")
    assert lines == ["- A, B (3 images): no method beyond chance after the control (3 methods).",
                     "- C (3 images): above chance: all 3 methods but z; not shown beyond chance: 1 of 3."]
    rows[2]["C vs chance"] = "above"
    assert ev.describe_chance(rows, ["C"], "3 images") == ["- C (3 images): above chance: every method (3)."]


def test_the_mode_reading_names_its_reference_instead_of_guessing_it_from_a_prefix():
    from gradlime_utils.experiments import ch04_evaluation as ev
    rows = [{"method": "none (LIME)", "X": 0.5}, {"method": "feature (Eq. 9)", "X": 0.7}]
    assert ev.describe_modes(rows, ["X"], reference="none (LIME)")[0].startswith("- G-7, feature (Eq. 9) − LIME: X +0.20")
    with pytest.raises(ValueError, match="reference must name one of the rows' methods"):
        ev.describe_modes(rows, ["X"])  # no row is called "LIME": an error, not the first row taken as LIME
    assert ev.granularity("LIME") == "superpixel" and ev.granularity("none (LIME)") == "uniform"
