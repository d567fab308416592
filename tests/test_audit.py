"""The optional audit log of identify and verify decisions (speakerdb/audit.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import AuditEntry, AuditSettings, DatabaseError, InputError, SpeakerDB
from speakerdb.cli import app
from speakerdb.errors import Fix
from speakerdb.services import DEFAULT_MAX_ROWS, DEFAULT_RETENTION_DAYS

# Pitches far enough apart for the fake encoder that no quality gate objects.
ALICE, BOB = 110.0, 1000.0


def clip(pitch: float, seed: int) -> tuple[np.ndarray, int]:
    return voice(pitch, 1.5, 16000, seed), 16000


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SpeakerDB]:
    database = SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder(), threshold=0.9)
    database.enroll("alice", [clip(ALICE, 1), clip(ALICE, 2)])
    database.enroll("bob", [clip(BOB, 3)])
    yield database
    database.close()


def data_version(path: Path, con: sqlite3.Connection | None = None) -> int:
    return (con or sqlite3.connect(path)).execute("PRAGMA data_version").fetchone()[0]


def test_off_by_default_and_writes_nothing(db: SpeakerDB) -> None:
    assert db.audit.settings() == AuditSettings(False, DEFAULT_RETENTION_DAYS, DEFAULT_MAX_ROWS)
    watcher = sqlite3.connect(db.path)
    before = data_version(db.path, watcher)
    db.identify(clip(ALICE, 5))
    db.identify_many([clip(BOB, 6), clip(ALICE, 7)])
    db.verify("alice", clip(ALICE, 8))
    assert data_version(db.path, watcher) == before  # not one write
    watcher.close()
    assert db.audit.entries() == []


def test_identify_and_verify_decisions_are_logged(db: SpeakerDB) -> None:
    settings = db.audit.configure(True)
    assert settings == AuditSettings(True, DEFAULT_RETENTION_DAYS, DEFAULT_MAX_ROWS)
    start = datetime.now(timezone.utc)
    found = db.identify(clip(ALICE, 5))
    stranger = db.identify(clip(500.0, 6))
    claim = db.verify("alice", clip(BOB, 7))
    both = db.identify_many([clip(BOB, 8), clip(ALICE, 9)])
    entries = db.audit.entries()
    assert len(entries) == 5
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)  # newest first
    newest_last = entries[::-1]
    assert all(
        isinstance(e, AuditEntry) and e.time >= start - timedelta(seconds=1) for e in entries
    )
    assert all(e.time.tzinfo is not None for e in entries)
    first, second, third = newest_last[:3]
    assert found.best is not None and stranger.best is not None
    assert (first.operation, first.claimed, first.identified) == ("identify", None, "alice")
    assert (first.score, first.threshold, first.accepted) == (
        pytest.approx(found.best.score),
        0.9,
        found.accepted,
    )
    assert (second.identified, second.accepted) == (stranger.best.speaker, stranger.accepted)
    assert (third.operation, third.claimed, third.identified) == ("verify", "alice", "alice")
    assert (third.score, third.accepted) == (pytest.approx(claim.score), claim.accepted is True)
    assert [e.identified for e in newest_last[3:]] == [r.best.speaker for r in both if r.best]
    assert db.audit.entries(limit=2) == entries[:2]


def test_an_empty_database_is_logged_as_no_candidate(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "empty.db", encoder=FakeEncoder()) as db:
        db.audit.configure(True)
        db.identify(clip(ALICE, 1))
        (entry,) = db.audit.entries()
    assert (entry.identified, entry.score, entry.accepted) == (None, None, False)


def test_settings_live_in_the_database(db: SpeakerDB) -> None:
    db.audit.configure(True, retention_days=7, max_rows=50)
    with SpeakerDB(db.path, encoder=FakeEncoder()) as other:
        assert other.audit.settings() == AuditSettings(True, 7, 50)
        other.verify("bob", clip(BOB, 4))
    assert len(db.audit.entries()) == 1  # logged by the other handle, in its own process
    assert db.audit.configure(False) == AuditSettings(False, 7, 50)  # limits kept
    db.verify("bob", clip(BOB, 5))
    assert len(db.audit.entries()) == 1


def test_retention_by_rows(db: SpeakerDB) -> None:
    db.audit.configure(True, max_rows=3)
    for seed in range(5):
        db.verify("alice", clip(ALICE, 10 + seed))
    entries = db.audit.entries()
    assert len(entries) == 3
    rows = sqlite3.connect(db.path).execute("SELECT id FROM audit ORDER BY id").fetchall()
    assert [r for (r,) in rows] == sorted(e.id for e in entries)  # the rest is deleted
    db.audit.configure(True, max_rows=1)  # shortening applies at once
    assert len(db.audit.entries()) == 1


def test_retention_by_days(db: SpeakerDB) -> None:
    db.audit.configure(True, retention_days=10)
    db.verify("alice", clip(ALICE, 10))
    old = (datetime.now(timezone.utc) - timedelta(days=11)).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(db.path)
    with con:
        con.execute(
            "INSERT INTO audit (created_at, operation, claimed, identified, score, threshold, "
            "accepted, outcome) VALUES (?, 'verify', 'bob', 'bob', 0.5, 0.9, 0, 'rejected')",
            (old,),
        )
    assert len(db.audit.entries()) == 1  # past retention: never shown
    assert con.execute("SELECT count(*) FROM audit").fetchone() == (2,)
    db.verify("alice", clip(ALICE, 11))  # the next write deletes it
    assert con.execute("SELECT count(*) FROM audit WHERE claimed = 'bob'").fetchone() == (0,)
    assert len(db.audit.entries()) == 2
    con.close()


def test_entries_outlive_their_speakers_until_cleared(db: SpeakerDB) -> None:
    db.audit.configure(True)
    db.verify("bob", clip(BOB, 4))
    bob = db.speaker("bob").id
    db.remove("bob")  # the entry stays, naming them by number (tests/test_lifecycle.py)
    assert [e.claimed for e in db.audit.entries()] == [f"removed-{bob}"]
    assert db.audit.clear() == 1
    assert db.audit.entries() == []
    assert db.audit.settings().enabled  # clearing keeps the settings


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retention_days": 0},
        {"retention_days": -3},
        {"retention_days": 1.5},
        {"retention_days": True},
        {"retention_days": 10**6},
        {"max_rows": 0},
        {"max_rows": "100"},
    ],
)
def test_bad_limits_are_refused(db: SpeakerDB, kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError, match="audit"):
        db.audit.configure(True, **kwargs)  # type: ignore[arg-type]
    assert not db.audit.settings().enabled


def test_enabled_must_be_a_bool(db: SpeakerDB) -> None:
    with pytest.raises(InputError, match="True or False"):
        db.audit.configure("yes")  # type: ignore[arg-type]


def test_a_decision_that_cannot_be_logged_is_not_given(
    db: SpeakerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: while auditing is on, no audit entry means no decision."""
    db.audit.configure(True)
    db.close()
    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 200)
    with SpeakerDB(db.path, encoder=FakeEncoder()) as locked:
        writer = sqlite3.connect(db.path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        try:
            with pytest.raises(DatabaseError, match="auditing is on") as caught:
                locked.verify("alice", clip(ALICE, 5))
            assert caught.value.fix is Fix.AUDIT_OFF, caught.value
            assert str(caught.value).endswith("turn auditing off (db.audit.configure(False))")
            with pytest.raises(DatabaseError, match="not given"):
                locked.identify(clip(ALICE, 6))
        finally:
            writer.execute("ROLLBACK")
        locked.audit.configure(False)
        writer.execute("BEGIN IMMEDIATE")
        try:  # with auditing off, a query never writes, so the lock does not matter
            assert locked.verify("alice", clip(ALICE, 7)).accepted
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert locked.audit.entries() == []


def test_settings_stored_badly_fall_back_to_defaults(db: SpeakerDB) -> None:
    con = sqlite3.connect(db.path)
    with con:
        con.execute("INSERT INTO settings VALUES ('audit', 'on')")
        con.execute("INSERT INTO settings VALUES ('audit_retention_days', 'forever')")
        con.execute("INSERT INTO settings VALUES ('audit_max_rows', '-5')")
    con.close()
    assert db.audit.settings() == AuditSettings(True, DEFAULT_RETENTION_DAYS, DEFAULT_MAX_ROWS)


# -- the command line ----------------------------------------------------------


def test_audit_commands(db: SpeakerDB, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    runner = CliRunner()
    folder = db.path.parent
    import soundfile as sf

    sf.write(folder / "door.wav", *clip(ALICE, 20))

    def cli(*args: str) -> object:
        result = runner.invoke(app, [*args, "--db", str(db.path)], catch_exceptions=False)
        return result

    shown = json.loads(cli("audit", "show", "--json").stdout)
    assert shown == {
        "settings": {"enabled": False, "retention_days": 30, "max_rows": 100000},
        "entries": [],
    }
    empty = cli("audit", "show")
    assert empty.exit_code == 0 and "no decisions logged yet" in empty.stderr  # not silence
    result = cli("audit", "on", "--retention-days", "7", "--max-rows", "50", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"enabled": True, "retention_days": 7, "max_rows": 50}
    assert cli("verify", "alice", str(folder / "door.wav")).exit_code == 0
    assert cli("identify", str(folder / "door.wav")).exit_code == 0
    shown = json.loads(cli("audit", "show", "--json").stdout)
    assert [e["operation"] for e in shown["entries"]] == ["identify", "verify"]
    assert shown["entries"][1]["claimed"] == "alice" and shown["entries"][1]["accepted"] is True
    text = cli("audit", "show", "--limit", "1").stdout
    assert text.startswith("audit on: entries kept 7 days, at most 50")
    assert len(text.strip().splitlines()) == 2 and "identify" in text
    assert "no decisions" not in cli("audit", "show").stderr
    assert "off" in cli("audit", "off").stdout
    assert json.loads(cli("audit", "clear", "--json").stdout) == {"removed": 2}
    assert cli("audit", "on", "--retention-days", "0").exit_code == 2  # typer's own check


def test_verify_fails_closed_on_the_command_line(
    db: SpeakerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 200)
    import soundfile as sf

    door = db.path.parent / "door.wav"
    sf.write(door, *clip(ALICE, 20))
    db.audit.configure(True)
    writer = sqlite3.connect(db.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        result = CliRunner().invoke(app, ["verify", "alice", str(door), "--db", str(db.path)])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.exit_code == 2, result.output  # not 0: no access on an unlogged decision
    assert result.stdout == ""
    assert "auditing is on" in result.stderr
