"""The cohort of outside voices (speakerdb cohort import/list/clear, db.cohort): stored as
embeddings only, never identified or verified against, AS-norm's cohort and
calibration's strangers."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, fake_cli, voice

from speakerdb import InputError, ModelMismatch, SpeakerDB, SpeakerNotFound
from speakerdb.services import ManifestRow

# Voices far enough apart for the fake encoder.
PEOPLE = {"alice": 110.0, "bob": 1000.0, "carol": 300.0}
OUTSIDERS = {"x1": 180.0, "x2": 520.0, "x3": 750.0}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """speakers.db (alice, bob, carol: 2 clips each), outside voices' clips, cohort.csv."""
    monkeypatch.chdir(tmp_path)
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    with opened(tmp_path) as db:
        for i, (name, pitch) in enumerate(PEOPLE.items()):
            db.enroll(name, [write(tmp_path, f"{name}{k}.wav", pitch, 10 * i + k) for k in (1, 2)])
    rows = [
        {"label": label, "path": write(tmp_path, f"{label}-{k}.wav", pitch, 100 + 10 * i + k).name}
        for i, (label, pitch) in enumerate(OUTSIDERS.items())
        for k in (1, 2)
    ]
    with (tmp_path / "cohort.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["label", "path"])
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def write(folder: Path, name: str, pitch: float, seed: int) -> Path:
    sf.write(folder / name, voice(pitch, 1.5, seed=seed), 16000)
    return folder / name


def opened(home: Path) -> SpeakerDB:
    return SpeakerDB(home / "speakers.db", encoder=FakeEncoder())


def test_import_list_and_clear_through_the_cli(home: Path) -> None:
    said = fake_cli("cohort", "import", "cohort.csv").stdout
    assert said.strip() == "cohort: +6 clip(s); 0 in it already, 0 failed"
    assert fake_cli("cohort", "list").stdout.splitlines() == [
        "x1\t2 clip(s)",
        "x2\t2 clip(s)",
        "x3\t2 clip(s)",
    ]
    # Running it again is harmless: every clip is in the cohort already.
    again = json.loads(fake_cli("cohort", "import", "cohort.csv", "--json").stdout)
    assert again["added"] == 0 and len(again["skipped"]) == 6 and again["failures"] == []
    listed = json.loads(fake_cli("cohort", "list", "--json").stdout)
    assert listed == [{"label": f"x{i}", "n_clips": 2} for i in (1, 2, 3)]
    # Stored as embeddings only: no audio, no file names.
    with sqlite3.connect(home / "speakers.db") as con:
        columns = [c[1] for c in con.execute("PRAGMA table_info(cohort)")]
        assert columns == ["id", "label", "audio_sha256", "duration_s", "embedding", "created_at"]
    assert fake_cli("cohort", "clear", "--yes").stdout.strip() == "removed 6 cohort clip(s)"
    assert fake_cli("cohort", "list").stderr.startswith("no cohort")


def test_bad_rows_are_reported_and_the_others_imported(home: Path) -> None:
    with (home / "more.csv").open("w", newline="") as fh:
        fh.write("speaker,path\n")  # 'speaker' names the label column too
        fh.write("x4,nowhere.wav\n")  # no such file
        fh.write("x5,alice1.wav\n")  # alice's enrolled clip
        fh.write("bob,x1-1.wav\n")  # an enrolled speaker's name
        fh.write("x6,x2-1.wav\n")  # fine
    result = fake_cli("cohort", "import", "more.csv", code=1)
    assert "cohort: +1 clip(s); 0 in it already, 3 failed" in result.stdout
    assert "nowhere.wav: no such file" in result.stderr
    assert (
        "enrolled as 'alice'" in result.stderr and "'bob' is an enrolled speaker" in result.stderr
    )
    fake_cli("cohort", "import", "nothing.csv", code=2)
    with (home / "bad.csv").open("w") as fh:
        fh.write("who,path\nx,y.wav\n")
    assert "'label' and a 'path' column" in fake_cli("cohort", "import", "bad.csv", code=2).stderr


def test_outside_voices_are_never_identified_or_verified_against(home: Path) -> None:
    fake_cli("cohort", "import", "cohort.csv")
    with opened(home) as db:
        found = db.identify(home / "x1-1.wav", top_k=10, threshold=-1.0)
        assert {m.speaker for m in found.matches} == set(PEOPLE)
        with pytest.raises(SpeakerNotFound):
            db.verify("x1", home / "x1-2.wav")
        assert [s.name for s in db.speakers()] == sorted(PEOPLE)
        assert db.info().n_speakers == 3


def test_as_norm_and_calibration_use_the_cohort(home: Path) -> None:
    with opened(home) as db:
        before = db.identify(home / "alice1.wav", score_norm="asnorm").best
        plain = db.calibrate(apply=False)
        assert db.cohort.add("x1", [home / "x1-1.wav", home / "x1-2.wav"]) == 2
        assert db.cohort.add("x1", [home / "x1-1.wav"]) == 0  # held already
        db.cohort.import_rows(
            [_row(label, home / f"{label}-{k}.wav", k) for label in ("x2", "x3") for k in (1, 2)]
        )
        voices = db.cohort.embeddings()
        assert voices.labels.count("x1") == 2 and voices.n_voices == 3 and len(voices) == 6
        after = db.identify(home / "alice1.wav", score_norm="asnorm").best
        assert before is not None and after is not None
        assert before.score == pytest.approx(after.score)  # the raw cosine is the same
        assert before.normalized != pytest.approx(after.normalized)  # its cohort is not
        calibrated = db.calibrate(apply=False)
        # 3 voices of 2 clips each: counted as voices, as the calibration counts them.
        assert "6 clips of 3 cohort voices" in calibrated.source and calibrated.n_cohort == 3
        assert "cohort" not in plain.source
        with pytest.raises(InputError, match="enrolled speaker"):
            db.cohort.add("alice", [home / "x3-1.wav"])
    said = fake_cli("calibrate", "--dry-run").stdout
    assert "from enrollments and 6 clips of 3 cohort voices (" in said


def test_a_first_import_records_the_model(tmp_path: Path) -> None:
    clip = (voice(200.0, 1.5, seed=1), 16000)
    with SpeakerDB(tmp_path / "new.db", encoder=FakeEncoder(model="a")) as db:
        assert db.cohort.add("x", [clip]) == 1
        assert db.info().encoder is not None and db.info().encoder.model == "a"
    with pytest.raises(ModelMismatch):  # its embeddings are of model a
        SpeakerDB(tmp_path / "new.db", encoder=FakeEncoder(model="b"))
    with SpeakerDB(tmp_path / "new.db", encoder=FakeEncoder(model="a")) as db:
        assert np.allclose(np.linalg.norm(db.cohort.embeddings().embeddings, axis=1), 1.0)


def _row(label: str, path: Path, line: int) -> ManifestRow:
    return ManifestRow(label, str(path), line)
