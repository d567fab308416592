"""From labelled windows to a timeline: who speaks in each 30 ms frame of speech.

Each frame of speech takes the label of the window whose centre is nearest to
it, if one is within ``reach`` samples; runs of frames with one label become
segments, and a run is joined to the next of the same label across a pause
shorter than :data:`JOIN_S`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio._vad import FRAME

__all__ = ["JOIN_S", "Run", "Timeline"]

SAMPLE_RATE = 16_000
#: Pauses shorter than this between two runs of one label are bridged.
JOIN_S = 0.5


@dataclass(frozen=True, slots=True)
class Run:
    """Frames ``[first, stop)`` of one label (a voice's number)."""

    first: int
    stop: int
    voice: int

    @property
    def start_s(self) -> float:
        return self.first * FRAME / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.stop * FRAME / SAMPLE_RATE


class Timeline:
    """Labels frames of speech from windows' voices."""

    def __init__(self, window: int, hop: int, reach: int) -> None:
        self._half = window / 2
        # A clean window's voice reaches half a hop past its edges: the frames at a
        # turn's start or end, where the windows across the pause are not clean.
        self._clean_reach = window / 2 + hop / 2
        self._reach = reach

    def frame_voices(
        self,
        mask: np.ndarray,
        starts: np.ndarray,
        voices: np.ndarray,
        clean: np.ndarray,
        first: int = 0,
    ) -> np.ndarray:
        """The voice of each frame of ``mask[first:]`` (``-1``: silence, or no window near).

        ``starts`` are the windows' first samples, in order, and ``voices`` their voices.
        A frame in or near a ``clean`` window takes the nearest clean window's voice; any
        other frame of speech the nearest window's, within ``reach``.
        """
        out = np.full(max(0, len(mask) - first), -1, dtype=np.int64)
        speech = np.asarray(mask[first:], dtype=bool)
        at = (np.arange(first, len(mask)) + 0.5) * FRAME
        starts, voices = np.asarray(starts), np.asarray(voices)
        for chosen, reach in (
            (np.asarray(clean, dtype=bool), self._clean_reach),
            (None, self._reach),
        ):
            pick = slice(None) if chosen is None else chosen
            todo = speech & (out < 0)
            found = _nearest(at[todo], starts[pick] + self._half, reach)
            if (found >= 0).any():  # else there may be no window to index at all
                out[todo] = np.where(found >= 0, voices[pick][np.maximum(found, 0)], -1)
        return out

    def runs(self, labels: np.ndarray, first: int = 0) -> Iterator[Run]:
        """Runs of one voice in frame labels (starting at frame ``first``), pauses
        shorter than :data:`JOIN_S` bridged."""
        join = round(JOIN_S * SAMPLE_RATE / FRAME)
        current: Run | None = None
        for start, stop, voice in _spans(labels):
            run = Run(first + start, first + stop, voice)
            if current and current.voice == voice and run.first - current.stop < join:
                current = Run(current.first, run.stop, voice)
                continue
            if current:
                yield current
            current = run
        if current:
            yield current


def _spans(labels: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """``(start, stop, label)`` of each run of one label other than -1."""
    if not len(labels):
        return
    edges = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], edges, [len(labels)]])
    for start, stop in itertools.pairwise(bounds):
        if labels[start] >= 0:
            yield int(start), int(stop), int(labels[start])


def _nearest(at: np.ndarray, centres: np.ndarray, reach: float) -> np.ndarray:
    """The index of the centre nearest each point of ``at`` (sorted centres), or -1
    where none is within ``reach``."""
    if not len(centres) or not len(at):
        return np.full(len(at), -1, dtype=np.int64)
    right = np.clip(np.searchsorted(centres, at), 0, len(centres) - 1)
    left = np.clip(right - 1, 0, len(centres) - 1)
    nearest = np.where(np.abs(centres[left] - at) <= np.abs(centres[right] - at), left, right)
    return np.where(np.abs(centres[nearest] - at) <= reach, nearest, -1)
