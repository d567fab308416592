"""Calibration: known answers on synthetic score distributions, refusals, and a database."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from conftest import FakeEncoder, fake_cli, voice

from speakerdb import InputError, SpeakerDB
from speakerdb._vectors import template_of
from speakerdb.config import FALLBACK_THRESHOLD
from speakerdb.decision import Population
from speakerdb.decision._calibration import (
    MIN_GENUINE,
    MIN_STRANGERS,
    MIN_VOICES,
    Calibration,
    ThresholdChoice,
    calibrate_population,
    calibrate_trials,
    duration_slope,
    enrollment_scores,
)
from speakerdb.decision._openset import DEFAULT_TARGET
from speakerdb.decision._population import CohortVoices

N = NormalDist()


@pytest.fixture(scope="module")
def gaussian_scores() -> tuple[np.ndarray, np.ndarray]:
    """Genuine ~ N(0.7, 0.1), impostor ~ N(0.4, 0.1): equal spreads, so the EER threshold
    is the midpoint 0.55 and the EER is Phi(-1.5) = 6.68 %."""
    rng = np.random.default_rng(0)
    return rng.normal(0.7, 0.1, 40_000), rng.normal(0.4, 0.1, 40_000)


def test_verify_threshold_of_known_distributions(gaussian_scores) -> None:  # type: ignore[no-untyped-def]
    # 1% of impostor claims: the impostors' 99th percentile, 0.4 + 0.1 * 2.326 = 0.633;
    # the genuine scores below it: Phi((0.633 - 0.7) / 0.1) = 25.1 %.
    result = calibrate_trials(*gaussian_scores, n_speakers=1, target_far=0.01)
    expected = 0.4 + 0.1 * N.inv_cdf(0.99)
    verify = result.verify
    assert verify.threshold == pytest.approx(expected, abs=0.005)
    assert verify.counted <= 0.01 + 1e-9 and verify.upper == pytest.approx(0.01, abs=0.002)
    assert verify.frr == pytest.approx(N.cdf((expected - 0.7) / 0.1), abs=0.01)


def test_identify_threshold_grows_with_the_population(gaussian_scores) -> None:  # type: ignore[no-untyped-def]
    # Among 10 independent speakers, 1% of strangers named needs each speaker's
    # share at 1 - 0.99 ** (1 / 10) = 0.1005 %: 0.4 + 0.1 * Phi^-1(0.998995) = 0.709.
    genuine, impostor = gaussian_scores
    ten = calibrate_trials(genuine, impostor, n_speakers=10, target_far=0.01).identify
    assert ten.threshold == pytest.approx(0.4 + 0.1 * N.inv_cdf(0.99 ** (1 / 10)), abs=0.01)
    assert ten.n_speakers == 10
    hundred = calibrate_trials(genuine, impostor, n_speakers=100, target_far=0.01).identify
    assert hundred.threshold > ten.threshold


def test_plain_calibration_aims_at_one_percent_of_strangers(gaussian_scores) -> None:  # type: ignore[no-untyped-def]
    assert DEFAULT_TARGET == 0.01
    result = calibrate_trials(*gaussian_scores, n_speakers=1)
    assert result.target_far == 0.01 and result.verify.counted <= 0.01 + 1e-9


def test_too_little_data_is_refused_with_what_is_needed() -> None:
    few = np.linspace(0.6, 0.9, MIN_GENUINE - 1)
    with pytest.raises(InputError, match=rf"at least {MIN_GENUINE} genuine scores.*give 5"):
        calibrate_trials(few, np.linspace(0, 0.5, 200), n_speakers=3)
    genuine = np.linspace(0.6, 0.9, 20)
    with pytest.raises(InputError, match=rf"at least {MIN_STRANGERS} stranger scores.*give 3"):
        calibrate_trials(genuine, np.linspace(0, 0.5, 3), n_speakers=3)
    with pytest.raises(InputError, match="between 0 and 1"):
        calibrate_trials(genuine, np.linspace(0, 0.5, 500), n_speakers=3, target_far=1.5)


def test_a_small_site_calibrates_and_says_what_holds() -> None:
    """10 speakers with 3 clips give 30 stranger trials and 270 impostor scores: too few
    to count a 1% rate, so the normal model sets the thresholds and the counted 95%
    limit says what holds without it (the old calibration refused: "needs 100")."""
    result = calibrate_population(_population(10), target_far=0.01)
    identify = result.identify
    assert identify.n_strangers == 30 and identify.named == 0
    assert identify.upper > 0.01
    # 0 of 30 named, each against the 9 others: the Clopper-Pearson limit 1 - 0.05 ** (1 / 30),
    # carried from 9 speakers to 10.
    limit = 1 - 0.05 ** (1 / 30)
    assert identify.upper == pytest.approx(1 - (1 - limit) ** (10 / 9), abs=1e-3)
    assert result.verify.n_strangers == 270


def test_too_few_voices_keep_the_default_or_are_refused() -> None:
    few = _population(MIN_VOICES - 1)
    kept = calibrate_population(few, default=0.9)
    assert kept.identify.threshold == kept.verify.threshold == 0.9
    assert kept.identify.method == "default"
    with pytest.raises(InputError, match=r"stranger voices.*cohort import"):
        calibrate_population(few)
    # Outside voices make up the number, and each is a stranger against all N.
    cohort = _population(8, seed=9).embeddings
    with_cohort = calibrate_population(few, cohort=cohort)
    assert with_cohort.identify.method != "default" and with_cohort.n_cohort == 24
    assert with_cohort.identify.n_strangers == few.embeddings.shape[0] + 24


def test_calibration_goes_below_the_default_only_as_far_as_its_trials_show() -> None:
    """33 stranger trials cannot show 1% of strangers: a default above the calibrated
    threshold stays. They can show 20% (0 of 33 named bounds it at about 10%), so with
    that target the threshold goes below the default, as far as the upper limit allows.
    330 impostor scores, none reaching it, show 1% per claim (0.9%)."""
    population = _population(11)
    free = calibrate_population(population)
    assert free.identify.threshold < 0.99
    kept = calibrate_population(population, default=0.99, verify_default=0.99)
    assert kept.identify.method == "default" and kept.identify.threshold == 0.99
    assert kept.verify.method == "upper" and kept.verify.upper <= 0.01
    loose = calibrate_population(population, target_far=0.2, default=0.99)
    assert loose.identify.method == "upper" and loose.identify.upper <= 0.2
    loose_free = calibrate_population(population, target_far=0.2).identify.threshold
    assert loose_free <= loose.identify.threshold < 0.99


def test_a_kept_default_is_not_pinned_while_the_other_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identify's kept default keeps following N; verify's calibrated threshold is stored."""
    import speakerdb.decision._calibration as calibration

    def partly(*_: object, **__: object) -> Calibration:
        def choice(operation: str, threshold: float, method: str) -> ThresholdChoice:
            return ThresholdChoice(operation, threshold, 0.01, 1, 30, 0, 0.0, 0.1, 0.0, 0.0, method)

        kept, verify = choice("identify", 0.7, "default"), choice("verify", 0.9, "upper")
        return Calibration(kept, verify, 18, 0, "enrollments")

    monkeypatch.setattr(calibration, "calibrate_database", partly)
    with SpeakerDB(tmp_path / "c.db", encoder=FakeEncoder()) as db:
        for k in range(3):
            db.enroll(f"p{k}", [(voice(120 + 60 * k, seed=k), 16000)], force=True)
        result = db.calibrate()
        assert not result.kept_defaults
        assert db.policy(score_norm="none", operation="identify").source.startswith("default")
        verify = db.policy(score_norm="none", operation="verify")
        assert (verify.threshold, verify.source) == (pytest.approx(0.9), "database")


def _population(voices: int = 4, seed: int = 1) -> Population:
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(16, voices)))[0].T  # orthonormal voices
    groups = {}
    for i, centre in enumerate(centres):
        clips = centre + 0.3 * rng.normal(size=(3, 16)) / 4
        groups[f"s{i}"] = clips / np.linalg.norm(clips, axis=1, keepdims=True)
    return Population.from_groups(groups)


def test_enrollment_scores_leave_the_scored_clip_out() -> None:
    population = _population()
    genuine, impostor = enrollment_scores(population)
    assert len(genuine) == 12 and len(impostor) == 12 * 3
    first = population.of("s0")
    expected = float(template_of(first[1:]) @ first[0])
    assert genuine[0] == pytest.approx(expected, abs=1e-6)
    others = [float(template_of(population.of(n)) @ first[0]) for n in ("s1", "s2", "s3")]
    assert impostor[:3] == pytest.approx(others, abs=1e-6)


def test_enrollment_calibration_needs_three_speakers_with_two_clips() -> None:
    groups = {"a": np.eye(4)[:2], "b": np.eye(4)[2:3], "c": np.eye(4)[3:]}
    with pytest.raises(InputError, match=r"at least 3 speakers with 2 or more clips.*has 1"):
        calibrate_population(Population.from_groups(groups))


def test_calibrating_too_small_a_database_names_the_fix_in_python_too(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "c.db", encoder=FakeEncoder()) as db:
        for k, pitch in enumerate((100, 200)):
            db.enroll(f"p{k}", [(voice(pitch + s, seed=10 * k + s), 16000) for s in range(2)])
        with pytest.raises(InputError, match=r"has 2; enroll more, or pass --trials \(trials="):
            db.calibrate()


def test_normalised_calibration_reports_its_score() -> None:
    population = _population(6)
    assert calibrate_population(population, score_norm="margin").score == "margin"
    result = calibrate_population(population, score_norm="asnorm", top_n=5)
    assert result.score == "asnorm"


def test_database_calibration_stores_the_threshold(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "c.db", encoder=FakeEncoder()) as db:
        for k, pitch in enumerate((100, 130, 160, 220, 280, 330)):
            clips = [(voice(pitch * (1 + 0.02 * s), seed=10 * k + s), 16000) for s in range(3)]
            db.enroll(f"p{k}", clips, force=True)
        dry = db.calibrate(apply=False)
        assert db.threshold()[1] != "database"
        result = db.calibrate()
        assert result == dry
        for choice in (result.identify, result.verify):  # each operation its own
            policy = db.policy(score_norm="none", operation=choice.operation)
            assert (policy.threshold, policy.source) == (
                pytest.approx(choice.threshold),
                "database",
            )
        assert (result.n_genuine, result.identify.n_strangers) == (18, 18)
        assert (result.verify.n_strangers, result.source) == (90, "enrollments")


def test_normalised_impostor_scores_are_a_strangers() -> None:
    """With margin scores, a clip's impostor scores are computed with its speaker not enrolled."""
    population = _population()
    genuine, impostor = enrollment_scores(population, score_norm="margin")
    first = population.of("s0")[0].astype(np.float64)
    others = np.array([template_of(population.of(n)) @ first for n in ("s1", "s2", "s3")])
    best = others.max()
    second = np.sort(others)[-2]
    expected = others + (others - np.where(others == best, second, best))
    assert impostor[:3] == pytest.approx(expected, abs=1e-6)
    own = template_of(population.of("s0")[1:]) @ first
    assert genuine[0] == pytest.approx(own + (own - best), abs=1e-6)


def test_duration_slope_recovers_a_known_quality_term() -> None:
    # Right answers and strangers whose log-odds are 20 * score - 1.2 * ln(d / 0.5 s) + c:
    # the slope that makes score - slope * ln(d / 0.5 s) decide is 1.2 / 20 = 0.06.
    rng = np.random.default_rng(8)
    n = 40_000
    scores = rng.uniform(0.3, 1.2, n)
    seconds = np.exp(rng.uniform(np.log(0.5), np.log(30.0), n))
    logit = 20 * scores - 1.2 * np.log(seconds / 0.5) - 12
    genuine = rng.random(n) < 1 / (1 + np.exp(-logit))
    assert duration_slope(scores, seconds, genuine) == pytest.approx(0.06, abs=0.004)
    # Durations outside [0.5, 30] s count as the nearest end, as in the scores.
    longer = np.where(seconds > 20, 120.0, np.where(seconds < 1, 0.1, seconds))
    ends = np.where(seconds > 20, 30.0, np.where(seconds < 1, 0.5, seconds))
    assert duration_slope(scores, longer, genuine) == pytest.approx(
        duration_slope(scores, ends, genuine)
    )
    with pytest.raises(InputError, match="both right answers and strangers"):
        duration_slope(scores, seconds, np.ones(n, bool))


def test_margin_duration_calibration_without_durations_names_the_fix() -> None:
    rng = np.random.default_rng(5)
    groups = {f"s{i}": rng.standard_normal((3, 8)).astype(np.float32) for i in range(6)}
    with pytest.raises(InputError, match="durations"):
        calibrate_population(Population.from_groups(groups), score_norm="margin-duration")


def test_the_databases_cohort_counts_its_voices_not_its_clips() -> None:
    """Ten clips of one outside voice do not make a 4-speaker site calibratable."""
    few = _population(MIN_VOICES - 2)
    clips = _population(1, seed=3).embeddings
    one_voice = few.with_outside(CohortVoices(("v",) * 3, clips, np.full(3, 2.0)))
    # A default below any calibrated threshold: only too few voices can keep it.
    assert calibrate_population(one_voice, default=-1.0).identify.method == "default"
    labels = ("v1", "v2", "v3")
    three = few.with_outside(CohortVoices(labels, clips, np.full(3, 2.0)))
    calibrated = calibrate_population(three, default=-1.0)
    assert calibrated.identify.method != "default" and calibrated.n_cohort == 3


def test_calibrate_keeping_the_default_clears_a_stored_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too few voices keep the default: a threshold stored before for that operation is
    removed, so that the default decides (--dry-run says it would be); the CLI says what it
    cleared and --json carries it as ``calibration.cleared``."""
    monkeypatch.chdir(tmp_path)
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        for k, pitch in enumerate((100, 160, 280)):
            clips = [(voice(pitch * (1 + 0.02 * s), seed=10 * k + s), 16000) for s in range(2)]
            db.enroll(f"p{k}", clips, force=True)
    plain = fake_cli("calibrate")
    assert plain.stdout.startswith("kept the default (nothing stored)")
    assert "clear" not in plain.stdout and "notice" not in plain.stderr
    fake_cli("set-threshold", "0.5", "--for", "verify")
    said = fake_cli("calibrate", "--dry-run")
    assert said.stdout.splitlines()[-1] == (
        "would clear the verify threshold stored earlier, 0.5000 (raw cosine): the default "
        "kept above replaces it"
    )
    assert "notice" not in said.stderr
    assert _verify_threshold()["value"] == 0.5  # a dry run changes nothing
    as_json = fake_cli("calibrate", "--json")
    assert "notice" not in as_json.stderr
    calibration = json.loads(as_json.stdout)["calibration"]
    assert calibration["cleared"] == [{"operation": "verify", "score": "none", "value": 0.5}]
    assert calibration["overridden"] == []
    assert _verify_threshold()["value"] == FALLBACK_THRESHOLD
    assert json.loads(fake_cli("info", "--json").stdout)["stored_thresholds"] == []
    again = fake_cli("calibrate")
    assert "clear" not in again.stdout  # nothing left to clear


def _verify_threshold() -> dict[str, object]:
    return json.loads(fake_cli("info", "--json").stdout)["thresholds"]["verify"]


def test_a_given_threshold_still_outranks_the_default_calibrate_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored threshold is cleared all the same, but SPEAKERDB_THRESHOLD (or a threshold
    the database was opened with) outranks the database: the result names it, with the
    fix, in ``overridden``."""
    monkeypatch.delenv("SPEAKERDB_THRESHOLD", raising=False)
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        for k, pitch in enumerate((100, 160, 280)):
            clips = [(voice(pitch * (1 + 0.02 * s), seed=10 * k + s), 16000) for s in range(2)]
            db.enroll(f"p{k}", clips)
        plain = db.calibrate()
        assert plain.kept_defaults and plain.overridden == plain.cleared == ()
        db.set_threshold(0.5, operation="verify")
        monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.6")
        result = db.calibrate()
        assert [(c.operation, c.score, c.value) for c in result.cleared] == [
            ("verify", "none", 0.5)
        ]
        assert db.info().stored_thresholds == ()
        assert db.policy(operation="verify").threshold == 0.6
    overridden = result.overridden
    assert [(o.operation, o.score, o.threshold, o.source) for o in overridden] == [
        ("identify", "cosine", 0.6, "environment"),
        ("verify", "cosine", 0.6, "environment"),
    ]
    assert overridden[0].notice == (
        f"identify's cosine threshold stays 0.6000 (environment), not the default "
        f"{overridden[0].default:.4f} kept here: SPEAKERDB_THRESHOLD outranks the database; "
        "unset it to let the default decide"
    )
    monkeypatch.delenv("SPEAKERDB_THRESHOLD")
    with SpeakerDB(path, encoder=FakeEncoder(), threshold=0.65) as db:
        (given, _) = db.calibrate(apply=False).overridden
        assert (given.threshold, given.source) == (0.65, "argument")
        assert "opened with" in given.notice
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert db.policy(operation="verify").threshold == FALLBACK_THRESHOLD
