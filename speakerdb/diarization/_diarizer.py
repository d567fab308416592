"""One recording's diarization state: windows embedded so far, their voices, and the
frames of speech, fed block by block (:class:`Diarizer`).

Offline (:meth:`Diarizer.finish`, then :meth:`Diarizer.runs`), the voices of all
blocks are regrouped at the end; once the caller has grouped them further (the
voices named after one speaker, say), each window is given to the group it is
most like, and the timeline is drawn. Live (:meth:`Diarizer.settled`), runs are
given out as soon as no later window can change them, and only the windows still
needed are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..encoders._protocol import Encoder
from ._clustering import Voices
from ._options import SegmentOptions
from ._timeline import Run, Timeline
from ._windows import FRAME, SpeechWindows, embed_windows, window_samples

__all__ = ["Diarizer"]

SAMPLE_RATE = 16_000


class Diarizer:
    """Who speaks when in one recording, by voice number; names come from the caller."""

    def __init__(self, encoder: Encoder, options: SegmentOptions) -> None:
        self._encoder = encoder
        self._options = options
        window = window_samples(encoder)
        hop = round(options.hop_s * SAMPLE_RATE)
        self._windows = SpeechWindows(window, hop, options.min_speech)
        self._timeline = Timeline(window, hop, reach=window)
        self.voices = Voices(encoder.info.dim, options.cluster_threshold, options.link_threshold)
        self._starts = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, encoder.info.dim), dtype=np.float32)
        self._voice_of = np.zeros(0, dtype=np.int64)
        self._clean = np.zeros(0, dtype=bool)
        self._settled = 0  # frames given out live

    @property
    def seconds(self) -> float:
        """Seconds of audio seen."""
        return self._windows.total / SAMPLE_RATE

    def add(self, block: np.ndarray) -> None:
        """Take the next block of 16 kHz mono samples: embed its windows, group them."""
        self._take(*self._windows.add(block))

    def finish(self) -> None:
        """Take the last windows and regroup the voices of all blocks (offline)."""
        self._take(*self._windows.finish())
        mapping = self.voices.regroup(self._options.min_windows)
        self._voice_of = mapping[self._voice_of] if len(self._voice_of) else self._voice_of

    def runs(self, groups: np.ndarray) -> list[Run]:
        """The whole timeline once voice ``v`` is merged into ``groups[v]`` (offline): each
        window goes to the merged voice it is most like, each frame to its nearest window."""
        self.voices.merge(groups)
        if len(self._vectors):
            self._voice_of = np.argmax(self._vectors @ self.voices.centroids().T, axis=1)
        labels = self._timeline.frame_voices(
            self._windows.mask(), self._starts, self._voice_of, self._clean
        )
        return list(self._timeline.runs(labels))

    def settled(self, groups: Callable[[], np.ndarray], *, last: bool = False) -> list[Run]:
        """Runs that no later block can change, not given out before (live), by group of
        voices (``groups()``: each voice's group, asked once the windows are in). With
        ``last``, the recording has ended: everything left."""
        if last:
            self._take(*self._windows.finish())
        mask = self._windows.mask()
        stop = len(mask) if last else max(0, (self._windows.next_start - self.hop_reach) // FRAME)
        labels = self._timeline.frame_voices(
            mask[:stop], self._starts, groups()[self._voice_of], self._clean, self._settled
        )
        runs = list(self._timeline.runs(labels, self._settled))
        if not last and runs:
            runs.pop()  # it may go on in the next block
        if runs:
            self._settled = runs[-1].stop
            self._forget_before(self._settled * FRAME - 2 * self._windows.window)
        return runs

    @property
    def hop_reach(self) -> int:
        """How far before the next window's start a frame may still change: its half
        window plus the timeline's reach."""
        return self._windows.window // 2 + self._windows.window

    def _take(self, wav: np.ndarray, offsets: list[int], base: int, clean: np.ndarray) -> None:
        if not offsets:
            return
        vectors = embed_windows(self._encoder, wav, offsets)
        voices = np.zeros(len(offsets), dtype=np.int64)
        voices[clean] = self.voices.add(vectors[clean])
        if not len(self.voices):
            return  # no clean window heard yet: no voice to give these windows
        if not clean.all():
            voices[~clean] = np.argmax(vectors[~clean] @ self.voices.centroids().T, axis=1)
        self._starts = np.concatenate([self._starts, np.asarray(offsets, dtype=np.int64) + base])
        self._vectors = np.concatenate([self._vectors, vectors])
        self._voice_of = np.concatenate([self._voice_of, voices])
        self._clean = np.concatenate([self._clean, clean])

    def _forget_before(self, sample: int) -> None:
        keep = self._starts >= sample
        self._starts, self._vectors = self._starts[keep], self._vectors[keep]
        self._voice_of, self._clean = self._voice_of[keep], self._clean[keep]
