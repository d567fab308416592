"""The loader that picks an encoder's implementation, and the checks that a
database's embeddings come from the encoder in use.

Which implementation loads a model is its family's business
(:mod:`speakerdb.encoders._registry`); an x-vector model's backends are
described in :mod:`speakerdb.encoders._backends`. The interface itself is
:class:`~speakerdb.encoders._protocol.Encoder`, re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import ENV_MODEL, resolve_backend
from ..errors import ModelMismatch
from ..types import EncoderInfo
from ._exported import load_export
from ._exportfile import is_export
from ._protocol import Encoder
from ._registry import family_of, normalize_model_name

__all__ = [
    "Encoder",
    "check_model_name",
    "check_same_encoder",
    "load_encoder",
    "load_source",
    "normalize_model_name",
    "pinned_options",
    "requested_model",
]


def load_encoder(
    model: str,
    *,
    revision: str | None = None,
    local_files_only: bool | None = None,
    cache_dir: str | None = None,
    backend: str | None = None,
) -> Encoder:
    """Load ``model``: ``"resemblyzer"``, a Hugging Face hub id, a local directory, or a
    folder written by ``speakerdb model export`` (:mod:`speakerdb.encoders._exported`),
    on ``backend`` (:mod:`speakerdb.encoders._backends`; ``"resemblyzer"`` has no bf16
    path and runs its fp32 one), by the loader of its family.

    Raises :class:`~speakerdb.errors.ModelError` naming the fix when the model
    cannot be had (no network, a wrong path, a missing optional extra).
    """
    if is_export(model):  # the original model's export, on ONNX Runtime
        return load_export(model, resolve_backend(backend))
    options = {"revision": revision, "local_files_only": local_files_only, "cache_dir": cache_dir}
    return family_of(model).load(model, backend=resolve_backend(backend), **options)


# -- the database's encoder against the one asked for --------------------------


def requested_model(model: str | None, encoder: Encoder | None) -> str | None:
    """The model asked for: the encoder's, else ``model``, else ``SPEAKERDB_MODEL``."""
    if encoder is not None:
        return encoder.info.model
    chosen = model or os.environ.get(ENV_MODEL) or None
    return normalize_model_name(chosen) if chosen else None


def load_source(model: str | None, encoder: Encoder | None) -> str | None:
    """What to load when it is not the recorded name: the export folder asked for (by
    ``model`` or ``SPEAKERDB_MODEL``), which is recorded as its original model."""
    chosen = None if encoder is not None else model or os.environ.get(ENV_MODEL) or None
    return chosen if chosen is not None and is_export(chosen) else None


def check_model_name(path: Path | str, stored: EncoderInfo | None, requested: str | None) -> None:
    """Raise :class:`ModelMismatch` when the database at ``path`` holds another model."""
    if stored is not None and requested is not None and stored.model != requested:
        raise ModelMismatch(_mismatch_message(path, stored, requested))


def check_same_encoder(path: Path | str, stored: EncoderInfo, actual: EncoderInfo) -> None:
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
    path: Path | str, stored: EncoderInfo, model: str, revision: str | None = None
) -> str:
    got = f"{model}@{revision}" if revision else model
    return (
        f"{path} holds {stored.dim}-d embeddings of {stored.model}"
        f"{'@' + stored.revision if stored.revision else ''}, not of {got}; "
        f"use --model {stored.model}, or another --db for the new model"
    )
