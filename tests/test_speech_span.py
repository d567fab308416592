"""Silence a recorder adds around the words is neither heard nor timed: each clip is
embedded from its words and up to 0.5 s either side (its spoken part, found here), and
the shipped defaults are the ones chosen for that. Through the database:
test_margin_duration.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import voice
from hypothesis import given, settings
from hypothesis import strategies as st

from speakerdb.audio import SPOKEN_MARGIN_S, clip_from_array, spoken_part
from speakerdb.audio._vad import FRAME_S
from speakerdb.encoders._registry import family_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import eval_speech_span as span

RATE = 16000


def test_the_shipped_defaults_are_the_choice_that_passed_its_test() -> None:
    ge2e = family_of("resemblyzer")
    assert ge2e.identify_curves["margin-duration"] == span.CHOSEN_IDENTIFY
    assert ge2e.score_thresholds["margin-duration"] == span.CHOSEN_VERIFY


def padded(words: np.ndarray, before_s: float, after_s: float) -> np.ndarray:
    before, after = (np.zeros(round(s * RATE), np.float32) for s in (before_s, after_s))
    return np.concatenate([before, words, after])


@settings(max_examples=40, deadline=None)
@given(
    words_s=st.floats(0.3, 6.0),
    before_s=st.floats(0.0, 4.0),
    after_s=st.floats(0.0, 4.0),
)
def test_the_spoken_part_is_the_words_and_half_a_second_either_side(
    words_s: float, before_s: float, after_s: float
) -> None:
    samples = padded(voice(150, seconds=words_s, seed=3), before_s, after_s)
    part = spoken_part(samples)
    assert 0 <= part.start < part.stop <= len(samples)
    # Within a frame either side: the voice-activity detection works in 30 ms frames.
    start = max(0.0, before_s - SPOKEN_MARGIN_S)
    stop = before_s + words_s + min(after_s, SPOKEN_MARGIN_S)
    assert part.start / RATE == pytest.approx(start, abs=FRAME_S + 1e-3)
    assert part.stop / RATE == pytest.approx(stop, abs=FRAME_S + 1e-3)


def test_a_clip_without_speech_is_heard_whole() -> None:
    silent = np.zeros(2 * RATE, np.float32)
    assert spoken_part(silent) == slice(0, 2 * RATE)
    clip = clip_from_array(voice(200, seconds=1.5), RATE)
    assert clip.spoken_s == pytest.approx(1.5) and len(clip.spoken) == len(clip.samples)
