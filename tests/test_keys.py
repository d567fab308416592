"""`speakerdb key create/list/revoke`: keys of the HTTP service, stored only as hashes,
and the audit log naming the key that asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import SpeakerDB
from speakerdb.cli import app

RUNNER = CliRunner()


def cli(*args: object) -> tuple[int, str, str]:
    result = RUNNER.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_key_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    code, out, err = cli("key", "create", "ops", "--scope", "admin", "--db", db, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["name"] == "ops" and doc["scope"] == "admin" and doc["key"].startswith("sdb_")
    code, out, err = cli("key", "create", "door-1", "--db", db)
    assert code == 0 and "shown only now" in err
    door = out.strip()
    for secret in (doc["key"], door):
        for file in tmp_path.iterdir():
            assert secret.encode() not in file.read_bytes(), file
    with SpeakerDB(db) as database:
        assert database.keys.check(door).name == "door-1"  # type: ignore[union-attr]
        assert database.keys.check(door + "x") is None
        assert database.keys.check("not a key") is None
    code, out, _ = cli("key", "list", "--db", db, "--json")
    assert [(k["name"], k["scope"]) for k in json.loads(out)] == [
        ("door-1", "query"),
        ("ops", "admin"),
    ]
    code, out, _ = cli("key", "list", "--db", db)
    assert out.splitlines()[0].startswith("door-1\tquery\t")


def test_key_revoke_refuses_the_key_from_then_on(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    secret = json.loads(cli("key", "create", "door", "--db", db, "--json")[1])["key"]
    code, out, _ = cli("key", "revoke", "door", "--db", db, "--json")
    assert code == 0 and json.loads(out)["name"] == "door"
    with SpeakerDB(db) as database:
        assert database.keys.check(secret) is None
    code, _, err = cli("key", "revoke", "door", "--db", db)
    assert code == 2 and "no service key named 'door'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad name"], "a key name is 1 to 64 letters"),
        (["door", "--scope", "root"], "scope is 'query' or 'admin'"),
    ],
)
def test_key_create_refuses_bad_names_and_scopes(
    tmp_path: Path, args: list[str], message: str
) -> None:
    code, out, err = cli("key", "create", *args, "--db", tmp_path / "keys.db")
    assert code == 2 and message in err and out == ""


def test_a_database_holding_only_keys_is_a_database(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    cli("key", "create", "ops", "--scope", "admin", "--db", db)
    code, out, err = cli("list", "--db", db, "--json")
    assert (code, json.loads(out)) == (0, []), err


def test_audit_entries_name_the_key_that_asked(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "a.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [(voice(140.0, seed=1), 16000)])
        db.audit.configure(True)
        with db.audit.asked_by("door-1"):
            db.verify("alice", (voice(140.0, seed=2), 16000))
        db.identify((voice(140.0, seed=3), 16000))
        entries = db.audit.entries()
    assert [(e.operation, e.api_key) for e in entries] == [("identify", None), ("verify", "door-1")]


def test_help_and_list_do_not_load_the_server() -> None:
    from conftest import run_probed

    for args in (["--help"], ["serve", "--help"], ["key", "--help"]):
        proc, code, loaded = run_probed(args)
        assert code == 0, proc.stderr
        assert not loaded & {"fastapi", "uvicorn", "starlette", "pydantic", "websockets"}, args
