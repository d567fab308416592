"""An in-memory :class:`~speakerdb.storage.Storage`: dicts, and brute-force search.

For throw-away databases (``speakerdb evaluate``) and fast tests. It keeps the
contract of the SQLite backend (``tests/test_storage_contract.py``): the same
results, the same errors, changes all-or-nothing.

Every change works on a copy of the state and publishes it whole when it
ends, so a reader holds one unchanging state for as long as it likes and
needs no lock; writers take turns on one lock. Search multiplies the queries
by the matrix of templates, built once per published state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._metadata import attributes_from_json, attributes_to_json
from .._vectors import template_of
from ..decision._population import CohortVoices, Population
from ..errors import no_such_speaker
from ..types import (
    ApiKey,
    AuditEntry,
    EncoderInfo,
    Enrollment,
    Group,
    Match,
    Speaker,
    Tombstone,
    Utterance,
)
from ._kept import KeptAudio
from ._marks import Found, Marks, Members
from ._prints import PrintHit, StoredPrint, affordable_keys, lag_votes, ranked_by_votes
from ._protocol import StoreDescription
from ._rules import (
    check_clip_number,
    external_id_taken,
    key_taken,
    last_clip,
    name_taken,
    no_such_clip,
    no_such_group,
    no_such_key,
    refuse_enrolled,
    storable_source,
)

if TYPE_CHECKING:
    from ..audio._decode import Clip

__all__ = ["MemoryStorage"]


@dataclass(frozen=True, slots=True)
class _Person:
    name: str
    template: np.ndarray
    created_at: datetime
    clips: tuple[int, ...]  # utterance ids, oldest first
    external_id: str | None = None
    attributes: str | None = None  # canonical JSON, as the SQLite backend keeps it
    expires_at: datetime | None = None
    watchlist: bool = False
    last_match_at: datetime | None = None


@dataclass(slots=True)
class _State:
    """Everything stored. Published states are never changed: a change edits a copy."""

    settings: dict[str, str] = field(default_factory=dict)
    encoder: EncoderInfo | None = None
    speakers: dict[int, _Person] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    utterances: dict[int, Utterance] = field(default_factory=dict)
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    by_hash: dict[str, int] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    # Service keys by the hash of their secret.
    keys: dict[str, ApiKey] = field(default_factory=dict)
    version: int = 0
    next_audit: int = 1
    # Search's (speaker ids, names, templates matrix), built on first use.
    matrix: tuple[np.ndarray, list[str], np.ndarray] | None = None
    # Replay fingerprints by id, each with its speaker's id (None: nobody's).
    prints: dict[int, tuple[StoredPrint, int | None]] = field(default_factory=dict)
    next_print: int = 1
    # The cohort of outside voices: (label, audio hash, clip length, embedding), oldest first.
    cohort: list[tuple[str, str, float, np.ndarray]] = field(default_factory=list)
    # Kept (sealed) enrollment audio by utterance id.
    kept: dict[int, KeptAudio] = field(default_factory=dict)
    # Groups by name: when each was made, and its members' speaker ids.
    groups: dict[str, tuple[datetime, frozenset[int]]] = field(default_factory=dict)
    # Search's marks (watchlist, next expiry, groups), built on first use.
    marks: Marks | None = None

    def copy(self) -> _State:
        return _State(
            dict(self.settings),
            self.encoder,
            dict(self.speakers),
            dict(self.by_name),
            dict(self.utterances),
            dict(self.embeddings),
            dict(self.by_hash),
            list(self.audit),
            list(self.tombstones),
            dict(self.keys),
            self.version,
            self.next_audit,
            self.matrix,
            dict(self.prints),
            self.next_print,
            list(self.cohort),
            dict(self.kept),
            dict(self.groups),
        )


class MemoryStorage:
    """A :class:`~speakerdb.storage.Storage` that lives as long as the object."""

    def __init__(self) -> None:
        self._state = _State()
        self._writer = threading.RLock()

    @property
    def path(self) -> Path:
        return Path(":memory:")

    @property
    def created(self) -> bool:
        return True

    @property
    def exists(self) -> bool:
        return True

    @contextmanager
    def read(self) -> Iterator[_Snapshot]:
        yield _Snapshot(self._state)

    @contextmanager
    def change(self, *, templates: bool = False) -> Iterator[_Change]:
        with self._writer:
            change = _Change(self._state.copy(), templates=templates)
            yield change
            if change.changed_templates:
                change.state.version += 1
                change.state.matrix = None
            change.state.marks = None  # any change may change a mark
            self._state = change.state  # published whole, only once nothing raised

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Match, ...]]:
        return self.find(queries, k).matches

    def find(
        self, queries: np.ndarray, k: int, *, group: str | None = None, overall: int = 0
    ) -> Found:
        state = self._state
        marks = _marks_of(state)
        ids, names, matrix = _matrix_of(state)
        scores = np.asarray(queries, np.float32) @ matrix.T if len(ids) else None
        if group is None:
            return marks.found(_best(scores, names, k, len(queries)))
        among = np.isin(ids, marks.members(group).ids)
        within = None if scores is None else np.where(among, scores, -np.inf)
        found = _best(within, names, min(k, int(among.sum())), len(queries))
        return marks.found(found, _best(scores, names, overall, len(queries)) if overall else None)

    def describe(self, generation: int, digest: str | None) -> StoreDescription:
        return StoreDescription(":memory:", "in memory", f"up to date (generation {generation})")

    def discard(self) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: the data goes with the object."""


def _visible(held: tuple[StoredPrint, int | None], since: datetime, session: str | None) -> bool:
    """Whether a stored fingerprint takes part in a lookup: an enrolled clip's always, a
    query's within the window and not of the asking session."""
    printed = held[0]
    if printed.utterance_id is not None:
        return True
    return printed.time >= since and (session is None or printed.session != session)


def _best(scores: np.ndarray | None, names: list[str], k: int, n: int) -> list[tuple[Match, ...]]:
    """The ``k`` best of each row of ``scores`` (columns: ``names``), brute force."""
    if scores is None or k < 1:
        return [() for _ in range(n)]
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [
        tuple(Match(names[j], float(row[j])) for j in order)
        for row, order in zip(scores, best, strict=True)
    ]


def _marks_of(state: _State) -> Marks:
    if state.marks is None:
        people = state.speakers.values()
        expiries = [p.expires_at for p in people if p.expires_at is not None]
        state.marks = Marks(
            frozenset(p.name for p in people if p.watchlist),
            min(expiries, default=None),
            {name: Members(sorted(held[1])) for name, held in state.groups.items()},
            len(state.speakers),
        )
    return state.marks


def _matrix_of(state: _State) -> tuple[np.ndarray, list[str], np.ndarray]:
    if state.matrix is None:
        ids = np.asarray(sorted(state.speakers), np.int64)
        people = [state.speakers[int(i)] for i in ids]
        dim = state.encoder.dim if state.encoder is not None else 0
        matrix = np.stack([p.template for p in people]) if people else np.zeros((0, dim))
        # Two searches may build it at once; both build the same, and either is kept.
        state.matrix = (ids, [p.name for p in people], matrix.astype(np.float32))
    return state.matrix


class _Snapshot:
    """A :class:`~speakerdb.storage.Snapshot` of one published state."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def settings(self) -> dict[str, str]:
        return dict(self.state.settings)

    def encoder(self) -> EncoderInfo | None:
        return self.state.encoder

    def speakers(self) -> list[Speaker]:
        return [self._speaker(i) for _, i in sorted(self.state.by_name.items())]

    def names(self) -> frozenset[str]:
        return frozenset(self.state.by_name)

    def speaker(self, name: str) -> Speaker:
        return self._speaker(self._id_of(name))

    def speaker_by_external_id(self, external_id: str) -> Speaker | None:
        found = self._external_ids().get(external_id)
        return None if found is None else self._speaker(found)

    def utterances(self, name: str) -> list[Utterance]:
        person = self.state.speakers[self._id_of(name)]
        return [self.state.utterances[u] for u in person.clips]

    def template(self, name: str) -> np.ndarray:
        return self.state.speakers[self._id_of(name)].template.copy()

    def counts(self) -> tuple[int, int]:
        return len(self.state.speakers), len(self.state.utterances)

    def version(self) -> int:
        return self.state.version

    def enrolled_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        found = {h: self.state.by_hash[h] for h in hashes if h in self.state.by_hash}
        return {h: self.state.utterances[u].speaker for h, u in found.items()}

    def population(self, names: Sequence[str] | None = None) -> Population:
        wanted = self.state.by_name if names is None else set(names) & set(self.state.by_name)
        groups, lengths = {}, {}
        for name in wanted:
            clips = self.state.speakers[self.state.by_name[name]].clips
            groups[name] = np.stack([self.state.embeddings[u] for u in clips])
            lengths[name] = np.asarray([self.state.utterances[u].duration_s for u in clips])
        return Population.from_groups(groups, lengths)

    def cohort(self) -> CohortVoices:
        rows = self.state.cohort
        if not rows:
            return CohortVoices.empty(self.state.encoder.dim if self.state.encoder else 0)
        return CohortVoices(
            tuple(r[0] for r in rows),
            np.stack([r[3] for r in rows]),
            np.asarray([r[2] for r in rows], np.float64),
            tuple(r[1] for r in rows),
        )

    def cohort_hashes(self, hashes: Sequence[str]) -> frozenset[str]:
        return frozenset(hashes) & {r[1] for r in self.state.cohort}

    def audit_entries(self, since: datetime, limit: int) -> list[AuditEntry]:
        newest_first = reversed(self.state.audit)
        return [e for e in newest_first if e.time >= since][:limit]

    def print_candidates(
        self,
        keys: np.ndarray,
        since: datetime,
        limit: int,
        session: str | None = None,
        rows: int | None = None,
    ) -> list[PrintHit]:
        held = self.state.prints
        stored = [
            np.column_stack([np.full(len(p.keys), i), np.asarray(p.keys, np.int64)])
            for i, (p, _) in held.items()
            if len(p.keys)
        ]
        every = np.concatenate(stored) if stored else np.zeros((0, 3), np.int64)
        wanted, counts = np.unique(every[:, 1], return_counts=True)
        asked = np.isin(wanted, np.asarray(keys, np.int64).reshape(-1, 2)[:, 0])
        read = affordable_keys(wanted[asked], counts[asked], rows)
        live = [i for i, p in held.items() if _visible(p, since, session)]
        chosen = every[np.isin(every[:, 1], read) & np.isin(every[:, 0], live)]
        votes = lag_votes(keys, chosen)
        return [self._hit(i, votes[i]) for i in ranked_by_votes(votes)[: max(limit, 0)]]

    def print_counts(self, since: datetime) -> tuple[int, int]:
        held = self.state.prints.values()
        enrolled = sum(p.utterance_id is not None for p, _ in held)
        recent = sum(p.utterance_id is None and p.time >= since for p, _ in held)
        return enrolled, recent

    def _hit(self, print_id: int, votes: int) -> PrintHit:
        printed, owner = self.state.prints[print_id]
        person = self.state.speakers.get(owner) if owner is not None else None
        name = person.name if person is not None else None
        return PrintHit(print_id, printed.data, printed.utterance_id is not None, name, votes)

    def watchlist(self) -> frozenset[str]:
        return frozenset(p.name for p in self.state.speakers.values() if p.watchlist)

    def groups(self) -> list[Group]:
        return [self._group(name) for name in sorted(self.state.groups)]

    def group_members(self, group: str) -> list[str]:
        return list(self._group(group).members)

    def _group(self, group: str) -> Group:
        held = self.state.groups.get(group)
        if held is None:
            raise no_such_group(group)
        names = sorted(self.state.speakers[i].name for i in held[1] if i in self.state.speakers)
        return Group(group, tuple(names), held[0])

    def expired(self, now: datetime) -> list[str]:
        people = self.state.speakers.values()
        return sorted(p.name for p in people if p.expires_at is not None and p.expires_at <= now)

    def tombstones(self) -> list[Tombstone]:
        return list(self.state.tombstones)

    def idle(self, before: datetime) -> list[str]:
        people = self.state.speakers.values()
        return sorted(
            p.name for p in people if p.last_match_at is not None and p.last_match_at < before
        )

    def kept_audio(self, utterance_ids: Sequence[int]) -> dict[int, KeptAudio]:
        return {u: self.state.kept[u] for u in utterance_ids if u in self.state.kept}

    def kept_audio_count(self, name: str | None = None) -> int:
        if name is None:
            return len(self.state.kept)
        clips = self.state.speakers[self._id_of(name)].clips
        return sum(u in self.state.kept for u in clips)

    def find_tombstone(
        self, keys: tuple[str, str] | None, external_id: str | None
    ) -> Tombstone | None:
        return next((t for t in self.state.tombstones if _matches(t, keys, external_id)), None)

    def api_keys(self) -> list[ApiKey]:
        return sorted(self.state.keys.values(), key=lambda k: k.name)

    def api_key(self, digest: str) -> ApiKey | None:
        return self.state.keys.get(digest)

    def _id_of(self, name: str) -> int:
        found = self.state.by_name.get(name)
        if found is None:
            raise no_such_speaker(name, self.state.by_name)
        return found

    def _speaker(self, speaker_id: int) -> Speaker:
        person = self.state.speakers[speaker_id]
        attributes = attributes_from_json(person.attributes)
        clips = len(person.clips)
        return Speaker(
            speaker_id,
            person.name,
            clips,
            person.created_at,
            person.external_id,
            attributes,
            person.expires_at,
            person.watchlist,
            person.last_match_at,
            tuple(sorted(g for g, held in self.state.groups.items() if speaker_id in held[1])),
        )

    def _external_ids(self) -> dict[str, int]:
        people = self.state.speakers.items()
        return {p.external_id: i for i, p in people if p.external_id is not None}


class _Change(_Snapshot):
    """A :class:`~speakerdb.storage.Change` on a private copy of the state."""

    def __init__(self, state: _State, *, templates: bool) -> None:
        super().__init__(state)
        self._templates = templates
        self.changed_templates = False

    def set_setting(self, key: str, value: str) -> None:
        self.state.settings[key] = value

    def record_encoder(self, info: EncoderInfo) -> None:
        self.state.encoder = info

    def enroll(self, name: str, clips: Sequence[Clip], embeddings: np.ndarray) -> Enrollment:
        self._check_templates()
        refuse_enrolled(self.enrolled_hashes([c.sha256 for c in clips]), clips)
        now = datetime.now(timezone.utc)
        created = name not in self.state.by_name
        speaker_id = _next_id(self.state.speakers) if created else self.state.by_name[name]
        added = tuple(
            self._add_clip(speaker_id, name, clip, vector, now)
            for clip, vector in zip(clips, embeddings, strict=True)
        )
        old = self.state.speakers.get(speaker_id)
        new = tuple(u.id for u in added)
        if old is None:
            empty = np.zeros(0, np.float32)
            self._store(speaker_id, _Person(name, empty, now, new, last_match_at=now))
        else:
            self._store(speaker_id, replace(old, clips=old.clips + new))
        return Enrollment(self._speaker(speaker_id), added, created)

    def remove_speaker(self, name: str) -> Speaker:
        self._check_templates()
        speaker_id = self._id_of(name)
        removed = self._speaker(speaker_id)
        for utterance_id in self.state.speakers.pop(speaker_id).clips:
            self._drop_clip(utterance_id)
        self.state.groups = {
            g: (t, ids - {speaker_id}) for g, (t, ids) in self.state.groups.items()
        }
        self.state.prints = {i: h for i, h in self.state.prints.items() if h[1] != speaker_id}
        del self.state.by_name[name]
        self.changed_templates = True
        return removed

    def remove_utterance(self, utterance_id: int) -> Speaker:
        self._check_templates()
        check_clip_number(utterance_id)
        clip = self.state.utterances.get(utterance_id)
        if clip is None:
            raise no_such_clip(utterance_id)
        speaker_id = self.state.by_name[clip.speaker]
        person = self.state.speakers[speaker_id]
        if len(person.clips) < 2:
            raise last_clip(utterance_id, person.name)
        self._drop_clip(utterance_id)
        left = tuple(u for u in person.clips if u != utterance_id)
        self._store(speaker_id, replace(person, clips=left))
        return self._speaker(speaker_id)

    def rename(self, old: str, new: str) -> Speaker:
        speaker_id = self._id_of(old)
        if new != old and new in self.state.by_name:
            raise name_taken(new)
        person = self.state.speakers[speaker_id]
        del self.state.by_name[old]
        self.state.by_name[new] = speaker_id
        self.state.speakers[speaker_id] = replace(person, name=new)
        for u in person.clips:
            self.state.utterances[u] = replace(self.state.utterances[u], speaker=new)
        self.state.matrix = None  # its names are stale
        return self._speaker(speaker_id)

    def set_metadata(
        self,
        name: str,
        external_id: str | None,
        attributes: Mapping[str, Any],
        expires_at: datetime | None,
    ) -> Speaker:
        speaker_id = self._id_of(name)
        owner = self._external_ids().get(external_id) if external_id is not None else None
        if owner is not None and owner != speaker_id:
            raise external_id_taken(str(external_id), self.state.speakers[owner].name)
        person = self.state.speakers[speaker_id]
        self.state.speakers[speaker_id] = replace(
            person,
            external_id=external_id,
            attributes=attributes_to_json(attributes),
            expires_at=expires_at,
        )
        return self._speaker(speaker_id)

    def set_watchlist(self, name: str, on: bool) -> Speaker:
        speaker_id = self._id_of(name)
        person = self.state.speakers[speaker_id]
        self.state.speakers[speaker_id] = replace(person, watchlist=on)
        return self._speaker(speaker_id)

    def add_to_group(self, group: str, names: Sequence[str]) -> int:
        ids = {self._id_of(n) for n in names}
        made, held = self.state.groups.get(group, (datetime.now(timezone.utc), frozenset()))
        self.state.groups[group] = (made, held | ids)
        return len(ids - held)

    def remove_from_group(self, group: str, names: Sequence[str]) -> int:
        made, held = self._group_held(group)
        ids = {self._id_of(n) for n in names}
        self.state.groups[group] = (made, held - ids)
        return len(ids & held)

    def delete_group(self, group: str) -> Group:
        before = self._group(group)
        del self.state.groups[group]
        return before

    def _group_held(self, group: str) -> tuple[datetime, frozenset[int]]:
        held = self.state.groups.get(group)
        if held is None:
            raise no_such_group(group)
        return held

    def rewrite_audit(self, name: str, replacement: str | None) -> int:
        def naming(e: AuditEntry) -> bool:
            return name in (e.claimed, e.identified)

        found = sum(map(naming, self.state.audit))
        if replacement is None:
            self.state.audit = [e for e in self.state.audit if not naming(e)]
            return found

        def renamed(value: str | None) -> str | None:
            return replacement if value == name else value

        self.state.audit = [
            replace(e, claimed=renamed(e.claimed), identified=renamed(e.identified))
            for e in self.state.audit
        ]
        return found

    def keep_audio(self, utterance_id: int, key_id: str, data: bytes) -> None:
        check_clip_number(utterance_id)
        if utterance_id not in self.state.utterances:
            raise no_such_clip(utterance_id)
        self.state.kept[utterance_id] = KeptAudio(utterance_id, key_id, bytes(data))

    def record_matches(self, names: Sequence[str], when: datetime, older_than: datetime) -> int:
        changed = 0
        for name in set(names) & set(self.state.by_name):
            speaker_id = self.state.by_name[name]
            person = self.state.speakers[speaker_id]
            if person.last_match_at is None or person.last_match_at < older_than:
                self.state.speakers[speaker_id] = replace(person, last_match_at=when)
                changed += 1
        return changed

    def set_last_match(self, name: str, when: datetime) -> Speaker:
        speaker_id = self._id_of(name)
        person = self.state.speakers[speaker_id]
        self.state.speakers[speaker_id] = replace(person, last_match_at=when)
        return self._speaker(speaker_id)

    def add_tombstone(self, external_id: str | None, keys: tuple[str, str]) -> Tombstone:
        number = max((t.id for t in self.state.tombstones), default=0) + 1
        made = Tombstone(number, external_id, keys[0], keys[1], datetime.now(timezone.utc))
        self.state.tombstones.append(made)
        return made

    def clear_tombstones(self, keys: tuple[str, str] | None, external_id: str | None) -> int:
        before = len(self.state.tombstones)
        self.state.tombstones = [
            t for t in self.state.tombstones if not _matches(t, keys, external_id)
        ]
        return before - len(self.state.tombstones)

    def add_cohort(self, label: str, clips: Sequence[Clip], embeddings: np.ndarray) -> int:
        held = {r[1] for r in self.state.cohort}
        added = 0
        for clip, vector in zip(clips, np.asarray(embeddings, np.float32), strict=True):
            if clip.sha256 not in held:
                self.state.cohort.append((label, clip.sha256, clip.duration_s, vector.copy()))
                held.add(clip.sha256)
                added += 1
        return added

    def clear_cohort(self) -> int:
        removed = len(self.state.cohort)
        self.state.cohort = []
        return removed

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        for entry in entries:
            self.state.audit.append(replace(entry, id=self.state.next_audit))
            self.state.next_audit += 1

    def prune_audit(self, before: datetime, keep: int) -> None:
        kept = [e for e in self.state.audit if e.time >= before]
        self.state.audit = kept[-keep:]

    def clear_audit(self) -> int:
        removed = len(self.state.audit)
        self.state.audit = []
        return removed

    def add_prints(self, prints: Sequence[StoredPrint]) -> None:
        for printed in prints:
            owner = self.state.by_name.get(printed.speaker) if printed.speaker else None
            if printed.utterance_id is not None:
                owner = self.state.by_name.get(self.state.utterances[printed.utterance_id].speaker)
            self.state.prints[self.state.next_print] = (printed, owner)
            self.state.next_print += 1

    def prune_prints(self, before: datetime) -> int:
        old = [
            i
            for i, (p, _) in self.state.prints.items()
            if p.utterance_id is None and p.time < before
        ]
        for print_id in old:
            del self.state.prints[print_id]
        return len(old)

    def add_api_key(self, key: ApiKey, digest: str) -> None:
        if any(k.name == key.name for k in self.state.keys.values()):
            raise key_taken(key.name)
        self.state.keys[digest] = key

    def revoke_api_key(self, name: str) -> ApiKey:
        for digest, key in self.state.keys.items():
            if key.name == name:
                del self.state.keys[digest]
                return key
        raise no_such_key(name)

    def _add_clip(
        self, speaker_id: int, name: str, clip: Clip, vector: np.ndarray, now: datetime
    ) -> Utterance:
        utterance_id = _next_id(self.state.utterances)
        source = storable_source(clip.source)
        utterance = Utterance(utterance_id, name, source, clip.sha256, clip.duration_s, now)
        self.state.utterances[utterance_id] = utterance
        # Kept as the SQLite backend keeps it: little-endian float32, bit for bit.
        self.state.embeddings[utterance_id] = np.asarray(vector, dtype="<f4").astype(np.float32)
        self.state.by_hash[clip.sha256] = utterance_id
        return utterance

    def _drop_clip(self, utterance_id: int) -> None:
        utterance = self.state.utterances.pop(utterance_id)
        del self.state.embeddings[utterance_id]
        del self.state.by_hash[utterance.audio_sha256]
        self.state.kept.pop(utterance_id, None)
        held = self.state.prints.items()
        self.state.prints = {i: h for i, h in held if h[0].utterance_id != utterance_id}

    def _store(self, speaker_id: int, person: _Person) -> None:
        """Keep ``person`` with its template recomputed from its clips (the enrollment rule)."""
        vectors = np.stack([self.state.embeddings[u] for u in person.clips])
        template = np.asarray(template_of(vectors), dtype="<f4").astype(np.float32)
        self.state.speakers[speaker_id] = replace(person, template=template)
        self.state.by_name[person.name] = speaker_id
        self.changed_templates = True

    def _check_templates(self) -> None:
        if not self._templates:
            raise RuntimeError("a change of templates needs storage.change(templates=True)")


def _matches(found: Tombstone, keys: tuple[str, str] | None, external_id: str | None) -> bool:
    by_name = keys is not None and (found.name_key == keys[0] or found.folded_key == keys[1])
    return by_name or (external_id is not None and found.external_id == external_id)


def _next_id(rows: Mapping[int, object]) -> int:
    # As SQLite numbers rows: one more than the largest id in use.
    return max(rows, default=0) + 1
