"""The public Python API, used the way a user uses it: real files, a fake encoder.

The suite runs on each backend (tests/_stores.py): a test's databases come from the
``store`` fixture (a file on SQLite, a new database on a PostgreSQL server); tests
about the SQLite file and the index file beside it are ``file_store``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
import re
import shutil
import sqlite3
import threading
import types
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _stores import ON_SERVER, Location, Stores
from conftest import FakeEncoder, new_database, voice

import speakerdb
from speakerdb import (
    AudioError,
    DuplicateSpeaker,
    DuplicateUtterance,
    Identification,
    InputError,
    InvalidName,
    ModelMismatch,
    SpeakerDB,
    SpeakerNotFound,
    errors,
)
from speakerdb.audio import MIN_DURATION_S, SAMPLE_RATE, load_clip
from speakerdb.config import FALLBACK_THRESHOLD
from speakerdb.storage import SpeakerIndex
from speakerdb.storage.sql import SCHEMA_HEAD, from_blob
from speakerdb.types import ReembedReport

# Synthetic "voices": the fake encoder tells these pitches apart (same pitch, other
# seed scores about 0.999; neighbouring pitches here score at most about 0.96).
PITCHES = {"alice": 110.0, "bob": 170.0, "carol": 260.0}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPEAKERDB_DB", "SPEAKERDB_MODEL", "SPEAKERDB_THRESHOLD", "SPEAKERDB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def clip(pitch: float, seed: int = 0, seconds: float = 2.0) -> tuple[np.ndarray, int]:
    return voice(pitch, seconds, SAMPLE_RATE, seed), SAMPLE_RATE


def dump(location: Location) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: compare before and after."""
    state = Stores(None).dump(location)
    state.pop("<index file>", None)
    return state


def stored_template(location: Location, name: str) -> np.ndarray:
    if isinstance(location, str):
        import psycopg

        with psycopg.connect(location) as server:
            row = server.execute("SELECT template FROM speakers WHERE name = %s", (name,))
            (blob,) = row.fetchone() or (None,)
        return from_blob(bytes(blob))
    conn = sqlite3.connect(location)
    try:
        (blob,) = conn.execute("SELECT template FROM speakers WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return from_blob(blob)


def location_of(db: SpeakerDB) -> Location:
    """The database ``db`` opened (a server's URL holds no password here)."""
    return db.path if isinstance(db.path, Path) else str(db.path)


def unit_mean(vectors: np.ndarray) -> np.ndarray:
    """The enrollment rule, computed directly: normalised mean of normalised rows."""
    rows = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    mean = rows.mean(axis=0)
    return mean / np.linalg.norm(mean)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, module_store: Stores) -> Location:
    """A new, empty database; copying it is faster than running the migrations each time."""
    location = module_store(tmp_path_factory.mktemp("pristine") / "speakers.db")
    new_database(location, encoder=FakeEncoder())
    return location


@pytest.fixture
def db(tmp_path: Path, pristine: Location, fake_encoder: FakeEncoder, store: Stores):
    location = store.copy(pristine, tmp_path / "speakers.db")
    with SpeakerDB(location, encoder=fake_encoder) as database:
        yield database


@pytest.fixture
def populated(db: SpeakerDB) -> SpeakerDB:
    for name, pitch in PITCHES.items():
        db.enroll(name, [clip(pitch, seed=1), clip(pitch, seed=2)])
    return db


# -- the public namespace --------------------------------------------------


def test_all_is_sorted_and_resolves() -> None:
    assert speakerdb.__all__ == sorted(speakerdb.__all__)
    assert len(set(speakerdb.__all__)) == len(speakerdb.__all__)
    for name in speakerdb.__all__:
        assert getattr(speakerdb, name) is not None, name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from speakerdb import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(speakerdb.__all__)


def test_nothing_else_public_is_exported() -> None:
    for name in speakerdb.__all__:  # load every lazy name first
        getattr(speakerdb, name)
    leaked = [
        name
        for name, value in vars(speakerdb).items()
        if not name.startswith("_")
        and name not in speakerdb.__all__
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("speakerdb")
    ]
    assert leaked == []
    with pytest.raises(AttributeError):
        speakerdb.store_internals  # noqa: B018
    with pytest.raises(ImportError):
        exec("from speakerdb import ClipInput", {})


def test_every_error_is_a_speakerdb_error() -> None:
    errors = [getattr(speakerdb, n) for n in speakerdb.__all__ if n.endswith(("Error", "Mismatch"))]
    errors += [DuplicateSpeaker, DuplicateUtterance, InvalidName, SpeakerNotFound]
    for error in errors:
        assert issubclass(error, speakerdb.SpeakerDBError), error
    assert issubclass(speakerdb.SchemaError, speakerdb.DatabaseError)


def test_every_error_declares_its_exit_code_and_http_status() -> None:
    """One table for every front end: the CLI's exit code, a service's HTTP status."""
    statuses = {
        "AudioError": 400,
        "InputError": 400,
        "InvalidName": 400,
        "SpeakerNotFound": 404,
        "GroupNotFound": 404,
        "DuplicateSpeaker": 409,
        "DuplicateUtterance": 409,
        "ModelMismatch": 409,
        "OptedOut": 409,
        "EnrollmentRefused": 422,
        "DatabaseError": 500,
        "ModelError": 500,
        "SchemaError": 500,
        "SpeakerDBError": 500,
        "DatabaseBusy": 503,
        "TooLarge": 413,
        "ServiceError": 500,
        "Unauthorized": 401,
        "Forbidden": 403,
        "RequestTimeout": 408,
        "ServiceBusy": 503,
    }
    classes = [
        n
        for n in errors.__all__
        if isinstance(getattr(errors, n), type) and issubclass(getattr(errors, n), Exception)
    ]
    assert sorted(statuses) == sorted(classes)
    for name, status in statuses.items():
        error = getattr(speakerdb, name)
        assert "http_status" in vars(error), name  # declared, not inherited by accident
        assert (error.http_status, error.exit_code) == (status, 2), name
    assert issubclass(speakerdb.DatabaseBusy, speakerdb.DatabaseError)


def test_error_document_is_type_and_one_line_message() -> None:
    error = SpeakerNotFound("no speaker named 'x'\nsecond line")
    assert errors.error_document(error) == {
        "error": {"type": "SpeakerNotFound", "message": "no speaker named 'x' second line"}
    }


# -- enrollment ------------------------------------------------------------


def test_enroll_from_paths_and_arrays(db: SpeakerDB, write_voice) -> None:
    paths = [write_voice("a1.wav", 110, seed=1), write_voice("a2.flac", 110, seed=2)]
    from_files = db.enroll("alice", paths)
    from_arrays = db.enroll("bob", [clip(170, seed=1), clip(170, seed=2)])

    assert from_files.created and from_arrays.created
    assert from_files.speaker.name == "alice" and from_files.speaker.n_utterances == 2
    assert [u.source for u in from_files.added] == [str(p) for p in paths]
    assert [u.source for u in from_arrays.added] == [None, None]
    assert [u.speaker for u in db.utterances("alice")] == ["alice", "alice"]
    assert db.identify(write_voice("q.wav", 110, seed=7)).speaker == "alice"
    assert db.identify(clip(170, seed=7)).speaker == "bob"


def test_incremental_enrollment_template_is_normalised_mean(db: SpeakerDB) -> None:
    clips = [clip(110, seed=1), clip(112, seed=2), clip(108, seed=3)]
    first = db.enroll("alice", clips[:2])
    second = db.enroll("alice", clips[2:])

    assert first.created and not second.created
    assert len(first.added) == 2 and len(second.added) == 1
    assert second.speaker.id == first.speaker.id
    assert second.speaker.n_utterances == 3 == db.speaker("alice").n_utterances

    expected = unit_mean(db.embed(clips).astype(np.float64))
    template = stored_template(location_of(db), "alice")
    assert template.dtype == np.float32
    np.testing.assert_allclose(template, expected, atol=1e-6)
    assert np.linalg.norm(template) == pytest.approx(1.0, abs=1e-6)

    query = clip(110, seed=9)
    raw = float(db.embed([query])[0] @ expected)
    assert db.verify("alice", query).score == pytest.approx(raw, abs=1e-5)


def test_enroll_is_all_or_none(db: SpeakerDB, write_voice, tmp_path: Path) -> None:
    db.enroll("alice", [clip(110, seed=1)])
    before = dump(location_of(db))
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt this is not audio")
    good = [write_voice("b1.wav", 170, seed=1), write_voice("b2.wav", 170, seed=2)]

    with pytest.raises(AudioError, match=re.escape(str(bad))):
        db.enroll("bob", [good[0], bad, good[1]])
    with pytest.raises(AudioError):
        db.enroll("alice", [clip(110, seed=5), (np.zeros(SAMPLE_RATE * 2), SAMPLE_RATE)])

    assert dump(location_of(db)) == before
    assert [s.name for s in db.speakers()] == ["alice"]
    assert db.speaker("alice").n_utterances == 1
    db.enroll("bob", good)  # the good clips are still enrollable
    assert db.speaker("bob").n_utterances == 2


def test_enroll_without_clips_is_refused(db: SpeakerDB) -> None:
    with pytest.raises(InputError):
        db.enroll("alice", [])
    assert db.speakers() == []


# -- identification and verification ---------------------------------------


def test_identify_top_k_sorted_raw_cosine(populated: SpeakerDB) -> None:
    query = clip(110, seed=7)
    q = populated.embed([query])[0].astype(np.float64)
    templates = {n: stored_template(populated.path, n) for n in PITCHES}

    result = populated.identify(query, top_k=2)
    assert isinstance(result, Identification)
    assert len(result.matches) == 2
    assert result.best is result.matches[0]
    assert result.speaker == "alice" and result.accepted
    scores = [m.score for m in result.matches]
    assert scores == sorted(scores, reverse=True)
    for match in result.matches:  # the raw cosine, not (cos + 1) / 2
        assert match.score == pytest.approx(float(q @ templates[match.speaker]), abs=1e-5)

    everyone = populated.identify(query, top_k=10)
    assert len(everyone.matches) == len(PITCHES)
    assert {m.speaker for m in everyone.matches} == set(PITCHES)
    assert populated.identify(query, top_k=1).matches == result.matches[:1]
    with pytest.raises(InputError):
        populated.identify(query, top_k=0)


def test_identify_many_keeps_order(populated: SpeakerDB, write_voice) -> None:
    queries = [clip(260, seed=5), write_voice("q.wav", 110, seed=5), clip(170, seed=5)]
    results = populated.identify_many(queries)
    assert [r.speaker for r in results] == ["carol", "alice", "bob"]
    assert [r.source for r in results] == [None, str(queries[1]), None]


def test_unknown_below_threshold(populated: SpeakerDB) -> None:
    query = clip(110, seed=7)
    best = populated.identify(query).best
    assert best is not None

    unknown = populated.identify(query, threshold=min(1.0, best.score + 1e-4))
    assert unknown.speaker is None and not unknown.accepted
    assert unknown.best == best  # the candidates are still reported
    stranger = populated.identify(clip(1200, seed=3))
    assert stranger.threshold == FALLBACK_THRESHOLD
    assert stranger.best is not None
    assert stranger.best.score < 0  # a raw cosine: rescaled scores are never negative
    assert stranger.speaker is None and not stranger.accepted


def test_identify_on_empty_database(db: SpeakerDB) -> None:
    result = db.identify(clip(110))
    assert result.matches == () and result.best is None
    assert result.speaker is None and not result.accepted
    # The first enrollment after a query on the empty database still lands in the index.
    db.enroll("alice", [clip(110, seed=1)])
    assert db.identify(clip(110, seed=2)).speaker == "alice"


def test_identify_after_everyone_is_removed(populated: SpeakerDB) -> None:
    for name in PITCHES:
        populated.remove(name)
    assert populated.identify(clip(110)).matches == ()


def test_verify_accepts_and_rejects(populated: SpeakerDB) -> None:
    query = clip(170, seed=8)
    yes = populated.verify("bob", query)
    no = populated.verify("alice", query, threshold=0.99)
    assert yes.accepted and yes.speaker == "bob" and yes.score > 0.99
    assert not no.accepted and no.score < 0.99 and no.threshold == 0.99
    raw = float(populated.embed([query])[0] @ stored_template(populated.path, "alice"))
    assert no.score == pytest.approx(raw, abs=1e-5)
    with pytest.raises(SpeakerNotFound):
        populated.verify("nobody", query)


# -- listing and changes ---------------------------------------------------


def test_speakers_speaker_and_utterances(populated: SpeakerDB, write_voice) -> None:
    path = write_voice("late.wav", 110, seed=3)
    populated.enroll("alice", [path])

    speakers = populated.speakers()
    assert [s.name for s in speakers] == sorted(PITCHES)
    assert {s.name: s.n_utterances for s in speakers} == {"alice": 3, "bob": 2, "carol": 2}
    alice = populated.speaker("alice")
    assert alice == speakers[0]
    assert alice.created_at.tzinfo is not None

    utterances = populated.utterances("alice")
    assert [u.id for u in utterances] == sorted(u.id for u in utterances)  # oldest first
    assert [u.source for u in utterances] == [None, None, str(path)]
    assert all(u.duration_s == pytest.approx(2.0) for u in utterances)
    assert all(re.fullmatch(r"[0-9a-f]{64}", u.audio_sha256) for u in utterances)
    assert len({u.audio_sha256 for u in utterances}) == 3


def test_remove(populated: SpeakerDB) -> None:
    removed = populated.remove("alice")
    assert removed.name == "alice" and removed.n_utterances == 2
    assert [s.name for s in populated.speakers()] == ["bob", "carol"]
    result = populated.identify(clip(110, seed=7), top_k=5)
    assert "alice" not in [m.speaker for m in result.matches]
    with pytest.raises(SpeakerNotFound):
        populated.utterances("alice")
    with pytest.raises(SpeakerNotFound):
        populated.remove("alice")
    assert len(dump(location_of(populated))["utterances"]) == 4  # type: ignore[index]
    # Removing frees the audio: the same clips can be enrolled again.
    again = populated.enroll("alice", [clip(110, seed=1), clip(110, seed=2)])
    assert again.created
    assert populated.identify(clip(110, seed=7)).speaker == "alice"


def test_rename(populated: SpeakerDB) -> None:
    before = populated.speaker("alice")
    renamed = populated.rename("alice", "alicia")
    assert renamed.id == before.id and renamed.name == "alicia"
    assert renamed.n_utterances == before.n_utterances
    assert populated.identify(clip(110, seed=7)).speaker == "alicia"
    assert [u.speaker for u in populated.utterances("alicia")] == ["alicia", "alicia"]
    assert populated.rename("alicia", "alicia").name == "alicia"
    with pytest.raises(SpeakerNotFound):
        populated.speaker("alice")


def test_names_are_normalised(db: SpeakerDB) -> None:
    decomposed = "  Zoe\u0308 "
    result = db.enroll(decomposed, [clip(110)])
    assert result.speaker.name == unicodedata.normalize("NFC", "Zoë")
    assert db.speaker("Zoë").id == db.speaker("Zoe\u0308").id


def test_info(populated: SpeakerDB, fake_encoder: FakeEncoder) -> None:
    info = populated.info()
    assert info.path == str(populated.path)
    assert info.encoder == fake_encoder.info
    assert (info.n_speakers, info.n_utterances) == (3, 6)
    assert info.schema_revision == SCHEMA_HEAD
    assert (info.threshold, info.threshold_source) == (
        FALLBACK_THRESHOLD,
        "default for fake-encoder",
    )
    assert info.index_path == populated.index.where
    # A server's index is written with the rows (pgvector) or checked by each query.
    assert info.index_state.startswith("up to date")
    assert ON_SERVER or info.index_state == "up to date (3 speakers)"


def test_info_of_a_new_database(db: SpeakerDB) -> None:
    info = db.info()
    assert info.encoder is None
    assert (info.n_speakers, info.n_utterances) == (0, 0)
    assert info.index_state == "empty"


# -- the threshold ---------------------------------------------------------


def test_threshold_precedence(
    tmp_path: Path, fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch, store: Stores
) -> None:
    path = store(tmp_path / "speakers.db")
    with SpeakerDB(path, encoder=fake_encoder) as db:
        assert db.threshold() == (FALLBACK_THRESHOLD, "default for fake-encoder")
        assert db.set_threshold(0.5) == 0.5
        assert db.threshold() == (0.5, "database")
        db.enroll("alice", [clip(110, seed=1)])
        assert db.identify(clip(110, seed=2)).threshold == 0.5

    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "0.6")
    with SpeakerDB(path, encoder=fake_encoder) as db:
        assert db.threshold() == (0.6, "environment")
        assert db.identify(clip(110, seed=2)).threshold == 0.6
        assert db.verify("alice", clip(110, seed=2)).threshold == 0.6

    with SpeakerDB(path, encoder=fake_encoder, threshold=0.8) as db:
        assert db.threshold() == (0.8, "argument")
        assert db.identify(clip(110, seed=2)).threshold == 0.8
        # A per-call threshold beats everything.
        assert db.identify(clip(110, seed=2), threshold=0.95).threshold == 0.95
        assert db.verify("alice", clip(110, seed=2), threshold=-0.5).threshold == -0.5

    monkeypatch.delenv("SPEAKERDB_THRESHOLD")
    with SpeakerDB(path, encoder=fake_encoder) as db:
        assert db.threshold() == (0.5, "database")  # the stored value persisted


def test_a_calibrate_that_keeps_the_default_clears_the_stored_threshold(
    populated: SpeakerDB,
) -> None:
    """3 speakers are too few to calibrate: the defaults are kept, and the lenient
    thresholds stored earlier are removed (a dry run only says it would), so the default
    decides. ``set_threshold(None)`` removes one by hand. (tests/test_cli.py shows a real
    stranger refused again.)"""
    lenient = 0.3
    populated.set_threshold(lenient)
    dry = populated.calibrate(apply=False)
    assert [(c.operation, c.score, c.value) for c in dry.cleared] == [
        ("identify", "none", lenient),
        ("verify", "none", lenient),
    ]
    assert populated.policy().threshold == lenient  # a dry run changes nothing
    done = populated.calibrate()
    assert done.kept_defaults and done.cleared == dry.cleared and done.overridden == ()
    assert populated.info().stored_thresholds == ()
    decided = populated.identify(clip(200.0, seed=9)).policy
    assert (decided.threshold, decided.source) == (FALLBACK_THRESHOLD, "default for fake-encoder")
    populated.set_threshold(lenient, operation="verify")
    (gone,) = populated.set_threshold(None, operation="verify")
    assert (gone.operation, gone.score, gone.value) == ("verify", "none", lenient)
    assert populated.set_threshold(None) == ()
    assert populated.policy(operation="verify").threshold == FALLBACK_THRESHOLD


@pytest.mark.parametrize("bad", [1.5, -1.01, float("nan"), float("inf"), "high"])
def test_bad_thresholds_are_refused(db: SpeakerDB, bad: object) -> None:
    with pytest.raises(InputError):
        db.set_threshold(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        db.identify(clip(110), threshold=bad)  # type: ignore[arg-type]
    assert db.threshold()[1] != "database"


def test_bad_threshold_in_environment(db: SpeakerDB, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERDB_THRESHOLD", "1.7")
    with pytest.raises(InputError, match="SPEAKERDB_THRESHOLD"):
        db.threshold()


# -- results and lifecycle -------------------------------------------------


def test_results_are_frozen(populated: SpeakerDB) -> None:
    enrollment = populated.enroll("dave", [clip(380, seed=1)])
    identification = populated.identify(clip(110, seed=7))
    results = [
        enrollment,
        enrollment.speaker,
        enrollment.added[0],
        identification,
        identification.matches[0],
        populated.verify("alice", clip(110, seed=7)),
        populated.info(),
        populated.info().encoder,
    ]
    for result in results:
        assert dataclasses.is_dataclass(result)
        field = dataclasses.fields(result)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(result, field, None)


def test_results_copy_pickle_and_stay_frozen_through(populated: SpeakerDB) -> None:
    """A result's mappings are read-only, yet the result pickles, deep-copies and goes
    through dataclasses.asdict and json like any other (a multiprocessing worker, a cache
    or a log may do any of these)."""
    info = populated.info()
    report = ReembedReport("new.db", "m", (), 0, (), (), {"bob": "why"}, 0, (), (), 0.1)
    for result, mapping in ((info, "thresholds"), (report, "failed")):
        with pytest.raises(TypeError):
            getattr(result, mapping)["x"] = None
        assert pickle.loads(pickle.dumps(result)) == result
        assert copy.deepcopy(result) == result
        assert dataclasses.asdict(result)[mapping].keys() == getattr(result, mapping).keys()
        assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
    assert set(info.thresholds) == {"identify", "verify"}


@pytest.mark.file_store("SQLite's WAL file beside the database")
def test_context_manager_closes(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=fake_encoder) as db:
        assert isinstance(db, SpeakerDB) and db.path == path
        db.enroll("alice", [clip(110)])
        assert path.with_name(path.name + "-wal").exists()
    # Every connection is closed: SQLite checkpointed and removed the WAL file.
    assert not path.with_name(path.name + "-wal").exists()

    with pytest.raises(SpeakerNotFound), SpeakerDB(path, encoder=fake_encoder) as db:
        db.speaker("nobody")  # errors propagate out of the with block


# -- audio formats ---------------------------------------------------------


def _mp3_writable(tmp_path: Path) -> str | None:
    if "MP3" not in sf.available_formats():
        return f"libsndfile {sf.__libsndfile_version__} has no MP3 support"
    try:
        sf.write(tmp_path / "probe.mp3", voice(110), SAMPLE_RATE)
        sf.read(tmp_path / "probe.mp3")
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        return f"libsndfile cannot write/read MP3 here ({exc})"
    return None


@pytest.mark.parametrize(
    ("name", "rate", "channels"),
    [
        ("v8k.wav", 8_000, 1),
        ("v16k.wav", 16_000, 1),
        ("v44k.wav", 44_100, 1),
        ("v48k-stereo.flac", 48_000, 2),
        ("v48k.ogg", 48_000, 1),
        ("v22k.mp3", 22_050, 1),
    ],
)
def test_formats_decode_to_16k_mono(
    populated: SpeakerDB, write_voice, tmp_path: Path, name: str, rate: int, channels: int
) -> None:
    if name.endswith(".mp3") and (reason := _mp3_writable(tmp_path)):
        pytest.skip(reason)
    path = write_voice(name, PITCHES["bob"], seconds=2.0, rate=rate, seed=4, channels=channels)
    assert sf.info(str(path)).samplerate == rate and sf.info(str(path)).channels == channels

    decoded = load_clip(path)
    assert decoded.samples.ndim == 1 and decoded.samples.dtype == np.float32
    assert decoded.duration_s == pytest.approx(2.0, abs=0.06)  # codecs may pad a little
    assert decoded.source == str(path)
    assert populated.identify(path).speaker == "bob"


def test_stereo_with_identical_channels_equals_mono(db: SpeakerDB, write_voice) -> None:
    mono = write_voice("mono.flac", 170, seed=3)
    stereo = write_voice("stereo.flac", 170, seed=3, channels=2)
    np.testing.assert_array_equal(load_clip(stereo).samples, load_clip(mono).samples)
    np.testing.assert_allclose(db.embed([stereo]), db.embed([mono]), atol=1e-7)
    # It is the same audio, so it is enrolled only once: for another speaker it is
    # refused, for bob skipped.
    db.enroll("bob", [mono])
    with pytest.raises(DuplicateUtterance):
        db.enroll("carl", [stereo])
    assert db.enroll("bob", [stereo]).skipped == (str(stereo),)


# -- errors leave the database unchanged -----------------------------------


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = voice(110, 2.0, SAMPLE_RATE, 0)
    files = {"missing": tmp_path / "missing.wav", "directory": tmp_path / "folder.wav"}
    files["directory"].mkdir()
    files["not audio"] = tmp_path / "notes.wav"
    files["not audio"].write_text("these are meeting notes, not audio\n")
    full = tmp_path / "full.wav"
    sf.write(full, good, SAMPLE_RATE)
    files["truncated"] = tmp_path / "truncated.wav"
    files["truncated"].write_bytes(full.read_bytes()[:30])
    files["truncated flac"] = tmp_path / "truncated.flac"
    sf.write(files["truncated flac"], good, SAMPLE_RATE)
    files["truncated flac"].write_bytes(files["truncated flac"].read_bytes()[:200])
    files["zero samples"] = tmp_path / "empty.wav"
    sf.write(files["zero samples"], np.zeros(0, np.float32), SAMPLE_RATE)
    files["silence"] = tmp_path / "silence.wav"
    sf.write(files["silence"], np.zeros(SAMPLE_RATE * 2, np.float32), SAMPLE_RATE)
    for label, value in (("nan", np.nan), ("inf", np.inf)):
        poisoned = good.copy()
        poisoned[1000] = value
        files[label] = tmp_path / f"{label}.wav"
        sf.write(files[label], poisoned, SAMPLE_RATE, subtype="FLOAT")
    files["too short"] = tmp_path / "short.wav"
    sf.write(files["too short"], voice(110, MIN_DURATION_S * 0.5), SAMPLE_RATE)
    return files


BAD_KINDS = [
    "missing",
    "directory",
    "not audio",
    "truncated",
    "truncated flac",
    "zero samples",
    "silence",
    "nan",
    "inf",
    "too short",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_audio_names_the_file(populated: SpeakerDB, tmp_path: Path, kind: str) -> None:
    bad = _bad_files(tmp_path)[kind]
    before = dump(populated.path)
    with pytest.raises(AudioError, match=re.escape(str(bad))):
        populated.enroll("dave", [clip(380, seed=1), bad])
    with pytest.raises(AudioError, match=re.escape(str(bad))):
        populated.enroll("alice", [bad])
    with pytest.raises(AudioError, match=re.escape(str(bad))):
        populated.identify(bad)
    with pytest.raises(AudioError, match=re.escape(str(bad))):
        populated.verify("alice", bad)
    assert dump(populated.path) == before


@pytest.mark.parametrize(
    ("samples", "rate", "message"),
    [
        (np.zeros(0, np.float32), SAMPLE_RATE, "no samples"),
        (np.zeros(SAMPLE_RATE * 2, np.float32), SAMPLE_RATE, "silent"),
        (np.full(SAMPLE_RATE * 2, np.nan, np.float32), SAMPLE_RATE, "NaN"),
        (voice(110, MIN_DURATION_S * 0.9), SAMPLE_RATE, "at least"),
        (voice(110), 1_000, "sample rate"),
        (np.ones((2, 2, 2)), SAMPLE_RATE, "expected 1-D"),
    ],
)
def test_bad_arrays(populated: SpeakerDB, samples: np.ndarray, rate: int, message: str) -> None:
    before = dump(populated.path)
    with pytest.raises(AudioError, match=message):
        populated.enroll("dave", [(samples, rate)])
    assert dump(populated.path) == before


@pytest.mark.parametrize(
    "name", ["", "   ", "a\x00b", "bell\x07", "zero\u200bwidth", "x" * 129, 42, None]
)
def test_bad_names(populated: SpeakerDB, name: object) -> None:
    before = dump(populated.path)
    with pytest.raises(InvalidName):
        populated.enroll(name, [clip(380)])  # type: ignore[arg-type]
    with pytest.raises(InvalidName):
        populated.rename("alice", name)  # type: ignore[arg-type]
    assert dump(populated.path) == before


def test_same_audio_twice(populated: SpeakerDB, write_voice) -> None:
    before = dump(populated.path)
    with pytest.raises(DuplicateUtterance):
        populated.enroll("dave", [clip(380, seed=1), clip(380, seed=1)])
    with pytest.raises(DuplicateUtterance, match="alice"):
        populated.enroll("dave", [clip(380, seed=1), clip(110, seed=1)])  # alice has it
    with pytest.raises(DuplicateUtterance, match="alice"):
        populated.enroll("bob", [clip(110, seed=2)])  # alice has it
    assert dump(populated.path) == before

    path = write_voice("once.wav", 380, seed=2)
    populated.enroll("dave", [path])
    with pytest.raises(DuplicateUtterance, match=re.escape(str(path))):
        populated.enroll("erin", [path])


def test_unknown_speaker(populated: SpeakerDB) -> None:
    before = dump(populated.path)
    for call in (
        lambda: populated.speaker("nobody"),
        lambda: populated.utterances("nobody"),
        lambda: populated.remove("nobody"),
        lambda: populated.rename("nobody", "somebody"),
        lambda: populated.verify("nobody", clip(110)),
    ):
        with pytest.raises(SpeakerNotFound, match="nobody"):
            call()
    assert dump(populated.path) == before


def test_rename_onto_existing_speaker(populated: SpeakerDB) -> None:
    before = dump(populated.path)
    with pytest.raises(DuplicateSpeaker, match="bob"):
        populated.rename("alice", "bob")
    assert dump(populated.path) == before
    assert populated.identify(clip(110, seed=7)).speaker == "alice"


# -- the index file --------------------------------------------------------


def _reopen_and_check(path: Path, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="speakerdb"):
        with SpeakerDB(path, encoder=FakeEncoder()) as db:
            for name, pitch in PITCHES.items():
                assert db.identify(clip(pitch, seed=7)).speaker == name
            assert db.info().index_state == f"up to date ({len(PITCHES)} speakers)"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(reason in r.getMessage() and "rebuild" in r.getMessage() for r in warnings), [
        r.getMessage() for r in warnings
    ]


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
def test_missing_index_is_rebuilt(populated: SpeakerDB, caplog: pytest.LogCaptureFixture) -> None:
    path, index_path = populated.path, populated.index.path
    populated.close()
    index_path.unlink()
    _reopen_and_check(path, caplog, "missing")
    assert index_path.is_file()


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped byte"])
def test_corrupt_index_is_rebuilt(
    populated: SpeakerDB, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path, index_path = populated.path, populated.index.path
    populated.close()
    data = bytearray(index_path.read_bytes())
    if damage == "garbage":
        data = bytearray(b"\x00\xff not an index" * 10)
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[-5] ^= 0xFF
    index_path.write_bytes(bytes(data))
    _reopen_and_check(path, caplog, "index")


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
def test_stale_index_is_detected(
    db: SpeakerDB, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db.enroll("alice", [clip(PITCHES["alice"], seed=1), clip(PITCHES["alice"], seed=2)])
    old = tmp_path / "old.faiss"
    shutil.copy(db.index.path, old)
    for name in ("bob", "carol"):
        db.enroll(name, [clip(PITCHES[name], seed=1), clip(PITCHES[name], seed=2)])
    path, index_path = db.path, db.index.path
    db.close()
    shutil.copy(old, index_path)
    _reopen_and_check(path, caplog, "stale")


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
def test_index_of_another_database_is_not_used(
    populated: SpeakerDB, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    with SpeakerDB(other_dir / "speakers.db", encoder=FakeEncoder()) as other:
        # Same number of changes, so the generation matches; only the uuid differs.
        for number, name in enumerate(PITCHES):
            other.enroll(name, [clip(1200 + 100 * number, seed=1)])
        other_index = other.index.path
    path = populated.path
    populated.close()
    shutil.copy(other_index, path.with_name(path.name + ".faiss"))
    _reopen_and_check(path, caplog, "stale")


def test_second_handle_sees_changes(tmp_path: Path, store: Stores) -> None:
    path = store(tmp_path / "speakers.db")
    with (
        SpeakerDB(path, encoder=FakeEncoder()) as writer,
        SpeakerDB(path, encoder=FakeEncoder()) as reader,
    ):
        writer.enroll("alice", [clip(110, seed=1)])
        assert reader.identify(clip(110, seed=2)).speaker == "alice"
        writer.enroll("bob", [clip(170, seed=1)])
        writer.remove("alice")
        result = reader.identify(clip(110, seed=2))
        assert [m.speaker for m in result.matches] == ["bob"]


@pytest.mark.file_store("the FAISS index file beside the SQLite file (a server has none)")
def test_sqlite_holds_the_truth(populated: SpeakerDB) -> None:
    path, index_path = populated.path, populated.index.path
    populated.close()
    index_path.unlink()
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        assert [s.name for s in db.speakers()] == sorted(PITCHES)
        for name, pitch in PITCHES.items():
            assert db.identify(clip(pitch, seed=7)).speaker == name
        assert sorted(db.index.current().ids()) == sorted(s.id for s in db.speakers())


# -- model mismatch --------------------------------------------------------


def test_another_encoder_is_refused(tmp_path: Path, store: Stores) -> None:
    path = store(tmp_path / "speakers.db")
    with SpeakerDB(path, encoder=FakeEncoder(model="a")) as db:
        db.enroll("alice", [clip(110)])
    before = dump(path)

    with pytest.raises(ModelMismatch, match="--model a"):
        SpeakerDB(path, encoder=FakeEncoder(model="b"))
    with pytest.raises(ModelMismatch, match="--model a"):
        SpeakerDB(path, model="other")
    with pytest.raises(InputError):
        SpeakerDB(path, encoder=FakeEncoder(model="a"), threshold=2.0)
    # A refused open closes its connections at once: SQLite removed the WAL file.
    assert not isinstance(path, Path) or not path.with_name(path.name + "-wal").exists()
    with SpeakerDB(path, encoder=FakeEncoder(model="a", dim=16)) as db:
        with pytest.raises(ModelMismatch):
            db.identify(clip(110))
        with pytest.raises(ModelMismatch):
            db.enroll("bob", [clip(170)])
    assert dump(path) == before

    with SpeakerDB(path, encoder=FakeEncoder(model="a")) as db:
        assert db.identify(clip(110, seed=3)).speaker == "alice"


def test_model_from_environment_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Stores
) -> None:
    path = store(tmp_path / "speakers.db")
    with SpeakerDB(path, encoder=FakeEncoder(model="a")) as db:
        db.enroll("alice", [clip(110)])
        assert db.model == "a"
    monkeypatch.setenv("SPEAKERDB_MODEL", "other")
    with SpeakerDB(path) as db:
        # Listing never needs the encoder; anything that embeds audio is refused.
        assert [s.name for s in db.speakers()] == ["alice"]
        with pytest.raises(ModelMismatch, match="--model a"):
            db.identify(clip(110))
        with pytest.raises(ModelMismatch):
            db.enroll("bob", [clip(170)])
        assert [s.name for s in db.speakers()] == ["alice"]


def test_an_archive_of_whole_clips_is_told_by_info_and_the_first_query(
    tmp_path: Path, store: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    """An archive an older speakerdb wrote says nothing of spoken parts: its vectors are
    of whole clips, and the database it is imported into says so."""
    import json

    from speakerdb.services._archivefile import read_archive, write_archive

    archive = tmp_path / "old.sdb"
    with SpeakerDB(store(tmp_path / "a.db"), encoder=FakeEncoder()) as db:
        db.enroll("alice", [clip(110, seed=1), clip(110, seed=2)])
        db.enroll("bob", [clip(170, seed=1)])
        db.lifecycle.export(archive)
    document = json.loads(read_archive(archive, None))
    for speaker in document["speakers"]:
        for data in speaker["clips"]:
            assert data.pop("spoken_margin_s") == 0.5
    write_archive(archive, json.dumps(document).encode(), None)
    caplog.set_level(logging.WARNING, logger="speakerdb")
    with SpeakerDB(store(tmp_path / "b.db"), encoder=FakeEncoder()) as db:
        db.lifecycle.import_archive(archive)
        db.enroll("carol", [clip(260, seed=1)])
        info = db.info()
        assert info.n_whole_clip_speakers == 2 and "speakerdb reembed" in str(
            info.whole_clip_notice
        )
        assert [u.spoken_margin_s for u in db.utterances("carol")] == [0.5]
        assert [u.spoken_margin_s for u in db.utterances("alice")] == [None, None]
        assert db.identify(clip(110, seed=3)).speaker == "alice"
        db.verify("bob", clip(170, seed=3))
    warned = [r.getMessage() for r in caplog.records if "from whole clips" in r.getMessage()]
    assert len(warned) == 1 and ": 2 speaker(s) have voiceprints" in warned[0]


# -- threads ---------------------------------------------------------------


def test_concurrent_identify(populated: SpeakerDB) -> None:
    path = location_of(populated)
    populated.close()
    jobs = [(name, seed) for name in PITCHES for seed in range(10, 18)]
    start = threading.Barrier(8)

    with SpeakerDB(path, encoder=FakeEncoder()) as db:  # fresh: the index loads under load

        def work(numbered: tuple[int, tuple[str, int]]) -> str | None:
            number, (name, seed) = numbered
            if number < 8:  # the first eight start together, on an index not loaded yet
                start.wait(timeout=30)
            return db.identify(clip(PITCHES[name], seed=seed)).speaker

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(work, enumerate(jobs * 2)))
    assert answers == [name for name, _ in jobs * 2]


# -- the FAISS index against a brute-force reference -----------------------


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _reference(index_vectors: dict[int, np.ndarray], queries: np.ndarray, k: int):
    ids = np.array(sorted(index_vectors), dtype=np.int64)
    matrix = np.stack([index_vectors[i] for i in ids]).astype(np.float64)
    scores = queries.astype(np.float64) @ matrix.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def _assert_same(index: SpeakerIndex, vectors: dict[int, np.ndarray], queries, k) -> None:
    scores, ids = index.search(queries, k)
    want_scores, want_ids = _reference(vectors, queries, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize(("n", "dim", "k"), [(1, 8, 3), (50, 32, 5), (300, 192, 10)])
def test_faiss_index_matches_numpy(tmp_path: Path, n: int, dim: int, k: int) -> None:
    rng = np.random.default_rng(n * dim)
    ids = rng.choice(10_000, size=n, replace=False).astype(np.int64)
    vectors = dict(zip(ids.tolist(), _unit(rng, n, dim), strict=True))
    queries = _unit(rng, 20, dim)

    index = SpeakerIndex(dim, ids, np.stack(list(vectors.values())))
    assert len(index) == n and sorted(index.ids()) == sorted(vectors)
    _assert_same(index, vectors, queries, k)

    # Updates: move some vectors, remove others, add new ones.
    for speaker_id in ids[: n // 2]:
        vectors[int(speaker_id)] = _unit(rng, 1, dim)[0]
        index.upsert(int(speaker_id), vectors[int(speaker_id)])
    for speaker_id in ids[n // 2 : n // 2 + n // 4]:
        del vectors[int(speaker_id)]
        index.remove(int(speaker_id))
    vectors[20_000] = _unit(rng, 1, dim)[0]
    index.upsert(20_000, vectors[20_000])
    assert sorted(index.ids()) == sorted(vectors)
    _assert_same(index, vectors, queries, k)

    index.save(tmp_path / "x.faiss", "uuid", 7)
    loaded, header = SpeakerIndex.load(tmp_path / "x.faiss")
    assert (header.db_uuid, header.generation, header.dim, header.count) == (
        "uuid",
        7,
        dim,
        len(vectors),
    )
    _assert_same(loaded, vectors, queries, k)
    assert (tmp_path / "x.faiss").stat().st_mode & 0o777 == 0o600


def test_faiss_search_returns_at_most_the_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    index = SpeakerIndex(16, np.array([3, 9]), _unit(rng, 2, 16))
    scores, ids = index.search(_unit(rng, 4, 16), 10)
    assert scores.shape == ids.shape == (4, 2)
    empty = SpeakerIndex(16, np.array([], dtype=np.int64), np.zeros((0, 16), np.float32))
    _, none = empty.search(_unit(rng, 3, 16), 5)
    assert none.shape[0] == 3 and (none == -1).all()
