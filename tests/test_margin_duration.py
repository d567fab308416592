"""margin-duration scores: against a direct computation, through the database, as the
GE2E default, and the rule that a cosine threshold keeps cosine scoring."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import InputError, SpeakerDB
from speakerdb.audio import SPOKEN_MARGIN_S
from speakerdb.audio._vad import FRAME_S
from speakerdb.config import DURATION_SLOPE
from speakerdb.decision import (
    Cohort,
    Population,
    calibrate_population,
    duration_penalty,
    enrollment_scores,
    normalize,
    population_scores,
)
from speakerdb.encoders._registry import family_of

RATE = 16000


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def direct(raw: np.ndarray, seconds: list[float]) -> np.ndarray:
    """s + (s - best other) - slope * ln(d / 0.5 s), d clamped to [0.5, 30] s, cell by cell."""
    out = np.empty_like(raw)
    for i, row in enumerate(raw):
        d = min(max(seconds[i], 0.5), 30.0)
        for j, s in enumerate(row):
            best_other = max(v for k, v in enumerate(row) if k != j)
            out[i, j] = s + (s - best_other) - DURATION_SLOPE * math.log(d / 0.5)
    return out


def test_duration_penalty_by_hand() -> None:
    got = duration_penalty([0.1, 0.5, 1.0, 4.0, 30.0, 600.0])
    slope = DURATION_SLOPE
    expected = [0.0, 0.0, slope * math.log(2), slope * math.log(8), slope * math.log(60)]
    assert got.tolist() == pytest.approx([*expected, slope * math.log(60)])
    assert duration_penalty([2.0], slope=0.1)[0] == pytest.approx(0.1 * math.log(4))


def test_margin_duration_equals_the_direct_computation() -> None:
    rng = np.random.default_rng(5)
    population = Population.from_groups({f"s{i}": unit(rng.normal(size=(3, 8))) for i in range(4)})
    queries = unit(rng.normal(size=(5, 8)))
    seconds = [0.3, 1.0, 2.5, 9.0, 45.0]
    raw, got = population_scores("margin-duration", queries, population, 50, seconds)
    assert got == pytest.approx(direct(raw, seconds), abs=1e-12)
    # The term depends on the query only: every query ranks the speakers as cosine does.
    assert (got.argmax(axis=1) == raw.argmax(axis=1)).all()


def test_margin_duration_needs_a_duration_per_query() -> None:
    cohort = Cohort(np.eye(3), np.arange(3))
    with pytest.raises(ValueError, match="one duration per query"):
        normalize("margin-duration", np.eye(3)[:2], np.eye(3)[:2], np.eye(3), cohort, 5)


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Three synthetic voices enrolled with a fake encoder that calls itself GE2E."""
    with SpeakerDB(tmp_path / "md.db", encoder=FakeEncoder(model="resemblyzer")) as database:
        for k, pitch in enumerate((100, 160, 250)):
            clips = [(voice(pitch * (1 + 0.03 * s), seed=10 * k + s), RATE) for s in range(2)]
            database.enroll(f"p{k}", clips, force=True)
        yield database


def test_identify_and_verify_equal_the_direct_computation(db) -> None:  # type: ignore[no-untyped-def]
    for seconds in (0.8, 3.0, 12.0):
        clip = (voice(165, seconds=seconds, seed=97), RATE)
        raw = population_scores("none", db.embed([clip]), db.population(), 50)[1]
        expected = direct(raw, [seconds])[0]
        result = db.identify(clip, top_k=3)
        assert result.score_norm == "margin-duration"
        names = db.population().names
        for match in result.matches:
            column = names.index(match.speaker)
            assert match.normalized == pytest.approx(expected[column], abs=1e-5)
            assert match.score == pytest.approx(raw[0, column], abs=1e-5)  # still the cosine
            check = db.verify(match.speaker, clip)
            assert check.normalized == pytest.approx(expected[column], abs=1e-5)
            assert check.score_norm == "margin-duration"


def test_a_longer_clip_must_score_higher(db) -> None:  # type: ignore[no-untyped-def]
    # The fake encoder reads the first 4 s: both clips have the same embedding.
    short = voice(165, seconds=4.0, seed=97)
    long = np.tile(short, 4)
    a, b = (db.identify((x, RATE)).best for x in (short, long))
    assert a.speaker == b.speaker and a.score == pytest.approx(b.score, abs=1e-6)
    assert a.normalized - b.normalized == pytest.approx(DURATION_SLOPE * math.log(4), abs=1e-6)


def test_ge2e_default_and_where_a_cosine_threshold_keeps_cosine(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    clip = (voice(104, seed=99), RATE)
    assert db.score_norm() == ("margin-duration", 50)
    # Identify's default follows N (three speakers here); verify's is fixed.
    at_three = family_of("resemblyzer").identify_curves["margin-duration"].at(3)
    assert db.decision_threshold() == at_three
    assert db.info().score_norm == "margin-duration" and db.info().score_norm_threshold == at_three
    assert db.info().thresholds["verify"].value == 0.896
    # A threshold passed with the query is a cosine, unless a score is named with it.
    plain = db.identify(clip, threshold=0.8)
    assert plain.score_norm == "none" and plain.threshold == 0.8
    assert plain.best.normalized is None
    named = db.identify(clip, threshold=0.6, score_norm="margin-duration")
    assert named.score_norm == "margin-duration" and named.threshold == 0.6
    # So is one from the environment or the constructor.
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.8")
    assert db.score_norm()[0] == "none" and db.identify(clip).threshold == 0.8
    monkeypatch.delenv("SPEAKERDB_THRESHOLD")
    with SpeakerDB(db.path, encoder=FakeEncoder(model="resemblyzer"), threshold=0.7) as other:
        assert other.score_norm()[0] == "none" and other.identify(clip).threshold == 0.7
        other_notice = other.identify(clip).decided_by.notice
    assert "raw cosine decides, not margin-duration" in (other_notice or "")
    # A bare number is not stored as a cosine on a database that decides by margin-duration:
    # both fixes are named, and nothing changes.
    with pytest.raises(InputError, match=r"--score-norm margin-duration.*--score-norm none"):
        db.set_threshold(0.77)
    assert db.score_norm()[0] == "margin-duration"
    # Named as a cosine, it is stored and raw cosine decides from now on, as the call says.
    db.set_threshold(0.77, score_norm="none")
    assert db.score_norm()[0] == "none" and db.identify(clip).threshold == 0.77
    assert db.identify(clip).policy.notice is None  # chosen, not implied
    # A score normalisation chosen for the database wins over all of that.
    db.set_score_norm("margin-duration")
    assert db.identify(clip).score_norm == "margin-duration"


def test_models_without_measurements_keep_raw_cosine(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "fake.db", encoder=FakeEncoder()) as database:
        database.enroll("p0", [(voice(100, seed=1), RATE)], force=True)
        assert database.score_norm()[0] == "none"
        assert database.identify((voice(100, seed=2), RATE)).best.normalized is None


def test_calibration_shifts_each_utterance_by_its_own_duration() -> None:
    rng = np.random.default_rng(6)
    groups = {f"s{i}": unit(rng.normal(size=(3, 8)) + 2 * np.eye(8)[i]) for i in range(6)}
    seconds = {name: np.array([0.4, 2.0, 7.0]) + k for k, name in enumerate(groups)}
    population = Population.from_groups(groups, seconds)
    genuine_m, impostor_m = enrollment_scores(population, score_norm="margin")
    genuine, impostor = enrollment_scores(population, score_norm="margin-duration")
    penalty = duration_penalty(population.durations_s)
    assert genuine == pytest.approx(genuine_m - penalty)
    # Each utterance gives one impostor score per other speaker (5 here).
    assert impostor == pytest.approx(impostor_m - np.repeat(penalty, 5))
    result = calibrate_population(population, score_norm="margin-duration")
    assert result.score == "margin-duration"
    with pytest.raises(ValueError, match="duration"):
        enrollment_scores(Population.from_groups(groups), score_norm="margin-duration")


def test_calibrate_stores_the_threshold_of_the_score_in_use(db) -> None:  # type: ignore[no-untyped-def]
    for k in range(3):  # three more voices and a third clip each: enough stranger voices
        db.enroll(f"p{k}", [(voice((100, 160, 250)[k] * 1.06, seed=50 + k), RATE)], force=True)
    for k, pitch in enumerate((400, 520, 640)):
        clips = [(voice(pitch * (1 + 0.03 * s), seed=60 + 5 * k + s), RATE) for s in range(3)]
        db.enroll(f"p{3 + k}", clips, force=True)
    result = db.calibrate()
    assert result.score == "margin-duration" and result.identify.method != "default"
    identify = db.policy(operation="identify")
    verify = db.policy(operation="verify")
    assert (identify.score_norm, verify.score_norm) == ("margin-duration", "margin-duration")
    assert identify.threshold == pytest.approx(result.identify.threshold)
    assert verify.threshold == pytest.approx(result.verify.threshold)
    assert db.threshold()[1].startswith("default")  # the cosine threshold is untouched
    assert db.score_norm()[0] == "margin-duration"


def silence_after(words: np.ndarray, seconds: float) -> np.ndarray:
    return np.concatenate([words, np.zeros(round(seconds * RATE), np.float32)])


def test_trailing_silence_is_timed_only_up_to_half_a_second(db) -> None:  # type: ignore[no-untyped-def]
    # The fake encoder embeds a clip's first quarter second: both have one embedding.
    words = voice(165, seconds=2.0, seed=97)
    plain, quiet = (words, RATE), (silence_after(words, 3.0), RATE)
    a, b = db.identify(plain), db.identify(quiet)
    # 3 s of silence count as 0.5 s: 0.057 x ln(2.5 / 2) off the score, where the whole
    # clip's length took 0.057 x ln(5 / 2); the bar is the one of a 2.5 s query.
    lost = DURATION_SLOPE * math.log(2.5 / 2.0)
    assert a.best.normalized - b.best.normalized == pytest.approx(lost, abs=1e-3)
    assert b.policy.duration_s == pytest.approx(2.5, abs=FRAME_S)
    claim = a.best.speaker
    by_verify = db.verify(claim, plain).normalized - db.verify(claim, quiet).normalized
    assert by_verify == pytest.approx(lost, abs=1e-3)


def test_an_enrolled_clip_stores_the_length_it_was_heard_for(db) -> None:  # type: ignore[no-untyped-def]
    db.enroll("quiet", [(silence_after(voice(320, seed=5), 2.0), RATE)], force=True)
    (stored,) = db.utterances("quiet")
    assert stored.duration_s == pytest.approx(2.0 + SPOKEN_MARGIN_S, abs=FRAME_S)
