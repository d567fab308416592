"""Which model a database uses, and its encoder: chosen once, loaded on first use, and
checked against the encoder the database's embeddings come from.

The model follows the precedence of :mod:`speakerdb.config`: the argument (or the
given encoder's), then ``SPEAKERDB_MODEL``, then the model the database recorded
at its first enrollment, then the default.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio._decode import Clip
from ..config import DEFAULT_MODEL
from ..encoders._base import (
    check_model_name,
    check_same_encoder,
    load_encoder,
    load_source,
    pinned_options,
    requested_model,
)
from ..encoders._frontend import embed_clips
from ..encoders._protocol import Encoder
from ..types import EncoderInfo

__all__ = ["ModelSlot"]


class ModelSlot:
    """The model of one database and, once needed, its loaded encoder (thread-safe)."""

    def __init__(
        self,
        path: Path | str,
        stored: EncoderInfo | None,
        model: str | None,
        encoder: Encoder | None,
        load_options: dict[str, Any],
    ) -> None:
        self._path = path
        #: The encoder the database records (None before its first enrollment).
        self.stored = stored
        self._requested = requested_model(model, encoder)
        # An export folder is recorded as its original model, but loaded from the folder.
        self._source = load_source(model, encoder)
        self._encoder = encoder
        self._options = load_options
        self._lock = threading.Lock()
        # An explicit model is checked now; one from SPEAKERDB_MODEL only when the
        # encoder is needed, so that listing or renaming never depends on it.
        if model is not None or encoder is not None:
            check_model_name(path, stored, self._requested)

    @property
    def model(self) -> str:
        """The model in use: argument or ``SPEAKERDB_MODEL``, else the stored one, else default."""
        if self._requested is not None:
            return self._requested
        return self.stored.model if self.stored is not None else DEFAULT_MODEL

    def encoder(self) -> Encoder:
        """The encoder, loaded on first use and checked against the database's."""
        with self._lock:
            if self._encoder is None:
                check_model_name(self._path, self.stored, self._requested)
                options = pinned_options(self._options, self.stored, self.model)
                self._encoder = load_encoder(self._source or self.model, **options)
            if self.stored is not None:
                check_same_encoder(self._path, self.stored, self._encoder.info)
            return self._encoder

    def embed(self, clips: Sequence[Clip]) -> np.ndarray:
        """L2-normalised embeddings ``(n, dim)`` of decoded clips."""
        return embed_clips(self.encoder(), clips)

    def info(self) -> EncoderInfo:
        """The encoder's description (loading it)."""
        return self.encoder().info

    def load_options(self) -> dict[str, Any]:
        """The loading options given (offline, cache folder, backend, revision)."""
        return dict(self._options)

    def load_spec(self) -> tuple[str, dict[str, Any]]:
        """What :func:`~speakerdb.encoders._base.load_encoder` loads this model from, and
        its keyword arguments: for loading the same model elsewhere (a Ray actor)."""
        return self._source or self.model, pinned_options(self._options, self.stored, self.model)
