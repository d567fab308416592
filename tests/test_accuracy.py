"""End to end on real speech: enroll real voices with the offline encoder, identify held-out clips.

The corpus is the shared one (../shared/data): 9 enrolled real speakers with 3
enrollment clips each, and held-out clips of them and of 2 never-enrolled
impostors. This checks the whole pipeline (decode, resample, GE2E, templates,
SQLite, FAISS) on real audio, through the CLI for enrollment and the Python
API for identification.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import read_rows
from typer.testing import CliRunner

from speakerdb import Identification, SpeakerDB
from speakerdb.audio import load_clip
from speakerdb.cli import app
from speakerdb.decision import Population, duration_penalty, population_scores

pytestmark = pytest.mark.slow

PER_SPEAKER = 12


def held_out(corpus: Path) -> list[dict[str, str]]:
    taken: Counter[str] = Counter()
    rows = []
    for row in read_rows(corpus / "protocol" / "test.csv"):
        if taken[row["speaker_id"]] < PER_SPEAKER:
            taken[row["speaker_id"]] += 1
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def enrolled_db(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("accuracy") / "real.db"
    manifest = corpus / "protocol" / "enroll.csv"
    result = CliRunner().invoke(
        app, ["enroll-batch", str(manifest), "--db", str(db), "--model", "resemblyzer"]
    )
    assert result.exit_code == 0, result.output
    return db


def test_every_enrolled_real_voice_is_in_the_database(enrolled_db: Path, corpus: Path) -> None:
    expected = Counter(r["speaker_id"] for r in read_rows(corpus / "protocol" / "enroll.csv"))
    with SpeakerDB(enrolled_db) as db:
        assert {s.name: s.n_utterances for s in db.speakers()} == dict(expected)
        assert db.info().encoder.model == "resemblyzer"


@pytest.fixture(scope="module")
def identified(enrolled_db: Path, corpus: Path) -> list[tuple[dict[str, str], Identification]]:
    rows = [r for r in held_out(corpus) if r["enrolled"] == "1"]
    with SpeakerDB(enrolled_db) as db:
        results = db.identify_many([r["path"] for r in rows], top_k=20)
    return list(zip(rows, results))


def test_held_out_real_clips_are_identified(identified) -> None:  # type: ignore[no-untyped-def]
    top1 = sum(res.best.speaker == row["speaker_id"] for row, res in identified)
    top5 = sum(row["speaker_id"] in [m.speaker for m in res.matches[:5]] for row, res in identified)
    accuracy = top1 / len(identified)
    print(f"closed-set top-1 {top1}/{len(identified)} = {accuracy:.3f}, top-5 {top5}")
    assert accuracy >= 0.9
    assert top5 / len(identified) >= 0.97


def test_scores_separate_same_speaker_from_others(identified) -> None:  # type: ignore[no-untyped-def]
    target, other = [], []
    for row, res in identified:
        assert [m.score for m in res.matches] == sorted(
            (m.score for m in res.matches), reverse=True
        )
        for match in res.matches:
            (target if match.speaker == row["speaker_id"] else other).append(match.score)
    mean_target, mean_other = sum(target) / len(target), sum(other) / len(other)
    print(f"mean cosine: same speaker {mean_target:.3f}, other speakers {mean_other:.3f}")
    assert mean_target > mean_other + 0.15


def test_real_clips_decide_by_margin_duration(enrolled_db: Path, corpus: Path) -> None:
    rows = held_out(corpus)
    some = rows[::PER_SPEAKER]  # one clip of each voice through identify
    with SpeakerDB(enrolled_db) as db:
        assert db.score_norm()[0] == "margin-duration"  # GE2E's default
        results = db.identify_many([r["path"] for r in some], top_k=2)
        queries = db.embed([r["path"] for r in rows])
        population = db.population()
    seconds = [load_clip(r["path"]).spoken_s for r in rows]  # what the encoder heard
    for result, length in zip(results, seconds[::PER_SPEAKER], strict=True):
        first, second = (m.score for m in result.matches)
        expected = 2 * first - second - duration_penalty([length])[0]
        assert result.best.normalized == pytest.approx(expected, abs=1e-5)
        assert first >= second  # the ranking is the cosine's
    truth = np.array(
        [population.names.index(r["speaker_id"]) if r["enrolled"] == "1" else -1 for r in rows]
    )
    accepted = {
        mode: impostors_at_correct_id(mode, queries, population, truth, seconds)
        for mode in ("none", "margin-duration")
    }
    print(f"impostors accepted at 80 % correct identification: {accepted}")
    assert 2 * accepted["margin-duration"] <= accepted["none"]


def impostors_at_correct_id(
    mode: str, queries: np.ndarray, population: Population, truth: np.ndarray, seconds: list[float]
) -> int:
    """Impostor clips (never-enrolled voices, and each enrolled voice with its speaker
    removed) whose best score reaches the threshold that gives 80 % correct answers."""
    lengths = np.asarray(seconds)
    scores = population_scores(mode, queries, population, 50, lengths)[1]
    top, genuine = scores.max(axis=1), truth >= 0
    right = np.sort(top[genuine & (scores.argmax(axis=1) == truth)])[::-1]
    threshold = right[int(np.ceil(0.8 * genuine.sum())) - 1]
    impostor = [top[~genuine]]
    for k, name in enumerate(population.names):
        mine = truth == k
        others = {n: population.of(n) for n in population.names if n != name}
        held = population_scores(
            mode, queries[mine], Population.from_groups(others), 50, lengths[mine]
        )
        impostor.append(held[1].max(axis=1))
    return int(np.sum(np.concatenate(impostor) >= threshold))


def test_calibrate_on_real_voices_keeps_strangers_out(enrolled_db: Path, corpus: Path) -> None:
    """`speakerdb calibrate` on 9 real GE2E voices: each plays the stranger against the
    other 8 (27 stranger trials), verify gets the one-claim scores (27 x 8); at the
    identify threshold, few of the never-enrolled voices' held-out clips get a name."""
    import json

    result = CliRunner().invoke(app, ["calibrate", "--db", str(enrolled_db), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    calibration = json.loads(result.stdout)["calibration"]
    identify, verify = calibration["identify"], calibration["verify"]
    assert calibration["score"] == "margin-duration" and identify["target"] == 0.01
    assert (identify["n_strangers"], identify["n_speakers"]) == (27, 9)
    assert verify["n_strangers"] == 27 * 8
    assert identify["named"] <= 1 and identify["upper"] > 0.01  # 27 trials cannot show 1 %
    strangers = [r["path"] for r in held_out(corpus) if r["enrolled"] == "0"]
    with SpeakerDB(enrolled_db) as db:
        results = db.identify_many(
            strangers, threshold=identify["threshold"], score_norm="margin-duration"
        )
    named = sum(r.speaker is not None for r in results)
    print(f"identify {identify['threshold']:.3f}: {named} of {len(strangers)} stranger clips named")
    assert named <= 0.1 * len(strangers)
