"""The FAISS inner-product index of speaker templates, and its file.

The index is derived data: SQLite holds every template, and the index can be
rebuilt from it at any time. Its ids are speaker ids. Because templates and
queries are unit vectors, inner product is cosine similarity.

The file beside the database starts with a header line recording the
database's uuid and *generation* (a counter bumped by every template change)
and a SHA-256 of the FAISS payload, so a stale, foreign or corrupt file is
detected before FAISS ever parses it. Files are written to a temporary name
and renamed, so a reader never sees half a file.

Processes coordinate through :class:`IndexLock`, an advisory ``flock`` on
``<index>.lock``: a writer holds it exclusively from its database commit until
the new file is in place, and a reader holds it shared while it compares the
database's generation with the file's and loads the file. The kernel releases
the lock when its holder dies, so a crashed process never leaves it held.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DatabaseBusy
from ._indexfile import (
    HEADER_SIZE,
    IndexFile,
    IndexFileError,
    file_state,
    header_line,
    index_path_for,
    open_checked,
    read_header,
    refuse_link,
)
from ._indexkind import IndexPlan, build, describe, nprobe_for, stored_ids, vector_blocks
from ._marks import Members

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the in-process lock still holds
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "IndexFile",
    "IndexFileError",
    "IndexLock",
    "SpeakerIndex",
    "file_state",
    "index_path_for",
    "read_header",
]

log = logging.getLogger(__name__)

# Batches of at least this many queries are searched by matrix products ...
_BATCH_FROM = 16
# ... this many queries at a time, against blocks of this many templates.
_QUERY_CHUNK = 256
_DATABASE_BLOCK = 65_536
# Up to this many templates, fewer queries than _BATCH_FROM are scanned by _scan.
_SCAN_UP_TO = 100_000
_configured = False
#: How long to wait for another process's hold on the index lock (as SQLite's busy timeout).
LOCK_TIMEOUT_S = 30.0


class IndexLock:
    """An advisory lock on the index file: ``flock`` on ``<index>.lock``, created 0600.

    Each hold opens the lock file anew, so holds conflict between threads of one
    process as they do between processes. Holds do not nest: a thread that holds
    the lock must not ask for it again.
    """

    def __init__(self, index_path: Path, timeout_s: float | None = None) -> None:
        self.path = index_path.with_name(index_path.name + ".lock")
        self._timeout_s = timeout_s

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Held while the file is read: no writer replaces it meanwhile."""
        with self._held(exclusive=False):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held while the database's generation changes and the file is replaced."""
        with self._held(exclusive=True):
            yield

    @contextmanager
    def _held(self, *, exclusive: bool) -> Iterator[None]:
        fd = self._open()
        if fd is None:
            yield
            return
        try:
            self._acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _open(self) -> int | None:
        if fcntl is None:
            return None
        # O_NOFOLLOW: a planted link would make us create or lock a file elsewhere.
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            refuse_link(self.path, exc)
        try:  # a read-only folder: lock the file if it is there, else go without
            return os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            refuse_link(self.path, exc)
            log.debug("cannot open %s (%s); the index is not locked", self.path, exc.strerror)
            return None

    def _acquire(self, fd: int, mode: int) -> None:
        timeout = LOCK_TIMEOUT_S if self._timeout_s is None else self._timeout_s
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if time.monotonic() > deadline:
                raise DatabaseBusy(
                    f"{self.path}: another process has held the index lock for over "
                    f"{timeout:.0f} s; stop the speakerdb process that hangs, then retry"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


class SpeakerIndex:
    """Top-k cosine search over speaker templates. Searches may run in parallel.

    The FAISS index is flat (exact) or IVF, by the :class:`~speakerdb.storage._indexkind.IndexPlan`
    it is built with; see :mod:`speakerdb.storage._indexkind`.
    """

    def __init__(
        self, dim: int, ids: np.ndarray, vectors: np.ndarray, plan: IndexPlan | None = None
    ) -> None:
        _faiss()
        self.dim = dim
        self._lock = threading.Lock()
        rows = _rows(vectors, dim)
        self._index: Any = build(plan or IndexPlan("flat"), dim, _ids(ids), rows)

    @classmethod
    def _wrap(cls, dim: int, index: Any) -> SpeakerIndex:
        self = cls.__new__(cls)
        self.dim, self._lock, self._index = dim, threading.Lock(), index
        return self

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def plan(self) -> IndexPlan:
        """How this index is built: flat, or IVF with how many lists."""
        return describe(self._index)

    @property
    def nprobe(self) -> int:
        """Lists searched per query (IVF); 0 for a flat index, which compares with all."""
        return int(getattr(self._index, "nprobe", 0))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` per query row, best first; missing slots have id -1."""
        rows = _rows(queries, self.dim)
        if len(self) == 0:
            # Nothing enrolled: no candidates, whatever the query's size.
            return np.zeros((len(rows), 0), np.float32), np.zeros((len(rows), 0), np.int64)
        k = max(1, min(k, len(self)))
        if len(rows) < _BATCH_FROM and len(self) <= _SCAN_UP_TO and self.plan.kind == "flat":
            return _scan(self._index, rows, k)
        if len(rows) <= _QUERY_CHUNK:
            return self._index.search(rows, k)
        # In chunks: FAISS's scratch for a batch grows with the number of queries.
        parts = [
            self._index.search(rows[i : i + _QUERY_CHUNK], k)
            for i in range(0, len(rows), _QUERY_CHUNK)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def search_within(
        self, queries: np.ndarray, k: int, members: Members, overall: int = 0
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
        """Top-``k`` ``(scores, ids)`` per query among ``members`` only, and, when
        ``overall``, the top-``overall`` of every template (``None`` otherwise).

        Exact on a flat index: a few queries are scored against every template once, which
        gives both answers; a batch is searched by FAISS with an ``IDSelector``. On IVF,
        the selector too, with more lists probed the smaller the group (all of them for a
        group of under ``1 / nprobe`` of the speakers' share), so that a small group's
        members far from the query are still found."""
        rows = _rows(queries, self.dim)
        want = min(k, len(members))
        if len(self) == 0 or want < 1:
            empty = (np.zeros((len(rows), 0), np.float32), np.zeros((len(rows), 0), np.int64))
            return empty, (self.search(rows, overall) if overall else None)
        if len(rows) < _BATCH_FROM and len(self) <= _SCAN_UP_TO and self.plan.kind == "flat":
            positions = members.derived(self, "rows", lambda: self._positions(members))
            return _scan_among(self._index, rows, want, positions, overall)
        faiss = _faiss()
        selector = members.derived(self, "selector", lambda: _selector(members))
        if self.plan.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self._group_nprobe(len(members))
        else:
            params = faiss.SearchParameters()
        params.sel = selector
        found = self._index.search(rows, want, params=params)
        return found, (self.search(rows, overall) if overall else None)

    def _positions(self, members: Members) -> np.ndarray:
        """Where ``members``' templates are in a flat index (rows of its storage)."""
        faiss = _faiss()
        ids = faiss.rev_swig_ptr(self._index.id_map.data(), len(self))
        return np.flatnonzero(np.isin(ids, members.ids))

    def _group_nprobe(self, size: int) -> int:
        nlist = int(self._index.nlist)
        usual = nprobe_for(nlist)
        # The usual lists hold about usual / nlist of everyone, and as many of the group's
        # members; probing nlist / size times more keeps the members seen as many.
        return min(nlist, max(usual, -(-usual * len(self) // max(size, 1))))

    def upsert(self, speaker_id: int, vector: np.ndarray) -> None:
        with self._lock:
            self._index.remove_ids(np.asarray([speaker_id], dtype=np.int64))
            self._index.add_with_ids(_rows(vector, self.dim), np.asarray([speaker_id], np.int64))

    def remove(self, speaker_id: int) -> None:
        with self._lock:
            self._index.remove_ids(np.asarray([speaker_id], dtype=np.int64))

    def ids(self) -> np.ndarray:
        return stored_ids(self._index)

    def copy(self) -> SpeakerIndex:
        """An independent copy, to change while searches go on in this one."""
        faiss = _faiss()
        with self._lock:
            return SpeakerIndex._wrap(self.dim, faiss.clone_index(self._index))

    def save(self, path: Path, db_uuid: str, generation: int) -> None:
        """Write the index atomically, owner-readable only.

        The payload is streamed to the file as FAISS serializes it, so saving
        needs no second copy of the index in memory; the header, which holds the
        payload's SHA-256, is written last into a slot reserved at the start.
        """
        faiss = _faiss()
        header = {
            "db_uuid": db_uuid,
            "generation": generation,
            "dim": self.dim,
            "count": len(self),
            "kind": self.plan.kind,
        }
        with self._lock, _atomic_file(path) as fh:
            fh.write(b" " * HEADER_SIZE)
            digest = hashlib.sha256()

            def write(chunk: bytes) -> int:
                digest.update(chunk)
                fh.write(chunk)
                return len(chunk)

            faiss.write_index(self._index, faiss.PyCallbackIOWriter(write))
            fh.seek(0)
            fh.write(header_line({**header, "sha256": digest.hexdigest()}))

    @classmethod
    def load(cls, path: Path, digest: str | None = None) -> tuple[SpeakerIndex, IndexFile]:
        """Read an index file; raise IndexFileError when it is missing or damaged, or
        (given the store's ``digest``) when its rows are not the store's templates."""
        faiss = _faiss()
        with open_checked(path, digest) as (header, fh):
            try:
                index = faiss.read_index(faiss.PyCallbackIOReader(fh.read))
            except RuntimeError as exc:
                raise IndexFileError(f"FAISS cannot read {path}: {exc}") from exc
        if index.d != header.dim or index.ntotal != header.count:
            raise IndexFileError(f"{path}: header and payload disagree")
        loaded = cls._wrap(header.dim, index)
        if not loaded._finite():
            # One NaN row makes every query's margin NaN: never search with it.
            raise IndexFileError(f"{path}: holds a vector that is not finite")
        return loaded, header

    def _finite(self) -> bool:
        return all(bool(np.isfinite(block).all()) for block in vector_blocks(self._index))


def _faiss() -> Any:
    """FAISS, set up once for speakerdb's searches.

    FAISS 1.15 compares a batch of queries with the templates one query at a
    time unless the batch has ``distance_compute_blas_threshold`` queries
    (default 128,000); from :data:`_BATCH_FROM` queries on, a matrix product
    does it, several times faster for 100 queries at 10^5 speakers
    (``scripts/bench_search.py``). Its database block is widened because the
    default (1,024 templates) costs a thread barrier per block.

    FAISS's thread count is left alone: with torch imported first, the two
    share one OpenMP runtime, and ``faiss.omp_set_num_threads`` would set
    torch's too. These are process-wide FAISS settings.
    """
    import faiss

    global _configured
    if not _configured:
        faiss.cvar.distance_compute_blas_threshold = _BATCH_FROM
        faiss.cvar.distance_compute_blas_query_bs = _QUERY_CHUNK
        faiss.cvar.distance_compute_blas_database_bs = _DATABASE_BLOCK
        _configured = True
    return faiss


def _scan(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of a few queries against a flat index, on the calling thread only.

    FAISS (and NumPy's BLAS) spread one query over OpenMP threads; on a busy
    machine, waiting for the second thread to get a core made a 10^4-speaker
    query take about 50 ms instead of under 1 ms (``scripts/bench_identify.py``).
    ``einsum`` runs on this thread alone, and threads calling it run in parallel.
    """
    return _scan_among(index, queries, k, None, 0)[0]


def _scan_among(
    index: Any, queries: np.ndarray, k: int, among: np.ndarray | None, overall: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """:func:`_scan`'s top-``k`` of the rows ``among`` only (all rows: ``None``), and the
    top-``overall`` of all rows from the same scores (``None`` when ``overall`` is 0): a
    group's best and everyone's best for the price of one pass."""
    faiss = _faiss()
    n, dim = int(index.ntotal), int(index.d)
    vectors = faiss.rev_swig_ptr(faiss.downcast_index(index.index).get_xb(), n * dim)
    ids = faiss.rev_swig_ptr(index.id_map.data(), n)
    vectors = vectors.reshape(n, dim)
    among_ids = ids if among is None else ids[among]
    best = _Best(len(queries), k)
    everyone = _Best(len(queries), min(overall, n)) if overall else None
    for row, query in enumerate(queries):
        scores = np.einsum("ij,j->i", vectors, query)
        best.take(row, scores if among is None else scores[among], among_ids)
        if everyone is not None:
            everyone.take(row, scores, ids)
    return best.out(), (everyone.out() if everyone is not None else None)


class _Best:
    """The top-``k`` (score, id) of each query row, filled row by row."""

    def __init__(self, n: int, k: int) -> None:
        self.k = k
        # Missing slots (fewer candidates than k) have id -1, as FAISS pads them.
        self.scores = np.full((n, k), -np.inf, np.float32)
        self.ids = np.full((n, k), -1, np.int64)

    def take(self, row: int, scores: np.ndarray, ids: np.ndarray) -> None:
        k, n = self.k, len(scores)
        if not n or not k:
            return
        if k <= 2 < n:
            top = _best_two(scores)[:k]
        else:
            top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        self.scores[row, : len(top)], self.ids[row, : len(top)] = scores[top], ids[top]

    def out(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scores, self.ids


def _best_two(scores: np.ndarray) -> np.ndarray:
    """The positions of the two highest of ``scores`` (the margin's best two, for every
    grouped query): two passes of ``argmax``, a fraction of a partial sort's cost."""
    first = int(np.argmax(scores))
    held = scores[first]
    scores[first] = -np.inf  # put back below: the caller's scores are unchanged
    try:
        second = int(np.argmax(scores))
    finally:
        scores[first] = held
    return np.asarray([first, second])


def _selector(members: Members) -> Any:
    """A FAISS selector of ``members``' ids (it keeps its own copy of them)."""
    return _faiss().IDSelectorBatch(members.ids)


def _rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))


def _ids(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write, that replaces ``path`` whole once the block ends without error."""
    _remove_orphans(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_orphans(path: Path) -> None:
    """Delete temporary files that killed processes left half-written: they hold templates."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(path.name) + 2 :].split(".")[0])
        except ValueError:
            continue
        if 0 < pid != os.getpid() and not _alive(pid):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True
