"""A small on-disk cache for things the book computes once (trained models, checkpoints)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch


def cache_dir(*parts: str) -> Path:
    """The book's cache folder (``$GRADLIME_CACHE`` or the user cache dir), created on demand."""
    root = os.environ.get("GRADLIME_CACHE")
    if root is None:
        import platformdirs  # lazy: heavy import

        root = platformdirs.user_cache_dir("gradlime-companion")
    path = Path(root).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_key(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def content_digest(*parts: Any) -> str:
    """SHA-256 (16 hex digits) of the *content* of arrays, tensors, bytes or JSON-able values, in order.

    Cached models are keyed by what they were built from (training images, labels, starting weights,
    configuration), never by a name: two different datasets called alike get two cache entries.
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().contiguous().numpy()
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, (bytes, bytearray)):
            h.update(bytes(part))
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def state_digest(state: dict) -> str:
    """:func:`content_digest` of a ``state_dict`` (names and tensors, in name order)."""
    return content_digest(*[x for name in sorted(state) for x in (name, state[name])])


def all_finite(obj: Any) -> bool:
    """True when every floating-point tensor or array inside ``obj`` (nested dicts/lists) is finite."""
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, np.ndarray):
        return not np.issubdtype(obj.dtype, np.floating) or bool(np.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v) for v in obj)
    return True


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename.

    A run killed mid-write leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> Any | None:
    """Load a checkpoint with ``weights_only=True``; ``None`` if missing, unreadable or not finite.

    An unreadable file (truncated, corrupt, not a checkpoint) or one holding a NaN or infinite weight is
    removed, with a warning, so that the caller recomputes it instead of loading garbage.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means "recompute"
        warnings.warn(f"cached checkpoint {path} is unreadable ({type(exc).__name__}); recomputing it",
                      RuntimeWarning, stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    if not all_finite(state):
        warnings.warn(f"cached checkpoint {path} holds non-finite weights; recomputing it", RuntimeWarning,
                      stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    return state
