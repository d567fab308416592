"""The ONNX export of a user's x-vector model: built once from its weights, cached on disk.

Nothing exported is shipped or committed: the first use of a model on a machine
loads it with transformers and torch, exports it with ``torch.onnx`` (the
TorchScript exporter: three times quicker than the dynamo one here, runs about
10 % faster in ONNX Runtime, and needs ``onnx`` but not ``onnxscript``), checks
the export against torch on probe clips of two lengths, and only then moves it
into the cache with an atomic rename, so a crash or a concurrent builder never
leaves half a file under the final name. A cached file that ONNX Runtime
cannot load is deleted and rebuilt (:mod:`speakerdb.encoders._onnx`).

The cache lives under :func:`~speakerdb.config.cache_root` in ``onnx/``, one
file per key; the key hashes the export recipe's version, the model's
revision (hub commit or weights hash, :mod:`speakerdb.encoders._model_files`) and its
``config.json``, so new weights or a new architecture get a new file. The
graph takes one unpadded clip, ``input`` of shape ``(1, samples)`` with a
dynamic time axis, and returns the unnormalised embedding (``output``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._model_files import ModelFiles
from ._ort_session import ExportError, open_session
from ._sealed import private_cache, seal

__all__ = [
    "EXPORT_VERSION",
    "ExportError",
    "build_export",
    "export_checked",
    "export_path",
]

log = logging.getLogger(__name__)

#: Bumped whenever the exported graph changes, so that old cache entries are not used.
EXPORT_VERSION = 2
_OPSET = 17
# The export must reproduce torch: relative L2 error of the raw embedding on the probes.
_MAX_RELATIVE_ERROR = 1e-4
_PROBE_SECONDS = (1.7, 2.9)


def export_path(files: ModelFiles) -> Path | None:
    """Where the export of the model in ``files`` is cached; None without a revision."""
    if files.revision is None:
        return None  # nothing stable to key the cache by
    key = hashlib.sha256()
    for part in (f"xvector-v{EXPORT_VERSION}", files.revision):
        key.update(part.encode() + b"\0")
    key.update(files.config_bytes)
    return private_cache("onnx") / f"{key.hexdigest()[:32]}.onnx"


def build_export(network: Any, destination: Path) -> None:
    """Export torch ``network`` (an ``...ForXVector`` model) to ``destination``, checked.

    Raises :class:`ExportError` when torch cannot export it or ONNX Runtime does
    not reproduce it; nothing is left under ``destination`` then.
    """
    import torch

    class Embeddings(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_values: torch.Tensor) -> torch.Tensor:
            return self.model(input_values=input_values).embeddings

    rng = np.random.default_rng(0)
    probes = [
        (0.1 * rng.standard_normal((1, int(seconds * 16_000)))).astype(np.float32)
        for seconds in _PROBE_SECONDS
    ]
    export_checked(Embeddings(network).eval(), destination, probes, dynamic_axis=1)


def export_checked(
    module: Any, destination: Path, probes: list[np.ndarray], *, dynamic_axis: int
) -> None:
    """Export ``module`` (one float32 input, one output) to ``destination`` atomically,
    once ONNX Runtime reproduces it on ``probes``, whose ``dynamic_axis`` varies.
    """
    if importlib.util.find_spec("onnx") is None:
        raise ExportError("torch.onnx needs the onnx package to write it: `pip install onnx`")
    marker = destination.with_suffix(".failed")
    _refuse_known_failure(marker)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f"{destination.name}.{os.getpid()}.partial")
    start = time.perf_counter()
    try:
        _export(module, partial, probes[0], dynamic_axis)
        _check_export(module, partial, probes)
        seal(partial, at=destination)  # owner-only, its digest recorded
        os.replace(partial, destination)
    except ExportError as exc:
        _record_failure(marker, str(exc))
        raise
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported the model to %s in %.1f s", destination, time.perf_counter() - start)


def _versions() -> str:
    import onnxruntime
    import torch

    runtime = onnxruntime.__version__
    return f"export v{EXPORT_VERSION}, torch {torch.__version__}, onnxruntime {runtime}"


def _refuse_known_failure(marker: Path) -> None:
    """Raise ExportError at once when the same export failed before with these versions:
    exporting again would cost every query the same seconds for the same failure."""
    try:
        versions, _, reason = marker.read_text(encoding="utf-8").partition("\n")
    except OSError:
        return
    if versions == _versions():
        raise ExportError(f"{reason} (as before; delete {marker} to try exporting again)")


def _record_failure(marker: Path, reason: str) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        partial = marker.with_name(f"{marker.name}.{os.getpid()}.partial")
        partial.write_text(f"{_versions()}\n{reason}", encoding="utf-8")
        partial.chmod(0o600)
        os.replace(partial, marker)
    except OSError as exc:  # a read-only cache: the next run tries again
        log.debug("could not record the failed export in %s: %s", marker, exc)


def _export(module: Any, target: Path, example: np.ndarray, dynamic_axis: int) -> None:
    import torch

    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # Tracer notes about Python booleans concern padding and masks, never used here.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(example),),
                str(target),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {dynamic_axis: "length"}},
                opset_version=_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many kinds; all mean "not exportable"
        raise ExportError(f"torch.onnx could not export it ({type(exc).__name__}: {exc})") from exc


def _check_export(module: Any, path: Path, probes: list[np.ndarray]) -> None:
    import torch

    session = open_session(path)
    for probe in probes:
        with torch.inference_mode():
            expected = module(torch.from_numpy(probe)).numpy()
        got = session.run(None, {"input": probe})[0]
        scale = max(float(np.linalg.norm(expected)), 1e-12)
        error = float(np.linalg.norm(got - expected)) / scale
        if got.shape != expected.shape or not error <= _MAX_RELATIVE_ERROR:
            raise ExportError(f"the export differs from torch (relative error {error:.2g})")
