import numpy as np
import pytest
import sklearn.metrics

import gradlime_utils as gu
from gradlime_utils.methods.lime_heatmap import LimeHeatmap, lime_heatmap
from gradlime_utils.metrics.compare import pixel_order, rank_agreement, top_fraction_mask, top_region_iou
from gradlime_utils.metrics.maps import deletion_insertion, occlusion_sensitivity
from gradlime_utils.experiments import ch07_heatmap as hm
from gradlime_utils.methods.neighborhood import Neighborhood


def region_model(images):
    """p(class 1) = the bright fraction of the top-left 10×10 block R of a 20×20 image."""
    images = np.asarray(images)
    p1 = (images[:, :10, :10, 0] > 128).mean(axis=(1, 2))
    return np.stack([1 - p1, p1], axis=1)


@pytest.fixture
def white():
    return np.full((20, 20, 3), 255, np.uint8)


def region_map():
    heat = np.zeros((20, 20))
    heat[:10, :10] = 1.0
    return heat


def synthetic_neighborhood(n=400, m=6, seed=0):
    """Y[:, 1] depends on superpixel 2 strongly and on superpixel 4 weakly; nothing else matters."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 2, (n, m))
    data[0] = 1
    p1 = 0.1 + 0.6 * data[:, 2] + 0.2 * data[:, 4]
    predictions = np.stack([1 - p1, p1], axis=1)
    distances = sklearn.metrics.pairwise_distances(data, data[:1], metric="cosine").ravel()
    segments = np.tile(np.arange(m), (8, 1))  # 8×m, column j is superpixel j
    kernel = np.sqrt(np.exp(-(distances ** 2) / 0.25 ** 2))
    return Neighborhood(image=np.zeros((8, m, 3), np.uint8), segments=segments,
                        fudged_image=np.zeros((8, m, 3), np.uint8), data=data, predictions=predictions,
                        distances=distances, kernel_weights=kernel, segmentation="grid", seed=seed, hide_color=0,
                        model_name="synthetic")


def test_heatmaps_put_each_superpixels_importance_on_its_pixels_and_find_the_relevant_superpixel():
    nb = synthetic_neighborhood()
    lin = lime_heatmap(nb, 1, "linear")
    np.testing.assert_allclose(lin.importance, gu.explain_lime(nb, 1).coef)
    assert lin.ranking[:2].tolist() == [2, 4]
    assert lin.importance[2] == pytest.approx(0.6, abs=0.05) and lin.importance[4] == pytest.approx(0.2, abs=0.05)
    tree = lime_heatmap(nb, 1, "tree")
    assert (tree.importance >= 0).all() and tree.importance.sum() == pytest.approx(1.0)
    assert tree.ranking[:2].tolist() == [2, 4]
    assert tree.score == pytest.approx(1.0)  # the tree fits a function of two binary features exactly
    for h in (lin, tree):
        np.testing.assert_array_equal(h.heatmap, h.importance[nb.segments])
    shallow = lime_heatmap(nb, 1, "tree", max_depth=1)  # one split: only superpixel 2
    assert shallow.importance[2] == pytest.approx(1.0)


def test_top_region_masks_iou_and_rank_agreement():
    rng = np.random.default_rng(0)
    a = rng.random((10, 10))
    assert top_fraction_mask(a, 0.2).sum() == 20
    assert a[top_fraction_mask(a, 0.2)].min() >= a[~top_fraction_mask(a, 0.2)].max()
    flat = np.zeros((10, 10))
    np.testing.assert_array_equal(np.flatnonzero(top_fraction_mask(flat, 0.05)), np.arange(5))  # ties: raster order
    assert top_region_iou(a, a) == 1.0
    assert top_region_iou(a, -a, 0.2) == 0.0  # top and bottom 20% are disjoint
    assert top_region_iou(a, a + 1e-3 * rng.random((10, 10)), 0.5) > 0.8
    assert rank_agreement(a, 2 * a + 1) == pytest.approx(1.0)
    assert rank_agreement(a, -a) == pytest.approx(-1.0)
    assert np.isnan(rank_agreement(a, flat))
    np.testing.assert_array_equal(pixel_order(np.array([[0.0, 2.0], [1.0, 2.0]])), [1, 3, 2, 0])


def test_deletion_and_insertion_curves_on_a_model_with_a_known_answer(white):
    good = deletion_insertion(region_model, white, region_map(), label=1, steps=20, fill="black")
    f = good.fractions
    np.testing.assert_allclose(good.deletion, 1 - np.minimum(f / 0.25, 1))
    np.testing.assert_allclose(good.insertion, np.minimum(f / 0.25, 1))
    assert good.deletion_auc == pytest.approx(0.125)
    assert good.insertion_auc == pytest.approx(0.875)
    bad = deletion_insertion(region_model, white, 1 - region_map(), label=1, steps=20, fill="black")
    assert bad.deletion_auc == pytest.approx(0.875)
    assert bad.insertion_auc == pytest.approx(0.125)
    # a batch size that does not divide the 21 steps gives the same curves
    odd = deletion_insertion(region_model, white, region_map(), label=1, steps=20, fill="black", batch_size=4)
    np.testing.assert_allclose(odd.deletion, good.deletion)


def test_occluding_the_top_superpixels_vs_random_ones(white):
    segments = gu.segment_image(white, "grid", cell_size=5)  # 16 cells; R holds cells 0, 1, 4, 5
    importance = np.zeros(16)
    importance[[0, 1, 4]] = [3.0, 2.0, 1.0]
    one = occlusion_sensitivity(region_model, white, segments, importance, top_k=1, n_random=12, fill="black")
    assert one.label == 1 and one.p_original == 1.0
    assert one.p_top == pytest.approx(0.75) and not one.flip_top
    assert (one.occluded_top[:5, :5] == 0).all() and (one.occluded_top[5:, :] == 255).all()
    assert one.p_random.shape == (12,) and set(np.round(one.p_random, 2)) <= {0.75, 1.0}
    three = occlusion_sensitivity(region_model, white, segments, importance, top_k=3, n_random=5, fill="black")
    assert three.p_top == pytest.approx(0.25) and three.flip_top and three.label_top == 0
    assert three.drop_top == pytest.approx(0.75) and three.drop_top > three.drop_random
    again = occlusion_sensitivity(region_model, white, segments, importance, top_k=3, n_random=5, fill="black")
    np.testing.assert_array_equal(again.p_random, three.p_random)  # seeded


def test_bad_inputs(white):
    nb = synthetic_neighborhood()
    segments = gu.segment_image(white, "grid", cell_size=5)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        lime_heatmap(nb, 1, "forest")
    with pytest.raises(ValueError, match="label must be"):
        lime_heatmap(nb, 7)
    with pytest.raises(TypeError, match="tree_params"):
        lime_heatmap(nb, 1, "tree", depth=3)
    with pytest.raises(ValueError, match="fraction must be in"):
        top_fraction_mask(region_map(), 0.0)
    with pytest.raises(ValueError, match="b has shape"):
        top_region_iou(region_map(), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="NaN"):
        rank_agreement(region_map(), np.full((20, 20), np.nan))
    with pytest.raises(ValueError, match="steps must be in"):
        deletion_insertion(region_model, white, region_map(), 1, steps=0)
    with pytest.raises(ValueError, match="fill must be"):
        deletion_insertion(region_model, white, region_map(), 1, fill="purple")
    with pytest.raises(ValueError, match="heatmap has shape"):
        deletion_insertion(region_model, white, np.zeros((4, 4)), 1)
    with pytest.raises(ValueError, match="uint8"):
        deletion_insertion(region_model, white.astype(float), region_map(), 1)
    with pytest.raises(ValueError, match="out of range"):
        deletion_insertion(region_model, white, region_map(), 5)
    with pytest.raises(ValueError, match="importance has shape"):
        occlusion_sensitivity(region_model, white, segments, np.zeros(3))
    with pytest.raises(ValueError, match="top_k must be"):
        occlusion_sensitivity(region_model, white, segments, np.zeros(16), top_k=16)
    with pytest.raises(TypeError, match="callable"):
        occlusion_sensitivity("model", white, segments, np.zeros(16))


def test_image_files_lists_a_folder_of_photos_and_rejects_bad_roots(tmp_path):
    from PIL import Image

    (tmp_path / "fish" / "b").mkdir(parents=True)
    for name in ("fish/b/2.png", "fish/1.jpg", "fish/notes.txt"):
        path = tmp_path / name
        if name.endswith("txt"):
            path.write_text("not an image")
        else:
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    files = gu.image_files(tmp_path / "fish")
    assert [p.name for p in files] == ["1.jpg", "2.png"]
    assert len(gu.image_files(tmp_path / "fish", limit=1)) == 1
    assert gu.load_image(files[0], size=16).shape == (16, 16, 3)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        gu.image_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        gu.image_files(tmp_path / "empty")
    with pytest.raises(ValueError, match="limit must be"):
        gu.image_files(tmp_path / "fish", limit=0)


def test_study_frames_index_by_model_and_image_and_group_the_curve_columns():
    methods = hm.HEATMAP_METHODS
    row = {"model": "m", "image": "chelsea", "M": 40, "rho_linear_tree": 0.8, "drop_top": 0.05, "drop_median": 0.01,
           "flips_any": 0, "linear_r2": 0.5, "linear_r2_holdout": 0.4, "tree_r2": 0.8, "tree_r2_holdout": -0.1,
           **{f"top_rank_{n}": 1 for n in ("linear", "tree", "gradcam")}}
    for metric in ("insertion", "deletion"):
        row[f"{metric} null superpixel"] = [0.5, 0.4, 0.6]
        for m in methods:
            row |= {f"{metric} {m}": 0.25, f"{metric} pct superpixel {m}": 0.9, f"{metric} pct smooth {m}": 1.0}
    for n in ("linear", "tree"):
        row |= {f"rho_{n}_gradcam": 0.3, f"rho_{n}_gradcam_p": 0.04, f"iou20_{n}_gradcam": 0.2,
                f"iou20_{n}_gradcam_p": 0.5}
    faith, agree, occl = hm.study_frames([row, row | {"image": "coffee", "insertion Grad-CAM": 0.75}])
    for frame in (faith, agree, occl):
        assert list(frame.index.names) == ["model", "image"] and len(frame) == 2
    assert list(faith.columns.get_level_values(0).unique()) == ["insertion", "deletion"]
    assert faith.loc[("m", "coffee"), ("insertion", "Grad-CAM")] == "0.75 (90/100)"
    assert faith.loc[("m", "chelsea"), ("deletion", "random (superpixel)")] == "0.50 [0.40, 0.60]"


def test_insertion_beyond_random_needs_both_nulls_and_enough_random_maps():
    row = lambda sp, sm, n=99: {"insertion p superpixel LIME linear": sp, "insertion p smooth LIME linear": sm,  # noqa: E731
                                "insertion p superpixel Grad-CAM": 0.5, "insertion p smooth Grad-CAM": 0.01,
                                "n_random": n}
    rows = [row(0.005, 0.005), row(0.005, 0.01), row(0.01, 0.9)]
    # the larger p of the two kinds, Benjamini-Hochberg over the 6 photos × methods: 0.03 and 0.03 pass
    assert hm.insertion_beyond_random(rows) == {"LIME linear": 2, "Grad-CAM": 0}
    assert hm.insertion_resolution(rows)
    assert not hm.insertion_resolution([row(0.09, 0.09, n=10)])  # 10 random maps: p >= 1/11 always


def test_the_chapters_figures_draw_the_example_they_are_given(white, tmp_path):
    """H-1/H-2, the mean curves, H-3 and the threshold slider as package functions, on a hand-made example."""
    import matplotlib
    import matplotlib.pyplot as plt

    from gradlime_utils.metrics.maps import DeletionInsertion, OcclusionScan

    matplotlib.use("Agg")
    segments = np.repeat(np.arange(4), 100).reshape(20, 20)  # four horizontal bands of 5 rows
    lin = LimeHeatmap(1, "linear", np.array([0.5, -0.2, 0.0, 0.1]), segments, 0.9)
    tree = LimeHeatmap(1, "tree", np.array([0.1, 0.3, 0.0, 0.0]), segments, 0.8)
    cam = region_map()
    scan = OcclusionScan(1, 0.8, np.array([0.1, 0.6, 0.0, 0.2]), np.array([1, 0, 1, 1]))
    example = hm.PhotoExample(white, segments, 1, lin, tree, cam, scan)
    fig = hm.plot_examples({("toy", "white"): example}, [("toy", "white")], "H-2", tmp_path / "H-2.png")
    assert [ax.get_title() for ax in fig.axes] == ["white (toy)", "LIME linear", "LIME tree", "Grad-CAM"]
    assert (tmp_path / "H-2.pdf").is_file()

    fig = hm.plot_sensitivity(example, "white", "H-3")
    assert fig.axes[1].get_title() == "most sensitive superpixel blurred: p = 0.20"  # band 1 drops 0.6 of 0.8

    fig = hm.plot_top_regions(example, "white", 25)
    shown = fig.axes[0].images[0].get_array()
    assert (shown[:5] == 255).all() and (shown[5:] == 63).all()  # the linear map's top 25%: band 0
    assert fig.axes[0].get_title() == f"LIME linear, IoU with Grad-CAM {top_region_iou(lin.heatmap, cam, 0.25):.2f}"

    run = DeletionInsertion(np.array([0.0, 0.5, 1.0]), np.array([0.8, 0.4, 0.0]), np.array([0.0, 0.4, 0.8]))
    other = DeletionInsertion(run.fractions, np.array([0.8, 0.8, 0.0]), run.insertion)
    fig = hm.plot_curves({("toy", "a", "Grad-CAM"): run, ("toy", "b", "Grad-CAM"): other,
                          ("toy", "a", "random smooth"): run}, ["Grad-CAM", "random smooth"])
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [1.0, 0.75, 0.0])  # mean of runs / p_full
    assert fig.axes[0].lines[1].get_linestyle() == "--"
    plt.close("all")


def test_photos_study_spends_the_shared_neighbourhood_on_the_first_photo_only(lite0):
    study = dict(n_features=16, num_samples=12, steps=3, n_random=1, n_perm=5, seed=0)
    image = gu.load_image("chelsea", size=lite0.input_size)
    segments = gu.segment_image(image, "slic", n_segments=16)
    hood = gu.sample_neighborhood(lite0, image, num_samples=12, seed=0, segments=segments,
                                  hide_color=image.reshape(-1, 3).mean(axis=0), progress=False)
    records, curves, examples = hm.photos_study(["efficientnet_lite0"], ["chelsea", "coffee"], reuse=(lite0, hood),
                                                progress=False, **study)
    assert [(r["model"], r["image"]) for r in records] == [("efficientnet_lite0", "chelsea"),
                                                           ("efficientnet_lite0", "coffee")]
    assert set(examples) == {("efficientnet_lite0", "chelsea"), ("efficientnet_lite0", "coffee")}
    assert ("efficientnet_lite0", "coffee", "Grad-CAM") in curves
    alone, _, _ = hm.photo_study(lite0, image, neighborhood=hood, **study)
    assert records[0]["insertion LIME linear"] == alone["insertion LIME linear"]
    other = gu.sample_neighborhood(lite0, image, num_samples=12, seed=1, segments=segments,
                                   hide_color=image.reshape(-1, 3).mean(axis=0), progress=False)
    with pytest.raises(ValueError, match="neighborhood was not sampled"):  # proof that it is used, and checked
        hm.photos_study(["efficientnet_lite0"], ["chelsea"], reuse=(lite0, other), progress=False, **study)


def test_photo_study_names_what_it_keeps(lite0):
    """The chapter reads an example by name (`examples[k].scan`), never by position in a tuple."""
    image = gu.load_image("chelsea", size=lite0.input_size)
    row, curves, example = hm.photo_study(lite0, image, num_samples=40, steps=3, n_random=2, n_perm=5)
    assert isinstance(example, hm.PhotoExample)
    assert example.image is image and example.segments.shape == image.shape[:2]
    assert len(example.scan.drops) == example.segments.max() + 1 and example.gradcam.shape == image.shape[:2]
    assert isinstance(example.label, int) and example.linear.heatmap.shape == image.shape[:2]
