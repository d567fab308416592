"""Bulk enrollment through SpeakerDB.enroll_many: chunked commits, per-speaker outcomes,
and quality gates that look only at the clips they need."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import (
    DuplicateUtterance,
    Enrollment,
    InvalidName,
    SpeakerDB,
    SpeakerDBError,
)
from speakerdb.services import _enrolling

RATE = 16_000


def clip(pitch: float, seed: int) -> tuple[np.ndarray, int]:
    return voice(pitch, seed=seed), RATE


def generation(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (value,) = conn.execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
    return int(value)


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    with SpeakerDB(tmp_path / "many.db", encoder=FakeEncoder()) as database:
        yield database


def test_speakers_are_committed_a_chunk_at_a_time(
    db: SpeakerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_enrolling, "CHUNK_SPEAKERS", 2)
    monkeypatch.setattr(_enrolling, "CHUNK_SECONDS", 1e9)  # a slow machine cuts no extra chunk
    groups = [(f"s{k}", [clip(100 + 40 * k, k)]) for k in range(5)]
    outcomes = list(db.enroll_many(groups, force=True))
    assert [name for name, _ in outcomes] == ["s0", "s1", "s2", "s3", "s4"]
    assert all(isinstance(result, Enrollment) for _, result in outcomes)
    assert generation(db.path) == 3  # 2 + 2 + 1 speakers: three transactions
    assert sorted(db.index.current().ids().tolist()) == sorted(s.id for s in db.speakers())
    found = db.identify(clip(100 + 40 * 3, 3))
    assert found.best is not None and found.best.speaker == "s3"


def test_a_refused_speaker_does_not_stop_the_others(db: SpeakerDB) -> None:
    db.enroll("old", [clip(500, 99)])
    groups = [
        ("ann", [clip(120, 1)]),
        ("  ", [clip(130, 2)]),
        ("ben", []),
        ("cy", [clip(500, 99)]),  # old's audio
        ("dee", [clip(260, 4)]),
    ]
    outcomes = dict(db.enroll_many(groups, force=True))
    assert isinstance(outcomes["ann"], Enrollment) and isinstance(outcomes["dee"], Enrollment)
    assert isinstance(outcomes["  "], InvalidName)
    assert isinstance(outcomes["ben"], SpeakerDBError) and "no clips" in str(outcomes["ben"])
    assert isinstance(outcomes["cy"], DuplicateUtterance)
    assert [s.name for s in db.speakers()] == ["ann", "dee", "old"]


def test_one_audio_twice_in_a_chunk_is_refused_before_writing(db: SpeakerDB) -> None:
    outcomes = dict(db.enroll_many([("ann", [clip(120, 1)]), ("ben", [clip(120, 1)])]))
    assert isinstance(outcomes["ben"], DuplicateUtterance)
    assert "being enrolled for 'ann'" in str(outcomes["ben"])
    assert [(s.name, s.n_utterances) for s in db.speakers()] == [("ann", 1)]


def test_a_name_given_twice_gets_both_groups(db: SpeakerDB) -> None:
    groups = [("ann", [clip(120, 1)]), ("ben", [clip(250, 2)]), ("ann", [clip(121, 3)])]
    outcomes = list(db.enroll_many(groups))
    assert [name for name, _ in outcomes] == ["ann", "ben", "ann"]
    last = outcomes[-1][1]
    assert isinstance(last, Enrollment) and not last.created
    assert db.speaker("ann").n_utterances == 2


class VoiceIdEncoder(FakeEncoder):
    """Each clip carries its voice's number in its first sample; a voice is a random
    direction, and each clip of it a little noise around that direction."""

    def _one(self, clip: np.ndarray) -> np.ndarray:
        voice_id = round(float(clip[0]) * 1000)
        base = np.random.default_rng(voice_id).standard_normal(self.info.dim)
        noise = np.random.default_rng(int(abs(clip[1:100]).sum() * 1e6)).standard_normal(base.size)
        vector = base / np.linalg.norm(base) + 0.05 * noise / np.sqrt(base.size)
        return vector / np.linalg.norm(vector)


def voice_clip(voice_id: int, seed: int) -> tuple[np.ndarray, int]:
    samples = voice(150, seed=seed)
    samples[0] = voice_id / 1000
    return samples, RATE


def test_near_duplicates_are_found_among_many_and_within_a_chunk(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "dup.db", encoder=VoiceIdEncoder()) as db:
        db.set_threshold(0.6)  # a measured threshold: similarity gates may refuse
        groups = [(f"v{k}", [voice_clip(k, k)]) for k in range(1, 61)]
        assert all(isinstance(r, Enrollment) for _, r in db.enroll_many(groups))
        # A new speaker is compared with the closest enrolled one, found by the index.
        with pytest.raises(SpeakerDBError, match="nearly identical to 'v37'"):
            db.enroll("newcomer", [voice_clip(37, 1000)])
        # ...and with the speakers about to be committed in the same chunk.
        pair = dict(db.enroll_many([("x1", [voice_clip(99, 7)]), ("x2", [voice_clip(99, 8)])]))
        assert isinstance(pair["x1"], Enrollment)
        assert isinstance(pair["x2"], SpeakerDBError)
        assert "nearly identical to 'x1'" in str(pair["x2"])
