"""The one training loop of the book's own models, and the one policy for their cached weights.

Every model the book trains (the MNIST CNN, the shapes-benchmark CNN, GAD's support regressions and the paper
profile's fine-tuned ImageNet classifiers) goes through :func:`fit` and is restored with :func:`restore`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gradlime_utils.cache import load_checkpoint
from gradlime_utils.runtime import progress_bar as tqdm
from gradlime_utils.validation import check_int, check_seed


def fit(model: nn.Module, n: int, batch: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy, epochs: int = 1,
        lr: float = 1e-3, batch_size: int = 64, seed: int = 0, desc: str = "training",
        progress: bool = False) -> nn.Module:
    """Train ``model`` in place with Adam on ``n`` examples and return it in eval mode.

    Each epoch visits the examples in a fresh random order drawn from a generator seeded with ``seed`` (the global
    RNGs are not touched, so the caller's ``set_seed`` before building the model decides the initial weights);
    ``batch(indices)`` returns the inputs and targets of one mini-batch, and ``loss(output, target)`` is minimised
    (cross-entropy for classifiers, MSE for GAD's support regressions).
    """
    check_int("n", n, low=1)
    check_int("epochs", epochs, low=0)
    check_int("batch_size", batch_size, low=1)
    gen = torch.Generator().manual_seed(check_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            x, y = batch(idx)
            opt.zero_grad()
            loss(model(x), y).backward()
            opt.step()
    return model.eval()


def restore(model: nn.Module, path: str | Path, key: str | None = None):
    """Load the cached weights at ``path`` into ``model``; the checkpoint on success, else ``None``.

    One policy for every cache of trained weights: a missing file is ``None``; an unreadable or non-finite one is
    removed with a warning (:func:`gradlime_utils.cache.load_checkpoint`); one whose state does not fit ``model``
    (another architecture or layout, or no ``key`` entry) is removed too, so the caller retrains and saves anew.
    ``key`` names the entry holding the state dict when the checkpoint is a dict with metadata.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if checkpoint is None:
        return None
    try:
        model.load_state_dict(checkpoint[key] if key is not None else checkpoint)
    except (KeyError, RuntimeError, TypeError, AttributeError):
        path.unlink(missing_ok=True)
        return None
    return checkpoint
