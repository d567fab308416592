"""Export and import (issue 15): round trips, encryption, duplicates, and hostile
archives (truncated, altered, another model's, wrongly decrypted, oversized), each
refused with one line and no change to the database."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import (
    DuplicateSpeaker,
    InputError,
    ModelMismatch,
    SpeakerDB,
)
from speakerdb.cli import app

PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0, "dave": 2300.0}


def clip(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5 + 0.1 * seed, 16000, seed), 16000


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SpeakerDB]:
    db = SpeakerDB(tmp_path / "source.db", encoder=FakeEncoder())
    db.enroll("alice", [clip("alice", 1), clip("alice", 2)], external_id="E1", attributes={"t": 1})
    db.enroll("bob", [clip("bob", 3)], expires_at="2099-01-01")
    db.enroll("carol", [clip("carol", 4)])
    db.lifecycle.opt_out("carol")
    db.set_threshold(0.55)
    yield db
    db.close()


def rows(path: Path) -> dict[str, Any]:
    """Every row of every table: equal means the database is unchanged."""
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        con.close()


def probes() -> list[tuple[np.ndarray, int]]:
    return [clip("alice", 7), clip("bob", 8), clip("dave", 9)]


def test_a_round_trip_gives_identical_answers(source: SpeakerDB, tmp_path: Path) -> None:
    report = source.lifecycle.export(tmp_path / "people.sdb")
    assert (report.n_speakers, report.n_utterances, report.n_tombstones) == (2, 3, 1)
    assert not report.encrypted and (tmp_path / "people.sdb").stat().st_mode & 0o777 == 0o600
    with SpeakerDB(tmp_path / "copy.db", encoder=FakeEncoder()) as copy:
        done = copy.lifecycle.import_archive(tmp_path / "people.sdb")
        assert done.imported == ("alice", "bob") and done.skipped == ()
        assert [s.to_dict() | {"created_at": 0} for s in copy.speakers()] == [
            s.to_dict() | {"created_at": 0} for s in source.speakers()
        ]
        for name in ("alice", "bob"):
            ours = [u.to_dict() | {"id": 0, "created_at": 0} for u in source.utterances(name)]
            theirs = [u.to_dict() | {"id": 0, "created_at": 0} for u in copy.utterances(name)]
            assert ours == theirs
        for probe in probes():
            assert copy.identify(probe).to_dict() == source.identify(probe).to_dict()
            assert copy.verify("alice", probe).to_dict() == source.verify("alice", probe).to_dict()
        assert copy.policy().threshold == 0.55
        assert [t.external_id for t in copy.lifecycle.opt_outs()] == [None]
        with pytest.raises(Exception, match="opted out"):
            copy.enroll("carol", [clip("carol", 4)])


def test_an_encrypted_round_trip(source: SpeakerDB, tmp_path: Path) -> None:
    archive = tmp_path / "people.sdb"
    assert source.lifecycle.export(archive, passphrase="correct horse").encrypted
    assert b"alice" not in archive.read_bytes()  # (a 2-byte id could occur by chance)
    with SpeakerDB(tmp_path / "copy.db", encoder=FakeEncoder()) as copy:
        for wrong in ("wrong horse", None):
            with pytest.raises(InputError, match="passphrase"):
                copy.lifecycle.import_archive(archive, passphrase=wrong)
        copy.lifecycle.import_archive(archive, passphrase="correct horse")
        assert [s.name for s in copy.speakers()] == ["alice", "bob"]
    with pytest.raises(InputError, match="not encrypted"):
        source.lifecycle.export(tmp_path / "plain.sdb")
        source.lifecycle.import_archive(tmp_path / "plain.sdb", passphrase="x")


def test_duplicates_fail_the_whole_import_or_are_skipped(source: SpeakerDB, tmp_path: Path) -> None:
    source.lifecycle.export(tmp_path / "people.sdb")
    target = SpeakerDB(tmp_path / "target.db", encoder=FakeEncoder())
    target.enroll("Alice", [clip("alice", 5)])  # a look-alike name
    target.enroll("dave", [clip("dave", 6)])
    before = rows(target.path)
    with pytest.raises(DuplicateSpeaker, match=r"'alice'.*on-duplicate skip"):
        target.lifecycle.import_archive(tmp_path / "people.sdb")
    assert rows(target.path) == before
    done = target.lifecycle.import_archive(tmp_path / "people.sdb", on_duplicate="skip")
    assert (done.imported, done.skipped) == (("bob",), ("alice",))
    assert [s.name for s in target.speakers()] == ["Alice", "bob", "dave"]
    again = target.lifecycle.import_archive(tmp_path / "people.sdb", on_duplicate="skip")
    assert again.imported == () and again.skipped == ("alice", "bob")
    with pytest.raises(InputError, match="'fail' or 'skip'"):
        target.lifecycle.import_archive(tmp_path / "people.sdb", on_duplicate="replace")
    target.close()


# -- hostile archives ------------------------------------------------------------------


def cut(data: bytes) -> bytes:
    return data[: len(data) - 40]


def flip(data: bytes) -> bytes:
    return data[:-30] + bytes([data[-30] ^ 1]) + data[-29:]


def bigger_header(data: bytes) -> bytes:
    magic, header, body = data.split(b"\n", 2)
    fields = json.loads(header)
    fields["size"] = 10**12
    return magic + b"\n" + json.dumps(fields).encode() + b"\n" + body


def bomb(data: bytes) -> bytes:
    """A small declared document whose body inflates to 200 MB."""
    magic, header, _ = data.split(b"\n", 2)
    fields = json.loads(header)
    fields["size"] = 1000
    body = gzip.compress(b" " * 200_000_000, compresslevel=9)
    return magic + b"\n" + json.dumps(fields).encode() + b"\n" + body


def forged(data: bytes) -> bytes:
    """A valid file around a document that lies: an embedding that is not a unit vector."""
    magic, header, body = data.split(b"\n", 2)
    document = json.loads(gzip.decompress(body))
    document["speakers"][0]["clips"][0]["embedding"] = "AAAAAA" * 20
    raw = json.dumps(document).encode()
    fields = json.loads(header) | {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    return magic + b"\n" + json.dumps(fields).encode() + b"\n" + gzip.compress(raw)


HOSTILE = {
    "truncated": (cut, "truncated"),
    "tampered": (flip, "altered"),
    "oversized": (bigger_header, "more than"),
    "compression bomb": (bomb, "wrong size"),
    "forged": (forged, "not valid"),
    "not an archive": (lambda data: b"PK\x03\x04" + data, "not a speakerdb archive"),
    "empty": (lambda data: b"", "not a speakerdb archive"),
}


@pytest.fixture
def archive_bytes(source: SpeakerDB, tmp_path: Path) -> bytes:
    source.lifecycle.export(tmp_path / "good.sdb")
    return (tmp_path / "good.sdb").read_bytes()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[SpeakerDB]:
    db = SpeakerDB(tmp_path / "target.db", encoder=FakeEncoder())
    db.enroll("dave", [clip("dave", 6)])
    yield db
    db.close()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_in_one_line_and_changes_nothing(
    kind: str, archive_bytes: bytes, target: SpeakerDB, tmp_path: Path
) -> None:
    damage, message = HOSTILE[kind]
    (tmp_path / "bad.sdb").write_bytes(damage(archive_bytes))
    before = rows(target.path)
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "bad.sdb"), "--db", str(target.path)]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speakerdb: error: "), result.stderr
    assert message in lines[0]
    assert rows(target.path) == before


def test_a_wrongly_decrypted_or_tampered_encrypted_archive(
    source: SpeakerDB, target: SpeakerDB, tmp_path: Path
) -> None:
    archive = tmp_path / "secret.sdb"
    source.lifecycle.export(archive, passphrase="s3cret")
    (tmp_path / "tampered.sdb").write_bytes(flip(archive.read_bytes()))
    (tmp_path / "key.txt").write_text("s3cret\n")
    (tmp_path / "wrong.txt").write_text("guess\n")
    before = rows(target.path)
    for path, key in (("secret.sdb", "wrong.txt"), ("tampered.sdb", "key.txt")):
        argv = ["import", str(tmp_path / path), "--passphrase-file", str(tmp_path / key)]
        result = CliRunner().invoke(app, [*argv, "--db", str(target.path)])
        assert (
            result.exit_code == 2
            and "wrong passphrase, or the archive was altered" in result.stderr
        )
    assert rows(target.path) == before


def test_an_archive_of_another_model_is_refused(source: SpeakerDB, tmp_path: Path) -> None:
    source.lifecycle.export(tmp_path / "people.sdb")
    with SpeakerDB(tmp_path / "other.db", encoder=FakeEncoder(dim=16, model="other")) as other:
        other.enroll("dave", [clip("dave", 6)])
        before = rows(other.path)
        with pytest.raises(ModelMismatch):
            other.lifecycle.import_archive(tmp_path / "people.sdb")
        assert rows(other.path) == before


def test_export_and_import_on_the_command_line(source: SpeakerDB, tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "key.txt").write_text("s3cret\n")
    key = ["--passphrase-file", str(tmp_path / "key.txt")]
    out = runner.invoke(app, ["export", str(tmp_path / "a.sdb"), *key, "--db", str(source.path)])
    assert (
        out.exit_code == 0
        and "exported 2 speaker(s), 3 clip(s), 1 opt-out(s) to encrypted" in out.stdout
    )
    new = tmp_path / "new.db"
    # The README's next line once left the key out: the error names the flag to give.
    bare = runner.invoke(app, ["import", str(tmp_path / "a.sdb"), "--db", str(new)])
    assert bare.exit_code == 2 and "encrypted; give the --passphrase-file" in bare.stderr
    assert not new.exists()
    done = runner.invoke(app, ["import", str(tmp_path / "a.sdb"), *key, "--db", str(new), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["imported"] == ["alice", "bob"]
    listed = runner.invoke(app, ["list", "--json", "--db", str(new)])
    assert [s["name"] for s in json.loads(listed.stdout)] == ["alice", "bob"]
    refused = runner.invoke(
        app, ["import", str(tmp_path / "missing.sdb"), "--db", str(tmp_path / "n2.db")]
    )
    assert refused.exit_code == 2 and not (tmp_path / "n2.db").exists()


def test_a_watchlist_mark_travels(source: SpeakerDB, tmp_path: Path) -> None:
    source.enroll("mallory", [clip("dave", 5)], watchlist=True)
    source.lifecycle.export(tmp_path / "people.sdb")
    with SpeakerDB(tmp_path / "copy.db", encoder=FakeEncoder()) as copy:
        copy.lifecycle.import_archive(tmp_path / "people.sdb")
        assert copy.speaker("mallory").watchlist and not copy.speaker("alice").watchlist
        assert copy.identify(clip("dave", 6)).outcome == "watchlist"


# -- the cohort of outside voices --------------------------------------------------------

OUTSIDE = {"x1": 160.0, "x2": 600.0, "x3": 1500.0, "x4": 3000.0}


def with_cohort(db: SpeakerDB) -> None:
    for i, (label, pitch) in enumerate(OUTSIDE.items()):
        takes = [(voice(pitch, 1.4 + 0.1 * j, 16000, 40 + 2 * i + j), 16000) for j in range(2)]
        db.cohort.add(label, takes)
    db.set_score_norm("asnorm")


def test_the_cohort_travels_and_as_norm_answers_the_same(source: SpeakerDB, tmp_path: Path) -> None:
    with_cohort(source)
    report = source.lifecycle.export(tmp_path / "people.sdb")
    assert report.n_cohort == 8
    with SpeakerDB(tmp_path / "copy.db", encoder=FakeEncoder()) as copy:
        assert copy.lifecycle.import_archive(tmp_path / "people.sdb").n_cohort == 8
        ours, theirs = source.cohort.embeddings(), copy.cohort.embeddings()
        assert ours.labels == theirs.labels and ours.hashes == theirs.hashes
        assert np.array_equal(ours.embeddings, theirs.embeddings)
        assert np.array_equal(ours.durations_s, theirs.durations_s)
        assert copy.policy().score_norm == "asnorm"
        for probe in probes():
            mine, copied = source.identify(probe), copy.identify(probe)
            assert copied.to_dict() == mine.to_dict()
            assert mine.matches[0].normalized is not None
            assert copy.verify("bob", probe).to_dict() == source.verify("bob", probe).to_dict()
        # Importing again adds no cohort clip twice.
        copy.lifecycle.import_archive(tmp_path / "people.sdb", on_duplicate="skip")
        assert len(copy.cohort.embeddings()) == 8
    said = CliRunner().invoke(app, ["export", str(tmp_path / "cli.sdb"), "--db", str(source.path)])
    assert "1 opt-out(s), 8 cohort clip(s) to" in said.stdout


def test_a_forged_cohort_clip_is_refused_and_changes_nothing(
    source: SpeakerDB, target: SpeakerDB, tmp_path: Path
) -> None:
    with_cohort(source)
    source.lifecycle.export(tmp_path / "good.sdb")
    magic, header, body = (tmp_path / "good.sdb").read_bytes().split(b"\n", 2)
    document = json.loads(gzip.decompress(body))
    document["cohort"][3]["embedding"] = "AAAAAA" * 20
    raw = json.dumps(document).encode()
    fields = json.loads(header) | {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    forged_file = tmp_path / "forged.sdb"
    forged_file.write_bytes(
        magic + b"\n" + json.dumps(fields).encode() + b"\n" + gzip.compress(raw)
    )
    before = rows(target.path)
    result = CliRunner().invoke(app, ["import", str(forged_file), "--db", str(target.path)])
    assert result.exit_code == 2 and "cohort clip #3" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert rows(target.path) == before
