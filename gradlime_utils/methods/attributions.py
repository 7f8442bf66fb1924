"""Gradient attributions through captum, selectable by name, with a guard against silent fall-backs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from gradlime_utils.validation import check_choice, check_int


@dataclass(frozen=True)
class AttributionMethod:
    """One gradient attribution method of the registry :data:`METHODS`.

    ``id`` is what every function takes (``method="integrated_gradients"``); ``short`` names the column in GAD's
    Tables 1-2 (S, D, GxI, GB, IG); ``display`` names the row in the evaluation chapter's tables, where
    :meth:`label` adds the model it was computed on ("integrated gradients (GAD)"). The evaluation's Quantus
    baselines ("Integrated Gradients", ...) are ``quantus.explain``'s own implementations, hence other names.
    ``rewrites_relu``: captum implements it by rewriting ``nn.ReLU`` modules (see :func:`check_relu_modules`).
    """

    id: str
    short: str
    display: str
    rewrites_relu: bool = False

    def label(self, variant: str | None = None) -> str:
        return f"{self.display} ({variant})" if variant else self.display


METHODS = {m.id: m for m in (
    AttributionMethod("saliency", "S", "saliency"),
    AttributionMethod("deconvolution", "D", "deconvolution", rewrites_relu=True),
    AttributionMethod("gradient_x_input", "GxI", "gradient x input"),
    AttributionMethod("guided_backprop", "GB", "guided backprop", rewrites_relu=True),
    AttributionMethod("integrated_gradients", "IG", "integrated gradients"),
)}
ATTRIBUTION_METHODS = tuple(METHODS)  # the ids, in the order of GAD's tables
SHORT_NAMES = {i: m.short for i, m in METHODS.items()}
_RELU_REWRITING = {i for i, m in METHODS.items() if m.rewrites_relu}
# The reference x̄ of Gradient × Input and Integrated Gradients. "black": the model's preprocessed black image
# (raw pixel 0), the same reference that GAD's RS occlusion (Eq. 2), LIME's hide_color=0 and Quantus' "black"
# perturbation use, so that a pixel the metrics cannot change (already black) gets no attribution.
# "zero_input": the tensor 0 after normalisation (captum's default; raw grey for ImageNet, -0.42 std for MNIST).
BASELINES = ("black", "zero_input")


# id -> (captum class, attribute() keyword arguments)
def _captum(method: str) -> tuple[Callable, dict]:
    from captum.attr import Deconvolution, GuidedBackprop, IntegratedGradients, Saliency  # lazy: heavy import

    return {
        "saliency": (Saliency, {"abs": True}),
        "deconvolution": (Deconvolution, {}),
        "gradient_x_input": (None, {}),  # (x - x̄) ⊙ ∇f, computed in attribute(): captum's has no reference
        "guided_backprop": (GuidedBackprop, {}),
        # internal_batch_size (images x steps at once) is set per input size and device by images_per_batch
        "integrated_gradients": (IntegratedGradients, {"n_steps": 50, "method": "riemann_trapezoid"}),
    }[method]


# How many pixels of images (x IG steps) one backward pass may hold: all 50 IG steps of 512 MNIST digits at once
# took 5.4 GB on a CPU. A 224-pixel photo is 64 digits, so the same budget is 8 photos (ResNet18 or VGG16 at 224,
# 512 at once, would need 30-100 GB). A GPU gets four times the CPU budget.
PIXEL_BUDGET = {"cpu": 512 * 28 * 28, "cuda": 4 * 512 * 28 * 28}


def images_per_batch(inputs: torch.Tensor, at_most: int = 512) -> int:
    """The number of ``inputs`` (N×C×H×W) one gradient pass takes at once on their device: ``at_most``, capped by
    :data:`PIXEL_BUDGET` (at least 1)."""
    pixels = int(inputs.shape[-1]) * int(inputs.shape[-2])
    budget = PIXEL_BUDGET.get(inputs.device.type, PIXEL_BUDGET["cpu"])
    return max(1, min(int(at_most), budget // max(1, pixels)))


def check_method(method: str) -> str:
    return check_choice("method", method, ATTRIBUTION_METHODS)


def check_relu_modules(model: nn.Module, method: str) -> None:
    """Refuse Guided Backprop / Deconvolution on a model without ``nn.ReLU`` modules.

    captum implements both by hooking ``nn.ReLU`` modules; activations written as ``F.relu`` (or other
    modules such as ``nn.ReLU6``) are left alone, and the result silently equals the plain gradient.
    """
    if method in _RELU_REWRITING and not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ValueError(f"{method} needs nn.ReLU modules, and {type(model).__name__} has none (functional or "
                         f"other activations): captum would silently return plain gradients")


def check_baseline(baseline: str) -> str:
    return check_choice("baseline", baseline, BASELINES)


def baseline_input(preprocess: Callable, images, baseline: str = "black") -> torch.Tensor:
    """The reference x̄ (1×C×H×W) for images shaped like ``images`` (uint8 N×H×W×3 or one H×W×3).

    ``preprocess`` is the model's own (e.g. ``ModelBundle.preprocess``): "black" is ``preprocess`` of an all-zero
    image, "zero_input" the zero tensor of the same shape.
    """
    check_baseline(baseline)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    black = preprocess(np.zeros_like(images[:1]))
    return black if baseline == "black" else torch.zeros_like(black)


def attribute(model: nn.Module, inputs: torch.Tensor, targets, method: str,
              reference: torch.Tensor | None = None) -> torch.Tensor:
    """Raw attributions (same shape as ``inputs``) of each row's target output (a logit).

    ``reference`` is x̄ for Gradient × Input, (x - x̄) ⊙ ∇f(x), and Integrated Gradients (Sundararajan et al. 2017,
    Eq. 1: completeness Σ attributions = f(x) - f(x̄)); ``None`` means the zero tensor. Build it with
    :func:`baseline_input`; the other methods ignore it.
    """
    check_method(method)
    check_relu_modules(model, method)
    cls, kwargs = _captum(method)
    was_training = model.training
    model.eval()
    inputs = inputs.detach().clone().requires_grad_(True)
    if not isinstance(targets, int):
        targets = torch.as_tensor(targets, device=inputs.device).long()
    if reference is None:
        reference = torch.zeros_like(inputs[:1])
    reference = reference.detach().to(inputs.device, inputs.dtype)
    try:
        if method == "gradient_x_input":
            return (_plain_gradient(model, inputs, targets) * (inputs.detach() - reference)).detach()
        if method == "integrated_gradients":
            kwargs = dict(kwargs, baselines=reference.expand_as(inputs).contiguous(),
                          internal_batch_size=images_per_batch(inputs))
        result = cls(model).attribute(inputs, target=targets, **kwargs).detach()
        if method in _RELU_REWRITING:
            plain = _plain_gradient(model, inputs, targets)
            if torch.allclose(result, plain, atol=1e-7, rtol=1e-5) and result.abs().sum() > 0:
                raise ValueError(f"{method} returned exactly the plain gradient on {type(model).__name__}: its "
                                 f"ReLUs are probably functional, so captum's rule was not applied")
    finally:
        model.train(was_training)
    return result


def _plain_gradient(model: nn.Module, inputs: torch.Tensor, targets) -> torch.Tensor:
    from captum.attr import Saliency  # lazy: heavy import

    return Saliency(model).attribute(inputs, target=targets, abs=False).detach()


def attribution_maps(model: nn.Module, inputs: torch.Tensor, targets, method: str,
                     batch_size: int = 64, reference: torch.Tensor | None = None) -> torch.Tensor:
    """2-D importance maps E = sum over channels of ``|attribution|`` (N×H×W), computed ``batch_size`` images at a time
    (fewer for large images: :func:`images_per_batch`).

    ``reference``: x̄ of Gradient × Input and Integrated Gradients (see :func:`attribute`, :func:`baseline_input`).
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    targets = torch.as_tensor(targets).long().reshape(-1)
    if targets.numel() == 1:
        targets = targets.expand(len(inputs))
    if len(targets) != len(inputs):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    batch_size = images_per_batch(inputs, batch_size)
    return torch.cat([attribute(model, inputs[i:i + batch_size], targets[i:i + batch_size], method,
                                reference).abs().sum(dim=1)
                      for i in range(0, len(inputs), batch_size)])


NOISE_TUNNELS = ("smoothgrad", "vargrad")


def noise_tunnel_maps(model: nn.Module, inputs: torch.Tensor, targets, kind: str = "smoothgrad",
                      nt_samples: int = 25, stdevs: float = 0.15) -> torch.Tensor:
    """SmoothGrad (mean) or VarGrad (variance) of the gradient over Gaussian-noised copies (captum NoiseTunnel).

    Returns N×H×W maps (absolute values summed over channels); ``stdevs`` is relative to the input's range.
    """
    from captum.attr import NoiseTunnel, Saliency  # lazy: heavy import

    kind = check_choice("kind", kind, NOISE_TUNNELS)
    model.eval()
    spread = float(inputs.max() - inputs.min()) * stdevs
    targets = torch.as_tensor(targets, device=inputs.device).long().reshape(-1)
    result = NoiseTunnel(Saliency(model)).attribute(
        inputs.detach().clone().requires_grad_(True), nt_type=kind,
        nt_samples=nt_samples, stdevs=spread, target=targets, abs=False)
    return result.detach().abs().sum(dim=1)
