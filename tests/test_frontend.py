"""The audio front-end: long audio in windows, and energy-based voice activity."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb.audio import FRAME_S, net_speech_s, speech_mask, trim_silences
from speakerdb.encoders import WINDOW_S, encode_windowed, windows
from speakerdb.types import EncoderInfo

RATE = 16_000


class Spy(FakeEncoder):
    """The fake encoder, recording the length of every clip it is given."""

    def __init__(self, model: str = "fake-encoder") -> None:
        super().__init__(model=model)
        self.lengths: list[int] = []

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        self.lengths += [len(c) for c in clips]
        return super().encode(clips)


def test_windows_are_equal_and_cover_the_clip() -> None:
    assert windows(10 * RATE) == [(0, 10 * RATE)]
    spans = windows(int(70.5 * RATE))
    assert len(spans) == 3
    assert spans[0][0] == 0 and spans[-1][1] == int(70.5 * RATE)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert max(b - a for a, b in spans) <= WINDOW_S * RATE


def test_short_clips_are_embedded_as_before() -> None:
    clips = [voice(120, 2.0), voice(200, 5.0)]
    assert np.array_equal(encode_windowed(FakeEncoder(), clips), FakeEncoder().encode(clips))


def test_long_clip_is_embedded_window_by_window() -> None:
    spy = Spy()
    clip = np.concatenate([voice(120, 35.0, seed=1), voice(180, 35.0, seed=2)])
    out = encode_windowed(spy, [clip])[0]
    assert spy.lengths == [b - a for a, b in windows(len(clip))]  # one window per call
    assert max(spy.lengths) <= WINDOW_S * RATE
    parts = [FakeEncoder().encode([clip[a:b]])[0] * (b - a) for a, b in windows(len(clip))]
    expected = np.sum(parts, axis=0)
    assert out == pytest.approx(expected / np.linalg.norm(expected), abs=1e-6)
    assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-6)


def test_ge2e_bounds_its_memory_itself_and_gets_whole_clips() -> None:
    spy = Spy(model="resemblyzer")
    assert spy.info == EncoderInfo("resemblyzer", "1", 32, RATE)
    encode_windowed(spy, [voice(120, 65.0)])
    assert spy.lengths == [65 * RATE]


def speech_with_silences(lead: float = 1.0, talk: float = 2.0, tail: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(0)
    quiet = lambda s: 0.001 * rng.standard_normal(int(s * RATE)).astype(np.float32)  # noqa: E731
    return np.concatenate([quiet(lead), voice(140, talk), quiet(tail)])


def test_net_speech_of_a_voice_between_silences() -> None:
    clip = speech_with_silences()
    assert net_speech_s(clip) == pytest.approx(2.0, abs=3 * FRAME_S)
    mask = speech_mask(clip)
    assert not mask[: int(0.9 / FRAME_S)].any() and not mask[-int(1.4 / FRAME_S) :].any()


def test_trimming_keeps_the_speech_and_a_little_around_it() -> None:
    clip = speech_with_silences()
    trimmed = trim_silences(clip)
    assert 2.0 * RATE <= len(trimmed) <= 2.4 * RATE


def test_a_clip_of_speech_throughout_is_all_speech() -> None:
    clip = voice(140, 3.0)
    assert net_speech_s(clip) == pytest.approx(3.0, abs=FRAME_S)
    assert len(trim_silences(clip)) == len(clip)


def test_no_speech_found_leaves_the_clip_whole() -> None:
    silence = np.zeros(RATE, dtype=np.float32)
    assert net_speech_s(silence) == 0.0
    assert len(trim_silences(silence)) == RATE
