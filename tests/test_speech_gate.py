"""Speech-only enrollment: noise, hum, tones and music are refused with a reason that names
the fix, through the API and the CLI; --force overrides; one clip warns; real speech passes.

The gate itself (speakerdb.audio._speechness) is measured by scripts/eval_speech_gate.py:
it accepts every clip of the shared corpus and refuses generated non-speech.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import FakeEncoder, read_rows
from typer.testing import CliRunner

from speakerdb import EnrollmentRefused, InputError, SpeakerDB
from speakerdb.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from _nonspeech import make

RATE = 16000


@pytest.fixture(autouse=True)
def _gate_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPEAKERDB_SPEECH_GATE")


def non_speech(tmp_path: Path) -> dict[str, Path]:
    clips = {}
    for kind in ("white", "hum50"):
        path = tmp_path / f"{kind}.wav"
        sf.write(path, make(kind, 3.0, -20.0, seed=1), RATE)
        clips[kind] = path
    return clips


@pytest.mark.parametrize("kind", ["white", "hum50"])
def test_the_api_refuses_noise_and_hum_naming_the_fix(tmp_path: Path, kind: str) -> None:
    clip = non_speech(tmp_path)[kind]
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        with pytest.raises(EnrollmentRefused, match="not speech") as refused:
            db.enroll("nobody", [clip])
        assert "record the person speaking" in str(refused.value)
        assert "force" in str(refused.value)
        assert [i.check for i in refused.value.issues if i.refused] == ["not_speech"]
        forced = db.enroll("nobody", [clip], force=True)
        assert forced.notice and "enrolled from one clip" in forced.notice
    assert forced.speaker.n_utterances == 1
    assert {i.check for i in forced.issues} == {"not_speech"}


def test_the_cli_refuses_noise_and_hum_and_force_enrolls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    clips = non_speech(tmp_path)
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    for kind, path in clips.items():
        result = runner.invoke(app, ["enroll", kind, str(path), "--db", db])
        assert result.exit_code == 2, result.output
        assert "not speech" in result.output and "--force" in result.output
    forced = runner.invoke(app, ["enroll", "hum", str(clips["hum50"]), "--db", db, "--force"])
    assert forced.exit_code == 0, forced.output
    assert "one clip" in forced.output  # the single-clip warning


def test_the_gate_is_a_per_database_switch(tmp_path: Path) -> None:
    clip = non_speech(tmp_path)["white"]
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder(), speech_gate=False) as db:
        assert db.enroll("noise", [clip]).speaker.n_utterances == 1


def test_a_bad_switch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERDB_SPEECH_GATE", "maybe")
    with pytest.raises(InputError, match="SPEAKERDB_SPEECH_GATE"):
        SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())


@pytest.mark.slow
def test_real_enrollment_clips_pass_the_gate(corpus: Path, tmp_path: Path) -> None:
    rows = read_rows(corpus / "protocol" / "enroll.csv")
    by_speaker: dict[str, list[str]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker_id"], []).append(row["path"])
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        for name, paths in sorted(by_speaker.items()):
            # force=False: a refusal of any kind would raise; the similarity gates of the
            # fake encoder are not what this test is about, so only not_speech is asserted.
            try:
                result = db.enroll(name, paths)
            except EnrollmentRefused as refused:
                assert "not_speech" not in {i.check for i in refused.issues}, refused
                continue
            assert "not_speech" not in {i.check for i in result.issues}
