"""The speaker-encoder interface, the loader that picks an implementation, and the
checks that a database's embeddings come from the encoder in use.

An encoder turns 16 kHz mono float32 clips into L2-normalised float32
embeddings. Every implementation embeds each clip on its own (or together
with clips of exactly the same length), so a clip's embedding never depends
on what else is in its batch: padding changes the output of the group-norm
feature encoders that x-vector checkpoints use.

An x-vector model runs on one of these backends (``backend=``, else
``SPEAKERDB_BACKEND``, else ``auto``):

- ``auto``: ONNX Runtime on the model's cached ONNX export, built on first use
  (:mod:`speakerdb.encoders._onnx`), about twice torch's speed with the model
  card's embeddings, and no torch import once cached; torch where that cannot be had.
- ``onnx``: ONNX Runtime or an error.
- ``torch``: transformers and torch, fp32, the model card's computation
  (:mod:`speakerdb.encoders._hf`).
- ``openvino-bf16``: the opt-in fast path, OpenVINO in bfloat16 on the same
  cached export (:mod:`speakerdb.encoders._openvino`, the ``fast`` extra).
- ``torch-bf16``: torch with bfloat16 weights; slower than ``openvino-bf16``.

The bf16 paths' embeddings are close to fp32's, not equal, but comparable with
them: a database may be built with one backend and queried with another. On a
CPU without bf16 instructions they would be slower than fp32, so ``auto`` is
used instead, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import ENV_MODEL, normalize_model_name, resolve_backend
from ..errors import ModelError, ModelMismatch
from ..types import EncoderInfo

__all__ = [
    "RESEMBLYZER",
    "Encoder",
    "check_model_name",
    "check_same_encoder",
    "load_encoder",
    "normalize_model_name",
    "pinned_options",
    "requested_model",
]

RESEMBLYZER = "resemblyzer"

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """What the rest of speakerdb needs from a speaker encoder."""

    @property
    def info(self) -> EncoderInfo:
        """The encoder's identity, stored in the database at first use."""
        ...

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono float32 clips; return a float32 ``(n, dim)`` array of unit rows."""
        ...


def load_encoder(
    model: str,
    *,
    revision: str | None = None,
    local_files_only: bool | None = None,
    cache_dir: str | None = None,
    backend: str | None = None,
) -> Encoder:
    """Load ``model``: ``"resemblyzer"``, a Hugging Face hub id, or a local directory,
    on ``backend`` (see above; ``"resemblyzer"`` has no bf16 path and runs its fp32 one).

    Raises :class:`~speakerdb.errors.ModelError` naming the fix when the model
    cannot be had (no network, a wrong path, a missing optional extra).
    """
    chosen = resolve_backend(backend)
    if model == RESEMBLYZER:
        from ._ge2e import GE2EEncoder

        return GE2EEncoder.load(backend=chosen)
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().exists():
        # A hub id is never written so: this was meant as a folder.
        raise ModelError(
            f"{model}: no such model folder; pass a folder written by save_pretrained(), "
            "a hub id, or 'resemblyzer'"
        )
    options: dict[str, Any] = {
        "revision": revision,
        "local_files_only": local_files_only,
        "cache_dir": cache_dir,
    }
    if chosen == "openvino-bf16":
        from ._openvino import bf16_available

        if bf16_available():
            from ._onnx import load_onnx_encoder

            return load_onnx_encoder(model, required=True, runtime="openvino-bf16", **options)
        chosen = _no_bf16()
    if chosen == "torch-bf16":
        from ._hf import HFXVectorEncoder, bf16_supported

        if bf16_supported():
            return HFXVectorEncoder.load(model, precision="bf16", **options)
        chosen = _no_bf16()
    if chosen == "torch":
        from ._hf import HFXVectorEncoder

        return HFXVectorEncoder.load(model, **options)
    from ._onnx import load_onnx_encoder

    return load_onnx_encoder(model, required=chosen == "onnx", **options)


def _no_bf16() -> str:
    log.warning("this CPU has no bf16 instructions (AVX512-BF16, AMX): using backend auto")
    return "auto"


# -- the database's encoder against the one asked for --------------------------


def requested_model(model: str | None, encoder: Encoder | None) -> str | None:
    """The model asked for: the encoder's, else ``model``, else ``SPEAKERDB_MODEL``."""
    if encoder is not None:
        return encoder.info.model
    chosen = model or os.environ.get(ENV_MODEL) or None
    return normalize_model_name(chosen) if chosen else None


def check_model_name(path: Path, stored: EncoderInfo | None, requested: str | None) -> None:
    """Raise :class:`ModelMismatch` when the database at ``path`` holds another model."""
    if stored is not None and requested is not None and stored.model != requested:
        raise ModelMismatch(_mismatch_message(path, stored, requested))


def check_same_encoder(path: Path, stored: EncoderInfo, actual: EncoderInfo) -> None:
    """Raise :class:`ModelMismatch` unless ``actual`` makes the embeddings ``stored`` names."""
    same = stored.model == actual.model and stored.dim == actual.dim
    if same and stored.revision and actual.revision and stored.revision != actual.revision:
        same = False
    if not same:
        raise ModelMismatch(_mismatch_message(path, stored, actual.model, actual.revision))


def pinned_options(
    options: dict[str, Any], stored: EncoderInfo | None, model: str
) -> dict[str, Any]:
    """:func:`load_encoder`'s keyword arguments, with the revision the database records."""
    options = dict(options)
    revision = stored.revision if stored is not None and stored.model == model else None
    # Pin a hub model to the commit the database was built with.
    if options["revision"] is None and revision and not revision.startswith("sha256:"):
        options["revision"] = revision
    return options


def _mismatch_message(
    path: Path, stored: EncoderInfo, model: str, revision: str | None = None
) -> str:
    got = f"{model}@{revision}" if revision else model
    return (
        f"{path} holds {stored.dim}-d embeddings of {stored.model}"
        f"{'@' + stored.revision if stored.revision else ''}, not of {got}; "
        f"use --model {stored.model}, or another --db for the new model"
    )
