"""GAD, Gradient Artificial Distancing (Mazini Rodrigues, Boutry, Najman 2024).

Step 1: push the two classes' logits apart by alpha (:func:`distanced_targets`).
Step 2: fine-tune a copy of the classifier per alpha to regress those logits (:func:`train_support_models`).
Step 3: keep only the attribution that every model agrees on (:func:`gad_map`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from gradlime_utils.cache import atomic_torch_save, cache_dir, config_key, content_digest, state_digest
from gradlime_utils.data.models import ModelBundle, load_model
from gradlime_utils.data.training import fit, restore
from gradlime_utils.methods.attributions import attribution_maps, baseline_input, check_baseline, check_method
from gradlime_utils.metrics.hull import hull_points
from gradlime_utils.metrics.nulls import null_labels
from gradlime_utils.runtime import set_seed
from gradlime_utils.validation import check_choice, check_finite, check_int, check_seed

COMBINE_RULES = ("min", "intersection")


def distanced_targets(logits, labels, alpha: float) -> np.ndarray:
    """Step 1: each image's *other*-class logit lowered by ``alpha``; its own class logit unchanged."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"logits must be an N×2 array, got shape {logits.shape}")
    check_finite("logits", logits)
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if isinstance(alpha, (str, bytes)) or not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
    targets = logits.copy()
    rows = np.arange(len(labels))
    targets[rows, 1 - labels] -= alpha
    return targets


def check_alpha_schedule(alphas: Sequence[float]) -> tuple[float, ...]:
    if isinstance(alphas, (str, bytes)) or not all(isinstance(a, (int, float, np.integer, np.floating))
                                                   and not isinstance(a, bool) for a in alphas):
        raise TypeError(f"alphas must be a sequence of numbers, got {alphas!r}")
    alphas = tuple(float(a) for a in alphas)
    if not all(np.isfinite(alphas)):
        raise ValueError(f"alphas must be finite, got {alphas}")
    if not alphas:
        raise ValueError("the alpha schedule is empty")
    if any(a <= 0 for a in alphas):
        raise ValueError(f"alphas must be positive (alpha = 0 is the original model), got {alphas}")
    if any(b <= a for a, b in zip(alphas, alphas[1:])):
        raise ValueError(f"the alpha schedule must be strictly increasing, got {alphas}")
    return alphas


@dataclass
class SupportReport:
    """How well one support model fitted its distanced targets, and whether the logits moved apart."""

    alpha: float
    mse_before: float  # original model vs the distanced targets (= alpha^2 / 2 by construction)
    mse_after: float
    margin_before: float  # mean over training images of z_true - z_other, original model
    margin_after: float
    loaded_from_cache: bool

    @property
    def distancing(self) -> float:
        """How much the mean margin grew; the targets ask for ``alpha``."""
        return self.margin_after - self.margin_before


@dataclass
class SupportModels:
    """The original classifier (alpha = 0) and its support regression networks."""

    bundle: ModelBundle
    models: dict[float, nn.Module]
    reports: list[SupportReport] = field(default_factory=list)
    null: str | None = None  # None: the real GAD support models; else the null control they were trained as

    @property
    def alphas(self) -> list[float]:
        return sorted(self.models)

    def logits(self, alpha: float, inputs: torch.Tensor) -> np.ndarray:
        """The logits of the model for ``alpha`` (0: the original) on preprocessed ``inputs``, in batches: the
        paper profile's 3,680 Pets images at once would not fit in memory."""
        return _logits(self.models[alpha], inputs).cpu().numpy()


def _weights_digest(model: nn.Module) -> str:
    return state_digest(model.state_dict())


def _logits(model: nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(chunk) for chunk in inputs.split(batch_size)]).float()


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> float:
    rows = torch.arange(len(labels))
    return float((logits[rows, labels] - logits[rows, 1 - labels]).mean())


def train_support_models(bundle: ModelBundle, images: np.ndarray, labels: np.ndarray,
                         alphas: Sequence[float] = (2, 4, 6, 8), epochs: int = 10, lr: float = 4e-5,
                         batch_size: int = 32, seed: int = 0, dataset_name: str = "dataset",
                         progress: bool = True, null: str | None = None) -> SupportModels:
    """Step 2: one regression copy of ``bundle.model`` per alpha, trained with MSE on distanced logits.

    Each copy starts from the original weights and is trained with Adam (``lr``) for ``epochs`` epochs on
    the training images (no augmentation, batch norm in training mode as ordinary fine-tuning).

    ``null="shuffled_labels"`` trains the null control: the same schedule on the same images, but each image's
    logits are distanced by a seeded permutation of the labels (:func:`gradlime_utils.metrics.nulls.null_labels`),
    so the models learn no class separation. Its reports still measure the margin with the true labels.

    Checkpoints are cached under a hash of their *content*: the training images, the labels the targets were
    built from, the starting weights and the configuration (``dataset_name`` only names the file). They are
    written atomically and loaded with ``weights_only=True``; a run interrupted after some alphas resumes from
    the next one; a corrupt or non-finite checkpoint is retrained, never loaded.
    """
    alphas = check_alpha_schedule(alphas)
    epochs, batch_size = check_int("epochs", epochs, low=1), check_int("batch_size", batch_size, low=1)
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise TypeError(f"lr must be a number, got {lr!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    seed = check_seed(seed)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("images is empty: support models need training images")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {np.unique(labels).tolist()}")
    target_labels = null_labels(labels, null, seed)
    original = bundle.model
    device = bundle.device
    inputs = bundle.preprocess(images).detach()
    y = torch.as_tensor(labels, device=device).long()
    base_logits = _logits(original, inputs)
    data = content_digest(images, target_labels)
    digest = _weights_digest(original)
    models: dict[float, nn.Module] = {0.0: original}
    reports = []
    tag = "" if null is None else f"-{null}"
    for alpha in alphas:
        targets = torch.as_tensor(distanced_targets(base_logits.cpu().numpy(), target_labels, alpha),
                                  dtype=torch.float32, device=device)
        if not torch.isfinite(targets).all():
            raise ValueError(f"alphas: alpha={alpha:g} pushes the distanced logits beyond float32 (targets overflow "
                             f"to inf); use a schedule of moderate alphas such as (2, 4, 6, 8)")
        key = config_key({"data": data, "model": bundle.name, "weights": digest, "alpha": alpha, "null": null,
                          "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "version": 2})
        path = cache_dir("gad_support") / f"{bundle.name}-{dataset_name}{tag}-a{alpha:g}-{key}.pt"
        support = copy.deepcopy(original)
        cached = restore(support, path) is not None
        if not cached:
            set_seed(seed)
            fit(support, len(inputs), lambda idx: (inputs[idx], targets[idx]), nn.functional.mse_loss, epochs=epochs,
                lr=lr, batch_size=batch_size, seed=seed, desc=f"support model alpha={alpha:g}", progress=progress)
            support.eval()
            after = _logits(support, inputs)
            if not torch.isfinite(after).all():  # never cache a model that diverged
                raise RuntimeError(f"the support model for alpha={alpha:g} diverged (non-finite logits after "
                                   f"training with lr={lr:g}); lower lr")
            atomic_torch_save(support.state_dict(), path)
        support.eval()
        after = _logits(support, inputs)
        reports.append(SupportReport(
            alpha=alpha, mse_before=float(nn.functional.mse_loss(base_logits, targets)),
            mse_after=float(nn.functional.mse_loss(after, targets)), margin_before=_margin(base_logits, y),
            margin_after=_margin(after, y), loaded_from_cache=cached))
        models[alpha] = support
    return SupportModels(bundle=bundle, models=models, reports=reports, null=null)


@dataclass
class GadMaps:
    """Per-model maps E_m (N×H×W, each normalised by its max) and the combined GAD map."""

    method: str
    combine: str
    alphas: list[float]
    per_model: np.ndarray  # models × N × H × W, raw |attribution| summed over channels
    gad: np.ndarray  # N × H × W

    @property
    def original(self) -> np.ndarray:
        return self.per_model[0]


def _normalise_by_max(maps: np.ndarray) -> np.ndarray:
    peak = maps.reshape(len(maps), -1).max(axis=1)
    return np.divide(maps, peak[:, None, None], out=np.zeros_like(maps), where=peak[:, None, None] > 0)


def gad_map(support: SupportModels, images: np.ndarray, target, method: str = "integrated_gradients",
            combine: str = "min", keep: float = 0.5, baseline: str = "black",
            original: np.ndarray | None = None) -> GadMaps:
    """Step 3: attribution maps of every model and the map of features present in all of them.

    ``combine="min"`` (default; the paper keeps "features present in all five maps" without saying how, and
    this soft intersection is the reading that allows Table 1's RC > 1 cases): each map divided by its maximum,
    then the pixelwise minimum over models (high only where every model finds the pixel important).
    ``"intersection"``: the original map where the top ``keep`` fraction of every model's pixels overlap; it
    forces the GAD hull inside the original one (RC <= 1).
    ``images`` is one uint8 H×W×3 image or a batch; ``target`` the class (0 or 1) per image, or one for all.
    ``baseline``: the reference of Gradient × Input and IG (:data:`~gradlime_utils.methods.attributions.BASELINES`).
    ``original``: the original model's maps (N×H×W) when already computed (e.g. shared by the real support
    models and their null control), so that only the support models are queried.
    """
    check_method(method)
    check_baseline(baseline)
    combine = check_choice("combine", combine, COMBINE_RULES)
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if len(images) == 0:
        raise ValueError("images is empty: gad_map needs at least one image")
    targets = np.broadcast_to(np.asarray(target), (len(images),)).astype(int)
    if not np.isin(targets, (0, 1)).all():
        raise ValueError(f"target must be 0 or 1 for a two-class model, got {np.unique(targets).tolist()}")
    inputs = support.bundle.preprocess(images)
    reference = baseline_input(support.bundle.preprocess, images, baseline)
    alphas = support.alphas
    per_model = []
    for a in alphas:
        if a == 0 and original is not None:
            if np.shape(original) != (len(images), *inputs.shape[-2:]):
                raise ValueError(f"original must hold one {tuple(inputs.shape[-2:])} map per image, got shape "
                                 f"{np.shape(original)}")
            per_model.append(np.asarray(original, dtype=np.float32))
        else:
            per_model.append(attribution_maps(support.models[a], inputs, targets, method,
                                              reference=reference).cpu().numpy())
    per_model = np.stack(per_model)
    return GadMaps(method=method, combine=combine, alphas=alphas, per_model=per_model,
                   gad=combine_maps(per_model, combine, keep))


def combine_maps(per_model: np.ndarray, combine: str = "min", keep: float = 0.5) -> np.ndarray:
    """Combine models × N × H × W maps (index 0 = the original model) into N GAD maps."""
    combine = check_choice("combine", combine, COMBINE_RULES)
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    per_model = np.asarray(per_model, dtype=float)
    if per_model.ndim != 4:
        raise ValueError(f"per_model must be models × N × H × W, got shape {per_model.shape}")
    if combine == "min":
        return np.min(np.stack([_normalise_by_max(m) for m in per_model]), axis=0)
    agree = np.logical_and.reduce([np.stack([hull_points(m, keep) for m in maps]) for maps in per_model])
    return per_model[0] * agree


def _two_way_head(model: nn.Module, arch: str) -> nn.Module:
    """Replace the ImageNet classifier by a fresh 2-way linear layer (the GAD author's convention)."""
    if arch == "resnet18":
        model.fc = nn.Linear(model.fc.in_features, 2)
    elif arch == "vgg16":
        model.classifier[6] = nn.Linear(model.classifier[6].in_features, 2)
    else:
        raise ValueError(f"arch must be 'resnet18' or 'vgg16', got {arch!r}")
    return model


def train_binary_classifier(arch: str, train, test, epochs: int = 3, lr: float = 1e-4, batch_size: int = 32,
                            seed: int = 0, device: str = "auto", weights_path=None, download: bool = True,
                            progress: bool = True) -> ModelBundle:
    """The paper profile's original classifier f0: ImageNet ResNet18/VGG16 fine-tuned with a 2-way head.

    ``train`` and ``test`` are :class:`~gradlime_utils.BinaryDataset` splits (e.g. Oxford-IIIT Pet cat vs dog,
    CUB warblers vs sparrows). The fine-tuned weights are cached under a key of (dataset, arch, epochs, lr,
    batch size, seed, number of images), written atomically and loaded with ``weights_only=True``.
    Returns a :class:`ModelBundle` whose ``info`` holds the held-out accuracy.
    """
    if arch not in ("resnet18", "vgg16"):
        raise ValueError(f"arch must be 'resnet18' or 'vgg16', got {arch!r}")
    if train.class_names != test.class_names:
        raise ValueError(f"train and test class names differ: {train.class_names} vs {test.class_names}")
    base = load_model(arch, device=device, weights_path=weights_path, download=download)
    size = train[0][0].shape[0]
    key = config_key({"data": train.fingerprint(), "arch": arch, "epochs": epochs, "lr": lr,
                      "batch_size": batch_size, "seed": seed, "size": size, "mode": train.mode,
                      "weights": _weights_digest(base.model), "version": 2})
    path = cache_dir("gad_classifiers") / f"{arch}-{train.name}-{key}.pt"
    set_seed(seed)
    model = _two_way_head(base.model, arch).to(base.device)
    bundle = ModelBundle(name=f"{arch}-{train.name}", model=model, class_names=list(train.class_names),
                         input_size=size, cam_layers=base.cam_layers, mean=base.mean, std=base.std,
                         device=base.device, info={"arch": arch, "dataset": train.name})
    bundle.info["cached"] = restore(bundle.model, path) is not None
    if not bundle.info["cached"]:
        fit(bundle.model, len(train), lambda idx: (bundle.preprocess(train.images(idx.tolist())),
                                                   torch.as_tensor(train.labels[idx.numpy()], device=bundle.device)),
            epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, desc=f"fine-tuning {arch} on {train.name}",
            progress=progress)
        atomic_torch_save(bundle.model.state_dict(), path)
    bundle.model.eval()
    correct = 0
    for start in range(0, len(test), 64):
        idx = list(range(start, min(start + 64, len(test))))
        correct += int((bundle.predict_proba(test.images(idx)).argmax(1) == test.labels[idx]).sum())
    bundle.info["test_accuracy"] = correct / max(1, len(test))
    bundle.info["n_test"] = len(test)
    return bundle
