"""The IVF index and its choice by size: against a NumPy reference, through the API and CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice
from typer.testing import CliRunner

from speakerdb import SpeakerDB
from speakerdb.cli import app
from speakerdb.errors import InputError
from speakerdb.storage import (
    IndexFileError,
    IndexPlan,
    SpeakerIndex,
    nprobe_for,
    plan_for,
    read_header,
)

DIM = 32


def clustered(n: int, seed: int = 0, groups: int = 40) -> np.ndarray:
    """Unit vectors around ``groups`` centres in an 8-d subspace, as real templates cluster."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((DIM, 8)))[0]
    centres = rng.standard_normal((groups, 8))
    x = centres[rng.integers(0, groups, n)] + 0.5 * rng.standard_normal((n, 8))
    x = x @ basis.T + 0.1 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(vectors: dict[int, np.ndarray], queries: np.ndarray, k: int) -> np.ndarray:
    ids = np.array(list(vectors))
    scores = queries @ np.stack(list(vectors.values())).T
    return ids[np.argsort(-scores, axis=1)[:, :k]]


def ivf_index(vectors: dict[int, np.ndarray]) -> SpeakerIndex:
    ids = np.array(list(vectors))
    plan = plan_for("ivf", len(ids))
    return SpeakerIndex(DIM, ids, np.stack(list(vectors.values())), plan)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / t.size for f, t in zip(found, truth, strict=True)])
    )


def test_ivf_recall_and_exact_scores_against_numpy() -> None:
    data = clustered(2000)
    vectors = {i * 7 + 1: v for i, v in enumerate(data)}
    index = ivf_index(vectors)
    assert index.plan.kind == "ivf" and index.nprobe == nprobe_for(index.plan.nlist)
    queries = clustered(100, seed=1)
    scores, found = index.search(queries, 10)
    assert recall(found, brute_force(vectors, queries, 10)) >= 0.99
    # The scores are the exact cosines of the speakers found, best first.
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    pairs = zip(queries, found, strict=True)
    exact = np.array([[vectors[int(i)] @ q for i in ids] for q, ids in pairs])
    np.testing.assert_allclose(scores, exact, atol=1e-5)


def test_ivf_upsert_and_remove_are_exact() -> None:
    data = clustered(800)
    vectors = {i + 1: v for i, v in enumerate(data)}
    index = ivf_index(vectors)
    moved = clustered(1, seed=5)[0]
    index.upsert(10, moved)
    index.remove(20)
    index.upsert(5000, data[0])  # a new speaker
    vectors[10] = moved
    del vectors[20]
    vectors[5000] = data[0]
    assert sorted(index.ids()) == sorted(vectors) and len(index) == len(vectors)
    scores, ids = index.search(moved[None, :], 1)
    assert ids[0, 0] == 10 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    _, every = index.search(data, 5)
    assert 20 not in every


def test_ivf_file_round_trip_and_integrity(tmp_path: Path) -> None:
    vectors = {i + 1: v for i, v in enumerate(clustered(600))}
    index = ivf_index(vectors)
    path = tmp_path / "x.faiss"
    index.save(path, "uuid", 3)
    loaded, header = SpeakerIndex.load(path)
    assert (header.kind, header.count, header.generation) == ("ivf", 600, 3)
    assert loaded.plan == index.plan and loaded.nprobe == index.nprobe
    queries = clustered(20, seed=2)
    np.testing.assert_array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="checksum"):
        SpeakerIndex.load(path)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(IndexFileError):
        read_header(path)


def test_ivf_build_is_deterministic(tmp_path: Path) -> None:
    data = clustered(900)
    ids = np.arange(1, 901)
    order = np.random.default_rng(3).permutation(900)
    first = SpeakerIndex(DIM, ids, data, IndexPlan("ivf", 20))
    second = SpeakerIndex(DIM, ids[order], data[order], IndexPlan("ivf", 20))
    first.save(tmp_path / "a", "u", 1)
    second.save(tmp_path / "b", "u", 1)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_plan_by_size_with_hysteresis_and_retraining() -> None:
    assert plan_for("auto", 9999, auto_from=10_000).kind == "flat"
    ivf = plan_for("auto", 10_000, auto_from=10_000)
    assert ivf == IndexPlan("ivf", 200)
    assert plan_for("auto", 6000, ivf, auto_from=10_000) == ivf  # no flip back near the crossover
    assert plan_for("auto", 4000, ivf, auto_from=10_000).kind == "flat"
    big = plan_for("ivf", 10**6)
    assert big.nlist == 2000
    assert plan_for("ivf", 1_500_000, big) == big  # grown, but not enough to retrain
    assert plan_for("ivf", 5 * 10**6, big).nlist > big.nlist
    assert plan_for("flat", 10**7).kind == "flat"
    with pytest.raises(InputError, match="auto, flat, ivf"):
        plan_for("hnsw", 10)


def enroll(db: SpeakerDB, name: str, pitch: float) -> None:
    db.enroll(name, [(voice(pitch, seconds=1.5, seed=s), 16000) for s in (0, 1)], force=True)


PITCHES = [110.0, 150.0, 190.0, 240.0, 300.0, 370.0]


def test_auto_switches_to_ivf_by_size_through_the_api(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert db.index.configure("auto", ivf_from=4).kind == "flat"
        for i, pitch in enumerate(PITCHES[:3]):
            enroll(db, f"s{i}", pitch)
        assert db.index.choice().kind == "flat"
        enroll(db, "s3", PITCHES[3])
        choice = db.index.choice()
        assert (choice.kind, choice.setting, choice.ivf_from, choice.n_speakers) == (
            "ivf",
            "auto",
            4,
            4,
        )
        assert db.info().index_state == "up to date (4 speakers, IVF)"
        assert db.identify((voice(PITCHES[3], seed=9), 16000)).best.speaker == "s3"
        db.remove("s3")
        db.remove("s2")
        assert db.index.choice().kind == "ivf"  # 2 is half the crossover: kept
        with SpeakerDB(path, encoder=FakeEncoder()) as other:  # as a new process would
            assert other.index.rebuild() == 2 and other.index.choice().kind == "ivf"
        db.remove("s1")
        assert db.index.choice().kind == "flat"
    with SpeakerDB(path, encoder=FakeEncoder()) as again:  # the setting is in the database
        assert again.index.choice().ivf_from == 4
        assert again.index.configure("ivf").kind == "ivf"
        assert again.index.rebuild() == 1 and again.index.choice().kind == "ivf"
        with pytest.raises(InputError, match="index kind"):
            again.index.configure("fast")


def test_index_command(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        for i, pitch in enumerate(PITCHES[:2]):
            enroll(db, f"s{i}", pitch)
    runner = CliRunner()
    shown = runner.invoke(app, ["index", "--db", str(path)])
    assert shown.exit_code == 0 and "index: flat; 2 speaker(s); setting auto" in shown.stdout
    changed = runner.invoke(app, ["index", "--db", str(path), "--kind", "ivf", "--json"])
    assert changed.exit_code == 0
    assert json.loads(changed.stdout)["kind"] == "ivf"
    bad = runner.invoke(app, ["index", "--db", str(path), "--kind", "hnsw"])
    assert bad.exit_code == 2 and "auto, flat, ivf" in bad.output
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert db.identify((voice(PITCHES[1], seed=7), 16000)).best.speaker == "s1"


def test_names_follow_removal_reenrollment_and_rename(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "s.db", encoder=FakeEncoder()) as db:
        enroll(db, "alice", PITCHES[0])
        enroll(db, "bob", PITCHES[2])
        clip = (voice(PITCHES[2], seed=8), 16000)
        assert db.identify(clip).best.speaker == "bob"
        old_id = db.speaker("bob").id
        db.remove("bob")
        enroll(db, "carol", PITCHES[2])  # takes bob's id: SQLite reuses the largest
        assert db.speaker("carol").id == old_id
        assert db.identify(clip).best.speaker == "carol"
        db.rename("carol", "dave")
        assert db.identify(clip).best.speaker == "dave"
        with SpeakerDB(tmp_path / "s.db", encoder=FakeEncoder()) as other:
            other.rename("dave", "erin")  # another handle: the first one's cache follows
        assert db.identify(clip).best.speaker == "erin"


def test_batches_match_single_queries(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "s.db", encoder=FakeEncoder()) as db:
        for i, pitch in enumerate(PITCHES):
            enroll(db, f"s{i}", pitch)
        clips = [(voice(PITCHES[i % 6] * 1.02, seed=20 + i), 16000) for i in range(24)]
        together = db.identify_many(clips, top_k=3)
        alone = [db.identify(c, top_k=3) for c in clips]
        for a, b in zip(together, alone, strict=True):
            assert [m.speaker for m in a.matches] == [m.speaker for m in b.matches]
            np.testing.assert_allclose(
                [m.score for m in a.matches], [m.score for m in b.matches], atol=1e-5
            )


def test_files_written_before_streaming_still_load(tmp_path: Path) -> None:
    """The header line used to follow the magic unpadded; such files stay readable."""
    import faiss

    vectors = {i + 1: v for i, v in enumerate(clustered(50))}
    index = SpeakerIndex(DIM, np.array(list(vectors)), np.stack(list(vectors.values())))
    payload = faiss.serialize_index(index._index).tobytes()
    meta = {"db_uuid": "u", "generation": 4, "dim": DIM, "count": 50}
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    path = tmp_path / "old.faiss"
    path.write_bytes(b"SPEAKERDB-INDEX 1\n" + json.dumps(meta).encode() + b"\n" + payload)
    loaded, header = SpeakerIndex.load(path)
    assert (header.generation, header.kind, len(loaded)) == (4, "flat", 50)
    assert sorted(loaded.ids()) == sorted(vectors)
