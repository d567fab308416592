"""Voiceprints of whole clips after the upgrade to spoken parts: a database enrolled by a
speakerdb that embedded whole clips says so (``info``, a warning on its first query) and
``speakerdb reembed`` with its own model brings it up to date from the kept audio.

The old database is made through the public API as an older speakerdb made it: each
clip given as a :class:`~speakerdb.Clip` with ``spoken_margin_s=None`` is embedded whole
and stored as such (what migration 0012 marks every earlier clip). Its clips are real
WAV files with quiet room noise either side of the words, as a door's fixed recording
window gives (0.6 s: the fake encoder hears a clip's first 0.256 s, which is then noise
in a whole clip, and noise and words in its spoken part).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import Clip, InputError, ModelMismatch, SpeakerDB
from speakerdb.audio import SPOKEN_MARGIN_S, load_clip
from speakerdb.cli import app

KEY = "0123456789abcdef0123456789abcdef-test-key"
PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0, "dave": 2300.0, "erin": 600.0}
#: Seconds of room noise (white, -60 dBFS RMS) either side of each clip's words.
PAD_S = 0.6


def write(folder: Path, name: str, seed: int) -> Path:
    noise = np.random.default_rng(seed).standard_normal((2, int(PAD_S * 16000))) * 1e-3
    words = voice(PITCHES[name], 1.5 + 0.1 * seed, 16000, seed)
    path = folder / f"{name}{seed}.wav"
    sf.write(path, np.concatenate([noise[0], words, noise[1]]).astype(np.float32), 16000)
    return path


def as_before(path: Path) -> Clip:
    """The clip as a speakerdb before the spoken part embedded it: whole."""
    return dataclasses.replace(load_clip(path), spoken_margin_s=None)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, list[Path]]:
    folder = tmp_path / "audio"
    folder.mkdir()
    return {n: [write(folder, n, s) for s in (1, 2)] for n in ("alice", "bob", "carol")}


@pytest.fixture
def old(tmp_path: Path, files: dict[str, list[Path]]) -> Iterator[Path]:
    """alice and bob enrolled with their audio kept, carol without, all of whole clips;
    dave enrolled after the upgrade (from the words), without his audio kept."""
    path = tmp_path / "old.db"
    with SpeakerDB(path, encoder=FakeEncoder(), audio_key=KEY) as db:
        for name, paths in files.items():
            db.enroll(name, [as_before(p) for p in paths], keep_audio=name != "carol")
        db.enroll("dave", [write(tmp_path, "dave", 5)], external_id="D1", watchlist=True)
    yield path


def test_info_counts_the_speakers_with_voiceprints_of_whole_clips(
    old: Path, files: dict[str, list[Path]]
) -> None:
    with SpeakerDB(old, encoder=FakeEncoder()) as db:
        info = db.info()
        (first, _) = db.utterances("alice")
        assert info.n_whole_clip_speakers == 3
        assert info.whole_clip_notice is not None
        assert "speakerdb reembed --to NEW.db --to-model fake-encoder" in info.whole_clip_notice
        assert "`speakerdb reembed --in-place` (in this database)" in info.whole_clip_notice
        assert first.spoken_margin_s is None
        assert first.duration_s == pytest.approx(load_clip(files["alice"][0]).duration_s)
        added = load_clip(write(files["alice"][0].parent, "alice", 3))
        db.enroll("alice", [added])  # enrolled today: from its words
        db.enroll("erin", [write(files["alice"][0].parent, "bob", 4)])
        (*_, new) = db.utterances("alice")
        assert new.spoken_margin_s == SPOKEN_MARGIN_S
        assert new.duration_s == pytest.approx(added.spoken_s)
        assert new.duration_s < added.duration_s - 0.15
        assert db.info().n_whole_clip_speakers == 3  # alice still holds two whole clips


def test_the_first_query_warns_once(old: Path, files: dict[str, list[Path]], caplog) -> None:
    caplog.set_level(logging.WARNING, logger="speakerdb")
    with SpeakerDB(old, encoder=FakeEncoder()) as db:
        db.identify(files["alice"][0])
        db.verify("bob", files["bob"][0])
    with SpeakerDB(old, encoder=FakeEncoder()) as db:
        db.identify(files["alice"][1])
    warned = [r.getMessage() for r in caplog.records if "whole clips" in r.getMessage()]
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"{old}: 3 speaker(s)") and "--keep-audio" in warned[0]


def test_reembed_with_the_same_model_embeds_the_words(
    old: Path, files: dict[str, list[Path]], tmp_path: Path, caplog
) -> None:
    seen: list[tuple[int, int]] = []
    with SpeakerDB(old, encoder=FakeEncoder(), audio_key=KEY) as db:
        report = db.lifecycle.reembed(
            tmp_path / "new.db", encoder=FakeEncoder(), progress=lambda d, t: seen.append((d, t))
        )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert (report.reembedded, report.copied, report.reenroll, report.n_utterances) == (
        ("alice", "bob"),
        ("dave",),  # up to date already: taken over, not told to enroll again
        ("carol",),
        5,
    )
    with SpeakerDB(old, encoder=FakeEncoder()) as db, db._storage.read() as snapshot:
        dave = (db.utterances("dave"), snapshot.template("dave"))
    fresh = tmp_path / "fresh.db"
    with SpeakerDB(fresh, encoder=FakeEncoder()) as today:  # enrolled as today
        for name in ("alice", "bob"):
            today.enroll(name, files[name])
        with today._storage.read() as snapshot:
            expected = {n: snapshot.template(n) for n in ("alice", "bob")}
    caplog.set_level(logging.WARNING, logger="speakerdb")
    with SpeakerDB(tmp_path / "new.db", encoder=FakeEncoder(), audio_key=KEY) as new:
        assert new.info().n_whole_clip_speakers == 0 and new.info().whole_clip_notice is None
        for name in ("alice", "bob"):
            clips = [load_clip(p) for p in files[name]]
            stored = new.utterances(name)
            assert [u.spoken_margin_s for u in stored] == [SPOKEN_MARGIN_S] * 2
            assert [u.duration_s for u in stored] == pytest.approx([c.spoken_s for c in clips])
            with new._storage.read() as snapshot:
                np.testing.assert_allclose(snapshot.template(name), expected[name], atol=1e-6)
        assert new.identify(files["alice"][0]).speaker == "alice"
        copied = new.speaker("dave")
        assert (copied.external_id, copied.watchlist) == ("D1", True)
        kept = ("source", "audio_sha256", "duration_s", "spoken_margin_s")
        assert [[getattr(u, k) for k in kept] for u in new.utterances("dave")] == [
            [getattr(u, k) for k in kept] for u in dave[0]
        ]
        with new._storage.read() as snapshot:
            np.testing.assert_array_equal(snapshot.template("dave"), dave[1])
        with pytest.raises(InputError, match="every voiceprint from the clips' words"):
            new.lifecycle.reembed(tmp_path / "third.db", encoder=FakeEncoder())
    assert not [r for r in caplog.records if "whole clips" in r.getMessage()]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The command line, on the fake encoder, with no audio key in the environment."""
    monkeypatch.delenv("SPEAKERDB_AUDIO_KEY", raising=False)
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    return CliRunner()


def test_info_and_reembed_on_the_command_line(old: Path, tmp_path: Path, runner: CliRunner) -> None:
    said = runner.invoke(app, ["info", "--db", str(old)])
    assert said.exit_code == 0, said.output
    assert "voiceprints" in said.stdout and "3 speaker(s) have voiceprints" in said.stdout
    assert "speakerdb reembed --to NEW.db --to-model fake-encoder" in said.stdout
    as_json = json.loads(runner.invoke(app, ["info", "--db", str(old), "--json"]).stdout)
    assert as_json["n_whole_clip_speakers"] == 3 and "reembed" in as_json["whole_clip_notice"]
    keyfile = tmp_path / "audio.key"
    keyfile.write_text(KEY + "\n")
    new = tmp_path / "new.db"
    args = ["--to", str(new), "--to-model", "fake-encoder", "--audio-key-file", str(keyfile)]
    done = runner.invoke(app, ["reembed", *args, "--db", str(old)])
    assert done.exit_code == 0, done.output
    assert "must enroll again (no audio kept): carol" in done.stdout
    assert "taken over as they are (from their words already, no audio kept): dave" in done.stdout
    assert "re-embedded 3 speaker(s), 5 clip(s) with fake-encoder" in done.stdout
    after = runner.invoke(app, ["info", "--db", str(new)])
    assert "voiceprints        embedded from the clips' words" in after.stdout
    args[1] = str(tmp_path / "third.db")
    again = runner.invoke(app, ["reembed", *args, "--db", str(new)])
    assert again.exit_code == 2
    assert "every voiceprint from the clips' words; give another model" in again.stderr


def test_an_archive_keeps_how_each_clip_was_embedded(old: Path, tmp_path: Path) -> None:
    archive = tmp_path / "old.sdb"
    with SpeakerDB(old, encoder=FakeEncoder()) as db:
        db.lifecycle.export(archive)
    with SpeakerDB(tmp_path / "copy.db", encoder=FakeEncoder()) as copy:
        copy.lifecycle.import_archive(archive)
        assert copy.info().n_whole_clip_speakers == 3
        assert [u.spoken_margin_s for u in copy.utterances("dave")] == [SPOKEN_MARGIN_S]
        assert [u.spoken_margin_s for u in copy.utterances("carol")] == [None, None]


# -- in place ----------------------------------------------------------------------


def test_reembed_in_place_keeps_everything_but_the_vectors_of_whole_clips(
    old: Path, files: dict[str, list[Path]], tmp_path: Path
) -> None:
    """``lifecycle.reembed_in_place``: alice's and bob's whole clips embedded from their
    words in the database itself, as today's enrollment embeds them, one speaker per
    transaction (a run stopped after alice keeps her; the next one does bob); carol's
    (no audio kept) and erin's unkept clip named; dave (up to date) untouched; the audit
    log, thresholds, keys, clip ids and kept audio stay; a second run does nothing."""
    with SpeakerDB(old, encoder=FakeEncoder(), audio_key=KEY) as db:
        db.enroll("erin", [as_before(write(tmp_path, "erin", 1))], keep_audio=True)
        db.enroll("erin", [as_before(write(tmp_path, "erin", 2))])  # its audio not kept
        db.set_threshold(0.3, score_norm="none")
        db.audit.configure(True)
        db.verify("bob", files["bob"][0])
        db.keys.create("door", "query")
        before = db.info()
        ids = {n: [u.id for u in db.utterances(n)] for n in ("alice", "bob", "dave")}
        with db._storage.read() as snapshot:
            dave = snapshot.template("dave")
    assert before.n_whole_clip_speakers == 4

    def stop_after_alice(done: int, total: int) -> None:
        raise KeyboardInterrupt  # as a kill after the first speaker

    with SpeakerDB(old, encoder=FakeEncoder(), audio_key=KEY) as db:
        with pytest.raises(KeyboardInterrupt):
            db.lifecycle.reembed_in_place(progress=stop_after_alice)
        assert db.info().n_whole_clip_speakers == 3  # alice's change committed
        seen: list[tuple[int, int]] = []
        report = db.lifecycle.reembed_in_place(progress=lambda d, t: seen.append((d, t)))
    assert seen == [(n, 5) for n in range(1, 6)]
    assert report.in_place and report.path == str(old.resolve())
    assert (report.reembedded, report.partial, report.reenroll, report.n_utterances) == (
        ("bob",),
        ("erin",),
        ("carol",),
        3,
    )
    assert (report.copied, report.failed, report.carried, report.not_carried) == ((), {}, (), ())
    with SpeakerDB(tmp_path / "fresh.db", encoder=FakeEncoder()) as today:
        for name in ("alice", "bob"):
            today.enroll(name, files[name])
        with today._storage.read() as snapshot:
            expected = {n: snapshot.template(n) for n in ("alice", "bob")}
    with SpeakerDB(old, encoder=FakeEncoder(), audio_key=KEY) as db:
        after = db.info()
        assert after.n_whole_clip_speakers == 2  # carol, and erin's unkept clip
        assert after.stored_thresholds == before.stored_thresholds
        assert [e.claimed for e in db.audit.entries()] == ["bob"]
        assert [k.name for k in db.keys.list()] == ["door"]
        assert db.lifecycle.kept_audio() == 5
        for name in ("alice", "bob"):
            stored = db.utterances(name)
            assert [u.id for u in stored] == ids[name]
            assert [u.spoken_margin_s for u in stored] == [SPOKEN_MARGIN_S] * 2
            clips = [load_clip(p) for p in files[name]]
            assert [u.duration_s for u in stored] == pytest.approx([c.spoken_s for c in clips])
            with db._storage.read() as snapshot:
                np.testing.assert_allclose(snapshot.template(name), expected[name], atol=1e-6)
        assert [u.spoken_margin_s for u in db.utterances("erin")] == [SPOKEN_MARGIN_S, None]
        assert [u.id for u in db.utterances("dave")] == ids["dave"]
        with db._storage.read() as snapshot:
            np.testing.assert_array_equal(snapshot.template("dave"), dave)
            version = snapshot.version()
        assert db.identify(files["alice"][0]).speaker == "alice"
        again = db.lifecycle.reembed_in_place()
        assert (again.reembedded, again.partial, again.n_utterances) == ((), (), 0)
        assert again.reenroll == ("carol", "erin")
        with db._storage.read() as snapshot:
            assert snapshot.version() == version  # nothing written
        db.remove("carol")
        db.lifecycle.remove_utterance(db.utterances("erin")[1].id)
        assert db.info().n_whole_clip_speakers == 0 and db.info().whole_clip_notice is None
        with pytest.raises(InputError, match="from the clips' words already: nothing to re"):
            db.lifecycle.reembed_in_place()


def test_reembed_in_place_needs_the_audio_key_and_the_database_s_model(
    old: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPEAKERDB_AUDIO_KEY", raising=False)
    with SpeakerDB(old, encoder=FakeEncoder()) as db:
        with pytest.raises(InputError, match="needs a key"):
            db.lifecycle.reembed_in_place()
        assert db.info().n_whole_clip_speakers == 3
    with SpeakerDB(old, encoder=FakeEncoder(), audio_key="another-" + KEY) as db:
        with pytest.raises(InputError, match="under another key"):
            db.lifecycle.reembed_in_place()
    with pytest.raises(ModelMismatch, match="use --model fake-encoder"):  # refused on opening
        with SpeakerDB(old, encoder=FakeEncoder(model="other"), audio_key=KEY) as db:
            db.lifecycle.reembed_in_place()
    with SpeakerDB(old, encoder=FakeEncoder()) as db:
        assert db.info().n_whole_clip_speakers == 3


def test_reembed_in_place_on_the_command_line(old: Path, tmp_path: Path, runner: CliRunner) -> None:
    keyfile = tmp_path / "audio.key"
    keyfile.write_text(KEY + "\n")
    args = ["reembed", "--in-place", "--audio-key-file", str(keyfile), "--db", str(old)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "must enroll again (whole clips, no audio kept; or remove those clips): carol" in (
        done.stdout
    )
    assert "re-embedded in place 4 clip(s) of 2 speaker(s) from their words" in done.stdout
    said = runner.invoke(app, ["info", "--db", str(old), "--json"])
    assert json.loads(said.stdout)["n_whole_clip_speakers"] == 1
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["in_place"], report["n_utterances"], report["reenroll"]) == (
        True,
        0,
        ["carol"],
    )
    mixed = runner.invoke(app, [*args, "--to", str(tmp_path / "new.db")])
    assert mixed.exit_code == 2 and "leave out --to" in mixed.stderr
    neither = runner.invoke(app, ["reembed", "--db", str(old)])
    assert neither.exit_code == 2 and "or --in-place" in neither.stderr
    assert runner.invoke(app, ["remove", "carol", "--db", str(old), "--yes"]).exit_code == 0
    done = runner.invoke(app, args)
    assert done.exit_code == 2
    assert "from the clips' words already: nothing to re-embed in place" in done.stderr


def test_reembed_in_place_fails_a_speaker_whose_kept_audio_was_altered(old: Path) -> None:
    import sqlite3

    with SpeakerDB(old, encoder=FakeEncoder()) as db:
        (bob, _) = db.utterances("bob")
    with closing(sqlite3.connect(old)) as con, con:
        (data,) = con.execute("SELECT data FROM kept_audio WHERE utterance_id = ?", (bob.id,))
        altered = data[0][:-20] + bytes([data[0][-20] ^ 1]) + data[0][-19:]
        con.execute("UPDATE kept_audio SET data = ? WHERE utterance_id = ?", (altered, bob.id))
    with SpeakerDB(old, encoder=FakeEncoder(), audio_key=KEY) as db:
        report = db.lifecycle.reembed_in_place()
        assert list(report.failed) == ["bob"] and "altered" in report.failed["bob"]
        assert report.reembedded == ("alice",)
        assert [u.spoken_margin_s for u in db.utterances("bob")] == [None, None]  # untouched
