"""The command line as a user runs it: real audio files in, exit codes and output checked.

Most commands run in-process through typer's ``CliRunner`` (fast); the checks
that only a real process can make (no traceback on stderr, the exit status, the
modules a command imports, notices written by the logging set-up) run
``python -m speakerdb`` in a subprocess.

The x-vector path uses the tiny random model of ``conftest.tiny_model_dir``:
its embeddings carry no speaker information, so the tests rely only on what
holds anyway (a clip scores 1.0 against itself, a threshold of 0.99999 turns
any other clip away). Accuracy on real speech is checked with ``--model
resemblyzer`` on a few clips of the shared corpus.

The suite runs on each backend (tests/_stores.py): on a PostgreSQL server, ``home``'s
database is a server database named by ``SPEAKERDB_DB``, and other databases come
from the ``store`` fixture; tests about the SQLite file itself are ``file_store``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from _stores import BACKEND, ON_SERVER, Location, Stores
from conftest import new_database, read_rows, run_probed, voice
from typer.main import get_command
from typer.testing import CliRunner, Result

from speakerdb import SpeakerDB
from speakerdb._names import MAX_NAME_LENGTH
from speakerdb.audio import _decode as audio
from speakerdb.cli import app
from speakerdb.config import FALLBACK_THRESHOLD
from speakerdb.storage.sql import SCHEMA_HEAD

ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("torch", "transformers", "faiss")
ENV_VARS = (
    "SPEAKERDB_DB",
    "SPEAKERDB_MODEL",
    "SPEAKERDB_THRESHOLD",
    "SPEAKERDB_OFFLINE",
    "SPEAKERDB_BACKEND",
)
#: Environment for commands run outside a test's monkeypatched environment.
CLEAN_ENV: dict[str, str | None] = {**dict.fromkeys(ENV_VARS), "HF_HUB_OFFLINE": "1"}
RUNNER = CliRunner()


# -- helpers ---------------------------------------------------------------


def cli(*args: object, env: dict[str, str | None] | None = None) -> Result:
    """Run ``speakerdb ARGS`` in-process; an exception escaping the CLI fails the test."""
    return RUNNER.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    return result


def as_json(result: Result, code: int = 0) -> Any:
    """The single JSON document on stdout; json.loads refuses anything after it."""
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    return json.loads(result.stdout)


def assert_error(result: Result, *fragments: object, code: int = 2) -> str:
    """A one-line error on stderr naming each fragment, nothing on stdout, exit ``code``."""
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("speakerdb: error: "), line
    assert "unexpected" not in line, line
    for fragment in fragments:
        assert str(fragment) in line, line
    assert result.stdout == ""
    return line


def write_audio(path: Path, samples: np.ndarray, rate: int = 16000, **kwargs: Any) -> Path:
    sf.write(path, samples, rate, **kwargs)
    return path


def home_db(folder: Path) -> Location:
    """The database the commands use by default in ``folder`` (``home``)."""
    return os.environ["SPEAKERDB_DB"] if ON_SERVER else folder / "speakers.db"


def snapshot(folder: Path) -> dict[str, Any]:
    """Every row of every table of ``home``'s database (and its index file's bytes):
    equal means unchanged."""
    return Stores(None).dump(home_db(folder))


def speakers(*args: object) -> dict[str, int]:
    """``speakerdb list --json`` as ``{name: number of clips}``."""
    return {s["name"]: s["n_utterances"] for s in as_json(cli("list", "--json", *args))}


def subprocess_env(**extra: str) -> dict[str, str]:
    # On a server, the test's database is named by SPEAKERDB_DB (see ``home``).
    kept = ENV_VARS[1:] if ON_SERVER else ENV_VARS
    env = {k: v for k, v in os.environ.items() if k not in kept}
    env.update(HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8", **extra)
    return env


def run_speakerdb(
    *args: object, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "speakerdb", *map(str, args)],
        cwd=cwd,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def command_paths() -> list[tuple[str, ...]]:
    """Every runnable command, with subcommands of groups: ("enroll",), ("db", "upgrade")."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path

    return sorted(walk(get_command(app), ()))


def find_command(path: tuple[str, ...]) -> Any:
    command: Any = get_command(app)
    for name in path:
        command = command.commands[name]
    return command


# -- fixtures --------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module", autouse=True)
def no_weight_loading_bars() -> Iterator[None]:
    """What the CLI's environment does in a real process, where transformers loads after it.

    In-process, transformers is imported before the CLI runs, so its "Loading weights"
    bar would land on stderr; a real process never shows it (checked below).
    """
    from transformers.utils import logging as hf_logging

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hf_logging, "_tqdm_active", False)
        yield


@pytest.fixture(scope="module")
def base_home(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, module_store: Stores
) -> Path:
    """A folder with ./speakers.db (alice: 2 clips, bob: 1) built by the CLI, and its clips
    (on a server, the database is ``module_store(folder / "speakers.db")``)."""
    home = tmp_path_factory.mktemp("home")
    write_audio(home / "alice1.wav", voice(120, seed=1))
    write_audio(home / "alice2.wav", voice(125, seed=2))
    write_audio(home / "bob1.wav", voice(210, seed=3))
    write_audio(home / "stranger.wav", voice(160, seed=4))
    db = module_store(home / "speakers.db")
    first = ("enroll", "alice", home / "alice1.wav", home / "alice2.wav", "--db", db)
    ok(cli(*first, "--model", tiny_model_dir, env=CLEAN_ENV))
    ok(cli("enroll", "bob", home / "bob1.wav", "--db", db, env=CLEAN_ENV))
    return home


@pytest.fixture
def home(
    base_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module_store: Stores,
    store: Stores,
) -> Path:
    """A private copy of ``base_home``, made the working directory (so ./speakers.db is used;
    on a server, a copy of its database, which ``SPEAKERDB_DB`` names)."""
    target = tmp_path / "home"
    shutil.copytree(base_home, target)
    monkeypatch.chdir(target)
    if ON_SERVER:
        copied = store.copy(module_store(base_home / "speakers.db"), target / "speakers.db")
        monkeypatch.setenv("SPEAKERDB_DB", str(copied))
    return target


@pytest.fixture
def clip(home: Path) -> Callable[..., Path]:
    """Write a fresh synthetic voice into ``home`` (never enrolled yet)."""

    def make(name: str, pitch: float = 140.0, seed: int = 7, **kwargs: Any) -> Path:
        rate = kwargs.pop("rate", 16000)
        seconds = kwargs.pop("seconds", 2.0)
        return write_audio(home / name, voice(pitch, seconds, rate, seed), rate, **kwargs)

    return make


# -- enroll ----------------------------------------------------------------


def test_enroll_creates_a_speaker_then_adds_clips(home: Path, clip: Callable[..., Path]) -> None:
    first = ok(cli("enroll", "carol", clip("carol1.wav", 150, seed=11)))
    assert "created carol" in first.stdout
    doc = as_json(cli("enroll", "carol", clip("carol2.wav", 152, seed=12), "--json"))
    assert doc["created"] is False
    assert doc["speaker"]["name"] == "carol"
    assert doc["speaker"]["n_utterances"] == 2
    assert [u["source"] for u in doc["added"]] == [str(home / "carol2.wav")]
    assert speakers() == {"alice": 2, "bob": 1, "carol": 2}


def test_a_speaker_of_one_clip_is_warned_about_once(home: Path, clip: Callable[..., Path]) -> None:
    warning = "speakerdb: warning: 'carol' is enrolled from one clip: its voiceprint is unsteady"
    first = ok(cli("enroll", "carol", clip("carol1.wav", 150, seed=11)))
    assert first.stderr.count(warning) == 1, first.stderr
    doc = as_json(cli("enroll", "dan", clip("dan1.wav", 170, seed=13), "--json"))
    assert doc["notice"].startswith("'dan' is enrolled from one clip")
    second = ok(cli("enroll", "carol", clip("carol2.wav", 152, seed=12)))
    assert "one clip" not in second.stderr


def test_enroll_adds_to_an_existing_speaker(home: Path, clip: Callable[..., Path]) -> None:
    result = ok(
        cli("enroll", "bob", clip("bob2.wav", 205, seed=21), clip("bob3.wav", 215, seed=22))
    )
    assert "updated bob" in result.stdout
    assert speakers()["bob"] == 3


def test_one_bad_clip_among_good_ones_enrolls_nothing(
    home: Path, clip: Callable[..., Path]
) -> None:
    good = [clip("carol1.wav", 150, seed=11), clip("carol2.wav", 151, seed=12)]
    silent = write_audio(home / "carol3.wav", np.zeros(32000, np.float32))
    before = snapshot(home)
    for name in ("carol", "alice"):
        assert_error(cli("enroll", name, *good, silent), "carol3.wav", "silent")
        assert snapshot(home) == before
    # The good clips alone then go in, all of them.
    ok(cli("enroll", "carol", *good))
    assert speakers()["carol"] == 2


@pytest.mark.parametrize(
    ("fmt", "rate", "channels", "kwargs"),
    [
        ("wav", 16000, 1, {"subtype": "PCM_16"}),
        ("flac", 44100, 2, {}),
        ("ogg", 48000, 1, {"format": "OGG", "subtype": "VORBIS"}),
        ("wav", 8000, 1, {"subtype": "PCM_16"}),
    ],
    ids=["wav-16k", "flac-44k1-stereo", "ogg-48k", "wav-8k"],
)
def test_every_format_and_rate_enrolls_and_identifies(
    home: Path, fmt: str, rate: int, channels: int, kwargs: dict[str, Any]
) -> None:
    samples = voice(170, 2.0, rate, seed=31)
    if channels > 1:
        samples = np.stack([samples, 0.5 * samples], axis=1)
    path = write_audio(home / f"dora.{fmt}", samples, rate, **kwargs)
    ok(cli("enroll", "dora", path))
    shown = as_json(cli("show", "dora", "--json"))
    assert [u["source"] for u in shown["utterances"]] == [str(path)]
    # Decoded, down-mixed and resampled to 16 kHz without changing its length.
    assert shown["utterances"][0]["duration_s"] == pytest.approx(2.0, abs=0.01)
    (result,) = as_json(cli("identify", path, "--json"))
    assert result["speaker"] == "dora"
    assert result["best"]["score"] == pytest.approx(1.0, abs=1e-4)


# -- enroll-batch ----------------------------------------------------------


def write_manifest(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def batch(home: Path) -> Path:
    """batch/people.csv: 3 good clips (2 speakers), 4 bad rows; clips relative to the CSV."""
    clips = home / "batch" / "clips"
    clips.mkdir(parents=True)
    write_audio(clips / "carol1.wav", voice(150, seed=11))
    write_audio(clips / "carol2.flac", voice(152, seed=12), 44100)
    dave = write_audio(clips / "dave1.ogg", voice(230, seed=13), 48000)
    write_audio(clips / "silent.wav", np.zeros(32000, np.float32))
    rows = [
        {"note": "first", "speaker": "carol", "path": "clips/carol1.wav"},
        {"note": "", "speaker": "carol", "path": "clips/carol2.flac"},
        {"note": "absolute", "speaker": "dave", "path": str(dave)},
        {"note": "quiet", "speaker": "dave", "path": "clips/silent.wav"},
        {"note": "", "speaker": "erin", "path": "clips/missing.wav"},
        {"note": "", "speaker": "alice", "path": str(home / "alice1.wav")},
        {"note": "no name", "speaker": " ", "path": "clips/carol1.wav"},
    ]
    return write_manifest(home / "batch" / "people.csv", ["note", "speaker", "path"], rows)


def test_enroll_batch_reports_failures_and_enrolls_the_rest(home: Path, batch: Path) -> None:
    result = cli("enroll-batch", "batch/people.csv")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stdout.strip().splitlines()
    reasons = {
        "silent.wav": "silent",
        "missing.wav": "no such file",
        "carol1.wav": "name is empty",
    }
    for name, reason in reasons.items():
        assert any(name in line and reason in line for line in lines), (name, result.stdout)
    failed = [line for line in lines[:-1] if not line.startswith("skipped: ")]
    for line in failed:  # each failure names its file once, not twice
        assert line.startswith("failed: ") and line.count(".wav") == 1, line
    # alice1.wav is alice's already: skipped, not a failure, so that a rerun is harmless.
    assert [line for line in lines if "alice1.wav" in line] == [
        f"skipped: {home / 'alice1.wav'} (enrolled already for 'alice')"
    ]
    assert "enrolled 3 clip(s)" in lines[-1]
    assert "3 clip(s) failed; 1 enrolled already, skipped" in lines[-1]
    assert speakers() == {"alice": 2, "bob": 1, "carol": 2, "dave": 1}


def test_enroll_batch_json(home: Path, batch: Path) -> None:
    report = as_json(cli("enroll-batch", batch, "--json"), code=1)
    enrolled = {e["speaker"]["name"]: len(e["added"]) for e in report["enrollments"]}
    assert enrolled == {"carol": 2, "dave": 1}
    failed = {Path(f["source"]).name: f["reason"] for f in report["failures"]}
    assert set(failed) == {"silent.wav", "missing.wav", "carol1.wav"}
    assert [Path(f["source"]).name for f in report["skipped"]] == ["alice1.wav"]
    assert "silent" in failed["silent.wav"]


def test_enroll_batch_exits_0_when_every_clip_is_enrolled(home: Path) -> None:
    write_audio(home / "erin.wav", voice(180, seed=40))
    manifest = write_manifest(
        home / "ok.csv",
        ["speaker_id", "path", "lang"],
        [{"speaker_id": "erin", "path": "erin.wav"}],
    )
    result = ok(cli("enroll-batch", manifest))
    assert "0 clip(s) failed" in result.stdout
    assert speakers()["erin"] == 1


def test_enroll_batch_run_again_skips_what_it_enrolled(home: Path) -> None:
    names = ("erin", "erin", "erin", "erin", "erin", "fay")
    for k, name in enumerate(names):
        write_audio(home / f"{name}{k}.wav", voice(170 + 5 * k, seed=41 + k))
    rows = [{"speaker": n, "path": f"{n}{k}.wav"} for k, n in enumerate(names)]
    manifest = write_manifest(home / "again.csv", ["speaker", "path"], rows)
    ok(cli("enroll-batch", manifest))
    result = ok(cli("enroll-batch", manifest))
    assert "enrolled 0 clip(s) for 0 speaker(s) (0 new); 0 clip(s) failed; 6 enrolled" in (
        result.stdout
    )
    # In the manifest's order, as a user reads them against it (they came in hash order).
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped: ")]
    assert skipped == [
        f"skipped: {home / row['path']} (enrolled already for {row['speaker']!r})" for row in rows
    ]
    assert speakers() == {"alice": 2, "bob": 1, "erin": 5, "fay": 1}


def test_enroll_batch_run_again_with_a_bad_clip_fails_partly(home: Path) -> None:
    """A rerun of a manifest whose clips are enrolled but for one that fails: some
    failed (exit 1), not all, since the skipped clips are enrolled."""
    write_audio(home / "ivy1.wav", voice(185, seed=60))
    write_audio(home / "ivy2.wav", voice(187, seed=61))
    rows = [{"speaker": "ivy", "path": "ivy1.wav"}, {"speaker": "ivy", "path": "ivy2.wav"}]
    ok(cli("enroll-batch", write_manifest(home / "ivy.csv", ["speaker", "path"], rows)))
    rows.append({"speaker": "ivy", "path": "gone.wav"})
    manifest = write_manifest(home / "ivy.csv", ["speaker", "path"], rows)
    result = cli("enroll-batch", manifest)
    assert result.exit_code == 1, result.output
    assert "1 clip(s) failed; 2 enrolled already, skipped" in result.stdout
    report = as_json(cli("enroll-batch", manifest, "--json"), code=1)
    assert len(report["failures"]) == 1 and len(report["skipped"]) == 2
    # Every clip failing is still an error.
    only_bad = write_manifest(home / "bad.csv", ["speaker", "path"], rows[2:])
    assert cli("enroll-batch", only_bad).exit_code == 2
    assert speakers()["ivy"] == 2


def test_enroll_batch_refuses_one_audio_under_two_speakers(home: Path) -> None:
    write_audio(home / "gil.wav", voice(175, seed=50))
    write_audio(home / "gil2.wav", voice(178, seed=51))
    shutil.copy(home / "gil.wav", home / "copy.wav")
    rows = [
        {"speaker": "gil", "path": "gil.wav"},
        {"speaker": "gil", "path": "gil2.wav"},
        {"speaker": "hal", "path": "copy.wav"},
    ]
    manifest = write_manifest(home / "dup.csv", ["speaker", "path"], rows)
    result = cli("enroll-batch", manifest)
    assert result.exit_code == 1, result.output
    assert f"copy.wav: same audio as {home / 'gil.wav'}" in result.stdout
    assert speakers() == {"alice": 2, "bob": 1, "gil": 2}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "no such manifest"), ("name,file\nerin,erin.wav\n", "'path'")],
    ids=["missing", "wrong-header"],
)
def test_enroll_batch_bad_manifest(home: Path, content: str | None, fragment: str) -> None:
    manifest = home / "people.csv"
    if content is not None:
        manifest.write_text(content)
    before = snapshot(home)
    assert_error(cli("enroll-batch", manifest), "people.csv", fragment)
    assert snapshot(home) == before


# -- identify and verify ---------------------------------------------------


def test_identify_names_the_enrolled_speaker_with_raw_cosine_scores(
    home: Path, tiny_model_dir: Path
) -> None:
    from speakerdb.encoders import HFXVectorEncoder

    result = ok(cli("identify", "bob1.wav", "stranger.wav", "--top-k", "1"))
    assert result.stdout.startswith("bob1.wav: bob")
    doc = as_json(cli("identify", "bob1.wav", "stranger.wav", "--json"))
    assert [r["source"] for r in doc] == ["bob1.wav", "stranger.wav"]
    assert doc[0]["speaker"] == "bob" and doc[0]["accepted"] is True
    assert doc[0]["best"]["score"] == pytest.approx(1.0, abs=1e-4)
    # The scores are the plain cosine with bob's one-clip template, never rescaled.
    encoder = HFXVectorEncoder.load(str(tiny_model_dir))
    bob, stranger = encoder.encode(
        [audio.load_clip("bob1.wav").samples, audio.load_clip("stranger.wav").samples]
    )
    scores = {m["speaker"]: m["score"] for m in doc[1]["matches"]}
    assert scores["bob"] == pytest.approx(float(np.dot(bob, stranger)), abs=1e-5)


def test_identify_top_k(home: Path, clip: Callable[..., Path]) -> None:
    ok(cli("enroll", "carol", clip("carol1.wav", 150, seed=11)))
    (top2,) = as_json(cli("identify", "alice1.wav", "--top-k", "2", "--json"))
    assert len(top2["matches"]) == 2
    assert top2["matches"][0]["speaker"] == "alice"
    (every,) = as_json(cli("identify", "alice1.wav", "-k", "10", "--json"))
    scores = [m["score"] for m in every["matches"]]
    assert {m["speaker"] for m in every["matches"]} == {"alice", "bob", "carol"}
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)
    assert top2["matches"] == every["matches"][:2]
    assert cli("identify", "alice1.wav", "--top-k", "0").exit_code == 2


def test_identify_answers_unknown_below_the_threshold(home: Path) -> None:
    result = ok(cli("identify", "stranger.wav", "--threshold", "0.99999"))
    assert result.stdout.startswith("stranger.wav: unknown")
    (doc,) = as_json(cli("identify", "stranger.wav", "--threshold", "0.99999", "--json"))
    assert doc["speaker"] is None and doc["accepted"] is False
    assert doc["threshold"] == 0.99999
    assert doc["best"]["speaker"] in {"alice", "bob"}
    assert doc["best"]["score"] < 0.99999


def test_identify_on_an_empty_database_says_unknown(
    tmp_path: Path, tiny_model_dir: Path, store: Stores
) -> None:
    path = write_audio(tmp_path / "x.wav", voice(150))
    db = store(tmp_path / "empty.db")
    new_database(db)
    (doc,) = as_json(cli("identify", path, "--db", db, "--model", tiny_model_dir, "--json"))
    assert doc["speaker"] is None and doc["matches"] == []


@pytest.mark.parametrize("command", [["list"], ["info"], ["identify", "x.wav"], ["show", "a"]])
def test_read_only_commands_do_not_create_a_mistyped_database(
    tmp_path: Path, command: list[str], store: Stores
) -> None:
    typo = store(tmp_path / "typo.db")
    result = cli(*command, "--db", typo)
    assert result.exit_code == 2
    assert f"{typo}: no such database" in result.stderr
    assert not store.exists(typo)


def test_replay_window_is_shown_as_info_shows_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPEAKERDB_REPLAY_WINDOW")
    assert ok(cli("replay-window", "5m")).stdout == "replay window 5 min (database)\n"
    assert "replay window      5 min (database)" in ok(cli("info")).stdout
    assert ok(cli("replay-window", "90")).stdout == "replay window 90 s (database)\n"
    off = ok(cli("replay-window", "0")).stdout
    assert off == "replay window off (enrolled clips are still checked) (database)\n"


@pytest.mark.file_store("a database file in a folder that does not exist")
def test_a_database_in_a_missing_folder_is_refused_naming_the_fix(home: Path) -> None:
    folder = home / "no" / "such"
    result = cli("enroll", "carol", "alice1.wav", "--db", folder / "s.db")
    assert_error(result, f"folder {folder} does not exist; create it first (`mkdir -p {folder}`)")
    assert not (home / "no").exists()


def test_identify_reports_each_bad_clip_and_answers_the_others(home: Path) -> None:
    result = cli("identify", "alice1.wav", "nowhere.wav")
    assert result.exit_code == 1, result.output
    assert "alice1.wav: alice" in result.stdout
    assert result.stderr.strip() == "speakerdb: error: nowhere.wav: no such file"
    doc = as_json(cli("identify", "alice1.wav", "nowhere.wav", "--json"), code=1)
    assert doc[0]["speaker"] == "alice"
    error = {"type": "AudioError", "message": "nowhere.wav: no such file"}
    assert doc[1] == {"source": "nowhere.wav", "error": error}
    # `-` is the shell's stdin, not a file that is missing: it says so.
    assert_error(cli("verify", "alice", "-"), "-: standard input is not read (a pipe)")


def test_verify_exit_codes(home: Path) -> None:
    accepted = ok(cli("verify", "alice", "alice1.wav"))
    assert accepted.stdout.startswith("accepted")
    rejected = cli("verify", "alice", "stranger.wav", "--threshold", "0.99999")
    assert rejected.exit_code == 1 and rejected.stdout.startswith("rejected")
    doc = as_json(cli("verify", "bob", "bob1.wav", "--json"))
    assert doc["accepted"] is True and doc["speaker"] == "bob"
    assert doc["score"] == pytest.approx(1.0, abs=1e-4)
    doc = as_json(cli("verify", "bob", "stranger.wav", "--threshold", "0.99999", "--json"), 1)
    assert doc["accepted"] is False and doc["score"] < 0.99999
    assert_error(cli("verify", "zoe", "alice1.wav"), "zoe")


def test_version() -> None:
    assert ok(cli("--version")).stdout.strip().startswith("speakerdb ")


def test_enroll_batch_shows_quality_warnings(home: Path) -> None:
    write_audio(home / "short.wav", voice(190, 0.8, seed=60))  # under 1 s of speech
    manifest = write_manifest(
        home / "w.csv", ["speaker", "path"], [{"speaker": "kim", "path": "short.wav"}]
    )
    result = ok(cli("enroll-batch", manifest))
    assert "speakerdb: warning: " in result.stderr and "short.wav" in result.stderr


def test_missing_model_folder_is_named(home: Path, store: Stores) -> None:
    new = store(home / "new.db")
    result = cli("enroll", "kim", "alice1.wav", "--model", "./no-such-model", "--db", new)
    assert_error(result, "no such model folder")
    assert not store.exists(new)


def test_backend_flag(home: Path) -> None:
    onnx = as_json(cli("verify", "alice", "alice1.wav", "--json"))
    torch = as_json(cli("verify", "alice", "alice1.wav", "--backend", "torch", "--json"))
    assert torch["score"] == pytest.approx(onnx["score"], abs=1e-5)
    assert_error(cli("verify", "alice", "alice1.wav", "--backend", "cuda"), "backend")


def test_threshold_flag_applies_to_the_score_that_decides(home: Path) -> None:
    ok(cli("score-norm", "margin"))
    ok(cli("set-threshold", "0.95", "--score-norm", "margin"))
    doc = as_json(cli("verify", "alice", "alice1.wav", "--json"))
    assert (doc["score_norm"], doc["threshold"]) == ("margin", 0.95)
    # --threshold is the margin's threshold here, not silently dropped.
    doc = as_json(cli("verify", "alice", "alice1.wav", "--threshold", "0.9", "--json"))
    assert (doc["score_norm"], doc["threshold"]) == ("margin", 0.9)
    doc = as_json(cli("verify", "alice", "alice1.wav", "--threshold", "1.5", "--json"), 1)
    assert (doc["threshold"], doc["accepted"]) == (1.5, False)
    (doc,) = as_json(cli("identify", "alice1.wav", "--threshold", "0.85", "--json"))
    assert doc["threshold"] == 0.85
    (doc,) = as_json(cli("identify", "alice1.wav", "--score-norm", "none", "--json"))
    assert doc["threshold"] != 0.85


# -- threshold, database and model options ---------------------------------


def test_threshold_precedence_flag_env_stored_default(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def used(*args: str) -> float:
        (doc,) = as_json(cli("identify", "alice1.wav", "--json", *args))
        return doc["threshold"]

    def source() -> str:
        return as_json(cli("info", "--json"))["threshold_source"]

    assert used() == FALLBACK_THRESHOLD  # the tiny model has no known default
    assert source().startswith("default")
    assert as_json(cli("set-threshold", "0.55", "--json"))["threshold"] == 0.55
    assert used() == 0.55 and source() == "database"
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.65")
    assert used() == 0.65 and source() == "environment"
    assert used("--threshold", "0.75") == 0.75
    # And the decision follows the same order.
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.99999")
    assert cli("verify", "alice", "stranger.wav").exit_code == 1
    assert cli("verify", "alice", "stranger.wav", "--threshold", "-1").exit_code == 0


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["set-threshold", "1.5"], {}, "1.5"),
        (["set-threshold", "nan"], {}, "nan"),
        (["identify", "alice1.wav", "--threshold", "2"], {}, "[-1, 1]"),
        (["identify", "alice1.wav"], {"SPEAKERDB_THRESHOLD": "high"}, "SPEAKERDB_THRESHOLD"),
    ],
    ids=["stored-too-high", "stored-nan", "flag-too-high", "env-not-a-number"],
)
def test_bad_thresholds_are_refused(
    home: Path, args: list[str], env: dict[str, str], fragment: str
) -> None:
    before = snapshot(home)
    assert_error(cli(*args, env=env), fragment)
    assert snapshot(home) == before


@pytest.mark.file_store("./speakers.db, a file in the working folder, is the default store")
def test_db_flag_env_and_default(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert speakers() == {"alice": 2, "bob": 1}  # ./speakers.db by default
    elsewhere = home.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("SPEAKERDB_DB", str(home / "speakers.db"))
    assert speakers() == {"alice": 2, "bob": 1}
    assert Path(as_json(cli("info", "--json"))["path"]) == home / "speakers.db"
    other = elsewhere / "other.db"
    new_database(other)
    assert speakers("--db", other) == {}  # the flag wins over the environment
    assert not (elsewhere / "speakers.db").exists()


def test_model_flag_env_and_stored(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, store: Stores
) -> None:
    path = write_audio(tmp_path / "x.wav", voice(150))
    monkeypatch.setenv("SPEAKERDB_MODEL", str(tiny_model_dir))
    env_db, flag_db = store("env.db"), store("flag.db")
    ok(cli("enroll", "xavier", path, "--db", env_db))
    encoder = as_json(cli("info", "--db", env_db, "--json"))["encoder"]
    assert encoder["model"] == str(tiny_model_dir.resolve())
    assert encoder["dim"] == 24
    # The flag wins over the environment.
    monkeypatch.setenv("SPEAKERDB_MODEL", "resemblyzer")
    ok(cli("enroll", "xavier", path, "--db", flag_db, "--model", tiny_model_dir))
    assert as_json(cli("info", "--db", flag_db, "--json"))["encoder"]["dim"] == 24
    # A database built with one model refuses another, and says which to use ...
    assert_error(cli("identify", path, "--db", flag_db), flag_db, "resemblyzer")
    # ... but commands that embed nothing do not depend on the model.
    assert as_json(cli("info", "--db", flag_db, "--json"))["n_speakers"] == 1
    assert speakers("--db", flag_db) == {"xavier": 1}
    # Without flag or environment, the database's own model is used.
    monkeypatch.delenv("SPEAKERDB_MODEL")
    (doc,) = as_json(cli("identify", path, "--db", flag_db, "--json"))
    assert doc["speaker"] == "xavier"


@pytest.mark.parametrize(
    ("model", "fragment"),
    [("not-a-model", "not a saved x-vector model"), ("nobody/no-such-model", "cache")],
    ids=["empty-folder", "unknown-hub-id"],
)
def test_unloadable_model_is_a_one_line_error(
    tmp_path: Path, model: str, fragment: str, store: Stores
) -> None:
    (tmp_path / "not-a-model").mkdir()
    path = write_audio(tmp_path / "x.wav", voice(150))
    db = store("speakers.db")
    assert_error(cli("enroll", "xavier", path, "--model", model, "--offline", "--db", db), fragment)
    assert not store.exists(db)  # a failed first enroll leaves no empty database


@pytest.mark.parametrize(
    ("flags", "env", "reason"),
    [
        (["--offline"], {}, "offline mode"),
        ([], {"HF_ENDPOINT": "http://127.0.0.1:9"}, "the Hub cannot be reached"),
    ],
    ids=["offline", "hub-unreachable"],
)
def test_first_enroll_without_the_default_model_fails_before_loading_torch(
    tmp_path: Path, flags: list[str], env: dict[str, str], reason: str
) -> None:
    """The default model neither cached nor to be had: the error names the fixes, and comes
    before torch and transformers are imported (they took seconds to say the same)."""
    path = write_audio(tmp_path / "x.wav", voice(150))
    db = tmp_path / "speakers.db"
    environ = subprocess_env(HF_HOME=str(tmp_path / "empty-hf-home"), **env)
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE"):
        environ.pop(name, None)
    args = ["enroll", "xavier", str(path), "--db", str(db), *flags]
    proc, code, loaded = run_probed(args, cwd=tmp_path, env=environ)
    assert code == 2, proc.stderr
    (line,) = [row for row in proc.stderr.splitlines() if row.startswith("speakerdb: ")]
    assert "microsoft/unispeech-sat-base-plus-sv" in line and reason in line, line
    assert "--model resemblyzer" in line and "hf download" in line, line
    assert sorted(loaded & set(HEAVY_MODULES)) == []
    assert not db.exists()


# -- list, show, rename, remove, info, rebuild-index, db upgrade ------------


def test_list_and_show(home: Path) -> None:
    listed = ok(cli("list")).stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["alice", "bob"]
    doc = as_json(cli("show", "alice", "--json"))
    assert doc["speaker"]["name"] == "alice" and doc["speaker"]["n_utterances"] == 2
    sources = [Path(u["source"]).name for u in doc["utterances"]]
    assert sources == ["alice1.wav", "alice2.wav"]
    assert all(len(u["audio_sha256"]) == 64 for u in doc["utterances"])
    text = ok(cli("show", "alice")).stdout
    assert "alice1.wav" in text and "alice2.wav" in text


def test_list_on_a_new_database_says_how_to_enroll(tmp_path: Path, store: Stores) -> None:
    db = store("speakers.db")
    new_database(db)
    result = ok(cli("list", "--db", db))
    assert result.stdout == ""
    assert "speakerdb enroll" in result.stderr
    assert as_json(cli("list", "--json", "--db", db)) == []


def test_rename_keeps_clips_and_voiceprint(home: Path) -> None:
    doc = as_json(cli("rename", "bob", "robert", "--json"))
    assert doc["name"] == "robert" and doc["n_utterances"] == 1
    assert speakers() == {"alice": 2, "robert": 1}
    (result,) = as_json(cli("identify", "bob1.wav", "--json"))
    assert result["speaker"] == "robert"
    assert "renamed robert to bob" in ok(cli("rename", "robert", "bob")).stdout


def test_remove_deletes_speaker_from_database_and_index(home: Path) -> None:
    doc = as_json(cli("remove", "bob", "--json"))
    assert doc["name"] == "bob" and doc["n_utterances"] == 1
    assert speakers() == {"alice": 2}
    (result,) = as_json(cli("identify", "bob1.wav", "-k", "5", "--json"))
    assert [m["speaker"] for m in result["matches"]] == ["alice"]
    # Its clips may be enrolled again afterwards.
    ok(cli("enroll", "bob", "bob1.wav"))
    assert_error(cli("remove", "zoe"), "zoe")


def test_info(home: Path, tiny_model_dir: Path) -> None:
    doc = as_json(cli("info", "--json"))
    assert doc["path"] == str(home_db(home))
    assert doc["encoder"]["model"] == str(tiny_model_dir.resolve())
    assert doc["encoder"]["dim"] == 24
    assert doc["threshold"] == FALLBACK_THRESHOLD
    assert (doc["n_speakers"], doc["n_utterances"]) == (2, 3)
    assert doc["schema_revision"] == SCHEMA_HEAD
    index, state = INDEX_SHOWN[BACKEND]
    assert doc["index_path"].endswith(index) and doc["index_state"].startswith(state)
    text = ok(cli("info")).stdout
    for fact in (str(home_db(home)), str(tiny_model_dir.resolve()), "24", SCHEMA_HEAD, state):
        assert fact in text


#: What ``info`` says of the index on each backend: a file beside the database; each
#: process's cache (checked by each query); the table.
INDEX_SHOWN = {
    "sqlite": ("speakers.db.faiss", "up to date"),
    "postgres": ("FAISS cache in each process", "up to date"),
    "pgvector": ("pgvector HNSW (vector) in table speaker_vectors", "up to date"),
}


def test_info_on_a_new_database(tmp_path: Path, store: Stores) -> None:
    db = store("speakers.db")
    new_database(db)
    doc = as_json(cli("info", "--json", "--db", db))
    assert doc["encoder"] is None
    assert (doc["n_speakers"], doc["n_utterances"]) == (0, 0)
    assert doc["schema_revision"] == SCHEMA_HEAD


@pytest.mark.file_store("deletes the index file beside the SQLite file")
def test_rebuild_index(home: Path) -> None:
    index = home / "speakers.db.faiss"
    index.unlink()
    doc = as_json(cli("rebuild-index", "--json"))
    assert doc["speakers"] == 2
    assert Path(doc["index"]).resolve() == index
    assert index.is_file()
    assert as_json(cli("info", "--json"))["index_state"].startswith("up to date")


def test_db_upgrade(home: Path) -> None:
    before = snapshot(home)
    assert as_json(cli("db", "upgrade", "--json")) == {"from": SCHEMA_HEAD, "to": SCHEMA_HEAD}
    assert SCHEMA_HEAD in ok(cli("db", "upgrade")).stdout
    assert snapshot(home) == before


def test_db_upgrade_without_a_database_creates_nothing(tmp_path: Path, store: Stores) -> None:
    nothing = store("nothing.db")
    assert_error(cli("db", "upgrade", "--db", nothing), nothing)
    assert not store.exists(nothing)


# -- --json everywhere -----------------------------------------------------


JSON_COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("enroll",): ["enroll", "carol", "carol.wav"],
    ("enroll-batch",): ["enroll-batch", "people.csv"],
    ("identify",): ["identify", "alice1.wav", "stranger.wav"],
    ("verify",): ["verify", "alice", "alice1.wav"],
    ("list",): ["list"],
    ("show",): ["show", "alice"],
    ("rename",): ["rename", "bob", "robert"],
    ("remove",): ["remove", "bob"],
    ("info",): ["info"],
    ("set-threshold",): ["set-threshold", "0.5"],
    ("rebuild-index",): ["rebuild-index"],
    ("index",): ["index", "--kind", "flat"],
    ("db", "upgrade"): ["db", "upgrade"],
    ("remove-utterance",): ["remove-utterance", "1"],
    ("audit", "on"): ["audit", "on", "--retention-days", "7"],
    ("audit", "off"): ["audit", "off"],
    ("audit", "show"): ["audit", "show"],
    ("audit", "clear"): ["audit", "clear"],
    ("score-norm",): ["score-norm", "margin"],
    ("meta",): ["meta", "alice", "--id", "E1", "--attr", "team=night"],
    ("backup",): ["backup", "copy.db"],
    ("opt-out",): ["opt-out", "bob", "--yes"],
    ("expire",): ["expire"],
    ("export",): ["export", "people.sdb"],
    ("key", "create"): ["key", "create", "door"],
    ("key", "list"): ["key", "list"],
    ("cohort", "import"): ["cohort", "import", "people.csv"],
    ("cohort", "list"): ["cohort", "list"],
    ("cohort", "clear"): ["cohort", "clear"],
    ("replay-window",): ["replay-window", "5m"],
    ("countermeasure",): ["countermeasure", "bandwidth"],
    ("group", "add"): ["group", "add", "door", "alice"],
    ("group", "list"): ["group", "list"],
    ("retention",): ["retention", "--idle-days", "30"],
}
# Need more enrolled data than the home folder has: their JSON is checked in test_evaluate_cli.py
# (model export's, which needs a model to export, in test_model_export.py).
# (key revoke's, which needs a key to revoke, in test_keys.py).
# import needs an archive: its JSON is checked in test_archive.py.
JSON_ELSEWHERE = {
    ("calibrate",),
    ("evaluate",),
    ("model", "export"),
    ("key", "revoke"),
    ("import",),
    ("reembed",),  # needs audio kept with --keep-audio and a second model: test_reembed.py
    ("segments",),  # needs a recording and the GE2E encoder: test_segments_cli.py
    ("group", "remove"),  # need a group: test_groups.py
    ("group", "delete"),
}


def test_every_command_that_prints_results_takes_json() -> None:
    with_json = {
        path
        for path in command_paths()
        if any("--json" in p.opts for p in find_command(path).params)
    }
    assert with_json == set(JSON_COMMANDS) | JSON_ELSEWHERE


#: A server is backed up by its own tools (``backup`` says: pg_dump).
BACKUP_FILE = pytest.mark.file_store("backup writes a copy of the SQLite file")


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=BACKUP_FILE) if p == ("backup",) else p for p in JSON_COMMANDS],
    ids=" ".join,
)
def test_json_output_is_exactly_one_document(home: Path, path: tuple[str, ...]) -> None:
    write_audio(home / "carol.wav", voice(150, seed=11))
    write_manifest(
        home / "people.csv", ["speaker", "path"], [{"speaker": "c", "path": "carol.wav"}]
    )
    result = cli(*JSON_COMMANDS[path], "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # raises on anything else on stdout
    assert result.stdout.endswith("}\n") or result.stdout.endswith("]\n")


# -- bad input: one line, no traceback, the database unchanged ---------------


def _missing(folder: Path) -> tuple[Path, str]:
    return folder / "nobody.wav", "no such file"


def _directory(folder: Path) -> tuple[Path, str]:
    path = folder / "recordings.wav"
    path.mkdir()
    return path, "directory"


def _not_audio(folder: Path) -> tuple[Path, str]:
    path = folder / "notes.wav"
    path.write_text("these are meeting notes, not audio\n" * 50)
    return path, "it is damaged or not WAV, FLAC, OGG or MP3: convert it"


def _cut_in_header(folder: Path) -> tuple[Path, str]:
    path = write_audio(folder / "cut.wav", voice(150))
    path.write_bytes(path.read_bytes()[:20])
    return path, "not a readable audio file"


def _truncated_flac(folder: Path) -> tuple[Path, str]:
    path = write_audio(folder / "cut.flac", voice(150))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "not a readable audio file"


def _corrupt_ogg(folder: Path) -> tuple[Path, str]:
    path = write_audio(folder / "bad.ogg", voice(150), format="OGG", subtype="VORBIS")
    data = bytearray(path.read_bytes())
    data[60:] = np.random.default_rng(0).integers(0, 256, len(data) - 60, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path, "bad.ogg: "


def _no_samples(folder: Path) -> tuple[Path, str]:
    return write_audio(folder / "empty.wav", np.zeros(0, np.float32)), "no samples"


def _silence(folder: Path) -> tuple[Path, str]:
    return write_audio(folder / "quiet.wav", np.zeros(32000, np.float32)), "silent"


def _nan(folder: Path) -> tuple[Path, str]:
    samples = voice(150)
    samples[1000:1010] = np.nan
    return write_audio(folder / "nan.wav", samples, subtype="FLOAT"), "NaN"


def _inf(folder: Path) -> tuple[Path, str]:
    samples = voice(150)
    samples[5] = np.inf
    return write_audio(folder / "inf.wav", samples, subtype="FLOAT"), "infinite"


def _too_short(folder: Path) -> tuple[Path, str]:
    seconds = audio.MIN_DURATION_S * 0.6
    return write_audio(folder / "short.wav", voice(150, seconds)), "needed; record a longer"


BAD_CLIPS = [
    _missing,
    _directory,
    _not_audio,
    _cut_in_header,
    _truncated_flac,
    _corrupt_ogg,
    _no_samples,
    _silence,
    _nan,
    _inf,
    _too_short,
]
BAD_CLIP_COMMANDS = {
    "enroll-new": ["enroll", "carol", "good.wav"],
    "enroll-existing": ["enroll", "alice", "good.wav"],
    "identify": ["identify"],
    "verify": ["verify", "alice"],
}


@pytest.mark.parametrize("make_bad", BAD_CLIPS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("command", list(BAD_CLIP_COMMANDS))
def test_bad_clip(
    home: Path, clip: Callable[..., Path], command: str, make_bad: Callable[[Path], Any]
) -> None:
    clip("good.wav", 150, seed=11)
    bad, reason = make_bad(home)
    before = snapshot(home)
    assert_error(cli(*BAD_CLIP_COMMANDS[command], bad), bad.name, reason)
    assert snapshot(home) == before


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
        ("eve\x1b[2J", "control characters"),
        ("eve\nmallory", "speaker name 'eve\\nmallory' contains control characters ('\\n')"),
        ("al\u200bice", "control characters"),
    ],
    ids=["empty", "whitespace", "too-long", "escape-sequence", "newline", "zero-width-space"],
)
def test_bad_names_are_refused(
    home: Path, clip: Callable[..., Path], name: str, fragment: str
) -> None:
    good = clip("good.wav", 150, seed=11)
    before = snapshot(home)
    for args in (["enroll", name, good], ["rename", "alice", name]):
        result = cli(*args)
        assert_error(result, "name", fragment)
        assert "\x1b" not in result.stderr  # user input never drives the terminal
        assert snapshot(home) == before


def test_longest_name_and_surrounding_spaces_are_fine(
    home: Path, clip: Callable[..., Path]
) -> None:
    longest = "é" * MAX_NAME_LENGTH
    ok(cli("enroll", f"  {longest} ", clip("good.wav", 150, seed=11)))
    assert speakers()[longest] == 1


def test_the_same_audio_is_never_enrolled_twice(home: Path, clip: Callable[..., Path]) -> None:
    shutil.copy(home / "alice1.wav", home / "copy-of-alice1.wav")
    new = clip("new.wav", 150, seed=11)
    before = snapshot(home)
    again = [
        (["enroll", "carol", new, "copy-of-alice1.wav"], "copy-of-alice1.wav"),
        (["enroll", "carol", new, new], "new.wav"),
    ]
    for args, fragment in again:
        assert_error(cli(*args), fragment)
        assert snapshot(home) == before


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "zoe", "alice1.wav"],
        ["remove", "zoe"],
        ["rename", "zoe", "zack"],
        ["show", "zoe"],
        ["rename", "alice", "bob"],
    ],
    ids=["verify", "remove", "rename", "show", "rename-onto-existing"],
)
def test_unknown_or_taken_speaker_names(home: Path, args: list[str]) -> None:
    before = snapshot(home)
    assert_error(cli(*args), "zoe" if "zoe" in args else "bob")
    assert snapshot(home) == before


def _random_bytes(path: Path) -> str:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 8192, np.uint8).tobytes())
    return "not an SQLite database"


def _foreign_sqlite(path: Path) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.commit()
    con.close()
    return "not a speakerdb one"


DB_COMMANDS = [
    ["list"],
    ["info"],
    ["show", "alice"],
    ["enroll", "alice", "good.wav"],
    ["identify", "good.wav"],
    ["verify", "alice", "good.wav"],
    ["rename", "alice", "alicia"],
    ["remove", "alice"],
    ["set-threshold", "0.5"],
    ["rebuild-index"],
    ["db", "upgrade"],
]


@pytest.mark.file_store("the database is a file of random bytes or another program's SQLite")
@pytest.mark.parametrize("make_db", [_random_bytes, _foreign_sqlite], ids=["random", "foreign"])
@pytest.mark.parametrize("args", DB_COMMANDS, ids=" ".join)
def test_unusable_database_file_is_refused_and_left_alone(
    tmp_path: Path, tiny_model_dir: Path, args: list[str], make_db: Callable[[Path], str]
) -> None:
    write_audio(tmp_path / "good.wav", voice(150))
    db = tmp_path / "other.db"
    fragment = make_db(db)
    content = db.read_bytes()
    assert_error(cli(*args, "--db", db), "other.db", fragment)
    assert db.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.wav", "other.db"]


# -- the index file --------------------------------------------------------


def _delete(index: Path) -> None:
    index.unlink()


def _scramble(index: Path) -> None:
    index.write_bytes(np.random.default_rng(2).integers(0, 256, 4096, np.uint8).tobytes())


def _truncate(index: Path) -> None:
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 2])


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
@pytest.mark.parametrize("damage", [_delete, _scramble, _truncate], ids=lambda f: f.__name__[1:])
def test_damaged_index_is_rebuilt_and_results_stay_right(
    home: Path, damage: Callable[[Path], None]
) -> None:
    index = home / "speakers.db.faiss"
    damage(index)
    assert "rebuilt" in as_json(cli("info", "--json"))["index_state"]
    doc = as_json(cli("identify", "alice1.wav", "bob1.wav", "--json"))
    assert [r["speaker"] for r in doc] == ["alice", "bob"]
    assert doc[1]["best"]["score"] == pytest.approx(1.0, abs=1e-4)  # bob's only clip
    assert index.is_file()
    assert as_json(cli("info", "--json"))["index_state"].startswith("up to date")


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
def test_stale_index_is_rebuilt(home: Path, clip: Callable[..., Path]) -> None:
    index = home / "speakers.db.faiss"
    old = index.read_bytes()
    carol = clip("carol1.wav", 150, seed=11)
    ok(cli("enroll", "carol", carol))
    index.write_bytes(old)  # e.g. restored from an older backup
    assert "stale" in as_json(cli("info", "--json"))["index_state"]
    (doc,) = as_json(cli("identify", carol, "--json"))
    assert doc["speaker"] == "carol"


@pytest.mark.slow
@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
def test_missing_index_notice_in_a_real_process(home: Path) -> None:
    (home / "speakers.db.faiss").unlink()
    proc = run_speakerdb("identify", "alice1.wav", "bob1.wav", "--json", cwd=home)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [r["speaker"] for r in json.loads(proc.stdout)] == ["alice", "bob"]
    notice = [line for line in proc.stderr.splitlines() if "speakers.db.faiss" in line]
    assert notice and "rebuild" in notice[0], proc.stderr
    assert (home / "speakers.db.faiss").is_file()


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
def test_corrupt_index_notice_in_a_real_process(home: Path) -> None:
    _scramble(home / "speakers.db.faiss")
    proc = run_speakerdb("remove", "bob", "--json", cwd=home)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["name"] == "bob"
    notice = [line for line in proc.stderr.splitlines() if "speakers.db.faiss" in line]
    assert notice and "rebuild" in notice[0], proc.stderr
    (doc,) = as_json(cli("identify", "alice1.wav", "--json"))
    assert [m["speaker"] for m in doc["matches"]] == ["alice"]


# -- real processes: exit status and stderr --------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["enroll", "carol", "nan.wav"], "nan.wav"),
        (["verify", "zoe", "alice1.wav"], "zoe"),
        (["enroll", "eve\x1b[31m", "alice2.wav"], "control characters"),
        pytest.param(
            ["list", "--db", "random.db"],
            "random.db",
            marks=pytest.mark.file_store("the database is a file of random bytes"),
        ),
    ],
    ids=["nan-clip", "unknown-speaker", "escape-in-name", "corrupt-db"],
)
def test_errors_in_a_real_process(home: Path, args: list[str], fragment: str) -> None:
    _nan(home)
    _random_bytes(home / "random.db")
    before = snapshot(home)
    proc = run_speakerdb(*args, cwd=home)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speakerdb: error: "), proc.stderr
    assert fragment in lines[0]
    assert "\x1b" not in proc.stderr
    assert snapshot(home) == before


# -- help, README, and what --help imports ---------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    command = find_command(path)
    summary = (command.help or "").strip()
    assert summary, f"`speakerdb {' '.join(path)}` has no help text"
    for param in command.params:
        assert getattr(param, "help", None), f"{' '.join(path)}: {param.name} has no help"
    result = ok(cli(*path, "--help"))
    assert " ".join(summary.split()[:4]) in " ".join(result.stdout.split())
    # Placeholders read as the help text names them (NAME, CLIP...), not as click's
    # types (<str>) or typer's lower-case parameter names ({name}).
    assert not re.search(r"<(str|path|int|float|text)>|\{[a-z_]+\}", result.stdout), result.stdout


def test_top_level_help_lists_every_command() -> None:
    text = ok(cli("--help")).stdout
    for path in command_paths():
        assert path[0] in text
    assert "Database maintenance" in ok(cli("db", "--help")).stdout


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        " ".join(path)
        for path in command_paths()
        if not re.search(rf"(speakerdb +|`){re.escape(' '.join(path))}\b", readme)
    ]
    assert not missing, f"README.md does not show: {', '.join(missing)}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--help"], "enroll"), (["list"], "alice")],
    ids=["help", "list"],
)
def test_light_commands_import_no_torch_transformers_or_faiss(
    home: Path, args: list[str], expected: str
) -> None:
    proc, code, loaded = run_probed(args, cwd=home, env=subprocess_env())
    assert code in (0, None), proc.stderr
    assert expected in proc.stdout
    heavy = sorted(loaded & set(HEAVY_MODULES))
    assert heavy == [], f"speakerdb {' '.join(args)} imported {heavy}"


# -- real speech, with the pretrained GE2E encoder ---------------------------


REAL_SPEAKERS = ("asterisk-allison", "asterisk-carlo-it", "fillets-nl-big")
STRANGER = "asterisk-armelle-fr"  # never enrolled


def held_out_clip(corpus: Path, speaker: str) -> str:
    rows = read_rows(corpus / "protocol" / "test.csv")
    return next(
        r["path"] for r in rows if r["speaker_id"] == speaker and 2 < float(r["duration_s"]) < 4
    )


@pytest.mark.slow
def test_real_voices_are_identified_and_strangers_are_not(
    corpus: Path, tmp_path: Path, store: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("the GE2E weights ship in the resemblyzer wheel, which is not installed")
    if ON_SERVER:
        monkeypatch.setenv("SPEAKERDB_DB", str(store("speakers.db")))
    # Enroll 2 clips of each of 3 real voices, from a manifest in the corpus's own format.
    rows = read_rows(corpus / "protocol" / "enroll.csv")
    chosen = [r for s in REAL_SPEAKERS for r in [x for x in rows if x["speaker_id"] == s][:2]]
    manifest = write_manifest(tmp_path / "enroll.csv", list(chosen[0]), chosen)
    ok(cli("enroll-batch", manifest, "--model", "resemblyzer"))
    assert speakers() == dict.fromkeys(REAL_SPEAKERS, 2)

    clips = [held_out_clip(corpus, s) for s in (*REAL_SPEAKERS, STRANGER)]
    doc = as_json(cli("identify", *clips, "--top-k", "3", "--json"))
    assert [r["best"]["speaker"] for r in doc[:3]] == list(REAL_SPEAKERS)
    # Accepted at the default threshold, with a clear margin over the runner-up.
    assert [r["speaker"] for r in doc[:3]] == list(REAL_SPEAKERS)
    for result in doc[:3]:
        first, second = (m["score"] for m in result["matches"][:2])
        assert first > second + 0.1
    # GE2E databases decide by margin-duration scores unless told otherwise.
    assert {r["score_norm"] for r in doc} == {"margin-duration"}
    assert doc[3]["speaker"] is None and doc[3]["best"]["normalized"] < doc[3]["threshold"]
    assert "decides by         margin-duration scores" in ok(cli("info")).stdout
    # Someone claiming to be allison with carlo's voice is turned away.
    impostor = cli("verify", "asterisk-allison", clips[1])
    assert impostor.exit_code == 1 and impostor.stdout.startswith("rejected")
    # A bare threshold is not quietly read as a cosine: both fixes are named.
    refused = cli("set-threshold", "0.75")
    assert refused.exit_code == 2 and "--score-norm none" in refused.stderr
    # A cosine threshold named as one: the database then decides by cosine, and says so.
    assert (
        "now decide by raw cosine, not margin-duration scores"
        in ok(cli("set-threshold", "0.75", "--score-norm", "none")).stdout
    )
    doc = as_json(cli("identify", *clips, "--json"))
    assert {r["score_norm"] for r in doc} == {"none"} and doc[0]["threshold"] == 0.75
    assert [r["speaker"] for r in doc] == [*REAL_SPEAKERS, None]


@pytest.mark.slow
def test_a_plain_calibrate_clears_a_lenient_threshold_that_let_a_stranger_in(
    corpus: Path, tmp_path: Path, store: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real voices: a lenient threshold stored earlier names a stranger; a plain calibrate
    on 3 speakers keeps the defaults (too few voices to calibrate), removes the stored
    thresholds, and the stranger is refused again. SPEAKERDB_THRESHOLD still outranks the
    database, and calibrate says so."""
    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("the GE2E weights ship in the resemblyzer wheel, which is not installed")
    monkeypatch.delenv("SPEAKERDB_THRESHOLD", raising=False)
    monkeypatch.setenv("SPEAKERDB_DB", str(store(tmp_path / "speakers.db")))
    rows = read_rows(corpus / "protocol" / "enroll.csv")
    chosen = [r for s in REAL_SPEAKERS for r in [x for x in rows if x["speaker_id"] == s][:2]]
    manifest = write_manifest(tmp_path / "enroll.csv", list(chosen[0]), chosen)
    ok(cli("enroll-batch", manifest, "--model", "resemblyzer"))
    stranger = held_out_clip(corpus, STRANGER)

    def identified() -> dict[str, Any]:
        (doc,) = as_json(cli("identify", stranger, "--json"))
        return doc

    refused = identified()
    assert refused["speaker"] is None and refused["policy"]["source"] == "default for resemblyzer"
    lenient = round(refused["best"]["normalized"] - 0.05, 4)
    ok(cli("set-threshold", lenient, "--score-norm", "margin-duration"))
    assert identified()["speaker"] is not None  # the lenient threshold lets the stranger in
    said = ok(cli("calibrate"))
    assert said.stdout.startswith("kept the default (nothing stored)")
    assert f"cleared the identify threshold stored earlier, {lenient:.4f}" in said.stdout
    assert f"cleared the verify threshold stored earlier, {lenient:.4f}" in said.stdout
    assert "notice" not in said.stderr
    shown = as_json(cli("info", "--json"))
    assert shown["stored_thresholds"] == [] and shown["score_norm"] == "margin-duration"
    assert {t["source"] for t in shown["thresholds"].values()} == {"default for resemblyzer"}
    after = identified()
    assert after["speaker"] is None and after["threshold"] > lenient
    # A threshold in the environment outranks the database: calibrate clears the stored one
    # all the same, and says the environment's still decides.
    ok(cli("set-threshold", lenient, "--score-norm", "margin-duration"))
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", str(lenient))
    doc = cli("calibrate", "--json")
    calibration = as_json(doc)["calibration"]
    assert [c["operation"] for c in calibration["cleared"]] == ["identify", "verify"]
    assert [o["source"] for o in calibration["overridden"]] == ["environment"] * 2
    assert "SPEAKERDB_THRESHOLD outranks the database" in doc.stderr
    assert identified()["speaker"] is not None
    monkeypatch.delenv("SPEAKERDB_THRESHOLD")
    assert identified()["speaker"] is None


# -- one serialisation -----------------------------------------------------


def test_json_is_each_results_to_dict(home: Path, clip: Callable[..., Path]) -> None:
    """``--json`` writes the results' own ``to_dict()``: the document every front end shares."""
    from speakerdb import Enrollment, QualityIssue

    enrolled = as_json(cli("enroll", "carol", clip("carol1.wav", 150, seed=11), "--json"))
    ok(cli("audit", "on"))
    (identified,) = as_json(cli("identify", "stranger.wav", "--json"))
    verified = as_json(cli("verify", "bob", "bob1.wav", "--json"))
    with SpeakerDB(os.environ["SPEAKERDB_DB"] if ON_SERVER else "speakers.db") as db:
        carol = next(s for s in db.speakers() if s.name == "carol")
        issues = tuple(QualityIssue(**issue) for issue in enrolled["issues"])
        added = tuple(db.utterances("carol"))
        again = Enrollment(carol, added, True, issues, notice=enrolled["notice"])
        assert enrolled == again.to_dict()
        assert identified == db.identify("stranger.wav").to_dict()
        assert verified == db.verify("bob", "bob1.wav").to_dict()
        assert as_json(cli("list", "--json")) == [s.to_dict() for s in db.speakers()]
        shown = as_json(cli("show", "carol", "--json"))
        assert shown["utterances"] == [u.to_dict() for u in db.utterances("carol")]
        assert as_json(cli("info", "--json")) == db.info().to_dict()
        audit = as_json(cli("audit", "show", "--json"))
        assert audit["settings"] == db.audit.settings().to_dict()
        assert audit["entries"] == [e.to_dict() for e in db.audit.entries(limit=20)]


def test_an_errors_exit_code_is_its_own(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI keeps no table of its own: the error class says how the command exits."""
    from speakerdb import SpeakerNotFound

    assert_error(cli("show", "nobody"), "no speaker named 'nobody'", code=2)
    monkeypatch.setattr(SpeakerNotFound, "exit_code", 3)
    assert_error(cli("show", "nobody"), "no speaker named 'nobody'", code=3)
