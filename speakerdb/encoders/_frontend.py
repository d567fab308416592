"""The audio front-end between a decoded clip and the encoder: long audio in windows.

A clip longer than :data:`WINDOW_S` is cut into equal windows of at most that
length; each window is embedded on its own, and the clip's embedding is the
L2-normalised, length-weighted mean of the window embeddings. Memory then
stays bounded by one window whatever the clip's length: a transformer
x-vector model's convolutional feature encoder alone holds 512 channels per
5 samples of audio. Through a model of that width, a 300 s clip peaks at
4.2 GB without windows and 0.42 GB with them, as a 30 s clip does
(``scripts/eval_table.py --memory``). Clips up to
:data:`WINDOW_S` are embedded exactly as before, so this is on by default.
An encoder family may opt out (its ``window_s`` is ``None``): the offline GE2E
encoder bounds its memory itself (:mod:`speakerdb.encoders._registry` says why).

Each clip is embedded from its words and up to 0.5 s either side
(:attr:`~speakerdb.audio.Clip.spoken`): a door that records a fixed window sends
seconds of silence around a short answer, and GE2E averaged them into the voiceprint
(with 2 s either side it recognised 17 of 110 queries it had recognised 68 of,
``scripts/eval_speech_span.py``). Silences inside the clip, and the margins, stay:
removing every silence (:func:`speakerdb.audio._vad.trim_silences`) made every figure
but one worse on the shared corpus (``scripts/eval_table.py``). It is not a setting:
embeddings that depend on one would mix two kinds of vector in one database.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from ..audio._decode import Clip
from ..errors import AudioError
from ._protocol import Encoder
from ._registry import WINDOW_S, family_of

__all__ = ["WINDOW_S", "embed_clips", "encode_windowed", "windows"]

SAMPLE_RATE = 16_000


def windows(n_samples: int, window_s: float = WINDOW_S) -> list[tuple[int, int]]:
    """``(start, stop)`` of equal windows of at most ``window_s`` covering ``n_samples``."""
    size = int(window_s * SAMPLE_RATE)
    count = max(1, math.ceil(n_samples / size))
    edges = np.linspace(0, n_samples, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def encode_windowed(
    encoder: Encoder, clips: Sequence[np.ndarray], window_s: float | None = None
) -> np.ndarray:
    """``encoder.encode(clips)``, with each clip longer than ``window_s`` embedded by windows,
    for an encoder whose family windows long audio (:mod:`speakerdb.encoders._registry`)."""
    family_window = family_of(encoder.info.model).window_s
    if family_window is None:
        return encoder.encode(clips)
    window_s = window_s or family_window
    spans = [windows(len(clip), window_s) for clip in clips]
    short = [i for i, s in enumerate(spans) if len(s) == 1]
    out = np.empty((len(clips), encoder.info.dim), dtype=np.float32)
    if short:
        out[short] = encoder.encode([clips[i] for i in short])
    for i, parts in enumerate(spans):
        if len(parts) > 1:
            out[i] = _windowed(encoder, clips[i], parts)
    return out


def embed_clips(encoder: Encoder, clips: Sequence[Clip]) -> np.ndarray:
    """The encoder's embeddings; a clip whose embedding is not finite or is zero is refused.

    Such a vector would poison the database (stored vectors have unit norm) or a score.
    """
    # Silence around the words would dilute the voiceprint: the encoder hears them alone.
    samples = [c.spoken for c in clips]
    vectors = np.asarray(encode_windowed(encoder, samples), dtype=np.float32)
    for clip, vector in zip(clips, vectors, strict=True):
        if not np.all(np.isfinite(vector)) or not np.any(vector):
            peak = float(np.max(np.abs(clip.samples)))
            raise AudioError(
                f"{clip.label}: the encoder gives no usable voiceprint for it "
                f"(its peak level is {peak:.3g}, full scale is 1.0); check the recording"
            )
    return vectors


def _windowed(encoder: Encoder, clip: np.ndarray, parts: list[tuple[int, int]]) -> np.ndarray:
    total = np.zeros(encoder.info.dim, dtype=np.float64)
    for start, stop in parts:  # one window at a time: that is what bounds memory
        vector = np.asarray(encoder.encode([clip[start:stop]])[0], dtype=np.float64)
        total += (stop - start) * vector / max(float(np.linalg.norm(vector)), 1e-12)
    norm = float(np.linalg.norm(total))
    return (total / norm if norm > 0 else total).astype(np.float32)
