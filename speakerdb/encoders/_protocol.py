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
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import EncoderInfo

__all__ = ["Encoder", "WindowEncoder"]


class Encoder(Protocol):
    """What the rest of speakerdb needs from a speaker encoder."""

    @property
    def info(self) -> EncoderInfo:
        """The encoder's identity, stored in the database at first use."""
        ...

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed 16 kHz mono float32 clips; return a float32 ``(n, dim)`` array of unit rows."""
        ...


@runtime_checkable
class WindowEncoder(Protocol):
    """An encoder that embeds many fixed-length windows of one long signal at once
    (``segments`` embeds a recording window by window). Optional: any other encoder
    embeds each window as a clip of its own through :meth:`Encoder.encode`."""

    #: The window length, in 16 kHz samples, that :meth:`encode_windows` embeds.
    window_samples: int

    def encode_windows(self, wav: np.ndarray, starts: Sequence[int]) -> np.ndarray:
        """Unit embeddings ``(len(starts), dim)`` of ``wav[s : s + window_samples]`` for
        each ``s`` in ``starts`` (multiples of 160 samples), each as :meth:`Encoder.encode`
        would embed it alone, up to the signal around its edges."""
        ...
