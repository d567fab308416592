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

import pytest
from conftest import read_rows
from typer.testing import CliRunner

from speakerdb import Identification, SpeakerDB
from speakerdb.cli import app

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
