"""Idle expiry (issue 15): a voiceprint without a successful match for N days is
deleted by the expiry sweep, off by default; the last match is recorded off the
queries' path, at most once a day per speaker, and its failure never fails a query."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import DatabaseError, InputError, SpeakerDB
from speakerdb.cli import app

PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0}
DAY = timedelta(days=1)


def clip(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5, 16000, seed), 16000


class Clock:
    """The idle clock (speakerdb.services._idle.utcnow), moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr("speakerdb.services._idle.utcnow", made)
    return made


@pytest.fixture
def db(tmp_path: Path, clock: Clock) -> Iterator[SpeakerDB]:
    database = SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())
    for i, name in enumerate(PITCHES):
        database.enroll(name, [clip(name, 2 * i + 1), clip(name, 2 * i + 2)])
    database.audit.configure(True)
    yield database
    database.close()


def matched(db: SpeakerDB, name: str, seed: int = 9) -> datetime | None:
    """Identify ``name`` (it must be accepted) and wait for the record; their last match."""
    assert db.identify(clip(name, seed)).speaker == name
    db._matches.flush()
    return db.speaker(name).last_match_at


def test_idle_expiry_is_off_by_default(db: SpeakerDB, clock: Clock) -> None:
    assert db.lifecycle.idle_days() == (None, None)
    clock.advance(3650 * DAY)
    assert db.lifecycle.expire() == []
    assert len(db.speakers()) == 3


def test_idle_speakers_are_removed_by_the_sweep(db: SpeakerDB, clock: Clock) -> None:
    enrolled = db.speaker("bob").last_match_at
    assert enrolled is not None  # counted from the enrollment
    assert db.lifecycle.set_idle_days(30) == 30
    assert db.lifecycle.idle_days() == (30, clock.now)
    clock.advance(20 * DAY)
    assert matched(db, "alice") == clock.now
    assert db.verify("carol", clip("carol", 8)).accepted
    db._matches.flush()
    clock.advance(15 * DAY)  # bob: 35 idle days; alice and carol: 15
    removed = db.lifecycle.expire()
    assert [s.name for s in removed] == ["bob"]
    assert [s.name for s in db.speakers()] == ["alice", "carol"]
    names = {e.identified for e in db.audit.entries()} | {e.claimed for e in db.audit.entries()}
    assert "bob" not in names  # as for --expires: the audit log names them removed-<id>
    clock.advance(20 * DAY)
    assert [s.name for s in db.lifecycle.expire()] == ["alice", "carol"]


def test_the_clock_starts_when_idle_expiry_is_turned_on(db: SpeakerDB, clock: Clock) -> None:
    clock.advance(400 * DAY)  # everyone is long idle, but the limit is new
    db.lifecycle.set_idle_days(30)
    clock.advance(29 * DAY)
    assert db.lifecycle.expire() == []
    clock.advance(2 * DAY)
    assert len(db.lifecycle.expire()) == 3
    assert db.lifecycle.set_idle_days(0) is None
    with pytest.raises(InputError, match="--idle-days"):
        db.lifecycle.set_idle_days(-1)


def test_the_last_match_is_written_at_most_once_a_day(
    db: SpeakerDB, clock: Clock, tmp_path: Path
) -> None:
    enrolled = db.speaker("alice").last_match_at
    assert matched(db, "alice") == enrolled  # the enrollment is less than a day old
    clock.advance(2 * DAY)
    first = matched(db, "alice")
    assert first == clock.now
    clock.advance(timedelta(hours=5))
    assert matched(db, "alice") == first  # not even queued again by this process
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as other:
        clock.advance(timedelta(hours=5))
        assert matched(other, "alice") == first  # another process: the stored value is fresh
        clock.advance(DAY)
        assert matched(other, "alice") == clock.now
    assert db.identify(clip("alice", 7)).speaker == "alice"  # unknown or rejected: no record
    assert db.identify(clip("bob", 7)).speaker == "bob"
    db._matches.flush()


def test_a_query_never_waits_for_the_record(db: SpeakerDB, clock: Clock, tmp_path: Path) -> None:
    """The write lock is held elsewhere: identify still answers at once, and the record
    is written once the lock is free."""
    before = db.speaker("alice").last_match_at
    db.audit.configure(False)  # (auditing writes in the query itself)
    clock.advance(2 * DAY)
    holder = sqlite3.connect(tmp_path / "speakers.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert db.identify(clip("alice", 9)).speaker == "alice"
        assert time.monotonic() - started < 5  # the busy timeout is 30 s
        assert db.speaker("alice").last_match_at == before
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    db._matches.flush()
    assert db.speaker("alice").last_match_at != before


def test_a_failing_record_never_fails_a_query(
    db: SpeakerDB, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db.audit.configure(False)

    def broken(*args: object, **kwargs: object) -> Callable[..., object]:
        raise DatabaseError("disk full")

    clock.advance(2 * DAY)
    working = db._storage.change
    monkeypatch.setattr(db._storage, "change", broken)
    with caplog.at_level(logging.WARNING, logger="speakerdb.services._idle"):
        result = db.identify(clip("alice", 9))
        db._matches.flush()
    assert result.speaker == "alice" and result.outcome == "accepted"
    assert "could not record the last match" in caplog.text
    monkeypatch.setattr(db._storage, "change", working)
    assert matched(db, "alice") == clock.now  # tried again at the next match


def test_idle_expiry_on_the_command_line(
    db: SpeakerDB, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    runner = CliRunner()
    where = ["--db", str(db.path)]
    off = runner.invoke(app, ["retention", *where])
    assert off.exit_code == 0 and "idle expiry: off" in off.stdout
    assert "kept audio: 0 clip(s)" in off.stdout
    on = runner.invoke(app, ["retention", "--idle-days", "30", *where])
    assert "after 30 day(s) without a successful match (counting from" in on.stdout
    shown = json.loads(runner.invoke(app, ["retention", "--json", *where]).stdout)
    assert shown["idle_days"] == 30 and shown["idle_since"]
    bad = runner.invoke(app, ["retention", "--idle-days", "-3", *where])
    assert bad.exit_code == 2 and "--idle-days" in bad.stderr
    clock.advance(31 * DAY)
    swept = runner.invoke(app, ["expire", *where])
    assert swept.exit_code == 0, swept.output
    assert "removed alice (idle: no match since" in swept.stdout
    assert "3 expired voiceprint(s) deleted" in swept.stdout


def test_queries_sweep_idle_speakers_by_themselves(db: SpeakerDB, clock: Clock) -> None:
    """No ``expire`` needed: a process's queries sweep in the background, at most
    hourly, and an idle speaker is gone after the next sweep."""
    db.lifecycle.set_idle_days(30)
    matched(db, "alice")  # the process's first query sweeps: no one is idle yet
    assert len(db.speakers()) == 3
    clock.advance(20 * DAY)
    matched(db, "alice")
    clock.advance(15 * DAY)  # bob and carol: 35 idle days; alice: 15
    matched(db, "alice")
    assert [s.name for s in db.speakers()] == ["alice"]
    clock.advance(timedelta(minutes=30))  # within the hour: no sweep, nothing to sweep
    matched(db, "alice")
    assert [s.name for s in db.speakers()] == ["alice"]
