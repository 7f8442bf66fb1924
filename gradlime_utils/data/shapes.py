"""A synthetic two-class benchmark where the truly discriminative pixels are known.

Every image holds one **class object** (a cross for class 0, a filled disc for class 1) at a random position, among
**distractors** (filled squares, triangles and bars) that both classes share. Positions come from a grid of cells,
so objects never overlap; every object gets a random bright colour, so colour says nothing about the class.
The ground-truth mask of an image is exactly the pixels of its class object. None of the papers has such a
benchmark; it lets the evaluation chapter ask which method points at the object that decides the class.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from gradlime_utils.cache import atomic_torch_save, cache_dir, config_key, content_digest
from gradlime_utils.data.mnist_cnn import relu_conv_stack
from gradlime_utils.data.models import ModelBundle
from gradlime_utils.data.training import fit, restore
from gradlime_utils.plotting import CMAPS
from gradlime_utils.runtime import resolve_device, set_seed
from gradlime_utils.validation import check_int

CLASS_SHAPES = ("cross", "disc")
DISTRACTOR_SHAPES = ("square", "triangle", "bar")
GENERATOR_VERSION = 2  # bump whenever the images a seed produces change: trained models are cached by it


def shape_mask(shape: str, size: int) -> np.ndarray:
    """A size×size boolean stamp of ``shape``."""
    if size < 6:
        raise ValueError(f"object size must be >= 6 pixels, got {size}")
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    t = max(1, size // 5)  # stroke thickness
    if shape == "cross":
        return (np.abs(yy - c) < t / 2 + 0.5) | (np.abs(xx - c) < t / 2 + 0.5)
    if shape == "disc":  # filled: a hollow ring would put its centre, where smooth maps peak, outside the mask
        return np.hypot(yy - c, xx - c) <= c + 0.5
    if shape == "square":
        m = np.zeros((size, size), bool)
        m[1:-1, 1:-1] = True
        return m
    if shape == "triangle":
        return (yy >= size - 1 - 2 * np.minimum(xx, size - 1 - xx)) & (yy < size)
    if shape == "bar":
        return np.abs(yy - c) < t / 2 + 1
    raise ValueError(f"shape must be one of {CLASS_SHAPES + DISTRACTOR_SHAPES}, got {shape!r}")


@dataclass
class ShapesBenchmark:
    """Images (N×H×W×3 uint8), labels (N,), ground-truth masks of the class object (N×H×W bool)."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    seed: int
    params: dict
    class_names: tuple[str, str] = CLASS_SHAPES

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> "ShapesBenchmark":
        idx = np.asarray(indices)
        return ShapesBenchmark(self.images[idx], self.labels[idx], self.masks[idx], self.seed, self.params,
                               self.class_names)


def make_shapes_benchmark(n: int = 400, size: int = 56, object_size: int = 12, n_distractors: int = 3,
                          seed: int = 0) -> ShapesBenchmark:
    """Generate ``n`` images deterministically from ``seed`` (same seed, same bytes).

    The image is a grid of cells of ``object_size + 2`` pixels; the class object and ``n_distractors``
    distractors each take a different random cell, with a random offset inside it. The background is dark
    noise. Labels are balanced (alternating before a seeded shuffle).
    """
    cell = object_size + 2
    per_side = size // cell
    n = check_int("n", n, low=2)
    if per_side * per_side < n_distractors + 1:
        raise ValueError(f"a {size}-pixel image has room for {per_side * per_side} objects of {object_size} pixels, "
                         f"not {n_distractors + 1}")
    if n_distractors < 0:
        raise ValueError(f"n_distractors must be >= 0, got {n_distractors}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    images = rng.normal(30, 8, (n, size, size, 3)).clip(0, 255).astype(np.uint8)
    masks = np.zeros((n, size, size), bool)
    stamps = {s: shape_mask(s, object_size) for s in CLASS_SHAPES + DISTRACTOR_SHAPES}
    for i in range(n):
        cells = rng.choice(per_side * per_side, size=n_distractors + 1, replace=False)
        shapes = [CLASS_SHAPES[labels[i]]] + list(rng.choice(DISTRACTOR_SHAPES, size=n_distractors))
        for k, (cell_id, shape) in enumerate(zip(cells, shapes)):
            y0 = (cell_id // per_side) * cell + rng.integers(0, cell - object_size + 1)
            x0 = (cell_id % per_side) * cell + rng.integers(0, cell - object_size + 1)
            colour = rng.integers(120, 256, 3).astype(np.uint8)
            stamp = stamps[shape]
            region = images[i, y0:y0 + object_size, x0:x0 + object_size]
            region[stamp] = colour
            if k == 0:
                masks[i, y0:y0 + object_size, x0:x0 + object_size] = stamp
    return ShapesBenchmark(images=images, labels=labels.astype(np.int64), masks=masks, seed=seed,
                           params={"n": n, "size": size, "object_size": object_size, "n_distractors": n_distractors,
                                   "classes": list(CLASS_SHAPES), "distractors": list(DISTRACTOR_SHAPES),
                                   "generator_version": GENERATOR_VERSION})


class ShapesCNN(nn.Module):
    """Three conv blocks with ``nn.ReLU`` modules (so Guided Backprop and Deconvolution really apply), global
    average pooling and a linear head."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.features = relu_conv_stack(3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


SHAPES_MEAN, SHAPES_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _bundle(model: nn.Module, device: torch.device, size: int, info: dict) -> ModelBundle:
    return ModelBundle(name="shapes_cnn", model=model.eval().to(device), class_names=list(CLASS_SHAPES),
                       input_size=size, cam_layers=["features.7"], mean=SHAPES_MEAN, std=SHAPES_STD, device=device,
                       info=info, batch_size=256)


def train_shapes_cnn(train: ShapesBenchmark, test: ShapesBenchmark, epochs: int = 12, lr: float = 3e-3,
                     batch_size: int = 64, seed: int = 0, device: str = "auto", progress: bool = True,
                     use_cache: bool = True) -> ModelBundle:
    """Train (or load from the cache) :class:`ShapesCNN` on ``train``; ``info`` holds train and test accuracy."""
    dev = resolve_device(device)
    size = train.images.shape[1]
    if len(train) == 0:
        raise ValueError("train is empty")
    # keyed by the training pixels and labels themselves, not by the generator's parameters
    config = {"data": content_digest(train.images, train.labels), "epochs": epochs, "lr": lr,
              "batch_size": batch_size, "seed": seed, "version": 2}
    path = cache_dir("models") / f"shapes_cnn-{config_key(config)}.pt"
    model = ShapesCNN()
    checkpoint = restore(model, path, "state_dict") if use_cache else None
    if checkpoint is not None and isinstance(checkpoint.get("info"), dict):
        bundle = _bundle(model, dev, size, dict(checkpoint["info"]))
    else:
        set_seed(seed)
        model = ShapesCNN()
        bundle = _bundle(model, torch.device("cpu"), size, {})
        x, y = bundle.preprocess(train.images), torch.as_tensor(train.labels)
        start = time.perf_counter()
        fit(model, len(x), lambda idx: (x[idx], y[idx]), epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
            desc="training shapes_cnn", progress=progress)
        info = {"train_accuracy": float((bundle.predict_proba(train.images).argmax(1) == train.labels).mean()),
                "test_accuracy": float((bundle.predict_proba(test.images).argmax(1) == test.labels).mean()),
                "n_train": len(train), "n_test": len(test), "train_seconds": round(time.perf_counter() - start, 2)}
        if use_cache:
            atomic_torch_save({"state_dict": model.state_dict(), "info": info, "config": config}, path)
        bundle = _bundle(model, dev, size, info)
    bundle.info.setdefault("seed", seed)
    return bundle


def oracle_map(masks: np.ndarray) -> np.ndarray:
    """The perfect explanation: 1 on the class object, 0 elsewhere."""
    return np.asarray(masks, dtype=float)


def as_dict(bench: ShapesBenchmark) -> dict:
    """JSON-ready description of a benchmark (not its pixels)."""
    return {"n": len(bench), "seed": bench.seed, **bench.params, "class_names": list(bench.class_names),
            "class_counts": np.bincount(bench.labels, minlength=2).tolist(),
            "mean_object_pixels": float(bench.masks.sum(axis=(1, 2)).mean())}


__all__ = ["CLASS_SHAPES", "DISTRACTOR_SHAPES", "ShapesBenchmark", "ShapesCNN", "as_dict", "make_shapes_benchmark",
           "oracle_map", "shape_mask", "train_shapes_cnn"]


def plot_examples(bench: ShapesBenchmark, count: int = 6, path=None):
    """The first ``count`` benchmark images with their class and, below, the ground-truth mask."""
    count = min(count, len(bench))
    fig, axes = plt.subplots(2, count, figsize=(1.85 * count, 4), squeeze=False)
    for i in range(count):
        axes[0, i].imshow(bench.images[i]); axes[0, i].set_title(bench.class_names[bench.labels[i]], fontsize=9)
        axes[1, i].imshow(bench.masks[i], cmap=CMAPS["binary"]); axes[1, i].set_title("ground truth", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90, bbox_inches="tight")
    return fig
