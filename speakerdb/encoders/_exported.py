"""Loading a portable export folder (:mod:`speakerdb.encoders._exportfile`): its
encoder runs on ONNX Runtime and numpy alone, the base install."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError
from ._exportfile import GE2E, ONNX_FILE, check, identity, read_manifest

if TYPE_CHECKING:
    import numpy as np

    from ._protocol import Encoder

__all__ = ["load_export"]

log = logging.getLogger(__name__)


def load_export(model: str, backend: str, threads: int | None = None) -> Encoder:
    """The encoder of export folder ``model``, run by ONNX Runtime (any ``backend``: the
    export is the ONNX one). Raises ModelError naming the fix."""
    folder = Path(model).expanduser()
    manifest = read_manifest(folder)
    info = identity(manifest)
    path = folder / ONNX_FILE
    check(path)
    if backend not in ("auto", "onnx"):
        log.info("%s is an ONNX export: backend %s runs it with ONNX Runtime", model, backend)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"{exc}; `pip install onnxruntime`") from exc
    from ._ort_session import ExportError, open_prepared
    from ._sealed import private_cache

    key = f"export-{manifest['onnx_digest']}" if "onnx_digest" in manifest else "export"
    try:
        session = open_prepared(path, threads, beside=private_cache("onnx") / f"{key}.onnx")
    except ExportError as exc:
        raise ModelError(f"cannot run the export {path}: {exc}; export the model again") from exc

    def run(inputs: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {"input": inputs})[0]
        return out

    if manifest.get("family") == GE2E:
        from ._ge2e import GE2EEncoder

        return GE2EEncoder(run, str(info.revision), trim_silences=False)
    from ._features import WaveformFeatures
    from ._onnx import OnnxXVectorEncoder

    features = WaveformFeatures.from_config(info.model, dict(manifest.get("preprocessor") or {}))
    return OnnxXVectorEncoder(run, features, info)
