"""AS-norm and margin scores against a direct computation, and through the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import InputError, SpeakerDB
from speakerdb.decision import (
    Cohort,
    Population,
    as_norm,
    cohort_stats,
    margin_scores,
    normalized_matches,
    population_scores,
)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def direct_as_norm(raw, queries, templates, cohort, top_n):  # type: ignore[no-untyped-def]
    """The textbook formula, one trial at a time, leaving out the claimed speaker's items."""
    out = np.empty_like(raw)
    for j, template in enumerate(templates):
        usable = cohort.embeddings[cohort.owners != j]
        e = np.sort(usable @ template)[::-1][:top_n]
        for i, query in enumerate(queries):
            t = np.sort(usable @ query)[::-1][:top_n]
            out[i, j] = 0.5 * ((raw[i, j] - e.mean()) / e.std() + (raw[i, j] - t.mean()) / t.std())
    return out


@pytest.mark.parametrize("top_n", [2, 5, 100])
def test_as_norm_equals_the_direct_computation(top_n: int) -> None:
    rng = np.random.default_rng(3)
    templates, queries = unit(rng.normal(size=(4, 8))), unit(rng.normal(size=(6, 8)))
    owners = np.array([0, 0, 1, 2, 2, 3, -1, -1, -1, -1])  # -1: an imported cohort clip
    cohort = Cohort(unit(rng.normal(size=(10, 8))), owners)
    raw = queries @ templates.T
    got = as_norm(raw, queries, templates, cohort, top_n)
    assert got == pytest.approx(direct_as_norm(raw, queries, templates, cohort, top_n), abs=1e-9)


def test_cohort_stats_per_vector_exclusion() -> None:
    cohort = Cohort(np.eye(3), np.array([0, 1, 2]))
    vector = np.array([[0.9, 0.5, 0.1]])
    mean, std = cohort_stats(vector, cohort, np.array([0]), top_n=2)
    assert mean[0] == pytest.approx(0.3) and std[0] == pytest.approx(0.2)  # 0.5 and 0.1
    means, _ = cohort_stats(vector, cohort, np.array([[0, 1]]), top_n=1)
    assert means[0].tolist() == pytest.approx([0.5, 0.9])


def test_margin_scores_by_hand() -> None:
    raw = np.array([[0.9, 0.6, 0.8], [0.5, 0.5, 0.1]])
    # Each cell: s + (s - best other). Row 0: 0.9+0.1, 0.6-0.3, 0.8-0.1; row 1: ties give 0.
    expected = np.array([[1.0, 0.3, 0.7], [0.5, 0.5, -0.3]])
    assert np.allclose(margin_scores(raw), expected)
    assert margin_scores(np.array([[0.7]])).tolist() == [[0.7]]  # nobody else: the cosine


def test_normalized_matches_keep_raw_cosines() -> None:
    rng = np.random.default_rng(4)
    population = Population.from_groups({f"s{i}": unit(rng.normal(size=(2, 8))) for i in range(5)})
    queries = unit(rng.normal(size=(3, 8)))
    raw, normalized = population_scores("asnorm", queries, population, 50)
    for row, matches in enumerate(normalized_matches("asnorm", queries, population, 50, 3)):
        assert len(matches) == 3
        assert [m.normalized for m in matches] == sorted(normalized[row], reverse=True)[:3]
        for match in matches:
            column = population.names.index(match.speaker)
            assert match.score == pytest.approx(raw[row, column])


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    with SpeakerDB(tmp_path / "n.db", encoder=FakeEncoder()) as database:
        # Four speakers: each claim's AS-norm cohort holds the 3 others (MIN_COHORT_VOICES).
        for k, pitch in enumerate((100, 160, 250, 600)):
            clips = [(voice(pitch * (1 + 0.03 * s), seed=10 * k + s), 16000) for s in range(2)]
            database.enroll(f"p{k}", clips, force=True)
        yield database


def test_identify_and_verify_with_asnorm_match_a_direct_computation(db) -> None:  # type: ignore[no-untyped-def]
    clip = (voice(104, seed=99), 16000)
    query = db.embed([clip])
    raw, expected = population_scores("asnorm", query, db.population(), 50)
    result = db.identify(clip, score_norm="asnorm", top_k=3)
    assert result.best is not None and result.best.speaker == "p0"
    assert result.best.normalized == pytest.approx(expected[0].max())
    assert result.best.score == pytest.approx(raw[0, 0], abs=1e-5)  # still the raw cosine
    check = db.verify("p0", clip, score_norm="asnorm")
    assert check.normalized == pytest.approx(expected[0, 0])
    assert check.score == pytest.approx(raw[0, 0], abs=1e-5)


def test_score_norm_is_stored_per_database_with_its_own_threshold(db) -> None:  # type: ignore[no-untyped-def]
    clip = (voice(104, seed=99), 16000)
    assert db.identify(clip).best.normalized is None
    assert db.set_score_norm("margin") == ("margin", 50)
    db.set_threshold(0.5, score_norm="margin")
    result = db.identify(clip)
    assert result.best.normalized is not None and result.threshold == 0.5
    assert db.threshold()[0] != 0.5  # the cosine threshold is another setting
    assert db.identify(clip, score_norm="none").best.normalized is None
    with pytest.raises(InputError, match="one of none, asnorm, margin"):
        db.set_score_norm("znorm")


def test_margin_through_the_index_equals_the_direct_computation(db) -> None:  # type: ignore[no-untyped-def]
    clip = (voice(170, seed=98), 16000)
    query = db.embed([clip])
    expected = population_scores("margin", query, db.population(), 50)[1]
    result = db.identify(clip, score_norm="margin", top_k=3)
    for match in result.matches:
        column = db.population().names.index(match.speaker)
        assert match.normalized == pytest.approx(expected[0, column], abs=1e-5)
    for name in ("p0", "p1", "p2", "p3"):
        check = db.verify(name, clip, score_norm="margin")
        column = db.population().names.index(name)
        assert check.normalized == pytest.approx(expected[0, column], abs=1e-5)
    assert db.identify(clip, score_norm="margin", top_k=1).matches[0].speaker == "p1"


# -- a cohort too small for AS-norm ------------------------------------------------


def small_db(path: Path, model: str = "fake-encoder") -> SpeakerDB:
    """Two enrolled speakers: each claim's cohort is the one other, fewer than 3 voices."""
    database = SpeakerDB(path, encoder=FakeEncoder(model=model))
    for k, pitch in enumerate((100, 250)):
        clips = [(voice(pitch * (1 + 0.03 * s), seed=10 * k + s), 16000) for s in range(2)]
        database.enroll(f"p{k}", clips, force=True)
    database.set_score_norm("asnorm")
    return database


@pytest.mark.parametrize(
    ("model", "fallback"), [("fake-encoder", "none"), ("resemblyzer", "margin-duration")]
)
def test_a_cohort_too_small_falls_back_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, model: str, fallback: str
) -> None:
    clip = (voice(104, seed=99), 16000)
    with small_db(tmp_path / "s.db", model) as db:
        with caplog.at_level("WARNING", logger="speakerdb"):
            found = db.identify(clip)
            claim = db.verify("p0", clip, threshold=2.0)  # a threshold for AS-norm, not this
        for result in (found, claim):
            policy = result.decided_by
            assert policy.score_norm == fallback and policy.source.startswith("default for")
            assert policy.notice is not None
            assert "asnorm needs a cohort of at least 3 voices" in policy.notice
            assert "has 1" in policy.notice and "speakerdb cohort import" in policy.notice
        assert found.best is not None and found.best.normalized != pytest.approx(81.4)
        assert claim.threshold != 2.0
        assert sum("asnorm needs a cohort" in r.getMessage() for r in caplog.records) == 2


def test_outside_voices_make_the_cohort_big_enough(tmp_path: Path) -> None:
    clip = (voice(104, seed=99), 16000)
    with small_db(tmp_path / "s.db") as db:
        db.cohort.add("o1", [(voice(400, seed=41), 16000), (voice(410, seed=42), 16000)])
        assert db.identify(clip).decided_by.score_norm == "none"  # 1 + 1 voice: still too few
        db.cohort.add("o2", [(voice(800, seed=43), 16000)])
        result = db.identify(clip)
        assert result.decided_by.score_norm == "asnorm" and result.decided_by.notice is None
        assert result.best is not None and result.best.normalized is not None
        query = db.embed([clip])
        expected = population_scores("asnorm", query, db.population(), 50)[1]
        assert result.best.normalized == pytest.approx(expected[0].max())
        assert abs(result.best.normalized) < 50


def test_calibrating_as_norm_on_a_tiny_cohort_is_refused(tmp_path: Path) -> None:
    with small_db(tmp_path / "s.db") as db:
        with pytest.raises(InputError, match=r"at least 3 voices.*speakerdb cohort import"):
            db.calibrate(score_norm="asnorm")


def test_the_cli_says_why_as_norm_did_not_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import soundfile as sf
    from conftest import fake_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPEAKERDB_THRESHOLD", raising=False)
    small_db(tmp_path / "speakers.db").close()
    sf.write(tmp_path / "x.wav", voice(104, seed=99), 16000)
    result = fake_cli("identify", "x.wav", "--json")
    (doc,) = json.loads(result.stdout)
    assert doc["policy"]["score_norm"] == "none"
    assert "speakerdb: notice: asnorm needs a cohort" in result.stderr
