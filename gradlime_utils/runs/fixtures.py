"""Tiny stand-ins for everything the paper profile downloads, in the real on-disk layouts.

The paper rehearsal (:mod:`gradlime_utils.runs.rehearse`) and the tests build them in a temporary folder, so that the
chapters' paper branches run their real loading code without internet:

* ``data/oxford-iiit-pet/``: images and ``annotations/{trainval,test}.txt`` as torchvision unpacks Oxford-IIIT Pet
  (``Name_N class species breed``, species 1 = cat, 2 = dog), with files as unkind as the real archive's: a PNG
  and a GIF named ``.jpg``, a CMYK and a greyscale JPEG, and one JPEG cut short (:data:`UNKIND_PETS`);
* ``data/CUB_200_2011/``: ``images.txt``, ``classes.txt``, ``image_class_labels.txt``, ``train_test_split.txt``
  and ``images/<class folder>/`` with two warbler species, two sparrow species and one other bird;
* ``data/imagenet_val/<wnid>/ILSVRC2012_val_*.JPEG``: an ImageNet-validation folder, made as a user makes it: the
  official flat ``ILSVRC2012_img_val.tar`` and devkit (:func:`imagenet_val_archives`) sorted by
  :func:`gradlime_utils.runs.fetch.sort_imagenet_val`;
* ``data/photos/``: a folder of photos (the heat-map chapter's ``data_root``);
* ``torch/hub/checkpoints/<torchvision file name>``: a randomly initialised state dict for every architecture the
  paper profile loads, under torchvision's own file names, so that the loader reads it as it would the real one.

Images are flat colours with noise: a cat, a warbler or the first class is reddish, the other class bluish.
Nothing here is a real photo or a real weight: these files only prove that the code paths run.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gradlime_utils.data.models import _torchvision_spec, current_to_published

PET_BREEDS = {1: ("Abyssinian", "Bengal"), 2: ("beagle", "boxer")}  # species -> breeds (class ids 1..4)
# CUB-200-2011's real class ids and names (classes.txt): an albatross, two warblers, two sparrows
CUB_CLASSES = {1: "001.Black_footed_Albatross", 113: "113.Baird_Sparrow", 114: "114.Black_throated_Sparrow",
               158: "158.Bay_breasted_Warbler", 159: "159.Black_and_white_Warbler"}
IMAGENET_WNIDS = ("n01440764", "n02123045")  # tench, tabby cat


def _photo(path: Path, reddish: bool, rng: np.random.Generator, size=(64, 48)) -> None:
    pixels = rng.integers(0, 90, (size[1], size[0], 3), dtype=np.uint8)
    pixels[..., 0 if reddish else 2] = 220
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def oxford_pets(root: Path, per_breed: tuple[int, int] = (2, 2), seed: int = 0) -> Path:
    """Oxford-IIIT Pet under ``root/oxford-iiit-pet``: ``per_breed`` = (trainval, test) images of each breed."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    class_id = 0
    rows = {"trainval": [], "test": []}
    for species, breeds in PET_BREEDS.items():
        for breed in breeds:
            class_id += 1
            for split, n, offset in (("trainval", per_breed[0], 1), ("test", per_breed[1], 100)):
                for k in range(n):
                    name = f"{breed}_{offset + k}"
                    rows[split].append(f"{name} {class_id} {species} {class_id}")
                    _photo(base / "images" / f"{name}.jpg", species == 1, rng)
    for split, lines in rows.items():  # torchvision's files have no header
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    _unkind_pets(base / "images", rng)
    return Path(root)


# files of the real archive that a loader must survive: content that is not what the name says, odd colour modes,
# and one image cut short (the real archive holds files flagged as corrupt JPEG data)
UNKIND_PETS = {"Abyssinian_1.jpg": "PNG", "beagle_1.jpg": "GIF", "Bengal_1.jpg": "CMYK", "boxer_1.jpg": "L",
               "Abyssinian_100.jpg": "truncated"}


def _unkind_pets(images: Path, rng: np.random.Generator) -> None:
    """Rewrite a few Pets fixture images the way some of the real archive's files are (:data:`UNKIND_PETS`)."""
    for name, kind in UNKIND_PETS.items():
        path = images / name
        if not path.is_file():
            continue
        im = Image.open(path).convert("RGB")
        if kind == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        elif kind in ("PNG", "GIF"):
            im.save(path, format=kind)
        else:
            im.convert(kind).save(path, format="JPEG")


def cub(root: Path, per_class: tuple[int, int] = (2, 2), seed: int = 0) -> Path:
    """CUB-200-2011 under ``root/CUB_200_2011`` with ``per_class`` = (train, test) images of each species."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "CUB_200_2011"
    images, labels, split = [], [], []
    image_id = 0
    for cls, cname in CUB_CLASSES.items():
        for k in range(sum(per_class)):
            image_id += 1
            rel = f"{cname}/{cname.split('.', 1)[1]}_{k:04d}.jpg"
            _photo(base / "images" / rel, "Warbler" in cname, rng)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {cls}")
            split.append(f"{image_id} {1 if k < per_class[0] else 0}")
    (base / "classes.txt").write_text("\n".join(f"{k} {v}" for k, v in CUB_CLASSES.items()) + "\n")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(split) + "\n")
    return Path(root)


def imagenet_val(folder: Path, per_class: int = 3, seed: int = 0) -> Path:
    """An ImageNet-validation folder sorted by class (``folder/<wnid>/ILSVRC2012_val_*.JPEG``)."""
    rng = np.random.default_rng(seed)
    number = 0
    for k, wnid in enumerate(IMAGENET_WNIDS):
        for _ in range(per_class):
            number += 1
            _photo(Path(folder) / wnid / f"ILSVRC2012_val_{number:08d}.JPEG", k == 0, rng)
    return Path(folder)


def imagenet_val_archives(folder: Path, per_class: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """The two official ImageNet files in their published form, tiny: ``ILSVRC2012_img_val.tar`` (flat, every image
    at the top level, named ILSVRC2012_val_NNNNNNNN.JPEG) and ``ILSVRC2012_devkit_t12.tar.gz`` (``data/meta.mat``
    with the synsets struct, ``data/ILSVRC2012_validation_ground_truth.txt`` with one ILSVRC2012_ID per image).
    Returns (val tar, devkit)."""
    from scipy.io import savemat  # lazy: only this fixture writes a MATLAB file

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    work = folder / "imagenet_archives"
    flat, devkit = work / "val", work / "ILSVRC2012_devkit_t12" / "data"
    flat.mkdir(parents=True, exist_ok=True)
    devkit.mkdir(parents=True, exist_ok=True)
    ids = {wnid: k + 1 for k, wnid in enumerate(IMAGENET_WNIDS)}  # ILSVRC2012_ID per synset
    order = rng.permutation([w for w in IMAGENET_WNIDS for _ in range(per_class)])  # the tar is not sorted by class
    for n, wnid in enumerate(order, start=1):
        _photo(flat / f"ILSVRC2012_val_{n:08d}.JPEG", wnid == IMAGENET_WNIDS[0], rng)
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    synsets = np.zeros(len(ids) + 1, dtype=[(f, object) for f in fields])
    for k, (wnid, i) in enumerate(ids.items()):
        synsets[k] = (i, wnid, wnid, "", 0, np.zeros(0), 0, 1300)
    synsets[-1] = (len(ids) + 1, "n00000001", "a parent synset", "", 2, np.array([1, 2]), 1, 0)  # not a class
    savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in order))
    val_tar, devkit_tar = folder / "ILSVRC2012_img_val.tar", folder / "ILSVRC2012_devkit_t12.tar.gz"
    with tarfile.open(val_tar, "w") as tar:
        for path in sorted(flat.iterdir()):
            tar.add(path, arcname=path.name)
    with tarfile.open(devkit_tar, "w:gz") as tar:
        tar.add(work / "ILSVRC2012_devkit_t12", arcname="ILSVRC2012_devkit_t12")
    shutil.rmtree(work)
    return val_tar, devkit_tar


def photos(folder: Path, n: int = 2, seed: int = 0) -> Path:
    """A flat folder of ``n`` photos."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        _photo(Path(folder) / f"photo_{k}.jpg", k % 2 == 0, rng)
    return Path(folder)


def torchvision_weights(torch_home: Path, archs) -> list[Path]:
    """A randomly initialised (seeded) state dict of each of ``archs`` saved where torch looks for torchvision's
    ImageNet weights when ``$TORCH_HOME`` is ``torch_home``, under torchvision's file names and in the published
    files' form: their key names (DenseNet's old ``norm.1`` names, :func:`gradlime_utils.data.models.current_to_published`)
    and torch's legacy (pre-zip) serialisation, which the 2017 checkpoints use."""
    spec = _torchvision_spec()
    paths = []
    for arch in archs:
        builder, weights, _ = spec[arch]
        path = Path(torch_home) / "hub" / "checkpoints" / os.path.basename(weights.url)
        if not path.is_file():
            torch.manual_seed(0)
            path.parent.mkdir(parents=True, exist_ok=True)
            state = current_to_published(arch, builder(weights=None).state_dict())
            torch.save(state, path, _use_new_zipfile_serialization=False)
        paths.append(path)
    return paths


def paper_fixtures(folder: Path, archs) -> dict[str, Path]:
    """Every fixture under ``folder``: ``{"data": ..., "torch": ..., "imagenet_val": ..., "photos": ...}``."""
    folder = Path(folder)
    data = folder / "data"
    oxford_pets(data)
    cub(data)
    from gradlime_utils.runs.fetch import sort_imagenet_val  # lazy: fetch imports the models, as this module does

    # ImageNet validation as the official files come (a flat tar and the devkit), sorted by the fetch CLI's code
    target = data / "imagenet_val"
    if not target.is_dir():
        val_tar, devkit = imagenet_val_archives(folder / "downloads")
        sort_imagenet_val(val_tar, devkit, target, verify=False)  # tiny stand-ins cannot match the official MD5s
    out = {"data": data, "torch": folder / "torch", "imagenet_val": target, "photos": photos(data / "photos")}
    torchvision_weights(out["torch"], archs)
    return out
