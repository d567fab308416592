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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...errors import DatabaseError
from ...types import BackupReport, EncoderInfo, Match
from .._errors import missing_database, missing_folder
from .._index import SpeakerIndex, index_path_for
from .._indexkind import IndexChoice
from .._marks import Found
from .._protocol import Snapshot, StoreDescription
from ..memory import MemoryStorage
from ..sql import _catalog as catalog
from ..sql._change import SessionChange
from ..sql._snapshot import SessionSnapshot, blank
from ._indexsync import IndexSync
from ._schema import ensure_schema
from ._schema import upgrade as upgrade_schema
from ._store import Store

__all__ = ["SQLiteStorage", "upgrade"]

log = logging.getLogger(__name__)


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
                raise DatabaseError(missing_folder(path))
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
                self._unborn = blank(session)
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
            yield SessionSnapshot(session)

    @contextmanager
    def change(self, *, templates: bool = False) -> Iterator[SessionChange]:
        store = self._born_store()
        if not templates:
            with store.write() as session:
                change = SessionChange(session, templates=False)
                yield change
        else:
            index = self._sync()
            with index.changing():
                with store.write() as session:
                    change = SessionChange(session, templates=True)
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

    def _committed(self, store: Store, change: SessionChange) -> None:
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
            self._unborn = self._encoder is None and blank(session)
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


def upgrade(path: Path) -> tuple[str | None, str]:
    """Migrate the existing database at ``path`` to the head schema; ``(before, after)``."""
    if not path.is_file():
        raise DatabaseError(
            f"{path}: no database to upgrade; check --db (a new database is created at the "
            "current schema and needs no upgrade)"
        )
    store = Store.open(path)
    try:
        return upgrade_schema(store)
    finally:
        store.close()


def _sqlite_sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
