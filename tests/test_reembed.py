"""Kept enrollment audio and re-embedding (issue 15): ``enroll --keep-audio`` keeps the
clips' audio encrypted, ``remove``/opt-out/expiry delete it, and ``speakerdb reembed``
builds the database for a new model from it, naming who must enroll again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import InputError, SpeakerDB
from speakerdb.cli import app

KEY = "0123456789abcdef0123456789abcdef-test-key"
OTHER_KEY = "fedcba9876543210fedcba9876543210-other-key"
PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0, "dave": 2300.0, "erin": 3000.0}
NEW = FakeEncoder(dim=16, model="fake-v2")


def clip(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5 + 0.1 * seed, 16000, seed), 16000


def open_source(path: Path, **options: object) -> SpeakerDB:
    return SpeakerDB(path, encoder=FakeEncoder(), audio_key=KEY, **options)  # type: ignore[arg-type]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SpeakerDB]:
    """alice (2 clips, kept, metadata), bob (kept, watchlisted, expiring), carol (not kept),
    dave (one clip kept of two), an opt-out, a threshold and a setting that carries."""
    db = open_source(tmp_path / "source.db")
    db.enroll(
        "alice",
        [clip("alice", 1), clip("alice", 2)],
        keep_audio=True,
        external_id="E1",
        attributes={"team": "night"},
    )
    db.enroll("bob", [clip("bob", 3)], keep_audio=True, watchlist=True, expires_at="2099-01-01")
    db.enroll("carol", [clip("carol", 4)])
    db.enroll("dave", [clip("dave", 5)])
    db.enroll("dave", [clip("dave", 6)], keep_audio=True)
    db.enroll("erin", [clip("erin", 7)])
    db.lifecycle.opt_out("erin")
    db.lifecycle.groups.add("door-a", ["alice", "carol"])
    db.lifecycle.groups.add("empty", ["carol"])
    db.set_threshold(0.55)
    db.guards.set_replay_window(60)
    yield db
    db.close()


def test_kept_audio_is_encrypted_and_counted(source: SpeakerDB, tmp_path: Path) -> None:
    assert source.lifecycle.kept_audio() == 4
    assert source.lifecycle.kept_audio("alice") == 2 and source.lifecycle.kept_audio("carol") == 0
    samples = np.ascontiguousarray(clip("alice", 1)[0], "<f4").tobytes()
    stored = source.path.read_bytes() + _wal(source.path)
    assert samples[16000:16064] not in stored  # the audio is not stored in the clear
    assert KEY.encode() not in stored  # nor the key


def _wal(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


def test_keep_audio_without_a_key_is_refused_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPEAKERDB_AUDIO_KEY", raising=False)
    with SpeakerDB(tmp_path / "a.db", encoder=FakeEncoder()) as db:
        with pytest.raises(InputError, match="SPEAKERDB_AUDIO_KEY or give --audio-key-file"):
            db.enroll("alice", [clip("alice", 1)], keep_audio=True)
        assert not os.path.exists(tmp_path / "a.db") or db.speakers() == []
    with SpeakerDB(tmp_path / "b.db", encoder=FakeEncoder(), audio_key="short") as db:
        with pytest.raises(InputError, match="fewer than 32"):
            db.enroll("alice", [clip("alice", 1)], keep_audio=True)
    monkeypatch.setenv("SPEAKERDB_AUDIO_KEY", KEY)  # the environment's key
    with SpeakerDB(tmp_path / "c.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [clip("alice", 1)], keep_audio=True)
    with SpeakerDB(tmp_path / "c.db", encoder=FakeEncoder(), audio_key=OTHER_KEY) as db:
        with pytest.raises(InputError, match="another key"):
            db.enroll("bob", [clip("bob", 3)], keep_audio=True)
        with pytest.raises(InputError, match="another key"):
            db.lifecycle.reembed(tmp_path / "new.db", encoder=NEW)
    assert not (tmp_path / "new.db").exists()


def test_reembed_without_key_or_kept_audio_says_there_is_nothing_to_embed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run from the README's command list on a database enrolled without --keep-audio,
    # it asked for a key to read audio that was never kept.
    monkeypatch.delenv("SPEAKERDB_AUDIO_KEY", raising=False)
    with SpeakerDB(tmp_path / "a.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [clip("alice", 1)])
        with pytest.raises(InputError, match=r"keeps no enrollment audio.*--keep-audio"):
            db.lifecycle.reembed(tmp_path / "new.db", encoder=NEW)
    with SpeakerDB(tmp_path / "a.db", encoder=FakeEncoder(), audio_key=KEY) as db:
        db.enroll("bob", [clip("bob", 2)], keep_audio=True)
    with SpeakerDB(tmp_path / "a.db", encoder=FakeEncoder()) as db:  # kept, and no key
        with pytest.raises(InputError, match="SPEAKERDB_AUDIO_KEY or give --audio-key-file"):
            db.lifecycle.reembed(tmp_path / "new.db", encoder=NEW)
    assert not (tmp_path / "new.db").exists()


def test_remove_opt_out_and_expiry_delete_the_kept_audio(source: SpeakerDB, tmp_path: Path) -> None:
    with source._storage.read() as snapshot:
        ids = [u.id for u in snapshot.utterances("alice")]
        sealed = [k.data for k in snapshot.kept_audio(ids).values()]
    source.remove("alice")
    with source._storage.read() as snapshot:
        assert snapshot.kept_audio(ids) == {}
    assert source.lifecycle.kept_audio() == 2
    stored = source.path.read_bytes() + _wal(source.path)
    for data in sealed:  # overwritten (secure_delete), and gone from the WAL
        assert data[-64:] not in stored
    source.lifecycle.opt_out("dave")
    assert source.lifecycle.kept_audio() == 1
    soon = datetime.now(timezone.utc) + timedelta(seconds=1)
    source.lifecycle.set_metadata("bob", expires_at=soon)
    time.sleep(1.1)
    assert [s.name for s in source.lifecycle.expire()] == ["bob"]
    assert source.lifecycle.kept_audio() == 0


def test_reembed_builds_the_new_model_s_database(source: SpeakerDB, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    report = source.lifecycle.reembed(
        tmp_path / "new.db", encoder=NEW, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert report.reembedded == ("alice", "bob") and report.partial == ("dave",)
    assert report.reenroll == ("carol",) and report.failed == {}
    assert report.n_utterances == 4 and report.model == "fake-v2" and report.n_tombstones == 1
    assert "replay_window_s" in report.carried
    assert any("threshold:identify:none" in s for s in report.not_carried)
    with SpeakerDB(tmp_path / "new.db", encoder=NEW, audio_key=KEY) as new:
        assert new.model == "fake-v2"
        people = {s.name: s for s in new.speakers()}
        old = {s.name: s for s in source.speakers()}
        assert sorted(people) == ["alice", "bob", "dave"]
        for name in people:
            for field in (
                "external_id",
                "attributes",
                "expires_at",
                "watchlist",
                "last_match_at",
                "groups",
            ):
                assert getattr(people[name], field) == getattr(old[name], field), (name, field)
        assert people["dave"].n_utterances == 1
        # carol must enroll again: her groups stay, without her
        assert {g.name: g.members for g in new.lifecycle.groups.list()} == {
            "door-a": ("alice",),
            "empty": (),
        }
        assert new.identify(clip("alice", 8)).speaker == "alice"
        assert new.identify(clip("bob", 9)).outcome == "watchlist"
        assert new.policy().source == "default for fake-v2"  # the old threshold is not taken
        with new._storage.read() as snapshot:  # (the session's environment overrides it)
            assert snapshot.settings()["replay_window_s"] == "60"
        with pytest.raises(Exception, match="opted out"):
            new.enroll("erin", [clip("erin", 7)])
        # The new database keeps the audio too: it can be re-embedded in turn.
        again = new.lifecycle.reembed(tmp_path / "third.db", encoder=FakeEncoder(model="fake-v3"))
        assert again.reembedded == ("alice", "bob", "dave")


def test_reembed_refuses_an_existing_target_the_same_model_and_no_model(
    source: SpeakerDB, tmp_path: Path
) -> None:
    target = tmp_path / "new.db"
    target.write_bytes(b"precious")
    with pytest.raises(InputError, match=r"exists.*--overwrite"):
        source.lifecycle.reembed(target, encoder=NEW)
    assert target.read_bytes() == b"precious"
    with pytest.raises(InputError, match="fake-encoder already"):
        source.lifecycle.reembed(tmp_path / "same.db", encoder=FakeEncoder())
    with pytest.raises(InputError, match=r"--to-model; model= or encoder= in Python"):
        source.lifecycle.reembed(tmp_path / "none.db")
    with pytest.raises(InputError, match="is this database"):
        source.lifecycle.reembed(source.path, encoder=NEW, overwrite=True)
    assert not (tmp_path / "same.db").exists() and not (tmp_path / "none.db").exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    report = source.lifecycle.reembed(target, encoder=NEW, overwrite=True)
    assert report.reembedded == ("alice", "bob")
    with SpeakerDB(target, encoder=NEW) as new:
        assert len(new.speakers()) == 3


def test_an_interrupted_reembed_leaves_no_target(source: SpeakerDB, tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        source.lifecycle.reembed(tmp_path / "new.db", encoder=NEW, progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith("source.db")
    )


KILLED = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from conftest import FakeEncoder
from speakerdb import SpeakerDB

def die(done, total):
    if done == 2:
        os.kill(os.getpid(), signal.SIGKILL)

with SpeakerDB({db!r}, encoder=FakeEncoder(), audio_key={key!r}) as db:
    db.lifecycle.reembed({target!r}, encoder=FakeEncoder(dim=16, model="fake-v2"), progress=die)
"""


def test_a_killed_reembed_leaves_nothing_that_looks_finished(
    source: SpeakerDB, tmp_path: Path
) -> None:
    target = tmp_path / "new.db"
    script = KILLED.format(
        tests=str(ROOT / "tests"), db=str(source.path), key=KEY, target=str(target)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".new.db.reembed-partial")]
    assert leftovers  # hidden, and named for what it is
    report = source.lifecycle.reembed(target, encoder=NEW)  # the next run starts over
    assert report.reembedded == ("alice", "bob")
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def write(folder: Path, name: str, seed: int) -> Path:
    samples, rate = clip(name, seed)
    path = folder / f"{name}{seed}.wav"
    sf.write(path, samples, rate)
    return path


def test_keep_audio_and_reembed_on_the_command_line(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPEAKERDB_AUDIO_KEY", raising=False)
    monkeypatch.setattr(
        "speakerdb.services._model.load_encoder",
        lambda model, **_: FakeEncoder() if model == "fake-encoder" else _real(model, **_),
    )
    runner = CliRunner()
    db = ["--db", str(tmp_path / "speakers.db"), "--model", "fake-encoder"]
    keyfile = tmp_path / "audio.key"
    keyfile.write_text(KEY + "\n")
    refused = runner.invoke(
        app, ["enroll", "alice", str(write(tmp_path, "alice", 1)), "--keep-audio", *db]
    )
    assert refused.exit_code == 2
    assert "SPEAKERDB_AUDIO_KEY or give --audio-key-file" in refused.stderr
    key = ["--audio-key-file", str(keyfile)]
    clips = [str(write(tmp_path, "alice", 1)), str(write(tmp_path, "alice", 2))]
    ok = runner.invoke(app, ["enroll", "alice", *clips, "--keep-audio", *key, *db])
    assert ok.exit_code == 0, ok.output
    manifest = tmp_path / "people.csv"
    manifest.write_text(f"speaker,path\nbob,{write(tmp_path, 'bob', 3)}\n")
    batch = runner.invoke(app, ["enroll-batch", str(manifest), "--keep-audio", *key, *db])
    assert batch.exit_code == 0, batch.output
    runner.invoke(app, ["enroll", "carol", str(write(tmp_path, "carol", 4)), *db])
    new = tmp_path / "new.db"
    to = ["--to", str(new), "--to-model", str(tiny_model_dir), "--backend", "torch"]
    said = runner.invoke(app, ["reembed", *to, *key, *db])
    assert said.exit_code == 0, said.output
    assert "must enroll again (no audio kept): carol" in said.stdout
    assert "re-embedded 2 speaker(s), 3 clip(s)" in said.stdout
    assert "not carried over: the audit log" in said.stdout
    again = runner.invoke(app, ["reembed", *to, *key, *db, "--json"])
    assert again.exit_code == 2 and "--overwrite" in again.stdout + again.stderr
    done = runner.invoke(app, ["reembed", *to, *key, *db, "--json", "--overwrite"])
    report = json.loads(done.stdout)
    assert report["reembedded"] == ["alice", "bob"] and report["reenroll"] == ["carol"]
    listed = runner.invoke(app, ["list", "--json", "--db", str(new)])
    assert [s["name"] for s in json.loads(listed.stdout)] == ["alice", "bob"]
    found = runner.invoke(
        app, ["identify", clips[0], "--db", str(new), "--backend", "torch", "--json"]
    )
    assert found.exit_code in (0, 1), found.output  # the tiny model is random: any answer
    assert json.loads(found.stdout)[0]["matches"]


def _real(model: str, **options: object) -> object:
    from speakerdb.encoders._base import load_encoder

    return load_encoder(model, **options)  # type: ignore[arg-type]


def test_altered_kept_audio_fails_that_speaker_only(source: SpeakerDB, tmp_path: Path) -> None:
    with source._storage.read() as snapshot:
        (bob_clip,) = (u.id for u in snapshot.utterances("bob"))
    con = sqlite3.connect(source.path)
    with con:  # one bit of bob's sealed audio flipped on disk
        (data,) = con.execute(
            "SELECT data FROM kept_audio WHERE utterance_id = ?", (bob_clip,)
        ).fetchone()
        altered = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
        con.execute("UPDATE kept_audio SET data = ? WHERE utterance_id = ?", (altered, bob_clip))
    con.close()
    report = source.lifecycle.reembed(tmp_path / "new.db", encoder=NEW)
    assert report.reembedded == ("alice",) and report.partial == ("dave",)
    assert list(report.failed) == ["bob"] and "altered" in report.failed["bob"]
    with pytest.raises(TypeError):  # frozen through and through
        report.failed["bob"] = "fine"  # type: ignore[index]
    assert report.to_dict()["failed"] == {"bob": report.failed["bob"]}
