"""Audio in: decode a path, bytes, a binary file object or an array into a checked
16 kHz mono :class:`Clip` (:mod:`._decode`), find the speech in it (:mod:`._vad`),
tell speech from noise, hum, tones and music (:mod:`._speechness`), and fingerprint a
recording so that a replay of it can be recognised (:mod:`._fingerprint`)."""

from ._decode import (
    MAX_DURATION_S,
    MAX_INPUT_BYTES,
    MIN_DURATION_S,
    SAMPLE_RATE,
    Clip,
    ClipInput,
    clip_from_array,
    clip_from_bytes,
    load_clip,
    refuse_repeats,
    to_clip,
)
from ._fingerprint import Fingerprint, best_matches, fingerprint, similarity
from ._speechness import SpeechAssessment, assess_speech
from ._vad import FRAME_S, SPOKEN_MARGIN_S, net_speech_s, speech_mask, spoken_part, trim_silences

__all__ = [
    "FRAME_S",
    "MAX_DURATION_S",
    "MAX_INPUT_BYTES",
    "MIN_DURATION_S",
    "SAMPLE_RATE",
    "SPOKEN_MARGIN_S",
    "Clip",
    "ClipInput",
    "Fingerprint",
    "SpeechAssessment",
    "assess_speech",
    "best_matches",
    "clip_from_array",
    "clip_from_bytes",
    "fingerprint",
    "load_clip",
    "net_speech_s",
    "refuse_repeats",
    "similarity",
    "speech_mask",
    "spoken_part",
    "to_clip",
    "trim_silences",
]
