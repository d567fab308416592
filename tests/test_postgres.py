"""PostgreSQL as the store, through the library and the command line, on both servers:
plain PostgreSQL (search by each process's FAISS cache) and PostgreSQL with pgvector
(HNSW). The storage contract itself runs on both in test_storage_contract.py; the
multi-node guarantees are in test_multinode.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner, Result

from speakerdb import DatabaseError, SchemaError, SpeakerDB
from speakerdb.cli import app
from speakerdb.config import database_location, is_server_url

PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0}
RUNNER = CliRunner()


def take(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5, 16000, seed), 16000


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


# -- naming the store ---------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    ["postgresql://db.example/speakers", "postgresql+psycopg://u:p@host:5432/speakers"],
)
def test_a_postgresql_url_names_a_server(location: str) -> None:
    assert is_server_url(location) and database_location(location) == location


@pytest.mark.parametrize(
    "location",
    ["speakers.db", "odd?name.db", "100%.db", "postgres://host/db", "./postgresql://x", "pg.db"],
)
def test_anything_else_is_a_file_path(location: str) -> None:
    assert not is_server_url(location)
    assert database_location(location) == Path(location).expanduser()


def test_the_environment_names_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERDB_DB", "postgresql://host/speakers")
    assert database_location(None) == "postgresql://host/speakers"


# -- the library -----------------------------------------------------------------


def answers(db: SpeakerDB) -> tuple[Any, ...]:
    for i, name in enumerate(PITCHES):
        db.enroll(name, [take(name, 3 * i + j) for j in range(3)])
    identified = db.identify(take("bob", 50), top_k=3)
    verified = db.verify("carol", take("carol", 51))
    rejected = db.verify("alice", take("carol", 52))
    db.lifecycle.remove_utterance(db.utterances("alice")[0].id)
    db.rename("bob", "robert")
    db.remove("carol")
    return (
        identified.speaker,
        [m.speaker for m in identified.matches],
        [round(m.score, 4) for m in identified.matches],
        (verified.accepted, round(verified.score, 4)),
        (rejected.accepted, round(rejected.score, 4)),
        [(s.name, s.n_utterances) for s in db.speakers()],
        db.identify(take("bob", 53)).speaker,
        db.policy().threshold,
    )


def test_speakerdb_answers_as_on_sqlite(
    pg_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        on_sqlite = answers(db)
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        on_server = answers(db)
        info = db.info()
    assert on_server == on_sqlite and on_server[0] == "bob"
    assert info.n_speakers == 2 and info.schema_revision is not None
    assert info.path == pg_url
    # The server is known by the fixture's parameter, not guessed from the URL: a URL
    # says nothing of the server when CI gave none (clusters started here), and one
    # port's digits may begin another's (127.0.0.1:5523 and 127.0.0.1:55233).
    with_pgvector = request.node.callspec.params["pg_url"] == "pgvector"
    assert ("pgvector HNSW" in info.index_path) == with_pgvector


def test_search_kind_follows_the_server(
    postgres_plain: Any, postgres_pgvector: Any, request: pytest.FixtureRequest
) -> None:
    from _postgres import database_fixture

    for server, expected in ((postgres_plain, "FAISS cache"), (postgres_pgvector, "pgvector")):
        for url in database_fixture(server):
            with SpeakerDB(url, encoder=FakeEncoder()) as db:
                db.enroll("alice", [take("alice", 1)])
                assert db.info().index_path.startswith(expected)


def test_halfvec_is_chosen_from_the_command_line(postgres_pgvector: Any) -> None:
    from _postgres import database_fixture

    for url in database_fixture(postgres_pgvector):
        chosen = json.loads(ok(cli("index", "--search", "halfvec", "--db", url, "--json")).stdout)
        assert chosen["where"] == "pgvector HNSW (halfvec) in table speaker_vectors"
        with SpeakerDB(url, encoder=FakeEncoder()) as db:
            assert db.index.vector_search() == "halfvec"
            for i, name in enumerate(PITCHES):
                db.enroll(name, [take(name, 3 * i + j) for j in range(2)])
            found = db.identify(take("carol", 60), top_k=3)
            assert found.speaker == "carol" and "halfvec" in db.info().index_path
        assert "halfvec" in hnsw_definition(url)  # the index is on half precision
        shown = ok(cli("index", "--db", url)).stdout
        assert "index: hnsw; 3 speaker(s)" in shown and "(halfvec)" in shown
        rebuilt = json.loads(ok(cli("rebuild-index", "--db", url, "--json")).stdout)
        assert rebuilt == {"index": chosen["where"], "speakers": 3}
        # Every node searches the same way: the choice is made before the first enrollment.
        refused = cli("index", "--search", "pgvector", "--db", url)
        assert refused.exit_code == 2 and "since its first enrollment" in refused.stderr
        bad = cli("index", "--search", "ivfflat", "--db", url)
        assert bad.exit_code == 2 and "pgvector, halfvec, faiss" in bad.stderr


def hnsw_definition(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'speaker_vectors_hnsw'"
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_the_library_chooses_the_faiss_cache_on_a_pgvector_server(postgres_pgvector: Any) -> None:
    from _postgres import database_fixture

    for url in database_fixture(postgres_pgvector):
        with SpeakerDB(url, encoder=FakeEncoder()) as db:
            assert db.index.vector_search() is None  # the first enrollment would choose
            db.index.set_vector_search("faiss")
            db.enroll("alice", [take("alice", 1)])
            assert db.info().index_path == "FAISS cache in each process"
            assert db.identify(take("alice", 2)).speaker == "alice"


def test_the_vector_search_needs_pgvector_and_a_server(postgres_plain: Any, tmp_path: Path) -> None:
    from _postgres import database_fixture

    for url in database_fixture(postgres_plain):
        with SpeakerDB(url, encoder=FakeEncoder()) as db:
            with pytest.raises(DatabaseError, match="no pgvector extension"):
                db.index.set_vector_search("halfvec")
            db.enroll("alice", [take("alice", 1)])
            assert db.index.vector_search() == "faiss"
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError, match="PostgreSQL database only"):
            db.index.set_vector_search("halfvec")


def test_a_password_is_never_shown(pg_url: str) -> None:
    secret = "s3cret-Pa55"
    url = with_password(pg_url, secret)
    with SpeakerDB(url, encoder=FakeEncoder()) as db:  # the servers trust loopback
        db.enroll("alice", [take("alice", 1)])
        info = db.info()
        assert secret not in json.dumps(info.to_dict()) and "***" in info.path
        assert secret not in str(db.path)
    host = url.rsplit("@", 1)[1].split("/", 1)[0]
    unreachable = url.replace(host, "127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(DatabaseError) as caught:
        SpeakerDB(unreachable, encoder=FakeEncoder())
    message = str(caught.value)
    assert secret not in message and "cannot reach the PostgreSQL server" in message
    missing = url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(DatabaseError, match="does not exist; create it") as caught:
        SpeakerDB(missing, encoder=FakeEncoder())
    assert secret not in str(caught.value)


def test_a_read_before_the_first_write_is_refused(pg_url: str) -> None:
    with pytest.raises(DatabaseError, match="enroll a speaker"):
        SpeakerDB(pg_url, encoder=FakeEncoder(), create=False)
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        with pytest.raises(DatabaseError):
            db.identify(take("alice", 1))


def test_migrations_run_on_postgresql(pg_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from speakerdb.storage.postgres._url import engine_url
    from speakerdb.storage.sql._schema import KNOWN_REVISIONS, SCHEMA_HEAD, migrations_dir

    engine = create_engine(engine_url(pg_url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(migrations_dir()))
        config.attributes["connection"] = conn
        command.upgrade(config, KNOWN_REVISIONS[0])
    engine.dispose()
    with pytest.raises(SchemaError, match="speakerdb db upgrade"):
        SpeakerDB(pg_url, encoder=FakeEncoder())
    assert SpeakerDB.upgrade(pg_url) == (KNOWN_REVISIONS[0], SCHEMA_HEAD)
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        db.enroll("alice", [take("alice", 1)])
        db.audit.configure(True)
        db.verify("alice", take("alice", 2))
        assert [e.claimed for e in db.audit.entries()] == ["alice"]


def test_migration_0012_marks_the_clips_of_before_as_whole(pg_url: str) -> None:
    """Down to 0011 (no record of how vectors were made) and up again: the clips enrolled
    before are marked as embedded whole, and info counts their speaker."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from speakerdb.storage.postgres._url import engine_url
    from speakerdb.storage.sql._schema import SCHEMA_HEAD, migrations_dir

    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        db.enroll("alice", [take("alice", 1)])
        assert db.info().n_whole_clip_speakers == 0
    engine = create_engine(engine_url(pg_url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(migrations_dir()))
        config.attributes["connection"] = conn
        command.downgrade(config, "0011")
    engine.dispose()
    assert SpeakerDB.upgrade(pg_url) == ("0011", SCHEMA_HEAD)
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        assert [u.spoken_margin_s for u in db.utterances("alice")] == [None]
        db.enroll("bob", [take("bob", 1)])
        assert db.info().n_whole_clip_speakers == 1


def test_reembed_in_place_brings_whole_clips_up_to_date_on_the_server(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's database cannot be rebuilt as a new file: ``reembed --in-place``
    embeds its whole clips again from their words where they are (the API, then the
    command line), another handle's search sees the new voiceprints, the audit log and
    thresholds stay, a speaker without kept audio is named, and a second run does
    nothing."""
    from dataclasses import replace

    from speakerdb import Clip
    from speakerdb.audio import clip_from_array

    key = "0123456789abcdef0123456789abcdef-test-key"

    def padded(name: str, seed: int) -> Clip:  # 0.6 s of room noise either side
        rng = np.random.default_rng([int(PITCHES[name]), seed])
        noise = rng.standard_normal((2, 9600)).astype(np.float32) * 1e-3
        words = voice(PITCHES[name], 1.5, 16000, seed)
        return clip_from_array(np.concatenate([noise[0], words, noise[1]]), 16000, f"{name}{seed}")

    with SpeakerDB(pg_url, encoder=FakeEncoder(), audio_key=key) as db:
        for name in PITCHES:  # as an older speakerdb embedded them: whole
            whole = [replace(padded(name, s), spoken_margin_s=None) for s in (1, 2)]
            db.enroll(name, whole, keep_audio=name != "carol")
        db.set_threshold(0.3, score_norm="none")
        db.audit.configure(True)
        db.verify("bob", padded("bob", 3))
        before = db.info()
        assert before.n_whole_clip_speakers == 3
        report = db.lifecycle.reembed_in_place()
    assert (report.reembedded, report.reenroll, report.n_utterances) == (
        ("alice", "bob"),
        ("carol",),
        4,
    )
    with SpeakerDB(tmp_path / "today.db", encoder=FakeEncoder()) as today:
        for name in ("alice", "bob"):
            today.enroll(name, [padded(name, s) for s in (1, 2)])
        expected = today.identify(padded("alice", 1), top_k=3)
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as other:  # another node
        after = other.info()
        assert after.n_whole_clip_speakers == 1
        assert after.stored_thresholds == before.stored_thresholds
        assert [e.claimed for e in other.audit.entries()] == ["bob"]
        assert [u.spoken_margin_s for u in other.utterances("alice")] == [0.5, 0.5]
        found = other.identify(padded("alice", 1), top_k=3)
        assert found.speaker == "alice"
        scores = {m.speaker: m.score for m in found.matches}
        for match in expected.matches:
            assert scores[match.speaker] == pytest.approx(match.score, abs=1e-4)
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    monkeypatch.setenv("SPEAKERDB_AUDIO_KEY", key)
    again = json.loads(ok(cli("reembed", "--in-place", "--db", pg_url, "--json")).stdout)
    assert (again["n_utterances"], again["reenroll"], again["path"]) == (0, ["carol"], pg_url)
    ok(cli("remove", "carol", "--db", pg_url, "--yes"))
    done = cli("reembed", "--in-place", "--db", pg_url)
    assert done.exit_code == 2 and "nothing to re-embed in place" in done.stderr


# -- the command line -------------------------------------------------------------


def cli(*args: object, env: dict[str, str | None] | None = None) -> Result:
    result = RUNNER.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
    return result


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
    return result


def test_the_command_line_on_postgresql(
    pg_url: str, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import soundfile as sf

    monkeypatch.chdir(tmp_path)
    for name in ("SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD", "SPEAKERDB_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    for name, pitch in PITCHES.items():
        for i in range(3):
            sf.write(tmp_path / f"{name}{i}.wav", voice(pitch, 1.5, 16000, i), 16000)
    manifest = tmp_path / "batch.csv"
    manifest.write_text("speaker,path\ncarol,carol0.wav\ncarol,carol1.wav\nbob,bob0.wav\n")
    model = ("--model", tiny_model_dir)
    ok(cli("enroll", "alice", "alice0.wav", "alice1.wav", "--db", pg_url, *model))
    ok(cli("enroll-batch", manifest, "--db", pg_url, *model))
    again = json.loads(ok(cli("enroll-batch", manifest, "--db", pg_url, *model, "--json")).stdout)
    assert len(again["skipped"]) == 3  # a rerun skips the clips done
    monkeypatch.setenv("SPEAKERDB_DB", pg_url)  # the environment names the server too
    listed = json.loads(ok(cli("list", "--json")).stdout)
    assert {s["name"]: s["n_utterances"] for s in listed} == {"alice": 2, "bob": 1, "carol": 2}
    (found,) = json.loads(ok(cli("identify", "bob0.wav", "--json")).stdout)
    assert found["matches"][0]["speaker"] == "bob"  # bob's one clip: the template itself
    assert found["matches"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    info = json.loads(ok(cli("info", "--json")).stdout)
    assert info["path"] == pg_url and info["n_speakers"] == 3
    ok(cli("remove", "carol", "--yes"))
    (after,) = json.loads(ok(cli("identify", "carol0.wav", "--json", "--top-k", "5")).stdout)
    assert "carol" not in [m["speaker"] for m in after["matches"]]
    shown = ok(cli("show", "alice"))
    assert "alice0.wav" in shown.output


# -- the tests' own clusters ----------------------------------------------------------

_STARTS_A_CLUSTER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from _postgres import start_server
server = start_server("plain", own=True)
print(server if isinstance(server, str) else server.folder, flush=True)
time.sleep(600)
"""


def test_a_killed_test_run_leaves_no_cluster_behind() -> None:
    """tests/_postgres.py's watchdog stops a throwaway cluster whose test process was
    killed with SIGKILL (no teardown, no atexit), and deletes its folder."""
    import os
    import subprocess
    import sys
    import time

    from _postgres import alive

    tests = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", _STARTS_A_CLUSTER, tests], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        started = proc.stdout.readline().strip()
        folder = Path(started)
        pid_file = folder / "data" / "postmaster.pid"
        server_pid = int(pid_file.read_text().split()[0]) if folder.is_absolute() else None
    finally:
        proc.kill()  # SIGKILL, right after the cluster is up
        proc.wait()
    if server_pid is None:
        if os.environ.get("SPEAKERDB_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(started)
        pytest.skip(started)
    deadline = time.monotonic() + 60
    while (folder.exists() or alive(server_pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(server_pid), f"the server of {folder} outlived its test process"
    assert not folder.exists(), f"{folder} outlived its test process"


def test_the_databases_of_a_killed_test_run_are_dropped(postgres_plain: Any) -> None:
    """A run killed before its drops leaves databases named for its process id; the next
    run's first database sweeps those of processes that no longer run."""
    from _postgres import Server

    admin = postgres_plain
    leftover = admin.database_url("t_999999999_0123456789ab")  # no such process
    admin._admin(f'CREATE DATABASE "{leftover.rsplit("/", 1)[1]}"')
    later = Server(admin.kind, admin.url, None)  # the next run
    url = later.create_database()
    later.drop_later(url)
    later.finish()
    with pytest.raises(DatabaseError, match="does not exist"):
        SpeakerDB(leftover, encoder=FakeEncoder())
