"""The SQLite + FAISS file backend of :class:`~speakerdb.storage.Storage`.

SQLite (:mod:`._store`, the schema by :mod:`._schema`) holds everything; the
FAISS index file beside it is derived, and kept in step by :mod:`._indexsync`.
A change of templates follows the one protocol every process follows, written
here once: the index lock (:meth:`IndexSync.changing`), then the ``BEGIN
IMMEDIATE`` transaction, in which the ``generation`` counter is bumped, then,
once it has committed, the same template updates applied to the index and its
file labelled with that generation (:meth:`IndexSync.apply`), and, after
deletions, the WAL checkpointed so that no copy of a deleted row is left.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from ...decision._population import CohortVoices, Population
from ...errors import DatabaseError, missing_database
from ...types import (
    ApiKey,
    AuditEntry,
    BackupReport,
    EncoderInfo,
    Enrollment,
    Group,
    Match,
    Speaker,
    Tombstone,
    Utterance,
)
from .._index import SpeakerIndex, index_path_for
from .._indexkind import IndexChoice
from .._kept import KeptAudio
from .._marks import Found
from .._prints import PrintHit, StoredPrint
from .._protocol import Snapshot, StoreDescription
from .._rules import last_clip, name_taken
from ..memory import MemoryStorage
from . import _audit as audit
from . import _catalog as catalog
from . import _cohort as cohort
from . import _groups as membership
from . import _kept as kept
from . import _keys as keys
from . import _prints as prints
from . import _retention as retention
from ._indexsync import IndexSync
from ._schema import ensure_schema
from ._schema import upgrade as upgrade_schema
from ._store import SpeakerRow, Store

if TYPE_CHECKING:
    from ...audio._decode import Clip

__all__ = ["SQLiteStorage", "upgrade"]

log = logging.getLogger(__name__)

# A template update for the index: (speaker id, new template), or (id, None) to remove.
_IndexOp = tuple[int, np.ndarray | None]


class SQLiteStorage:
    """A :class:`~speakerdb.storage.Storage` and :class:`~speakerdb.storage.IndexAdmin`
    on one SQLite file and its FAISS index file.

    The file is created by the first write, not by opening: a misspelt path read
    from gives an error instead of an empty database. Until that write commits the
    database is *unborn* (:attr:`exists` is false) and reads see an empty one; so is
    a file whose first write never committed (its process killed between creating
    the schema and committing): it holds no encoder, speaker or setting, and the
    next write completes it with whatever model that write brings.
    """

    def __init__(self, path: Path, store: Store | None) -> None:
        self._path = path
        self._store: Store | None = None
        self._index: IndexSync | None = None
        self._encoder: EncoderInfo | None = None
        self._unborn = True
        self._created = False
        # Before the first enrollment no encoder is recorded: the index then takes the
        # size of the vectors it is asked about.
        self._seen_dim = 1
        self._opening = threading.Lock()
        if store is not None:
            self._attach(store)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> SQLiteStorage:
        """Open the database at ``path`` at the head schema; a missing file is created by
        the first write when ``create``, else refused."""
        path = Path(path).expanduser()
        if create and not os.path.lexists(path):
            if not path.parent.is_dir():
                raise DatabaseError(f"{path}: folder {path.parent} does not exist")
            return cls(path, None)
        return cls(path, _open_store(path, create=False))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def created(self) -> bool:
        return self._created

    @property
    def exists(self) -> bool:
        store = self._existing_store()
        if store is not None and self._unborn:
            # Another process may have committed the first write since.
            with store.read() as session:
                self._unborn = _blank(session)
        return store is not None and not self._unborn

    @property
    def index_path(self) -> Path:
        return index_path_for(self._path)

    @property
    def index_where(self) -> str:
        return str(self.index_path)

    @contextmanager
    def read(self) -> Iterator[Snapshot]:
        store = self._existing_store()
        if store is None:  # nothing written yet: an empty database
            with _EMPTY.read() as snapshot:
                yield snapshot
            return
        with store.read() as session:
            yield _Snapshot(session)

    @contextmanager
    def change(self, *, templates: bool = False) -> Iterator[_Change]:
        store = self._born_store()
        if not templates:
            with store.write() as session:
                change = _Change(session, templates=False)
                yield change
        else:
            index = self._sync()
            with index.changing():
                with store.write() as session:
                    change = _Change(session, templates=True)
                    yield change
                    if change.ops:
                        # The digest commits with the templates: the index is checked by it.
                        before = catalog.update_digest(session, change.rows)
                        generation = catalog.bump_generation(session)
                try:
                    if change.ops:
                        self._seen_dim = change.dim or self._seen_dim
                        # After a deletion the old file must not survive (purge).
                        index.apply(generation, change.apply_to, before, change.deleted)
                finally:
                    self._committed(store, change)  # committed: the WAL is purged even so
            return
        self._committed(store, change)

    def _committed(self, store: Store, change: _Change) -> None:
        self._unborn = False
        if change.recorded is not None:
            self._encoder = change.recorded
        if change.deleted:
            store.purge_deleted()

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Match, ...]]:
        return self.find(queries, k).matches

    def find(
        self, queries: np.ndarray, k: int, *, group: str | None = None, overall: int = 0
    ) -> Found:
        self._seen_dim = queries.shape[1]
        if self._existing_store() is None:
            return _EMPTY.find(queries, k, group=group, overall=overall)
        index, names, marks = self._sync().snapshot()
        return marks.search(index, names, queries, k, group, overall)

    def current_index(self) -> SpeakerIndex:
        return self._admin().snapshot()[0]

    def rebuild_index(self) -> int:
        return self._admin().rebuild()

    def index_choice(self) -> IndexChoice:
        return self._admin().choice()

    def set_index_kind(self, kind: str, ivf_from: int | None) -> IndexChoice:
        self._born_store()
        return self._sync().configure(kind, ivf_from)

    def describe(self, generation: int, digest: str | None) -> StoreDescription:
        from ._reader import describe_file

        return describe_file(self._path, generation, digest)

    def backup(self, target: Path, *, overwrite: bool = False) -> BackupReport:
        from ._backup import backup

        store = self._existing_store()
        if store is None or not self.exists:
            raise missing_database(self._path)
        return backup(store, target, overwrite=overwrite)

    def discard(self) -> None:
        self.close()
        if self._store is None:
            return
        lock = self.index_path.with_name(self.index_path.name + ".lock")
        for path in (self.path, *_sqlite_sidecars(self.path), self.index_path, lock):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- opening ---------------------------------------------------------

    def _attach(self, store: Store) -> None:
        with store.read() as session:
            self._encoder = catalog.read_encoder(session)
            self._unborn = self._encoder is None and _blank(session)
        self._index = IndexSync(store, self.index_path, self._dim)
        self._store = store

    def _existing_store(self) -> Store | None:
        """The open store, opening the file if another process has created it since."""
        if self._store is None and os.path.lexists(self._path):
            with self._opening:
                if self._store is None:
                    self._attach(_open_store(self._path, create=False))
        return self._store

    def _born_store(self) -> Store:
        """The store for a write: the file is created now if it is missing."""
        with self._opening:
            if self._store is None:
                store = _open_store(self._path, create=True)
                self._created = store.created
                self._attach(store)
        assert self._store is not None
        return self._store

    def _sync(self) -> IndexSync:
        if self._existing_store() is None or self._index is None:
            raise missing_database(self._path)
        return self._index

    def _admin(self) -> IndexSync:
        """The index to administer, of a database that exists."""
        index = self._sync()
        if not self.exists:
            raise missing_database(self._path, unfinished=True)
        return index

    def _dim(self) -> int:
        if self._encoder is None and self._store is not None:
            # Another process (or another SpeakerDB) may have enrolled the first speaker.
            with self._store.read() as session:
                self._encoder = catalog.read_encoder(session)
        return self._encoder.dim if self._encoder is not None else self._seen_dim


#: What a database reads as before its first write.
_EMPTY = MemoryStorage()


def _open_store(path: Path, *, create: bool) -> Store:
    """Open ``path`` at the head schema; a file this call created and could not make a
    database of (a symlinked WAL, a read-only folder) is removed again."""
    store = Store.open(path, create=create)
    try:
        with store.translated():
            ensure_schema(store)
    except BaseException:
        store.close()
        if store.created:
            for created in (path, *_sqlite_sidecars(path)):
                created.unlink(missing_ok=True)
        raise
    return store


def _blank(session: Session) -> bool:
    """Whether the database holds nothing at all: no speaker, setting or service key."""
    if catalog.all_settings(session) or catalog.speaker_names(session):
        return False
    return not keys.list_keys(session)


def upgrade(path: Path) -> tuple[str | None, str]:
    """Migrate the existing database at ``path`` to the head schema; ``(before, after)``."""
    if not path.is_file():
        raise DatabaseError(f"{path}: no database to upgrade")
    store = Store.open(path)
    try:
        return upgrade_schema(store)
    finally:
        store.close()


class _Snapshot:
    """A :class:`~speakerdb.storage.Snapshot` on one session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def settings(self) -> dict[str, str]:
        return catalog.all_settings(self._session)

    def encoder(self) -> EncoderInfo | None:
        return catalog.read_encoder(self._session)

    def speakers(self) -> list[Speaker]:
        member_of = membership.groups_of(self._session)
        found = catalog.list_speakers(self._session)
        return [replace(s, groups=member_of.get(s.id, ())) for s in found]

    def names(self) -> frozenset[str]:
        return frozenset(catalog.speaker_names(self._session).values())

    def speaker(self, name: str) -> Speaker:
        return self._with_groups(catalog.require_speaker(self._session, name))

    def speaker_by_external_id(self, external_id: str) -> Speaker | None:
        row = catalog.find_external_id(self._session, external_id)
        return None if row is None else self._with_groups(row)

    def _with_groups(self, row: SpeakerRow) -> Speaker:
        speaker = catalog.to_speaker(row, catalog.count_utterances(self._session, row.id))
        return replace(
            speaker, groups=membership.groups_of(self._session, [row.id]).get(row.id, ())
        )

    def groups(self) -> list[Group]:
        return membership.list_groups(self._session)

    def group_members(self, group: str) -> list[str]:
        return membership.group_members(self._session, group)

    def utterances(self, name: str) -> list[Utterance]:
        return catalog.list_utterances(self._session, name)

    def template(self, name: str) -> np.ndarray:
        row = catalog.require_speaker(self._session, name)
        encoder = catalog.read_encoder(self._session)
        fix = f"remove the speaker (`speakerdb remove {name}`) and enroll them again"
        dim = encoder.dim if encoder is not None else None
        return catalog.checked_vectors([row.template], lambda _: f"template of {name!r}", fix, dim)[
            0
        ]

    def counts(self) -> tuple[int, int]:
        return len(catalog.list_speakers(self._session)), catalog.count_utterances(self._session)

    def version(self) -> int:
        return int(catalog.get_setting(self._session, "generation") or 0)

    def enrolled_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        return catalog.existing_hashes(self._session, hashes)

    def population(self, names: Sequence[str] | None = None) -> Population:
        return catalog.read_population(self._session, names)

    def cohort(self) -> CohortVoices:
        return cohort.voices(self._session)

    def cohort_hashes(self, hashes: Sequence[str]) -> frozenset[str]:
        return cohort.known_hashes(self._session, hashes)

    def audit_entries(self, since: datetime, limit: int) -> list[AuditEntry]:
        return audit.entries(self._session, since, limit)

    def print_candidates(
        self,
        keys: np.ndarray,
        since: datetime,
        limit: int,
        session: str | None = None,
        rows: int | None = None,
    ) -> list[PrintHit]:
        return prints.candidates(self._session, keys, since, limit, session, rows)

    def print_counts(self, since: datetime) -> tuple[int, int]:
        return prints.counts(self._session, since)

    def expired(self, now: datetime) -> list[str]:
        return retention.expired(self._session, now)

    def watchlist(self) -> frozenset[str]:
        return catalog.watchlisted(self._session)

    def tombstones(self) -> list[Tombstone]:
        return retention.tombstones(self._session)

    def idle(self, before: datetime) -> list[str]:
        return kept.idle(self._session, before)

    def kept_audio(self, utterance_ids: Sequence[int]) -> dict[int, KeptAudio]:
        return kept.kept(self._session, utterance_ids)

    def kept_audio_count(self, name: str | None = None) -> int:
        return kept.count(self._session, name)

    def find_tombstone(
        self, keys: tuple[str, str] | None, external_id: str | None
    ) -> Tombstone | None:
        return retention.find_tombstone(self._session, keys, external_id)

    def api_keys(self) -> list[ApiKey]:
        return keys.list_keys(self._session)

    def api_key(self, digest: str) -> ApiKey | None:
        return keys.find_key(self._session, digest)


class _Change(_Snapshot):
    """A :class:`~speakerdb.storage.Change` on one write session. Template updates are
    collected in :attr:`ops` for the index, which :meth:`SQLiteStorage.change` applies."""

    def __init__(self, session: Session, *, templates: bool) -> None:
        super().__init__(session)
        self._templates = templates
        self.ops: list[_IndexOp] = []
        # The same changes for the digest: (speaker id, old template, new template).
        self.rows: list[catalog.TemplateChange] = []
        self.dim = 0
        self.deleted = False
        self.recorded: EncoderInfo | None = None

    def apply_to(self, index: SpeakerIndex) -> None:
        for speaker_id, template in self.ops:
            if template is None:
                index.remove(speaker_id)
            else:
                index.upsert(speaker_id, template)

    def set_setting(self, key: str, value: str) -> None:
        catalog.set_setting(self._session, key, value)

    def record_encoder(self, info: EncoderInfo) -> None:
        catalog.write_encoder(self._session, info)
        self.recorded = info

    def enroll(self, name: str, clips: Sequence[Clip], embeddings: np.ndarray) -> Enrollment:
        self._check_templates()
        session = self._session
        catalog.refuse_enrolled(session, clips)
        row, created = catalog.get_or_create_speaker(session, name)
        added = catalog.add_utterances(session, row, clips, embeddings)
        old = row.template
        self._upsert(row, old, catalog.refresh_template(session, row))
        speaker = catalog.to_speaker(row, catalog.count_utterances(session, row.id))
        return Enrollment(speaker, tuple(catalog.to_utterance(u, name) for u in added), created)

    def remove_speaker(self, name: str) -> Speaker:
        self._check_templates()
        row = catalog.require_speaker(self._session, name)
        removed = catalog.to_speaker(row, catalog.count_utterances(self._session, row.id))
        self.rows.append((row.id, row.template, b""))
        self._session.delete(row)
        self.ops.append((removed.id, None))
        self.deleted = True
        return removed

    def remove_utterance(self, utterance_id: int) -> Speaker:
        self._check_templates()
        session = self._session
        row = catalog.require_utterance(session, utterance_id)
        owner = row.speaker
        left = catalog.count_utterances(session, owner.id) - 1
        if left < 1:
            raise last_clip(utterance_id, owner.name)
        session.delete(row)
        session.flush()
        old = owner.template
        self._upsert(owner, old, catalog.refresh_template(session, owner))
        self.deleted = True
        return catalog.to_speaker(owner, left)

    def rename(self, old: str, new: str) -> Speaker:
        session = self._session
        row = catalog.require_speaker(session, old)
        if new != old and catalog.find_speaker(session, new) is not None:
            raise name_taken(new)
        row.name = new
        catalog.bump_counter(session, "names_version")  # for the index's cache of names
        session.flush()
        return catalog.to_speaker(row, catalog.count_utterances(session, row.id))

    def set_metadata(
        self,
        name: str,
        external_id: str | None,
        attributes: Mapping[str, Any],
        expires_at: datetime | None,
    ) -> Speaker:
        return catalog.set_metadata(self._session, name, external_id, attributes, expires_at)

    def set_watchlist(self, name: str, on: bool) -> Speaker:
        return catalog.set_watchlist(self._session, name, on)

    def add_to_group(self, group: str, names: Sequence[str]) -> int:
        return membership.add_members(self._session, group, names)

    def remove_from_group(self, group: str, names: Sequence[str]) -> int:
        return membership.remove_members(self._session, group, names)

    def delete_group(self, group: str) -> Group:
        return membership.delete_group(self._session, group)

    def rewrite_audit(self, name: str, replacement: str | None) -> int:
        self.deleted = True  # the old rows' images must leave the WAL
        return audit.rewrite(self._session, name, replacement)

    def keep_audio(self, utterance_id: int, key_id: str, data: bytes) -> None:
        kept.keep(self._session, utterance_id, key_id, data)

    def record_matches(self, names: Sequence[str], when: datetime, older_than: datetime) -> int:
        return kept.record_matches(self._session, names, when, older_than)

    def set_last_match(self, name: str, when: datetime) -> Speaker:
        return catalog.set_last_match(self._session, name, when)

    def add_tombstone(self, external_id: str | None, keys: tuple[str, str]) -> Tombstone:
        return retention.add_tombstone(self._session, external_id, keys)

    def clear_tombstones(self, keys: tuple[str, str] | None, external_id: str | None) -> int:
        return retention.clear_tombstones(self._session, keys, external_id)

    def add_cohort(self, label: str, clips: Sequence[Clip], embeddings: np.ndarray) -> int:
        return cohort.add(self._session, label, clips, embeddings)

    def clear_cohort(self) -> int:
        self.deleted = True  # the voices' embeddings leave the WAL too
        return cohort.clear(self._session)

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        audit.add_entries(self._session, entries)

    def prune_audit(self, before: datetime, keep: int) -> None:
        audit.prune(self._session, before, keep)

    def clear_audit(self) -> int:
        self.deleted = True
        return audit.clear(self._session)

    def add_prints(self, stored: Sequence[StoredPrint]) -> None:
        prints.add(self._session, stored)

    def prune_prints(self, before: datetime) -> int:
        removed = prints.prune(self._session, before)
        self.deleted = self.deleted or removed > 0
        return removed

    def add_api_key(self, key: ApiKey, digest: str) -> None:
        keys.add_key(self._session, key, digest)

    def revoke_api_key(self, name: str) -> ApiKey:
        self.deleted = True  # the WAL keeps no copy of the revoked key's hash
        return keys.revoke_key(self._session, name)

    def _upsert(self, row: SpeakerRow, old: bytes, template: np.ndarray) -> None:
        """Record the change of ``row``'s template from ``old`` to ``template``."""
        self.rows.append((row.id, old, row.template))
        self.ops.append((row.id, template))
        self.dim = len(template)

    def _check_templates(self) -> None:
        if not self._templates:
            # The index lock must be taken before the transaction begins (lock order).
            raise RuntimeError("a change of templates needs storage.change(templates=True)")


def _sqlite_sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
