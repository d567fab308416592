"""``speakerdb model export MODEL OUT``: write a portable export folder
(:mod:`speakerdb.encoders._exportfile` describes it) that another machine loads with
``--model OUT``, without torch.

The export is the original model, not a new one: the folder records the original
identity, so a database built with ``microsoft/...`` or ``resemblyzer`` accepts
``--model OUT``, and one built with another model still refuses it. Making the
export needs the ``export`` extra (torch), unless the model's export is cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..types import EncoderInfo
from ._exportfile import FORMAT, GE2E, MANIFEST, ONNX_FILE, VERSION, XVECTOR, is_export
from ._sealed import seal_folder

__all__ = ["export_model"]

log = logging.getLogger(__name__)


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
        format=FORMAT,
        version=VERSION,
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
    if info.model == GE2E:
        from ._ge2e import default_weights
        from ._ge2e_runtime import export_file

        return export_file(default_weights().read_bytes()), {"family": GE2E, "input": "mels"}
    from ._model_files import locate_model
    from ._onnx_export import export_path

    files = locate_model(
        info.model, revision=options.get("revision"), cache_dir=options.get("cache_dir")
    )
    path = export_path(files) if files is not None else None
    if files is None or path is None or not path.is_file():
        raise ModelError(f"{info.model}: its ONNX export was not cached; cannot export it")
    entries = {"family": XVECTOR, "input": "waveform", "preprocessor": files.preprocessor}
    return path, entries


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
