"""Local surrogates on a shared neighbourhood: LIME, and GradLIME's Grad-CAM-weighted variants.

GradLIME (Zhao, Liu, Hei) multiplies LIME's binary codes by a per-superpixel Grad-CAM activation a
(Eq. 8) before the weighted ridge fit (Eq. 9, ``mode="feature"``). With b_j = a_j w_j, that fit is a
ridge on the binary codes whose penalty on superpixel j is lambda / a_j**2: weakly activated superpixels
are shrunk towards zero, and a_j = 0 forces b_j = 0.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from skimage.segmentation import mark_boundaries

from gradlime_utils.methods.neighborhood import Neighborhood
from gradlime_utils.validation import as_heatmap, check_choice, check_int, check_label, ranking

MODES = ("feature", "importance", "none")


@dataclass
class SurrogateExplanation:
    """One fitted surrogate for one label.

    ``coef`` is each superpixel's effect on the explained class probability (b = a * w for
    ``mode="feature"``, the ridge weights otherwise), zero where a superpixel was not selected;
    ``surrogate_coef`` the ridge's own weights on its design matrix.
    """

    label: int
    mode: str
    coef: np.ndarray
    surrogate_coef: np.ndarray
    intercept: float
    score: float
    local_pred: float
    activation: np.ndarray | None
    segments: np.ndarray
    importance: np.ndarray

    @property
    def ranking(self) -> np.ndarray:
        """Superpixel ids by decreasing importance (ties broken by id)."""
        return ranking(self.importance)

    def weight_map(self) -> np.ndarray:
        """Per-pixel map: each pixel carries its superpixel's ``coef``."""
        return self.coef[self.segments]

    def top_superpixels(self, num_features: int = 5, positive_only: bool = True) -> np.ndarray:
        """The ``num_features`` most important superpixels (only those with coef > 0 if ``positive_only``)."""
        if num_features < 0:
            raise ValueError(f"num_features must be >= 0, got {num_features}")
        ids = [j for j in self.ranking if self.importance[j] > 0 and (not positive_only or self.coef[j] > 0)]
        return np.asarray(ids[:num_features], dtype=int)

    def mask(self, num_features: int = 5, positive_only: bool = True) -> np.ndarray:
        """H×W int mask as lime's ``get_image_and_mask``: +1 / -1 for the top superpixels by sign."""
        chosen = self.top_superpixels(num_features, positive_only)
        sign = np.zeros_like(self.coef, dtype=int)
        sign[chosen] = np.where(self.coef[chosen] > 0, 1, -1)
        return sign[self.segments]

    def overlay(self, image: np.ndarray, num_features: int = 5, positive_only: bool = False) -> np.ndarray:
        """lime's both-sign visualisation: green tint on positive, red on negative superpixels, with boundaries."""
        mask = self.mask(num_features, positive_only)
        tinted = image.copy()
        tinted[mask == 1, 1] = 255
        tinted[mask == -1, 0] = 255
        return mark_boundaries(tinted / 255.0, mask != 0)


def _check_label(neighborhood: Neighborhood, label: int) -> int:
    return check_label(label, neighborhood.predictions.shape[1])


def _lime_base():
    from lime.lime_image import LimeImageExplainer  # lazy: heavy import

    return LimeImageExplainer(kernel_width=0.25).base


def _fit(neighborhood: Neighborhood, design: np.ndarray, label: int, num_features: int,
         feature_selection: str) -> tuple[float, np.ndarray, float, float]:
    """lime's own weighted-ridge fit (``LimeBase.explain_instance_with_data``) on ``design``."""
    intercept, local_exp, score, local_pred = _lime_base().explain_instance_with_data(
        design, neighborhood.predictions, neighborhood.distances, label, num_features,
        feature_selection=feature_selection)
    w = np.zeros(design.shape[1])
    for j, weight in local_exp:
        w[j] = weight
    return float(intercept), w, float(score), float(np.ravel(local_pred)[0])


def _check_num_features(neighborhood: Neighborhood, num_features: int | None) -> int:
    if num_features is None:
        return neighborhood.num_superpixels
    num_features = check_int("num_features", num_features, low=1)
    return int(num_features)


def explain_lime(neighborhood: Neighborhood, label: int, num_features: int | None = None) -> SurrogateExplanation:
    """Plain LIME on the shared neighbourhood (lime's 'auto' selection, Ridge alpha=1)."""
    label = _check_label(neighborhood, label)
    k = _check_num_features(neighborhood, num_features)
    intercept, w, score, local_pred = _fit(neighborhood, neighborhood.data, label, k, "auto")
    return SurrogateExplanation(label=label, mode="none", coef=w, surrogate_coef=w.copy(), intercept=intercept,
                                score=score, local_pred=local_pred, activation=None,
                                segments=neighborhood.segments, importance=np.abs(w))


def superpixel_means(values: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The mean of a per-pixel map over each superpixel of ``segments`` (0 for an empty label)."""
    segments = np.asarray(segments)
    values = np.asarray(values, dtype=float)
    if values.shape != segments.shape:
        raise ValueError(f"the map has shape {values.shape} but the segments {segments.shape}")
    m = int(segments.max()) + 1
    counts = np.bincount(segments.ravel(), minlength=m)
    return np.bincount(segments.ravel(), weights=values.ravel(), minlength=m) / np.maximum(counts, 1)


def superpixel_activation(cam: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """GradLIME's Eq. 8: mean Grad-CAM value per superpixel, divided by the largest.

    A CAM that is zero (or negative) on every superpixel carries no information; the activation then
    falls back to all ones, so GradLIME reduces to LIME, with a warning.
    """
    cam = as_heatmap(cam, "cam")
    if cam.shape != segments.shape:
        raise ValueError(f"cam has shape {cam.shape} but the segments {segments.shape}; resize the CAM to the image")
    a = superpixel_means(cam, segments)
    m = len(a)
    if a.max() <= 0:
        warnings.warn("Grad-CAM is zero on every superpixel; GradLIME falls back to a = 1 (plain LIME)",
                      RuntimeWarning, stacklevel=2)
        return np.ones(m)
    return np.clip(a, 0, None) / a.max()


def explain_gradlime(neighborhood: Neighborhood, label: int, cam: np.ndarray, mode: str = "feature",
                     num_features: int | None = None) -> SurrogateExplanation:
    """GradLIME on the shared neighbourhood.

    ``mode="feature"``: Eq. 9, the weighted ridge (alpha 1) on S = Z' diag(a); ``coef`` = b = a * w.
    ``mode="importance"``: the repository's v2 default: LIME's fit on Z', superpixels ranked by ``|b| * a``.
    ``mode="none"``: plain LIME.
    ``cam`` is an H×W Grad-CAM map (see :func:`gradlime_utils.methods.gradcam`) or a per-superpixel vector a.
    """
    mode = check_choice("mode", mode, MODES)
    label = _check_label(neighborhood, label)
    cam = as_heatmap(cam, "cam")  # a GradCamResult is accepted for its .heatmap
    a = cam if cam.ndim == 1 else superpixel_activation(cam, neighborhood.segments)
    if a.shape != (neighborhood.num_superpixels,):
        raise ValueError(f"activation has {a.shape} entries, the neighbourhood {neighborhood.num_superpixels} superpixels")
    if mode == "none":
        exp = explain_lime(neighborhood, label, num_features)
        exp.activation = a
        return exp
    k = _check_num_features(neighborhood, num_features)
    if mode == "feature":
        # GradLIME v2 uses highest-weights selection whenever a CAM is given.
        intercept, w, score, local_pred = _fit(neighborhood, neighborhood.data * a[None, :], label, k,
                                               "highest_weights")
        b = a * w
        importance = np.abs(b)
    else:  # importance
        selected = _select_by_importance(neighborhood, label, a, k)
        intercept, w_sel, score, local_pred = _fit(neighborhood, neighborhood.data[:, selected], label,
                                                   len(selected), "none")
        w = np.zeros(neighborhood.num_superpixels)
        w[selected] = w_sel
        b = w
        importance = np.abs(w) * a
    return SurrogateExplanation(label=label, mode=mode, coef=b, surrogate_coef=w, intercept=intercept,
                                score=score, local_pred=local_pred, activation=a,
                                segments=neighborhood.segments, importance=importance)


def _select_by_importance(neighborhood: Neighborhood, label: int, a: np.ndarray, k: int) -> np.ndarray:
    """Top-k superpixels by |coef| * a of a Ridge(alpha=0.01) on Z' (lime's highest-weights score times a)."""
    m = neighborhood.num_superpixels
    if k >= m:
        return np.arange(m)
    from sklearn.linear_model import Ridge  # lazy: heavy import

    clf = Ridge(alpha=0.01, fit_intercept=True, random_state=None)
    clf.fit(neighborhood.data, neighborhood.predictions[:, label], sample_weight=neighborhood.kernel_weights)
    score = np.abs(clf.coef_) * a
    return np.sort(np.argsort(-score, kind="stable")[:k])
