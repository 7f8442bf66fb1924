"""GAD's evaluation: convex hulls of attribution maps, relative complexity (RC) and sensitivity (RS)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.morphology import convex_hull_image

from gradlime_utils.data.models import ModelBundle
from gradlime_utils.validation import check_choice, check_finite

HULL_RULES = ("top_fraction", "fraction_of_max")
# "non-zero" in the tables' rule: above this fraction of the map's maximum (float noise, e.g. the 1e-9 a GAD min
# map keeps where one model is almost zero, is not importance). Exact zeros (Gradient × Input and IG on pixels
# equal to the black reference) are never hull points.
NONZERO_TOLERANCE = 1e-6
# raw uint8 value pasted into occluded pixels for RS; the GAD author occludes with black
OCCLUSIONS = {"black": 0, "grey": 128}


@dataclass
class Hull:
    """The rasterised convex hull of an attribution map's most important pixels.

    ``area`` is the number of pixels of ``mask`` (interior and boundary), the one area RC and RS both use.
    ``defined`` is False when fewer than 3 non-collinear points were kept (area 0).
    """

    mask: np.ndarray
    points: np.ndarray
    defined: bool

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def hull_points(attribution: np.ndarray, keep: float = 0.5, rule: str = "top_fraction",
                tolerance: float = NONZERO_TOLERANCE) -> np.ndarray:
    """Boolean map of the pixels the hull is built on (the one hull-point rule of the package).

    ``"top_fraction"`` (GAD §6, "retaining only the most important half"): the top ``keep`` fraction of the
    non-zero pixels, at or above the (1 - keep) quantile of the values above ``tolerance`` × max.
    ``"fraction_of_max"`` (GAD Figure 4): pixels above ``keep`` times the max (keep = 0.1 in the figure).
    """
    attribution = check_finite("attribution", np.asarray(attribution, dtype=float))
    if attribution.ndim != 2:
        raise ValueError(f"attribution must be a 2-D map, got shape {attribution.shape}")
    if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    rule = check_choice("rule", rule, HULL_RULES)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    peak = attribution.max()
    if peak <= 0:
        return np.zeros(attribution.shape, dtype=bool)
    if rule == "top_fraction":
        nonzero = attribution[attribution > tolerance * peak]
        return attribution >= np.quantile(nonzero, 1 - keep)
    return attribution > keep * peak


def share_on_object(points: np.ndarray, objects: np.ndarray) -> float:
    """Fraction of the hull points (a boolean H×W map) that lie on the object mask; NaN without points."""
    points = np.asarray(points, dtype=bool)
    objects = np.asarray(objects, dtype=bool)
    if points.shape != objects.shape:
        raise ValueError(f"points and objects must have the same shape, got {points.shape} and {objects.shape}")
    n = points.sum()
    return float((points & objects).sum() / n) if n else float("nan")


def convex_hull_mask(attribution: np.ndarray, keep: float = 0.5, rule: str = "top_fraction",
                     tolerance: float = NONZERO_TOLERANCE) -> Hull:
    """Convex hull of :func:`hull_points`, rasterised (``skimage.morphology.convex_hull_image``)."""
    points = hull_points(attribution, keep, rule, tolerance)
    coords = np.argwhere(points)
    if len(coords) < 3 or np.linalg.matrix_rank(coords - coords.mean(axis=0)) < 2:
        return Hull(mask=np.zeros(points.shape, dtype=bool), points=points, defined=False)
    return Hull(mask=convex_hull_image(points), points=points, defined=True)


def _area(hull) -> int:
    return hull.area if isinstance(hull, Hull) else int(np.asarray(hull, dtype=bool).sum())


def relative_complexity(gad_hull, orig_hull) -> float:
    """GAD Eq. 1: RC = A(CH_GAD) / A(CH_orig); < 1 means GAD's region is smaller. NaN when undefined.

    Both are :class:`Hull` objects or boolean masks of one shape (a float map is not a hull: pass
    ``convex_hull_mask(map)``).
    """
    for name, hull in (("gad_hull", gad_hull), ("orig_hull", orig_hull)):
        if not isinstance(hull, Hull) and np.asarray(hull).dtype != bool:
            raise ValueError(f"{name} must be a Hull or a boolean mask, got an array of {np.asarray(hull).dtype}")
    shapes = [h.mask.shape if isinstance(h, Hull) else np.shape(h) for h in (gad_hull, orig_hull)]
    if shapes[0] != shapes[1]:
        raise ValueError(f"gad_hull and orig_hull must have the same shape, got {shapes[0]} and {shapes[1]}")
    a_gad, a_orig = _area(gad_hull), _area(orig_hull)
    if a_gad == 0 or a_orig == 0:
        return float("nan")
    return a_gad / a_orig


def supplementary_mask(orig_hull, gad_hull) -> np.ndarray:
    """Sup = M_orig - M_GAD clipped to {0, 1}: the original region GAD discarded."""
    orig = orig_hull.mask if isinstance(orig_hull, Hull) else np.asarray(orig_hull, dtype=bool)
    gad = gad_hull.mask if isinstance(gad_hull, Hull) else np.asarray(gad_hull, dtype=bool)
    return orig & ~gad


def relative_sensitivity(bundle: ModelBundle, images: np.ndarray, masks: np.ndarray, targets,
                         occlusion: str = "black") -> np.ndarray:
    """GAD Eq. 2: ``RS = |N_a(I) - N_a(I ⊙ (1 - M))| / sum(M)``, per image.

    N_a is the *logit* of class a of the original network; the masked pixels are set to ``occlusion``
    (:data:`OCCLUSIONS`: "black", the GAD author's choice, or mid-"grey") in raw pixel space before
    normalisation. Empty masks give NaN (reported separately, never dropped silently).
    """
    occlusion = check_choice("occlusion", occlusion, OCCLUSIONS)
    images = np.asarray(images)
    masks = np.asarray(masks, dtype=bool)
    if images.ndim == 3:
        images, masks = images[None], masks[None]
    if masks.shape != images.shape[:3]:
        raise ValueError(f"masks must have shape {images.shape[:3]} (one H×W mask per image), got {masks.shape}")
    targets = np.broadcast_to(np.asarray(targets), (len(images),)).astype(int)
    if not np.isin(targets, np.arange(bundle.num_classes)).all():
        raise ValueError(f"targets must be class indices of {bundle.name}, got {np.unique(targets).tolist()}")
    occluded = images.copy()
    occluded[masks] = OCCLUSIONS[occlusion]
    both = bundle.predict_logits(np.concatenate([images, occluded]))
    rows = np.arange(len(images))
    change = np.abs(both[: len(images)][rows, targets] - both[len(images):][rows, targets])
    area = masks.reshape(len(masks), -1).sum(axis=1)
    return np.where(area > 0, change / np.maximum(area, 1), np.nan)
