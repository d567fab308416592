"""The speaker-encoder interface: what the rest of speakerdb needs from an encoder.

It lives apart from the loader (:mod:`speakerdb.encoders._base`) so that the
implementations can name it without importing the code that picks among them.

An encoder turns 16 kHz mono float32 clips into L2-normalised float32
embeddings. Every implementation embeds each clip on its own (or together
with clips of exactly the same length), so a clip's embedding never depends
on what else is in its batch: padding changes the output of the group-norm
feature encoders that x-vector checkpoints use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..types import EncoderInfo

__all__ = ["Encoder"]


class Encoder(Protocol):
    """What the rest of speakerdb needs from a speaker encoder."""

    @property
    def info(self) -> EncoderInfo:
        """The encoder's identity, stored in the database at first use."""
        ...

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono float32 clips; return a float32 ``(n, dim)`` array of unit rows."""
        ...
