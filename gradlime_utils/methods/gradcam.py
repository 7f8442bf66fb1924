"""Grad-CAM (Selvaraju et al.) for one or several layers, fused as stock pytorch-grad-cam does."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gradlime_utils.data.models import ModelBundle


@dataclass
class GradCamResult:
    """The fused map (H×W in [0, 1]) and each layer's raw map at its own feature resolution."""

    heatmap: np.ndarray
    layer_maps: dict[str, np.ndarray]
    target: int


def _minmax(x: torch.Tensor) -> torch.Tensor:
    x = x - x.min()
    return x / (x.max() + 1e-7)


def resolve_layers(bundle: ModelBundle, layers: Sequence[str] | str | None) -> list[str]:
    """Layer names to use (the bundle's ``cam_layers`` by default), checked to exist."""
    if layers is None:
        layers = bundle.cam_layers
    elif isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer")
    modules = dict(bundle.model.named_modules())
    for name in layers:
        if name not in modules:
            examples = [n for n in modules if n][-8:]
            raise ValueError(f"layer {name!r} does not exist in {bundle.name}; e.g. {examples}")
    return layers


def gradcam(bundle: ModelBundle, image: np.ndarray, target: int, layers: Sequence[str] | str | None = None,
            ) -> GradCamResult:
    """Grad-CAM of ``target``'s logit at ``layers``, fused into one H×W map in [0, 1].

    Per layer: ReLU(sum_k alpha_k Gamma_k) with alpha_k the spatially averaged gradient (captum's
    ``LayerGradCam``). Fusion (the GradLIME repository's, with the stock pytorch-grad-cam semantics): min-max each layer's
    map, resize it bilinearly to the image, average over layers, min-max again. Captum removes its hooks
    after every call, so nothing stays attached to the model.
    """
    from captum.attr import LayerGradCam  # lazy: heavy import

    if not isinstance(target, (int, np.integer)) or not 0 <= target < bundle.num_classes:
        raise ValueError(f"target must be a class index in [0, {bundle.num_classes}), got {target!r}")
    names = resolve_layers(bundle, layers)
    modules = dict(bundle.model.named_modules())
    x = bundle.preprocess(np.asarray(image)[None] if np.asarray(image).ndim == 3 else image)
    if x.shape[0] != 1:
        raise ValueError(f"gradcam explains one image, got a batch of {x.shape[0]}")
    h, w = x.shape[-2:]
    raw, resized = {}, []
    for name in names:
        cam = LayerGradCam(bundle.model, modules[name]).attribute(x, target=int(target), relu_attributions=True)
        if cam.dim() != 4:
            raise ValueError(f"layers: {name!r} has no spatial output (its attribution has shape "
                             f"{tuple(cam.shape)}); Grad-CAM needs a convolutional layer such as {bundle.cam_layers}")
        cam = cam.detach().float().sum(dim=1, keepdim=True)  # 1×1×h×w
        raw[name] = cam[0, 0].cpu().numpy()
        up = F.interpolate(_minmax(cam), size=(h, w), mode="bilinear", align_corners=False)
        resized.append(_minmax(up)[0, 0])
    fused = _minmax(torch.stack(resized).clamp(min=0).mean(dim=0))
    return GradCamResult(heatmap=fused.cpu().numpy(), layer_maps=raw, target=int(target))
