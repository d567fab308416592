"""Speaker embeddings from an x-vector model's cached ONNX export, run by ONNX Runtime.

This is the default way an x-vector model runs (backend ``auto``). It gives
the model card's embeddings (fp32, one clip per call; cosine to them above
0.99999, in fact within float rounding) about twice as fast as torch on this
CPU, and once the export is cached, loading it needs neither torch nor
transformers: the model's files and revision are read by
:mod:`speakerdb.encoders._model_files`, its features computed by
:mod:`speakerdb.encoders._features`.
A one-shot ``speakerdb verify`` then starts in a fraction of a second.

The first use of a model builds the export (:mod:`speakerdb.encoders._onnx_export`) from
the model that transformers loads, which is also the path for a hub model that
is not cached yet. Where the export cannot be had (onnxruntime or onnx not
installed, an architecture torch cannot export, no revision to key the cache
by), backend ``auto`` runs the model with torch instead and says so in the
log; backend ``onnx`` raises :class:`~speakerdb.errors.ModelError`.

With ``runtime="openvino-bf16"`` the same export runs on OpenVINO in
bfloat16 instead (:mod:`speakerdb.encoders._openvino`), the opt-in fast path.

Each clip runs on its own, unpadded, exactly as the model card feeds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..audio._decode import SAMPLE_RATE
from ..errors import ModelError
from ..types import EncoderInfo
from ._exportfile import require_torch
from ._features import WaveformFeatures
from ._model_files import ModelFiles, locate_model
from ._onnx_export import build_export, export_path
from ._ort_session import ExportError, check_sealed, open_prepared, open_session
from ._protocol import Encoder

__all__ = ["OnnxXVectorEncoder", "Runtime", "load_onnx_encoder"]

log = logging.getLogger(__name__)

#: What runs the export: ONNX Runtime in fp32 (exact), or OpenVINO in bfloat16 (fast).
Runtime = Literal["onnxruntime", "openvino-bf16"]
#: Model input ``(1, samples)`` to the raw, unnormalised embedding ``(1, dim)``.
_Run = Callable[[np.ndarray], np.ndarray]


class OnnxXVectorEncoder:
    """An x-vector model's ONNX export behind the :class:`~speakerdb.encoders._base.Encoder`
    interface.

    It may be used from several threads at once, on either runtime.
    """

    def __init__(self, run: _Run, features: WaveformFeatures, info: EncoderInfo) -> None:
        self._run = run
        self._features = features
        self._info = info

    @property
    def info(self) -> EncoderInfo:
        return self._info

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono clips; float32 ``(n, dim)``, unit rows, in input order."""
        out = np.empty((len(clips), self._info.dim), dtype=np.float32)
        for i, clip in enumerate(clips):
            vector = self._run(self._features(clip))[0]
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
    runtime: Runtime = "onnxruntime",
) -> Encoder:
    """``model`` through ONNX Runtime (or OpenVINO, ``runtime``), exporting it on first use.

    Without ``required`` (backend ``auto``), a model that cannot be run so is
    returned as the torch encoder; with it, that raises ModelError naming why.
    OpenVINO failing to compile a sound export always raises ModelError; a damaged
    export is rebuilt on either runtime.
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
            cached = _open_cached(model, files, threads, runtime)
            if cached is not None:
                return cached
        fallback = _torch_encoder(model, options)
        return _export_and_open(model, options, fallback, threads, runtime)
    except ExportError as exc:
        if required:
            via = "ONNX Runtime" if runtime == "onnxruntime" else "OpenVINO (its ONNX export)"
            raise ModelError(f"cannot run {model} with {via}: {exc}") from exc
        log.warning("running %s with torch, not ONNX Runtime: %s", model, exc)
        return fallback if fallback is not None else _torch_encoder(model, options)


def _require_runtime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"{exc}; `pip install onnxruntime onnx`") from exc


def _open_cached(
    model: str, files: ModelFiles, threads: int | None, runtime: Runtime
) -> Encoder | None:
    """The cached export; None when there is none, or it was unusable and is deleted."""
    path = export_path(files)
    if path is None:
        raise ExportError(f"{files.folder} has no single weights file to key a cache by")
    features = _features(model, files)
    if not path.is_file():
        return None
    try:
        return _open(model, files, features, path, threads, runtime)
    except ExportError as exc:
        log.warning("the cached ONNX export %s is unusable (%s); rebuilding it", path, exc)
        path.unlink(missing_ok=True)
        return None


def _export_and_open(
    model: str, options: dict[str, Any], loaded: Any, threads: int | None, runtime: Runtime
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
    return _open(model, files, features, path, threads, runtime)


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
    model: str,
    files: ModelFiles,
    features: WaveformFeatures,
    path: Path,
    threads: int | None,
    runtime: Runtime,
) -> OnnxXVectorEncoder:
    run, dim = _runner(path, threads, runtime)
    if dim != files.config.get("xvector_output_dim"):
        raise ExportError(f"it gives {dim}-d embeddings, not the config's xvector_output_dim")
    info = EncoderInfo(model, files.revision, int(dim), features.sampling_rate)
    log.info("loaded %s with %s from %s (revision %s)", model, runtime, path, info.revision)
    return OnnxXVectorEncoder(run, features, info)


def _runner(path: Path, threads: int | None, runtime: Runtime) -> tuple[_Run, int]:
    """The function that runs the export at ``path``, and its embedding size."""
    if runtime == "openvino-bf16":
        from ._openvino import open_openvino

        check_sealed(path)  # ExportError: the export is rebuilt
        try:
            compiled = open_openvino(path, threads)
        except ModelError:
            open_session(path)  # ExportError where the export itself is bad: it is rebuilt
            raise
        return compiled.run, compiled.dim
    session = open_prepared(path, threads)

    def run(features: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {"input": features})[0]
        return out

    return run, int(session.get_outputs()[0].shape[-1])


def _torch_encoder(model: str, options: dict[str, Any]) -> Any:
    require_torch(model)
    from ._hf import HFXVectorEncoder

    return HFXVectorEncoder.load(model, **options)
