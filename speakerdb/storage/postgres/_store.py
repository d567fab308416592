"""Sessions on one PostgreSQL database, shared by every process that opens it.

* A read is one ``REPEATABLE READ READ ONLY`` transaction: every query in it sees
  the same committed moment, whatever other nodes commit meanwhile.
* A write is one ``READ COMMITTED`` transaction that first takes a transaction-level
  advisory lock (:data:`WRITE_LOCK`), so writers run one at a time across all
  nodes, as SQLite's ``BEGIN IMMEDIATE`` makes them on one machine: a read-then-write
  (a counter, a new name) never races another node's. The lock goes with the
  transaction, so a node killed in the middle leaves nothing held.
* A connection lost to a server restart is an error naming the fix for the
  transaction it broke; the pool checks each connection before use (``pre_ping``),
  so the next transaction reconnects by itself.

The schema is the one Alembic chain of both engines
(:mod:`speakerdb.storage.sql._schema`); it is created by the first
write under the same lock, and an older revision is refused with the fix.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from ...errors import SchemaError
from .._errors import missing_database
from ..sql._schema import SCHEMA_HEAD, migrate, refuse_newer, refuse_revision
from ._url import masked, translated

__all__ = ["WRITE_LOCK", "PgStore"]

log = logging.getLogger(__name__)

#: The advisory lock every speakerdb writer holds for its transaction ("spkrdb" in ASCII).
WRITE_LOCK = 0x73706B72_6462

#: How long a statement may wait for the write lock or another lock before it fails.
LOCK_TIMEOUT_MS = 30_000


class PgStore:
    """Sessions on the database ``url`` names. Thread-safe: each call opens its own session."""

    def __init__(self, url: URL, ef_search: int = 100) -> None:
        self.url = url
        self.where = masked(url)
        options = f"-c lock_timeout={LOCK_TIMEOUT_MS}"
        self.engine: Engine = _engine(url, options, pre_ping=True)
        # Reads get connections of their own, set up once to be read-only REPEATABLE READ
        # (and with HNSW's search beam): a query then costs no SET, and no ping either, as
        # a write's connection does. A connection the server dropped fails its query with
        # an error naming the fix; SQLAlchemy then discards the pool, so the next one
        # reconnects.
        options += (
            r" -c default_transaction_isolation=repeatable\ read"
            " -c default_transaction_read_only=on"
            f" -c hnsw.ef_search={int(ef_search)}"
        )
        self._reader = _engine(url, options, pre_ping=False)
        # One statement, its own snapshot: no BEGIN and COMMIT around it.
        self._single = self._reader.execution_options(isolation_level="AUTOCOMMIT")
        _OPEN_STORES.add(self)

    def translated(self) -> object:
        return translated(self.url)

    def has_schema(self) -> bool:
        """Whether the database holds speakerdb's tables (at any revision)."""
        with translated(self.url), self.engine.connect() as conn:
            return "alembic_version" in inspect(conn).get_table_names()

    def check_schema(self) -> None:
        """Refuse a database at another revision, or another application's tables."""
        with translated(self.url), self.engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if "alembic_version" not in tables:
                if tables & {"speakers", "utterances", "settings"}:
                    raise SchemaError(
                        f"{self.where}: holds tables named like speakerdb's but no schema "
                        "revision; pass another database with --db"
                    )
                return
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        refuse_revision(self.where, revision, "the database")

    def migrate(self) -> tuple[str | None, str]:
        """Bring the schema to head under the write lock; return ``(before, after)``."""
        with translated(self.url), self.engine.begin() as conn:
            _lock(conn)
            before = _revision(conn)
            refuse_newer(self.where, before)
            if before != SCHEMA_HEAD:
                migrate(conn)
                log.info("migrated %s from %s to %s", self.where, before, SCHEMA_HEAD)
        return before, SCHEMA_HEAD

    def require_schema(self) -> None:
        if not self.has_schema():
            raise missing_database(self.where)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: one consistent snapshot of the database."""
        with translated(self.url), Session(self._reader, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """A connection whose every statement reads its own committed snapshot."""
        with translated(self.url), self._single.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction, all of it or none, holding the write lock from its start."""
        with translated(self.url), Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                _lock(session.connection())
                yield session

    def close(self) -> None:
        self.engine.dispose()
        self._reader.dispose()


def _engine(url: URL, options: str, *, pre_ping: bool) -> Engine:
    return create_engine(
        url,
        pool_pre_ping=pre_ping,
        pool_size=4,
        max_overflow=8,
        connect_args={"connect_timeout": 10, "application_name": "speakerdb", "options": options},
    )


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})


def _revision(conn: Connection) -> str | None:
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


#: Every open store of this process, for :func:`_forget_parent_connections`.
_OPEN_STORES: weakref.WeakSet[PgStore] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    """In a forked child, drop the pooled connections inherited from the parent without
    closing them (they are the parent's sockets): the child opens its own."""
    for store in list(_OPEN_STORES):
        store.engine.dispose(close=False)
        store._reader.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_connections)
