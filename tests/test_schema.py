"""The schema and its Alembic migrations: new databases, frozen old ones, foreign files."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from conftest import ROOT, FakeEncoder, voice_0001

from speakerdb import DatabaseError, OptedOut, SchemaError, SpeakerDB
from speakerdb.storage.sql import Base, from_blob
from speakerdb.storage.sql import _schema as schema
from speakerdb.storage.sqlite._schema import current_revision

MIGRATIONS = ROOT / "speakerdb" / "storage" / "sql" / "migrations"
FROZEN_0001 = ROOT / "tests" / "data" / "speakers-0001.db"
# Made before the migrations moved from storage/sqlite/ to storage/sql/: what
# tests/data/make_speakers_0011.py wrote (speaker -> pitch, clip seeds; and the rest).
FROZEN_0011 = ROOT / "tests" / "data" / "speakers-0011.db"
FROZEN_0011_CONTENT = {"alice": (110.0, (1, 2)), "bob": (170.0, (1,)), "carol": (260.0, (1,))}
# What tests/data/make_speakers_0001.py enrolled: speaker -> (pitch, clip seeds).
FROZEN_CONTENT = {"alice": (110.0, (1, 2)), "bob": (170.0, (1,))}
FROZEN_THRESHOLD = 0.8


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)


def scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def query(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clip(pitch: float, seed: int, seconds: float = 1.0) -> tuple[np.ndarray, int]:
    return voice_0001(pitch, seconds, 16000, seed), 16000


@pytest.fixture
def new_db(tmp_path: Path) -> Path:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", [clip(110, 1)])
    return path


# -- revisions -------------------------------------------------------------


def test_schema_head_is_alembic_head() -> None:
    script = scripts()
    assert script.get_current_head() == schema.SCHEMA_HEAD
    oldest_first = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert list(schema.KNOWN_REVISIONS) == oldest_first
    assert schema.migrations_dir().resolve() == MIGRATIONS.resolve()


def test_the_readme_names_the_current_revision_and_each_step() -> None:
    # The README said 0009 for two releases after 0011 shipped.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    said = readme.split("**Schema.** ", 1)[1].split("\n\n", 1)[0]
    assert f"current schema (revision {schema.SCHEMA_HEAD}" in said, said
    missing = [r for r in schema.KNOWN_REVISIONS[1:] if f"{r} " not in said]
    assert not missing, f"README's Schema paragraph leaves out {missing}"


def test_every_migration_is_in_the_one_chain() -> None:
    """One chain for every engine, in storage/sql/migrations/: a revision written where
    the migrations lived before (storage/sqlite/migrations/) would never run."""
    strays = [
        p.relative_to(ROOT)
        for p in (ROOT / "speakerdb").rglob("*.py")
        if p.parent.name == "versions" and p.parent.parent != MIGRATIONS
    ]
    assert not strays, f"move {strays} to {MIGRATIONS.relative_to(ROOT)}/versions/"


def test_env_uses_render_as_batch() -> None:
    tree = ast.parse((MIGRATIONS / "env.py").read_text())
    configure_calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "configure"
    ]
    assert configure_calls, "env.py never calls context.configure"
    for call in configure_calls:
        flags = {k.arg: k.value for k in call.keywords}
        assert "render_as_batch" in flags
        assert isinstance(flags["render_as_batch"], ast.Constant)
        assert flags["render_as_batch"].value is True


# -- a new database --------------------------------------------------------


def test_new_database_is_at_head_wal_and_private(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    old_umask = os.umask(0o000)  # even a permissive umask gives an owner-only file
    try:
        db = SpeakerDB(path, encoder=FakeEncoder())
        db.enroll("alice", [clip(110, 1)])
    finally:
        os.umask(old_umask)
    try:
        assert query(path, "SELECT version_num FROM alembic_version") == [(schema.SCHEMA_HEAD,)]
        assert query(path, "PRAGMA journal_mode") == [("wal",)]
        assert path.stat().st_mode & 0o777 == 0o600
        wal = path.with_name(path.name + "-wal")
        assert wal.exists() and wal.stat().st_mode & 0o777 == 0o600
        assert db.index.path.stat().st_mode & 0o777 == 0o600
        assert db.info().schema_revision == schema.SCHEMA_HEAD
    finally:
        db.close()


def test_migrations_create_what_the_models_describe(new_db: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{new_db}")
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_and_upgrade_again(new_db: Path) -> None:
    from alembic import command

    # Emptied first: the initial revision's downgrade drops every table.
    conn = sqlite3.connect(new_db)
    conn.executescript("DELETE FROM utterances; DELETE FROM speakers;")
    conn.close()
    from speakerdb.storage.sqlite import Store

    store = Store.open(new_db)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert store.table_names() <= {"alembic_version"}
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        assert current_revision(store) == schema.SCHEMA_HEAD
    finally:
        store.close()


# -- a frozen database of revision 0001 ------------------------------------


@pytest.fixture
def frozen_copy(tmp_path: Path) -> Path:
    assert FROZEN_0001.is_file(), "tests/data/speakers-0001.db is missing"
    copy = tmp_path / "old-speakers.db"
    shutil.copyfile(FROZEN_0001, copy)
    return copy


def test_frozen_database_is_small_and_clean() -> None:
    assert FROZEN_0001.stat().st_size < 16_384
    for suffix in ("-wal", "-shm", ".faiss"):
        assert not FROZEN_0001.with_name(FROZEN_0001.name + suffix).exists()
    assert query(FROZEN_0001, "SELECT version_num FROM alembic_version") == [("0001",)]


def test_frozen_0001_upgrades_to_head_with_data_intact(
    frozen_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    committed = file_digest(FROZEN_0001)

    before, after = SpeakerDB.upgrade(frozen_copy)
    assert (before, after) == ("0001", schema.SCHEMA_HEAD)
    assert query(frozen_copy, "SELECT version_num FROM alembic_version") == [(after,)]
    assert SpeakerDB.upgrade(frozen_copy) == (schema.SCHEMA_HEAD, schema.SCHEMA_HEAD)

    with SpeakerDB(frozen_copy, encoder=FakeEncoder()) as db:
        info = db.info()
        assert info.schema_revision == schema.SCHEMA_HEAD
        assert info.encoder == FakeEncoder().info
        assert (info.threshold, info.threshold_source) == (FROZEN_THRESHOLD, "database")
        assert {s.name: s.n_utterances for s in db.speakers()} == {
            name: len(seeds) for name, (_, seeds) in FROZEN_CONTENT.items()
        }
        for name, (pitch, seeds) in FROZEN_CONTENT.items():
            # The stored embeddings are those of the same clips today.
            stored = np.stack([from_blob(b) for (b,) in query(frozen_copy, _embeddings(name))])
            today = db.embed([clip(pitch, seed) for seed in seeds])
            np.testing.assert_allclose(stored, today, atol=1e-6)
            # The template is still the normalised mean of those embeddings.
            ((blob,),) = query(frozen_copy, f"SELECT template FROM speakers WHERE name = '{name}'")
            mean = stored.astype(np.float64).mean(axis=0)
            np.testing.assert_allclose(from_blob(blob), mean / np.linalg.norm(mean), atol=1e-6)
            # The index is rebuilt from SQLite (it was not committed), and finds everyone.
            result = db.identify(clip(pitch, seeds[0]))
            assert result.speaker == name
            assert result.best is not None
            assert result.best.score == pytest.approx(float(today[0] @ from_blob(blob)), abs=1e-5)
            assert [u.speaker for u in db.utterances(name)] == [name] * len(seeds)
        db.enroll("carol", [clip(260, 1)])  # and it is writable at head
    assert file_digest(FROZEN_0001) == committed  # only the copy was touched


def test_frozen_0001_is_refused_until_upgraded_then_audits(frozen_copy: Path) -> None:
    """As a user meets it: a one-line error naming the fix, then the upgrade, then 0002's log."""
    from typer.testing import CliRunner

    from speakerdb.cli import app

    runner = CliRunner()
    digest = file_digest(frozen_copy)
    refused = runner.invoke(app, ["list", "--db", str(frozen_copy)])
    assert refused.exit_code == 2
    assert "run `speakerdb db upgrade`" in refused.stderr and "0001" in refused.stderr
    assert file_digest(frozen_copy) == digest
    upgraded = runner.invoke(app, ["db", "upgrade", "--json", "--db", str(frozen_copy)])
    assert upgraded.exit_code == 0, upgraded.output
    assert json.loads(upgraded.stdout) == {"from": "0001", "to": schema.SCHEMA_HEAD}
    assert "audit" in {name for (name,) in query(frozen_copy, "SELECT name FROM sqlite_master")}
    with SpeakerDB(frozen_copy, encoder=FakeEncoder()) as db:
        assert not db.audit.settings().enabled and db.audit.entries() == []
        db.audit.configure(True)
        db.verify("alice", clip(110, 1))
        (entry,) = db.audit.entries()
        assert (entry.claimed, entry.accepted) == ("alice", True)
        assert {s.name for s in db.speakers()} == set(FROZEN_CONTENT)


# -- a frozen database of revision 0011, made before storage/sql/ was split out --


def test_frozen_0011_from_before_the_move_opens_with_every_table_intact(tmp_path: Path) -> None:
    """Neither the models' nor the migrations' module path is stored in a database: one
    written while they lived in storage/sqlite/ opens (upgraded first, once the head
    moves on) with its speakers, metadata, groups, keys, audit log and opt-outs."""
    assert FROZEN_0011.stat().st_size < 65_536
    for suffix in ("-wal", "-shm", ".faiss"):
        assert not FROZEN_0011.with_name(FROZEN_0011.name + suffix).exists()
    assert query(FROZEN_0011, "SELECT version_num FROM alembic_version") == [("0011",)]
    committed = file_digest(FROZEN_0011)
    copy = tmp_path / "before-the-move.db"
    shutil.copyfile(FROZEN_0011, copy)

    assert SpeakerDB.upgrade(copy) == ("0011", schema.SCHEMA_HEAD)
    with SpeakerDB(copy, encoder=FakeEncoder()) as db:
        info = db.info()
        assert info.schema_revision == schema.SCHEMA_HEAD
        assert (info.threshold, info.threshold_source) == (FROZEN_THRESHOLD, "database")
        speakers = {s.name: s for s in db.speakers()}
        assert {n: s.n_utterances for n, s in speakers.items()} == {
            name: len(seeds) for name, (_, seeds) in FROZEN_0011_CONTENT.items()
        }
        alice = db.lifecycle.find("emp-1")
        assert (alice.name, alice.attributes, alice.groups) == ("alice", {"team": "red"}, ("door",))
        assert [n for n, s in speakers.items() if s.watchlist] == ["carol"]
        assert [(g.name, g.members) for g in db.lifecycle.groups.list()] == [
            ("door", ("alice", "bob"))
        ]
        assert [(k.name, k.scope, k.group) for k in db.keys.list()] == [
            ("reception", "query", "door")
        ]
        assert [(e.claimed, e.accepted) for e in db.audit.entries()] == [("alice", True)]
        assert len(db.lifecycle.opt_outs()) == 1
        # Every clip of then was embedded whole (0012 marks them so): info says so.
        assert info.n_whole_clip_speakers == 3 and info.whole_clip_notice is not None
        assert {u.spoken_margin_s for n in speakers for u in db.utterances(n)} == {None}
        for name in ("alice", "bob"):
            pitch, seeds = FROZEN_0011_CONTENT[name]
            assert db.identify(clip(pitch, seeds[0])).speaker == name
        with pytest.raises(OptedOut):
            db.enroll("dave", [clip(330, 2)])
        db.enroll("erin", [clip(600, 1)])  # and it is writable
    assert file_digest(FROZEN_0011) == committed  # only the copy was touched


def _embeddings(name: str) -> str:
    return (
        "SELECT u.embedding FROM utterances u JOIN speakers s ON s.id = u.speaker_id "
        f"WHERE s.name = '{name}' ORDER BY u.id"
    )


def test_older_revision_asks_for_upgrade(
    frozen_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = [r for r in schema.KNOWN_REVISIONS if r != schema.SCHEMA_HEAD]
    if older:
        conn = sqlite3.connect(frozen_copy)
        conn.execute("UPDATE alembic_version SET version_num = ?", (older[0],))
        conn.commit()
        conn.close()
    else:
        # Only one revision is released so far: play a speakerdb one revision newer.
        monkeypatch.setattr(schema, "SCHEMA_HEAD", "9001")
        monkeypatch.setattr(schema, "KNOWN_REVISIONS", (*schema.KNOWN_REVISIONS, "9001"))
    digest = file_digest(frozen_copy)
    with pytest.raises(SchemaError, match="speakerdb db upgrade") as caught:
        SpeakerDB(frozen_copy, encoder=FakeEncoder())
    assert str(frozen_copy) in str(caught.value)
    assert file_digest(frozen_copy) == digest  # opening never migrates behind the user's back


def test_newer_revision_is_refused(new_db: Path) -> None:
    conn = sqlite3.connect(new_db)
    conn.execute("UPDATE alembic_version SET version_num = 'f00d'")
    conn.commit()
    conn.close()
    before = query(new_db, "SELECT * FROM speakers")
    with pytest.raises(SchemaError, match="upgrade speakerdb") as caught:
        SpeakerDB(new_db, encoder=FakeEncoder())
    assert "f00d" in str(caught.value) and str(new_db) in str(caught.value)
    with pytest.raises(SchemaError, match="newer"):
        SpeakerDB.upgrade(new_db)
    assert query(new_db, "SELECT version_num FROM alembic_version") == [("f00d",)]
    assert query(new_db, "SELECT * FROM speakers") == before


# -- files that are not speakerdb databases --------------------------------


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);")
    conn.execute("INSERT INTO notes (text) VALUES ('buy milk')")
    conn.commit()
    conn.close()
    digest = file_digest(path)

    with pytest.raises(SchemaError, match="not a speakerdb") as caught:
        SpeakerDB(path, encoder=FakeEncoder())
    assert "notes" in str(caught.value) and "--db" in str(caught.value)
    with pytest.raises(SchemaError):
        SpeakerDB.upgrade(path)
    assert file_digest(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_random_bytes_are_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    data = np.random.default_rng(0).bytes(4096)
    path.write_bytes(data)
    with pytest.raises(DatabaseError, match="not an SQLite database") as caught:
        SpeakerDB(path, encoder=FakeEncoder())
    assert str(path) in str(caught.value)
    with pytest.raises(DatabaseError):
        SpeakerDB.upgrade(path)
    assert path.read_bytes() == data


def test_upgrade_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.db"
    with pytest.raises(DatabaseError, match="no database to upgrade") as caught:
        SpeakerDB.upgrade(path)
    assert str(path) in str(caught.value)
    assert not path.exists()


def test_database_in_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        SpeakerDB(tmp_path / "no" / "such" / "speakers.db", encoder=FakeEncoder())
    with pytest.raises(DatabaseError, match="directory"):
        SpeakerDB(tmp_path, encoder=FakeEncoder())
