"""The outcome contract: every identify and verify answers accepted, rejected, unknown,
not_enough_speech or replay, never an error; the CLI's exit codes follow it; the audit
log records it; the checks that may answer before the score plug into one seam
(speakerdb/services/_checks.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import soundfile as sf
from conftest import FakeEncoder, fake_cli, voice
from typer.testing import Result

import speakerdb
from speakerdb import Identification, Outcome, SpeakerDB, Verification
from speakerdb.services import _opening as opening
from speakerdb.services._checks import Query, Verdict

ALICE, BOB = 110.0, 1000.0


class ByName:
    """A check answering by the clip's file name: ``short*`` not enough speech,
    ``copy*`` a replay; it remembers every outcome it hears."""

    def __init__(self, answers: dict[str, Outcome]) -> None:
        self.answers = answers
        self.heard: list[tuple[str, str | None, Outcome]] = []

    def check(self, query: Query) -> Verdict | None:
        name = Path(query.clip.source or "").name
        for prefix, outcome in self.answers.items():
            if name.startswith(prefix):
                return Verdict(outcome, f"{prefix} clip")
        return None

    def decided(self, query: Query, outcome: Outcome) -> None:
        self.heard.append((query.operation, query.claimed, outcome))


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[ByName]:
    """Installs, in every database opened by the test, a replay check then a speech check."""
    made = [
        ByName({"copy": Outcome.REPLAY}),
        ByName({"short": Outcome.NOT_ENOUGH_SPEECH, "copy": Outcome.NOT_ENOUGH_SPEECH}),
    ]
    monkeypatch.setattr(opening, "query_checks", lambda storage, settings: tuple(made))
    return made


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """speakers.db (alice: 2 clips, bob: 1; audit on) and clips of them and a stranger."""
    monkeypatch.chdir(tmp_path)
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    for name, pitch, seed in [
        ("alice1", ALICE, 1),
        ("alice2", ALICE, 2),
        ("alice3", ALICE, 3),
        ("bob1", BOB, 4),
        ("stranger", 400.0, 5),
        ("short-alice", ALICE, 6),
        ("copy-alice", ALICE, 1),
    ]:
        sf.write(tmp_path / f"{name}.wav", voice(pitch, 1.5, seed=seed), 16000)
    with opened(tmp_path) as db:
        db.enroll("alice", [tmp_path / "alice1.wav", tmp_path / "alice2.wav"])
        db.enroll("bob", [tmp_path / "bob1.wav"])
        db.audit.configure(True)
    return tmp_path


def opened(home: Path) -> SpeakerDB:
    return SpeakerDB(home / "speakers.db", encoder=FakeEncoder(), threshold=0.9)


def cli(home: Path, *args: object, code: int = 0) -> Result:
    """``speakerdb ARGS`` in-process with the fake encoder of the database."""
    return fake_cli(*args, code=code)


def test_outcome_is_a_public_str_enum_with_the_six_answers() -> None:
    assert speakerdb.Outcome is Outcome
    assert [o.value for o in Outcome] == [
        "accepted",
        "rejected",
        "unknown",
        "not_enough_speech",
        "replay",
        "watchlist",
    ]
    assert Outcome.REPLAY == "replay" and json.dumps({"o": Outcome.REPLAY}) == '{"o": "replay"}'
    with pytest.raises(ValueError, match="the score does"):
        Verdict(Outcome.ACCEPTED, "a check never accepts")


def test_the_score_decides_accepted_rejected_and_unknown(home: Path) -> None:
    with opened(home) as db:
        found = db.identify(home / "alice3.wav")
        stranger = db.identify(home / "stranger.wav", threshold=0.99999)
        yes = db.verify("alice", home / "alice3.wav")
        no = db.verify("bob", home / "alice3.wav")
    assert (found.outcome, found.speaker, found.accepted) == (Outcome.ACCEPTED, "alice", True)
    assert (stranger.outcome, stranger.speaker) == (Outcome.UNKNOWN, None)
    assert (yes.outcome, yes.accepted, no.outcome, no.accepted) == (
        Outcome.ACCEPTED,
        True,
        Outcome.REJECTED,
        False,
    )
    assert found.to_dict()["outcome"] == "accepted" and found.to_dict()["reason"] is None
    assert no.to_dict()["outcome"] == "rejected" and "verdict" not in no.to_dict()


def test_a_check_answers_before_the_score_and_hears_every_outcome(
    home: Path, checks: list[ByName]
) -> None:
    replay, speech = checks
    with opened(home) as db:
        results = db.identify_many(
            [home / "alice3.wav", home / "short-alice.wav", home / "copy-alice.wav"]
        )
        claim = db.verify("alice", home / "short-alice.wav")
        entries = db.audit.entries()
    _, short, copied = results
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.NOT_ENOUGH_SPEECH,
        Outcome.REPLAY,  # the first check that answers gives the outcome
    ]
    # Scored all the same, but no one is named and nothing is accepted.
    assert short.best is not None and short.best.speaker == "alice"
    assert short.best.score > 0.9 and short.speaker is None and not short.accepted
    assert (short.reason, copied.reason) == ("short clip", "copy clip")
    assert (claim.outcome, claim.accepted, claim.reason) == (
        Outcome.NOT_ENOUGH_SPEECH,
        False,
        "short clip",
    )
    assert claim.score > 0.9
    assert claim.to_dict()["outcome"] == "not_enough_speech"
    heard = [
        ("identify", None, Outcome.ACCEPTED),
        ("identify", None, Outcome.NOT_ENOUGH_SPEECH),
        ("identify", None, Outcome.REPLAY),
        ("verify", "alice", Outcome.NOT_ENOUGH_SPEECH),
    ]
    assert replay.heard == heard and speech.heard == heard
    # The audit log records each outcome, newest first.
    assert [e.outcome for e in entries] == [o for _, _, o in reversed(heard)]
    assert [e.accepted for e in entries] == [False, False, False, True]


def test_results_built_without_a_verdict_are_decided_by_their_score() -> None:
    match = speakerdb.Match("a", 0.5)
    assert Identification(None, (match,), 0.5).outcome is Outcome.ACCEPTED
    assert Identification(None, (), 0.5).outcome is Outcome.UNKNOWN
    assert Verification("a", None, 0.4, 0.5).outcome is Outcome.REJECTED
    refused = Identification(None, (match,), 0.5, verdict=Outcome.REPLAY, reason="heard before")
    assert refused.speaker is None and refused.to_dict()["outcome"] == "replay"


def test_verify_exit_codes_follow_the_outcome(home: Path, checks: list[ByName]) -> None:
    assert cli(home, "verify", "alice", "alice3.wav").stdout.startswith("accepted")
    assert cli(home, "verify", "bob", "alice3.wav", code=1).stdout.startswith("rejected")
    replayed = cli(home, "verify", "alice", "copy-alice.wav", code=1)
    assert replayed.stdout.startswith("replay: copy-alice.wav as alice (copy clip; cosine")
    short = cli(home, "verify", "alice", "short-alice.wav", code=3)
    assert short.stdout.startswith("not_enough_speech: short-alice.wav as alice (short clip")
    doc = json.loads(cli(home, "verify", "alice", "short-alice.wav", "--json", code=3).stdout)
    assert (doc["outcome"], doc["accepted"], doc["reason"]) == (
        "not_enough_speech",
        False,
        "short clip",
    )


def test_identify_exits_3_only_when_every_clip_had_too_little_speech(
    home: Path, checks: list[ByName]
) -> None:
    cli(home, "identify", "short-alice.wav", "short-alice.wav", code=3)
    mixed = cli(home, "identify", "short-alice.wav", "alice3.wav", "copy-alice.wav")
    lines = [line for line in mixed.stdout.splitlines() if not line.startswith(" ")]
    assert lines[0] == "short-alice.wav: not_enough_speech (short clip)"
    assert lines[1].startswith("alice3.wav: alice (score")
    assert lines[2] == "copy-alice.wav: replay (copy clip)"
    doc = json.loads(cli(home, "identify", "short-alice.wav", "--json", code=3).stdout)
    assert [(d["outcome"], d["speaker"]) for d in doc] == [("not_enough_speech", None)]
    # A clip that cannot be read is an error, not an outcome: exit 1 for a partial failure.
    cli(home, "identify", "short-alice.wav", "nowhere.wav", code=1)
    # Any other answer exits 0, a replay too: the README tells scripts to read the outcome.
    assert cli(home, "identify", "copy-alice.wav").stdout.startswith("copy-alice.wav: replay")


def test_the_audit_log_shows_outcomes(home: Path, checks: list[ByName]) -> None:
    cli(home, "verify", "alice", "copy-alice.wav", code=1)
    cli(home, "identify", "stranger.wav", "--threshold", "0.99999")
    shown = cli(home, "audit", "show").stdout.splitlines()[1:]
    assert shown[0].endswith("\tunknown") and shown[1].endswith("\treplay")
    doc = json.loads(cli(home, "audit", "show", "--json").stdout)
    assert [e["outcome"] for e in doc["entries"]] == ["unknown", "replay"]


def test_an_older_audit_log_gets_the_outcomes_its_decisions_gave(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from speakerdb.storage.sql import _schema

    path = tmp_path / "old.db"
    with SpeakerDB(path, encoder=FakeEncoder(), threshold=0.9) as db:
        db.enroll("alice", [(voice(ALICE, 1.5, seed=1), 16000)])
        db.audit.configure(True)
        db.identify((voice(ALICE, 1.5, seed=2), 16000))
        db.identify((voice(400.0, 1.5, seed=3), 16000))
        db.verify("alice", (voice(400.0, 1.5, seed=3), 16000))
    engine = create_engine(f"sqlite:///{path}")
    config = Config()
    config.set_main_option("script_location", str(_schema.migrations_dir()))
    with engine.begin() as connection:  # back to revision 0004: no outcomes
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    engine.dispose()
    assert "outcome" not in str(sqlite3.connect(path).execute("SELECT * FROM audit").description)
    assert SpeakerDB.upgrade(path) == ("0004", _schema.SCHEMA_HEAD)
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        outcomes = [(e.operation, e.outcome) for e in reversed(db.audit.entries())]
    assert outcomes == [
        ("identify", Outcome.ACCEPTED),
        ("identify", Outcome.UNKNOWN),
        ("verify", Outcome.REJECTED),
    ]
