"""The export folder's format: what ``speakerdb model export`` writes and what reading it
needs, without numpy, ONNX Runtime or torch (the registry asks it on the fast path of
``list`` and ``info``).

An export folder holds ``model.onnx`` (the model's portable ONNX export) and
``speakerdb-export.json``, the manifest: the format, the family, what the graph
takes, the feature extractor's settings (x-vector models) and the original
model's identity (model, revision, embedding size, sample rate). Both are sealed
as the cache is (:mod:`speakerdb.encoders._sealed`) and checked when read.

:func:`require_torch` is the one place that says so when a model has no export on
a machine without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..types import EncoderInfo

# json, importlib.util and the seals are imported where used: the registry imports
# this module on the fast path of ``info``, where no model is an export folder.

__all__ = [
    "GE2E",
    "MANIFEST",
    "ONNX_FILE",
    "XVECTOR",
    "check",
    "exported_identity",
    "identity",
    "is_export",
    "read_manifest",
    "require_torch",
]

MANIFEST = "speakerdb-export.json"
ONNX_FILE = "model.onnx"
FORMAT = "speakerdb-export"
VERSION = 1
XVECTOR, GE2E = "x-vector", "resemblyzer"


def require_torch(model: str) -> None:
    """Raise ModelError naming the fix when torch or transformers, which exporting
    ``model`` needs, is not installed (the slim base install)."""
    import importlib.util

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
    return identity(read_manifest(Path(model).expanduser()))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The checked manifest of export folder ``folder``; ModelError naming the fix."""
    import json

    path = folder / MANIFEST
    check(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is unreadable ({exc}); export the model again") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{path} is not a speakerdb export manifest")
    if manifest.get("version") != VERSION:
        raise ModelError(
            f"{folder} is an export of format {manifest.get('version')}, this speakerdb "
            f"reads {VERSION}; export the model again with this version"
        )
    return manifest


def identity(manifest: dict[str, Any]) -> EncoderInfo:
    try:
        return EncoderInfo(
            str(manifest["model"]),
            None if manifest["revision"] is None else str(manifest["revision"]),
            int(manifest["dim"]),
            int(manifest["sample_rate"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"an export manifest lacks the model's identity ({exc})") from exc


def check(path: Path) -> None:
    from ._sealed import problem

    wrong = problem(path)
    if wrong is not None:
        raise ModelError(
            f"the exported file {path} {wrong}; copy the export folder whole "
            "(with its .seal files), or export the model again"
        )
