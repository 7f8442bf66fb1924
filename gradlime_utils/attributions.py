"""Gradient attributions through captum, selectable by name, with a guard against silent fall-backs."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# name -> (captum class, attribute() keyword arguments)
ATTRIBUTION_METHODS = ("saliency", "deconvolution", "gradient_x_input", "guided_backprop", "integrated_gradients")
SHORT_NAMES = {"saliency": "S", "deconvolution": "D", "gradient_x_input": "GxI", "guided_backprop": "GB",
               "integrated_gradients": "IG"}
_RELU_REWRITING = {"deconvolution", "guided_backprop"}


def _captum(method: str) -> tuple[Callable, dict]:
    from captum.attr import Deconvolution, GuidedBackprop, InputXGradient, IntegratedGradients, Saliency

    return {
        "saliency": (Saliency, {"abs": True}),
        "deconvolution": (Deconvolution, {}),
        "gradient_x_input": (InputXGradient, {}),
        "guided_backprop": (GuidedBackprop, {}),
        # internal_batch_size bounds memory: all 50 steps of a batch at once took 5.4 GB for 512 digits
        "integrated_gradients": (IntegratedGradients, {"n_steps": 50, "method": "riemann_trapezoid",
                                                       "internal_batch_size": 512}),
    }[method]


def check_method(method: str) -> str:
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"method must be one of {ATTRIBUTION_METHODS}, got {method!r}")
    return method


def check_relu_modules(model: nn.Module, method: str) -> None:
    """Refuse Guided Backprop / Deconvolution on a model without ``nn.ReLU`` modules.

    captum implements both by hooking ``nn.ReLU`` modules; activations written as ``F.relu`` (or other
    modules such as ``nn.ReLU6``) are left alone, and the result silently equals the plain gradient.
    """
    if method in _RELU_REWRITING and not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ValueError(f"{method} needs nn.ReLU modules, and {type(model).__name__} has none (functional or "
                         f"other activations): captum would silently return plain gradients")


def attribute(model: nn.Module, inputs: torch.Tensor, targets, method: str) -> torch.Tensor:
    """Raw attributions (same shape as ``inputs``) of each row's target output (a logit)."""
    check_method(method)
    check_relu_modules(model, method)
    cls, kwargs = _captum(method)
    was_training = model.training
    model.eval()
    inputs = inputs.detach().clone().requires_grad_(True)
    if not isinstance(targets, int):
        targets = torch.as_tensor(targets, device=inputs.device).long()
    try:
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
    from captum.attr import Saliency

    return Saliency(model).attribute(inputs, target=targets, abs=False).detach()


def attribution_maps(model: nn.Module, inputs: torch.Tensor, targets, method: str,
                     batch_size: int = 64) -> torch.Tensor:
    """2-D importance maps E = sum over channels of |attribution| (N×H×W), computed ``batch_size`` images at a time."""
    targets = torch.as_tensor(targets).long().reshape(-1)
    if targets.numel() == 1:
        targets = targets.expand(len(inputs))
    if len(targets) != len(inputs):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    return torch.cat([attribute(model, inputs[i:i + batch_size], targets[i:i + batch_size], method).abs().sum(dim=1)
                      for i in range(0, len(inputs), batch_size)])


NOISE_TUNNELS = ("smoothgrad", "vargrad")


def noise_tunnel_maps(model: nn.Module, inputs: torch.Tensor, targets, kind: str = "smoothgrad",
                      nt_samples: int = 25, stdevs: float = 0.15) -> torch.Tensor:
    """SmoothGrad (mean) or VarGrad (variance) of the gradient over Gaussian-noised copies (captum NoiseTunnel).

    Returns N×H×W maps (absolute values summed over channels); ``stdevs`` is relative to the input's range.
    """
    from captum.attr import NoiseTunnel, Saliency

    if kind not in NOISE_TUNNELS:
        raise ValueError(f"kind must be one of {NOISE_TUNNELS}, got {kind!r}")
    model.eval()
    spread = float(inputs.max() - inputs.min()) * stdevs
    targets = torch.as_tensor(targets, device=inputs.device).long().reshape(-1)
    result = NoiseTunnel(Saliency(model)).attribute(
        inputs.detach().clone().requires_grad_(True), nt_type=kind,
        nt_samples=nt_samples, stdevs=spread, target=targets, abs=False)
    return result.detach().abs().sum(dim=1)
