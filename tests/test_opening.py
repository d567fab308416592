"""Opening a database: the file is created by the first write, never by a read, and a
first write that never committed (its process killed) leaves nothing that later
commands take for a database with a model.

Issue 17 item 9 and issue 16 findings 8, 9 and 10.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import AudioError, DatabaseError, SpeakerDB

RATE = 16000


def clips(pitch: float, n: int = 3) -> list[tuple[np.ndarray, int]]:
    return [(voice(pitch, seed=seed), RATE) for seed in range(n)]


# -- the file is created at the first write ----------------------------------


@pytest.mark.parametrize(
    "read",
    [
        lambda db: db.speakers(),
        lambda db: db.info(),
        lambda db: db.identify(clips(150)[0]),
        lambda db: db.verify("alice", clips(150)[0]),
        lambda db: db.utterances("alice"),
    ],
    ids=["speakers", "info", "identify", "verify", "utterances"],
)
def test_reading_a_missing_database_raises_and_creates_nothing(tmp_path: Path, read) -> None:
    path = tmp_path / "typo.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"typo\.db: no such database; check --db, or"):
            read(db)
    assert list(tmp_path.iterdir()) == []


def test_the_first_enrollment_creates_the_database_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert not path.exists()
        db.enroll("alice", clips(150))
        assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
        assert [s.name for s in db.speakers()] == ["alice"]
        assert db.identify(clips(150)[0]).speaker == "alice"
    with SpeakerDB(path) as db:
        assert db.model == "fake-encoder"


def test_a_settings_write_creates_the_database(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path) as db:
        db.set_threshold(0.7)
        assert db.speakers() == []
    with SpeakerDB(path, create=False) as db:
        assert db.policy().threshold == pytest.approx(0.7)


def test_create_false_still_refuses_a_missing_file_at_once(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no such database"):
        SpeakerDB(tmp_path / "typo.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_first_enrollment_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(AudioError):
            db.enroll("alice", [(np.zeros(RATE, np.float32), RATE)])  # silence: refused
    assert list(tmp_path.iterdir()) == []


def _stillborn(path: Path) -> None:
    """What a process killed between creating the schema and committing its first
    enrollment leaves: a database at the head schema with nothing in it."""
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.set_threshold(0.5)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM settings")
    conn.close()


def test_a_database_whose_first_write_never_committed_is_new(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    _stillborn(path)
    with SpeakerDB(path, create=False) as db:
        # Not a database built with the default hub model: not a database at all yet.
        with pytest.raises(DatabaseError, match=r"never finished .* enroll a speaker to create"):
            db.identify(clips(150)[0])
    with SpeakerDB(path, encoder=FakeEncoder(dim=16, model="other-encoder")) as db:
        db.enroll("alice", clips(150))
        encoder = db.info().encoder
        assert encoder is not None and (encoder.model, encoder.dim) == ("other-encoder", 16)
