"""OpenVINO on a cached ONNX export, in bfloat16: the opt-in fast path (``openvino-bf16``).

On a CPU with bfloat16 instructions (AVX512-BF16 or AMX), OpenVINO runs the
export's matrix products and convolutions in bfloat16 with oneDNN's kernels:
on this machine (AMD EPYC, AVX512-BF16) about 1.5x ONNX Runtime's fp32 speed
and 2.7x the model card's for clips of lengths it has not seen before, more
when lengths repeat (``scripts/bench_encoder.py``). Its embeddings are close to
fp32's, not equal (centred cosine about 0.995 at worst on real speech), and
comparable with them, so a database may be built with one backend and queried
with the other.

OpenVINO is an optional extra (``pip install 'speakerdb[fast]'``). The compiled
model is cached by OpenVINO under :func:`~speakerdb.config.cache_root` in
``openvino/``, which makes later loads take 0.1 s instead of 1 s. Each thread
gets its own infer request, so one model may be used from several threads.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ._sealed import private_cache, seal_folder, sweep_folder

__all__ = ["INSTALL_HINT", "OpenVinoModel", "bf16_available", "open_openvino"]

log = logging.getLogger(__name__)

INSTALL_HINT = "install OpenVINO with `pip install 'speakerdb[fast]'`"


def bf16_available() -> bool:
    """Whether OpenVINO is installed and can run bfloat16 on this CPU.

    Raises ModelError naming the install command when OpenVINO is missing.
    """
    core = _core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoModel:
    """A compiled model with one infer request per calling thread."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self._local = threading.local()
        self.dim = int(compiled.output(0).get_partial_shape()[-1].get_length())

    def run(self, features: np.ndarray) -> np.ndarray:
        """The model's first output for ``features``, as a new array."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        # The output tensor is reused by the request's next inference: copy it out.
        return np.array(request.infer({0: features})[0])


def open_openvino(path: Path, threads: int | None = None) -> OpenVinoModel:
    """The export at ``path`` compiled for this CPU in bfloat16; ModelError when it cannot be."""
    core = _core()
    cache = private_cache("openvino")
    try:
        sweep_folder(cache)  # compiled models that are not the ones written: compiled anew
        core.set_property({"CACHE_DIR": str(cache)})
    except OSError as exc:  # a read-only cache: compile every time instead
        log.debug("OpenVINO's model cache not used (%s): %s", cache, exc)
    config = {
        "INFERENCE_PRECISION_HINT": "bf16",
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,  # one clip at a time, all threads on it
        "INFERENCE_NUM_THREADS": threads or 0,  # 0: OpenVINO's choice, one per core
    }
    try:
        compiled = core.compile_model(str(path), "CPU", config)
    # OpenVINO raises RuntimeError (and its own subclasses of Exception) for a bad model.
    except Exception as exc:
        raise ModelError(f"OpenVINO cannot compile {path}: {exc}") from exc
    try:
        seal_folder(cache)
    except OSError as exc:
        log.debug("OpenVINO's compiled model not sealed in %s: %s", cache, exc)
    log.info("opened %s with OpenVINO in bfloat16 (compiled models cached in %s)", path, cache)
    return OpenVinoModel(compiled)


def _core() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ModelError(f"backend openvino-bf16 needs OpenVINO ({exc}); {INSTALL_HINT}") from exc
    return openvino.Core()
