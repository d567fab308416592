"""Voice-activity detection by frame energy: net speech, and trimming of silences.

Pure numpy and deterministic, so that an embedding never depends on which
optional module happens to be installed. A 30 ms frame is speech when its
energy is within :data:`DYNAMIC_RANGE_DB` of the clip's loud frames (the 95th
percentile), clearly above the clip's own noise floor (its 10th percentile,
by :data:`FLOOR_MARGIN_DB`), and above :data:`ABSOLUTE_FLOOR_DBFS`. Gaps
shorter than :data:`BRIDGE_S` between speech frames count as speech (the
pauses inside a phrase), and bursts shorter than :data:`MIN_BURST_S` do not
(clicks).

This is meant for the recordings speakerdb sees: one voice, close to the
microphone, with silence or steady noise around it. It does not separate
speech from music or from other voices.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FRAME_S",
    "SPOKEN_MARGIN_S",
    "net_speech_s",
    "speech_mask",
    "spoken_part",
    "trim_silences",
]

SAMPLE_RATE = 16_000
FRAME_S = 0.03
FRAME = int(SAMPLE_RATE * FRAME_S)
DYNAMIC_RANGE_DB = 35.0
FLOOR_MARGIN_DB = 8.0
ABSOLUTE_FLOOR_DBFS = -55.0
BRIDGE_S = 0.3
MIN_BURST_S = 0.09
#: Speech kept on each side of a detected region when trimming.
PAD_S = 0.1
#: What :func:`spoken_part` keeps either side of the words. Less costs recognitions:
#: the encoder was trained on clips with their pauses (trimming to 0.1 s turned 14 of
#: 68 recognitions away, scripts/eval_padded_queries.py).
SPOKEN_MARGIN_S = 0.5


def speech_mask(samples: np.ndarray) -> np.ndarray:
    """One boolean per 30 ms frame of a 16 kHz clip: true where someone speaks."""
    energy = _frame_energy_db(samples)
    if energy.size == 0:
        return np.zeros(0, dtype=bool)
    floor, loud = np.percentile(energy, [10, 95])
    level = max(loud - DYNAMIC_RANGE_DB, ABSOLUTE_FLOOR_DBFS)
    # Only a clip with a real floor below its speech gets the floor test: a clip
    # that is speech throughout has its 10th percentile inside the speech.
    if loud - floor > 2 * FLOOR_MARGIN_DB:
        level = max(level, floor + FLOOR_MARGIN_DB)
    mask = energy >= level
    mask = _fill_runs(mask, False, _frames(BRIDGE_S))
    return _fill_runs(mask, True, _frames(MIN_BURST_S))


def net_speech_s(samples: np.ndarray) -> float:
    """Seconds of speech in a 16 kHz clip."""
    return float(speech_mask(samples).sum()) * FRAME_S


def spoken_part(samples: np.ndarray, margin_s: float = SPOKEN_MARGIN_S) -> slice:
    """Where a 16 kHz clip's words are: from ``margin_s`` before its first speech frame
    to as long after its last, within the clip; the whole clip when no speech is found.
    A recorder's silence beyond it would dilute the voiceprint."""
    spoken = np.flatnonzero(speech_mask(samples))
    if spoken.size == 0:
        return slice(0, len(samples))
    margin = round(margin_s * SAMPLE_RATE)
    start = max(0, int(spoken[0]) * FRAME - margin)
    return slice(start, min(len(samples), (int(spoken[-1]) + 1) * FRAME + margin))


def trim_silences(samples: np.ndarray) -> np.ndarray:
    """The clip without its silences (each speech region keeps :data:`PAD_S` either side).

    A clip in which no speech is found is returned whole: the caller decides
    whether too little speech is an error (see :mod:`speakerdb.services._quality`).
    """
    mask = speech_mask(samples)
    if not mask.any():
        return samples
    pad = _frames(PAD_S)
    if pad:
        mask = np.convolve(mask, np.ones(2 * pad + 1), mode="same") > 0
    keep = np.repeat(mask, FRAME)
    keep = np.concatenate([keep, np.full(len(samples) - keep.size, bool(mask[-1]))])
    return np.ascontiguousarray(samples[keep])


def _frame_energy_db(samples: np.ndarray) -> np.ndarray:
    wav = np.asarray(samples, dtype=np.float64)
    n = wav.size // FRAME
    if n == 0:
        return np.zeros(0)
    power = np.mean(np.square(wav[: n * FRAME].reshape(n, FRAME)), axis=1)
    return np.asarray(10.0 * np.log10(power + 1e-12))


def _frames(seconds: float) -> int:
    return round(seconds / FRAME_S)


def _fill_runs(mask: np.ndarray, value: bool, max_len: int) -> np.ndarray:
    """Flip inner runs of ``value`` no longer than ``max_len`` frames (``not value`` both sides)."""
    out = mask.copy()
    if max_len <= 0 or out.size == 0:
        return out
    edges = np.flatnonzero(np.diff(np.concatenate([[not value], out == value, [not value]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        inner = start > 0 and stop < out.size
        if inner and stop - start <= max_len:
            out[start:stop] = not value
    return out
