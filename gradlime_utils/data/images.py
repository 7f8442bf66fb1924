"""Loading the photos the book explains, resized the way the papers do."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gradlime_utils.validation import check_choice, check_int

#: Colour or greyscale photographs shipped inside scikit-image (no download needed).
SAMPLE_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "cat", "camera", "coins", "moon",
                 "horse", "page", "immunohistochemistry", "hubble_deep_field", "colorwheel",
                 "logo", "motorcycle_left", "motorcycle_right", "retina", "eagle")

RESIZE_MODES = ("crop", "squash")


def _sample_image(name: str) -> np.ndarray:
    import skimage.data  # lazy: heavy import

    try:
        fn = getattr(skimage.data, name)
        return np.asarray(fn())
    except Exception as exc:  # noqa: BLE001 - some samples need pooch/network
        raise ValueError(f"could not load scikit-image sample {name!r}: {exc}") from exc


def to_rgb_uint8(array: np.ndarray, source: object = "array") -> np.ndarray:
    """Convert an H×W, H×W×1, H×W×3 or H×W×4 image (uint8, bool or float in [0, 1]) to uint8 RGB."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1 or np.isnan(array).any()):
            raise ValueError(f"float image from {source!r} must have values in [0, 1], "
                             f"got range [{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]")
        array = np.round(array * 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"image from {source!r} must be uint8 (or float in [0, 1] or bool), got dtype "
                         f"{array.dtype}; convert 0-255 integers with .astype(np.uint8)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    elif array.ndim == 3 and array.shape[2] == 4:
        rgb = array[:, :, :3].astype(np.float32)
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = np.round(rgb * alpha + 255.0 * (1 - alpha)).astype(np.uint8)  # composite on white
    elif not (array.ndim == 3 and array.shape[2] == 3):
        raise ValueError(f"image from {source!r} must have shape H×W, H×W×1, H×W×3 or H×W×4, "
                         f"got {array.shape}")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"image from {source!r} is too small: {array.shape}")
    return np.ascontiguousarray(array)


def resize_image(image: np.ndarray, size: int = 224, mode: str = "crop") -> np.ndarray:
    """Resize an RGB uint8 image to size×size.

    ``mode="crop"`` squashes to a square of ``round(size * 256 / 224)`` then centre-crops
    ``size`` (GradLIME: ``Resize((256, 256))`` + ``CenterCrop(224)``); ``mode="squash"``
    squashes straight to size×size (GAD's square 224×224 resize).
    """
    size = check_int("size", size, low=8)
    mode = check_choice("mode", mode, RESIZE_MODES)
    pil = Image.fromarray(image)
    if mode == "squash":
        return np.asarray(pil.resize((size, size), Image.BILINEAR))
    big = int(round(size * 256 / 224))
    resized = np.asarray(pil.resize((big, big), Image.BILINEAR))
    top = int(round((big - size) / 2.0))
    return np.ascontiguousarray(resized[top:top + size, top:top + size])


def load_image(source, size: int | None = 224, mode: str = "crop") -> np.ndarray:
    """Load an image as uint8 H×W×3, resized as the papers do.

    Parameters
    ----------
    source:
        a scikit-image sample name (``"chelsea"``, ``"coffee"``, ``"astronaut"``, ``"rocket"``, ...),
        a path to an image file, a PIL image or an array. Greyscale and RGBA are converted to RGB.
    size:
        output side length; ``None`` keeps the original size.
    mode:
        ``"crop"`` (resize to 256/224 of ``size`` and centre-crop, the GradLIME recipe) or
        ``"squash"`` (resize straight to a square, the GAD recipe).
    """
    if isinstance(source, Image.Image):
        array = np.asarray(source.convert("RGBA") if source.mode in ("P", "LA") else source)
    elif isinstance(source, np.ndarray):
        array = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if isinstance(source, str) and source in SAMPLE_IMAGES and not path.exists():
            array = _sample_image(source)
        elif path.is_file():
            try:
                with Image.open(path) as im:
                    if im.mode in ("P", "PA", "LA", "RGBA"):
                        im = im.convert("RGBA")
                    elif im.mode not in ("L", "RGB"):
                        im = im.convert("RGB")
                    array = np.asarray(im)
            except (UnidentifiedImageError, OSError) as exc:
                raise ValueError(f"could not read image file {str(source)!r}: {exc}") from exc
        else:
            raise ValueError(f"image source {str(source)!r} is neither an existing file nor a scikit-image "
                             f"sample name (one of {', '.join(SAMPLE_IMAGES)})")
    else:
        raise ValueError(f"image source must be a sample name, path, PIL image or array, "
                         f"got {type(source).__name__}")
    rgb = to_rgb_uint8(array, source if not isinstance(source, np.ndarray) else "array")
    if size is None:
        return rgb
    return resize_image(rgb, size, mode)


def render_masks(image: np.ndarray, segments: np.ndarray, masks, hiding=0) -> np.ndarray:
    """LIME's h(z) for a batch of binary rows z: superpixel j from ``image`` where z_j = 1, else from ``hiding``.

    ``hiding`` is a hiding image (H×W×3, see :func:`hiding_image`) or a colour. The result is C-contiguous
    (see ``ModelBundle.preprocess`` for why that matters).
    """
    on = np.asarray(masks, dtype=bool)[:, segments][..., None]
    hiding = np.asarray(hiding, dtype=image.dtype)
    return np.ascontiguousarray(np.where(on, image[None], hiding[None] if hiding.ndim == 3 else hiding))


def hiding_image(image: np.ndarray, segments: np.ndarray, hide_color) -> np.ndarray:
    """What a switched-off superpixel shows: ``hide_color``, or each superpixel's mean colour if None."""
    if hide_color is None:
        fudged = image.copy()
        for s in np.unique(segments):
            region = segments == s
            fudged[region] = image[region].mean(axis=0)
        return fudged
    fudged = np.empty_like(image)
    fudged[:] = hide_color
    return fudged
