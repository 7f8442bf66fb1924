"""A small on-disk cache for things the book computes once (trained models, checkpoints)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def cache_dir(*parts: str) -> Path:
    """The book's cache folder (``$GRADLIME_CACHE`` or the user cache dir), created on demand."""
    root = os.environ.get("GRADLIME_CACHE")
    if root is None:
        import platformdirs

        root = platformdirs.user_cache_dir("gradlime-companion")
    path = Path(root).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_key(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
    """Load a checkpoint with ``weights_only=True``; ``None`` if missing or unreadable.

    An unreadable file (truncated, corrupt, not a checkpoint) is removed so that the caller
    recomputes it instead of loading garbage.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure to read means "recompute"
        path.unlink(missing_ok=True)
        return None
