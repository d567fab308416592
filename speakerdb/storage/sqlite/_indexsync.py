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
  then costs one small read of the settings, not a read of every name.
* Which index is built (flat or IVF) follows the ``index_kind`` and
  ``index_ivf_from`` settings (:mod:`speakerdb.storage._indexkind`). A change whose
  new size calls for another plan (the crossover, or an IVF index grown or
  shrunk 2x in lists) rebuilds from the database instead of changing the index.

Lock order, everywhere: the in-process lock, then the file lock, then SQLite.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .._index import IndexFileError, IndexLock, SpeakerIndex, read_header
from .._indexkind import AUTO_IVF_FROM, IndexChoice, IndexPlan, check_ivf_from, check_kind, plan_for
from . import _catalog as catalog
from ._store import Store, from_blob

__all__ = ["IndexSync"]

log = logging.getLogger(__name__)


_SETTINGS = ("generation", "uuid", "names_version", "index_kind", "index_ivf_from")


@dataclass(frozen=True)
class _State:
    """What one read transaction saw."""

    generation: int
    db_uuid: str
    names: dict[int, str]
    kind: str = "auto"
    ivf_from: int = AUTO_IVF_FROM
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
        # ((generation, names_version), names), replaced whole like _current.
        self._names: tuple[tuple[str | None, int, int], dict[int, str]] | None = None

    def snapshot(self) -> tuple[SpeakerIndex, dict[int, str]]:
        """The index and the speakers' names (by id), both as of one generation."""
        state = self._read()
        current = self._current
        if current is not None and current[0] == state.generation:
            return current[1], state.names
        with self._lock:
            with self._file_lock.shared():
                state = self._read()
                index = self._cached_or_file(state.generation, state.db_uuid)[0]
            if index is None:
                with self._file_lock.exclusive():
                    state, index = self._load_or_rebuild()
        return index, state.names

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

    def apply(self, generation: int, change: Callable[[SpeakerIndex], None]) -> None:
        """Bring the index to ``generation``, which the caller (in :meth:`changing`) committed."""
        current = self._current
        if current is not None and current[0] == generation - 1 and current[1].dim == self._dim():
            base = current[1]
        else:
            # Start from the file as the previous writer left it, or from the database.
            loaded, reason = self._cached_or_file(generation - 1, self._read().db_uuid)
            if loaded is None:
                self._warn(reason, generation - 1)
                self._rebuild(self._read(templates=True))  # holds this change already
                return
            base = loaded
        index = base.copy()
        change(index)
        if self._plan(self._read(), len(index), index.plan) != index.plan:
            self._rebuild(self._read(templates=True))  # trained anew for its size
            return
        self._current = (generation, index)
        self._save(index, generation)

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
            state = _State(
                generation,
                settings.get("uuid") or "",
                names,
                settings.get("index_kind") or "auto",
                int(settings.get("index_ivf_from") or AUTO_IVF_FROM),
            )
            if not templates:
                return state
            ids, blobs = catalog.all_templates(session)
        return replace(state, ids=ids, templates=blobs)

    @staticmethod
    def _plan(state: _State, n: int, current: IndexPlan | None) -> IndexPlan:
        return plan_for(state.kind, n, current, state.ivf_from)

    def _cached_or_file(self, generation: int, db_uuid: str) -> tuple[SpeakerIndex | None, str]:
        """The index of ``generation`` from memory or the file; else ``None`` and why not."""
        current = self._current
        if current is not None and current[0] == generation and current[1].dim == self._dim():
            return current[1], ""
        try:
            index, header = SpeakerIndex.load(self.path)
        except IndexFileError as exc:
            return None, str(exc)
        if (header.db_uuid, header.generation) != (db_uuid, generation):
            stale = f"generation {header.generation}, database {generation}"
            return None, f"{self.path}: stale ({stale})"
        if header.count and header.dim != self._dim():
            return None, f"{self.path}: {header.dim}-d vectors, not {self._dim()}-d"
        self._current = (generation, index)
        return index, ""

    def _load_or_rebuild(self) -> tuple[_State, SpeakerIndex]:
        state = self._read(templates=True)
        index, reason = self._cached_or_file(state.generation, state.db_uuid)
        if index is None:
            self._warn(reason, state.generation)
            index = self._rebuild(state)
        return state, index

    def _warn(self, reason: str, generation: int) -> None:
        # A database that never had a speaker has no index file, and needs no notice.
        if generation > 0 or self.path.exists():
            log.warning("index %s; rebuilding it from the database", reason)

    def _rebuild(self, state: _State) -> SpeakerIndex:
        dim = self._dim()
        vectors = (
            np.stack([from_blob(b) for b in state.templates])
            if state.templates
            else np.zeros((0, dim), np.float32)
        )
        plan = self._plan(state, len(state.ids), self._known_plan(state))
        index = SpeakerIndex(dim, state.ids, vectors, plan)
        self._current = (state.generation, index)
        if state.generation > 0 or state.templates:
            self._save(index, state.generation)
        return index

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

    def _save(self, index: SpeakerIndex, generation: int) -> None:
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
            log.warning("could not write %s (%s); searching from memory", self.path, exc)
