"""The not_enough_speech rule: a clip with less net speech than MIN_QUERY_SPEECH_S is
neither named nor rejected, through the API and the CLI; a clip with enough speech is
decided by its score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import Outcome, SpeakerDB
from speakerdb.audio import clip_from_array, net_speech_s
from speakerdb.cli import app
from speakerdb.config import MIN_QUERY_SPEECH_S
from speakerdb.services._checks import Query
from speakerdb.services._speech_rule import SpeechAmount

RATE = 16_000


def with_speech(seconds: float, total: float = 2.0, seed: int = 3) -> np.ndarray:
    """``seconds`` of a synthetic voice, then quiet room noise up to ``total`` seconds."""
    rng = np.random.default_rng(seed)
    noise = 1e-4 * rng.standard_normal(int(total * RATE)).astype(np.float32)
    spoken = voice(120, seconds, seed=seed)
    noise[: spoken.size] += spoken
    return noise


def test_the_rule_answers_by_net_speech_alone() -> None:
    rule = SpeechAmount()
    assert rule.minimum_s == MIN_QUERY_SPEECH_S == 0.5
    short = clip_from_array(with_speech(0.3), RATE)
    ample = clip_from_array(with_speech(1.2), RATE)
    assert net_speech_s(short.samples) < 0.5 <= net_speech_s(ample.samples)
    verdict = rule.check(Query("identify", short))
    assert verdict is not None and verdict.outcome is Outcome.NOT_ENOUGH_SPEECH
    assert "s of speech, at least 0.5 s is needed" in verdict.reason
    assert rule.check(Query("verify", ample, "ann")) is None


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    with SpeakerDB(tmp_path / "s.db", encoder=FakeEncoder(), threshold=0.8) as database:
        database.enroll("ann", [(with_speech(1.5, seed=s), RATE) for s in (1, 2)], force=True)
        yield database


def test_too_little_speech_is_neither_named_nor_rejected(db: SpeakerDB) -> None:
    short, ample = (with_speech(0.3, seed=5), RATE), (with_speech(1.5, seed=6), RATE)
    found = db.identify(short)
    assert found.outcome is Outcome.NOT_ENOUGH_SPEECH and found.speaker is None
    assert found.best is not None  # still scored, for the audit log
    claim = db.verify("ann", short)
    assert claim.outcome is Outcome.NOT_ENOUGH_SPEECH and not claim.accepted
    assert db.identify(ample).outcome is Outcome.ACCEPTED
    assert db.verify("ann", ample).outcome is Outcome.ACCEPTED


def test_the_cli_exits_3_for_not_enough_speech(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    monkeypatch.delenv("SPEAKERDB_THRESHOLD", raising=False)
    for name, spoken, seed in (("e1", 1.5, 1), ("e2", 1.5, 2), ("short", 0.3, 5), ("ok", 1.5, 6)):
        sf.write(tmp_path / f"{name}.wav", with_speech(spoken, seed=seed), RATE)
    db = str(tmp_path / "c.db")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, [*args, "--db", db], catch_exceptions=False)
        return result.exit_code, result.stdout

    enroll = [str(tmp_path / "e1.wav"), str(tmp_path / "e2.wav")]
    assert run("enroll", "ann", *enroll, "--model", "fake", "--force")[0] == 0
    code, out = run("verify", "ann", str(tmp_path / "short.wav"), "--json")
    assert code == 3 and json.loads(out)["outcome"] == "not_enough_speech"
    code, out = run("identify", str(tmp_path / "short.wav"), "--json")
    assert code == 3 and json.loads(out)[0]["outcome"] == "not_enough_speech"
    # One clip with enough speech: identify answers for it, so it does not exit 3.
    code, _ = run("identify", str(tmp_path / "short.wav"), str(tmp_path / "ok.wav"))
    assert code != 3
