"""Deleting a voiceprint leaves no copy of it: not in the database file, its WAL or
shared-memory file, nor in the index; removing one clip recomputes the template.

The scans look for the exact bytes a vector is stored as (little-endian float32)
in every file beside the database, while a kept speaker's vectors must still be
found, so that a scan that sees nothing at all cannot pass.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import InputError, SpeakerDB
from speakerdb._vectors import template_of
from speakerdb.cli import app
from speakerdb.storage.sql import from_blob

# Pitches far enough apart for the fake encoder that no quality gate objects.
PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0}
CLIPS = {"alice": (1, 2, 3), "bob": (4, 5), "carol": (6,)}


def clip(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5, 16000, seed), 16000


@pytest.fixture
def db(tmp_path: Path) -> SpeakerDB:
    database = SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())
    for name, seeds in CLIPS.items():
        database.enroll(name, [clip(name, seed) for seed in seeds])
    yield database
    database.close()


def stored_vectors(path: Path, name: str) -> list[bytes]:
    """The speaker's utterance embeddings then template, as the bytes SQLite holds."""
    con = sqlite3.connect(path)
    try:
        embeddings = con.execute(
            "SELECT u.embedding FROM utterances u JOIN speakers s ON s.id = u.speaker_id "
            "WHERE s.name = ? ORDER BY u.id",
            (name,),
        ).fetchall()
        template = con.execute("SELECT template FROM speakers WHERE name = ?", (name,)).fetchall()
    finally:
        con.close()
    return [blob for (blob,) in embeddings + template]


def files_of(db: SpeakerDB) -> list[Path]:
    """The database, its -wal and -shm files, the index and anything else named after it."""
    return sorted(p for p in db.path.parent.iterdir() if p.name.startswith(db.path.name))


def copies(db: SpeakerDB, vectors: list[bytes]) -> dict[str, int]:
    """How many times the vectors' bytes occur in each file of the database."""
    found = {}
    for path in files_of(db):
        data = path.read_bytes()
        count = sum(data.count(vector) for vector in vectors)
        if count:
            found[path.name] = count
    return found


def test_vectors_are_found_where_they_are_stored(db: SpeakerDB) -> None:
    """The scan sees the stored bytes: in the database (or its WAL), and templates in the index."""
    vectors = stored_vectors(db.path, "bob")
    assert len(vectors) == 3 and all(len(v) == 4 * FakeEncoder().info.dim for v in vectors)
    where = copies(db, vectors)
    assert where.get(db.path.name, 0) + where.get(f"{db.path.name}-wal", 0) >= 3
    assert copies(db, vectors[-1:]).get(f"{db.path.name}.faiss") == 1


def test_remove_leaves_no_copy_of_the_voiceprint(db: SpeakerDB) -> None:
    bob = stored_vectors(db.path, "bob")
    alice = stored_vectors(db.path, "alice")
    assert copies(db, bob)  # there before

    db.remove("bob")

    names = {p.name for p in files_of(db)}
    assert {f"{db.path.name}-wal", f"{db.path.name}-shm", f"{db.path.name}.faiss"} <= names
    assert copies(db, bob) == {}
    kept = copies(db, alice)
    assert kept.get(db.path.name, 0) >= len(alice)  # the kept speaker is still all there
    assert kept.get(f"{db.path.name}.faiss") == 1
    assert db.path.with_name(db.path.name + "-wal").stat().st_size == 0  # checkpointed
    assert "bob" not in {s.name for s in db.speakers()}
    assert len(db.index.current()) == 2
    db.close()
    assert copies(db, bob) == {}


def test_remove_waits_out_a_reader_and_says_so_if_it_cannot(
    db: SpeakerDB, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program reading an old snapshot keeps the WAL from being truncated: a warning."""
    db.close()
    monkeypatch.setattr(
        "speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 200
    )  # not 30 s of waiting
    db = SpeakerDB(db.path, encoder=FakeEncoder())
    bob = stored_vectors(db.path, "bob")
    reader = sqlite3.connect(db.path, isolation_level=None)
    reader.execute("PRAGMA busy_timeout = 100")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM speakers").fetchall()  # holds a read snapshot
    try:
        with caplog.at_level("WARNING", logger="speakerdb"):
            db.remove("bob")
        assert any("-wal" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        reader.execute("COMMIT")
        reader.close()
        db.close()
    assert copies(db, bob) == {}  # the last connection to close checkpoints and deletes the WAL


def test_remove_utterance_recomputes_the_template(db: SpeakerDB) -> None:
    before = db.utterances("alice")
    removed, kept = before[0], before[1:]
    embeddings = stored_vectors(db.path, "alice")[:-1]

    speaker = db.lifecycle.remove_utterance(removed.id)

    assert (speaker.name, speaker.n_utterances) == ("alice", 2)
    assert [u.id for u in db.utterances("alice")] == [u.id for u in kept]
    template = from_blob(stored_vectors(db.path, "alice")[-1])
    expected = template_of(np.stack([from_blob(b) for b in embeddings[1:]]))
    np.testing.assert_allclose(template, expected, atol=1e-6)
    assert np.linalg.norm(template) == pytest.approx(1.0, abs=1e-6)
    # The index holds the new template: a clip of alice scores against it.
    query = db.embed([clip("alice", 2)])[0]
    best = db.identify(clip("alice", 2)).best
    assert best is not None and best.speaker == "alice"
    assert best.score == pytest.approx(float(query @ template), abs=1e-5)


def test_remove_utterance_leaves_no_copy_of_the_clip_or_old_template(db: SpeakerDB) -> None:
    vectors = stored_vectors(db.path, "alice")
    gone, old_template, rest = vectors[0], vectors[-1], vectors[1:-1]
    db.lifecycle.remove_utterance(db.utterances("alice")[0].id)
    assert copies(db, [gone]) == {}
    assert copies(db, [old_template]) == {}
    assert copies(db, rest).get(db.path.name, 0) == len(rest)
    assert copies(db, stored_vectors(db.path, "alice")[-1:]).get(f"{db.path.name}.faiss") == 1


def test_the_last_utterance_is_not_removed(db: SpeakerDB) -> None:
    (only,) = db.utterances("carol")
    with pytest.raises(InputError, match="only one of 'carol'") as caught:
        db.lifecycle.remove_utterance(only.id)
    assert "speakerdb remove carol" in str(caught.value)
    assert db.speaker("carol").n_utterances == 1


@pytest.mark.parametrize("bad", [0, 10_000, -1, True, "1", 1.0])
def test_unknown_utterances_are_refused(db: SpeakerDB, bad: object) -> None:
    before = stored_vectors(db.path, "alice")
    with pytest.raises(InputError, match="clip"):
        db.lifecycle.remove_utterance(bad)  # type: ignore[arg-type]
    assert stored_vectors(db.path, "alice") == before


def test_remove_utterance_command(db: SpeakerDB) -> None:
    import json

    runner = CliRunner()
    target = db.utterances("bob")[0]
    gone = stored_vectors(db.path, "bob")[0]
    args = ["remove-utterance", str(target.id), "--db", str(db.path)]
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_utterances"] == 1
    assert copies(db, [gone]) == {}
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert f"no enrolled clip #{target.id}" in result.stderr
    (last,) = db.utterances("bob")
    result = runner.invoke(app, ["remove-utterance", str(last.id), "--db", str(db.path)])
    assert result.exit_code == 2 and "speakerdb remove bob" in result.stderr
    result = runner.invoke(app, ["remove-utterance", str(db.utterances("alice")[0].id)])
    assert result.exit_code == 2  # ./speakers.db is not there, and is not created
