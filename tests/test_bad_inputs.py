"""Bad input across the public API and the three CLIs: each case names the exception type and a fragment of the
message that names the offending parameter (or file). One table, so that a new boundary is one more row."""

import numpy as np
import pytest

import gradlime_utils as gu
from gradlime_utils import widgets
from gradlime_utils.methods import evolime
from gradlime_utils.methods import gad
from gradlime_utils.metrics import hull as hull_metrics
from gradlime_utils.metrics import maps as map_metrics
from gradlime_utils.methods import neighborhood
from gradlime_utils.methods import normlime
from gradlime_utils.methods.attributions import attribution_maps, baseline_input
from gradlime_utils.metrics import nulls
from gradlime_utils.metrics.nulls import paired_difference
from gradlime_utils.runtime import set_seed


@pytest.fixture(scope="module")
def ctx(mnist_bundle):
    digit = gu.load_binary_dataset("mnist_3_vs_8", "test", max_per_class=2).images()
    image = digit[0]
    segments = neighborhood.segment_image(image, "grid", cell_size=7)
    nb = gu.sample_neighborhood(mnist_bundle, image, num_samples=20, seed=0, segments=segments, progress=False)
    support = gad.SupportModels(bundle=mnist_bundle, models={0.0: mnist_bundle.model})
    agg = normlime.aggregate([normlime.LocalExplanation(0, np.array([0, 1]), np.array([0.5, -0.2]))], 4)
    return {"bundle": mnist_bundle, "image": image, "digits": digit, "segments": segments, "nb": nb,
            "support": support, "agg": agg}


def _fig():
    import matplotlib.pyplot as plt

    return plt.figure()


CASES = [
    # --- models and images
    ("load_model unknown name", lambda c: gu.load_model("resnet9000"), ValueError, "resnet9000"),
    ("load_model engine", lambda c: gu.load_model("mnist_cnn", engine="tensorrt", progress=False), ValueError,
     "engine must be"),
    ("load_model batch_size", lambda c: gu.load_model("mnist_cnn", batch_size=0, progress=False), ValueError,
     "batch_size"),
    ("top_k negative", lambda c: c["bundle"].top_k(c["image"], k=-1), ValueError, "k must be"),
    ("top_k too many", lambda c: c["bundle"].top_k(c["image"], k=3), ValueError, "k must be"),
    ("top_k float", lambda c: c["bundle"].top_k(c["image"], k=1.5), TypeError, "k must be an integer"),
    ("predict float images", lambda c: c["bundle"].predict_proba(c["image"].astype(float)), ValueError, "uint8"),
    ("predict wrong size", lambda c: c["bundle"].predict_proba(np.zeros((2, 30, 30, 3), np.uint8)), ValueError,
     "expects 28×28"),
    ("predict batch_size 0", lambda c: c["bundle"].predict_proba(c["digits"], batch_size=0), ValueError,
     "batch_size"),
    ("load_image missing", lambda c: gu.load_image("no_such_photo_xyz"), ValueError, "no_such_photo_xyz"),
    ("load_image size", lambda c: gu.load_image("chelsea", size=3), ValueError, "size must be"),
    ("load_image mode", lambda c: gu.load_image("chelsea", mode="stretch"), ValueError, "mode must be"),
    ("dataset split", lambda c: gu.load_binary_dataset("mnist_3_vs_8", "validation"), ValueError, "split must be"),
    ("set_seed negative", lambda c: set_seed(-1), ValueError, "seed must be"),
    ("resolve_device", lambda c: gu.resolve_device("tpu"), ValueError, "tpu"),
    ("profile", lambda c: gu.check_profile("huge"), ValueError, "huge"),
    ("start_chapter profile", lambda c: gu.start_chapter("huge", 0, "out"), ValueError, "huge"),
    ("start_chapter seed", lambda c: gu.start_chapter("smoke", 1.5, "out"), TypeError, "seed must be"),
    ("start_chapter output_dir kind", lambda c: gu.start_chapter("smoke", 0, 3), TypeError,
     "output_dir must be a path"),
    ("start_chapter output_dir empty", lambda c: gu.start_chapter("smoke", 0, " "), ValueError, "output_dir"),
    ("Sizes resolve overrides kind", lambda c: gu.Sizes(n=gu.Size(1, 2, 3)).resolve("quick", 5), TypeError,
     "sizes must be a dict"),
    ("Sizes resolve unknown name", lambda c: gu.Sizes(n=gu.Size(1, 2, 3)).resolve("quick", {"m": 1}), ValueError,
     "unknown name"),
    ("Sizes resolve profile", lambda c: gu.Sizes(n=gu.Size(1, 2, 3)).resolve("huge"), ValueError, "huge"),
    ("Sizes entry kind", lambda c: gu.Sizes(n=3), TypeError, "size 'n' must be a Size"),
    ("Size help kind", lambda c: gu.Size(1, 2, 3, help=4), TypeError, "help must be a string"),
    ("chapter_sizes unknown", lambda c: __import__("gradlime_utils.experiments", fromlist=["x"]).chapter_sizes(
        "08_nope"), ValueError, "08_nope"),
    ("photo_sources photos kind", lambda c: __import__("gradlime_utils.experiments.ch04_evaluation",
                                                        fromlist=["x"]).photo_sources("quick", ["chelsea"],
                                                                                      photos=1.5),
     TypeError, "photos must be an integer"),
    # --- the neighbourhood
    ("num_samples 1", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 1, progress=False), ValueError,
     "num_samples"),
    ("seed -1", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 10, seed=-1, segments=c["segments"],
                                                 progress=False), ValueError, "seed must be"),
    ("hide_color red", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 10, hide_color="red",
                                                        segments=c["segments"], progress=False), ValueError,
     "hide_color"),
    ("hide_color 300", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 10, hide_color=300,
                                                        segments=c["segments"], progress=False), ValueError,
     "hide_color"),
    ("batch_size 0", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 10, batch_size=0,
                                                      segments=c["segments"], progress=False), ValueError,
     "batch_size"),
    ("batch_size -3", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 10, batch_size=-3,
                                                       segments=c["segments"], progress=False), ValueError,
     "batch_size"),
    ("float segments", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 10, segments=c["segments"] * 1.0,
                                                        progress=False), TypeError, "segments must be an integer"),
    ("segments shape", lambda c: gu.sample_neighborhood(c["bundle"], c["image"], 10, segments=c["segments"][:5],
                                                        progress=False), ValueError, "segments has shape"),
    ("misspelt segmentation keyword", lambda c: neighborhood.segment_image(gu.load_image("chelsea", size=64),
                                                                           kernel_sizee=4), ValueError,
     "kernel_sizee"),
    ("segmentation name", lambda c: neighborhood.segment_image(c["image"], "watershed"), ValueError,
     "segmentation must be"),
    ("grid keyword", lambda c: neighborhood.segment_image(c["image"], "grid", n_segments=3), ValueError,
     "cell_size"),
    ("grey image", lambda c: gu.sample_neighborhood(c["bundle"], c["image"][..., 0], 10, progress=False),
     ValueError, "image must be a uint8"),
    # --- LIME / GradLIME
    ("label out of range", lambda c: gu.explain_lime(c["nb"], 5), ValueError, "label must be"),
    ("label float", lambda c: gu.explain_lime(c["nb"], 0.5), ValueError, "label must be"),
    ("num_features 0", lambda c: gu.explain_lime(c["nb"], 0, num_features=0), ValueError, "num_features"),
    ("gradlime mode", lambda c: gu.explain_gradlime(c["nb"], 0, np.ones(c["nb"].num_superpixels), "max"),
     ValueError, "mode must be"),
    ("cam with NaN", lambda c: gu.explain_gradlime(c["nb"], 0, np.where(np.eye(28, dtype=bool), np.nan, 1.0)),
     ValueError, "cam holds"),
    ("cam with inf", lambda c: gu.explain_gradlime(c["nb"], 0, np.full((28, 28), np.inf)), ValueError, "cam holds"),
    ("cam wrong shape", lambda c: gu.explain_gradlime(c["nb"], 0, np.ones((10, 10))), ValueError, "cam has shape"),
    ("activation length", lambda c: gu.explain_gradlime(c["nb"], 0, np.ones(3)), ValueError, "activation has"),
    ("gradcam target", lambda c: gu.gradcam(c["bundle"], c["image"], 7), ValueError, "target must be"),
    ("gradcam layer without spatial output", lambda c: gu.gradcam(c["bundle"], c["image"], 0, "classifier.1"),
     ValueError, "no spatial output"),
    ("gradcam unknown layer", lambda c: gu.gradcam(c["bundle"], c["image"], 0, "_fc"), ValueError, "_fc"),
    # --- GAD
    ("alpha string", lambda c: gad.check_alpha_schedule("2"), TypeError, "alphas must be"),
    ("alpha schedule order", lambda c: gad.check_alpha_schedule((4, 2)), ValueError, "alpha schedule"),
    ("alpha NaN", lambda c: gad.check_alpha_schedule((2, float("nan"))), ValueError, "alphas must be finite"),
    ("distanced alpha string", lambda c: gad.distanced_targets(np.zeros((2, 2)), [0, 1], "2"), ValueError, "alpha"),
    ("NaN logits", lambda c: gad.distanced_targets(np.array([[np.nan, 1.0]]), [0], 2), ValueError, "logits"),
    ("labels not binary", lambda c: gad.distanced_targets(np.zeros((2, 2)), [0, 3], 2), ValueError, "labels"),
    ("null name", lambda c: nulls.null_labels(np.array([0, 1]), "random"), ValueError, "null must be"),
    ("attribution batch_size", lambda c: attribution_maps(c["bundle"].model, c["bundle"].preprocess(c["digits"]),
                                                          0, "saliency", batch_size=0), ValueError, "batch_size"),
    ("attribution method", lambda c: attribution_maps(c["bundle"].model, c["bundle"].preprocess(c["digits"]),
                                                      0, "lrp"), ValueError, "method must be"),
    ("baseline name", lambda c: baseline_input(c["bundle"].preprocess, c["digits"], "grey"), ValueError,
     "baseline must be"),
    ("gad_map empty", lambda c: gad.gad_map(c["support"], c["digits"][:0], 0, "saliency"), ValueError,
     "images is empty"),
    ("gad_map combine", lambda c: gad.gad_map(c["support"], c["digits"], 0, "saliency", combine="max"),
     ValueError, "combine must be"),
    ("evaluate_gad label 7", lambda c: __import__("gradlime_utils.experiments.ch03_gad", fromlist=["x"]).evaluate_gad(
        c["support"], c["digits"], np.array([0, 7]), methods=["saliency"], progress=False), ValueError,
     "labels must be the binary classes"),
    ("evaluate_gad methods string", lambda c: __import__("gradlime_utils.experiments.ch03_gad", fromlist=["x"]).evaluate_gad(
        c["support"], c["digits"], np.array([0, 1]), methods="saliency", progress=False), TypeError,
     "methods must be a list"),
    ("evaluate_gad supports list", lambda c: __import__("gradlime_utils.experiments.ch03_gad", fromlist=["x"]).evaluate_gad(
        {"real": []}, c["digits"], np.array([0, 1]), progress=False), TypeError, "non-empty list"),
    ("hull of NaN map", lambda c: hull_metrics.convex_hull_mask(np.full((5, 5), np.nan)), ValueError, "NaN"),
    ("hull rule", lambda c: hull_metrics.hull_points(np.ones((5, 5)), rule="median"), ValueError, "rule must be"),
    ("RC float maps", lambda c: hull_metrics.relative_complexity(np.ones((4, 4)), np.ones((4, 4))), ValueError,
     "gad_hull must be"),
    ("RC shapes", lambda c: hull_metrics.relative_complexity(np.ones((4, 4), bool), np.ones((5, 5), bool)),
     ValueError, "same shape"),
    ("RS occlusion", lambda c: hull_metrics.relative_sensitivity(c["bundle"], c["image"], np.ones((28, 28), bool),
                                                                 0, "red"), ValueError, "occlusion must be"),
    ("bootstrap lengths", lambda c: paired_difference(np.ones(3), np.ones(4)), ValueError, "equal lengths"),
    # --- NormLIME, EvoLIME, heat maps
    ("aggregate empty", lambda c: normlime.aggregate([], 4), ValueError, "explanations is empty"),
    ("aggregate NaN weights", lambda c: normlime.aggregate(
        [normlime.LocalExplanation(0, np.array([0]), np.array([np.nan]))], 4), ValueError, "weights holds"),
    ("aggregate num_features", lambda c: normlime.aggregate([], 0), ValueError, "num_features"),
    ("ranking unknown label", lambda c: c["agg"].ranking(7), ValueError, "label 7"),
    ("evolime segments shape", lambda c: evolime.evolve_explanation(c["bundle"], c["image"], c["segments"][:10]),
     ValueError, "segments has shape"),
    ("evolime population", lambda c: evolime.evolve_explanation(c["bundle"], c["image"], c["segments"],
                                                                population=1), ValueError, "population"),
    ("evolime hide_color", lambda c: evolime.evolve_explanation(c["bundle"], c["image"], c["segments"],
                                                                hide_color="red"), ValueError, "hide_color"),
    ("occlusion NaN importance", lambda c: map_metrics.occlusion_sensitivity(
        c["bundle"], c["image"], c["segments"], np.full(16, np.nan)), ValueError, "importance holds"),
    ("occlusion top_k", lambda c: map_metrics.occlusion_sensitivity(c["bundle"], c["image"], c["segments"],
                                                                np.arange(16.0), top_k=0), ValueError, "top_k"),
    ("deletion steps", lambda c: map_metrics.deletion_insertion(c["bundle"], c["image"], np.ones((28, 28)), 0,
                                                            steps=0), ValueError, "steps"),
    ("deletion steps beyond pixels", lambda c: map_metrics.deletion_insertion(c["bundle"], c["image"], np.ones((28, 28)),
                                                                          0, steps=10**6), ValueError,
     "steps must be in [1, 784]"),
    ("deletion steps float", lambda c: map_metrics.deletion_insertion(c["bundle"], c["image"], np.ones((28, 28)), 0,
                                                                  steps=2.5), TypeError, "steps must be an integer"),
    # --- GAD's support models: training that cannot succeed is refused before it starts, or named when it fails
    ("support lr inf", lambda c: gad.train_support_models(c["bundle"], c["digits"][:2], [0, 1], epochs=1,
                                                          lr=float("inf"), progress=False), ValueError,
     "lr must be a finite number > 0"),
    ("support lr string", lambda c: gad.train_support_models(c["bundle"], c["digits"][:2], [0, 1], epochs=1,
                                                             lr="4e-5", progress=False), TypeError, "lr must be a number"),
    ("support epochs float", lambda c: gad.train_support_models(c["bundle"], c["digits"][:2], [0, 1], epochs=1.5,
                                                                progress=False), TypeError, "epochs must be an integer"),
    ("support batch_size 0", lambda c: gad.train_support_models(c["bundle"], c["digits"][:2], [0, 1], batch_size=0,
                                                                progress=False), ValueError, "batch_size must be"),
    ("support seed 2**32", lambda c: gad.train_support_models(c["bundle"], c["digits"][:2], [0, 1], epochs=1,
                                                              seed=2**32, progress=False), ValueError, "seed must be"),
    ("support alpha overflow", lambda c: gad.train_support_models(c["bundle"], c["digits"][:2], [0, 1], epochs=1,
                                                                  alphas=[1e300], progress=False), ValueError,
     "alpha=1e+300 pushes the distanced logits beyond float32"),
    ("support diverges", lambda c: gad.train_support_models(c["bundle"], c["digits"][:2], [0, 1], epochs=1,
                                                            alphas=[2.0], lr=1e30, seed=12345, progress=False),
     RuntimeError, "diverged (non-finite logits after training with lr=1e+30)"),
    # --- a value of the wrong kind is a TypeError naming the parameter (one check_int behind every count)
    ("sample_neighborhood num_samples float", lambda c: gu.sample_neighborhood(c["bundle"], c["image"],
                                                                              num_samples=10.0), TypeError,
     "num_samples must be an integer"),
    ("grid cell_size float", lambda c: neighborhood.segment_image(c["image"], "grid", cell_size=7.0), TypeError,
     "cell_size must be an integer"),
    ("load_image size float", lambda c: gu.load_image("chelsea", size=64.0), TypeError, "size must be an integer"),
    ("load_image size small", lambda c: gu.load_image("chelsea", size=4), ValueError, "size must be >= 8"),
    ("occlusion top_k float", lambda c: map_metrics.occlusion_sensitivity(c["bundle"], c["image"], c["segments"],
                                                                          np.arange(16.0), top_k=1.0), TypeError,
     "top_k must be an integer"),
    ("occlusion n_random bool", lambda c: map_metrics.occlusion_sensitivity(c["bundle"], c["image"], c["segments"],
                                                                            np.arange(16.0), n_random=True),
     TypeError, "n_random must be an integer"),
    ("slider dpi float", lambda c: widgets.slider_figure(lambda k: _fig(), {"k": [1]}, dpi=90.5), TypeError,
     "dpi must be an integer"),
    # --- widgets
    ("slider string values", lambda c: widgets.slider_figure(lambda k: _fig(), {"k": "12"}), TypeError,
     "parameter 'k' needs a list"),
    ("slider draw returns None", lambda c: widgets.slider_figure(lambda k: None, {"k": [1, 2]}), TypeError,
     "draw must return"),
    ("slider dpi 0", lambda c: widgets.slider_figure(lambda k: _fig(), {"k": [1]}, dpi=0), ValueError, "dpi"),
    ("slider three parameters", lambda c: widgets.slider_figure(lambda a, b, d: _fig(),
                                                                {"a": [1], "b": [1], "d": [1]}), ValueError,
     "one or two parameters"),
    ("slider initial", lambda c: widgets.slider_figure(lambda k: _fig(), {"k": [1, 2]}, initial={"k": 3}),
     ValueError, "initial value 3"),
]


@pytest.mark.parametrize("name, call, error, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(ctx, name, call, error, fragment):
    with pytest.raises(error) as info:
        call(ctx)
    assert fragment in str(info.value), f"{name}: message does not name the problem: {info.value}"


# --- the null, chance and statistics machinery (gradlime_utils.metrics.nulls, stats, and the chapters' verdicts)
SEG = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])


def _band():
    from gradlime_utils.metrics import nulls

    return nulls.chance_band(np.arange(40.0).reshape(10, 4))


def _gad_table(name: str, **kwargs):
    from gradlime_utils.experiments import ch03_gad as gad_eval
    record = gad_eval.GadRecord(image=0, label=0, target=0, method="saliency", model="real", rule="top_fraction",
                                occlusion="black", area_orig=4, area_gad=2, area_sup=1, area_object=3, rc=0.5,
                                rs_gad=0.2, rs_sup=0.1, on_object_orig=1.0, on_object_gad=1.0)
    return getattr(gad_eval, name)([record], **{"methods": ["saliency"], **kwargs})


def _null_cases():
    from gradlime_utils.experiments import ch04_evaluation as ev
    from gradlime_utils.metrics import stats
    from gradlime_utils.metrics import nulls
    from gradlime_utils.validation import check_seed

    ones = np.ones(5)
    return [
        ("mc_pvalue alternative", lambda: nulls.mc_pvalue(1.0, ones, "bigger"), ValueError, "alternative must be"),
        ("mc_pvalue 2-D null", lambda: nulls.mc_pvalue(1.0, np.ones((2, 2))), ValueError, "null_values must be 1-D"),
        ("mc_pvalue inf null", lambda: nulls.mc_pvalue(1.0, [1.0, np.inf]), ValueError, "null_values holds an infinite"),
        ("mc_pvalue inf value", lambda: nulls.mc_pvalue(np.inf, ones), ValueError, "value must be finite"),
        ("mc_pvalue array value", lambda: nulls.mc_pvalue(ones, ones), TypeError, "value must be a real number"),
        ("mc_pvalue string value", lambda: nulls.mc_pvalue("1", ones), TypeError, "value must be a real number"),
        ("adjust method", lambda: nulls.adjust_pvalues([0.1], "bonferroni"), ValueError, "method must be"),
        ("adjust 2-D", lambda: nulls.adjust_pvalues(np.ones((2, 2))), ValueError, "pvalues must be 1-D"),
        ("adjust above 1", lambda: nulls.adjust_pvalues([0.5, 1.5]), ValueError, "pvalues must lie in [0, 1]"),
        ("adjust negative", lambda: nulls.adjust_pvalues([-0.1]), ValueError, "pvalues must lie in [0, 1]"),
        ("chance_band one draw", lambda: nulls.chance_band(np.ones((1, 4))), ValueError, "at least 2 draws"),
        ("chance_band 1-D", lambda: nulls.chance_band(np.ones(4)), ValueError, "draws×images"),
        ("chance_band level 95", lambda: nulls.chance_band(np.ones((3, 4)), level=95), ValueError, "level must lie"),
        ("chance_band level bool", lambda: nulls.chance_band(np.ones((3, 4)), level=True), ValueError, "level"),
        ("chance_band +inf", lambda: nulls.chance_band(np.array([[1.0, np.inf], [1.0, 2.0]])), ValueError,
         "infinite score"),
        ("chance_band images mask", lambda: nulls.chance_band(np.ones((3, 4)), images=[1, 0, 1, 1]), ValueError,
         "images must be a boolean mask"),
        ("chance_band images length", lambda: nulls.chance_band(np.ones((3, 4)), images=np.ones(3, bool)),
         ValueError, "images must be a boolean mask"),
        ("decide lengths", lambda: nulls.decide([1.0, 2.0], [_band()]), ValueError, "equal lengths"),
        ("decide_intervals lengths", lambda: nulls.decide_intervals([0.1, 0.2], [1.0]), ValueError,
         "equal length"),
        ("verdict reversed", lambda: nulls.verdict(0.5, -0.5), ValueError, "low must not exceed high"),
        ("paired lengths", lambda: nulls.paired_difference(np.ones(3), np.ones(4)), ValueError, "equal lengths"),
        ("paired 2-D", lambda: nulls.paired_difference(np.ones((2, 2)), np.ones((2, 2))), ValueError,
         "a must be a non-empty 1-D"),
        ("paired empty", lambda: nulls.paired_difference([], []), ValueError, "a must be a non-empty 1-D"),
        ("paired strings", lambda: nulls.paired_difference(["a"], ["b"]), TypeError, "a must be numeric"),
        ("paired inf", lambda: nulls.paired_difference([1.0, np.inf], [1.0, 2.0]), ValueError,
         "a holds an infinite"),
        ("paired n_boot 0", lambda: nulls.paired_difference(ones, ones, n_boot=0), ValueError, "n_boot"),
        ("paired n_boot float", lambda: nulls.paired_difference(ones, ones, n_boot=10.0), TypeError, "n_boot"),
        ("paired seed -1", lambda: nulls.paired_difference(ones, ones, seed=-1), ValueError, "seed must be"),
        ("paired seed float", lambda: nulls.paired_difference(ones, ones, seed=1.5), TypeError, "seed must be"),
        ("paired seed 2**32", lambda: nulls.paired_difference(ones, ones, seed=2**32), ValueError, "seed must be"),
        ("paired level", lambda: nulls.paired_difference(ones, ones, level=1.0), ValueError, "level must lie"),
        ("paired scale 0", lambda: nulls.paired_difference(ones, ones, scale=0), ValueError, "scale must be"),
        ("paired scale nan", lambda: nulls.paired_difference(ones, ones, scale=np.nan), ValueError,
         "scale must be"),
        ("welch empty", lambda: nulls.welch_difference([], [1.0]), ValueError, "a must be a non-empty 1-D"),
        ("welch inf", lambda: nulls.welch_difference([1.0, 2.0], [np.inf, 1.0]), ValueError, "b holds an infinite"),
        ("welch level", lambda: nulls.welch_difference(ones, ones, level=0), ValueError, "level must lie"),
        ("welch strings", lambda: nulls.welch_difference("abc", ones), TypeError, "a must be numeric"),
        ("shifted 2-D", lambda: nulls.shifted_maps(np.ones((4, 4)), 2), ValueError, "N×H×W"),
        ("shifted NaN", lambda: nulls.shifted_maps(np.full((1, 4, 4), np.nan), 2), ValueError, "maps holds"),
        ("shifted count 0", lambda: nulls.shifted_maps(np.ones((1, 4, 4)), 0), ValueError, "count"),
        ("shifted seed", lambda: nulls.shifted_maps(np.ones((1, 4, 4)), 2, seed=-3), ValueError, "seed must be"),
        ("shifted strings", lambda: nulls.shifted_maps(np.array([[["a"]]]), 2), TypeError, "maps must be numeric"),
        ("shift_pvalue shapes", lambda: nulls.shift_pvalue(np.corrcoef, np.ones((4, 4)), np.ones((5, 5))),
         ValueError, "values"),
        ("shift_pvalue n_shift", lambda: nulls.shift_pvalue(np.corrcoef, np.ones((4, 4)), np.ones((4, 4)),
                                                            n_shift=0), ValueError, "n_shift"),
        ("random_maps kind", lambda: nulls.random_maps("gaussian", 2, (1, 4, 4)), ValueError, "kind must be"),
        ("random_maps count", lambda: nulls.random_maps("uniform", 0, (1, 4, 4)), ValueError, "count"),
        ("random_maps seed", lambda: nulls.random_maps("uniform", 2, (1, 4, 4), seed=-1), ValueError,
         "seed must be"),
        ("random_maps segments count", lambda: nulls.random_maps("superpixel", 2, (2, 2, 4), segments=[SEG]),
         ValueError, "one segmentation per image"),
        ("random_maps segments shape", lambda: nulls.random_maps("superpixel", 2, (1, 3, 4), segments=[SEG]),
         ValueError, "segments[0] has shape"),
        ("random_maps keep 0", lambda: nulls.random_maps("superpixel", 2, (1, 2, 4), segments=[SEG], keep=0),
         ValueError, "keep"),
        ("random_heatmaps kind", lambda: nulls.random_heatmaps("uniform", 2, SEG), ValueError, "kind must be"),
        ("random_heatmaps 1-D segments", lambda: nulls.random_heatmaps("superpixel", 2, np.arange(10)),
         ValueError, "H×W label map"),
        ("random_heatmaps float segments", lambda: nulls.random_heatmaps("superpixel", 2, SEG * 1.0), TypeError,
         "integer label map"),
        ("random_heatmaps negative ids", lambda: nulls.random_heatmaps("superpixel", 2, SEG - 1), ValueError,
         "labels must be >= 0"),
        ("random_heatmaps seed", lambda: nulls.random_heatmaps("superpixel", 2, SEG, seed=2**40), ValueError,
         "seed must be"),
        ("random_heatmaps grid", lambda: nulls.random_heatmaps("smooth", 2, SEG, grid=1), ValueError, "grid"),
        ("null_percentile inf", lambda: nulls.null_percentile(0.5, [0.1, np.inf]), ValueError, "null_values"),
        ("null_percentile array", lambda: nulls.null_percentile(ones, ones), TypeError, "value must be"),
        ("permutation statistic", lambda: nulls.permutation_pvalue(np.ones(4), SEG, SEG * 1.0, "tau"), ValueError,
         "statistic must be"),
        ("permutation values shape", lambda: nulls.permutation_pvalue(np.ones(3), SEG, SEG * 1.0), ValueError,
         "values has shape"),
        ("permutation NaN values", lambda: nulls.permutation_pvalue(np.full(4, np.nan), SEG, SEG * 1.0), ValueError,
         "values holds"),
        ("permutation other shape", lambda: nulls.permutation_pvalue(np.ones(4), SEG, np.ones((3, 3))), ValueError,
         "other"),
        ("permutation n_perm", lambda: nulls.permutation_pvalue(np.ones(4), SEG, SEG * 1.0, n_perm=0), ValueError,
         "n_perm"),
        ("permutation fraction", lambda: nulls.permutation_pvalue(np.arange(4.0), SEG, SEG * 1.0, "iou",
                                                                   fraction=0), ValueError, "fraction must lie"),
        ("permutation seed", lambda: nulls.permutation_pvalue(np.arange(4.0), SEG, SEG * 1.0, seed=-1), ValueError,
         "seed must be"),
        ("permutation 1-D segments", lambda: nulls.permutation_pvalue(np.ones(4), np.arange(4), np.ones(4)),
         ValueError, "H×W label map"),
        ("mean_ci confidence 95", lambda: stats.mean_ci(ones, confidence=95), ValueError, "confidence must lie"),
        ("mean_ci confidence negative", lambda: stats.mean_ci(ones, confidence=-0.5), ValueError,
         "confidence must lie"),
        ("mean_ci 2-D", lambda: stats.mean_ci(np.ones((2, 3))), ValueError, "values must be 1-D"),
        ("mean_ci inf", lambda: stats.mean_ci([1.0, np.inf]), ValueError, "values holds an infinite"),
        ("mean_ci string", lambda: stats.mean_ci("123"), TypeError, "values must be a sequence"),
        ("paired_test 2-D", lambda: stats.paired_test(np.ones((2, 3)), np.ones((2, 3))), ValueError,
         "a must be 1-D"),
        ("paired_test lengths", lambda: stats.paired_test(np.ones(3), np.ones(4)), ValueError, "equal lengths"),
        ("paired_test inf", lambda: stats.paired_test([1.0, np.inf], [1.0, 2.0]), ValueError, "a holds"),
        ("check_seed float", lambda: check_seed(1.5), TypeError, "seed must be"),
        ("check_seed 2**40", lambda: check_seed(2**40), ValueError, "seed must be"),
        ("check_seed bool", lambda: check_seed(True), TypeError, "seed must be"),
        ("set_seed 2**40", lambda: set_seed(2**40), ValueError, "seed must be"),
        ("set_seed float", lambda: set_seed(1.5), TypeError, "seed must be"),
        ("localisation_chance seeds", lambda: ev.localisation_chance(None, 2, seeds=0), ValueError, "seeds"),
        ("top_rank NaN values", lambda: __import__("gradlime_utils.metrics.maps", fromlist=["x"]).top_rank(
            np.array([np.nan, 1.0]), np.array([0.1, 0.2])), ValueError, "values holds"),
        ("top_rank shapes", lambda: __import__("gradlime_utils.metrics.maps", fromlist=["x"]).top_rank(
            np.ones(3), np.ones(2)), ValueError, "one entry per superpixel"),
        ("table1 unknown model", lambda: _gad_table("table1", model="fake"), ValueError,
         "model 'fake' is not in the records"),
        ("table2 unknown rule", lambda: _gad_table("table2", rule="median"), ValueError,
         "rule 'median' is not in the records"),
        ("table2 unknown occlusion", lambda: _gad_table("table2", occlusion="red"), ValueError,
         "occlusion 'red' is not in the records"),
        ("table1 methods string", lambda: _gad_table("table1", methods="saliency"), TypeError,
         "methods must be a list"),
        ("seed_paired_p lengths", lambda: ev.seed_paired_p([1.0, 2.0], [1.0]), ValueError, "equal length"),
        ("gad null one class", lambda: __import__("gradlime_utils.metrics.nulls", fromlist=["x"]).null_labels(
            np.zeros(10, int), "shuffled_labels", 0), ValueError, "labels hold one class only"),
        ("load_binary_dataset seed -1", lambda: gu.load_binary_dataset("mnist_3_vs_8", seed=-1), ValueError,
         "seed must be"),
        ("occlusion_drops negative ids", lambda: __import__("gradlime_utils.metrics.maps", fromlist=["x"])
         .occlusion_drops(lambda x: np.ones((len(x), 2)) / 2, np.zeros((4, 5, 3), np.uint8),
                          np.full((4, 5), -1), 0), ValueError, "segments labels must be >= 0"),
        ("degenerate strings", lambda: nulls.degenerate(["a", "b"]), TypeError, "null_values must be numeric"),
        ("degenerate rtol", lambda: nulls.degenerate([1.0, 2.0], rtol=-1), ValueError, "rtol must be"),
        ("mc_pvalue strings", lambda: nulls.mc_pvalue(1.0, ["a", "b"]), TypeError, "null_values must be numeric"),
        ("chance_band strings", lambda: nulls.chance_band([["a", "b"], ["c", "d"]]), TypeError,
         "null_scores must be numeric"),
        ("bands_by_metric list", lambda: nulls.bands_by_metric([np.ones((3, 4))]), TypeError,
         "null_scores must map each metric"),
        ("decide_one not a band", lambda: nulls.decide_one(1.0, 0.01, (0.0, 1.0)), TypeError,
         "band must be a ChanceBand"),
        ("decide_one alpha 5", lambda: nulls.decide_one(1.0, 0.01, _band(), alpha=5), ValueError,
         "alpha must lie in (0, 1)"),
        ("decide_one value string", lambda: nulls.decide_one("1", 0.01, _band()), TypeError,
         "value must be a real number"),
        ("decide alpha string", lambda: nulls.decide([1.0], [_band()], alpha="0.05"), TypeError, "alpha must be"),
        ("decide bands tuples", lambda: nulls.decide([1.0], [(0.0, 1.0)]), TypeError,
         "bands[0] must be a ChanceBand"),
        ("band verdict alpha 0", lambda: _band().verdict(1.0, alpha=0), ValueError, "alpha must lie"),
        ("ChanceBand level 95", lambda: nulls.ChanceBand(0.0, -1.0, 1.0, 10, level=95), ValueError,
         "level must lie"),
        ("ChanceBand reversed", lambda: nulls.ChanceBand(0.0, 1.0, -1.0, 10), ValueError,
         "low must not exceed high"),
        ("ChanceBand draws -1", lambda: nulls.ChanceBand(0.0, -1.0, 1.0, -1), ValueError,
         "draws must be a non-negative integer"),
        ("Difference reversed", lambda: nulls.Difference(0.0, 1.0, -1.0, 3, 0, 0, float("nan"), float("nan")),
         ValueError, "low must not exceed high"),
        ("null_labels unknown null", lambda: nulls.null_labels(np.array([0, 1]), "random"), ValueError,
         "null must be"),
        ("permuted negative stream", lambda: nulls.permuted(np.arange(4), 0, -1), ValueError, "stream must be"),
        ("permuted seed float", lambda: nulls.permuted(np.arange(4), 1.5, 0), TypeError, "seed must be"),
        ("random_ranking no features", lambda: nulls.random_ranking(0, 0, 0), ValueError, "n_features must be"),
        ("bootstrap empty", lambda: nulls.bootstrap([], len, 10), ValueError, "items is empty"),
        ("bootstrap one draw", lambda: nulls.bootstrap([1, 2], len, 1), ValueError, "n_boot must be"),
        ("random_subsets too large", lambda: nulls.random_subsets(np.arange(3), 4, 2), ValueError, "size must be"),
        ("random_subsets no count", lambda: nulls.random_subsets(np.arange(3), 2, 0), ValueError, "count must be"),
        ("random_search budget 0", lambda: nulls.random_search(None, np.zeros((2, 4, 3), np.uint8), SEG, 0, budget=0),
         ValueError, "budget must be"),
    ]


NULL_CASES = _null_cases()


@pytest.mark.parametrize("name, call, error, fragment", NULL_CASES, ids=[c[0] for c in NULL_CASES])
def test_the_null_machinery_refuses_bad_input_with_a_clear_error(name, call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value), f"{name}: message does not name the problem: {info.value}"


def test_all_zero_maps_warn_and_give_nan_where_undefined(ctx):
    with pytest.warns(RuntimeWarning, match="heatmap is constant"):
        curves = map_metrics.deletion_insertion(ctx["bundle"], ctx["image"], np.zeros((28, 28)), 0, steps=4)
    assert np.isnan(curves.deletion).all() and np.isnan(curves.insertion_auc)
    with pytest.warns(RuntimeWarning, match="importance is constant"):
        occ = map_metrics.occlusion_sensitivity(ctx["bundle"], ctx["image"], ctx["segments"], np.zeros(16), n_random=2)
    assert np.isnan(occ.p_top) and np.isfinite(occ.p_random).all()
    with pytest.warns(RuntimeWarning, match="falls back"):  # the all-zero CAM keeps its fallback warning
        gu.explain_gradlime(ctx["nb"], 0, np.zeros((28, 28)))


def test_a_gradcam_result_is_accepted_where_a_map_is_expected(ctx):
    cam = gu.gradcam(ctx["bundle"], ctx["image"], 0)
    a = gu.explain_gradlime(ctx["nb"], 0, cam)
    b = gu.explain_gradlime(ctx["nb"], 0, cam.heatmap)
    np.testing.assert_array_equal(a.coef, b.coef)


CLI_CASES = [
    ("reproduce", ["--chapter", "99_nope", "--profile", "smoke"], 2, "unknown chapter '99_nope'"),
    ("reproduce", ["--chapter", "all", "--profile", "huge"], 2, "unknown profile 'huge'"),
    ("reproduce", ["--chapter", "00_setup_and_models", "--device", "tpu"], 2, "unknown device 'tpu'"),
    ("reproduce", ["--chapter", "00_setup_and_models", "-p", "alpha=2"], 2, "does not declare parameter(s) ['alpha']"),
    ("reproduce", ["--chapter", "00_setup_and_models", "-p", "profile=paper"], 2, "set by reproduce itself"),
    ("reproduce", ["--chapter", "00_setup_and_models", "-p", "oops"], 2, "must look like key=value"),
    ("sweep", ["--chapter", "03_gad", "--profile", "smoke"], 2, "at least one --grid axis"),
    ("sweep", ["--chapter", "03_gad", "--grid", "alphas=[]"], 2, "needs a non-empty list"),
    ("sweep", ["--chapter", "all", "--grid", "seed=[0,1]"], 2, "runs one chapter"),
    ("sweep", ["--chapter", "03_gad", "--grid", "seed=[0,1]", "-p", "seed=3"], 2, "both swept (--grid) and fixed"),
    ("ledger", [], 2, "does not exist"),
    ("ledger", ["empty"], 2, "no manifest.json under"),
    ("reproduce", ["--chapter", "01_lime", "-p", "seed=99999999999"], 2, "seed must be a non-negative integer below"),
    ("reproduce", ["--chapter", "01_lime", "-p", "seed=1.5"], 2, "-p seed=1.5 (chapter 01_lime): seed must be"),
    ("reproduce", ["--chapter", "01_lime", "-p", "num_samples=12.5"], 2, "num_samples must be an integer like 1000"),
    ("reproduce", ["--chapter", "01_lime", "-p", "num_samples=0"], 2, "num_samples must be a positive integer"),
    ("reproduce", ["--chapter", "01_lime", "-p", "stability_sizes=5"], 2, "stability_sizes must be a list"),
    ("reproduce", ["--chapter", "03_gad", "-p", "keep=nan"], 2, "keep must be a number like 0.5, got text"),
    ("reproduce", ["--chapter", "03_gad", "-p", "lr=1e999"], 2, "lr must be a finite number"),
    ("reproduce", ["--chapter", "03_gad", "-p", "hull_rules=[1]"], 2, "hull_rules must be a dict"),
    ("reproduce", ["--chapter", "03_gad", "-p", "trainings=True"], 2, "trainings must be an integer"),
    ("reproduce", ["--chapter", "04_evaluation", "-p", "n_images=None"], 2, "n_images must be an integer"),
    ("sweep", ["--chapter", "03_gad", "--grid", "seed=[1,,2]"], 2, "has an empty value"),
    ("sweep", ["--chapter", "03_gad", "--grid", "seed=[1,1]"], 2, "repeats 1"),
    ("sweep", ["--chapter", "03_gad", "--grid", "per_class=[4,2.5]"], 2, "per_class must be an integer"),
    ("sweep", ["--chapter", "03_gad", "--grid", "seed=[1,2]", "--scheduler", "garbage::"], 2,
     "--scheduler must be a Dask scheduler address"),
    ("fetch", ["--weights", "resnet18", "--root", "FILE"], 2, "--root must be a folder"),
    ("fetch", ["--weights", "resnet18", "--mirror", "not a url"], 2, "--mirror must be an http(s)"),
]


@pytest.mark.parametrize("cli, args, code, fragment", CLI_CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CLI_CASES])
def test_cli_bad_requests_are_one_line_naming_the_problem(tmp_path, capsys, cli, args, code, fragment):
    from gradlime_utils.runs import fetch
    from gradlime_utils.runs import ledger, reproduce, sweep

    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    (tmp_path / "FILE").write_text("a file, not a folder")
    if cli == "ledger":
        results = tmp_path / (args[0] if args else "missing")
        rc = ledger.main(["--results", str(results), "--out", str(tmp_path / "page.md")])
        assert not (tmp_path / "page.md").exists()
    elif cli == "fetch":
        rc = fetch.main([str(tmp_path / a) if a == "FILE" else a for a in args])
    else:
        rc = {"reproduce": reproduce.main, "sweep": sweep.main}[cli](["--out", str(out), *args])
    err = capsys.readouterr().err
    assert rc == code and fragment in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_every_public_function_of_the_null_module_has_a_bad_input_row():
    """Issue 24/26: the null and chance machinery validates at every public boundary; each public function and
    class of gradlime_utils.metrics.nulls appears in at least one NULL_CASES row (read from the rows' code)."""
    import inspect

    from gradlime_utils.metrics import nulls

    called = set()
    for case in NULL_CASES:
        called |= set(case[1].__code__.co_names)
    public = [name for name, obj in inspect.getmembers(nulls) if not name.startswith("_")
              and (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == nulls.__name__]
    assert public and not [name for name in public if name not in called]


def test_every_choice_at_a_boundary_fails_with_the_same_message_shape():
    """One check_choice behind every named-choice parameter: 'NAME must be one of (...), got VALUE'."""
    import re

    from gradlime_utils.methods.attributions import check_baseline, check_method
    from gradlime_utils.data.engine import check_engine
    from gradlime_utils.validation import check_choice, check_label

    for check, name in ((gu.check_profile, "profile"), (check_method, "method"), (check_baseline, "baseline"),
                        (check_engine, "engine")):
        with pytest.raises(ValueError, match=rf"^{name} must be one of \(.+\), got 'nope'$"):
            check("nope")
    with pytest.raises(ValueError, match=r"got True"):
        check_choice("flag", True, (1, 2))  # True == 1, but a bool is not the integer choice
    assert check_choice("k", 2, (1, 2)) == 2 and check_label(np.int64(3), 4) == 3
    # a name read from a DataFrame or an array comes back as the plain choice; an array is refused, not ambiguous
    picked = check_choice("method", np.str_("lime"), ("lime", "gradlime"))
    assert picked == "lime" and type(picked) is str and check_choice("k", np.int64(2), (1, 2)) == 2
    for bad in (np.array(["lime"]), "1", 1.5):
        with pytest.raises(ValueError, match=r"^k must be one of \(1, 2\)"):
            check_choice("k", bad, (1, 2))
    for bad in (4, -1, 1.0, True):
        with pytest.raises(ValueError, match=re.escape("label must be an integer in [0, 4)")):
            check_label(bad, 4)
