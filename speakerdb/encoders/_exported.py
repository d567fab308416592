"""Portable model exports: a folder that another machine loads with ``--model OUT``, no torch.

``speakerdb model export MODEL OUT`` (:func:`export_model`) writes to ``OUT``:

- ``model.onnx``: the model's portable ONNX export, the same file the cache holds
  (:mod:`speakerdb.encoders._onnx_export`), never its CPU-specific prepared form
  (:mod:`speakerdb.encoders._ort_session`), which each machine makes for itself;
- ``speakerdb-export.json``: the manifest: the format, the family, what the graph
  takes, the feature extractor's settings (x-vector models) and the original
  model's identity (model, revision, embedding size, sample rate).

Both are sealed as the cache is (:mod:`speakerdb.encoders._sealed`), and checked
when loaded: copy the folder whole, ``.seal`` files included.

The export is the original model, not a new one: an exported folder is recorded
by the original identity (:func:`exported_identity`, used by
:func:`~speakerdb.encoders._registry.normalize_model_name`), so a database built
with ``microsoft/...`` or ``resemblyzer`` accepts ``--model OUT``, and one built with
another model still refuses it. Loading (:func:`load_export`) needs numpy and
ONNX Runtime only, the base install; making the export needs the ``export`` extra.
The registry reads manifests through this module, so it imports nothing heavy
at the top: ``speakerdb list`` and ``info`` load no numpy.

:func:`require_torch` is the one place that says so when a model has no export
on a machine without torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from ..types import EncoderInfo
from ._sealed import problem, seal_folder

if TYPE_CHECKING:
    import numpy as np

    from ._protocol import Encoder

__all__ = [
    "MANIFEST",
    "export_model",
    "exported_identity",
    "is_export",
    "load_export",
    "require_torch",
]

log = logging.getLogger(__name__)

MANIFEST = "speakerdb-export.json"
ONNX_FILE = "model.onnx"
_FORMAT = "speakerdb-export"
_VERSION = 1
_XVECTOR, _GE2E = "x-vector", "resemblyzer"


def require_torch(model: str) -> None:
    """Raise ModelError naming the fix when torch or transformers, which exporting
    ``model`` needs, is not installed (the slim base install)."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"{model} has no ONNX export on this machine, and making one needs "
            f"{' and '.join(missing)}: `pip install 'speakerdb[export]'`, or run "
            f"`speakerdb model export {model} OUT` on a machine that has it and pass --model OUT"
        )


def is_export(model: str) -> bool:
    """Whether ``model`` names a folder written by :func:`export_model`."""
    return (Path(model).expanduser() / MANIFEST).is_file()


def exported_identity(model: str) -> EncoderInfo | None:
    """The original model's identity recorded in export folder ``model``; None when
    ``model`` is not an export folder."""
    if not is_export(model):
        return None
    return _identity(_manifest(Path(model).expanduser()))


# -- writing -------------------------------------------------------------------


def export_model(model: str, out: Path, **options: Any) -> EncoderInfo:
    """Export ``model`` (a hub id, a local folder or ``"resemblyzer"``) into the new
    folder ``out``; return the identity it records. Needs the ``export`` extra unless
    the model's export is cached already. ``options``: ``revision``, ``local_files_only``,
    ``cache_dir``. Raises ModelError naming the fix.
    """
    from ._base import load_encoder
    from ._registry import normalize_model_name

    if is_export(model):
        raise ModelError(f"{model} is an export already; copy the folder instead")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out} exists and is not an empty folder; choose a new folder for OUT")
    # Recorded as a database records it (a local folder by its absolute path).
    model = normalize_model_name(model)
    encoder = load_encoder(model, backend="onnx", **options)  # builds the cached export
    info = encoder.info
    source, manifest = _cached_export(info, options)
    manifest.update(
        onnx_digest=_sha256(source)[:16],
        format=_FORMAT,
        version=_VERSION,
        model=info.model,
        revision=info.revision,
        dim=info.dim,
        sample_rate=info.sample_rate,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(mode=0o700)
        shutil.copyfile(source, partial / ONNX_FILE)
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        (partial / MANIFEST).write_text(text, encoding="utf-8")
        seal_folder(partial)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(partial, out)
    except OSError as exc:
        raise ModelError(f"cannot write the export to {out}: {exc}") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("exported %s to %s", info.model, out)
    return info


def _cached_export(info: EncoderInfo, options: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The cached plain export of the loaded model, and its family's manifest entries."""
    if info.model == _GE2E:
        from ._ge2e import default_weights
        from ._ge2e_runtime import export_file

        return export_file(default_weights().read_bytes()), {"family": _GE2E, "input": "mels"}
    from ._model_files import locate_model
    from ._onnx_export import export_path

    files = locate_model(
        info.model, revision=options.get("revision"), cache_dir=options.get("cache_dir")
    )
    path = export_path(files) if files is not None else None
    if files is None or path is None or not path.is_file():
        raise ModelError(f"{info.model}: its ONNX export was not cached; cannot export it")
    entries = {"family": _XVECTOR, "input": "waveform", "preprocessor": files.preprocessor}
    return path, entries


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- reading -------------------------------------------------------------------


def load_export(model: str, backend: str, threads: int | None = None) -> Encoder:
    """The encoder of export folder ``model``, run by ONNX Runtime (any ``backend``: the
    export is the ONNX one). Raises ModelError naming the fix."""
    folder = Path(model).expanduser()
    manifest = _manifest(folder)
    info = _identity(manifest)
    path = folder / ONNX_FILE
    _check(path)
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

    if manifest.get("family") == _GE2E:
        from ._ge2e import GE2EEncoder

        return GE2EEncoder(run, str(info.revision), trim_silences=False)
    from ._features import WaveformFeatures
    from ._onnx import OnnxXVectorEncoder

    features = WaveformFeatures.from_config(info.model, dict(manifest.get("preprocessor") or {}))
    return OnnxXVectorEncoder(run, features, info)


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    _check(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is unreadable ({exc}); export the model again") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ModelError(f"{path} is not a speakerdb export manifest")
    if manifest.get("version") != _VERSION:
        raise ModelError(
            f"{folder} is an export of format {manifest.get('version')}, this speakerdb "
            f"reads {_VERSION}; export the model again with this version"
        )
    return manifest


def _identity(manifest: dict[str, Any]) -> EncoderInfo:
    try:
        return EncoderInfo(
            str(manifest["model"]),
            None if manifest["revision"] is None else str(manifest["revision"]),
            int(manifest["dim"]),
            int(manifest["sample_rate"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"an export manifest lacks the model's identity ({exc})") from exc


def _check(path: Path) -> None:
    wrong = problem(path)
    if wrong is not None:
        raise ModelError(
            f"the exported file {path} {wrong}; copy the export folder whole "
            "(with its .seal files), or export the model again"
        )
