"""Bulk enrollment on Ray (``enroll-batch --ray``): the same result as the plain batch,
one model copy per actor, and a rerun that embeds only what is left.

The model is the tiny random x-vector of conftest: its embeddings mean nothing, but a
clip's embedding is the same on every process, which is what these tests compare.
One local Ray cluster serves the module (started once: it takes seconds).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import voice
from typer.testing import CliRunner

from speakerdb import SpeakerDB
from speakerdb.cli import app
from speakerdb.services import read_manifest
from speakerdb.services._raybatch import RayOptions

pytestmark = pytest.mark.slow

PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0, "dave": 220.0}
RUNNER = CliRunner()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    lines = ["speaker,path"]
    for name, pitch in PITCHES.items():
        for i in range(2):
            sf.write(tmp_path / f"{name}{i}.wav", voice(pitch, 1.5, 16000, i), 16000)
            lines.append(f"{name},{name}{i}.wav")
    lines.append("erin,missing.wav")  # a row that fails, and does not stop the others
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "people.csv"


def templates(db: SpeakerDB) -> dict[str, np.ndarray]:
    with db._storage.read() as snapshot:
        return {s.name: snapshot.template(s.name) for s in snapshot.speakers()}


def test_ray_enrolls_as_the_plain_batch(
    ray_cluster: None, manifest: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    rows = read_manifest(manifest)
    with SpeakerDB(tmp_path / "plain.db", model=str(tiny_model_dir)) as db:
        plain = db.enroll_batch(rows)
        expected = templates(db)
    with SpeakerDB(tmp_path / "ray.db", model=str(tiny_model_dir)) as db:
        report = db.enroll_batch(rows, ray=RayOptions(actors=2, batch_size=3))
        assert db._slot._encoder is None  # the driver never loaded the model: actors did
        got = templates(db)
        assert db.info().encoder == db.encoder().info
    assert report.n_enrolled == plain.n_enrolled == 8
    assert [f.source for f in report.failures] == [f.source for f in plain.failures]
    assert "missing.wav" in report.failures[0].source
    assert got.keys() == expected.keys() == set(PITCHES)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


def test_a_rerun_embeds_only_what_is_left(
    ray_cluster: None, manifest: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    rows = read_manifest(manifest)
    with SpeakerDB(tmp_path / "ray.db", model=str(tiny_model_dir)) as db:
        first = db.enroll_batch(rows[:3])  # an interrupted job: alice and half of bob
        assert first.n_enrolled == 3
        resumed = db.enroll_batch(rows, ray=RayOptions(actors=2))
        again = db.enroll_batch(rows, ray=RayOptions(actors=1))
        counts = {s.name: s.n_utterances for s in db.speakers()}
    assert resumed.n_enrolled == 5 and len(resumed.skipped) == 3
    assert again.n_enrolled == 0 and len(again.skipped) == 8
    assert counts == dict.fromkeys(PITCHES, 2)


def test_the_command_line_on_postgresql(
    ray_cluster: None, manifest: Path, postgres_plain: Any, tiny_model_dir: Path
) -> None:
    from _postgres import database_fixture

    for pg_url in database_fixture(postgres_plain):  # one new database, dropped afterwards
        args = ["enroll-batch", str(manifest), "--db", pg_url, "--model", str(tiny_model_dir)]
        result = RUNNER.invoke(app, [*args, "--ray", "--actors", "2", "--json"])
        assert result.exit_code == 1, result.output  # one clip failed, the others enrolled
        report = json.loads(result.stdout)
        assert len(report["enrollments"]) == 4 and len(report["failures"]) == 1
        with SpeakerDB(pg_url) as db:
            assert {s.name: s.n_utterances for s in db.speakers()} == dict.fromkeys(PITCHES, 2)
