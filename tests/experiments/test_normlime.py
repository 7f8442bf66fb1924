import matplotlib.pyplot as plt
import numpy as np
import pytest

import gradlime_utils as gu
from gradlime_utils.experiments import ch06_normlime as nl
from gradlime_utils.experiments.ch06_normlime import keep_top_features
from gradlime_utils.methods.normlime import LocalExplanation, aggregate, grid_feature_ids, normalise_weights


def test_normalisation_by_hand():
    np.testing.assert_allclose(normalise_weights([1, -3]), [1 / 4, 9 / 4])
    np.testing.assert_allclose(normalise_weights([1, -3], "l1"), [0.25, 0.75])
    np.testing.assert_array_equal(normalise_weights([0, 0]), [0, 0])
    with pytest.raises(ValueError, match="rule must be"):
        normalise_weights([1], "l2")


def test_aggregation_on_hand_made_explanations():
    exps = [LocalExplanation(0, np.array([0, 1]), np.array([2.0, -2.0])),   # omega = [1, 1]
            LocalExplanation(0, np.array([1, 2]), np.array([3.0, 1.0])),    # omega = [9/4, 1/4]
            LocalExplanation(1, np.array([2]), np.array([-5.0]))]           # omega = [5]
    result = aggregate(exps, num_features=4)
    np.testing.assert_allclose(result.importance[0], [1.0, (1 + 9 / 4) / 2, 1 / 4, 0.0])
    np.testing.assert_allclose(result.importance[1], [0, 0, 5.0, 0])
    np.testing.assert_array_equal(result.counts[0], [1, 2, 1, 0])
    assert list(result.ranking(0)) == [1, 0, 2, 3]
    with pytest.raises(ValueError, match="feature ids must be in"):
        aggregate([LocalExplanation(0, np.array([4]), np.array([1.0]))], num_features=4)
    with pytest.raises(ValueError, match="differ in shape"):
        aggregate([LocalExplanation(0, np.array([0, 1]), np.array([1.0]))], num_features=4)


def test_grid_features_are_shared_by_every_image():
    a = gu.segment_image(np.zeros((28, 28, 3), np.uint8), "grid", cell_size=4)
    b = gu.segment_image(np.full((28, 28, 3), 255, np.uint8), "grid", cell_size=4)
    np.testing.assert_array_equal(a, b)
    assert a.max() == 48 and a[0, 4] == 1 and a[4, 0] == 7  # row-major cells of 4x4 pixels
    np.testing.assert_array_equal(grid_feature_ids(a), np.arange(49))


def test_keep_top_features():
    seg = gu.segment_image(np.zeros((4, 4, 3), np.uint8), "grid", cell_size=2)  # 4 cells
    images = np.full((2, 4, 4), 9, np.uint8)
    rankings = np.array([[3, 2, 1, 0], [0, 1, 2, 3]])
    kept = keep_top_features(images, seg, rankings, fraction=0.25)
    assert (kept[0, 2:, 2:] == 9).all() and kept[0].sum() == 9 * 4
    assert (kept[1, :2, :2] == 9).all() and kept[1].sum() == 9 * 4
    assert keep_top_features(images, seg, rankings, 1.0).sum() == images.sum()
    with pytest.raises(ValueError, match="fraction must be in"):
        keep_top_features(images, seg, rankings, 0)
    with pytest.raises(ValueError, match="rankings must have shape"):
        keep_top_features(images, seg, rankings[:1], 0.5)


def test_smoothgrad_and_vargrad_maps(mnist_bundle):
    from gradlime_utils.methods.attributions import noise_tunnel_maps

    x = mnist_bundle.preprocess(gu.load_binary_dataset(split="test").images([0, 1]))
    torch_seed = gu.set_seed(0)
    sg = noise_tunnel_maps(mnist_bundle.model, x, [0, 1], "smoothgrad", nt_samples=8)
    vg = noise_tunnel_maps(mnist_bundle.model, x, [0, 1], "vargrad", nt_samples=8)
    assert sg.shape == vg.shape == (2, 28, 28) and sg.sum() > 0 and vg.sum() > 0 and torch_seed == 0
    assert not np.allclose(sg.numpy(), vg.numpy())
    with pytest.raises(ValueError, match="kind must be one of"):
        noise_tunnel_maps(mnist_bundle.model, x, [0, 1], "integrated")


def test_one_ranking_rule_largest_first_ties_in_index_order():
    import numpy as np

    from gradlime_utils.validation import ranking

    assert ranking([0.2, 0.5, 0.2, -1.0, 0.5]).tolist() == [1, 4, 0, 2, 3]
    assert ranking([np.nan, 1.0, 0.0]).tolist() == [1, 2, 0]  # NaN last, as numpy sorts it


def test_kar_plot_and_the_rankings_above_random(tmp_path):
    kar = {"NormLIME": np.array([[0.8, 0.82], [0.9, 0.91]]), "ink": np.array([[0.6, 0.62], [0.9, 0.92]]),
           "random": np.array([[0.5, 0.7, 0.6], [0.85, 0.95, 0.9]])}
    fig = nl.plot_kar(kar, [0.1, 0.2], "KAR", tmp_path / "kar.png")
    assert (tmp_path / "kar.png").stat().st_size > 0 and (tmp_path / "kar.pdf").stat().st_size > 0
    assert len(fig.axes[0].containers) == 3
    plt.close(fig)
    rows = nl.kar_comparison(kar, [0.1, 0.2], reference="ink")
    # three random rankings cannot give a p-value of 0.05 or less: undecided, never "above"
    assert [nl.above_random(r, ("NormLIME", "ink")) for r in rows] == [[], []]
    assert rows[0]["NormLIME vs random"] == "undecided"
    assert rows[0]["differences"][0]["reference"] == "ink" and rows[0]["differences"][0]["difference"] == \
        pytest.approx(0.2)
    # with 99 random rankings a ranking above all of them is "above" (p = 0.01, 0.04 after BH over 4), one among
    # them is not
    rng = np.random.default_rng(0)
    kar["random"] = np.stack([rng.uniform(0.5, 0.7, 99), rng.uniform(0.85, 0.95, 99)])
    rows = nl.kar_comparison(kar, [0.1, 0.2], reference="ink")
    assert [nl.above_random(r, ("NormLIME", "ink")) for r in rows] == [["NormLIME"], []]
    assert "NormLIME ▲" not in nl.kar_frame(rows).iloc[1]["NormLIME"] and "▲" in nl.kar_frame(rows).iloc[0]["NormLIME"]


def test_explain_digits_is_lime_on_seeded_draws_of_each_class(mnist_bundle):
    """The chapter's explanation set: per class the seeded draw, LIME with seed + k, the model's top class."""
    from gradlime_utils.experiments.ch06_normlime import explain_digits

    x, y = gu.mnist_arrays((3, 8), "train")
    segments = gu.segment_image(np.repeat(x[0][..., None], 3, axis=-1), "grid", cell_size=7)
    local, first = explain_digits(mnist_bundle, x, y, 2, 40, segments, classes=(0, 1), seed=5)
    rng = np.random.default_rng(5)
    chosen = np.concatenate([rng.choice(np.flatnonzero(y == d), 2, replace=False) for d in (0, 1)])
    assert len(local) == 4 and all(len(e.weights) == 16 for e in local)
    hood = gu.sample_neighborhood(mnist_bundle, np.repeat(x[chosen[3]][..., None], 3, axis=-1), num_samples=40,
                                  seed=5 + 3, segments=segments, segmentation="grid", progress=False)
    np.testing.assert_array_equal(local[3].weights, gu.explain_lime(hood, hood.top_label).coef)
    assert local[3].label == hood.top_label and first[local[0].label][0] == chosen[0]


def test_kar_random_retrains_each_random_ranking_with_its_own_seed():
    from gradlime_utils.experiments.ch06_normlime import kar_accuracy, kar_random

    x, y = gu.mnist_arrays((3, 8), "train")
    xt, yt = gu.mnist_arrays((3, 8), "test")
    data = (x[:40], y[:40], xt[:20], yt[:20], gu.segment_image(np.zeros((28, 28, 3), np.uint8), "grid",
                                                            cell_size=7))
    null = kar_random(*data, [0.5], seeds=[0, 1], epochs=1, n_random=2, seed=3, num_classes=2)
    assert null.shape == (1, 2)
    second = kar_accuracy(*data, np.random.default_rng([3, 1]).permutation(16), [0.5], [1 + 100], 1, 2)
    assert null[0, 1] == second[0, 0]
    with pytest.raises(ValueError, match="n_random"):
        kar_random(*data, [0.5], seeds=[0], n_random=0)


def test_the_slider_shows_the_classes_top_cells_and_nothing_else():
    norm = aggregate([LocalExplanation(0, np.array([0, 1]), np.array([2.0, -2.0])),
                      LocalExplanation(0, np.array([1, 2]), np.array([3.0, 1.0]))], num_features=4)
    segments = np.repeat(np.arange(4), 4).reshape(4, 4)  # row r is feature r
    fig = nl.plot_top_cells(norm, np.ones((4, 4)), segments, 0, 2)
    overlay = fig.axes[1].images[1].get_array()
    np.testing.assert_allclose(overlay[:, 0], [1.0, (1 + 9 / 4) / 2, 0, 0])  # features 1 and 0 kept, 2 dropped
    assert fig.axes[1].get_title() == "NormLIME top 2 cells"
    plt.close(fig)
