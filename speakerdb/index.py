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
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatabaseError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the in-process lock still holds
    fcntl = None  # type: ignore[assignment]

__all__ = ["IndexFile", "IndexFileError", "IndexLock", "SpeakerIndex", "index_path_for"]

log = logging.getLogger(__name__)

_MAGIC = b"SPEAKERDB-INDEX 1\n"
#: How long to wait for another process's hold on the index lock (as SQLite's busy timeout).
LOCK_TIMEOUT_S = 30.0


class IndexFileError(Exception):
    """The index file is missing, corrupt or from another database; it gets rebuilt."""


@dataclass(frozen=True, slots=True)
class IndexFile:
    """What an index file's header says about it."""

    db_uuid: str
    generation: int
    dim: int
    count: int


def index_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".faiss")


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
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            pass
        try:  # a read-only folder: lock the file if it is there, else go without
            return os.open(self.path, os.O_RDONLY)
        except OSError as exc:
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
                raise DatabaseError(
                    f"{self.path}: another process has held the index lock for over "
                    f"{timeout:.0f} s; stop the speakerdb process that hangs, then retry"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


class SpeakerIndex:
    """Exact top-k cosine search over speaker templates. Searches may run in parallel."""

    def __init__(self, dim: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        import faiss

        self.dim = dim
        self._lock = threading.Lock()
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if len(ids):
            self._index.add_with_ids(_rows(vectors, dim), np.asarray(ids, dtype=np.int64))

    @classmethod
    def _wrap(cls, dim: int, index: Any) -> SpeakerIndex:
        self = cls.__new__(cls)
        self.dim, self._lock, self._index = dim, threading.Lock(), index
        return self

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` per query row, best first; missing slots have id -1."""
        if len(self) == 0:
            # Nothing enrolled: no candidates, whatever the query's size.
            n = len(np.atleast_2d(queries))
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        k = max(1, min(k, len(self)))
        return self._index.search(_rows(queries, self.dim), k)

    def upsert(self, speaker_id: int, vector: np.ndarray) -> None:
        with self._lock:
            self._index.remove_ids(np.asarray([speaker_id], dtype=np.int64))
            self._index.add_with_ids(_rows(vector, self.dim), np.asarray([speaker_id], np.int64))

    def remove(self, speaker_id: int) -> None:
        with self._lock:
            self._index.remove_ids(np.asarray([speaker_id], dtype=np.int64))

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def copy(self) -> SpeakerIndex:
        """An independent copy, to change while searches go on in this one."""
        import faiss

        with self._lock:
            return SpeakerIndex._wrap(self.dim, faiss.clone_index(self._index))

    def save(self, path: Path, db_uuid: str, generation: int) -> None:
        """Write the index atomically, owner-readable only."""
        import faiss

        with self._lock:
            payload = faiss.serialize_index(self._index).tobytes()
        header = {
            "db_uuid": db_uuid,
            "generation": generation,
            "dim": self.dim,
            "count": len(self),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        _atomic_write(path, _MAGIC + json.dumps(header).encode() + b"\n" + payload)

    @classmethod
    def load(cls, path: Path) -> tuple[SpeakerIndex, IndexFile]:
        """Read an index file; raise IndexFileError when it is missing or damaged."""
        import faiss

        header, payload = _read_checked(path)
        try:
            index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFileError(f"FAISS cannot read {path}: {exc}") from exc
        if index.d != header.dim or index.ntotal != header.count:
            raise IndexFileError(f"{path}: header and payload disagree")
        return cls._wrap(header.dim, index), header


def read_header(path: Path) -> IndexFile:
    """The header of an index file, without loading FAISS."""
    return _read_checked(path)[0]


def _read_checked(path: Path) -> tuple[IndexFile, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexFileError(f"{path}: missing") from None
    except OSError as exc:
        raise IndexFileError(f"{path}: unreadable ({exc.strerror})") from exc
    if not data.startswith(_MAGIC):
        raise IndexFileError(f"{path}: not a speakerdb index file")
    line, _, payload = data[len(_MAGIC) :].partition(b"\n")
    try:
        meta = json.loads(line)
        header = IndexFile(
            str(meta["db_uuid"]), int(meta["generation"]), int(meta["dim"]), int(meta["count"])
        )
        digest = str(meta["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexFileError(f"{path}: corrupt header") from exc
    if hashlib.sha256(payload).hexdigest() != digest:
        raise IndexFileError(f"{path}: checksum mismatch (truncated or corrupt)")
    return header, payload


def _rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))


def _atomic_write(path: Path, data: bytes) -> None:
    _remove_orphans(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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
