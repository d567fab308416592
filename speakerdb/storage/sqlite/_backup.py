"""An online backup of a live SQLite database, with SQLite's backup API.

The copy is taken in one step from a read transaction: in WAL mode that is one
consistent snapshot (every committed write up to its start, none after) and it
never blocks the writers, which go on meanwhile. It is written to a private
temporary file beside the target, switched out of WAL mode (so that the backup
is one self-contained file), checked with ``PRAGMA quick_check``, flushed to disk
and only then renamed into place: the target is the whole backup or does not exist.
The search index is not copied: it is derived, and rebuilt when the backup is opened.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from ...errors import DatabaseError, InputError
from ...types import BackupReport
from .._errors import missing_folder
from ._schema import current_revision
from ._store import Store

__all__ = ["backup"]


def backup(store: Store, target: Path, *, overwrite: bool = False) -> BackupReport:
    """Copy the database of ``store`` to ``target``; see the module's docstring."""
    target = _checked_target(store.path, target, overwrite)
    started = time.monotonic()
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        _private_file(temporary)
        counts = _copy(store, temporary)
        _flush(temporary)
        os.replace(temporary, target)
        _flush_folder(target.parent)
    except BaseException:
        for leftover in (temporary, *_sidecars(temporary)):
            leftover.unlink(missing_ok=True)
        raise
    return BackupReport(
        path=str(target.resolve()),
        n_speakers=counts[0],
        n_utterances=counts[1],
        bytes=target.stat().st_size,
        schema_revision=current_revision(store),
        seconds=time.monotonic() - started,
    )


def _checked_target(source: Path, target: Path, overwrite: bool) -> Path:
    target = Path(target).expanduser()
    if target.resolve() in {source.resolve(), *(p.resolve() for p in _sidecars(source))}:
        raise InputError(f"{target}: is the database itself; back it up to another file")
    if target.is_dir():
        raise InputError(f"{target}: is a directory; give the backup file's name")
    if not target.parent.is_dir():
        raise InputError(missing_folder(target))
    if os.path.lexists(target) and not overwrite:
        raise InputError(f"{target}: exists already; pick another name, or --overwrite it")
    return target


def _private_file(path: Path) -> None:
    """Create ``path`` owner-only: a backup holds every voiceprint."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot create the backup ({exc.strerror})") from exc


def _copy(store: Store, temporary: Path) -> tuple[int, int]:
    with store.translated():
        raw = store.engine.raw_connection()
        try:
            source = raw.driver_connection
            assert isinstance(source, sqlite3.Connection)
            with contextlib.closing(sqlite3.connect(temporary, isolation_level=None)) as copy:
                try:
                    source.backup(copy)  # all pages in one step: one snapshot
                    copy.execute("PRAGMA journal_mode = DELETE")
                    (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
                    counts = copy.execute(
                        "SELECT (SELECT count(*) FROM speakers), (SELECT count(*) FROM utterances)"
                    ).fetchone()
                except sqlite3.Error as exc:
                    raise DatabaseError(f"{store.path}: the backup failed ({exc})") from exc
        finally:
            raw.close()
    if verdict != "ok":
        raise DatabaseError(f"{temporary}: the copy does not check out ({verdict}); retry")
    return int(counts[0]), int(counts[1])


def _flush(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_folder(folder: Path) -> None:
    """Make the rename durable (a crash after it must not lose the new name)."""
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        _flush(folder)


def _sidecars(path: Path) -> tuple[Path, ...]:
    return tuple(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))
