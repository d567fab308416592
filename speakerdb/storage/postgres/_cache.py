"""Search without pgvector: a FAISS index in each process, derived from ``speakers``.

Each query runs in its own read transaction and first reads the ``generation``
(bumped by every change of templates) and ``names_version`` (bumped by a rename)
counters of that snapshot. The cached index answers only when it was built from
a snapshot with the same counters; otherwise it is rebuilt from the templates of
the query's own snapshot before the query is answered. So a speaker removed by
any node is never named by a query that began after the removal committed, and
nothing outside the transaction (a notification, a timer) can make a stale
index answer. The speakers' marks (watchlist, next expiry, groups:
:mod:`speakerdb.storage._marks`) are kept with the index and read again, without
rebuilding it, when the ``marks_version`` counter alone has changed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .._index import SpeakerIndex
from .._indexkind import AUTO_IVF_FROM, plan_for
from .._marks import MARKS_COUNTER, Found, Marks
from ..sql import _catalog as catalog
from ..sql._groups import read_marks
from ..sql._models import SpeakerRow

__all__ = ["FaissCache"]

log = logging.getLogger(__name__)

#: The settings read by each query: the counters, and the index setting.
KEYS = ("uuid", "generation", "names_version", MARKS_COUNTER, "index_kind", "index_ivf_from")
#: The counters of a snapshot: (uuid, generation, names_version, marks_version).
Key = tuple[str, int, int, int]


@dataclass(frozen=True)
class _Built:
    key: Key
    index: SpeakerIndex
    names: dict[int, str]
    marks: Marks


class FaissCache:
    """One process's index of one database's templates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: _Built | None = None

    @property
    def generation(self) -> int | None:
        """The generation the cached index was built at (``None``: none built yet)."""
        built = self._built
        return None if built is None else built.key[1]

    def fresh(self, settings: dict[str, str], dim: int) -> _Built | None:
        """The cached index if it was built at the counters of ``settings`` (read in a
        snapshot that began after the query did), else ``None``."""
        built = self._built
        if built is not None and built.key == _key(settings) and built.index.dim == dim:
            return built
        return None

    def drop(self) -> None:
        """Forget the cached index: the next query builds it again."""
        with self._lock:
            self._built = None

    def build(self, session: Session, settings: dict[str, str], dim: int) -> int:
        """Build the index from ``session``'s snapshot now; return its size."""
        return len(self._current(session, settings, dim).names)

    def find(
        self,
        session: Session,
        settings: dict[str, str],
        dim: int,
        queries: np.ndarray,
        k: int,
        group: str | None,
        overall: int,
    ) -> Found:
        """The ``k`` best for each query as of ``session``'s snapshot, whose ``settings``
        (:data:`KEYS`) the caller read in it."""
        return answer(self._current(session, settings, dim), queries, k, group, overall)

    def _current(self, session: Session, settings: dict[str, str], dim: int) -> _Built:
        key = _key(settings)
        built = self._built
        if built is not None and built.key == key and built.index.dim == dim:
            return built
        with self._lock:  # one thread builds; the others of the same snapshot reuse it
            built = self._built
            if built is not None and built.key == key and built.index.dim == dim:
                return built
            if built is not None and built.key[:3] == key[:3] and built.index.dim == dim:
                # Only marks changed (a watchlist mark, a group): the index stays.
                self._built = replace(built, key=key, marks=read_marks(session, built.names))
                return self._built
            fresh = _build(session, settings, key, dim)
            older = built is not None and built.key[0] == key[0] and built.key[1:] > key[1:]
            if not older:  # a query on an older snapshot must not push a newer index out
                self._built = fresh
            return fresh


def answer(
    built: _Built, queries: np.ndarray, k: int, group: str | None = None, overall: int = 0
) -> Found:
    """The ``k`` best of ``built`` for each query row (of ``group``), best first."""
    return built.marks.search(built.index, built.names, queries, k, group, overall)


def counters(settings: dict[str, str]) -> Key:
    """The counters of :data:`KEYS` as read in one snapshot."""
    return (
        settings.get("uuid", ""),
        int(settings.get("generation") or 0),
        int(settings.get("names_version") or 0),
        int(settings.get(MARKS_COUNTER) or 0),
    )


_key = counters


def _build(session: Session, settings: dict[str, str], key: Key, dim: int) -> _Built:
    rows = session.execute(select(SpeakerRow.id, SpeakerRow.name, SpeakerRow.template)).all()
    ids = np.asarray([r[0] for r in rows], np.int64)
    names = {int(r[0]): str(r[1]) for r in rows}

    def row(i: int) -> str:
        return f"template of speaker {rows[i][1]!r}"

    def fix(i: int) -> str:
        return f"remove the speaker (`speakerdb remove {rows[i][1]}`) and enroll them again"

    blobs = [r[2] for r in rows]
    vectors = (
        catalog.checked_vectors(blobs, row, fix, dim) if rows else np.zeros((0, dim), np.float32)
    )
    kind = settings.get("index_kind") or "auto"
    plan = plan_for(kind, len(rows), None, int(settings.get("index_ivf_from") or AUTO_IVF_FROM))
    log.debug("FAISS cache: %d templates at generation %d", len(rows), key[1])
    return _Built(key, SpeakerIndex(dim, ids, vectors, plan), names, read_marks(session, names))
