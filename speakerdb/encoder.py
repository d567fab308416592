"""The speaker-encoder interface and the loader that picks an implementation.

An encoder turns 16 kHz mono float32 clips into L2-normalised float32
embeddings. Every implementation embeds each clip on its own (or together
with clips of exactly the same length), so a clip's embedding never depends
on what else is in its batch: padding changes the output of the group-norm
feature encoders that x-vector checkpoints use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .types import EncoderInfo

__all__ = ["RESEMBLYZER", "Encoder", "load_encoder", "normalize_model_name"]

RESEMBLYZER = "resemblyzer"


class Encoder(Protocol):
    """What the rest of speakerdb needs from a speaker encoder."""

    @property
    def info(self) -> EncoderInfo:
        """The encoder's identity, stored in the database at first use."""
        ...

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono float32 clips; return a float32 ``(n, dim)`` array of unit rows."""
        ...


def normalize_model_name(model: str) -> str:
    """Return the name under which a model is recorded: local directories become absolute."""
    if model == RESEMBLYZER:
        return model
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return model


def load_encoder(
    model: str,
    *,
    revision: str | None = None,
    local_files_only: bool | None = None,
    cache_dir: str | None = None,
) -> Encoder:
    """Load ``model``: ``"resemblyzer"``, a Hugging Face hub id, or a local directory.

    Raises :class:`~speakerdb.errors.ModelError` naming the fix when the model
    cannot be had (no network, a wrong path, a missing optional extra).
    """
    if model == RESEMBLYZER:
        from .ge2e_encoder import GE2EEncoder

        return GE2EEncoder.load()
    from .hf_encoder import HFXVectorEncoder

    return HFXVectorEncoder.load(
        model, revision=revision, local_files_only=local_files_only, cache_dir=cache_dir
    )
