"""How speakerdb connects to an SQLite file: the file created private, the pragmas of
every connection, WAL journaling, and SQLite's errors turned into ones that name the fix.

:data:`BUSY_TIMEOUT_MS` bounds every wait for a lock: SQLite's busy timeout, the
retries of a writer (:meth:`speakerdb.storage.sqlite._store.Store.write`), the
switch to WAL and the fast reader (:mod:`._reader`). It is read when used, so a test
may lower it. SQLAlchemy is imported where it is used: the fast reader imports this
module and must not load it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import DatabaseError
from .._errors import (
    missing_database,
    missing_folder,
    sqlite_busy,
    sqlite_error,
    unwritable_folder,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "BUSY_TIMEOUT_MS",
    "busy_timeout_s",
    "create_private_file",
    "file_exists",
    "install_pragmas",
    "not_a_database",
    "refuse_linked_sidecars",
    "switch_to_wal",
    "wrapped",
]

BUSY_TIMEOUT_MS = 30_000


def busy_timeout_s() -> float:
    """:data:`BUSY_TIMEOUT_MS` in seconds, as it is now."""
    return BUSY_TIMEOUT_MS / 1000


@contextmanager
def wrapped(path: Path) -> Iterator[None]:
    from sqlalchemy import exc as sa_exc

    try:
        yield
    except sa_exc.DBAPIError as exc:
        cause = exc.orig if exc.orig is not None else exc
        raise sqlite_error(path, cause, busy_timeout_s()) from exc


def not_a_database(exc: BaseException | None) -> bool:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    return code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or code == 0


def file_exists(path: Path, *, create: bool) -> bool:
    """Whether the database file at ``path`` exists, checked before anything opens it;
    raise :class:`~speakerdb.errors.DatabaseError` naming the fix for a path no database
    can be opened at: a folder, journal files that are symbolic links, or (unless
    ``create``) no file. Cheap (no SQLAlchemy), so the commands that only look call it
    (:func:`speakerdb.storage.require_file`) before they load the rest."""
    if path.is_dir():
        raise DatabaseError(f"{path}: is a directory; pass a database file with --db")
    refuse_linked_sidecars(path)
    if path.exists():
        return True
    if not create:
        raise missing_database(path)
    return False


def refuse_linked_sidecars(path: Path) -> None:
    """Refuse a database whose journal files are symbolic links: SQLite would write the
    database's pages (voiceprints) wherever they point, a file another user may own."""
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.is_symlink():
            raise DatabaseError(
                f"{sidecar}: is a symbolic link, and speakerdb writes no database through "
                f"one (it may have been planted); remove it (`rm {sidecar}`) and retry"
            )


def create_private_file(path: Path) -> None:
    if not path.parent.exists():
        raise DatabaseError(missing_folder(path))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except PermissionError as exc:
        raise unwritable_folder(path, exc.strerror or str(exc)) from exc
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot create the database ({exc.strerror})") from exc


def install_pragmas(engine: Engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that writers can
        # BEGIN IMMEDIATE: a deferred writer that meets another writer cannot
        # wait on the busy timeout and fails with "database is locked".
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")
        # Deleted voiceprints are overwritten with zeros, not left in free pages.
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("speakerdb_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def switch_to_wal(cursor: Any) -> None:
    """Set WAL mode, waiting while other processes create the same new database.

    Changing the journal mode needs the file to itself and SQLite does not apply
    the busy timeout to it, so several processes opening one new database at the
    same moment would otherwise fail with "database is locked".
    """
    deadline = time.monotonic() + busy_timeout_s()
    delay = 0.01
    while True:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not sqlite_busy(exc):
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
