"""Per-operation thresholds and no threshold traps, through the CLI and the library:
``set-threshold T [--score-norm S] [--for identify|verify|both]``, ``info`` and
``info --json``'s ``thresholds``, and SPEAKERDB_THRESHOLD / ``--threshold`` for every
score kind."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import soundfile as sf
from conftest import FakeEncoder, fake_cli, voice

from speakerdb import InputError, SpeakerDB
from speakerdb.config import DURATION_SLOPE
from speakerdb.decision._policy import default_threshold
from speakerdb.decision._scores import get_norm
from speakerdb.encoders._registry import fallen, family_of

ALICE, BOB = 110.0, 1000.0
GE2E = "resemblyzer"  # the fake encoder under this name gets GE2E's defaults (margin-duration)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """./speakers.db of a model that decides by margin-duration by default (alice, bob,
    and two outside voices)."""
    monkeypatch.chdir(tmp_path)
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    for name, pitch, seed in [("alice1", ALICE, 1), ("alice2", ALICE, 2), ("bob1", BOB, 3)]:
        sf.write(tmp_path / f"{name}.wav", voice(pitch, 1.5, seed=seed), 16000)
    with opened(tmp_path) as db:
        db.enroll("alice", [tmp_path / "alice1.wav"])
        db.enroll("bob", [tmp_path / "bob1.wav"])
        # Two outside voices: AS-norm's cohort holds 3 voices, enough for it to decide.
        db.cohort.add("outsider-1", [(voice(300.0, 1.5, seed=7), 16000)])
        db.cohort.add("outsider-2", [(voice(600.0, 1.5, seed=8), 16000)])
    return tmp_path


def default(score: str, operation: str = "verify", n_speakers: int = 2) -> float:
    """The built-in threshold of ``score`` scores for the GE2E family, for ``operation``
    on a database of ``n_speakers`` (the fixture's two)."""
    return default_threshold(get_norm(score), GE2E, operation, n_speakers)


def decided_at(threshold: tuple[str, float, str], seconds: float) -> tuple[str, float, str]:
    """A built-in identify default as a query of ``seconds`` faces it (it falls with the
    query's duration: the fixture's clips last 1.5 s)."""
    fall = family_of(GE2E).identify_curves["margin-duration"].fall
    return threshold[0], fallen(threshold[1], fall, seconds), threshold[2]


def opened(home: Path, **options: object) -> SpeakerDB:
    return SpeakerDB(home / "speakers.db", encoder=FakeEncoder(model=GE2E), **options)  # type: ignore[arg-type]


def cli(*args: object, code: int | None = 0) -> str:
    return str(fake_cli(*args, code=code, model=GE2E).stdout)


def info() -> dict:
    return json.loads(cli("info", "--json"))


def thresholds() -> dict[str, tuple[str, float, str]]:
    return {op: (t["score"], t["value"], t["source"]) for op, t in info()["thresholds"].items()}


def used(command: str, *args: str) -> tuple[str, float, str]:
    """(score, threshold, source) that decided one identify or verify."""
    if command == "identify":
        (doc,) = json.loads(cli("identify", "alice2.wav", "--json", *args))
    else:  # accepted or rejected: exit 0 or 1
        doc = json.loads(cli("verify", "alice", "alice2.wav", "--json", *args, code=None))
    policy = doc["policy"]
    return policy["score_norm"], policy["threshold"], policy["source"]


def test_each_operation_has_its_own_threshold(home: Path) -> None:
    builtin = ("margin-duration", default("margin-duration", "identify"), f"default for {GE2E}")
    builtin_verify = ("margin-duration", default("margin-duration"), f"default for {GE2E}")
    assert thresholds() == {"identify": builtin, "verify": builtin_verify}
    cli("set-threshold", "0.8", "--score-norm", "margin-duration", "--for", "verify")
    assert thresholds() == {
        "identify": builtin,
        "verify": ("margin-duration", 0.8, "database"),
    }
    assert used("identify") == decided_at(builtin, 1.5)
    assert used("verify") == ("margin-duration", 0.8, "database")
    cli("set-threshold", "0.6", "--score-norm", "margin-duration", "--for", "identify")
    assert thresholds()["identify"] == ("margin-duration", 0.6, "database")
    assert thresholds()["verify"] == ("margin-duration", 0.8, "database")
    # --for both (the default) sets both.
    cli("set-threshold", "0.65", "--score-norm", "margin-duration")
    assert {t[1] for t in thresholds().values()} == {0.65}
    fake_cli("set-threshold", "0.5", "--for", "enroll", code=2, model=GE2E)


def test_info_shows_every_stored_threshold_and_which_decides(home: Path) -> None:
    cli("set-threshold", "0.75", "--score-norm", "margin", "--for", "verify")
    cli("set-threshold", "1.9", "--score-norm", "asnorm")
    cli("set-threshold", "0.7", "--score-norm", "margin-duration", "--for", "identify")
    stored = {
        (t["operation"], t["score"], t["value"], t["decides"]) for t in info()["stored_thresholds"]
    }
    assert stored == {
        ("verify", "margin", 0.75, False),  # stored, but margin-duration decides
        ("identify", "asnorm", 1.9, False),
        ("verify", "asnorm", 1.9, False),
        ("identify", "margin-duration", 0.7, True),
    }
    text = cli("info")
    assert "decides by         margin-duration scores" in text
    assert "identify threshold 0.7000 (database), margin-duration" in text
    value = default("margin-duration")
    assert f"verify threshold   {value:.4f} (default for {GE2E}), margin-duration" in text
    assert "verify: margin 0.7500 (not used now)" in text
    assert "identify: margin-duration 0.7000\n" in text


def test_a_bare_threshold_on_a_database_deciding_by_a_normalised_score_is_refused(
    home: Path,
) -> None:
    result = fake_cli("set-threshold", "0.8", code=2, model=GE2E)
    message = result.stderr.strip()
    assert message.startswith("speakerdb: error: this database decides by margin-duration")
    assert "--score-norm margin-duration" in message and "--score-norm none" in message
    assert thresholds()["identify"][0] == "margin-duration" and info()["stored_thresholds"] == []
    with opened(home) as db, pytest.raises(InputError, match="score_norm='none'"):
        db.set_threshold(0.8)
    # Named as a cosine, it switches the database to raw cosine, and says so.
    said = cli("set-threshold", "0.8", "--score-norm", "none")
    assert said.startswith("identify and verify thresholds set to 0.8000 (cosine)\n")
    assert "queries now decide by raw cosine, not margin-duration scores" in said
    assert "  verify: cosine >= 0.8000 (database)" in said
    assert used("identify") == ("none", 0.8, "database")


def test_on_a_database_deciding_by_cosine_a_bare_threshold_is_a_cosine(
    home: Path,
) -> None:
    cli("score-norm", "none")
    said = cli("set-threshold", "0.55", "--for", "verify")
    assert "now decide" not in said
    assert used("verify") == ("none", 0.55, "database")
    assert json.loads(cli("set-threshold", "0.5", "--json")) == {
        "threshold": 0.5,
        "for": "both",
        "thresholds": {
            "identify": {"score": "none", "value": 0.5, "source": "database", "duration_fall": 0},
            "verify": {"score": "none", "value": 0.5, "source": "database", "duration_fall": 0},
        },
    }


def test_a_bare_cosine_threshold_decides_by_cosine_and_the_policy_says_so(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.9")
    result = fake_cli("identify", "alice2.wav", "--json", model=GE2E)
    (doc,) = json.loads(result.stdout)
    assert (doc["policy"]["score_norm"], doc["policy"]["threshold"]) == ("none", 0.9)
    assert "raw cosine decides, not margin-duration" in doc["policy"]["notice"]
    assert "speakerdb: notice: raw cosine decides" in result.stderr
    assert "notice             raw cosine decides" in cli("info")


@pytest.mark.parametrize("score", ["margin-duration", "margin", "asnorm", "none"])
def test_precedence_flag_environment_stored_default_for_every_score(
    home: Path, monkeypatch: pytest.MonkeyPatch, score: str
) -> None:
    cli("score-norm", score)
    default = used("identify")
    assert default[2] == f"default for {GE2E}"
    cli("set-threshold", "0.31", "--score-norm", score, "--for", "identify")
    cli("set-threshold", "0.32", "--score-norm", score, "--for", "verify")
    assert used("identify") == (score, 0.31, "database")
    assert used("verify") == (score, 0.32, "database")
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.41")  # sets both, over the stored ones
    assert used("identify") == (score, 0.41, "environment")
    assert used("verify") == (score, 0.41, "environment")
    assert thresholds()["verify"] == (score, 0.41, "environment")
    assert used("identify", "--threshold", "0.51") == (score, 0.51, "argument")
    assert used("verify", "--threshold", "0.52") == (score, 0.52, "argument")
    with opened(home, threshold=0.61) as db:
        assert db.policy(operation="verify").threshold == 0.61
        assert db.verify("alice", home / "alice2.wav").threshold == 0.61
        assert db.identify(home / "alice2.wav", threshold=0.62).threshold == 0.62


@pytest.mark.parametrize("value", ["nan", "-inf", "inf", "5", "abc", "1e999"])
@pytest.mark.parametrize("score", ["margin-duration", "asnorm", "none"])
def test_bad_environment_thresholds_are_refused_whatever_decides(
    home: Path, monkeypatch: pytest.MonkeyPatch, score: str, value: str
) -> None:
    cli("score-norm", score)
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", value)
    if score == "asnorm" and value == "5":  # five standard deviations: a strict, valid bar
        assert used("identify") == ("asnorm", 5.0, "environment")
        return
    for command in (("identify", "alice2.wav"), ("verify", "alice", "alice2.wav"), ("info",)):
        message = fake_cli(*command, code=2, model=GE2E).stderr
        assert "SPEAKERDB_THRESHOLD" in message and "unset it" in message


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["set-threshold", "nan"], "a cosine in [-1, 1]"),
        (["set-threshold", "1.5", "--score-norm", "none"], "a cosine in [-1, 1]"),
        (["set-threshold", "3.5", "--score-norm", "margin"], "a margin threshold in [-3, 3]"),
        (["set-threshold", "81.4", "--score-norm", "asnorm"], "an AS-norm threshold"),
        (["set-threshold", "inf", "--score-norm", "margin-duration"], "margin-duration"),
        (["identify", "alice2.wav", "--threshold", "4"], "give --threshold a number within"),
        (["identify", "alice2.wav", "--score-norm", "asnorm", "--threshold", "-60"], "[-50, 50]"),
    ],
)
def test_bad_thresholds_are_refused_with_the_fix(
    home: Path, args: list[str], fragment: str
) -> None:
    cli("score-norm", "none")
    before = info()
    message = fake_cli(*args, code=2, model=GE2E).stderr
    assert fragment in message and message.count("\n") == 1
    assert info() == before


def test_the_library_api(home: Path) -> None:
    with opened(home) as db:
        assert db.set_threshold(1.8, score_norm="asnorm", operation="verify") == 1.8
        assert db.policy(operation="verify").score_norm == "asnorm"
        assert db.policy(operation="verify").threshold == 1.8
        assert db.policy(operation="identify").threshold == default("asnorm", "identify")
        info = db.info()
        assert info.thresholds["verify"].value == 1.8
        assert info.thresholds["identify"].source == f"default for {GE2E}"
        assert [(t.operation, t.score, t.decides) for t in info.stored_thresholds] == [
            ("verify", "asnorm", True)
        ]
        with pytest.raises(InputError, match="identify, verify or both"):
            db.set_threshold(0.5, score_norm="none", operation="enrol")
        with pytest.raises(InputError, match="identify or verify"):
            db.policy(operation="enrol")


def test_identify_default_threshold_follows_the_number_of_enrolled_speakers(
    home: Path,
) -> None:
    """Identify's built-in margin-duration threshold is the family's curve at the
    database's N (a stranger's best-of-N margin falls as N grows), held from N = 10;
    verify's, one claim, stays fixed. info, the library and a query's own policy agree."""
    curve = family_of(GE2E).identify_curves["margin-duration"]
    fixed = get_norm("margin-duration").default_threshold(family_of(GE2E), GE2E)
    assert curve.at(2) > curve.at(6) > curve.at(10) == curve.at(500)
    assert curve.at(None) == max(curve.at(2), curve.at(10))  # N unknown: the strictest
    for n, pitch in enumerate((160.0, 220.0, 300.0, 420.0, 550.0, 700.0, 850.0, 1300.0), 3):
        with opened(home) as db:
            db.enroll(f"p{n}", [(voice(pitch, 1.5, seed=n), 16000)], force=True)
            policy = db.policy(operation="identify")
            assert (policy.threshold, policy.source) == (curve.at(n), f"default for {GE2E}")
            assert db.policy(operation="verify").threshold == fixed
            found = db.identify(home / "alice2.wav")
            assert found.policy.threshold == curve.at(n, 1.5)
            if n in (3, 6, 10):
                assert db.info().thresholds["identify"].value == curve.at(n)
    assert thresholds()["identify"][1] == curve.at(10)
    assert used("identify")[1] == curve.at(10, 1.5)
    assert thresholds()["verify"][1] == fixed


def test_a_threshold_given_or_stored_does_not_follow_n(home: Path) -> None:
    """Only the built-in default follows N: a stored or given threshold is used as it is."""
    cli("set-threshold", "0.8", "--score-norm", "margin-duration", "--for", "identify")
    assert used("identify") == ("margin-duration", 0.8, "database")
    assert used("identify", "--threshold", "0.75", "--score-norm", "margin-duration")[1] == 0.75


def test_calibrate_with_too_few_voices_keeps_each_operations_default(home: Path) -> None:
    """Three speakers and two outside voices cannot bound the share of strangers:
    calibrate keeps identify's default at the database's N (its bar for a 0.5 s query:
    it still falls with duration) and verify's fixed one, and stores neither."""
    with opened(home) as db:
        db.enroll("alice", [home / "alice2.wav"], force=True)
        db.enroll("bob", [(voice(BOB, 1.5, seed=4), 16000)], force=True)
        carol = [(voice(450.0, 1.5, seed=s), 16000) for s in (5, 6)]
        db.enroll("carol", carol, force=True)
    reply = json.loads(cli("calibrate", "--json"))
    doc = reply["calibration"]
    assert reply["stored"] is False
    assert doc["identify"]["method"] == doc["verify"]["method"] == "default"
    assert doc["identify"]["threshold"] == default("margin-duration", "identify", 3)
    assert doc["verify"]["threshold"] == default("margin-duration")
    assert "kept the default (nothing stored)" in cli("calibrate")
    assert default("margin-duration", "identify", 3) != default("margin-duration")
    assert info()["stored_thresholds"] == []
    # Nothing stored: identify's default still falls with the query's duration.
    fall = family_of(GE2E).identify_curves["margin-duration"].fall
    assert info()["thresholds"]["identify"]["duration_fall"] == fall


def test_identify_default_falls_with_the_query_duration_and_says_so(home: Path) -> None:
    """Identify's built-in margin-duration bar falls with the query's duration d, by the
    curve's ``fall x ln(d / 0.5 s)`` (d clamped to [0.5 s, 30 s]): each result's policy
    holds the bar it was decided at and the duration; db.policy() and info hold the bar
    of a 0.5 s query and the fall, and info's text says how it falls. Verify's default,
    one claim, does not fall."""
    curve = family_of(GE2E).identify_curves["margin-duration"]
    assert 0 < curve.fall <= DURATION_SLOPE  # padding a clip never lowers its bar
    for seconds in (0.8, 3.0, 10.0):
        sf.write(home / f"long{seconds}.wav", voice(ALICE, seconds, seed=9), 16000)
    with opened(home) as db:
        found = db.identify_many([home / f"long{s}.wav" for s in (0.8, 3.0, 10.0)])
        bars = [r.policy.threshold for r in found]
        assert bars == [curve.at(2, s) for s in (0.8, 3.0, 10.0)]
        assert bars[0] > bars[1] > bars[2]
        assert [r.policy.duration_s for r in found] == [0.8, 3.0, 10.0]
        for result in found:
            assert result.policy.duration_fall == curve.fall
            assert result.accepted == (result.best.decision_score >= result.policy.threshold)
        policy = db.policy(operation="identify")
        assert (policy.threshold, policy.duration_fall, policy.duration_s) == (
            curve.at(2),
            curve.fall,
            None,
        )
        verified = db.verify("alice", home / "long10.0.wav")
        assert verified.policy.duration_fall == 0.0
        assert verified.threshold == default("margin-duration")
    shown = info()["thresholds"]
    assert (shown["identify"]["value"], shown["identify"]["duration_fall"]) == (
        curve.at(2),
        curve.fall,
    )
    assert shown["verify"]["duration_fall"] == 0
    text = cli("info")
    assert f"falling {curve.fall:g} x ln(d / 0.5 s)" in text
    assert f"{curve.at(2, 3.0):.4f} at 3 s" in text
    (doc,) = json.loads(cli("identify", "long3.0.wav", "--json"))
    assert doc["policy"]["threshold"] == curve.at(2, 3.0)
    assert (doc["policy"]["duration_fall"], doc["policy"]["duration_s"]) == (curve.fall, 3.0)


@pytest.mark.parametrize("where", ["stored", "argument", "flag", "environment"])
def test_a_threshold_set_stored_given_or_from_the_environment_does_not_fall(
    home: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the built-in default falls with duration: a threshold a user sets means
    exactly that value for a query of any length."""
    sf.write(home / "long.wav", voice(ALICE, 10.0, seed=9), 16000)
    args: tuple[str, ...] = ()
    if where == "stored":
        cli("set-threshold", "0.8", "--score-norm", "margin-duration", "--for", "identify")
    elif where == "argument":
        args = ("--threshold", "0.8", "--score-norm", "margin-duration")
    elif where == "flag":
        cli("score-norm", "margin-duration")
        args = ("--threshold", "0.8")
    else:
        cli("score-norm", "margin-duration")
        monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.8")
    (doc,) = json.loads(cli("identify", "long.wav", "--json", *args))
    policy = doc["policy"]
    assert (policy["score_norm"], policy["threshold"]) == ("margin-duration", 0.8)
    assert (policy["duration_fall"], policy["duration_s"]) == (0, None)
    if where in ("stored", "environment"):  # what decides every identify: info says so
        assert "falling" not in cli("info")


def test_set_threshold_clear_removes_the_stored_threshold_and_the_default_decides(
    home: Path,
) -> None:
    """``set-threshold --clear [--for OP] [--score-norm S]`` removes what was stored for
    that operation (of that score, else of every score) and says what each operation
    decides by now; the other operation keeps its own."""
    cli("set-threshold", "0.5", "--score-norm", "margin-duration")
    cleared = cli("set-threshold", "--clear", "--for", "identify")
    assert cleared.splitlines()[0] == "cleared the identify threshold 0.5000 (margin-duration)"
    assert thresholds()["identify"][2] == f"default for {GE2E}"
    assert thresholds()["verify"] == ("margin-duration", 0.5, "database")
    assert "nothing cleared" in cli("set-threshold", "--clear", "--for", "identify")
    doc = json.loads(cli("set-threshold", "--clear", "--score-norm", "margin-duration", "--json"))
    assert doc["cleared"] == [{"operation": "verify", "score": "margin-duration", "value": 0.5}]
    assert doc["thresholds"]["verify"]["source"] == "default for resemblyzer"
    assert info()["stored_thresholds"] == []
    both = fake_cli("set-threshold", "0.5", "--clear", code=2, model=GE2E)
    assert "not both" in both.stderr
    assert "--clear" in fake_cli("set-threshold", code=2, model=GE2E).stderr


def test_clearing_an_older_threshold_for_both_keeps_the_other_operations_and_its_score(
    home: Path,
) -> None:
    """A cosine threshold stored by an older speakerdb (one key for both operations, no
    score chosen) makes the cosine decide. Clearing it for verify keeps identify's; clearing
    identify's too keeps the cosine deciding (now chosen), not this model's default score."""
    with sqlite3.connect(home / "speakers.db") as con:
        con.execute("INSERT INTO settings (key, value) VALUES ('threshold', '0.5')")
    assert thresholds() == {
        "identify": ("none", 0.5, "database"),
        "verify": ("none", 0.5, "database"),
    }
    with opened(home) as db:
        (gone,) = db.set_threshold(None, operation="verify")
        assert (gone.operation, gone.score, gone.value) == ("verify", "none", 0.5)
        assert db.policy(operation="identify").threshold == 0.5
        assert db.policy(operation="verify").source == f"default for {GE2E}"
        (gone,) = db.set_threshold(None, operation="identify")
        assert gone.operation == "identify"
        assert db.info().stored_thresholds == ()
        assert db.info().score_norm == "none"  # still the cosine, as before clearing


def test_calibrate_keeping_the_default_of_another_score_chooses_that_score(home: Path) -> None:
    """``calibrate --score-norm S`` makes S decide, as it does when it calibrates: where it
    keeps S's defaults, S decides at them and S's stored thresholds are removed."""
    with opened(home) as db:
        db.enroll("alice", [home / "alice2.wav"], force=True)
        db.enroll("bob", [(voice(BOB, 1.5, seed=4), 16000)], force=True)
        db.enroll("carol", [(voice(450.0, 1.5, seed=s), 16000) for s in (5, 6)], force=True)
    cli("set-threshold", "0.1", "--score-norm", "margin", "--for", "verify")
    cli("set-threshold", "0.8", "--score-norm", "none")  # the cosine decides
    doc = json.loads(cli("calibrate", "--score-norm", "margin", "--json"))["calibration"]
    assert doc["verify"]["method"] == doc["identify"]["method"] == "default"
    assert doc["cleared"] == [{"operation": "verify", "score": "margin", "value": 0.1}]
    assert thresholds() == {
        "identify": ("margin", default("margin", "identify", 3), f"default for {GE2E}"),
        "verify": ("margin", default("margin"), f"default for {GE2E}"),
    }
    # The cosine thresholds stay stored, deciding nothing until the cosine is chosen again.
    stored = info()["stored_thresholds"]
    assert [(t["operation"], t["score"], t["decides"]) for t in stored] == [
        ("identify", "none", False),
        ("verify", "none", False),
    ]
