import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge

import gradlime_utils as gu


@pytest.fixture(scope="module")
def digit(mnist_bundle):
    test = gu.load_binary_dataset("mnist_3_vs_8", split="test")
    return test[0][0]


@pytest.fixture(scope="module")
def mnist_nb(mnist_bundle, digit):
    return gu.sample_neighborhood(mnist_bundle, digit, num_samples=300, seed=3, segmentation="grid", cell_size=4)


def test_neighborhood_matches_lime_definitions(mnist_nb):
    nb = mnist_nb
    assert nb.num_superpixels == 49 and nb.data.shape == (300, 49)
    assert (nb.data[0] == 1).all() and set(np.unique(nb.data)) == {0, 1}
    k = nb.data.sum(1)
    np.testing.assert_allclose(nb.distances, 1 - np.sqrt(k / 49), atol=1e-12)  # cosine to the all-ones row
    np.testing.assert_allclose(nb.kernel_weights, np.exp(-nb.distances ** 2 / (2 * 0.25 ** 2)), rtol=1e-12)
    np.testing.assert_allclose(nb.predictions.sum(1), 1, atol=1e-5)
    # row i's prediction is the model on h(z_i)
    i = 7
    np.testing.assert_allclose(nb.predictions[i], gu.load_model("mnist_cnn", progress=False).predict_proba(
        nb.perturbed_image(i)[None])[0], atol=1e-6)


def test_explain_lime_equals_the_lime_package(lite0):
    from lime.lime_image import LimeImageExplainer

    image = gu.load_image("chelsea")
    nb = gu.sample_neighborhood(lite0, image, num_samples=40, seed=11)
    label = nb.top_label
    ours = gu.explain_lime(nb, label)
    # lime 0.2.0.1 with an explicit random_state and random_seed, as the book pairs its comparisons
    ref = LimeImageExplainer(random_state=11).explain_instance(
        image, lite0.predict_proba, labels=(label,), top_labels=None, hide_color=0, num_samples=40,
        random_seed=11, batch_size=lite0.resolved_batch_size())
    np.testing.assert_array_equal(ref.segments, nb.segments)
    ref_w = np.zeros(nb.num_superpixels)
    for j, w in ref.local_exp[label]:
        ref_w[j] = w
    np.testing.assert_allclose(ours.coef, ref_w, rtol=1e-10, atol=1e-12)
    assert ours.intercept == pytest.approx(ref.intercept[label])
    assert [j for j, _ in ref.local_exp[label]][:5] == list(ours.ranking[:5])


DETERMINISM_SCRIPT = """
import json, sys, numpy as np, gradlime_utils as gu
b = gu.load_model("mnist_cnn", device="cpu", progress=False)
img = gu.load_binary_dataset("mnist_3_vs_8", split="test")[0][0]
nb = gu.sample_neighborhood(b, img, num_samples=150, seed=5, segmentation="slic", n_segments=20, compactness=0.5)
cam = gu.gradcam(b, img, 0).heatmap
e = gu.explain_gradlime(nb, 0, cam)
print(json.dumps({"coef": e.coef.tolist(), "data": nb.data.sum().item(), "seg": nb.segments.tolist()}))
"""


@pytest.mark.slow
def test_same_seed_gives_the_same_explanation_bit_for_bit_in_a_fresh_process(mnist_bundle):
    runs = [json.loads(subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0] == runs[1]
    img = gu.load_binary_dataset("mnist_3_vs_8", split="test")[0][0]
    nb = gu.sample_neighborhood(mnist_bundle, img, num_samples=150, seed=5, segmentation="slic",
                                n_segments=20, compactness=0.5)
    e = gu.explain_gradlime(nb, 0, gu.gradcam(mnist_bundle, img, 0).heatmap)
    assert e.activation.std() > 0  # a real CAM prior, not the all-ones fallback
    assert e.coef.tolist() == runs[0]["coef"]


def _direct_ridge(nb, design, label):
    clf = Ridge(alpha=1.0, fit_intercept=True)
    clf.fit(design, nb.predictions[:, label], sample_weight=nb.kernel_weights)
    return clf


def test_feature_mode_is_eq9_ridge_on_activation_scaled_codes(mnist_nb):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.05, 1, mnist_nb.num_superpixels)
    a /= a.max()
    exp = gu.explain_gradlime(mnist_nb, 1, a, mode="feature")
    clf = _direct_ridge(mnist_nb, mnist_nb.data * a, 1)
    np.testing.assert_allclose(exp.surrogate_coef, clf.coef_, atol=1e-10)
    np.testing.assert_allclose(exp.coef, a * clf.coef_, atol=1e-10)
    assert exp.intercept == pytest.approx(clf.intercept_)
    assert exp.local_pred == pytest.approx(clf.intercept_ + (a * clf.coef_).sum())
    np.testing.assert_array_equal(exp.ranking[:10], np.argsort(-np.abs(a * clf.coef_), kind="stable")[:10])


def test_feature_mode_equals_generalised_ridge_with_penalty_lambda_over_a_squared(mnist_nb):
    a = np.linspace(0.2, 1, mnist_nb.num_superpixels)
    exp = gu.explain_gradlime(mnist_nb, 0, a, mode="feature")
    # closed form of min sum pi (y - b0 - z.b)^2 + sum b_j^2 / a_j^2 after weighted centring
    pi, Z, y = mnist_nb.kernel_weights, mnist_nb.data.astype(float), mnist_nb.predictions[:, 0]
    zc = Z - np.average(Z, axis=0, weights=pi)
    yc = y - np.average(y, weights=pi)
    b = np.linalg.solve(zc.T @ (pi[:, None] * zc) + np.diag(1 / a ** 2), zc.T @ (pi * yc))
    np.testing.assert_allclose(exp.coef, b, atol=1e-8)


def test_importance_mode_keeps_lime_weights_and_ranks_by_weight_times_activation(mnist_nb):
    a = np.linspace(1, 0.1, mnist_nb.num_superpixels)
    lime = gu.explain_lime(mnist_nb, 1)
    imp = gu.explain_gradlime(mnist_nb, 1, a, mode="importance")
    np.testing.assert_allclose(imp.coef, lime.coef, atol=1e-12)
    np.testing.assert_array_equal(imp.ranking, np.lexsort((np.arange(49), -np.abs(lime.coef) * a)))
    # with a feature budget, the kept superpixels are the top |ridge(0.01) coef| * a ones
    top = gu.explain_gradlime(mnist_nb, 1, a, mode="importance", num_features=5)
    clf = Ridge(alpha=0.01).fit(mnist_nb.data, mnist_nb.predictions[:, 1], sample_weight=mnist_nb.kernel_weights)
    assert set(np.flatnonzero(top.coef)) <= set(np.argsort(-np.abs(clf.coef_) * a)[:5])


def test_none_mode_is_lime(mnist_nb):
    a = np.linspace(1, 0.1, mnist_nb.num_superpixels)
    np.testing.assert_array_equal(gu.explain_gradlime(mnist_nb, 1, a, mode="none").coef,
                                  gu.explain_lime(mnist_nb, 1).coef)


def test_all_zero_cam_falls_back_to_lime_with_a_warning(mnist_nb):
    with pytest.warns(RuntimeWarning, match="falls back"):
        exp = gu.explain_gradlime(mnist_nb, 1, np.zeros(mnist_nb.segments.shape), mode="feature")
    np.testing.assert_array_equal(exp.activation, np.ones(49))
    lime = gu.explain_lime(mnist_nb, 1)
    # a = 1 makes S = Z'; only the feature selection rule differs and all features are kept
    np.testing.assert_allclose(exp.coef, lime.coef, atol=1e-12)


def test_superpixel_activation_is_eq8(mnist_nb):
    cam = np.zeros(mnist_nb.segments.shape)
    cam[:4, :4] = 1.0  # superpixel 0 fully on
    cam[:4, 4:8] = 0.5  # superpixel 1 half
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = gu.superpixel_activation(cam, mnist_nb.segments)
    assert a[0] == 1 and a[1] == 0.5 and a[2:].sum() == 0


def test_masks_and_maps(mnist_nb):
    exp = gu.explain_lime(mnist_nb, 1)
    wm = exp.weight_map()
    assert wm.shape == (28, 28) and wm[0, 0] == exp.coef[0]
    mask = exp.mask(num_features=3, positive_only=True)
    assert set(np.unique(mask)) <= {0, 1} and len(np.unique(mnist_nb.segments[mask == 1])) <= 3
    both = exp.mask(num_features=49, positive_only=False)
    assert (both[exp.coef[mnist_nb.segments] < 0] == -1).all()
    assert exp.overlay(mnist_nb.image, 5).shape == (28, 28, 3)


@pytest.mark.parametrize("segmentation", ["quickshift", "slic", "felzenszwalb", "grid"])
def test_segmentations_give_contiguous_labels(segmentation):
    seg = gu.segment_image(gu.load_image("chelsea", size=96), segmentation)
    assert seg.shape == (96, 96) and seg.min() == 0
    assert np.array_equal(np.unique(seg), np.arange(seg.max() + 1))


def test_bad_inputs(mnist_bundle, digit, mnist_nb):
    with pytest.raises(ValueError, match="num_samples must be >= 2, got 1"):
        gu.sample_neighborhood(mnist_bundle, digit, num_samples=1)
    with pytest.raises(ValueError, match="segmentation must be one of"):
        gu.sample_neighborhood(mnist_bundle, digit, num_samples=10, segmentation="watershed")
    with pytest.raises(ValueError, match="image must be a uint8 H×W×3"):
        gu.sample_neighborhood(mnist_bundle, digit[..., 0], num_samples=10)
    with pytest.raises(ValueError, match="expects 28×28"):
        gu.sample_neighborhood(mnist_bundle, gu.load_image("chelsea", size=32), num_samples=10)
    with pytest.raises(ValueError, match="mode must be one of"):
        gu.explain_gradlime(mnist_nb, 1, np.ones(49), mode="legacy")
    with pytest.raises(ValueError, match=r"label must be an integer in \[0, 2\)"):
        gu.explain_lime(mnist_nb, 2)
    with pytest.raises(ValueError, match="label must be"):
        gu.explain_gradlime(mnist_nb, -1, np.ones(49))
    with pytest.raises(ValueError, match="activation has"):
        gu.explain_gradlime(mnist_nb, 1, np.ones(10))
    with pytest.raises(ValueError, match="cam has shape"):
        gu.explain_gradlime(mnist_nb, 1, np.ones((7, 7)))
    with pytest.raises(ValueError, match="num_features"):
        gu.explain_lime(mnist_nb, 1, num_features=0)
    with pytest.raises(ValueError, match="cell_size"):
        gu.segment_image(digit, "grid", cell_size=0)


@pytest.mark.parametrize("hide_color", [0, None])
def test_neighborhood_is_bit_for_bit_lime_data_labels(mnist_bundle, digit, hide_color):
    from lime.lime_image import LimeImageExplainer

    nb = gu.sample_neighborhood(mnist_bundle, digit, num_samples=57, seed=9, segmentation="grid", cell_size=7,
                                hide_color=hide_color, batch_size=10)
    data, labels = LimeImageExplainer(random_state=9).data_labels(
        digit, nb.fudged_image, nb.segments, mnist_bundle.predict_proba, 57, batch_size=10)
    np.testing.assert_array_equal(nb.data, data)
    np.testing.assert_array_equal(nb.predictions, labels)


def test_the_framework_figure_draws_the_runs_own_intermediate_results(mnist_bundle, mnist_nb, tmp_path):
    """Figure 1 of the GradLIME paper: 11 panels, each from the run (Z', S = Z' diag(a), the weights), saved twice."""
    import matplotlib
    import matplotlib.pyplot as plt

    from gradlime_utils.experiments import ch02_gradlime as gl
    matplotlib.use("Agg")
    label = mnist_nb.top_label
    cam = gu.gradcam(mnist_bundle, mnist_nb.image, label)
    layer, heatmap = next(iter(cam.layer_maps)), cam.heatmap
    a = gu.superpixel_activation(heatmap, mnist_nb.segments)
    feat = gu.explain_gradlime(mnist_nb, label, heatmap, mode="feature")
    fig = gl.plot_framework(mnist_nb, label, layer, cam.layer_maps[layer], heatmap, a, feat, "digit",
                            "G-1", tmp_path / "G-1.png")
    assert len(fig.axes) == 11 and (tmp_path / "G-1.png").stat().st_size and (tmp_path / "G-1.pdf").is_file()
    codes = [ax.images[0].get_array() for ax in fig.axes if ax.get_title() in ("Z' (binary codes)", "S = Z' diag(a)")]
    np.testing.assert_array_equal(codes[0], mnist_nb.data[:30])
    np.testing.assert_allclose(codes[1], mnist_nb.data[:30] * a)
    bars = next(ax for ax in fig.axes if ax.get_title().startswith("g: weighted ridge")).patches
    np.testing.assert_allclose([b.get_height() for b in bars], feat.coef)
    plt.close(fig)
