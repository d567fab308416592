"""Windows of speech in a stream of 16 kHz blocks, and their embeddings.

Speech is found block by block with the energy detector of
:mod:`speakerdb.audio._vad` (its levels measured over each block). A window
starts every ``hop`` samples; it is embedded when at least :data:`USABLE` of it is
speech, and it is *clean* when at least ``min_speech`` of it is: only clean windows
shape the voices (a window across a pause often holds two people), the others only
take the voice they are most like. One window's history of samples is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..audio._vad import FRAME, speech_mask
from ..encoders._protocol import Encoder, WindowEncoder
from ._clustering import unit_rows

__all__ = ["FRAME", "SpeechWindows", "embed_windows", "window_samples"]

#: The least fraction of speech in a window that is embedded.
USABLE = 0.5
#: Window length for encoders without their own: 1.5 s.
DEFAULT_WINDOW = 24_000


def window_samples(encoder: Encoder) -> int:
    """How long the windows ``encoder`` embeds are, in samples."""
    if isinstance(encoder, WindowEncoder):
        return int(encoder.window_samples)
    return DEFAULT_WINDOW


def embed_windows(encoder: Encoder, wav: np.ndarray, starts: Sequence[int]) -> np.ndarray:
    """Unit embeddings of the windows of ``wav`` that begin at ``starts``."""
    if not len(starts):
        return np.zeros((0, encoder.info.dim), dtype=np.float32)
    if isinstance(encoder, WindowEncoder):
        vectors = encoder.encode_windows(wav, starts)
    else:
        length = window_samples(encoder)
        vectors = encoder.encode([wav[s : s + length] for s in starts])
    return unit_rows(vectors).astype(np.float32)


class SpeechWindows:
    """Cuts consecutive blocks into the windows worth embedding, in bounded memory."""

    def __init__(self, window: int, hop: int, min_speech: float) -> None:
        self.window, self.hop, self._min_speech = window, hop, min_speech
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # the recording's sample at self._buffer[0]
        self._masks: list[np.ndarray] = []
        self._next = 0  # the next candidate window's first sample
        self.total = 0  # samples seen

    @property
    def next_start(self) -> int:
        """The first sample of the next window that may be embedded."""
        return self._next

    def mask(self) -> np.ndarray:
        """One boolean per 30 ms frame seen so far: speech or not."""
        if len(self._masks) > 1:
            self._masks = [np.concatenate(self._masks)]
        return self._masks[0] if self._masks else np.zeros(0, dtype=bool)

    def add(self, block: np.ndarray) -> tuple[np.ndarray, list[int], int, np.ndarray]:
        """Take the next block; return the kept samples, the windows to embed (as
        offsets into them), the recording's sample at the first of them, and which
        windows are clean."""
        frames = speech_mask(block)
        partial = len(block) - len(frames) * FRAME
        self._masks.append(np.concatenate([frames, np.zeros(int(partial > 0), dtype=bool)]))
        self._buffer = np.concatenate([self._buffer, block])
        self.total += len(block)
        return self._ready(last=False)

    def finish(self) -> tuple[np.ndarray, list[int], int, np.ndarray]:
        """The windows left at the end (one last window ends with the recording)."""
        return self._ready(last=True)

    def _ready(self, last: bool) -> tuple[np.ndarray, list[int], int, np.ndarray]:
        starts, clean = [], []
        while self._next + self.window <= self.total:
            speech = self._speech(self._next)
            if speech >= USABLE:
                starts.append(self._next)
                clean.append(speech >= self._min_speech)
            self._next += self.hop
        if last and self._next < self.total:
            tail = max(0, (self.total - self.window) // 160 * 160)
            speech = self._speech(tail)
            if (not starts or tail > starts[-1]) and speech >= USABLE:
                starts.append(tail)
                clean.append(speech >= self._min_speech)
        buffer, offset = self._buffer, self._buffer_start
        # One window of history stays, for the last window, which ends with the recording.
        drop = max(0, min(self._next, self.total) - self.window - self._buffer_start)
        self._buffer, self._buffer_start = self._buffer[drop:], self._buffer_start + drop
        return buffer, [s - offset for s in starts], offset, np.array(clean, dtype=bool)

    def _speech(self, start: int) -> float:
        """The fraction of speech in the window that begins at sample ``start``.

        Frames past the end of the recording count as silence: the last window of a
        recording shorter than a window is that recording, and measured against its own
        length, 0.3 s of speech made a clean window and was named.
        """
        mask = self.mask()
        first, stop = start // FRAME, -(-(start + self.window) // FRAME)
        return float(mask[first:stop].sum()) / (stop - first)
