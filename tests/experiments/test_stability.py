import numpy as np
import pytest

import gradlime_utils as gu
from gradlime_utils.experiments.ch01_lime import jaccard, mean_pairwise_jaccard, mean_pairwise_spearman


def test_jaccard_by_hand():
    assert jaccard([1, 2, 3], [2, 3, 4]) == 0.5
    assert jaccard([], []) == 1.0
    assert mean_pairwise_jaccard([[1, 2], [1, 2], [3, 4]]) == pytest.approx((1 + 0 + 0) / 3)
    assert mean_pairwise_spearman([np.array([1, 2, 3]), np.array([3, 2, 1])]) == pytest.approx(-1)
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise_jaccard([[1]])


def test_stability_rises_to_one_for_identical_neighbourhoods_and_is_lower_across_seeds(mnist_bundle):
    img = gu.load_binary_dataset("mnist_3_vs_8", split="test")[0][0]
    seg = gu.segment_image(img, "grid", cell_size=7)
    same = [gu.sample_neighborhood(mnist_bundle, img, 120, seed=1, segments=seg) for _ in range(2)]
    curve = gu.stability_curve(same, 0, [40, 120], k=3)
    np.testing.assert_array_equal(curve.jaccard, [1, 1])
    different = [gu.sample_neighborhood(mnist_bundle, img, 120, seed=s, segments=seg) for s in (1, 2, 3)]
    curve = gu.stability_curve(different, 0, [10, 120], k=3)
    assert curve.num_seeds == 3 and curve.jaccard.shape == (2,) and (curve.jaccard <= 1).all()
    assert curve.spearman[-1] > curve.spearman[0]  # more samples, more agreement
    with pytest.raises(ValueError, match="share one segmentation"):
        other = gu.sample_neighborhood(mnist_bundle, img, 30, seed=1, segmentation="grid", cell_size=4)
        gu.stability_curve([different[0], other], 0, [10])
    with pytest.raises(ValueError, match="at least two seeds"):
        gu.stability_curve(different[:1], 0, [10])
    with pytest.raises(ValueError, match="n must be in"):
        different[0].head(500)
