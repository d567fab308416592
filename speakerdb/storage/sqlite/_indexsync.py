"""Keeping a process's FAISS index in step with SQLite and with the index file.

The database's ``generation`` counts the changes of templates. An index, in
memory or in the file, is labelled with the generation of the one database
snapshot its content comes from, and with nothing else. Every process follows
the same protocol, through :class:`~speakerdb.storage._index.IndexLock`:

* A writer that changes templates holds the lock exclusively from before its
  transaction until the file labelled with its new generation is in place
  (:meth:`IndexSync.changing` and :meth:`IndexSync.apply`). Writers therefore
  save in the order they commit, and no one sees the database ahead of the
  file unless a writer died in between.
* A reader whose index is older than the database takes the lock shared,
  reads the generation and loads the file if its label matches. Otherwise
  (a writer was killed, the file is damaged or missing) it takes the lock
  exclusively, rebuilds the index from one snapshot, saves it and logs a
  warning.
* :meth:`IndexSync.snapshot` pairs the index with the speakers' names as of
  the same transaction as the generation, so a search never pairs an index
  with names from another moment (speaker ids can be reused after a removal).
  The names are read again only when the generation or the ``names_version``
  counter (bumped by a rename) has changed since they were last read: a query
  then costs one small read of the settings, not a read of every name. The
  speakers' marks (watchlist, next expiry, groups: :mod:`speakerdb.storage._marks`)
  are read with them, and again when ``marks_version`` (bumped by every change of
  a mark, an expiry or a group) changes.
* The store keeps a digest of every (speaker id, template), committed with the
  templates (:mod:`speakerdb.storage._digest`). An index file is used only when
  its rows give that digest: a forged or damaged file is rebuilt like a stale
  one, so the index, which is derived data, can never change an answer. A
  rebuild records the digest of what it built when the database had none (an
  older speakerdb wrote it) or a wrong one.
* Which index is built (flat or IVF) follows the ``index_kind`` and
  ``index_ivf_from`` settings (:mod:`speakerdb.storage._indexkind`). A change whose
  new size calls for another plan (the crossover, or an IVF index grown or
  shrunk 2x in lists) rebuilds from the database instead of changing the index.

Lock order, everywhere: the in-process lock, then the file lock, then SQLite.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...errors import DatabaseError
from .. import _digest
from .._index import IndexFile, IndexFileError, IndexLock, SpeakerIndex, read_header
from .._indexkind import AUTO_IVF_FROM, IndexChoice, IndexPlan, check_ivf_from, check_kind, plan_for
from .._marks import MARKS_COUNTER, Marks
from ..sql import _catalog as catalog
from ..sql._groups import read_marks
from ._store import Store

__all__ = ["IndexSync"]

log = logging.getLogger(__name__)


_SETTINGS = (
    "generation",
    "uuid",
    "names_version",
    MARKS_COUNTER,
    "index_kind",
    "index_ivf_from",
    catalog.DIGEST_KEY,
)


@dataclass(frozen=True)
class _State:
    """What one read transaction saw."""

    generation: int
    db_uuid: str
    names: dict[int, str]
    marks: Marks = field(default_factory=Marks)
    kind: str = "auto"
    ivf_from: int = AUTO_IVF_FROM
    digest: str | None = None
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    templates: list[bytes] = field(default_factory=list)


class IndexSync:
    """The in-memory index of one :class:`~speakerdb._facade.SpeakerDB`, and its file."""

    def __init__(self, store: Store, path: Path, dim: Callable[[], int]) -> None:
        self._store = store
        self.path = path
        self._dim = dim
        self._file_lock = IndexLock(path)
        self._lock = threading.RLock()
        # (generation, index), replaced whole and never changed in place: a search
        # that holds an index keeps a consistent one while a writer moves on.
        self._current: tuple[int, SpeakerIndex] | None = None
        # ((uuid, generation, names_version), names) and (that key and marks_version,
        # marks), each replaced whole like _current: a change of marks alone (a watchlist
        # mark, a group) reads the marks again, not every name.
        self._names: tuple[tuple[str | None, int, int], dict[int, str]] | None = None
        self._marks: tuple[tuple[str | None, int, int, int], Marks] | None = None

    def snapshot(self) -> tuple[SpeakerIndex, dict[int, str], Marks]:
        """The index, the speakers' names (by id) and their marks (watchlist, expiry,
        groups), all as of one generation."""
        state = self._read()
        current = self._current
        if current is not None and current[0] == state.generation:
            return current[1], state.names, state.marks
        with self._lock:
            with self._file_lock.shared():
                state = self._read()
                index = self._cached_or_file(state.generation, state.db_uuid, state.digest)[0]
            if index is None:
                with self._file_lock.exclusive():
                    state, index = self._load_or_rebuild()
        return index, state.names, state.marks

    def rebuild(self) -> int:
        """Rebuild the index and its file from the database; return its size."""
        with self._lock, self._file_lock.exclusive():
            index = self._rebuild(self._read(templates=True))
        return len(index)

    def choice(self) -> IndexChoice:
        """The index setting and the index in use."""
        index = self.snapshot()[0]
        state = self._read()
        plan = index.plan
        nprobe = index.nprobe
        return IndexChoice(state.kind, state.ivf_from, plan.kind, plan.nlist, nprobe, len(index))

    def configure(self, kind: str, ivf_from: int | None) -> IndexChoice:
        """Store the index setting, and rebuild the index by it when it calls for another plan."""
        check_kind(kind)
        if ivf_from is not None:
            check_ivf_from(ivf_from)
        with self._lock, self._file_lock.exclusive():
            with self._store.write() as session:
                catalog.set_setting(session, "index_kind", kind)
                if ivf_from is not None:
                    catalog.set_setting(session, "index_ivf_from", str(ivf_from))
            state = self._read(templates=True)
            plan = self._known_plan(state)
            if plan is None or self._plan(state, len(state.ids), plan) != plan:
                self._rebuild(state)
        return self.choice()

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold while a change of templates commits; then call :meth:`apply` inside."""
        with self._lock, self._file_lock.exclusive():
            yield

    def apply(
        self,
        generation: int,
        change: Callable[[SpeakerIndex], None],
        before: str | None,
        purge: bool = False,
    ) -> None:
        """Bring the index to ``generation``, which the caller (in :meth:`changing`)
        committed; ``before`` is the digest of the templates before that change.

        With ``purge`` (the change deleted data), a file that cannot be rewritten is
        deleted, and when even that fails a DatabaseError says so: a removed voiceprint
        must not stay in the old file while ``remove`` reports success.
        """
        current = self._current
        if current is not None and current[0] == generation - 1 and current[1].dim == self._dim():
            base = current[1]
        else:
            # Start from the file as the previous writer left it, or from the database.
            loaded, reason = self._cached_or_file(generation - 1, self._read().db_uuid, before)
            if loaded is None:
                self._warn(reason, generation - 1)
                self._rebuild(self._read(templates=True), purge)  # holds this change already
                return
            base = loaded
        index = base.copy()
        change(index)
        if self._plan(self._read(), len(index), index.plan) != index.plan:
            self._rebuild(self._read(templates=True), purge)  # trained anew for its size
            return
        self._current = (generation, index)
        self._save(index, generation, purge)

    # -- internals: the caller holds self._lock and the file lock -------------

    def _read(self, *, templates: bool = False) -> _State:
        with self._store.read() as session:
            settings = catalog.get_settings(session, _SETTINGS)
            generation = int(settings.get("generation") or 0)
            # The uuid too: a database file swapped for another (a restored backup) may
            # have the same counters and other speakers.
            key = (settings.get("uuid"), generation, int(settings.get("names_version") or 0))
            cached = self._names
            if cached is not None and cached[0] == key:
                names = cached[1]
            else:
                names = catalog.speaker_names(session)
                self._names = (key, names)
            marked = (*key, int(settings.get(MARKS_COUNTER) or 0))
            held = self._marks
            if held is not None and held[0] == marked:
                marks = held[1]
            else:
                marks = read_marks(session, names)
                self._marks = (marked, marks)
            state = _State(
                generation,
                settings.get("uuid") or "",
                names,
                marks,
                settings.get("index_kind") or "auto",
                int(settings.get("index_ivf_from") or AUTO_IVF_FROM),
                settings.get(catalog.DIGEST_KEY),
            )
            if not templates:
                return state
            ids, blobs = catalog.all_templates(session)
        return replace(state, ids=ids, templates=blobs)

    @staticmethod
    def _plan(state: _State, n: int, current: IndexPlan | None) -> IndexPlan:
        return plan_for(state.kind, n, current, state.ivf_from)

    def _cached_or_file(
        self, generation: int, db_uuid: str, digest: str | None
    ) -> tuple[SpeakerIndex | None, str]:
        """The index of ``generation`` from memory, or from the file when its rows give
        the store's ``digest``; else ``None`` and why not."""
        current = self._current
        if current is not None and current[0] == generation and current[1].dim == self._dim():
            return current[1], ""
        try:
            # The header first: a stale file is told from a forged one without reading it.
            problem = self._header_problem(
                read_header(self.path, verify=False), generation, db_uuid
            )
            if problem or digest is None:
                return None, problem or f"{self.path}: unverified (the database has no digest)"
            index, header = SpeakerIndex.load(self.path, digest)
        except IndexFileError as exc:
            return None, str(exc)
        problem = self._header_problem(header, generation, db_uuid)  # replaced meanwhile?
        if problem:
            return None, problem
        self._current = (generation, index)
        return index, ""

    def _header_problem(self, header: IndexFile, generation: int, db_uuid: str) -> str:
        """Why a file with ``header`` is not the index of ``generation``; "" if it may be."""
        if (header.db_uuid, header.generation) != (db_uuid, generation):
            stale = f"generation {header.generation}, database {generation}"
            return f"{self.path}: stale ({stale})"
        if header.count and header.dim != self._dim():
            return f"{self.path}: {header.dim}-d vectors, not {self._dim()}-d"
        return ""

    def _load_or_rebuild(self) -> tuple[_State, SpeakerIndex]:
        state = self._read(templates=True)
        index, reason = self._cached_or_file(state.generation, state.db_uuid, state.digest)
        if index is None:
            self._warn(reason, state.generation)
            index = self._rebuild(state)
        return state, index

    def _warn(self, reason: str, generation: int) -> None:
        # A database that never had a speaker has no index file, and needs no notice.
        if generation > 0 or self.path.exists():
            log.warning("index %s; rebuilding it from the database", reason)

    def _rebuild(self, state: _State, purge: bool = False) -> SpeakerIndex:
        dim = self._dim()
        vectors = self._templates(state, dim)
        plan = self._plan(state, len(state.ids), self._known_plan(state))
        index = SpeakerIndex(dim, state.ids, vectors, plan)
        self._current = (state.generation, index)
        if state.generation > 0 or state.templates:
            self._record_digest(state)
            self._save(index, state.generation, purge)
        return index

    @staticmethod
    def _templates(state: _State, dim: int) -> np.ndarray:
        """The templates as rows; a damaged one is a DatabaseError naming its speaker."""
        if not state.templates:
            return np.zeros((0, dim), np.float32)

        def name(i: int) -> str:
            return state.names.get(int(state.ids[i]), f"#{state.ids[i]}")

        def row(i: int) -> str:
            return f"template of speaker {name(i)!r}"

        def fix(i: int) -> str:
            return f"remove the speaker (`speakerdb remove {name(i)}`) and enroll them again"

        return catalog.checked_vectors(state.templates, row, fix, dim)

    def _record_digest(self, state: _State) -> None:
        """Store the digest of the templates just indexed, when the database's is missing or
        wrong (an older speakerdb changed the templates): the next load can then be checked."""
        digest = _digest.digest_of(zip(state.ids.tolist(), state.templates, strict=True))
        if digest == state.digest:
            return
        try:
            with self._store.write() as session:
                if int(catalog.get_setting(session, "generation") or 0) == state.generation:
                    catalog.set_setting(session, catalog.DIGEST_KEY, digest)
        except DatabaseError as exc:  # a read-only database: rebuilt again next time
            log.warning("cannot record the index's digest in the database (%s)", exc)

    def _known_plan(self, state: _State) -> IndexPlan | None:
        """The plan of the index in memory, else of the up-to-date file: a process that
        rebuilds the index keeps IVF's hysteresis as the one that built it would."""
        if self._current is not None:
            return self._current[1].plan
        try:
            header = read_header(self.path, verify=False)
        except IndexFileError:
            return None
        if (header.db_uuid, header.generation) != (state.db_uuid, state.generation):
            return None
        return IndexPlan(header.kind)  # the list count is not in the header: IVF retrains

    def _save(self, index: SpeakerIndex, generation: int, purge: bool = False) -> None:
        with self._store.read() as session:
            now = int(catalog.get_setting(session, "generation") or 0)
            db_uuid = catalog.get_setting(session, "uuid") or ""
        if now != generation:
            # Only a process that ignores the lock gets here: never label a file
            # with a generation its content does not have.
            log.debug("index of generation %d not saved: the database is at %d", generation, now)
            return
        try:
            index.save(self.path, db_uuid, generation)
        except OSError as exc:
            self._drop_stale(exc, purge)

    def _drop_stale(self, exc: OSError, purge: bool) -> None:
        """The file could not be rewritten: delete it, for it is stale (after a removal it
        holds the removed voiceprint). With ``purge``, a file that stays is an error."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as unlink_exc:
            if purge:
                raise DatabaseError(
                    f"{self._store.path}: the database no longer holds the removed data, but "
                    f"the index file {self.path} still does: it can be neither rewritten "
                    f"({exc.strerror or exc}) nor deleted ({unlink_exc.strerror or unlink_exc}); "
                    f"delete it (`rm {shlex.quote(str(self.path))}`, after making its folder "
                    "writable): speakerdb rebuilds it"
                ) from exc
            log.warning("could not write or delete %s (%s); searching from memory", self.path, exc)
            return
        log.warning(
            "could not write %s (%s); deleted the old file, searching from memory", self.path, exc
        )
