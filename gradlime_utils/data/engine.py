"""Inference engines behind :meth:`ModelBundle.predict_logits`: the model queries every chapter pays for.

``"torch"`` is PyTorch eager under ``inference_mode`` (the reference, and always used on a GPU, for gradients and
for training). ``"onnxruntime"`` exports the same module with ``torch.onnx.export`` and runs it with ONNX
Runtime's CPU provider; ``bench/bench_lime.py`` measures both side by side and the faster one on these 2-core
machines is the CPU default (:data:`CPU_ENGINE`). An exported graph is keyed by the module's parameters *and* their
in-place version counters, so a model that is trained or loaded after its first query is exported again, never
queried stale; the ONNX files are cached on disk under a hash of the weights, input shape and library versions.
"""
from __future__ import annotations

import io
import json
import os
import platform
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from gradlime_utils.cache import cache_dir, config_key, content_digest
from gradlime_utils.validation import check_choice

ENGINES = ("torch", "onnxruntime")
CPU_ENGINE = "onnxruntime"  # measured faster on the 2-core machines (bench/bench_lime.py prints the table)


def check_engine(engine: str) -> str:
    return check_choice("engine", engine, ("auto",) + ENGINES)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401  # lazy: heavy import (only whether it is installed)
    except ImportError:
        return False
    return True


def resolve_engine(engine: str, device: torch.device) -> str:
    """The engine a bundle really uses: PyTorch on a GPU; on a CPU the requested one (``auto``: :data:`CPU_ENGINE`
    when ONNX Runtime is installed)."""
    check_engine(engine)
    if device.type != "cpu":
        return "torch"
    if engine == "auto":
        return CPU_ENGINE if onnxruntime_available() else "torch"
    if engine == "onnxruntime" and not onnxruntime_available():
        raise ValueError("engine='onnxruntime' needs the onnxruntime package (pip install onnxruntime)")
    return engine


def _state_version(model: nn.Module) -> tuple:
    """Cheap identity of the current weights: every parameter/buffer object and its in-place version counter."""
    return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))


def _versions() -> dict:
    import onnxruntime  # lazy: heavy import

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


@dataclass
class _Session:
    model: weakref.ref
    version: tuple
    shape: tuple
    session: object
    input_name: str


class OnnxRunner:
    """Runs an ``nn.Module`` (eval mode, CPU) through ONNX Runtime, re-exporting whenever its weights change."""

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self._sessions: dict[int, _Session] = {}

    def _export(self, model: nn.Module, shape: tuple) -> bytes:
        digest = content_digest(*[x for name, t in sorted(model.state_dict().items()) for x in (name, t)])
        key = config_key({"weights": digest, "class": type(model).__qualname__, "shape": shape[1:],
                          **_versions(), "version": 1})
        path = cache_dir("onnx") / f"{type(model).__name__}-{key}.onnx"
        if path.is_file():
            return path.read_bytes()
        was_training = model.training
        model.eval()
        buffer = io.BytesIO()
        dummy = torch.zeros((2, *shape[1:]))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (dummy,), buffer, dynamo=False, input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
        finally:
            model.train(was_training)
        data = buffer.getvalue()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data

    def session(self, model: nn.Module, shape: tuple) -> _Session:
        import onnxruntime as ort  # lazy: heavy import

        version = _state_version(model)
        cached = self._sessions.get(id(model))
        if (cached is not None and cached.model() is model and cached.version == version
                and cached.shape[1:] == shape[1:]):
            return cached
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(self._export(model, shape), options, providers=["CPUExecutionProvider"])
        self._sessions[id(model)] = _Session(weakref.ref(model), version, tuple(shape), session,
                                             session.get_inputs()[0].name)
        return self._sessions[id(model)]

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        s = self.session(model, tuple(x.shape))
        arr = np.ascontiguousarray(x.detach().cpu().contiguous().numpy(), dtype=np.float32)
        return torch.from_numpy(s.session.run(None, {s.input_name: arr})[0])


# ---------------------------------------------------------------------------------------------------------
# batch size, measured once per machine and model


BATCH_CANDIDATES = (1, 4, 8, 16, 32)


def machine_key() -> dict:
    """What decides which batch size is fastest: the processor, its cores and the library versions."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__}


def measure_batch_sizes(run, make_batch, candidates: Sequence[int] = BATCH_CANDIDATES, images: int = 32,
                        repeats: int = 2) -> dict[int, float]:
    """Seconds per image for each batch size: ``run(batch)`` on ``images`` images, best of ``repeats``.

    A slow model (over 30 ms per image at batch 1, e.g. VGG16 on 2 cores: 130 ms) is measured on 8 images once,
    at batch sizes up to 8: the full measurement took 51 s for VGG16, for a gain of a few per cent."""
    if not candidates or any((not isinstance(b, int)) or b < 1 for b in candidates):
        raise ValueError(f"candidates must be positive integers, got {candidates!r}")
    one = make_batch(1)
    run(one)  # warm-up
    start = time.perf_counter()
    run(one)
    if time.perf_counter() - start > 0.03:
        candidates = [b for b in candidates if b <= 8] or [min(candidates)]
        images, repeats = 8, 1
    per_image = {}
    for b in candidates:
        batch = make_batch(b)
        n_calls = max(1, images // b)
        run(batch)  # warm-up (allocations, ONNX Runtime's first run)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(n_calls):
                run(batch)
            best = min(best, (time.perf_counter() - start) / (n_calls * b))
        per_image[b] = best
    return per_image


def autotuned_batch_size(name: str, engine: str, input_shape: tuple, run, make_batch,
                         candidates: Sequence[int] = BATCH_CANDIDATES) -> tuple[int, dict[int, float], bool]:
    """The fastest batch size for this model and engine on this machine, measured once and cached by
    (machine, library versions, model name, engine, input shape). Returns (batch size, table, from cache)."""
    key = config_key({"machine": machine_key(), "model": name, "engine": engine, "shape": list(input_shape),
                      "candidates": list(candidates)})
    path = cache_dir("autotune") / f"{name}-{engine}-{key}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            return int(data["batch_size"]), {int(k): v for k, v in data["per_image"].items()}, True
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
    table = measure_batch_sizes(run, make_batch, candidates)
    best = min(table, key=table.get)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"batch_size": best, "per_image": table, "machine": machine_key()}))
    os.replace(tmp, path)
    return best, table, False
