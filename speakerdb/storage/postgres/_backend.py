"""The PostgreSQL backend of :class:`~speakerdb.storage.Storage`, shared by many nodes.

The rows and their reads and writes are every SQL engine's (:mod:`speakerdb.storage.sql`:
the SQLAlchemy models, :mod:`~speakerdb.storage.sql._catalog`, and the session's
snapshot and change classes), on the transactions of :mod:`._store`. What differs is the search:

* with pgvector, the templates are also written, in the same transaction, to a
  ``vector`` table with an HNSW index (:mod:`._pgvector`), and a query is one SQL
  statement in one snapshot;
* without it, each process keeps a FAISS index derived from the table and checks
  its generation in each query's own snapshot (:mod:`._cache`).

Which one a database uses is decided by its first change of templates and stored
as the ``vector_search`` setting (``pgvector``, ``halfvec`` or ``faiss``), so that
every node searches the same way. Either way, once a change commits, every query
that begins afterwards on any node sees it: a removed speaker is never named again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import text

from ...errors import DatabaseError, InputError
from ...types import Match
from .._indexkind import AUTO_IVF_FROM, IndexChoice, check_ivf_from, check_kind, nprobe_for
from .._indexkind import plan_for as index_plan
from .._marks import Found, Marks
from .._protocol import Snapshot, StoreDescription
from ..memory import MemoryStorage
from ..sql import _catalog as catalog
from ..sql._change import SessionChange
from ..sql._groups import read_marks
from ..sql._snapshot import SessionSnapshot, blank
from . import _pgvector as pgvector
from ._cache import KEYS, FaissCache, Key, answer, counters
from ._store import PgStore
from ._url import engine_url

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["SEARCH_KINDS", "PostgresStorage", "upgrade"]

log = logging.getLogger(__name__)

#: The ``vector_search`` setting's values: pgvector on ``vector`` or ``halfvec``, or FAISS.
SEARCH_KINDS = (*pgvector.KINDS, "faiss")
SEARCH_KEY = "vector_search"
# The settings a search needs, and the encoder's dimension, in one statement.
_SEARCH_STATE = text(
    "SELECT key, value FROM settings WHERE key = ANY(:keys) "
    "UNION ALL SELECT 'dim', dim::text FROM encoder "
    "UNION ALL SELECT 'vectors', (to_regclass('speaker_vectors') IS NOT NULL)::text"
)

#: What a database reads as before its first write.
_EMPTY = MemoryStorage()


class PostgresStorage:
    """A :class:`~speakerdb.storage.Storage`, :class:`~speakerdb.storage.SearchAdmin` and
    :class:`~speakerdb.storage.VectorSearchAdmin` on one PostgreSQL database.

    As with a file, the schema is created by the first write, and until then reads
    see an empty database; ``create=False`` refuses a database without the schema.
    """

    def __init__(self, url: str, store: PgStore) -> None:
        self._url = url
        self._store = store
        self._cache = FaissCache()
        self._marks: tuple[Key, Marks] | None = None
        self._ready = False  # the schema is known to be there
        self._created = False
        self._opening = threading.Lock()

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> PostgresStorage:
        store = PgStore(engine_url(url), pgvector.HNSW_EF_SEARCH)
        try:
            store.check_schema()
            if not create:
                store.require_schema()
        except BaseException:
            store.close()
            raise
        return cls(url, store)

    @property
    def path(self) -> str:
        return self._store.where

    @property
    def created(self) -> bool:
        return self._created

    @property
    def exists(self) -> bool:
        if not self._schema_ready():
            return False
        with self._store.read() as session:
            return not blank(session)

    @contextmanager
    def read(self) -> Iterator[Snapshot]:
        if not self._schema_ready():
            with _EMPTY.read() as snapshot:
                yield snapshot
            return
        with self._store.read() as session:
            yield SessionSnapshot(session)

    @contextmanager
    def change(self, *, templates: bool = False) -> Iterator[SessionChange]:
        self._born()
        with self._store.write() as session:
            change = SessionChange(session, templates=templates)
            yield change
            if change.ops:
                # The index's digest and the generation commit with the templates.
                catalog.update_digest(session, change.rows)
                catalog.bump_generation(session)
                self._write_vectors(session, change)

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Match, ...]]:
        return self.find(queries, k).matches

    def find(
        self, queries: np.ndarray, k: int, *, group: str | None = None, overall: int = 0
    ) -> Found:
        """One statement reads the counters, the search kind and the dimension; with
        pgvector, each query is then one statement (two with a group and ``overall``);
        with the FAISS cache, the cache answers if it was built at those counters, else
        it is rebuilt in a snapshot (whose counters it checks again). The marks (watchlist,
        expiry, groups) are cached by the same counters. Every statement begins after the
        call did, so nothing that committed before it is missed."""
        if not self._schema_ready():
            return _EMPTY.find(queries, k, group=group, overall=overall)
        with self._store.statement() as conn:
            rows = conn.execute(_SEARCH_STATE, {"keys": [*KEYS, SEARCH_KEY]}).all()
            settings = {str(key): str(value) for key, value in rows}
            dim = int(settings.pop("dim", queries.shape[1]))
            kind = settings.get(SEARCH_KEY, "faiss")
            if kind in pgvector.KINDS:
                marks = self._marks_at(settings)
                size = None if group is None else len(marks.members(group))
                if settings.get("vectors") != "true":  # chosen, and nobody enrolled yet
                    empty: list[tuple[Match, ...]] = [() for _ in range(len(queries))]
                    return marks.found(empty, empty if group and overall else None)
                found = pgvector.search(conn, queries, k, dim, kind, group, size)
                everyone = (
                    pgvector.search(conn, queries, overall, dim, kind)
                    if group and overall
                    else None
                )
                return marks.found(found, everyone)
        built = self._cache.fresh(settings, dim)
        if built is not None:
            return answer(built, queries, k, group, overall)
        with self._store.read() as session:
            settings = catalog.get_settings(session, KEYS)
            return self._cache.find(session, settings, dim, queries, k, group, overall)

    def _marks_at(self, settings: dict[str, str]) -> Marks:
        """The marks as of the counters in ``settings``, read again when they changed."""
        key = counters(settings)
        held = self._marks
        if held is not None and held[0] == key:
            return held[1]
        with self._store.read() as session:
            key = counters(catalog.get_settings(session, KEYS))
            marks = read_marks(session, catalog.speaker_names(session))
        self._marks = (key, marks)
        return marks

    def describe(self, generation: int, digest: str | None) -> StoreDescription:
        kind = self.vector_search()
        if not generation:  # no template was ever written
            return StoreDescription(self.path, _where(kind), "empty")
        if kind in pgvector.KINDS:
            return StoreDescription(
                self.path, _where(kind), "up to date (written with the speakers)"
            )
        # The same on every node: whether this process has built its cache yet is no
        # fact about the database.
        state = f"up to date (generation {generation}; each query checks it)"
        return StoreDescription(self.path, _where(kind), state)

    # -- administration of the search (SearchAdmin, VectorSearchAdmin) ---------

    @property
    def index_where(self) -> str:
        return _where(self.vector_search())

    def vector_search(self) -> str | None:
        if not self._schema_ready():
            return None
        with self._store.read() as session:
            return catalog.get_setting(session, SEARCH_KEY)

    def rebuild_index(self) -> int:
        """Refill the pgvector table (and its HNSW index) from the templates; with the
        FAISS cache, rebuild this process's cache (each query checks every other's)."""
        if self.vector_search() in pgvector.KINDS:
            return self.rebuild_vectors()
        self._cache.drop()
        if not self._schema_ready():
            return 0
        with self._store.read() as session:
            settings = catalog.get_settings(session, KEYS)
            encoder = catalog.read_encoder(session)
            if encoder is None:
                return 0
            return self._cache.build(session, settings, encoder.dim)

    def index_choice(self) -> IndexChoice:
        """The ``index_kind`` setting, and the index it gives: ``hnsw`` with pgvector,
        else the FAISS cache's ``flat`` or ``ivf`` (built by each process by it)."""
        with self.read() as snapshot:
            settings = snapshot.settings()
            n = len(snapshot.speakers())
        setting = settings.get("index_kind") or "auto"
        ivf_from = int(settings.get("index_ivf_from") or AUTO_IVF_FROM)
        if settings.get(SEARCH_KEY) in pgvector.KINDS:
            return IndexChoice(setting, ivf_from, "hnsw", 0, 0, n)
        plan = index_plan(setting, n, None, ivf_from)
        nprobe = nprobe_for(plan.nlist) if plan.kind == "ivf" else 0
        return IndexChoice(setting, ivf_from, plan.kind, plan.nlist, nprobe, n)

    def set_index_kind(self, kind: str, ivf_from: int | None) -> IndexChoice:
        """Store the FAISS cache's index setting; the generation moves with it, so that
        every node's cache is built again by it."""
        check_kind(kind)
        if ivf_from is not None:
            check_ivf_from(ivf_from)
        self._born()
        with self._store.write() as session:
            catalog.set_setting(session, "index_kind", kind)
            if ivf_from is not None:
                catalog.set_setting(session, "index_ivf_from", str(ivf_from))
            catalog.bump_generation(session)
        return self.index_choice()

    def set_search(self, kind: str) -> None:
        """Choose how this database is searched, before its first enrollment: ``pgvector``,
        ``halfvec`` or ``faiss``."""
        if kind not in SEARCH_KINDS:
            raise InputError(f"vector search must be one of {', '.join(SEARCH_KINDS)}: {kind!r}")
        with self.change() as change:
            stored = change.settings().get(SEARCH_KEY)
            if stored is not None and stored != kind:
                raise InputError(
                    f"{self.path}: searched by {stored} since its first enrollment; "
                    "the search is chosen before it"
                )
            if kind in pgvector.KINDS and not pgvector.available(change._session):
                raise DatabaseError(
                    f"{self.path}: the server has no pgvector extension; install pgvector on "
                    "it, or choose faiss"
                )
            change.set_setting(SEARCH_KEY, kind)

    def rebuild_vectors(self) -> int:
        """Refill the pgvector table from the speakers' templates; return its size."""
        with self._store.write() as session:
            kind = catalog.get_setting(session, SEARCH_KEY)
            encoder = catalog.read_encoder(session)
            if kind not in pgvector.KINDS or encoder is None:
                return 0
            return pgvector.rebuild(session, encoder.dim, kind)

    def discard(self) -> None:
        """Drop the schema if this object created it (nothing was enrolled), then close."""
        if self._created:
            try:
                with self._store.write() as session:
                    if blank(session):  # nobody else has written to it meanwhile
                        _drop_schema(session)
            except DatabaseError as exc:
                log.warning("could not remove the empty schema (%s)", exc)
        self.close()

    def close(self) -> None:
        self._store.close()

    # -- internals ----------------------------------------------------------

    def _schema_ready(self) -> bool:
        if not self._ready:
            self._ready = self._store.has_schema()
        return self._ready

    def _born(self) -> None:
        """Create the schema now if it is missing (the first write)."""
        if self._ready:
            return
        with self._opening:
            if not self._store.has_schema():
                before, _ = self._store.migrate()
                self._created = before is None
            self._ready = True

    def _write_vectors(self, session: Session, change: SessionChange) -> None:
        kind = catalog.get_setting(session, SEARCH_KEY)
        if kind is None:  # the first change of templates chooses, for every node
            kind = "pgvector" if pgvector.available(session) else "faiss"
            catalog.set_setting(session, SEARCH_KEY, kind)
            log.info("%s: searching by %s", self.path, kind)
        if kind not in pgvector.KINDS:
            return
        encoder = catalog.read_encoder(session)
        dim = encoder.dim if encoder is not None else change.dim
        pgvector.create(session, dim, kind)
        pgvector.apply(session, change.ops)


def _where(kind: str | None) -> str:
    """Where the search index of a database searched by ``kind`` is."""
    if kind in pgvector.KINDS:
        column = "vector" if kind == "pgvector" else "halfvec"
        return f"pgvector HNSW ({column}) in table {pgvector.TABLE}"
    return "FAISS cache in each process"


def _drop_schema(session: Session) -> None:
    from ..sql._models import Base

    tables = [pgvector.TABLE, *(t.name for t in reversed(Base.metadata.sorted_tables))]
    for table in [*tables, "alembic_version"]:
        session.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))


def upgrade(url: str) -> tuple[str | None, str]:
    """Migrate the database ``url`` names to the head schema; ``(before, after)``."""
    store = PgStore(engine_url(url))
    try:
        if not store.has_schema():
            raise DatabaseError(f"{store.where}: no speakerdb database to upgrade")
        return store.migrate()
    finally:
        store.close()
