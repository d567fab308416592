"""Who spoke when, by name: ``SpeakerDB.segments``, ``segments_stream`` and their rules.

The fake encoder tells these synthetic voices apart (pitches 110 to 900 Hz), so
these tests check the contract (names, ``unknown-N`` labels, times, refusals, memory,
streaming) without a real model; tests/test_segments_cli.py runs the command on real
speech with GE2E.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice

from speakerdb import AudioError, InvalidName, Segment, SegmentOptions, SpeakerDB
from speakerdb.diarization import rttm_lines

RATE = 16_000
PITCHES = {"alice": 110.0, "bob": 260.0, "stranger": 420.0, "other": 900.0}
# The fake encoder's voices are more alike than real ones (alice and bob score 0.80).
OPTIONS = SegmentOptions(cluster_threshold=0.93, link_threshold=0.93, unknown_threshold=0.93)
THRESHOLD = 0.95


def speech(who: str, seconds: float, seed: int) -> np.ndarray:
    """A steady synthetic voice: conftest's voice() drifts in pitch over a long clip."""
    pieces = [voice(PITCHES[who], 0.5, RATE, seed * 1000 + i) for i in range(int(seconds * 2) + 1)]
    return np.concatenate(pieces)[: int(seconds * RATE)]


def silence(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 1e-4).astype(np.float32)


def conversation(turns: list[tuple[str, float]], seed: int = 100) -> tuple[np.ndarray, list]:
    """Turns of (who, seconds) with 1 s pauses; returns samples and (start, end, who)."""
    parts, truth, t = [silence(1.0, seed)], [], 1.0
    for i, (who, seconds) in enumerate(turns):
        parts.append(speech(who, seconds, seed + i))
        truth.append((t, t + seconds, who))
        t += seconds + 1.0
        parts.append(silence(1.0, seed + i))
    return np.concatenate(parts), truth


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SpeakerDB]:
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as database:
        for name in ("alice", "bob"):
            database.enroll(name, [(speech(name, 3.0, seed=s), RATE) for s in (1, 2)])
        yield database


def labels(found: list[Segment]) -> list[str]:
    return [s.label for s in found]


def test_segments_name_enrolled_speakers_and_label_a_stranger(db: SpeakerDB) -> None:
    samples, truth = conversation(
        [("alice", 4), ("bob", 4), ("stranger", 4), ("alice", 3), ("stranger", 3)]
    )
    found = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD)
    assert labels(found) == ["alice", "bob", "unknown-1", "alice", "unknown-1"]
    assert [s.speaker for s in found] == ["alice", "bob", None, "alice", None]
    for segment, (start, end, _) in zip(found, truth, strict=True):
        assert abs(segment.start - start) < 0.5 and abs(segment.end - end) < 0.5
        assert segment.score is not None and segment.decision_score is not None
    named = [s for s in found if s.speaker]
    assert all(s.decision_score >= THRESHOLD for s in named if s.decision_score is not None)


def test_segments_are_typed_frozen_and_serialise(db: SpeakerDB) -> None:
    samples, _ = conversation([("alice", 4), ("stranger", 4)])
    found = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD)
    assert all(isinstance(s, Segment) for s in found)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].label = "bob"  # type: ignore[misc]
    assert set(found[0].to_dict()) == {
        "start",
        "end",
        "speaker",
        "label",
        "score",
        "decision_score",
    }
    assert found[0].duration == pytest.approx(found[0].end - found[0].start)


def test_strangers_are_numbered_by_first_appearance_and_keep_their_number(
    db: SpeakerDB,
) -> None:
    samples, _ = conversation(
        [("other", 4), ("alice", 4), ("stranger", 4), ("other", 3), ("stranger", 3)]
    )
    found = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD)
    assert labels(found) == ["unknown-1", "alice", "unknown-2", "unknown-1", "unknown-2"]


def test_no_enrolled_voice_is_forced_onto_a_stranger(db: SpeakerDB) -> None:
    # Only strangers speak: however alike, nobody enrolled is named.
    samples, _ = conversation([("stranger", 4), ("other", 4), ("stranger", 4)])
    found = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD)
    assert {s.speaker for s in found} == {None}
    assert labels(found) == ["unknown-1", "unknown-2", "unknown-1"]


def test_a_recording_without_speech_has_no_segments(db: SpeakerDB) -> None:
    assert db.segments((silence(20.0), RATE), options=OPTIONS) == []


def test_a_file_recording_beyond_the_clip_cap_is_accepted(db: SpeakerDB, tmp_path: Path) -> None:
    samples, _ = conversation([("alice", 4), ("bob", 4)])
    long = np.concatenate([samples, silence(640.0), samples])  # past the 600 s clip cap
    path = tmp_path / "long.flac"
    sf.write(path, long, RATE)
    found = db.segments(path, options=OPTIONS, threshold=THRESHOLD)
    assert labels(found) == ["alice", "bob", "alice", "bob"]
    assert found[-1].end > 650


def test_a_recording_longer_than_max_duration_is_refused_unread(
    db: SpeakerDB, tmp_path: Path
) -> None:
    path = tmp_path / "two-minutes.wav"
    sf.write(path, silence(120.0), RATE)
    with pytest.raises(AudioError, match=r"longer than 60 s.*max-duration"):
        db.segments(path, max_duration_s=60)


def peak_memory(db: SpeakerDB, path: Path) -> tuple[list[Segment], int]:
    """``segments`` of ``path`` and the peak of memory allocated meanwhile (tracemalloc)."""
    tracemalloc.start()
    try:
        found = db.segments(path, options=OPTIONS, threshold=THRESHOLD)
        return found, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def minutes_of_turns(path: Path, minutes: int) -> Path:
    """A recording with one 4 s turn a minute, bob and alice in turn, written in pieces."""
    with sf.SoundFile(path, "w", RATE, 1, "PCM_16") as out:
        for minute in range(minutes):
            who = "alice" if minute % 2 else "bob"
            out.write(np.concatenate([speech(who, 4.0, minute), silence(56.0)]))
    return path


def test_long_input_is_processed_in_bounded_memory(db: SpeakerDB, tmp_path: Path) -> None:
    """Memory is one block's, whatever the length: 20 minutes (77 MB as 16 kHz float32)
    need no more than 5 minutes do, and far less than the decoded audio."""
    short = minutes_of_turns(tmp_path / "five.wav", 5)
    long = minutes_of_turns(tmp_path / "twenty.wav", 20)
    db.segments(short, options=OPTIONS, threshold=THRESHOLD)  # the encoder is warm
    _, short_peak = peak_memory(db, short)
    found, long_peak = peak_memory(db, long)
    assert labels(found) == ["bob", "alice"] * 10
    assert long_peak < 1.2 * short_peak, (short_peak, long_peak)
    assert long_peak < 40 * 2**20, f"peak {long_peak / 2**20:.1f} MiB"


def test_enrollment_refuses_names_reserved_for_strangers(db: SpeakerDB) -> None:
    clip = (voice(300.0, 3.0, RATE, seed=9), RATE)
    for name in ("unknown", "Unknown-3", " unknown-12 ", "UNKNOWN-1"):
        with pytest.raises(InvalidName, match="reserved"):
            db.enroll(name, [clip])
    with pytest.raises(InvalidName, match="reserved"):
        db.rename("alice", "unknown-2")
    assert db.enroll("unknown caller", [clip]).speaker.name == "unknown caller"


def test_rttm_lines_follow_the_convention() -> None:
    found = [
        Segment(0.5, 2.25, "Mary Ann", "Mary Ann", 0.9, 0.9),
        Segment(3.0, 4.0, None, "unknown-1", 0.4, 0.4),
    ]
    assert list(rttm_lines(found, "call 7")) == [
        "SPEAKER call%207 1 0.500 1.750 <NA> <NA> Mary%20Ann <NA> <NA>",
        "SPEAKER call%207 1 3.000 1.000 <NA> <NA> unknown-1 <NA> <NA>",
    ]


def test_stream_gives_segments_while_the_audio_still_arrives(db: SpeakerDB) -> None:
    turns = [("alice", 4), ("bob", 4), ("stranger", 4)] * 3
    samples, _ = conversation(turns)
    offline = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD)
    sent = 0

    def chunks() -> Iterator[np.ndarray]:
        nonlocal sent
        for start in range(0, len(samples), 5_900):  # chunks of 0.37 s
            sent = start
            yield samples[start : start + 5_900]

    live = dataclasses.replace(OPTIONS, block_s=10.0)
    first_at = None
    found = []
    for segment in db.segments_stream(chunks(), RATE, options=live, threshold=THRESHOLD):
        if first_at is None:
            first_at = sent / RATE
        found.append(segment)
    assert labels(found) == labels(offline)
    assert [s.start for s in found] == sorted(s.start for s in found)
    assert first_at is not None and first_at < len(samples) / RATE / 2


def test_stream_resamples_and_downmixes_chunks(db: SpeakerDB) -> None:
    import soxr

    samples, _ = conversation([("alice", 4), ("bob", 4)])
    stereo = np.stack([soxr.resample(samples, RATE, 44_100)] * 2, axis=1)
    pieces = (stereo[i : i + 4410] for i in range(0, len(stereo), 4410))
    found = list(db.segments_stream(pieces, 44_100, options=OPTIONS, threshold=THRESHOLD))
    assert labels(found) == ["alice", "bob"]


def test_progress_is_reported_block_by_block(db: SpeakerDB, tmp_path: Path) -> None:
    path = minutes_of_turns(tmp_path / "three.wav", 3)
    seen: list[float] = []
    db.segments(path, options=OPTIONS, threshold=THRESHOLD, progress=seen.append)
    assert len(seen) == 3 and seen == sorted(seen)
    assert seen[-1] == pytest.approx(180.0, abs=0.1)


@pytest.mark.parametrize("seconds", [0.6, 1.0, 1.7])
def test_a_recording_shorter_than_a_window_is_answered(db: SpeakerDB, seconds: float) -> None:
    # Speech shorter than one clean window (1.6 s at 80 % speech) left the first
    # labelling pass without a window and failed with an IndexError.
    samples = np.concatenate([speech("alice", seconds, seed=7), silence(0.2)])
    found = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD)
    assert {s.label for s in found} <= {"alice"}
    live = db.segments_live(RATE, options=OPTIONS, threshold=THRESHOLD)
    pushed = live.push(samples) + live.end()
    assert [s.label for s in pushed] == labels(found)
