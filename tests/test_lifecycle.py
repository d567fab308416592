"""The voiceprint lifecycle through the library and the CLI: metadata (external id,
attributes), backups, retention (issue 15)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice
from typer.testing import CliRunner, Result

from speakerdb import (
    DuplicateSpeaker,
    EnrollmentRefused,
    InputError,
    OptedOut,
    SpeakerDB,
    SpeakerNotFound,
)
from speakerdb.cli import app
from speakerdb.errors import Fix
from speakerdb.storage.sqlite import open_reader

PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0, "dave": 2300.0}


def clip(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5, 16000, seed), 16000


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SpeakerDB]:
    database = SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())
    database.enroll("alice", [clip("alice", 1), clip("alice", 2)])
    database.enroll("bob", [clip("bob", 3)])
    yield database
    database.close()


@pytest.fixture
def cli(db: SpeakerDB, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``speakerdb ARGS --db <db>`` in-process, with the fake encoder."""
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    runner = CliRunner()

    def run(*args: object) -> Result:
        return runner.invoke(app, [*map(str, args), "--db", str(db.path)])

    return run


def write_clip(folder: Path, name: str, seed: int) -> Path:
    path = folder / f"{name}{seed}.wav"
    sf.write(path, *clip(name, seed))
    return path


def one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speakerdb: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# -- metadata ----------------------------------------------------------------------


def test_enroll_sets_the_external_id_and_attributes(db: SpeakerDB) -> None:
    made = db.enroll("carol", [clip("carol", 4)], external_id=" E7 ", attributes={"team": "a"})
    assert (made.speaker.external_id, made.speaker.attributes) == ("E7", {"team": "a"})
    more = db.enroll("carol", [clip("carol", 5)], attributes={"floor": 3, "team": None})
    assert (more.speaker.external_id, more.speaker.attributes) == ("E7", {"floor": 3})
    assert db.speaker("carol") == more.speaker
    assert db.lifecycle.find("E7") == more.speaker
    with pytest.raises(SpeakerNotFound, match="E8"):
        db.lifecycle.find("E8")


def test_metadata_alone_on_clips_enrolled_already(db: SpeakerDB) -> None:
    again = db.enroll("alice", [clip("alice", 1)], external_id="E1")
    assert again.added == () and again.speaker.external_id == "E1"


def test_a_refused_enrollment_changes_nothing(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1")
    before = db.speakers()
    with pytest.raises(DuplicateSpeaker, match="'E1' belongs to speaker 'alice'"):
        db.enroll("carol", [clip("carol", 4)], external_id="E1")
    with pytest.raises(InputError, match="meta alice --id NEW"):
        db.enroll("alice", [clip("alice", 6)], external_id="E2")
    assert db.speakers() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"external_id": ""}, "empty"),
        ({"external_id": "a\x1b[2J"}, "control characters"),
        ({"external_id": "x" * 129}, "at most 128"),
        ({"attributes": {"t": float("nan")}}, "JSON values"),
        ({"attributes": {"t": object()}}, "JSON values"),
        ({"attributes": {"": 1}}, "non-empty"),
        ({"attributes": ["a"]}, "mapping"),
        ({"attributes": {"t": "x" * 20_000}}, "at most 16384"),
    ],
)
def test_bad_metadata_is_refused_before_anything_is_written(
    db: SpeakerDB, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        db.enroll("carol", [clip("carol", 4)], **kwargs)
    assert [s.name for s in db.speakers()] == ["alice", "bob"]


def test_set_metadata_changes_or_clears_the_external_id(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1", attributes={"a": [1, 2]})
    changed = db.lifecycle.set_metadata("alice", external_id="E2")
    assert (changed.external_id, changed.attributes) == ("E2", {"a": [1, 2]})
    cleared = db.lifecycle.set_metadata("alice", external_id=None, attributes={"a": None})
    assert (cleared.external_id, cleared.attributes) == (None, {})


def test_the_fast_reader_shows_the_same_metadata(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1", attributes={"team": "night", "n": 2})
    reader = open_reader(db.path)
    assert reader is not None
    with reader:
        assert reader.speakers() == db.speakers()
        assert reader.speaker("alice") == db.speaker("alice")


def test_metadata_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    enrolled = cli(
        "enroll",
        "carol",
        write_clip(tmp_path, "carol", 4),
        "--id",
        "E7",
        "--attr",
        "team=night shift",
        "--attr",
        "floor:=3",
        "--json",
    )
    assert enrolled.exit_code == 0, enrolled.output
    speaker = json.loads(enrolled.stdout)["speaker"]
    assert (speaker["external_id"], speaker["attributes"]) == (
        "E7",
        {"floor": 3, "team": "night shift"},
    )
    shown = cli("show", "carol")
    assert "external id: E7" in shown.stdout and "attribute floor = 3" in shown.stdout
    assert "attribute team = night shift" in shown.stdout
    as_json = json.loads(cli("show", "carol", "--json").stdout)["speaker"]
    assert as_json["attributes"] == {"floor": 3, "team": "night shift"}
    changed = cli("meta", "carol", "--id", "E8", "--attr", "floor:=null", "--json")
    assert json.loads(changed.stdout)["external_id"] == "E8"
    assert "attribute floor" not in cli("show", "carol").stdout
    assert "no external id or attributes" in cli("meta", "bob").stdout


def test_bad_metadata_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    carol = write_clip(tmp_path, "carol", 4)
    one_line_error(cli("enroll", "carol", carol, "--attr", "team"), "key=value")
    one_line_error(cli("enroll", "carol", carol, "--attr", "n:=[1"), "not JSON")
    one_line_error(cli("meta", "alice", "--id", "E1", "--clear-id"), "not both")
    assert cli("meta", "alice", "--id", "E1").exit_code == 0
    one_line_error(cli("enroll", "carol", carol, "--id", "E1"), "belongs to speaker 'alice'")
    assert "carol" not in cli("list").stdout


# -- backup ------------------------------------------------------------------------


def test_a_backup_answers_as_the_database(db: SpeakerDB, tmp_path: Path) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1")
    report = db.lifecycle.backup(tmp_path / "copy.db")
    copy = tmp_path / "copy.db"
    assert (report.n_speakers, report.n_utterances) == (2, 3)
    assert report.path == str(copy.resolve()) and report.bytes == copy.stat().st_size
    assert copy.stat().st_mode & 0o777 == 0o600  # it holds every voiceprint
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy.db"]
    with SpeakerDB(copy, encoder=FakeEncoder()) as restored:
        assert restored.speakers() == db.speakers()
        probe = clip("alice", 9)
        assert restored.identify(probe).to_dict() == db.identify(probe).to_dict()


def test_a_backup_never_replaces_what_it_should_not(db: SpeakerDB, tmp_path: Path) -> None:
    (tmp_path / "taken.db").write_text("keep me")
    with pytest.raises(InputError, match="exists already"):
        db.lifecycle.backup(tmp_path / "taken.db")
    assert (tmp_path / "taken.db").read_text() == "keep me"
    with pytest.raises(InputError, match="the database itself"):
        db.lifecycle.backup(db.path, overwrite=True)
    with pytest.raises(InputError, match="does not exist"):
        db.lifecycle.backup(tmp_path / "no" / "copy.db")
    db.lifecycle.backup(tmp_path / "taken.db", overwrite=True)
    with SpeakerDB(tmp_path / "taken.db", encoder=FakeEncoder()) as restored:
        assert len(restored.speakers()) == 2


def test_backups_of_a_live_database_are_consistent(db: SpeakerDB, tmp_path: Path) -> None:
    """Taken while another connection enrolls speakers of two clips each: every backup
    opens, checks out, and holds whole enrollments only (no speaker with one clip)."""
    stop = threading.Event()

    def write() -> None:
        with SpeakerDB(db.path, encoder=FakeEncoder()) as writer:
            for i in range(200):
                if stop.is_set():
                    return
                pitch = 150.0 + 7.0 * i
                pair = [(voice(pitch, 1.5, 16000, 2 * i + 100), 16000) for _ in range(2)]
                pair[1] = (voice(pitch, 1.5, 16000, 2 * i + 101), 16000)
                writer.enroll(f"w{i}", pair, force=True)

    writer = threading.Thread(target=write)
    writer.start()
    counts = []
    try:
        for n in range(6):
            report = db.lifecycle.backup(tmp_path / f"b{n}.db")
            with SpeakerDB(tmp_path / f"b{n}.db", encoder=FakeEncoder()) as copy:
                written = [s for s in copy.speakers() if s.name.startswith("w")]
                assert all(s.n_utterances == 2 for s in written)
                assert len(copy.speakers()) == report.n_speakers
            counts.append(report.n_speakers)
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join()
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_backup_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    done = cli("backup", tmp_path / "nightly.db", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["n_speakers"] == 2
    one_line_error(cli("backup", tmp_path / "nightly.db"), "exists already", "--overwrite")
    assert (
        "backed up 2 speaker(s), 3 clip(s)"
        in cli("backup", tmp_path / "nightly.db", "--overwrite").stdout
    )


def test_a_storage_without_a_file_names_its_own_tools() -> None:
    from speakerdb import DatabaseError
    from speakerdb.storage import MemoryStorage

    with SpeakerDB(storage=MemoryStorage(), encoder=FakeEncoder()) as memory:
        with pytest.raises(DatabaseError, match="pg_dump"):
            memory.lifecycle.backup("x.db")


# -- retention ---------------------------------------------------------------------


def audited(db: SpeakerDB) -> list[tuple[str | None, str | None]]:
    return [(e.claimed, e.identified) for e in db.audit.entries()]


def files_hold(db: SpeakerDB, data: bytes) -> list[str]:
    """The files of the database (itself, -wal, -shm, index) whose bytes hold ``data``."""
    folder = db.path.parent
    return [
        p.name
        for p in folder.iterdir()
        if p.name.startswith(db.path.name) and data in p.read_bytes()
    ]


def test_remove_renames_the_person_in_the_audit_log(db: SpeakerDB) -> None:
    db.audit.configure(True)
    db.verify("alice", clip("alice", 7))
    db.identify(clip("alice", 8))
    db.verify("bob", clip("bob", 9))
    alice_id = db.speaker("alice").id
    db.remove("alice")
    gone = f"removed-{alice_id}"
    assert audited(db) == [("bob", "bob"), (None, gone), (gone, gone)]
    assert files_hold(db, b"alice") == []  # not in the file, its WAL or the index
    assert files_hold(db, b"bob") != []  # a scan that sees nothing cannot pass


def test_remove_purge_audit_deletes_their_entries(db: SpeakerDB) -> None:
    db.audit.configure(True)
    db.verify("alice", clip("alice", 7))
    db.verify("bob", clip("bob", 9))
    db.remove("alice", purge_audit=True)
    assert audited(db) == [("bob", "bob")]
    assert files_hold(db, b"alice") == []


def test_an_opted_out_person_is_not_enrolled_again(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1")
    tombstone = db.lifecycle.opt_out("alice")
    assert tombstone.external_id == "E1" and "alice" not in [s.name for s in db.speakers()]
    assert db.lifecycle.opt_outs() == [tombstone]
    for name in ("alice", "Alice", "\uff41lice", "\u0430lice"):  # full-width a, Cyrillic a
        with pytest.raises(OptedOut, match=r"db\.lifecycle\.clear_opt_out\("):
            db.enroll(name, [clip("alice", 1)], force=True)
    with pytest.raises(OptedOut, match="external id 'E1'"):
        db.enroll("carol", [clip("carol", 4)], external_id="E1")
    with pytest.raises(OptedOut):
        db.lifecycle.set_metadata("bob", external_id="E1")
    with pytest.raises(OptedOut):
        db.rename("bob", "ALICE")
    assert [s.name for s in db.speakers()] == ["bob"]
    # Removing them again says they opted out, not only that no one has the name.
    for remove in (db.remove, db.lifecycle.opt_out):
        with pytest.raises(SpeakerNotFound, match=r"opted out on .*deleted then") as raised:
            remove("Alice")
        assert raised.value.fix is Fix.LIST_SPEAKERS
    assert db.lifecycle.clear_opt_out("alice") == 1
    assert db.enroll("alice", [clip("alice", 1)], external_id="E1").created


def test_an_opt_out_by_external_id_is_cleared_by_it(db: SpeakerDB) -> None:
    db.lifecycle.set_metadata("alice", external_id="E1")
    db.lifecycle.opt_out("alice")
    assert db.lifecycle.clear_opt_out(external_id="E1") == 1
    assert db.lifecycle.opt_outs() == []
    with pytest.raises(InputError, match="--id"):
        db.lifecycle.clear_opt_out()


def test_an_expired_voiceprint_is_never_matched(db: SpeakerDB) -> None:
    soon = datetime.now(timezone.utc) + timedelta(seconds=1)
    made = db.enroll("carol", [clip("carol", 4)], expires_at=soon)
    assert made.speaker.expires_at == soon
    assert db.identify(clip("carol", 5)).speaker == "carol"
    time.sleep(1.2)
    assert db.identify(clip("carol", 5)).speaker != "carol"  # removed by the query itself
    assert "carol" not in [s.name for s in db.speakers()]
    with pytest.raises(SpeakerNotFound):
        db.verify("carol", clip("carol", 5))


def test_expiry_dates_are_checked(db: SpeakerDB) -> None:
    with pytest.raises(InputError, match="has passed"):
        db.enroll("carol", [clip("carol", 4)], expires_at=date(2020, 1, 1))
    with pytest.raises(InputError, match="time zone"):
        db.enroll("carol", [clip("carol", 4)], expires_at=datetime(2099, 1, 1))
    with pytest.raises(InputError, match="2027-12-31"):
        db.enroll("carol", [clip("carol", 4)], expires_at="next year")
    later = db.lifecycle.set_metadata("bob", expires_at="2099-01-31")
    assert later.expires_at == datetime(2099, 1, 31, tzinfo=timezone.utc)
    assert db.lifecycle.set_metadata("bob", expires_at=None).expires_at is None
    assert db.lifecycle.expire() == []


def test_retention_on_the_command_line(
    cli: Callable[..., Result], db: SpeakerDB, tmp_path: Path
) -> None:
    carol = write_clip(tmp_path, "carol", 4)
    made = cli("enroll", "carol", carol, "--expires", "2099-01-31", "--id", "E3")
    assert made.exit_code == 0, made.output
    assert "expires: 2099-01-31 00:00 UTC" in cli("show", "carol").stdout
    assert cli("meta", "carol", "--no-expiry").exit_code == 0
    assert "expires" not in cli("show", "carol").stdout
    out = cli("opt-out", "carol", "--yes")
    assert out.exit_code == 0 and "carol opted out" in out.stdout, out.output
    one_line_error(cli("remove", "carol", "--yes"), "opted out on", "speakerdb list")
    listed = json.loads(cli("opt-out", "--list", "--json").stdout)
    assert [t["external_id"] for t in listed] == ["E3"]
    one_line_error(cli("enroll", "Carol", carol), "opted out", "opt-out --clear")
    assert json.loads(cli("opt-out", "--clear", "--id", "E3", "--json").stdout) == {"cleared": 1}
    assert cli("enroll", "carol", carol).exit_code == 0
    db.audit.configure(True)
    db.verify("bob", clip("bob", 9))
    assert cli("remove", "bob", "--purge-audit", "--yes").exit_code == 0
    assert db.audit.entries() == []
    assert "0 expired voiceprint(s) deleted" in cli("expire").stdout


# -- watchlist ---------------------------------------------------------------------


def test_a_watchlisted_voice_is_flagged_never_accepted(db: SpeakerDB) -> None:
    db.audit.configure(True)
    fraud = db.enroll("mallory", [clip("carol", 4)], watchlist=True)
    assert fraud.speaker.watchlist and db.speaker("mallory").watchlist
    found = db.identify(clip("carol", 5))
    assert found.best.speaker == "mallory"  # matched and ranked as any speaker
    assert found.outcome == "watchlist" and not found.accepted and found.speaker is None
    assert "on the watchlist" in (found.reason or "")
    claimed = db.verify("mallory", clip("carol", 5))
    assert claimed.outcome == "watchlist" and not claimed.accepted
    posing = db.verify("bob", clip("carol", 5))  # a fraudster claiming to be bob
    assert not posing.accepted
    normal = db.identify(clip("alice", 7))
    assert normal.outcome == "accepted" and normal.speaker == "alice"
    logged = [e.outcome for e in db.audit.entries()]
    assert logged[-2:] == ["watchlist", "watchlist"] and logged[0] == "accepted"


def test_a_new_person_with_a_watchlisted_voice_is_refused(db: SpeakerDB) -> None:
    db.enroll("mallory", [clip("carol", 4)], watchlist=True)
    with pytest.raises(EnrollmentRefused, match="'mallory' on the watchlist"):
        db.enroll("carla", [clip("carol", 6)], force=True)
    assert "carla" not in [s.name for s in db.speakers()]
    db.enroll("mallory2", [clip("carol", 6)], watchlist=True)  # another of their voices
    db.lifecycle.set_watchlist("mallory", False)
    db.lifecycle.set_watchlist("mallory2", False)
    assert db.identify(clip("carol", 5)).outcome == "accepted"


def test_a_threshold_of_another_score_is_not_read_as_a_cosine(
    db: SpeakerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEAKERDB_THRESHOLD is a threshold of the score that decides. The watchlist and
    the enrollment gates compare cosines: on a database that decides by margin they use
    its cosine threshold, neither refusing a margin threshold as an out-of-range cosine
    nor comparing cosines with it."""
    db.set_threshold(0.05, score_norm="margin")
    db.enroll("mallory", [clip("carol", 4)], watchlist=True)
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "2")  # a margin no clip reaches; no cosine can
    assert db.policy(operation="verify").threshold == 2
    with pytest.raises(EnrollmentRefused, match="'mallory' on the watchlist"):
        db.enroll("carol", [clip("carol", 5)])
    assert db.enroll("dave", [clip("dave", 7)]).created
    assert db.verify("alice", clip("alice", 8)).outcome == "rejected"
    assert db.verify("dave", clip("carol", 6)).outcome == "watchlist"
    assert db.identify(clip("carol", 9)).outcome == "unknown"


def test_watchlist_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    made = cli("enroll", "mallory", write_clip(tmp_path, "carol", 4), "--watchlist")
    assert made.exit_code == 0, made.output
    assert "on the watchlist" in cli("show", "mallory").stdout
    found = cli("identify", write_clip(tmp_path, "carol", 5), "--json")
    assert json.loads(found.stdout)[0]["outcome"] == "watchlist"
    assert cli("verify", "mallory", write_clip(tmp_path, "carol", 5)).exit_code == 1
    assert cli("meta", "mallory", "--no-watchlist").exit_code == 0
    assert "on the watchlist" not in cli("show", "mallory").stdout
