"""Property tests of the invariants speakerdb promises, with Hypothesis and the fake encoder."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from conftest import FakeEncoder, new_database, voice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from speakerdb import DuplicateUtterance, SpeakerDB, SpeakerNotFound
from speakerdb.audio import SAMPLE_RATE
from speakerdb.storage.sql import from_blob, to_blob
from speakerdb.storage.sqlite import open_reader

FAST = settings(
    deadline=None, max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

pitches = st.floats(min_value=80.0, max_value=700.0, allow_nan=False)
seeds = st.integers(min_value=0, max_value=10_000)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)


def clip(pitch: float, seed: int) -> tuple[np.ndarray, int]:
    return voice(pitch, 1.0, SAMPLE_RATE, seed), SAMPLE_RATE


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at head; copying it is much faster than running the migrations."""
    path = tmp_path_factory.mktemp("pristine") / "speakers.db"
    new_database(path, encoder=FakeEncoder())
    return path


@contextmanager
def fresh_db(pristine: Path) -> Iterator[SpeakerDB]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speakers.db"
        shutil.copy(pristine, path)
        with SpeakerDB(path, encoder=FakeEncoder()) as db:
            yield db


def stored_vectors(path: Path) -> list[np.ndarray]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT embedding FROM utterances").fetchall()
        rows += conn.execute("SELECT template FROM speakers").fetchall()
    finally:
        conn.close()
    return [from_blob(blob) for (blob,) in rows]


def distinct_voices(min_size: int = 1, max_size: int = 4):
    return st.lists(st.tuples(pitches, seeds), min_size=min_size, max_size=max_size, unique=True)


# -- vectors and blobs -----------------------------------------------------


@FAST
@given(voices=distinct_voices(), groups=st.integers(min_value=1, max_value=3))
def test_stored_vectors_have_unit_norm(pristine: Path, voices, groups: int) -> None:
    with fresh_db(pristine) as db:
        for i, (pitch, seed) in enumerate(voices):
            db.enroll(f"speaker {i % groups}", [clip(pitch, seed)])
        vectors = stored_vectors(db.path)
        assert len(vectors) == len(voices) + min(groups, len(voices))
        for vector in vectors:
            assert vector.dtype == np.float32 and vector.shape == (db.encoder().info.dim,)
            assert np.linalg.norm(vector.astype(np.float64)) == pytest.approx(1.0, abs=1e-5)


float32_arrays = hnp.arrays(
    dtype=st.sampled_from([np.dtype("<f4"), np.dtype(">f4")]),
    shape=st.integers(min_value=0, max_value=600),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
)


@settings(deadline=None, max_examples=200)
@given(vector=float32_arrays)
def test_blob_round_trips_bit_exactly(vector: np.ndarray) -> None:
    blob = to_blob(vector)
    assert isinstance(blob, bytes) and len(blob) == 4 * vector.size
    back = from_blob(blob)
    assert back.dtype == np.float32 and back.shape == vector.shape
    # Bit patterns, not values: NaN payloads, -0.0 and subnormals survive too.
    expected = vector.astype(np.float32).view(np.uint32)
    np.testing.assert_array_equal(back.view(np.uint32), expected)
    assert to_blob(back) == blob


# -- identification --------------------------------------------------------


@FAST
@given(voices=distinct_voices(), top_k=st.integers(min_value=1, max_value=3))
def test_enrolled_clip_is_identified_with_score_one(pristine: Path, voices, top_k: int) -> None:
    with fresh_db(pristine) as db:
        for i, (pitch, seed) in enumerate(voices):
            db.enroll(f"s{i}", [clip(pitch, seed)])
        for i, (pitch, seed) in enumerate(voices):
            result = db.identify(clip(pitch, seed), top_k=top_k)
            assert result.speaker == f"s{i}"
            assert result.best is not None
            assert result.best.score == pytest.approx(1.0, abs=1e-5)
            assert db.verify(f"s{i}", clip(pitch, seed)).score == pytest.approx(1.0, abs=1e-5)


@FAST
@given(
    voices=distinct_voices(max_size=6),
    query=st.tuples(pitches, seeds),
    top_k=st.integers(min_value=1, max_value=9),
    threshold=st.floats(min_value=-1.0, max_value=1.0),
)
def test_top_k_sorted_and_at_most_k(pristine: Path, voices, query, top_k, threshold) -> None:
    with fresh_db(pristine) as db:
        for i, (pitch, seed) in enumerate(voices):
            db.enroll(f"s{i}", [clip(pitch, seed)])
        result = db.identify(clip(*query), top_k=top_k, threshold=threshold)

        assert len(result.matches) == min(top_k, len(voices))
        scores = [m.score for m in result.matches]
        assert scores == sorted(scores, reverse=True)
        assert len({m.speaker for m in result.matches}) == len(result.matches)
        assert all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in scores)
        assert result.accepted == (scores[0] >= threshold)
        assert result.speaker == (result.matches[0].speaker if result.accepted else None)

        # The same candidates a brute-force search over the stored templates finds.
        q = db.embed([clip(*query)])[0].astype(np.float64)
        conn = sqlite3.connect(db.path)
        rows = conn.execute("SELECT name, template FROM speakers").fetchall()
        conn.close()
        reference = sorted(((float(q @ from_blob(t)), n) for n, t in rows), reverse=True)
        np.testing.assert_allclose(scores, [s for s, _ in reference[:top_k]], atol=1e-5)


# -- enroll / remove / re-enroll -------------------------------------------

NAMES = ("ann", "ben", "cy", "dee")


class EnrollRemoveMachine(RuleBasedStateMachine):
    """Random enroll, add, remove, re-enroll, rename and reopen against a model dict."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "speakers.db"
        self.db: SpeakerDB | None = None
        self.model: dict[str, list[tuple[float, int]]] = {}  # name -> enrolled clips
        self.freed: list[tuple[float, int]] = []  # clips of removed speakers
        self.next_seed = 0

    @initialize()
    def open(self) -> None:
        shutil.copy(PRISTINE[0], self.path)
        self.db = SpeakerDB(self.path, encoder=FakeEncoder())

    def teardown(self) -> None:
        if self.db is not None:
            self.db.close()
        self.folder.cleanup()

    def fresh_clips(self, pitch: float, n: int) -> list[tuple[float, int]]:
        self.next_seed += n
        return [(pitch, self.next_seed - i) for i in range(n)]

    def enroll_clips(self, name: str, keys: list[tuple[float, int]]) -> None:
        assert self.db is not None
        result = self.db.enroll(name, [clip(*k) for k in keys])
        assert result.created == (name not in self.model)
        self.model.setdefault(name, []).extend(keys)
        assert result.speaker.n_utterances == len(self.model[name])

    @rule(name=st.sampled_from(NAMES), pitch=pitches, n=st.integers(min_value=1, max_value=3))
    def enroll(self, name: str, pitch: float, n: int) -> None:
        self.enroll_clips(name, self.fresh_clips(pitch, n))

    @precondition(lambda self: bool(self.freed))
    @rule(name=st.sampled_from(NAMES))
    def re_enroll_removed_audio(self, name: str) -> None:
        keys, self.freed = self.freed[:3], self.freed[3:]
        self.enroll_clips(name, keys)

    @rule(name=st.sampled_from(NAMES))
    def remove(self, name: str) -> None:
        assert self.db is not None
        if name not in self.model:
            with pytest.raises(SpeakerNotFound):
                self.db.remove(name)
            return
        removed = self.db.remove(name)
        assert removed.name == name and removed.n_utterances == len(self.model[name])
        self.freed.extend(self.model.pop(name))

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def enroll_known_audio_again(self, data: st.DataObject) -> None:
        assert self.db is not None
        owner = data.draw(st.sampled_from(sorted(self.model)))
        key = data.draw(st.sampled_from(self.model[owner]))
        target = data.draw(st.sampled_from(NAMES))
        if target == owner:  # enrolled for them already: skipped, nothing written
            result = self.db.enroll(target, [clip(*key)])
            assert result.added == () and len(result.skipped) == 1
            return
        with pytest.raises(DuplicateUtterance):
            self.db.enroll(target, [clip(*key)])

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        assert self.db is not None
        old = data.draw(st.sampled_from(sorted(self.model)))
        free = [n for n in NAMES if n not in self.model]
        if not free:
            return
        new = data.draw(st.sampled_from(free))
        self.db.rename(old, new)
        self.model[new] = self.model.pop(old)

    @rule(drop_index=st.booleans())
    def reopen(self, drop_index: bool) -> None:
        assert self.db is not None
        index_path = self.db.index.path
        self.db.close()
        if drop_index:
            index_path.unlink(missing_ok=True)
        self.db = SpeakerDB(self.path, encoder=FakeEncoder())
        if not drop_index:
            # A cleanly closed database's index file is current: no rebuild is needed.
            with _warnings("speakerdb") as warnings:
                self.db.index.current()
            assert warnings == []

    @invariant()
    def index_agrees_with_database(self) -> None:
        if self.db is None:
            return
        speakers = self.db.speakers()
        assert [s.name for s in speakers] == sorted(self.model)
        assert {s.name: s.n_utterances for s in speakers} == {
            n: len(k) for n, k in self.model.items()
        }
        ids = self.db.index.current().ids()
        assert sorted(ids.tolist()) == sorted(s.id for s in speakers)
        assert len(set(ids.tolist())) == len(ids)

    @invariant()
    def fast_reader_agrees_with_database(self) -> None:
        if self.db is None:
            return
        reader = open_reader(self.path)
        assert reader is not None
        with reader:
            assert reader.speakers() == self.db.speakers()
            for name in self.model:
                assert reader.speaker(name) == self.db.speaker(name)
                assert reader.utterances(name) == self.db.utterances(name)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def identify_an_enrolled_clip(self, data: st.DataObject) -> None:
        assert self.db is not None
        name = data.draw(st.sampled_from(sorted(self.model)))
        key = data.draw(st.sampled_from(self.model[name]))
        result = self.db.identify(clip(*key), top_k=len(NAMES))
        assert {m.speaker for m in result.matches} == set(self.model)
        if len(self.model[name]) == 1:
            assert result.best is not None and result.best.speaker == name
            assert result.best.score == pytest.approx(1.0, abs=1e-5)


PRISTINE: list[Path] = []


@contextmanager
def _warnings(logger: str) -> Iterator[list[str]]:
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    handler = Collect()
    logging.getLogger(logger).addHandler(handler)
    try:
        yield messages
    finally:
        logging.getLogger(logger).removeHandler(handler)


def test_enroll_remove_reenroll_keeps_index_and_database_in_step(pristine: Path) -> None:
    PRISTINE[:] = [pristine]
    machine = EnrollRemoveMachine.TestCase
    machine.settings = settings(
        deadline=None,
        max_examples=20,
        stateful_step_count=12,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine().runTest()
