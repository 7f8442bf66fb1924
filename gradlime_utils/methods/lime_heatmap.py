"""LIME heat maps (Farhood, Najafi, Saberi) and their comparison with Grad-CAM.

A LIME heat map gives every pixel the importance of the superpixel it belongs to (MATLAB's ``imageLIME``
``scoreMap``). Two surrogates fit the same neighbourhood: the weighted ridge of LIME
(``"linear"``: signed weights) and a weighted regression tree (``"tree"``, MATLAB's default: impurity-based
feature importances, never negative). The comparison tools (rank agreement, top-region IoU, occlusion of the
top superpixel, deletion and insertion curves) work on any per-pixel map, so Grad-CAM goes through the same code
(:mod:`gradlime_utils.metrics.maps`); chapter 07's study is :mod:`gradlime_utils.experiments.ch07_heatmap`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import r2_score

from gradlime_utils.methods.neighborhood import Neighborhood
from gradlime_utils.methods.surrogate import explain_lime
from gradlime_utils.validation import check_choice, check_label, ranking


SURROGATES = ("linear", "tree")


@dataclass
class LimeHeatmap:
    """One LIME heat map: per-superpixel ``importance`` and the per-pixel ``heatmap`` built from it."""

    label: int
    surrogate: str
    importance: np.ndarray
    segments: np.ndarray
    score: float

    @property
    def heatmap(self) -> np.ndarray:
        """H×W map: each pixel carries its superpixel's importance."""
        return self.importance[self.segments]

    @property
    def ranking(self) -> np.ndarray:
        """Superpixel ids by decreasing importance (ties broken by id)."""
        return ranking(self.importance)


def lime_heatmap(neighborhood: Neighborhood, label: int, surrogate: str = "linear", seed: int = 0,
                 **tree_params) -> LimeHeatmap:
    """The LIME heat map of ``label`` from a sampled neighbourhood.

    ``surrogate="linear"``: lime's weighted ridge on every superpixel; importance = the signed weight.
    ``surrogate="tree"``: ``sklearn.tree.DecisionTreeRegressor`` fitted on Z' with LIME's kernel weights as
    sample weights (``tree_params`` are passed to it, ``random_state=seed``); importance = the tree's
    ``feature_importances_``, the weighted impurity decrease each superpixel accounts for (non-negative,
    summing to 1 unless the tree has no split). ``score`` is the surrogate's weighted R^2 on the neighbourhood.
    """
    from sklearn.tree import DecisionTreeRegressor  # lazy: heavy import

    surrogate = check_choice("surrogate", surrogate, SURROGATES)
    label = check_label(label, neighborhood.predictions.shape[1])
    if surrogate == "linear":
        exp = explain_lime(neighborhood, label)
        return LimeHeatmap(label=label, surrogate=surrogate, importance=exp.coef, segments=neighborhood.segments,
                           score=exp.score)
    y = neighborhood.predictions[:, label]
    try:
        tree = DecisionTreeRegressor(random_state=seed, **tree_params)
    except TypeError as exc:
        raise TypeError(f"invalid tree_params {sorted(tree_params)}: {exc}") from exc
    tree.fit(neighborhood.data, y, sample_weight=neighborhood.kernel_weights)
    # splits that only fit float round-off can carry importances of -1e-17: clip them to zero
    importance = np.clip(tree.feature_importances_.astype(float), 0, None)
    return LimeHeatmap(label=label, surrogate=surrogate, importance=importance,
                       segments=neighborhood.segments,
                       score=float(tree.score(neighborhood.data, y, sample_weight=neighborhood.kernel_weights)))


def holdout_r2(neighborhood: Neighborhood, label: int, surrogate: str = "linear", test_fraction: float = 0.25,
               seed: int = 0, **tree_params) -> float:
    """Weighted R² of a surrogate on held-out rows of the neighbourhood (fitted on the rest).

    An unpruned tree fits its own samples almost perfectly, so its in-sample R² says nothing; out of sample the
    two surrogates can be compared.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    label = check_label(label, neighborhood.predictions.shape[1])
    n = neighborhood.num_samples
    rng = np.random.default_rng(seed)
    test = np.zeros(n, bool)
    test[rng.choice(np.arange(1, n), size=max(1, int(round(test_fraction * n))), replace=False)] = True
    fields = ("data", "predictions", "distances", "kernel_weights")
    train = replace(neighborhood, **{f: getattr(neighborhood, f)[~test] for f in fields})
    x, y, w = neighborhood.data[test], neighborhood.predictions[test, label], neighborhood.kernel_weights[test]
    if surrogate == "linear":
        exp = explain_lime(train, label)
        pred = exp.intercept + x @ exp.surrogate_coef
    else:
        from sklearn.tree import DecisionTreeRegressor  # lazy: heavy import

        tree = DecisionTreeRegressor(random_state=seed, **tree_params).fit(
            train.data, train.predictions[:, label], sample_weight=train.kernel_weights)
        pred = tree.predict(x)
    return float(r2_score(y, pred, sample_weight=w))
