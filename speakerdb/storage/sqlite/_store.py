"""SQLite storage: the sessions on one database file.

SQLite is the source of truth. Every write runs in one ``BEGIN IMMEDIATE``
transaction, so it is all there or not there at all; the database runs in WAL
mode with ``synchronous=FULL``, so a committed write survives a crash, and a
busy timeout makes concurrent writers wait instead of failing (the connection's
set-up: :mod:`speakerdb.storage.sqlite._connection`).

The tables are the models of :mod:`speakerdb.storage.sql._models`; the schema is
owned by the Alembic migrations every SQL engine shares (:mod:`speakerdb.storage.sql`).
A new database is created at the head revision; an older one is refused with a
message to run ``speakerdb db upgrade`` (see :mod:`speakerdb.storage.sqlite._schema`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, SessionTransaction

from ...errors import DatabaseBusy, DatabaseError
from .._errors import sqlite_busy, sqlite_error
from . import _connection
from ._connection import (
    create_private_file,
    file_exists,
    install_pragmas,
    not_a_database,
    switch_to_wal,
    wrapped,
)

__all__ = ["Store"]

log = logging.getLogger(__name__)


class Store:
    """Sessions on one SQLite file. Thread-safe: each call opens its own session."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        #: True when :meth:`open` created the file.
        self.created = False
        self._writer = engine.execution_options(speakerdb_immediate=True)
        _OPEN_STORES.add(self)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> Store:
        """Open (creating, with owner-only permissions) the SQLite file at ``path``."""
        path = Path(path).expanduser()
        created = not file_exists(path, create=create)
        if created:
            create_private_file(path)
        # URL.create, not "sqlite:///{path}": '?', '%' and '#' stay in the file's name.
        engine = create_engine(URL.create("sqlite", database=str(path)))
        install_pragmas(engine)
        store = cls(path, engine)
        store.created = created
        try:
            store._probe()
        except DatabaseError:
            if created:  # nothing of ours was written: leave nothing behind
                path.unlink(missing_ok=True)
            raise
        return store

    def _probe(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA schema_version").scalar()
        except sa_exc.DatabaseError as exc:
            self.engine.dispose()
            if not not_a_database(exc.orig):  # a folder it cannot write, a full disk...
                timeout_s = _connection.busy_timeout_s()
                raise sqlite_error(self.path, exc.orig or exc, timeout_s) from exc
            raise DatabaseError(
                f"{self.path}: not an SQLite database (corrupt or another kind of file); "
                "pass the right file with --db"
            ) from exc

    def translated(self) -> AbstractContextManager[None]:
        """A block whose SQLite errors become :class:`DatabaseError` naming the fix."""
        return wrapped(self.path)

    def use_wal(self) -> None:
        """Journal in WAL mode: readers never block the writer or vice versa.

        The mode is stored in the file and this is a no-op once set. It is called
        only once the file is known to be speakerdb's, so that opening another
        application's SQLite file by mistake leaves it exactly as it was.
        """
        with wrapped(self.path):
            raw = self.engine.raw_connection()
            try:
                switch_to_wal(raw.cursor())
            except sqlite3.Error as exc:
                message = f"{self.path}: cannot switch to WAL journaling ({exc})"
                raise (DatabaseBusy if sqlite_busy(exc) else DatabaseError)(message) from exc
            finally:
                raw.close()

    def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate the WAL to zero bytes.

        Run after deletions: until then the WAL still holds earlier images of the
        changed pages, deleted voiceprints included. Readers in other processes are
        waited for (the busy timeout); False when they still kept it from finishing.
        """
        with wrapped(self.path):
            raw = self.engine.raw_connection()
            try:
                busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise DatabaseError(f"{self.path}: cannot checkpoint the WAL ({exc})") from exc
            finally:
                raw.close()
        return not busy

    def purge_deleted(self) -> None:
        """Leave no copy of deleted rows: secure_delete zeroes them in the database file,
        and a truncating checkpoint drops the older page images still in the WAL."""
        try:
            done = self.checkpoint()
        except DatabaseError as exc:  # the deletion itself is committed: say so, do not fail
            log.warning("%s; the WAL may keep old copies of the deleted data", exc)
            return
        if not done:
            log.warning(
                "%s-wal: other programs are reading the database, so it keeps old copies of "
                "the deleted data until the last of them closes it",
                self.path,
            )

    def table_names(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(inspect(conn).get_table_names())

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: one consistent snapshot of the database."""
        with wrapped(self.path), Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One atomic write transaction (``BEGIN IMMEDIATE``): all of it commits or none.

        The write lock is taken before the body runs. Another writer is waited for
        (SQLite's busy timeout, then retries with backoff) up to
        :data:`~speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS`.
        """
        with wrapped(self.path):
            session, transaction = self._begin_write()
            with session, transaction:
                yield session

    def _begin_write(self) -> tuple[Session, SessionTransaction]:
        deadline = time.monotonic() + _connection.busy_timeout_s()
        pause = 0.005
        while True:
            session = Session(self._writer, expire_on_commit=False)
            try:
                transaction = session.begin()
                session.connection()  # runs BEGIN IMMEDIATE: waits for the write lock
                return session, transaction
            except sa_exc.OperationalError as exc:
                session.close()
                if not sqlite_busy(exc.orig) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.25)

    def close(self) -> None:
        self.engine.dispose()


#: Every open store of this process, for :func:`_forget_parent_connections`.
_OPEN_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    """In a forked child, close the SQLite connections inherited from the parent's pools,
    so that the child opens its own.

    An inherited connection must not be used: SQLite keeps the locks of each file in
    per-process tables, which the child copies, so the child believes it holds the
    parent's locks while the kernel gives it none. The parent could then take itself
    for the last user of the database, checkpoint and delete the WAL under the child's
    commits (audit entries written by forked children were lost, and children hung:
    issue 16, finding 10). Closing the copies (``dispose()``, not ``dispose(close=False)``,
    which would keep SQLite's tables alive with the child's connections) empties those
    tables; it releases no lock of the parent's, since the kernel's locks belong to the
    process that took them. Connections checked out by another thread at the fork are
    not in the pool and stay unusable: fork from a thread that is not querying.
    """
    for store in list(_OPEN_STORES):
        store.engine.dispose()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_connections)
