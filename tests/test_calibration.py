"""Calibration: known answers on synthetic score distributions, refusals, and a database."""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import InputError, SpeakerDB
from speakerdb._vectors import template_of
from speakerdb.decision import Population
from speakerdb.decision._calibration import (
    MIN_GENUINE,
    calibrate_population,
    calibrate_scores,
    duration_slope,
    enrollment_scores,
)

N = NormalDist()


@pytest.fixture(scope="module")
def gaussian_scores() -> tuple[np.ndarray, np.ndarray]:
    """Genuine ~ N(0.7, 0.1), impostor ~ N(0.4, 0.1): equal spreads, so the EER threshold
    is the midpoint 0.55 and the EER is Phi(-1.5) = 6.68 %."""
    rng = np.random.default_rng(0)
    return rng.normal(0.7, 0.1, 40_000), rng.normal(0.4, 0.1, 40_000)


def test_eer_threshold_of_known_distributions(gaussian_scores) -> None:  # type: ignore[no-untyped-def]
    result = calibrate_scores(*gaussian_scores)
    assert result.method == "eer"
    assert result.threshold == pytest.approx(0.55, abs=0.005)
    assert result.eer == pytest.approx(N.cdf(-1.5), abs=0.004)
    assert result.far == pytest.approx(result.frr, abs=0.004)


def test_target_far_of_known_distributions(gaussian_scores) -> None:  # type: ignore[no-untyped-def]
    # FAR 1 %: the impostors' 99th percentile, 0.4 + 0.1 * 2.326 = 0.633;
    # the genuine scores below it: Phi((0.633 - 0.7) / 0.1) = 25.1 %.
    result = calibrate_scores(*gaussian_scores, target_far=0.01)
    expected = 0.4 + 0.1 * N.inv_cdf(0.99)
    assert result.method == "far"
    assert result.threshold == pytest.approx(expected, abs=0.005)
    assert result.far <= 0.01
    assert result.frr == pytest.approx(N.cdf((expected - 0.7) / 0.1), abs=0.01)


def test_too_little_data_is_refused_with_what_is_needed() -> None:
    few = np.linspace(0.6, 0.9, MIN_GENUINE - 1)
    with pytest.raises(InputError, match=rf"at least {MIN_GENUINE} genuine scores.*give 9"):
        calibrate_scores(few, np.linspace(0, 0.5, 200))
    genuine = np.linspace(0.6, 0.9, 20)
    with pytest.raises(InputError, match=r"false-accept rate of 0.01 needs at least 100.*give 50"):
        calibrate_scores(genuine, np.linspace(0, 0.5, 50), target_far=0.01)
    with pytest.raises(InputError, match="between 0 and 1"):
        calibrate_scores(genuine, np.linspace(0, 0.5, 500), target_far=1.5)


def _population() -> Population:
    rng = np.random.default_rng(1)
    centres = np.linalg.qr(rng.normal(size=(16, 4)))[0].T  # 4 orthonormal voices
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


def test_normalised_calibration_reports_its_score() -> None:
    population = _population()
    assert calibrate_population(population, score_norm="margin").score == "margin"
    result = calibrate_population(population, score_norm="asnorm", top_n=5)
    assert result.score == "asnorm"


def test_database_calibration_stores_the_threshold(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "c.db", encoder=FakeEncoder()) as db:
        for k, pitch in enumerate((100, 150, 220, 330)):
            clips = [(voice(pitch * (1 + 0.02 * s), seed=10 * k + s), 16000) for s in range(3)]
            db.enroll(f"p{k}", clips, force=True)
        dry = db.calibrate(apply=False)
        assert db.threshold()[1] != "database"
        result = db.calibrate()
        assert result == dry
        assert db.threshold() == (pytest.approx(result.threshold), "database")
        assert (result.n_genuine, result.n_impostor, result.source) == (12, 36, "enrollments")


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
