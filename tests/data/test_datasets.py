import numpy as np
import pytest
from PIL import Image

import gradlime_utils as gu


def test_mnist_pair_default():
    train = gu.load_binary_dataset()
    test = gu.load_binary_dataset(split="test")
    assert train.name == "mnist_3_vs_8" and train.class_names == ("digit 3", "digit 8")
    assert train.counts() == {"digit 3": 400, "digit 8": 400} and test.counts() == {"digit 3": 100, "digit 8": 100}
    image, label = train[0]
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8 and label in (0, 1)
    # disjoint splits: no test image appears in train
    train_keys = {im.tobytes() for im in train.images()}
    assert not any(im.tobytes() in train_keys for im in test.images())


def test_mnist_split_is_deterministic_and_seeded():
    a = gu.load_binary_dataset(split="test", seed=0).images()
    b = gu.load_binary_dataset(split="test", seed=0).images()
    c = gu.load_binary_dataset(split="test", seed=1).images()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_other_digit_pairs_and_label_order():
    ds = gu.load_binary_dataset("mnist_9_vs_4")
    assert ds.class_names == ("digit 9", "digit 4")
    images, labels = gu.mnist_arrays((9, 4))
    assert set(labels) == {0, 1}


def test_balanced_subset_and_max_per_class():
    ds = gu.load_binary_dataset(split="test", max_per_class=10)
    assert ds.counts() == {"digit 3": 10, "digit 8": 10}
    with pytest.raises(ValueError, match="per_class"):
        ds.balanced_subset(50)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "imagenet"}, "unknown dataset 'imagenet'"),
    ({"name": "mnist_3_vs_3"}, "two different digits"),
    ({"split": "validation"}, "split must be one of"),
    ({"name": "image_folder"}, "needs root"),
])
def test_bad_dataset_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gu.load_binary_dataset(**kwargs)


def _jpg(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def pets_root(tmp_path):
    """A tiny Oxford-IIIT Pet in torchvision's on-disk layout (species 1 = cat, 2 = dog): one trainval and one test
    image of each of two cat and two dog breeds."""
    from gradlime_utils.runs import fixtures
    return fixtures.oxford_pets(tmp_path, per_breed=(1, 1))


def test_oxford_pets_from_fixture(pets_root):
    ds = gu.load_binary_dataset("oxford_pets", root=pets_root, size=64)
    assert ds.class_names == ("cat", "dog")
    assert list(ds.labels) == [0, 0, 1, 1]
    image, label = ds[2]
    assert image.shape == (64, 64, 3) and label == 1
    assert image[..., 2].mean() > 200  # the dog fixture is blue
    # the fixture is as unkind as the real archive: PNG and GIF content named .jpg, CMYK and greyscale JPEGs load;
    # the JPEG cut short is skipped with a warning naming it and recorded as a skipped input of the run
    from gradlime_utils.runtime import INPUTS

    with pytest.warns(RuntimeWarning, match="skipping unreadable image .*Abyssinian_100.jpg"):
        test = gu.load_binary_dataset("oxford_pets", root=pets_root, split="test")
    assert len(test) == 3 and test.images().shape == (3, 224, 224, 3)
    assert any(i["kind"] == "skipped" and i["path"].endswith("Abyssinian_100.jpg") for i in INPUTS)


def test_a_dataset_with_too_few_readable_images_is_a_clear_error(pets_root):
    images = pets_root / "oxford-iiit-pet" / "images"
    (images / "Bengal_100.jpg").write_bytes(b"not an image")
    with pytest.warns(RuntimeWarning, match="Bengal_100"), pytest.raises(ValueError, match="too few readable"):
        gu.load_binary_dataset("oxford_pets", root=pets_root, split="test")


def test_oxford_pets_missing_says_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        gu.load_binary_dataset("oxford_pets", root=tmp_path)


@pytest.fixture
def cub_root(tmp_path):
    """A tiny CUB-200-2011 with two warbler species, two sparrow species and an albatross, one train and one test
    image of each."""
    from gradlime_utils.runs import fixtures
    return fixtures.cub(tmp_path, per_class=(1, 1))


def test_cub_merges_warblers_and_sparrows(cub_root):
    ds = gu.load_binary_dataset("cub_warbler_sparrow", root=cub_root, size=32)
    assert ds.class_names == ("warbler", "sparrow")
    assert sorted(ds.labels) == [0, 0, 1, 1]  # one train image per species, albatross dropped
    assert ds.extra["species"] == ["113.Baird_Sparrow", "114.Black_throated_Sparrow", "158.Bay_breasted_Warbler",
                                   "159.Black_and_white_Warbler"]
    assert ds.labels[[str(p).find("Warbler") > 0 for p in ds.paths]].tolist() == [0, 0]
    # the paper's "20 species each": the first species of each group by CUB class id, as many as asked
    one = gu.load_binary_dataset("cub_warbler_sparrow", root=cub_root, size=32, species=1)
    assert one.extra["species"] == ["113.Baird_Sparrow", "158.Bay_breasted_Warbler"]
    assert "first 1 warbler and 1 sparrow" in one.source
    every = gu.load_binary_dataset("cub_warbler_sparrow", root=cub_root, size=32, species=None)
    assert len(every) == 4 and "all warbler" in every.source
    with pytest.raises(ValueError, match="species"):
        gu.load_binary_dataset("cub_warbler_sparrow", root=cub_root, species=0)
    assert ds[0][0].shape == (32, 32, 3)
    test = gu.load_binary_dataset("image_folder", layout="cub", root=cub_root / "CUB_200_2011", split="test")
    assert len(test) == 4


def test_cub_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="CUB-200-2011 not found"):
        gu.load_binary_dataset("cub_warbler_sparrow", root=tmp_path)


def test_image_folder_with_and_without_split_folders(tmp_path):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        for i in range(5):
            _jpg(tmp_path / "flat" / cls / f"{i}.jpg", colour)
            _jpg(tmp_path / "split" / ("train" if i < 3 else "test") / cls / f"{i}.png", colour)
    flat_train = gu.load_binary_dataset("image_folder", root=tmp_path / "flat", size=32)
    flat_test = gu.load_binary_dataset("image_folder", root=tmp_path / "flat", split="test", size=32)
    assert flat_train.class_names == ("cats", "dogs")
    assert len(flat_train) + len(flat_test) == 10
    assert not set(map(str, flat_train.paths)) & set(map(str, flat_test.paths))
    split_train = gu.load_binary_dataset("image_folder", root=tmp_path / "split")
    assert split_train.counts() == {"cats": 3, "dogs": 3}
    assert gu.load_binary_dataset("image_folder", root=tmp_path / "split", split="test").counts() == {"cats": 2, "dogs": 2}


def test_image_folder_errors(tmp_path):
    for cls in ("a", "b", "c"):
        _jpg(tmp_path / "three" / cls / "x.jpg", (0, 0, 0))
    with pytest.raises(ValueError, match="exactly two class folders"):
        gu.load_binary_dataset("image_folder", root=tmp_path / "three")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images"):
        gu.load_binary_dataset("image_folder", root=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gu.load_binary_dataset("image_folder", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="layout must be"):
        gu.load_binary_dataset("image_folder", root=tmp_path / "three", layout="coco")
