"""The fast read-only path of `list` and `show`: same answers, no heavy imports, safe fallback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, FakeEncoder, run_probed, voice

from speakerdb import DatabaseError, SchemaError, SpeakerDB, SpeakerNotFound
from speakerdb.cli import app
from speakerdb.storage.sqlite import open_reader

FROZEN_0001 = ROOT / "tests" / "data" / "speakers-0001.db"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", [(voice(120, seed=1), 16000), (voice(125, seed=2), 16000)])
        db.enroll("bob", [(voice(210, seed=3), 16000)])
        db.enroll("Zoë", [(voice(300, seed=4), 16000)])
    return path


def test_reader_gives_the_same_answers_as_speakerdb(db_path: Path) -> None:
    reader = open_reader(db_path)
    assert reader is not None
    with reader, SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        assert reader.speakers() == db.speakers()
        assert [s.name for s in reader.speakers()] == ["Zoë", "alice", "bob"]
        for name in ("alice", "bob", "Zoë", "  alice "):
            assert reader.speaker(name) == db.speaker(name)
            assert reader.utterances(name) == db.utterances(name)
        with pytest.raises(SpeakerNotFound, match=r"db\.speakers\(\) lists who is enrolled"):
            reader.speaker("carol")


def test_reader_info_is_speakerdb_info(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def both() -> tuple[object, object]:
        reader = open_reader(db_path)
        assert reader is not None
        with reader, SpeakerDB(db_path, encoder=FakeEncoder()) as db:
            return reader.info(), db.info()

    fast, full = both()
    assert fast == full
    assert (fast.n_speakers, fast.n_utterances) == (3, 4)  # type: ignore[attr-defined]
    assert fast.index_state == "up to date (3 speakers)"  # type: ignore[attr-defined]
    with SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        db.set_threshold(0.61)
    assert both()[0] == both()[1]
    with SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        db.set_score_norm("margin")
        db.set_threshold(0.9, score_norm="margin")
    fast, full = both()
    assert fast == full and fast.score_norm == "margin"  # type: ignore[attr-defined]
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.55")
    monkeypatch.setenv("SPEAKERDB_MODEL", "fake-encoder")
    fast, full = both()
    assert fast == full and fast.threshold_source == "environment"  # type: ignore[attr-defined]
    db_path.with_name(db_path.name + ".faiss").unlink()
    fast, full = both()
    assert fast == full and "will be rebuilt" in fast.index_state  # type: ignore[attr-defined]


def test_reader_sees_every_committed_write(db_path: Path) -> None:
    reader = open_reader(db_path)
    assert reader is not None
    with reader, SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        db.remove("bob")
        db.enroll("alice", [(voice(130, seed=9), 16000)])
        assert [(s.name, s.n_utterances) for s in reader.speakers()] == [
            ("Zoë", 1),
            ("alice", 3),
        ]


def test_reader_never_writes(db_path: Path) -> None:
    before = db_path.read_bytes()
    reader = open_reader(db_path)
    assert reader is not None
    with reader:
        reader.speakers()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._db.execute("DELETE FROM speakers")
    assert db_path.read_bytes() == before


def test_anything_unusual_goes_to_speakerdb(tmp_path: Path) -> None:
    assert open_reader(tmp_path / "missing.db") is None
    assert open_reader(tmp_path) is None
    empty = tmp_path / "empty.db"
    empty.touch()
    assert open_reader(empty) is None
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    assert open_reader(foreign) is None
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert open_reader(garbage) is None
    old = tmp_path / "old.db"
    shutil.copy(FROZEN_0001, old)
    assert open_reader(old) is None


def test_cli_on_an_old_database_still_says_how_to_upgrade(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    old = tmp_path / "old.db"
    shutil.copy(FROZEN_0001, old)
    with pytest.raises(SchemaError):
        SpeakerDB(old, create=False)
    for command in (["list"], ["show", "anyone"], ["info"]):
        result = CliRunner().invoke(app, [*command, "--db", str(old)])
        assert result.exit_code == 2
        assert "speakerdb db upgrade" in result.output


_HEAVY = {"sqlalchemy", "alembic", "numpy", "torch", "transformers", "faiss", "soundfile"}


@pytest.mark.parametrize("command", [["list"], ["show", "alice"], ["info"], ["--help"]])
def test_look_only_commands_load_no_orm_numpy_or_model(db_path: Path, command: list[str]) -> None:
    args = [*command, "--db", str(db_path)] if command[0] != "--help" else command
    proc, code, loaded = run_probed(args)
    assert code in (0, None), proc.stderr
    assert not _HEAVY & loaded, sorted(loaded)
    if command[0] in ("list", "show"):
        assert "alice" in proc.stdout


@pytest.mark.parametrize("given", ["--db", "SPEAKERDB_DB"])
@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["show", "alice"], ["info"]])
def test_look_only_commands_refuse_a_missing_database_as_fast(
    tmp_path: Path, command: list[str], given: str
) -> None:
    missing = tmp_path / "mistyped.db"
    if given == "--db":
        proc, code, loaded = run_probed([*command, "--db", str(missing)])
    else:
        proc, code, loaded = run_probed(command, env={**os.environ, given: str(missing)})
    with pytest.raises(DatabaseError) as refused:
        SpeakerDB(missing, create=False)
    assert code == 2
    assert f"speakerdb: error: {refused.value}\n" in proc.stderr
    assert "no such database; check --db" in str(refused.value)
    assert ('"type": "DatabaseError"' in proc.stdout) == ("--json" in command)
    assert not _HEAVY & loaded, sorted(loaded)
    assert not missing.exists()


def test_sqlite_errors_name_the_fix(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speakerdb import DatabaseError

    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 2_000)
    reader = open_reader(db_path)
    assert reader is not None

    class Busy:
        in_transaction = False

        def execute(self, *args: object) -> None:
            raise sqlite3.OperationalError("database is locked")

    with reader:
        real, reader._db = reader._db, Busy()  # type: ignore[assignment]
        try:
            with pytest.raises(DatabaseError, match="busy for over 2 s; retry"):
                reader.speakers()
        finally:
            reader._db = real


def test_model_from_the_environment_loads_no_numpy(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEAKERDB_MODEL", "fake-encoder")
    proc, code, loaded = run_probed(["info", "--db", str(db_path)])
    assert code in (0, None), proc.stderr
    assert "fake-encoder" in proc.stdout
    assert "numpy" not in loaded and "sqlalchemy" not in loaded


def test_a_bad_backend_is_refused_when_opening(tmp_path: Path) -> None:
    from speakerdb import InputError

    with pytest.raises(InputError, match="backend from argument must be one of"):
        SpeakerDB(tmp_path / "b.db", encoder=FakeEncoder(), backend="cuda")


def test_info_reads_only_the_header_of_a_large_index(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import speakerdb.storage._indexfile as indexfile

    index = db_path.with_name(db_path.name + ".faiss")
    data = bytearray(index.read_bytes())
    data[-1] ^= 0xFF  # a payload whose checksum no longer matches
    index.write_bytes(bytes(data))
    reader = open_reader(db_path)
    assert reader is not None
    with reader:
        assert "checksum mismatch" in reader.info().index_state
        monkeypatch.setattr(indexfile, "STATE_CHECKS_UP_TO", 16)  # as if it were gigabytes
        assert reader.info().index_state == "up to date (3 speakers)"
    with SpeakerDB(db_path, encoder=FakeEncoder()) as db:  # loading checks it still
        assert len(db.index.current()) == 3
        assert "up to date" in db.info().index_state


@contextmanager
def _locked(path: Path) -> Iterator[sqlite3.Connection]:
    """``path`` held by another program that readers cannot get past (an exclusive lock
    on a WAL database); closing the connection lets them in."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield holder
    finally:
        holder.close()


def test_list_gives_up_on_a_locked_database_after_the_busy_timeout(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 300)
    with _locked(db_path):
        started = time.monotonic()
        result = CliRunner().invoke(app, ["list", "--db", str(db_path)])
        waited = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert "busy for over 0 s; retry" in result.output
    assert 0.3 <= waited < 5  # one wait of the setting, not the reader's then SpeakerDB's


def test_list_waits_for_a_lock_let_go_within_the_busy_timeout(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from speakerdb import DatabaseBusy

    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 20_000)
    with _locked(db_path) as holder:
        threading.Timer(0.5, holder.close).start()
        result = CliRunner().invoke(app, ["list", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "alice" in result.output
    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 200)
    with _locked(db_path), pytest.raises(DatabaseBusy, match="busy for over 0 s"):
        open_reader(db_path)
