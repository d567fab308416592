"""Issue 16, findings 1, 4 and 6: a derived index that cannot change an answer, a
hostile database that is refused, and a ``remove`` that leaves no voiceprint in the
index file. Each test failed on the main branch these fixes were made against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import DatabaseError, SchemaError, SpeakerDB
from speakerdb.storage._index import SpeakerIndex
from speakerdb.storage._indexfile import HEADER_SIZE, header_line, read_header


def clips(pitch: float, n: int = 3) -> list[tuple[np.ndarray, int]]:
    return [(voice(pitch, seed=k), 16000) for k in range(n)]


BOB_VOICE = (voice(110.0, seed=9), 16000)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", clips(180.0))
        db.enroll("bob", clips(110.0))
        assert db.identify(BOB_VOICE).speaker == "bob"
    return path


def index_file(path: Path) -> Path:
    return path.with_name(path.name + ".faiss")


def templates(path: Path) -> dict[str, bytes]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT name, template FROM speakers").fetchall())
    finally:
        con.close()


def reseal(file: Path, payload: bytes, **changes: object) -> None:
    """Write ``payload`` under the file's header, its checksum recomputed as a forger would."""
    meta = json.loads(file.read_bytes()[len(b"SPEAKERDB-INDEX 1\n") : HEADER_SIZE])
    meta.update(changes, sha256=hashlib.sha256(payload).hexdigest())
    file.write_bytes(header_line(meta) + payload)


# -- finding 1: the derived index cannot change an answer ------------------------------


def test_swapped_vectors_with_a_recomputed_checksum_do_not_decide(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = index_file(path)
    header = read_header(file)
    index, _ = SpeakerIndex.load(file)
    ids = index.ids()
    by_name = templates(path)
    con = sqlite3.connect(path)
    id_of = dict(con.execute("SELECT name, id FROM speakers").fetchall())
    con.close()
    # The forger's file: alice's id holds bob's vector and the other way round.
    swapped = {id_of["alice"]: by_name["bob"], id_of["bob"]: by_name["alice"]}
    vectors = np.stack([np.frombuffer(swapped[int(i)], "<f4") for i in ids])
    SpeakerIndex(header.dim, ids, vectors).save(file, header.db_uuid, header.generation)
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert "will be rebuilt" in db.info().index_state
        with caplog.at_level(logging.WARNING):
            assert db.identify(BOB_VOICE).speaker == "bob"
        assert "digest mismatch" in caplog.text
        assert db.info().index_state.startswith("up to date")


def test_a_forged_size_never_reaches_faiss(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    file = index_file(path)
    payload = bytearray(file.read_bytes()[HEADER_SIZE:])
    # IxM2 + its header (37 bytes), IxFI + its header (37): then the vectors' size.
    assert payload[:4] == b"IxM2" and payload[37:41] == b"IxFI"
    payload[74:82] = (1 << 31).to_bytes(8, "little")  # 8 GiB of floats
    reseal(file, bytes(payload))
    read = faiss.read_index

    def guarded(reader: object, *args: object) -> object:
        raise AssertionError("FAISS was given a file whose sizes were not checked")

    monkeypatch.setattr(faiss, "read_index", guarded)
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert "malformed" in db.info().index_state
        with caplog.at_level(logging.WARNING):
            assert db.identify(BOB_VOICE).speaker == "bob"
        assert "malformed index" in caplog.text
    monkeypatch.setattr(faiss, "read_index", read)
    assert SpeakerIndex.load(file)[1].count == 2  # rebuilt, and readable


@pytest.mark.parametrize("count", [10**9, -1])
def test_a_forged_header_count_is_refused_before_allocation(
    path: Path, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    file = index_file(path)
    reseal(file, file.read_bytes()[HEADER_SIZE:], count=count, dim=512)
    monkeypatch.setattr(faiss, "read_index", lambda *a: pytest.fail("FAISS read a forged file"))
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert "will be rebuilt" in db.info().index_state
        assert db.identify(BOB_VOICE).speaker == "bob"


def test_an_index_without_a_recorded_digest_is_rebuilt_once(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    con = sqlite3.connect(path)  # as an older speakerdb left it
    con.execute("DELETE FROM settings WHERE key = 'index_digest'")
    con.commit()
    con.close()
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert "unverified" in db.info().index_state
        with caplog.at_level(logging.WARNING):
            assert db.identify(BOB_VOICE).speaker == "bob"
        assert "unverified" in caplog.text
    caplog.clear()
    with SpeakerDB(path, encoder=FakeEncoder()) as db, caplog.at_level(logging.WARNING):
        assert db.identify(BOB_VOICE).speaker == "bob"
        assert db.info().index_state.startswith("up to date")
    assert "rebuilding" not in caplog.text


def test_the_digest_follows_every_change(path: Path) -> None:
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("carol", clips(240.0))
        db.enroll("alice", clips(185.0, 2)[1:])
        db.lifecycle.remove_utterance(db.utterances("bob")[0].id)
        db.rename("carol", "caroline")
        db.remove("alice")
    # A fresh process verifies the file written incrementally against the stored digest.
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert db.info().index_state.startswith("up to date (2 speakers")
        assert db.identify(BOB_VOICE).speaker == "bob"


# -- finding 6: remove succeeds only when the voiceprint is gone everywhere ----------


def fail_to_save(monkeypatch: pytest.MonkeyPatch) -> None:
    def save(self: SpeakerIndex, *args: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(SpeakerIndex, "save", save)


def test_remove_deletes_an_index_file_it_cannot_rewrite(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = templates(path)["bob"]
    assert bob in index_file(path).read_bytes()
    fail_to_save(monkeypatch)
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.remove("bob")
        assert [s.name for s in db.speakers()] == ["alice"]
    assert not index_file(path).exists() or bob not in index_file(path).read_bytes()


def test_remove_fails_naming_the_fix_when_the_stale_file_stays(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = index_file(path)
    unlink = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self == file:
            raise PermissionError(1, "Operation not permitted")
        unlink(self, missing_ok=missing_ok)

    fail_to_save(monkeypatch)
    monkeypatch.setattr(Path, "unlink", refuse)
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"no longer holds.*index file.*rm "):
            db.remove("bob")
        assert [s.name for s in db.speakers()] == ["alice"]  # committed all the same
    monkeypatch.undo()
    file.unlink()  # the fix the error names
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert db.identify(BOB_VOICE).speaker != "bob"


# -- finding 4: a hostile database is refused ----------------------------------------


def run_sql(path: Path, *statements: str) -> None:
    con = sqlite3.connect(path)
    try:
        for statement in statements:
            con.execute(statement)
        con.commit()
    finally:
        con.close()


def test_a_foreign_trigger_is_refused_before_remove(path: Path) -> None:
    run_sql(
        path,
        "CREATE TABLE shadow (name TEXT, template BLOB)",
        "CREATE TRIGGER keep_copies AFTER DELETE ON speakers "
        "BEGIN INSERT INTO shadow VALUES (old.name, old.template); END",
    )
    with pytest.raises(SchemaError, match="migrations did not create") as refused:
        SpeakerDB(path, encoder=FakeEncoder())
    for named in ("trigger 'keep_copies'", "table 'shadow'", "DROP TRIGGER keep_copies"):
        assert named in str(refused.value)
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM shadow").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM speakers").fetchone() == (2,)
    con.close()


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE VIEW everyone AS SELECT name, template FROM speakers",
        "CREATE INDEX ix_peek ON speakers (template)",
        "CREATE TRIGGER on_enroll AFTER INSERT ON utterances BEGIN SELECT 1; END",
    ],
)
def test_foreign_views_indexes_and_triggers_are_refused(path: Path, sql: str) -> None:
    run_sql(path, sql)
    with pytest.raises(SchemaError, match="migrations did not create"):
        SpeakerDB(path, encoder=FakeEncoder())


def test_the_allowed_objects_are_what_the_migrations_create() -> None:
    from speakerdb.storage.sqlite._schema import HEAD_OBJECTS, migrated_objects

    assert migrated_objects() == HEAD_OBJECTS


@pytest.mark.parametrize("value", ["-inf", "nan", "5", "-1e308", "inf", "abc"])
def test_a_stored_threshold_is_checked_as_set_threshold_checks_it(path: Path, value: str) -> None:
    run_sql(path, f"INSERT OR REPLACE INTO settings VALUES ('threshold', '{value}')")
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"'threshold'.*speakerdb set-threshold"):
            db.identify(BOB_VOICE)
        with pytest.raises(DatabaseError, match=r"'threshold'.*speakerdb set-threshold"):
            db.info()


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("margin_threshold", "-inf", "set-threshold T --score-norm margin"),
        ("asnorm_top_n", "0", "score-norm asnorm --top-n"),
        ("index_kind", "evil", "speakerdb index --kind"),
        ("generation", "-3", "restore it from a backup"),
    ],
)
def test_every_stored_setting_is_checked(path: Path, key: str, value: str, fix: str) -> None:
    run_sql(path, f"INSERT OR REPLACE INTO settings VALUES ('{key}', '{value}')")
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=rf"'{key}'.*{fix}"):
            db.info()


def test_cli_info_refuses_a_stored_threshold_of_minus_infinity(path: Path) -> None:
    from typer.testing import CliRunner

    from speakerdb.cli import app

    run_sql(path, "INSERT OR REPLACE INTO settings VALUES ('threshold', '-inf')")
    result = CliRunner().invoke(app, ["info", "--db", str(path)])
    assert result.exit_code == 2
    assert "set-threshold" in result.output and "unexpected" not in result.output


def nan_bytes(n: int) -> bytes:
    return np.full(n, np.nan, "<f4").tobytes()


def test_a_nan_clip_is_corruption_named_by_its_row(path: Path) -> None:
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        clip = db.utterances("alice")[1].id
    run_sql(path, f"UPDATE utterances SET embedding = x'{nan_bytes(32).hex()}' WHERE id = {clip}")
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=rf"clip {clip} of 'alice'.*remove-utterance"):
            db.identify(BOB_VOICE, score_norm="asnorm")
        with pytest.raises(DatabaseError, match=rf"clip {clip} of 'alice'.*remove-utterance"):
            db.enroll("alice", clips(185.0, 1))
        db.lifecycle.remove_utterance(clip)  # the fix the error names
        # Two outside voices make AS-norm's cohort big enough to decide (3 voices).
        db.cohort.add("outsider-1", clips(520.0, 2))
        db.cohort.add("outsider-2", clips(880.0, 2))
        result = db.identify(BOB_VOICE, score_norm="asnorm")
        assert result.decided_by.score_norm == "asnorm"
        assert result.speaker == "bob" and np.isfinite(result.best.normalized)


@pytest.mark.parametrize("blob", ["x'0000'", "NULL_NAN"])
def test_a_damaged_template_is_corruption_named_by_its_speaker(path: Path, blob: str) -> None:
    value = f"x'{nan_bytes(32).hex()}'" if blob == "NULL_NAN" else blob
    run_sql(path, f"UPDATE speakers SET template = {value} WHERE name = 'alice'")
    index_file(path).unlink()  # the index is rebuilt from the templates
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match=r"speaker 'alice'.*speakerdb remove alice"):
            db.identify(BOB_VOICE)
        with pytest.raises(DatabaseError, match=r"'alice'.*speakerdb remove alice"):
            db.verify("alice", BOB_VOICE)
        db.remove("alice")
        assert db.identify(BOB_VOICE).speaker == "bob"
