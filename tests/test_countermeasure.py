"""The countermeasure slot: a pluggable scorer whose spoof verdict refuses identify and verify
as ``replay``, shown in the result and written to the audit log; the README's example plugin."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, FakeEncoder, recording
from typer.testing import CliRunner

from speakerdb import InputError, SpeakerDB
from speakerdb.audio import Clip
from speakerdb.cli import app
from speakerdb.decision import (
    BandwidthCountermeasure,
    countermeasure_names,
    get_countermeasure,
    register_countermeasure,
)

RATE = 16000


def telephone_band(x: np.ndarray) -> np.ndarray:
    """Nothing above 3.4 kHz: a copy that went through a telephone line."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1 / RATE) > 3400] = 0
    return np.fft.irfft(spectrum, n=x.size).astype(np.float32)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("alice", [(recording(110, 2.0, seed=s), RATE) for s in (1, 2)])
    return path


def test_a_spoof_is_refused_as_replay_and_audited(db_path: Path) -> None:
    live, copy = recording(110, 2.0, seed=5), telephone_band(recording(110, 2.0, seed=6))
    with SpeakerDB(db_path, encoder=FakeEncoder(), countermeasure="bandwidth") as db:
        db.audit.configure(True)
        accepted = db.verify("alice", (live, RATE))
        refused = db.verify("alice", (copy, RATE))
        unnamed = db.identify((copy, RATE))
        entries = db.audit.entries()
    assert accepted.outcome == "accepted" and accepted.countermeasure is not None
    assert not accepted.countermeasure.spoof
    assert refused.outcome == "replay" and refused.score > 0.9  # the voice alone would pass
    assert refused.countermeasure is not None and refused.countermeasure.spoof
    assert "countermeasure 'bandwidth'" in (refused.reason or "")
    assert unnamed.outcome == "replay" and unnamed.speaker is None
    assert unnamed.to_dict()["countermeasure"]["spoof"] is True
    newest = entries[0]
    assert (newest.outcome, newest.countermeasure) == ("replay", "bandwidth")
    assert newest.countermeasure_score is not None and newest.countermeasure_score < -67
    assert entries[-1].countermeasure_score is not None and entries[-1].countermeasure_score > -67


def test_no_countermeasure_unless_chosen(db_path: Path) -> None:
    with SpeakerDB(db_path, encoder=FakeEncoder()) as db:
        result = db.verify("alice", (telephone_band(recording(110, 2.0, seed=6)), RATE))
        assert db.guards.countermeasure() == (None, "default")
    assert result.outcome == "accepted" and result.countermeasure is None


def test_a_broken_countermeasure_lets_nothing_through(db_path: Path) -> None:
    class Broken:
        name, threshold = "broken", 0.0

        def score(self, clip: Clip) -> float:
            return float("nan")

    with SpeakerDB(db_path, encoder=FakeEncoder(), countermeasure=Broken()) as db:
        assert db.verify("alice", (recording(110, 2.0, seed=7), RATE)).outcome == "replay"


def readme_plugin() -> str:
    """The README's example countermeasure (the python block of its section)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### A countermeasure plugin") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_plugin_registers_and_decides(db_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec(readme_plugin(), namespace)
    assert "clipping" in countermeasure_names()
    plugin = get_countermeasure("clipping")
    clipped = np.clip(recording(110, 2.0, seed=8) * 8, -1, 1)
    with SpeakerDB(db_path, encoder=FakeEncoder(), countermeasure="clipping") as db:
        assert db.verify("alice", (recording(110, 2.0, seed=9), RATE)).outcome == "accepted"
        assert db.verify("alice", (clipped, RATE)).outcome == "replay"
    assert plugin.score(Clip(clipped, None, "")) < plugin.threshold


def test_bad_choices_name_the_choices(db_path: Path) -> None:
    with pytest.raises(InputError, match="bandwidth"):
        SpeakerDB(db_path, encoder=FakeEncoder(), countermeasure="aasist")
    with pytest.raises(InputError, match="no name, threshold and score"):
        register_countermeasure(object())  # type: ignore[arg-type]
    assert isinstance(get_countermeasure("bandwidth"), BandwidthCountermeasure)


def test_cli_chooses_a_countermeasure_and_verify_exits_1(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    copy = tmp_path / "copy.wav"
    sf.write(copy, telephone_band(recording(110, 2.0, seed=6)), RATE)
    db = str(db_path)
    runner = CliRunner()
    chosen = runner.invoke(app, ["countermeasure", "bandwidth", "--db", db, "--json"])
    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.output) == {"countermeasure": "bandwidth", "source": "database"}
    result = runner.invoke(app, ["verify", "alice", str(copy), "--db", db, "--json"])
    assert result.exit_code == 1, result.output
    answer = json.loads(result.output)
    assert answer["outcome"] == "replay" and answer["countermeasure"]["name"] == "bandwidth"
    wrong = runner.invoke(app, ["countermeasure", "aasist", "--db", db])
    assert wrong.exit_code == 2 and "bandwidth" in wrong.output
    assert "none (database)" in runner.invoke(app, ["countermeasure", "none", "--db", db]).output
    # Chosen from the README's command list, it answered every telephone prompt `replay`:
    # the help says what it suits.
    shown = " ".join(runner.invoke(app, ["countermeasure", "--help"]).output.split())
    assert "live telephone-band audio (8 kHz) fails it too" in shown
