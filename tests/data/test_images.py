import numpy as np
import pytest
from PIL import Image

import gradlime_utils as gu


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut", "rocket"])
def test_sample_photos_load_as_uint8_rgb_224(name):
    img = gu.load_image(name)
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    assert img.std() > 10  # a real photo, not a blank array


def test_greyscale_sample_becomes_rgb():
    img = gu.load_image("camera", size=64)
    assert img.shape == (64, 64, 3)
    np.testing.assert_array_equal(img[..., 0], img[..., 1])


def test_crop_mode_matches_resize_256_then_centre_crop_224():
    raw = gu.load_image("chelsea", size=None)
    expected = np.asarray(Image.fromarray(raw).resize((256, 256), Image.BILINEAR))[16:240, 16:240]
    np.testing.assert_array_equal(gu.load_image("chelsea", size=224, mode="crop"), expected)
    squashed = gu.load_image("chelsea", size=224, mode="squash")
    np.testing.assert_array_equal(squashed, np.asarray(Image.fromarray(raw).resize((224, 224), Image.BILINEAR)))


def test_file_pil_and_array_sources(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    from_file = gu.load_image(path, size=None)
    np.testing.assert_array_equal(from_file, arr)
    np.testing.assert_array_equal(gu.load_image(str(path), size=None), arr)
    np.testing.assert_array_equal(gu.load_image(Image.fromarray(arr), size=None), arr)
    np.testing.assert_array_equal(gu.load_image(arr, size=None), arr)
    assert gu.load_image(arr, size=32).shape == (32, 32, 3)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:5, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    out = gu.load_image(rgba, size=None)
    assert out.shape == (10, 10, 3)
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[9, 9]) == (255, 255, 255)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(gu.load_image(tmp_path / "a.png", size=None), out)


def test_float_images_in_unit_range_are_converted():
    arr = np.full((8, 8, 3), 0.5)
    assert gu.load_image(arr, size=None).max() == 128


@pytest.mark.parametrize("arr, match", [
    (np.zeros((8, 8, 3), dtype=np.int64), "must be uint8"),
    (np.full((8, 8, 3), 2.0), r"values in \[0, 1\]"),
    (np.zeros((8, 8, 5), dtype=np.uint8), "must have shape"),
    (np.zeros((2, 8, 8, 3), dtype=np.uint8), "must have shape"),
    (np.zeros((1, 8, 3), dtype=np.uint8), "too small"),
])
def test_bad_arrays_raise_clear_errors(arr, match):
    with pytest.raises(ValueError, match=match):
        gu.load_image(arr)


def test_unreadable_and_missing_sources(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="could not read image file .*broken.jpg"):
        gu.load_image(bad)
    with pytest.raises(ValueError, match="neither an existing file nor a scikit-image sample"):
        gu.load_image("no_such_picture")
    with pytest.raises(ValueError, match="must be a sample name, path"):
        gu.load_image(42)


@pytest.mark.parametrize("kwargs, match", [({"size": 0}, "size must be"), ({"mode": "stretch"}, "mode must be")])
def test_bad_resize_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gu.load_image("chelsea", **kwargs)
