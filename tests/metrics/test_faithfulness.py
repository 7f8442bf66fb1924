"""The shared-perturbation faithfulness scorer against Quantus, the fixed metrics, chance bands and the controls."""
import warnings

import numpy as np
import pytest
import torch

import gradlime_utils as gu
from gradlime_utils.experiments import ch04_evaluation as ev
from gradlime_utils.metrics import faithfulness as fa
from gradlime_utils.metrics import quantus_bridge as qb
from gradlime_utils.metrics import nulls
from gradlime_utils.data.shapes import ShapesCNN, _bundle, make_shapes_benchmark


@pytest.fixture(scope="module")
def small_case():
    """A randomly initialised ShapesCNN on the PyTorch engine, 3 benchmark images, 2 random maps."""
    torch.manual_seed(0)
    bundle = _bundle(ShapesCNN(), torch.device("cpu"), 56, {})
    bundle.set_engine("torch")
    bench = make_shapes_benchmark(3, seed=1)
    maps = np.random.default_rng(0).normal(size=(2, 3, 56, 56))
    return bundle, bench.images, bench.labels, maps


def _quantus_scores(bundle, images, labels, metric, a, seed=3):
    x = qb._inputs(bundle, images)
    np.random.seed(seed)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(metric(model=bundle.model, x_batch=x, y_batch=np.asarray(labels), a_batch=a[:, None],
                                 device="cpu", channel_first=True), dtype=float)


def test_shared_perturbation_scores_equal_quantus(small_case):
    bundle, images, labels, maps = small_case
    q = qb._quantus()
    kw = {"disable_warnings": True, "display_progressbar": False}
    # a batch of the same 3 images as Quantus' call, so the model's float arithmetic is the same
    scorer = fa.PerturbationScorer(bundle, images, labels, seed=3, batch_size=3)
    pearson, spearman = q.similarity_func.correlation_pearson, q.similarity_func.correlation_spearman
    cases = [
        (scorer.faithfulness_correlation(maps, 10, 56),
         q.FaithfulnessCorrelation(nr_runs=10, subset_size=56, perturb_baseline="black", abs=False,
                                   return_aggregate=False, similarity_func=pearson, **kw)),
        (scorer.faithfulness_estimate(maps, 196),
         q.FaithfulnessEstimate(features_in_step=196, perturb_baseline="black", similarity_func=pearson, **kw)),
        (scorer.monotonicity_correlation(maps, 196, 2),
         q.MonotonicityCorrelation(nr_samples=2, features_in_step=196, perturb_baseline="uniform",
                                   similarity_func=spearman, **kw)),
        (scorer.region_perturbation_curves(maps, 4, 5),
         q.RegionPerturbation(patch_size=4, regions_evaluation=5, perturb_baseline="uniform", normalise=True, **kw)),
    ]
    for ours, metric in cases:
        for m in range(len(maps)):
            theirs = _quantus_scores(bundle, images, labels, metric, maps[m])
            # the model outputs are identical; only NumPy's summation order can differ in the last bit
            np.testing.assert_allclose(ours[m], theirs, rtol=0, atol=1e-12, err_msg=type(metric).__name__)
    aopc = scorer.region_perturbation(maps, 4, 5)
    np.testing.assert_allclose(aopc, cases[3][0].sum(-1) / 6)


def test_irof_is_per_image_and_normalised(small_case):
    bundle, images, labels, maps = small_case
    q = qb._quantus()
    metric = q.IROF(segmentation_method="slic", perturb_baseline="mean", perturb_func=qb.broadcast_mask_replacement,
                    return_aggregate=False, disable_warnings=True, display_progressbar=False)
    scorer = fa.PerturbationScorer(bundle, images, labels, seed=3, batch_size=1)
    raw = scorer.irof(maps, n_segments=100, normalised=False)
    norm = scorer.irof(maps, n_segments=100)
    sizes = np.array([len(np.unique(s)) for s in scorer.segments(100)])
    np.testing.assert_allclose(norm, raw / sizes)
    assert (norm > 0).all() and (norm < 1.5).all()
    for i in range(len(images)):  # each image scored alone by Quantus gives our score (up to float32 rounding of
        # the unperturbed prediction, which our scorer computes in a batch of three)
        alone = _quantus_scores(bundle, images[i:i + 1], labels[i:i + 1], metric, maps[0][i:i + 1])
        np.testing.assert_allclose(raw[0, i], alone[0], rtol=2e-5)
    # Quantus' batched IROF couples the images (a shared mean fill); ours does not depend on the batch partners
    batched = _quantus_scores(bundle, images, labels, metric, maps[0])
    assert not np.allclose(batched, raw[0], rtol=1e-3)
    first_alone = fa.PerturbationScorer(bundle, images[:1], labels[:1], seed=3, batch_size=1).irof(maps[:, :1])
    np.testing.assert_allclose(first_alone[:, 0], norm[:, 0], rtol=2e-5)


def test_faithfulness_correlation_shares_its_queries(small_case):
    bundle, images, labels, _ = small_case
    scorer = fa.PerturbationScorer(bundle, images, labels)
    start = scorer.queries
    one = scorer.faithfulness_correlation(nulls.random_maps("uniform", 1, (3, 56, 56), seed=1), 8, 56)
    cost_one = scorer.queries - start
    start = scorer.queries
    many = scorer.faithfulness_correlation(nulls.random_maps("uniform", 20, (3, 56, 56), seed=1), 8, 56)
    assert scorer.queries - start == cost_one == 8 * 3  # one query per run and image, whatever the number of maps
    np.testing.assert_array_equal(many[0], one[0])  # the same subsets for every map
    start = scorer.queries
    scorer.faithfulness_estimate(nulls.random_maps("uniform", 2, (3, 56, 56), seed=1), 56 * 56 * 3 // 4)
    assert scorer.queries - start == 2 * 4 * 3  # per map: 4 steps x 3 images


def test_scorer_rejects_bad_maps(small_case):
    bundle, images, labels, _ = small_case
    scorer = fa.PerturbationScorer(bundle, images, labels)
    with pytest.raises(ValueError, match="M×N×H×W"):
        scorer.faithfulness_correlation(np.zeros((2, 56, 56)))
    bad = np.zeros((1, 3, 56, 56))
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        scorer.faithfulness_estimate(bad)
    with pytest.raises(ValueError, match="unknown metric"):
        scorer.score(bad * 0, fa.FaithfulnessSettings.for_profile("smoke", 56), ["Faithfulness"])
    with pytest.raises(ValueError, match="profile"):
        fa.FaithfulnessSettings.for_profile("huge", 56)
    with pytest.raises(ValueError, match="image_size"):
        fa.FaithfulnessSettings.for_profile("quick", 30)


def test_random_maps():
    seg = np.repeat(np.arange(4), 4).reshape(4, 4)  # four row superpixels
    maps = nulls.random_maps("superpixel", 50, (2, 4, 4), segments=[seg, seg.T], keep=2, seed=0)
    assert maps.shape == (50, 2, 4, 4)
    for m in maps:
        assert all(len(np.unique(m[0][seg == s])) == 1 for s in range(4))  # constant on each superpixel
        assert (np.abs(m[0][:, 0]) > 0).sum() == 2  # two superpixels kept
    assert (nulls.random_maps("superpixel", 5, (1, 4, 4), segments=[seg], positive=True, seed=0) >= 0).all()
    u = nulls.random_maps("uniform", 3, (2, 4, 4), seed=0)
    assert u.shape == (3, 2, 4, 4) and 0 <= u.min() and u.max() < 1
    np.testing.assert_array_equal(u, nulls.random_maps("uniform", 3, (2, 4, 4), seed=0))
    with pytest.raises(ValueError, match="kind"):
        nulls.random_maps("gaussian", 3, (2, 4, 4))
    with pytest.raises(ValueError, match="segmentation per image"):
        nulls.random_maps("superpixel", 3, (2, 4, 4), segments=[seg])


def test_chance_band_and_verdict():
    draws = np.tile(np.arange(101, dtype=float)[:, None], (1, 4))  # image means 0..100
    band = nulls.chance_band(draws)
    assert band.mean == 50 and band.low == pytest.approx(2.5) and band.high == pytest.approx(97.5)
    assert band.draws == 101
    # the rank rule: two-sided p = 2 (1 + #draws beyond) / 102
    assert band.verdict(100.5) == "above" and band.verdict(-1) == "below" and band.verdict(99) == "within"
    assert band.p_value(100.5) == pytest.approx(2 / 102) and band.p_value(99) == pytest.approx(2 * 3 / 102)
    assert band.verdict(float("nan")) == "n/a"
    with pytest.raises(ValueError, match="at least 2 draws"):
        nulls.chance_band(np.zeros((1, 4)))


def test_tie_fair_pointing_game_on_a_plateau():
    s = np.zeros((4, 4, 4), bool)
    s[:, 0, :2] = True                       # the object: two pixels
    a = np.zeros((4, 4, 4))
    a[0, 0, :] = 1.0                         # a plateau of 4 pixels, 2 of them on the object
    a[1, 0, 0] = 2.0                         # a unique maximum on the object
    a[2] = 0.0                               # a blank map
    a[3, 3, 3] = 1.0                         # a unique maximum off the object
    pg = qb.TieFairPointingGame()(a_batch=a[:, None], s_batch=s[:, None])
    np.testing.assert_allclose(pg, [0.5, 1.0, 0.0, 0.0])
    # Quantus 0.6 counts the plateau and the blank map as hits
    q = qb._quantus().PointingGame(disable_warnings=True, display_progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = np.asarray(q(model=None, x_batch=np.zeros((4, 1, 4, 4)), y_batch=np.zeros(4, int), a_batch=a[:, None],
                              s_batch=s[:, None].astype(float), channel_first=True), dtype=float)
    assert theirs[0] == 1.0 and theirs[2] == 1.0
    assert qb.localisation_metrics()["PointingGame"].__class__ is qb.TieFairPointingGame


def test_sufficiency_is_not_applicable_with_one_image_per_class(small_case):
    assert isinstance(qb.sufficiency_applicability([3, 7, 9]), qb.NotApplicable)
    assert qb.sufficiency_applicability([3, 7, 3]) is None
    bundle, images, labels, maps = small_case
    # two images of two classes: n/a, never 0; three images of two classes: defined
    study = fa.score_with_chance(bundle, images[:2], [0, 1], {"m": maps[0][:2]},
                                 fa.FaithfulnessSettings.for_profile("smoke", 56),
                                 segments=[np.zeros((56, 56), int)] * 2, n_random=2, complexity=False)
    assert isinstance(study.scores["m"]["Sufficiency"], qb.NotApplicable)
    rows = ev.banded_rows(study.scores, qb.FAITHFULNESS, study.bands)
    frame = ev.banded_frame(rows, qb.FAITHFULNESS, study.bands)
    assert frame.loc["m", "Sufficiency"] == "n/a"
    defined = fa.score_with_chance(bundle, images, [0, 1, 0], {"m": maps[0]},
                                   fa.FaithfulnessSettings.for_profile("smoke", 56),
                                   segments=[np.zeros((56, 56), int)] * 3, n_random=2, complexity=False)
    assert isinstance(defined.scores["m"]["Sufficiency"], np.ndarray)


def test_banded_table_marks_only_cells_outside_the_band():
    scores = {"LIME": {"X": np.array([0.9, 0.8, 0.85])}, "Saliency": {"X": np.array([0.1, 0.0, 0.05])},
              "broken": {"X": qb.Failed("no ReLU")}}
    draws = tuple(np.linspace(-0.2, 0.2, 100))
    bands = {"superpixel": {"X": nulls.ChanceBand(0.0, -0.2, 0.2, 100, values=draws)},
             "uniform": {"X": nulls.ChanceBand(0.0, -0.2, 0.2, 100, values=draws)}}
    rows = ev.banded_rows(scores, ["X"], bands)
    frame = ev.banded_frame(rows, ["X"], bands)
    assert frame.loc["LIME", "X"].endswith("▲") and "▲" not in frame.loc["Saliency", "X"]
    assert frame.loc["broken", "X"] == "failed"
    assert frame.loc["chance (uniform random maps)", "X"] == "0.00 [-0.20, 0.20]"
    assert ev.beyond_chance(rows, ["X"]) == {"X": ["LIME"]}
    assert rows[0]["kind"] == "superpixel" and rows[1]["kind"] == "uniform"


def test_seed_rows_average_over_seeds():
    runs = [{"LIME": {"PG": np.array([1.0, 0.0])}, "CAM": {"PG": np.array([1.0, 1.0])}},
            {"LIME": {"PG": np.array([0.0, 0.0])}, "CAM": {"PG": np.array([1.0, 0.0])}},
            {"LIME": {"PG": np.array([1.0, 1.0])}, "CAM": {"PG": np.array([0.0, 1.0])}}]
    rows = {r["method"]: r for r in ev.seed_rows(runs, ["PG"])}
    assert rows["LIME"]["PG seeds"] == [0.5, 0.0, 1.0]
    assert rows["LIME"]["PG"] == pytest.approx(0.5)
    assert rows["LIME"]["PG ci95"] == pytest.approx(4.303 * 0.5 / np.sqrt(3), rel=1e-3)
    frame = ev.per_seed_frame(list(rows.values()), "PG", [0, 1, 2])
    assert frame.loc["CAM"].tolist() == [1.0, 0.5, 0.5]


def test_stability_study_controls():
    bench = make_shapes_benchmark(40, seed=0)
    torch.manual_seed(0)
    bundle = _bundle(ShapesCNN(), torch.device("cpu"), 56, {})
    image = bench.images[0]
    segments = gu.segment_image(image, "grid", cell_size=14)
    hoods = gu.seeded_neighborhoods(bundle, image, segments, [0, 1, 2], 60)
    again = gu.seeded_neighborhoods(bundle, image, segments, [0, 5], 40, reuse=hoods)
    np.testing.assert_array_equal(again[0].data, hoods[0].data[:40])  # reused, not re-sampled
    cam = np.random.default_rng(0).uniform(size=(56, 56))
    rows = gu.stability_study([hoods], [0], [cam], [20, 60], k=3)
    cam_only = [r for r in rows if r["method"].startswith("Grad-CAM only")]
    assert len(cam_only) == 1 and cam_only[0]["jaccard_seeds"] == 1.0 and cam_only[0]["N"] == 0
    assert {r["method"] for r in rows} == {"LIME", "GradLIME (feature)", "GradLIME (shuffled prior)",
                                           "Grad-CAM only (no samples)"}
    for r in rows:
        assert 0 <= r["agreement_top_k"] <= 1 and 0 <= r["jaccard_seeds"] <= 1
    table = gu.stability_summary(rows)
    assert set(table.columns) >= {"method", "N", "jaccard_seeds", "agreement_top_k"}
    pooled = gu.experiments.ch01_lime.pooled(hoods[1:])
    assert pooled.num_samples == 120
    with pytest.raises(ValueError, match="at least two seeds"):
        gu.stability_study([hoods[:1]], [0], [cam], [20])


def test_one_class_files(tmp_path):
    from PIL import Image

    for cls, n in (("n01", 2), ("n02", 5)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / cls / f"{i}.JPEG")
    name, files = gu.data.datasets.one_class_files(tmp_path, 3, seed=0)
    assert name == "n02" and len(files) == 3 and all(f.parent.name == "n02" for f in files)
    assert gu.data.datasets.one_class_files(tmp_path, 3, seed=0) == (name, files)  # seeded
    assert gu.data.datasets.one_class_files(tmp_path, 3, class_name="n01")[1] == sorted((tmp_path / "n01").iterdir())
    with pytest.raises(ValueError, match="no class folder"):
        gu.data.datasets.one_class_files(tmp_path, 9)
    with pytest.raises(FileNotFoundError, match="class_name"):
        gu.data.datasets.one_class_files(tmp_path, 2, class_name="n09")


def test_a_star_reads_the_reference_test_not_the_chance_verdict():
    """Both the chance verdicts and the tests against the reference are adjusted over the table; each keeps its
    own key, so a cell far beyond chance gets no star unless it also differs from the reference."""
    rng = np.random.default_rng(0)
    same = rng.normal(5.0, 0.1, 40)
    scores = {"LIME": {"X": same}, "copy": {"X": same + rng.normal(0, 1e-3, 40)}}
    draws = tuple(np.linspace(-0.2, 0.2, 100))
    bands = {"superpixel": {"X": nulls.ChanceBand(0.0, -0.2, 0.2, 100, values=draws)},
             "uniform": {"X": nulls.ChanceBand(0.0, -0.2, 0.2, 100, values=draws)}}
    rows = ev.banded_rows(scores, ["X"], bands)
    copy = next(r for r in rows if r["method"] == "copy")
    assert copy["X vs chance"] == "above" and copy["X p adjusted"] <= 0.05
    assert copy["X p reference adjusted"] > 0.05
    assert ev.banded_frame(rows, ["X"], bands).loc["copy", "X"].endswith("▲")  # no star


def test_an_all_zero_map_warns_and_scores_nan_where_undefined(small_case):
    """README: an all-zero map gives a RuntimeWarning and NaN where the quantity is undefined (a correlation with a
    constant map); the other maps of the call keep their scores."""
    bundle, images, labels, maps = small_case
    scorer = fa.PerturbationScorer(bundle, images, labels, seed=3)
    mixed = maps.copy()
    mixed[1, 2] = 0.0
    with pytest.warns(RuntimeWarning, match="maps: 1 of 6 maps are all zero"):
        scores = scorer.score(mixed, fa.FaithfulnessSettings.for_profile("smoke", 56), ["FaithfulnessCorrelation"])
    fc = scores["FaithfulnessCorrelation"]
    assert np.isnan(fc[1, 2]) and np.isfinite(fc[0]).all()


def test_the_largest_seed_is_valid_for_the_streams_derived_from_it(small_case):
    """score_with_chance derives its random maps' seeds from its own: seed = 2**32 - 1 must work (it was refused
    quoting 4294967296), and give other draws than seed 0."""
    bundle, images, labels, maps = small_case
    segments = [np.arange(56 * 56).reshape(56, 56) // 196 for _ in images]
    kw = dict(settings=fa.FaithfulnessSettings.for_profile("smoke", 56), segments=segments, n_random=2,
              complexity=False, sufficiency=False)
    top = fa.score_with_chance(bundle, images, labels, {"m": maps[0]}, seed=2**32 - 1, **kw)
    zero = fa.score_with_chance(bundle, images, labels, {"m": maps[0]}, seed=0, **kw)
    band_top, band_zero = top.bands["superpixel"]["FaithfulnessCorrelation"], \
        zero.bands["superpixel"]["FaithfulnessCorrelation"]
    assert np.isfinite(band_top.values).all() and not np.allclose(band_top.values, band_zero.values)
