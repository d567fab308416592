"""Speaker embeddings from an x-vector model's cached ONNX export, run by ONNX Runtime.

This is the default way an x-vector model runs (backend ``auto``). It gives
the model card's embeddings (fp32, one clip per call; cosine to them above
0.99999, in fact within float rounding) about twice as fast as torch on this
CPU, and once the export is cached, loading it needs neither torch nor
transformers: the model's files and revision are read by
:mod:`speakerdb.model_files`, its features computed by :mod:`speakerdb.features`.
A one-shot ``speakerdb verify`` then starts in a fraction of a second.

The first use of a model builds the export (:mod:`speakerdb.onnx_export`) from
the model that transformers loads, which is also the path for a hub model that
is not cached yet. Where the export cannot be had (onnxruntime or onnx not
installed, an architecture torch cannot export, no revision to key the cache
by), backend ``auto`` runs the model with torch instead and says so in the
log; backend ``onnx`` raises :class:`~speakerdb.errors.ModelError`.

Each clip runs on its own, unpadded, exactly as the model card feeds it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE
from .encoder import Encoder
from .errors import ModelError
from .features import WaveformFeatures
from .model_files import ModelFiles, locate_model
from .onnx_export import build_export, export_path
from .ort_session import ExportError, open_prepared
from .types import EncoderInfo

__all__ = ["OnnxXVectorEncoder", "load_onnx_encoder"]

log = logging.getLogger(__name__)


class OnnxXVectorEncoder:
    """An x-vector model's ONNX export behind the :class:`~speakerdb.encoder.Encoder` interface.

    ONNX Runtime sessions may run from several threads at once.
    """

    def __init__(self, session: Any, features: WaveformFeatures, info: EncoderInfo) -> None:
        self._session = session
        self._features = features
        self._info = info

    @property
    def info(self) -> EncoderInfo:
        return self._info

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono clips; float32 ``(n, dim)``, unit rows, in input order."""
        out = np.empty((len(clips), self._info.dim), dtype=np.float32)
        for i, clip in enumerate(clips):
            vector = self._session.run(None, {"input": self._features(clip)})[0][0]
            norm = float(np.linalg.norm(vector))
            out[i] = vector / max(norm, 1e-12)  # torch.nn.functional.normalize's epsilon
        return out


def load_onnx_encoder(
    model: str,
    *,
    revision: str | None = None,
    local_files_only: bool | None = None,
    cache_dir: str | None = None,
    threads: int | None = None,
    required: bool = False,
) -> Encoder:
    """``model`` through ONNX Runtime, exporting it on first use.

    Without ``required`` (backend ``auto``), a model that cannot be run so is
    returned as the torch encoder; with it, that raises ModelError naming why.
    """
    options: dict[str, Any] = {
        "revision": revision,
        "local_files_only": local_files_only,
        "cache_dir": cache_dir,
    }
    fallback = None
    try:
        _require_runtime()
        files = locate_model(model, revision=revision, cache_dir=cache_dir)
        if files is not None:
            cached = _open_cached(model, files, threads)
            if cached is not None:
                return cached
        fallback = _torch_encoder(model, options)
        return _export_and_open(model, options, fallback, threads)
    except ExportError as exc:
        if required:
            raise ModelError(f"cannot run {model} with ONNX Runtime: {exc}") from exc
        log.warning("running %s with torch, not ONNX Runtime: %s", model, exc)
        return fallback if fallback is not None else _torch_encoder(model, options)


def _require_runtime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"{exc}; `pip install onnxruntime onnx`") from exc


def _open_cached(model: str, files: ModelFiles, threads: int | None) -> Encoder | None:
    """The cached export; None when there is none, or it was unusable and is deleted."""
    path = export_path(files)
    if path is None:
        raise ExportError(f"{files.folder} has no single weights file to key a cache by")
    features = _features(model, files)
    if not path.is_file():
        return None
    try:
        return _open(model, files, features, path, threads)
    except ExportError as exc:
        log.warning("the cached ONNX export %s is unusable (%s); rebuilding it", path, exc)
        path.unlink(missing_ok=True)
        return None


def _export_and_open(
    model: str, options: dict[str, Any], loaded: Any, threads: int | None
) -> Encoder:
    """Export the model transformers loaded, cache it, and open the export."""
    # A hub model that was not cached before is now: its files can be read.
    files = locate_model(model, revision=options["revision"], cache_dir=options["cache_dir"])
    path = export_path(files) if files is not None else None
    if files is None or path is None:
        raise ExportError("its files have no single weights file to key a cache by")
    features = _features(model, files)
    log.info("exporting %s to ONNX, once (cached in %s)", model, path.parent)
    build_export(loaded.network, path)
    return _open(model, files, features, path, threads)


def _features(model: str, files: ModelFiles) -> WaveformFeatures:
    try:
        features = WaveformFeatures.from_config(model, files.preprocessor)
    except ModelError as exc:
        raise ExportError(str(exc)) from exc
    if features.sampling_rate != SAMPLE_RATE:
        raise ModelError(
            f"model {model!r} expects {features.sampling_rate} Hz audio; "
            f"speakerdb feeds {SAMPLE_RATE} Hz"
        )
    return features


def _open(
    model: str, files: ModelFiles, features: WaveformFeatures, path: Path, threads: int | None
) -> OnnxXVectorEncoder:
    session = open_prepared(path, threads)
    dim = session.get_outputs()[0].shape[-1]
    if dim != files.config.get("xvector_output_dim"):
        raise ExportError(f"it gives {dim}-d embeddings, not the config's xvector_output_dim")
    info = EncoderInfo(model, files.revision, int(dim), features.sampling_rate)
    log.info("loaded %s with ONNX Runtime from %s (revision %s)", model, path, info.revision)
    return OnnxXVectorEncoder(session, features, info)


def _torch_encoder(model: str, options: dict[str, Any]) -> Any:
    from .hf_encoder import HFXVectorEncoder

    return HFXVectorEncoder.load(model, **options)
