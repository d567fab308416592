"""The padded-query measurement's audio (scripts/eval_padded_queries.py): padding adds
what it says on each side, and trimming the ends keeps the speech and about 0.1 s
around it (the measurement itself needs the shared corpus and is not run here)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import eval_padded_queries as padq

RATE = 16_000


def speech_like(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_padding_adds_silence_or_quiet_noise_on_each_side() -> None:
    voice = speech_like(2.0)
    rng = np.random.default_rng(0)
    silent = padq.padded(voice, 1.0, "silence", rng)
    noisy = padq.padded(voice, 1.0, "noise", rng)
    assert silent.size == noisy.size == voice.size + 2 * RATE
    assert not silent[:RATE].any() and not silent[-RATE:].any()
    assert np.array_equal(silent[RATE:-RATE], voice)
    rms = float(np.sqrt(np.mean(noisy[:RATE].astype(np.float64) ** 2)))
    assert abs(20 * np.log10(rms) - padq.NOISE_DBFS) < 1.0


def test_trimming_the_ends_keeps_the_speech_and_a_little_around_it() -> None:
    voice = speech_like(2.0)
    for kind in ("silence", "noise"):
        padded = padq.padded(voice, 3.0, kind, np.random.default_rng(1))
        trimmed = padq.ends_trimmed(padded)
        assert voice.size <= trimmed.size <= voice.size + int(0.5 * RATE)
