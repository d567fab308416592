"""The storage contract (speakerdb.storage._protocol), on every backend.

Each test runs on a fresh SQLite + FAISS storage, a fresh in-memory one, and a
fresh database on PostgreSQL without pgvector (FAISS cache) and with it (HNSW);
a new backend joins by adding itself to ``BACKENDS``. Then SpeakerDB on the
in-memory storage is checked to answer as on SQLite.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import (
    DuplicateSpeaker,
    DuplicateUtterance,
    GroupNotFound,
    InputError,
    SpeakerDB,
    SpeakerNotFound,
)
from speakerdb.audio import Clip, fingerprint
from speakerdb.audio._fpindex import stored_keys
from speakerdb.storage import IndexAdmin, MemoryStorage, Storage, open_storage
from speakerdb.storage._prints import StoredPrint, affordable_keys, lag_votes
from speakerdb.types import ApiKey, AuditEntry, EncoderInfo, Outcome

DIM = 8
INFO = EncoderInfo("fake-encoder", "1", DIM, 16000)


def sqlite_storage(tmp_path: Path) -> Storage:
    return open_storage(tmp_path / "speakers.db")


def memory_storage(tmp_path: Path) -> Storage:
    return MemoryStorage()


BACKENDS: dict[str, Callable[[Path], Storage]] = {
    "sqlite": sqlite_storage,
    "memory": memory_storage,
}
#: PostgreSQL servers (tests/_postgres.py), by the fixture that gives each.
SERVERS = {"postgres": "postgres_plain", "pgvector": "postgres_pgvector"}


@pytest.fixture(params=[*sorted(BACKENDS), *SERVERS])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    yield from _opened(request, tmp_path)


@pytest.fixture(params=["sqlite", *SERVERS])
def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """The backends that another handle (another process) can open too."""
    yield from _opened(request, tmp_path)


def _opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param in SERVERS:
        from _postgres import database_fixture

        server = request.getfixturevalue(SERVERS[request.param])
        for url in database_fixture(server):
            opened = open_storage(url)
            yield opened
            opened.close()
        return
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def clips(*seeds: int) -> tuple[list[Clip], np.ndarray]:
    """Clips (distinct audio per seed) and unit embeddings for them."""
    made = [
        Clip(np.zeros(16000, np.float32), f"c{s}.wav", hashlib.sha256(str(s).encode()).hexdigest())
        for s in seeds
    ]
    return made, np.stack([unit(s) for s in seeds])


def enroll(storage: Storage, name: str, *seeds: int) -> None:
    with storage.change(templates=True) as change:
        if change.encoder() is None:
            change.record_encoder(INFO)
        change.enroll(name, *clips(*seeds))


def names_found(storage: Storage, query: np.ndarray, k: int = 10) -> list[str]:
    return [m.speaker for m in storage.search(query[None, :], k)[0]]


# -- reads and writes -------------------------------------------------------


def test_a_new_storage_is_empty(storage: Storage) -> None:
    with storage.read() as snapshot:
        assert snapshot.speakers() == []
        assert snapshot.counts() == (0, 0)
        assert snapshot.encoder() is None
        assert snapshot.population().n_speakers == 0
        assert snapshot.enrolled_hashes(["x"]) == {}
    assert storage.search(unit(0)[None, :], 3) == [()]


def test_settings_round_trip(storage: Storage) -> None:
    with storage.change() as change:
        change.set_setting("threshold", "0.5")
        change.set_setting("score_norm", "margin")
    with storage.change() as change:
        change.set_setting("threshold", "0.7")
    with storage.read() as snapshot:
        settings = snapshot.settings()
    assert settings["threshold"] == "0.7"
    assert settings["score_norm"] == "margin"


def test_a_deleted_setting_is_gone_and_a_failed_change_keeps_it(storage: Storage) -> None:
    """``delete_setting`` says whether the key was stored; the key is absent afterwards
    (not empty), may be stored again, and a change that raises deletes nothing."""
    with storage.change() as change:
        change.set_setting("threshold:identify:none", "0.5")
        change.set_setting("score_norm", "none")
    with pytest.raises(KeyError), storage.change() as change:
        assert change.delete_setting("threshold:identify:none") is True
        assert "threshold:identify:none" not in change.settings()
        raise KeyError("boom")
    with storage.read() as snapshot:
        assert snapshot.settings()["threshold:identify:none"] == "0.5"
    with storage.change() as change:
        assert change.delete_setting("threshold:identify:none") is True
        assert change.delete_setting("threshold:identify:none") is False
        assert change.delete_setting("never-stored") is False
    with storage.read() as snapshot:
        assert snapshot.settings() == {"score_norm": "none"}
    with storage.change() as change:
        change.set_setting("threshold:identify:none", "0.8")
    with storage.read() as snapshot:
        assert snapshot.settings()["threshold:identify:none"] == "0.8"


def test_encoder_is_recorded(storage: Storage) -> None:
    with storage.change() as change:
        change.record_encoder(INFO)
    with storage.read() as snapshot:
        assert snapshot.encoder() == INFO


def test_enroll_and_read_back(storage: Storage) -> None:
    with storage.change(templates=True) as change:
        change.record_encoder(INFO)
        first = change.enroll("alice", *clips(1, 2))
    assert first.created and first.speaker.name == "alice" and first.speaker.n_utterances == 2
    assert [u.source for u in first.added] == ["c1.wav", "c2.wav"]
    with storage.change(templates=True) as change:
        more = change.enroll("alice", *clips(3))
    assert not more.created and more.speaker.n_utterances == 3
    assert more.speaker.id == first.speaker.id
    with storage.read() as snapshot:
        assert [s.name for s in snapshot.speakers()] == ["alice"]
        assert snapshot.names() == {"alice"}
        assert snapshot.speaker("alice").n_utterances == 3
        utterances = snapshot.utterances("alice")
        assert [u.source for u in utterances] == ["c1.wav", "c2.wav", "c3.wav"]
        assert [u.id for u in utterances] == sorted(u.id for u in utterances)
        assert snapshot.counts() == (1, 3)
        template = snapshot.template("alice")
        population = snapshot.population()
        hashes = snapshot.enrolled_hashes([clips(2)[0][0].sha256, "nothing"])
    assert hashes == {clips(2)[0][0].sha256: "alice"}
    assert template.dtype == np.float32 and abs(np.linalg.norm(template) - 1) < 1e-5
    assert population.names == ("alice",) and population.embeddings.shape == (3, DIM)
    np.testing.assert_array_equal(population.embeddings[0], unit(1))  # bit-exact
    assert population.durations_s is not None and list(population.durations_s) == [1.0] * 3


def test_population_of_some_names(storage: Storage) -> None:
    enroll(storage, "bob", 1)
    enroll(storage, "alice", 2, 3)
    with storage.read() as snapshot:
        assert snapshot.population().names == ("alice", "bob")
        some = snapshot.population(names=["bob", "nobody"])
    assert some.names == ("bob",) and len(some.owners) == 1


def test_version_grows_with_template_changes_only(storage: Storage) -> None:
    with storage.read() as snapshot:
        before = snapshot.version()
    enroll(storage, "alice", 1)
    with storage.read() as snapshot:
        after = snapshot.version()
    with storage.change() as change:
        change.rename("alice", "alicia")
    with storage.read() as snapshot:
        assert snapshot.version() == after > before


def test_unknown_speakers_and_clips_are_refused(storage: Storage) -> None:
    enroll(storage, "alice", 1, 2)
    with storage.read() as snapshot:
        for ask in (snapshot.speaker, snapshot.utterances, snapshot.template):
            with pytest.raises(SpeakerNotFound, match="no speaker named 'bob'"):
                ask("bob")
    with pytest.raises(SpeakerNotFound), storage.change(templates=True) as change:
        change.remove_speaker("bob")
    with pytest.raises(SpeakerNotFound), storage.change() as change:
        change.rename("bob", "robert")
    with pytest.raises(InputError, match="no enrolled clip #999"):
        with storage.change(templates=True) as change:
            change.remove_utterance(999)
    with pytest.raises(InputError, match="by its number"):
        with storage.change(templates=True) as change:
            change.remove_utterance("1")  # type: ignore[arg-type]


def test_duplicate_audio_is_refused(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    with pytest.raises(DuplicateUtterance, match=r"enrolled already.*'alice'"):
        enroll(storage, "bob", 2, 1)
    with storage.read() as snapshot:
        assert [s.name for s in snapshot.speakers()] == ["alice"]


def test_rename(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    enroll(storage, "bob", 2)
    with pytest.raises(DuplicateSpeaker, match="'bob' exists already"):
        with storage.change() as change:
            change.rename("alice", "bob")
    with storage.change() as change:
        renamed = change.rename("alice", "alicia")
    assert renamed.name == "alicia" and renamed.n_utterances == 1
    with storage.read() as snapshot:
        assert [u.speaker for u in snapshot.utterances("alicia")] == ["alicia"]
    assert names_found(storage, unit(1), 1) == ["alicia"]


def test_remove_speaker(storage: Storage) -> None:
    enroll(storage, "alice", 1, 2)
    enroll(storage, "bob", 3)
    with storage.change(templates=True) as change:
        removed = change.remove_speaker("alice")
    assert removed.name == "alice" and removed.n_utterances == 2
    with storage.read() as snapshot:
        assert [s.name for s in snapshot.speakers()] == ["bob"]
        assert snapshot.counts() == (1, 1)
        assert snapshot.enrolled_hashes([clips(1)[0][0].sha256]) == {}
    assert names_found(storage, unit(1)) == ["bob"]
    enroll(storage, "alice", 1)  # its audio may be enrolled again


def test_remove_utterance_recomputes_the_template(storage: Storage) -> None:
    enroll(storage, "alice", 1, 2)
    with storage.read() as snapshot:
        first, second = snapshot.utterances("alice")
    with storage.change(templates=True) as change:
        left = change.remove_utterance(first.id)
    assert left.n_utterances == 1
    with storage.read() as snapshot:
        np.testing.assert_allclose(snapshot.template("alice"), unit(2), atol=1e-6)
    (match,) = storage.search(unit(2)[None, :], 1)[0]
    assert match.speaker == "alice" and match.score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="only one of 'alice'"):
        with storage.change(templates=True) as change:
            change.remove_utterance(second.id)


def test_each_clip_keeps_how_its_vector_was_embedded(storage: Storage) -> None:
    """From the words and a margin (today's clips), or whole (``spoken_margin_s`` None:
    an older speakerdb's, or an archive's of then); the speakers with any whole clip are
    counted, and stop counting when those clips go."""
    enroll(storage, "today", 1)
    made, vectors = clips(2, 3, 4)
    whole = [replace(c, spoken_margin_s=None) for c in made]
    with storage.change(templates=True) as change:
        change.enroll("mixed", [whole[0], made[1]], vectors[:2])
        change.enroll("before", whole[2:], vectors[2:])
    with storage.read() as snapshot:
        assert [u.spoken_margin_s for u in snapshot.utterances("today")] == [0.5]
        mixed = snapshot.utterances("mixed")
        assert [u.spoken_margin_s for u in mixed] == [None, 0.5]
        assert [u.spoken_margin_s for u in snapshot.utterances("before")] == [None]
        assert snapshot.whole_clip_speakers() == 2
    with storage.change(templates=True) as change:
        change.remove_utterance(mixed[0].id)
        change.remove_speaker("before")
    with storage.read() as snapshot:
        assert snapshot.whole_clip_speakers() == 0


def test_vectors_of_clips_are_replaced_in_one_change(storage: Storage) -> None:
    """A speaker's clips embedded anew (an older speakerdb's whole clips, from their
    words): the same clips (ids, kept audio) with new vectors, lengths and margins, the
    template and the search following; refused for another speaker's or other audio."""
    made, _ = clips(1, 2, 3)
    whole = [replace(c, spoken_margin_s=None) for c in made]
    with storage.change(templates=True) as change:
        change.record_encoder(INFO)
        change.enroll("alice", whole[:2], np.stack([unit(1), unit(2)]))
        change.enroll("bob", whole[2:], unit(3)[None, :])
        (first, second) = change.utterances("alice")
        change.keep_audio(first.id, "k", b"sealed")
    with storage.read() as snapshot:
        version = snapshot.version()
        (bob,) = snapshot.utterances("bob")
    anew = [replace(c, samples=np.ones(8000, np.float32)) for c in made[:2]]
    with storage.change(templates=True) as change:
        after = change.replace_vectors([first.id, second.id], anew, np.stack([unit(7)] * 2))
    assert (after.name, after.n_utterances) == ("alice", 2)
    with storage.read() as snapshot:
        stored = snapshot.utterances("alice")
        assert [u.id for u in stored] == [first.id, second.id]
        assert [u.spoken_margin_s for u in stored] == [0.5, 0.5]
        assert [u.duration_s for u in stored] == pytest.approx([0.5, 0.5])
        assert [u.source for u in stored] == ["c1.wav", "c2.wav"]
        assert snapshot.kept_audio([first.id])[first.id].data == b"sealed"
        np.testing.assert_allclose(snapshot.template("alice"), unit(7), atol=1e-6)
        np.testing.assert_allclose(snapshot.population(["alice"]).embeddings[0], unit(7))
        assert snapshot.whole_clip_speakers() == 1 and snapshot.version() > version
    assert names_found(storage, unit(7), 1) == ["alice"]
    for ids, given, why in [
        ([first.id, bob.id], [anew[0], made[2]], "not all one speaker's"),
        ([first.id], [made[1]], "other audio"),
        ([10**6], made[:1], "no enrolled clip"),
    ]:
        with pytest.raises(InputError, match=why), storage.change(templates=True) as change:
            change.replace_vectors(ids, given, np.stack([unit(9)] * len(ids)))
    with storage.read() as snapshot:
        np.testing.assert_allclose(snapshot.template("alice"), unit(7), atol=1e-6)


def test_templates_need_a_templates_change(storage: Storage) -> None:
    with pytest.raises(RuntimeError, match="templates=True"), storage.change() as change:
        change.enroll("alice", *clips(1))


# -- atomicity and search -----------------------------------------------------


def test_an_exception_inside_a_change_leaves_nothing(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    with pytest.raises(KeyError), storage.change(templates=True) as change:
        change.set_setting("threshold", "0.9")
        change.enroll("bob", *clips(2))
        change.remove_speaker("alice")
        change.add_audit([entry(datetime.now(timezone.utc))])
        raise KeyError("boom")
    with storage.read() as snapshot:
        assert [s.name for s in snapshot.speakers()] == ["alice"]
        assert "threshold" not in snapshot.settings()
        assert snapshot.audit_entries(datetime.min.replace(tzinfo=timezone.utc), 10) == []
    assert names_found(storage, unit(2)) == ["alice"]


def test_search_is_best_first_and_agrees_with_the_names(storage: Storage) -> None:
    for i, name in enumerate(["a", "b", "c", "d"]):
        enroll(storage, name, 10 + i)
    query = unit(12)
    found = storage.search(np.stack([query, unit(10)]), 3)
    assert len(found) == 2 and all(len(row) == 3 for row in found)
    assert found[0][0].speaker == "c" and found[1][0].speaker == "a"
    for row in found:
        scores = [m.score for m in row]
        assert scores == sorted(scores, reverse=True)
    with storage.read() as snapshot:
        templates = {s.name: snapshot.template(s.name) for s in snapshot.speakers()}
    for match in found[0]:
        assert match.score == pytest.approx(float(templates[match.speaker] @ query), abs=1e-5)
    assert len(storage.search(query[None, :], 10)[0]) == 4


def test_a_removed_speaker_is_never_found(storage: Storage) -> None:
    for i in range(6):
        enroll(storage, f"s{i}", 20 + i)
    for i in range(0, 6, 2):
        with storage.change(templates=True) as change:
            change.remove_speaker(f"s{i}")
        assert f"s{i}" not in names_found(storage, unit(20 + i))
    with storage.read() as snapshot:
        assert {s.name for s in snapshot.speakers()} == set(names_found(storage, unit(0)))


# -- audit rows ------------------------------------------------------------------


def entry(moment: datetime, speaker: str = "alice") -> AuditEntry:
    return AuditEntry(0, moment, "verify", speaker, speaker, 0.9, None, 0.5, True, Outcome.ACCEPTED)


def test_audit_rows(storage: Storage) -> None:
    now = datetime.now(timezone.utc)
    old = [entry(now - timedelta(days=10 - i), f"old{i}") for i in range(3)]
    new = [entry(now, f"new{i}") for i in range(3)]
    with storage.change() as change:
        change.add_audit(old + new)
    with storage.read() as snapshot:
        rows = snapshot.audit_entries(now - timedelta(days=100), 100)
        recent = snapshot.audit_entries(now - timedelta(days=1), 2)
    assert [r.claimed for r in rows] == ["new2", "new1", "new0", "old2", "old1", "old0"]
    assert len({r.id for r in rows}) == 6
    assert rows[0].time == now and rows[0].score == 0.9 and rows[0].accepted
    assert [r.claimed for r in recent] == ["new2", "new1"]
    with storage.change() as change:
        change.prune_audit(now - timedelta(days=8), 4)
    with storage.read() as snapshot:
        kept = snapshot.audit_entries(now - timedelta(days=100), 100)
    assert [r.claimed for r in kept] == ["new2", "new1", "new0", "old2"]
    with storage.change() as change:
        assert change.clear_audit() == 4
    with storage.read() as snapshot:
        assert snapshot.audit_entries(now - timedelta(days=100), 100) == []


# -- the lifecycle --------------------------------------------------------------------


def test_metadata_is_kept_and_looked_up(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    enroll(storage, "bob", 2)
    with storage.change() as change:
        after = change.set_metadata("alice", "E1", {"team": "night", "floor": 3}, None)
    assert (after.external_id, after.attributes) == ("E1", {"floor": 3, "team": "night"})
    enroll(storage, "alice", 3)  # more clips keep the metadata
    with storage.read() as snapshot:
        alice = snapshot.speaker("alice")
        assert (alice.external_id, alice.attributes) == ("E1", {"floor": 3, "team": "night"})
        assert snapshot.speaker_by_external_id("E1") == alice
        assert snapshot.speaker_by_external_id("E2") is None
        assert [s.attributes for s in snapshot.speakers()] == [alice.attributes, {}]
    alice.attributes["team"] = "day"  # a copy: nothing stored changes
    with storage.read() as snapshot:
        assert snapshot.speaker("alice").attributes["team"] == "night"


def test_an_external_id_belongs_to_one_speaker(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    enroll(storage, "bob", 2)
    with storage.change() as change:
        change.set_metadata("alice", "E1", {}, None)
    with pytest.raises(DuplicateSpeaker, match="E1"), storage.change() as change:
        change.set_metadata("bob", "E1", {"a": 1}, None)
    with storage.change() as change:
        change.set_metadata("alice", None, {}, None)
        change.set_metadata("bob", "E1", {}, None)
    with storage.read() as snapshot:
        assert snapshot.speaker_by_external_id("E1").name == "bob"
        assert snapshot.speaker("alice").external_id is None
    with pytest.raises(SpeakerNotFound), storage.change() as change:
        change.set_metadata("carol", "E3", {}, None)


def test_expiry_dates(storage: Storage) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for name, seed in (("alice", 1), ("bob", 2), ("carol", 3)):
        enroll(storage, name, seed)
    with storage.change() as change:
        change.set_metadata("bob", None, {}, now + timedelta(days=1))
        change.set_metadata("alice", None, {}, now - timedelta(seconds=1))
    with storage.read() as snapshot:
        assert snapshot.speaker("bob").expires_at == now + timedelta(days=1)
        assert snapshot.speaker("carol").expires_at is None
        assert snapshot.expired(now) == ["alice"]
        assert snapshot.expired(now + timedelta(days=2)) == ["alice", "bob"]


def test_audit_entries_of_a_name_are_rewritten_or_purged(storage: Storage) -> None:
    now = datetime.now(timezone.utc)
    rows = [entry(now, "alice"), entry(now, "bob"), replace(entry(now, "bob"), identified="alice")]
    with storage.change() as change:
        change.add_audit(rows)
        assert change.rewrite_audit("alice", "removed-1") == 2
        assert change.rewrite_audit("nobody", "removed-9") == 0
    with storage.read() as snapshot:
        kept = snapshot.audit_entries(now - timedelta(days=1), 10)
    named = [(e.claimed, e.identified) for e in kept]
    assert named == [("bob", "removed-1"), ("bob", "bob"), ("removed-1", "removed-1")]
    with storage.change() as change:
        assert change.rewrite_audit("bob", None) == 2
    with storage.read() as snapshot:
        assert [e.claimed for e in snapshot.audit_entries(now - timedelta(days=1), 10)] == [
            "removed-1"
        ]


def test_the_watchlist(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    enroll(storage, "mallory", 2)
    with storage.change() as change:
        assert change.set_watchlist("mallory", True).watchlist
    with storage.read() as snapshot:
        assert snapshot.watchlist() == {"mallory"}
        assert [s.watchlist for s in snapshot.speakers()] == [False, True]
    assert names_found(storage, unit(2))[0] == "mallory"  # searched as any speaker
    with storage.change() as change:
        change.set_watchlist("mallory", False)
    with storage.read() as snapshot:
        assert snapshot.watchlist() == frozenset()


def test_tombstones(storage: Storage) -> None:
    with storage.change() as change:
        first = change.add_tombstone("E1", ("alice", "alice"))
        second = change.add_tombstone(None, ("Bob", "bob"))
    assert (first.external_id, first.name_key, second.folded_key) == ("E1", "alice", "bob")
    with storage.read() as snapshot:
        assert snapshot.tombstones() == [first, second]
        assert snapshot.find_tombstone(("x", "bob"), None) == second
        assert snapshot.find_tombstone(("Bob", "y"), None) == second
        assert snapshot.find_tombstone(None, "E1") == first
        assert snapshot.find_tombstone(("x", "y"), "E2") is None
        assert snapshot.find_tombstone(None, None) is None
    with storage.change() as change:
        assert change.clear_tombstones(None, "E1") == 1
        assert change.clear_tombstones(("x", "y"), None) == 0
    with storage.read() as snapshot:
        assert snapshot.tombstones() == [second]


def test_audit_rows_keep_the_key_that_asked(storage: Storage) -> None:
    now = datetime.now(timezone.utc)
    with storage.change() as change:
        change.add_audit([replace(entry(now), api_key="door-1"), entry(now, "bob")])
    with storage.read() as snapshot:
        rows = snapshot.audit_entries(now - timedelta(days=1), 10)
    assert [(r.claimed, r.api_key) for r in rows] == [("bob", None), ("alice", "door-1")]


# -- service keys -------------------------------------------------------------------


def test_api_keys_are_found_by_digest_listed_by_name_and_revoked(storage: Storage) -> None:
    now = datetime.now(timezone.utc)
    door, admin = ApiKey("door", "query", now), ApiKey("admin", "admin", now)
    with storage.change() as change:
        change.add_api_key(door, "d" * 64)
        change.add_api_key(admin, "a" * 64)
    with storage.read() as snapshot:
        assert snapshot.api_keys() == [admin, door]
        assert snapshot.api_key("d" * 64) == door
        assert snapshot.api_key("e" * 64) is None
    with pytest.raises(InputError, match="exists already"), storage.change() as change:
        change.add_api_key(ApiKey("door", "admin", now), "f" * 64)
    with storage.change() as change:
        assert change.revoke_api_key("door") == door
    with pytest.raises(InputError, match="no service key named 'door'"), storage.change() as c:
        c.revoke_api_key("door")
    with storage.read() as snapshot:
        assert snapshot.api_keys() == [admin]
        assert snapshot.api_key("d" * 64) is None


# -- groups --------------------------------------------------------------------------


def test_groups_hold_members_and_follow_removals(storage: Storage) -> None:
    for i, name in enumerate(["alice", "bob", "carol"]):
        enroll(storage, name, 40 + i)
    with storage.change() as change:
        assert change.add_to_group("door-a", ["alice", "bob"]) == 2
        assert change.add_to_group("door-a", ["alice"]) == 0  # a member already
        assert change.add_to_group("lab", ["alice"]) == 1
    with storage.read() as snapshot:
        assert [(g.name, g.members) for g in snapshot.groups()] == [
            ("door-a", ("alice", "bob")),
            ("lab", ("alice",)),
        ]
        assert snapshot.speaker("alice").groups == ("door-a", "lab")
        assert [s.groups for s in snapshot.speakers()] == [("door-a", "lab"), ("door-a",), ()]
        assert snapshot.group_members("door-a") == ["alice", "bob"]
        with pytest.raises(
            GroupNotFound, match=r"no group named .door-b.; db\.lifecycle\.groups\.list\(\)"
        ):
            snapshot.group_members("door-b")
    with pytest.raises(SpeakerNotFound), storage.change() as change:
        change.add_to_group("door-a", ["carol", "nobody"])  # all or none
    with storage.change() as change:
        assert change.remove_from_group("door-a", ["bob", "carol"]) == 1
    with storage.change(templates=True) as change:
        change.remove_speaker("alice")  # leaves every group
    with storage.read() as snapshot:
        assert [(g.name, g.members) for g in snapshot.groups()] == [("door-a", ()), ("lab", ())]
    with storage.change() as change:
        assert change.delete_group("lab").name == "lab"
    with storage.read() as snapshot:
        assert [g.name for g in snapshot.groups()] == ["door-a"]


def brute_force(storage: Storage, queries: np.ndarray, names: set[str], k: int) -> list[list[str]]:
    """The ``k`` best of ``names`` for each query, by their templates."""
    with storage.read() as snapshot:
        templates = {n: snapshot.template(n) for n in names}
    order = sorted(templates)
    scores = queries @ np.stack([templates[n] for n in order]).T
    return [[order[j] for j in np.argsort(-row, kind="stable")[:k]] for row in scores]


@pytest.mark.parametrize("exact_up_to", [10_000, 0], ids=["exact", "filtered-hnsw"])
def test_a_group_search_finds_the_group_s_best_and_everyone_s(
    storage: Storage, exact_up_to: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pgvector scores small groups exactly and larger ones by HNSW with the group as a
    # filter (iterative scan): both are checked, on this small database, by the limit.
    from speakerdb.storage.postgres import _pgvector

    monkeypatch.setattr(_pgvector, "EXACT_GROUP_UP_TO", exact_up_to)
    for i in range(30):
        enroll(storage, f"s{i:02d}", 100 + i)
    sizes = {"one": 1, "three": 3, "ten": 10, "most": 25}
    with storage.change() as change:
        for group, size in sizes.items():
            change.add_to_group(group, [f"s{i:02d}" for i in range(0, 30, 30 // size)][:size])
    queries = np.stack([unit(100 + i) + 0.3 * unit(900 + i) for i in range(8)])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    everyone = brute_force(storage, queries, {f"s{i:02d}" for i in range(30)}, 2)
    for group in sizes:
        with storage.read() as snapshot:
            members = set(snapshot.group_members(group))
        found = storage.find(queries, 10, group=group, overall=2)
        assert [[m.speaker for m in row] for row in found.matches] == brute_force(
            storage, queries, members, 10
        )
        assert [[m.speaker for m in row] for row in found.overall] == everyone
        one = storage.find(queries[:1], 10, group=group)  # one query: another path
        assert [m.speaker for m in one.matches[0]] == brute_force(
            storage, queries[:1], members, 10
        )[0]
    with pytest.raises(GroupNotFound):
        storage.find(queries, 5, group="nobody")


def test_a_search_carries_the_marks_and_sees_them_change(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    enroll(storage, "mallory", 2)
    found = storage.find(unit(2)[None, :], 2)
    assert found.watchlist == frozenset() and found.expiring is None
    later = datetime.now(timezone.utc) + timedelta(days=3)
    with storage.change() as change:
        change.set_watchlist("mallory", True)
        change.set_metadata("alice", None, {}, later)
    found = storage.find(unit(2)[None, :], 2)
    assert found.watchlist == {"mallory"}
    assert found.expiring == later
    with storage.change() as change:
        change.add_to_group("door", ["alice"])
    assert [m.speaker for m in storage.find(unit(2)[None, :], 2, group="door").matches[0]] == [
        "alice"
    ]
    with storage.change() as change:
        change.rename("alice", "alicia")
    assert storage.find(unit(2)[None, :], 2, group="door").matches[0][0].speaker == "alicia"


def test_marks_changed_through_another_handle_are_seen(shared_storage: Storage) -> None:
    """Another process (another handle on the same database) changes a mark or a group:
    the next search of this one sees it, though nothing changed the templates."""
    storage = shared_storage
    enroll(storage, "alice", 1)
    enroll(storage, "mallory", 2)
    assert storage.find(unit(2)[None, :], 2).watchlist == frozenset()  # cached now
    other = open_storage(storage.path)
    try:
        with other.change() as change:
            change.set_watchlist("mallory", True)
            change.add_to_group("door", ["alice"])
    finally:
        other.close()
    found = storage.find(unit(2)[None, :], 2, group="door")
    assert found.watchlist == {"mallory"}
    assert [m.speaker for m in found.matches[0]] == ["alice"]


def test_a_key_may_be_bound_to_a_group(storage: Storage) -> None:
    now = datetime.now(timezone.utc)
    door = ApiKey("door", "query", now, "door-a")
    with storage.change() as change:
        change.add_api_key(door, "d" * 64)
    with storage.read() as snapshot:
        assert snapshot.api_key("d" * 64) == door
        assert snapshot.api_keys()[0].group == "door-a"


# -- threads ------------------------------------------------------------------------


def stored(seed: float, when: datetime, utterance: int | None = None, **owner: str) -> tuple:
    """A fingerprint of a synthetic voice, and its record for the storage."""
    printed = fingerprint(voice(seed, 2.0, seed=int(seed)))
    keys = stored_keys(printed)
    return keys, StoredPrint(printed.to_bytes(), keys, when, utterance, **owner)


def test_prints_are_found_by_their_keys_within_the_window(storage: Storage) -> None:
    enroll(storage, "alice", 1, 2)
    with storage.read() as snapshot:
        first = snapshot.utterances("alice")[0].id
    now = datetime.now(timezone.utc)
    enrolled_keys, enrolled = stored(110.0, now, first)
    query_keys, query = stored(230.0, now - timedelta(hours=1), speaker="alice", session="s1")
    with storage.change() as change:
        change.add_prints([enrolled, query])
    with storage.read() as snapshot:
        hit = snapshot.print_candidates(enrolled_keys, now, 5)[0]
        assert (hit.enrolled, hit.data, hit.votes) == (True, enrolled.data, len(enrolled_keys))
        assert hit.speaker == "alice"
        # A query's fingerprint counts from `since` on, and not for its own session.
        assert [h.enrolled for h in snapshot.print_candidates(query_keys, now, 5)] in ([], [True])
        found = snapshot.print_candidates(query_keys, now - timedelta(hours=2), 5)
        assert found[0].data == query.data and found[0].speaker == "alice"
        assert not found[0].enrolled
        alone = snapshot.print_candidates(query_keys, now - timedelta(hours=2), 5, "s1")
        assert all(h.enrolled for h in alone)
        assert snapshot.print_counts(now - timedelta(hours=2)) == (1, 1)
        assert snapshot.print_counts(now) == (1, 0)
        assert snapshot.print_candidates(np.zeros((0, 2), np.int64), now, 5) == []
    with storage.change() as change:
        assert change.prune_prints(now - timedelta(minutes=30)) == 1
    with storage.read() as snapshot:
        assert snapshot.print_counts(now - timedelta(hours=2)) == (1, 0)


def synthetic(
    rows: list[tuple[int, int]], when: datetime, utterance: int | None = None
) -> StoredPrint:
    """A stored fingerprint with the index rows ``(key, step)`` given."""
    return StoredPrint(
        b"fp" + bytes(str(rows[:2]), "ascii"), np.array(rows, np.int64), when, utterance
    )


def test_a_key_range_is_held_while_a_print_has_a_key_in_it(storage: Storage) -> None:
    """``has_print_keys``: whether a fingerprint version has prints to look up (a range
    holds one version's keys), counting a query's print out of the window until pruned."""
    enroll(storage, "alice", 1)
    with storage.read() as snapshot:
        clip = snapshot.utterances("alice")[0].id
        assert not snapshot.has_print_keys(0, 1 << 30)  # any key (PostgreSQL's are 32-bit)
    now = datetime.now(timezone.utc)
    key = (5 << 16) + 3
    enrolled = synthetic([(key, 0), (key + 9, 1)], now, clip)
    expired = synthetic([(9 << 16, 0)], now - timedelta(hours=2))
    with storage.change() as change:
        change.add_prints([enrolled, expired])
    with storage.read() as snapshot:
        assert snapshot.has_print_keys(5 << 16, 6 << 16)
        assert snapshot.has_print_keys(key, key + 1)
        assert not snapshot.has_print_keys(0, key)  # the upper bound is not in the range
        assert not snapshot.has_print_keys(key + 10, 9 << 16)
        assert snapshot.has_print_keys(9 << 16, 10 << 16)
    with storage.change() as change:
        change.prune_prints(now - timedelta(hours=1))
    with storage.change(templates=True) as change:
        change.remove_speaker("alice")
    with storage.read() as snapshot:
        assert not snapshot.has_print_keys(0, 1 << 30)


def test_a_common_key_does_not_hide_a_clip_within_a_budget(storage: Storage) -> None:
    """With a budget of rows, the rarest keys are read first: stored prints that share
    only a key held by many others are not read, and do not crowd out the one that
    shares rare keys with the query."""
    enroll(storage, "alice", 1)
    with storage.read() as snapshot:
        clip = snapshot.utterances("alice")[0].id
    now = datetime.now(timezone.utc)
    target = synthetic([(1000 + i, i + 5) for i in range(10)], now, clip)  # 10 votes, lag 5
    # 30 stored queries hold key 7 at 40 steps each: 20 votes at one lag each.
    decoys = [synthetic([(7, s) for s in range(40)], now) for _ in range(30)]
    with storage.change() as change:
        change.add_prints([*decoys, target])
    query = np.array([(1000 + i, i) for i in range(10)] + [(7, s) for s in range(20)])
    since = now - timedelta(hours=1)
    with storage.read() as snapshot:
        every = snapshot.print_candidates(query, since, 5)
        assert [h.votes for h in every] == [20] * 5  # every row read: the decoys win
        within = snapshot.print_candidates(query, since, 5, rows=100)
        assert [(h.data, h.enrolled, h.votes) for h in within] == [(target.data, True, 10)]
        # Key 7's 1,200 rows fit a budget that large: then every row counts again.
        assert len(snapshot.print_candidates(query, since, 5, rows=1210)) == 5
        assert snapshot.print_candidates(query, since, 5, rows=0) == []


def test_prints_out_of_the_window_do_not_crowd_out_the_rest(storage: Storage) -> None:
    """Many expired queries' prints (not pruned yet) that out-vote an enrolled clip's are
    skipped, however many: the lookup still returns the enrolled clip's."""
    enroll(storage, "alice", 1)
    with storage.read() as snapshot:
        clip = snapshot.utterances("alice")[0].id
    now = datetime.now(timezone.utc)
    enrolled = synthetic([(50 + i, i) for i in range(3)], now, clip)
    expired = [synthetic([(50 + i, i) for i in range(3)] + [(60, 0)], now - timedelta(hours=2))]
    expired *= 25
    with storage.change() as change:
        change.add_prints([*expired, enrolled])
    query = np.array([(50, 0), (51, 1), (52, 2), (60, 0)])
    with storage.read() as snapshot:
        found = snapshot.print_candidates(query, now - timedelta(hours=1), 3, rows=1000)
        assert [(h.data, h.votes) for h in found] == [(enrolled.data, 3)]
        assert len(snapshot.print_candidates(query, now - timedelta(hours=3), 3)) == 3


def test_affordable_keys_are_the_rarest_that_fit() -> None:
    keys, counts = np.array([5, 3, 9, 4]), np.array([10, 2, 2, 0])
    assert affordable_keys(keys, counts, 4).tolist() == [4, 3, 9]  # ties: the lower key
    assert affordable_keys(keys, counts, 3).tolist() == [4, 3]
    assert affordable_keys(keys, counts, 0).tolist() == [4]  # a key with no rows is free
    assert affordable_keys(keys, counts, None).tolist() == [5, 3, 9, 4]


def test_lag_votes_count_each_prints_most_hits_at_one_lag() -> None:
    """The vote count every backend shares, against counting by hand (negative lags,
    large ids and repeated keys included)."""
    rng = np.random.default_rng(5)
    query = np.stack([rng.integers(0, 40, 300), rng.integers(0, 200, 300)], axis=1)
    rows = np.stack(
        [rng.choice([3, 7, 2**40], 500), rng.integers(0, 40, 500), rng.integers(0, 200, 500)],
        axis=1,
    )
    by_hand: dict[int, Counter] = {}
    for print_id, key, step in rows.tolist():
        for q_key, q_step in query.tolist():
            if q_key == key:
                by_hand.setdefault(print_id, Counter())[step - q_step] += 1
    expected = {i: max(c.values()) for i, c in by_hand.items()}
    assert lag_votes(query, rows) == expected
    assert lag_votes(query, rows[:0]) == {}


def test_prints_go_with_their_clip_and_their_speaker(storage: Storage) -> None:
    enroll(storage, "alice", 1, 2)
    enroll(storage, "bob", 3)
    with storage.read() as snapshot:
        first, second = (u.id for u in snapshot.utterances("alice"))
    now = datetime.now(timezone.utc)
    records = [
        stored(110.0, now, first)[1],
        stored(120.0, now, second)[1],
        stored(130.0, now, speaker="alice")[1],
        stored(140.0, now, speaker="bob")[1],
    ]
    with storage.change() as change:
        change.add_prints(records)
    with storage.change(templates=True) as change:
        change.remove_utterance(first)
    with storage.read() as snapshot:
        assert snapshot.print_counts(now) == (1, 2)
    with storage.change(templates=True) as change:
        change.remove_speaker("alice")
    with storage.read() as snapshot:
        assert snapshot.print_counts(now) == (0, 1)  # bob's query is left


def test_kept_audio_goes_with_its_clip_and_its_speaker(storage: Storage) -> None:
    enroll(storage, "alice", 1, 2)
    enroll(storage, "bob", 3)
    with storage.read() as snapshot:
        first, second = (u.id for u in snapshot.utterances("alice"))
        (third,) = (u.id for u in snapshot.utterances("bob"))
    sealed = bytes(range(256)) * 1000  # large: the row spills over many pages
    with storage.change() as change:
        change.keep_audio(first, "k1", sealed)
        change.keep_audio(second, "k1", b"second")
        change.keep_audio(third, "k2", b"third")
        with pytest.raises(InputError, match="no enrolled clip #999"):
            change.keep_audio(999, "k1", b"x")
    with storage.read() as snapshot:
        found = snapshot.kept_audio([first, third, 999])
        assert sorted(found) == [first, third]
        assert found[first].data == sealed and found[first].key_id == "k1"
        assert found[third] == (third, "k2", b"third")
        assert snapshot.kept_audio_count() == 3 and snapshot.kept_audio_count("alice") == 2
    with storage.change(templates=True) as change:
        change.remove_utterance(first)
    with storage.read() as snapshot:
        assert snapshot.kept_audio([first]) == {} and snapshot.kept_audio_count() == 2
    with storage.change(templates=True) as change:
        change.remove_speaker("alice")
    with storage.read() as snapshot:
        assert snapshot.kept_audio([second, third]).keys() == {third}
        assert snapshot.kept_audio_count() == 1


def test_kept_audio_is_all_or_nothing(storage: Storage) -> None:
    enroll(storage, "alice", 1)
    with storage.read() as snapshot:
        (clip_id,) = (u.id for u in snapshot.utterances("alice"))
    with pytest.raises(RuntimeError), storage.change() as change:
        change.keep_audio(clip_id, "k1", b"sealed")
        raise RuntimeError("killed")
    with storage.read() as snapshot:
        assert snapshot.kept_audio_count() == 0


def test_last_matches_are_recorded_at_most_once_per_period(storage: Storage) -> None:
    day = timedelta(days=1)
    for name, seed in (("alice", 1), ("bob", 2), ("carol", 3)):
        enroll(storage, name, seed)
    with storage.read() as snapshot:
        enrolled = snapshot.speaker("alice").last_match_at
        assert enrolled is not None  # idleness counts from the enrollment
        assert snapshot.idle(enrolled - day) == []
        assert snapshot.idle(enrolled + day) == ["alice", "bob", "carol"]
    later = enrolled + 3 * day
    with storage.change() as change:
        assert change.record_matches(["alice", "bob", "nobody"], later, later - day) == 2
        # Within the period nothing is written again.
        assert change.record_matches(["alice"], later + day / 2, later + day / 2 - day) == 0
        change.set_last_match("carol", enrolled - 10 * day)
    before = storage.read
    with before() as snapshot:
        assert snapshot.speaker("alice").last_match_at == later
        assert snapshot.speaker("carol").last_match_at == enrolled - 10 * day
        assert snapshot.idle(later) == ["carol"]
        assert snapshot.idle(later + day) == ["alice", "bob", "carol"]
        version = snapshot.version()
    with storage.change() as change:
        change.record_matches(["carol"], later + 2 * day, later + day)
    with storage.read() as snapshot:
        assert snapshot.version() == version  # no change of templates
        assert snapshot.idle(later + day) == ["alice", "bob"]


def test_the_cohort_is_kept_apart_from_the_speakers(storage: Storage) -> None:
    with storage.read() as snapshot:
        empty = snapshot.cohort()
        assert len(empty) == 0 and snapshot.cohort_hashes(["x"]) == frozenset()
    enroll(storage, "alice", 1)
    outside, vectors = clips(50, 51, 52)
    with storage.change() as change:
        assert change.add_cohort("stranger-a", outside[:2], vectors[:2]) == 2
        # A clip held already is skipped, in another call or the same.
        assert change.add_cohort("stranger-b", outside[1:], vectors[1:]) == 1
    with storage.read() as snapshot:
        cohort = snapshot.cohort()
        assert cohort.labels == ("stranger-a", "stranger-a", "stranger-b")
        np.testing.assert_array_equal(cohort.embeddings, vectors)  # bit-exact, oldest first
        assert cohort.durations_s.tolist() == [1.0, 1.0, 1.0] and cohort.n_voices == 2
        assert snapshot.cohort_hashes([c.sha256 for c in outside] + ["x"]) == {
            c.sha256 for c in outside
        }
        # Never a speaker: not listed, not counted, not in the population, never found.
        assert [s.name for s in snapshot.speakers()] == ["alice"]
        assert snapshot.counts() == (1, 1) and snapshot.population().names == ("alice",)
        assert snapshot.enrolled_hashes([c.sha256 for c in outside]) == {}
    assert names_found(storage, vectors[0]) == ["alice"]
    with pytest.raises(RuntimeError), storage.change() as change:
        change.clear_cohort()
        raise RuntimeError("rolled back")
    with storage.change() as change:
        assert change.clear_cohort() == 3
    with storage.read() as snapshot:
        assert len(snapshot.cohort()) == 0


def test_threads_enroll_remove_and_search_together(storage: Storage) -> None:
    enroll(storage, "anchor", 999)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(5):
                name = f"w{worker}-{i}"
                enroll(storage, name, 100 * worker + i)
                if i % 2:
                    with storage.change(templates=True) as change:
                        change.remove_speaker(name)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(20):
                assert "anchor" in names_found(storage, unit(999), 50)
                with storage.read() as snapshot:
                    snapshot.speakers()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(1, 4)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with storage.read() as snapshot:
        names = {s.name for s in snapshot.speakers()}
    assert names == {"anchor"} | {f"w{w}-{i}" for w in range(1, 4) for i in (0, 2, 4)}
    assert set(names_found(storage, unit(0), 50)) == names


def test_index_administration_is_the_sqlite_backend_s(tmp_path: Path) -> None:
    disk = sqlite_storage(tmp_path)
    try:
        assert isinstance(disk, IndexAdmin)
        enroll(disk, "alice", 1)
        assert disk.rebuild_index() == 1
        assert disk.index_choice().n_speakers == 1
        assert disk.set_index_kind("flat", None).kind == "flat"
        assert disk.current_index().ids().tolist() == [1]
    finally:
        disk.close()
    assert not isinstance(MemoryStorage(), IndexAdmin)


# -- SpeakerDB on the in-memory storage ------------------------------------------


PITCHES = {"alice": 110.0, "bob": 350.0, "carol": 1000.0}


def take(name: str, seed: int) -> tuple[np.ndarray, int]:
    return voice(PITCHES[name], 1.5, 16000, seed), 16000


def both(tmp_path: Path) -> Iterator[SpeakerDB]:
    yield SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())
    yield SpeakerDB(storage=MemoryStorage(), encoder=FakeEncoder())


def test_speakerdb_on_memory_answers_as_on_sqlite(tmp_path: Path) -> None:
    answers = []
    for db in both(tmp_path):
        with db:
            for i, name in enumerate(PITCHES):
                db.enroll(name, [take(name, 3 * i + j) for j in range(3)])
            identified = db.identify(take("bob", 50), top_k=3)
            verified = db.verify("carol", take("carol", 51))
            rejected = db.verify("alice", take("carol", 52))
            db.lifecycle.remove_utterance(db.utterances("alice")[0].id)
            db.rename("bob", "robert")
            db.remove("carol")
            with pytest.raises(DuplicateUtterance):
                db.enroll("dave", [take("alice", 1)])
            answers.append(
                (
                    identified.speaker,
                    [m.speaker for m in identified.matches],
                    [round(m.score, 4) for m in identified.matches],
                    (verified.accepted, round(verified.score, 4)),
                    (rejected.accepted, round(rejected.score, 4)),
                    [(s.name, s.n_utterances) for s in db.speakers()],
                    db.identify(take("bob", 53)).speaker,
                    db.threshold(),
                )
            )
    assert answers[0] == answers[1]
    assert answers[0][0] == "bob"


def test_speakerdb_on_memory_keeps_settings_and_audit() -> None:
    with SpeakerDB(storage=MemoryStorage(), encoder=FakeEncoder()) as db:
        db.enroll("alice", [take("alice", 1), take("alice", 2)])
        assert db.set_threshold(0.4) == 0.4
        assert db.threshold() == (0.4, "database")
        db.audit.configure(True)
        db.verify("alice", take("alice", 3))
        assert [e.claimed for e in db.audit.entries()] == ["alice"]
        assert db.audit.clear() == 1
        assert db.info().n_speakers == 1


def test_a_storage_or_a_path_not_both(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not both"):
        SpeakerDB(tmp_path / "x.db", storage=MemoryStorage())
