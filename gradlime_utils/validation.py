"""Checks at the package's public boundaries: every message names the parameter and the value it got.

Errors are ``ValueError`` (a bad value) or ``TypeError`` (a value of the wrong kind), raised from the caller's
frame, e.g. ``seed must be a non-negative integer, got -1``.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool) in [low, high]; returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (("a positive integer" if low == 1 else f">= {low}") if high is None
                  else f"in [{low}, {high}]" if low is not None else f"<= {high}")
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed for NumPy and torch, the one seed rule of the package: an integer (``TypeError`` otherwise, a bool
    included) in [0, 2**32) (``ValueError`` otherwise: NumPy's generators take no larger seed)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer below 2**32, got {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be a non-negative integer below 2**32, got {seed!r}")
    return int(seed)


def derive_seed(seed: Any, offset: int) -> int:
    """A second stream's seed, ``seed + offset`` wrapped into [0, 2**32): every seed below 2**32 stays valid for
    the streams derived from it (``seed = 2**32 - 1`` with offset 1 gives 0, never a seed NumPy refuses)."""
    return (check_seed(seed) + int(offset)) % 2**32


def check_probability(name: str, value: Any) -> float:
    """A number strictly between 0 and 1 (a level, a power, an alpha): ``TypeError`` for another kind (a bool
    included), ``ValueError`` outside (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (float, int, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r}")
    if not 0 < value < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices) -> Any:
    """The choice equal to ``value`` (so ``numpy.str_("lime")`` comes back as ``"lime"``); the message lists them.

    ``True`` never stands in for ``1``, nor a number for a string: only values of one kind compare.
    """
    choices = tuple(choices)
    for c in choices:
        same_kind = isinstance(value, bool) == isinstance(c, bool) and isinstance(value, str) == isinstance(c, str)
        if same_kind and np.ndim(value) == 0 and value == c:
            return c
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_label(label: Any, n_classes: int, name: str = "label") -> int:
    """A class index in [0, n_classes)."""
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
        raise ValueError(f"{name} must be an integer in [0, {n_classes}), got {label!r}")
    return int(label)


def check_rgb_image(image: Any, name: str = "image") -> np.ndarray:
    """``image`` as an array, checked to be uint8 H×W×3 (what LIME's perturbations are rendered from)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 H×W×3 array, got shape {image.shape} and dtype {image.dtype}")
    return image


def _kind_name(value: Any) -> str:
    return {bool: "True or False", int: "an integer", float: "a number", str: "text", list: "a list",
            tuple: "a list", dict: "a dict"}.get(type(value), type(value).__name__)


def check_like(name: str, value: Any, example: Any, allow_none: bool = False) -> Any:
    """``value`` of the kind of ``example`` (a parameter's default or its profile's value): an integer where the
    example is one (and >= 1 where it is a positive count), a finite number where it is a float, a list where it
    is a list or tuple, text where it is text; ``TypeError`` (``ValueError`` for a count below 1 or a non-finite
    number) naming the parameter otherwise. ``None`` passes only with ``allow_none``."""
    if value is None:
        if allow_none:
            return value
        raise TypeError(f"{name} must be {_kind_name(example)} like {example!r}, got None")
    if isinstance(example, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(example, bool)
    elif isinstance(example, (int, np.integer)):
        ok = isinstance(value, (int, np.integer))
        if ok and example >= 1 and value < 1:
            raise ValueError(f"{name} must be a positive integer like {example!r}, got {value!r}")
    elif isinstance(example, (float, np.floating)):
        ok = isinstance(value, (int, float, np.integer, np.floating))
        if ok and not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    elif isinstance(example, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, type(example))
    if not ok:
        raise TypeError(f"{name} must be {_kind_name(example)} like {example!r}, got {_kind_name(value)} "
                        f"{value!r}")
    return value


def check_finite(name: str, array: Any) -> np.ndarray:
    """A numeric array with no NaN or infinite value."""
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got an array of {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite value(s)")
    return arr


def check_hide_color(hide_color: Any):
    """LIME's hiding colour: None (each superpixel's mean), one 0-255 value, or an (R, G, B) triple of them."""
    if hide_color is None:
        return None
    values = np.asarray(hide_color)
    if values.dtype.kind not in "biuf" or values.shape not in ((), (3,)) or not np.isfinite(values).all() \
            or (values < 0).any() or (values > 255).any():
        raise ValueError(f"hide_color must be None, a value in 0..255 or an (R, G, B) triple of them, "
                         f"got {hide_color!r}")
    return hide_color


def check_segments(segments: Any, shape: tuple, name: str = "segments") -> np.ndarray:
    """An integer label map of the image's height and width."""
    seg = np.asarray(segments)
    if seg.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer label map, got dtype {seg.dtype}")
    if seg.shape != tuple(shape):
        raise ValueError(f"{name} has shape {seg.shape}, the image {tuple(shape)}")
    if seg.size and seg.min() < 0:
        raise ValueError(f"{name} labels must be >= 0, got {seg.min()}")
    return seg


def as_heatmap(value: Any, name: str = "heatmap") -> np.ndarray:
    """A 2-D map; a result object carrying ``.heatmap`` (e.g. :class:`GradCamResult`) is accepted for it."""
    value = getattr(value, "heatmap", value)
    return check_finite(name, np.asarray(value, dtype=float))


def ranking(values) -> np.ndarray:
    """Indices of ``values`` from the largest to the smallest, ties in index order (the one ranking rule of the
    package: LIME's superpixels, NormLIME's features, heat-map superpixels)."""
    return np.argsort(-np.asarray(values, dtype=float), kind="stable")
