"""SQLite storage: the SQLAlchemy models, sessions and the schema check.

SQLite is the source of truth. Every write runs in one ``BEGIN IMMEDIATE``
transaction, so it is all there or not there at all; the database runs in WAL
mode with ``synchronous=FULL``, so a committed write survives a crash, and a
busy timeout makes concurrent writers wait instead of failing.

The schema is owned by the Alembic migrations in ``migrations/``. A new
database is created at the head revision; an older one is refused with a
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    false,
    inspect,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    SessionTransaction,
    mapped_column,
    relationship,
)

from ...errors import (
    DatabaseBusy,
    DatabaseError,
    missing_database,
    sqlite_busy,
    sqlite_error,
    unwritable_folder,
)

__all__ = [
    "ApiKeyRow",
    "AuditRow",
    "Base",
    "CohortRow",
    "EncoderRow",
    "GroupMemberRow",
    "GroupRow",
    "KeptAudioRow",
    "PrintKeyRow",
    "PrintRow",
    "SettingRow",
    "SpeakerRow",
    "Store",
    "TombstoneRow",
    "UtteranceRow",
    "as_utc",
    "from_blob",
    "to_blob",
    "utcnow",
]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from SQLite, which keeps no time zone: all of ours are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def to_blob(vector: np.ndarray) -> bytes:
    """Store a vector as little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    """Read a vector written by :func:`to_blob` (bit-exact)."""
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


class Base(DeclarativeBase):
    pass


class SpeakerRow(Base):
    __tablename__ = "speakers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    # Derived from the utterances (normalised mean), kept so the index can be
    # rebuilt without re-reading every utterance.
    template: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The speaker's metadata (speakerdb._metadata): the id another system knows them
    # by, unique where set, and their attributes as canonical JSON text (NULL: none).
    external_id: Mapped[str | None] = mapped_column(
        String(128), nullable=True, unique=True, index=True
    )
    attributes: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    # A voice never to admit: a query it matches is flagged, not accepted.
    watchlist: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false(), index=True
    )
    # The last successful match (at most a day old: :mod:`speakerdb.services._idle`), or
    # the enrollment until the first; idle expiry removes those that are too old.
    last_match_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    utterances: Mapped[list[UtteranceRow]] = relationship(
        back_populates="speaker", cascade="all, delete-orphan", passive_deletes=True
    )


class UtteranceRow(Base):
    __tablename__ = "utterances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source: Mapped[str | None] = mapped_column(String, nullable=True)
    audio_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    duration_s: Mapped[float] = mapped_column(Float, nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    speaker: Mapped[SpeakerRow] = relationship(back_populates="utterances")


class EncoderRow(Base):
    """The one encoder whose embeddings this database holds."""

    __tablename__ = "encoder"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String, nullable=False)
    revision: Mapped[str | None] = mapped_column(String, nullable=True)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    sample_rate: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SettingRow(Base):
    """Key/value settings: ``threshold``, ``uuid``, ``generation``, and the audit
    log's ``audit``, ``audit_retention_days`` and ``audit_max_rows``.

    ``generation`` is bumped by every template change; the index file records it.
    """

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String, nullable=False)


class AuditRow(Base):
    """One identify or verify decision, written only while auditing is on (:mod:`.audit`).

    Names are copied, not linked: the log keeps what was decided even after a rename
    or a removal. ``normalized`` is the normalised score when one decided, else NULL.
    """

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    operation: Mapped[str] = mapped_column(String(16), nullable=False)
    claimed: Mapped[str | None] = mapped_column(String(128), nullable=True)
    identified: Mapped[str | None] = mapped_column(String(128), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    normalized: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    accepted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    #: The answer (:class:`~speakerdb.types.Outcome`'s value); revision 0005 filled in
    #: the older rows from ``accepted`` and ``operation``.
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    api_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    countermeasure: Mapped[str | None] = mapped_column(String(64), nullable=True)
    countermeasure_score: Mapped[float | None] = mapped_column(Float, nullable=True)


class PrintRow(Base):
    """The acoustic fingerprint of an enrolled clip (``utterance_id``) or of a query this
    database decided within its replay window (:mod:`speakerdb.storage._prints`).

    Deleted with its utterance or its speaker (``ON DELETE CASCADE``); a query's also
    when the window passes.
    """

    __tablename__ = "fingerprints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    utterance_id: Mapped[int | None] = mapped_column(
        ForeignKey("utterances.id", ondelete="CASCADE"), nullable=True, index=True
    )
    speaker_id: Mapped[int | None] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), nullable=True, index=True
    )
    session: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class PrintKeyRow(Base):
    """One index key of a fingerprint at one step (:mod:`speakerdb.audio._fpindex`)."""

    __tablename__ = "fingerprint_keys"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012

    key: Mapped[int] = mapped_column(Integer, primary_key=True)
    print_id: Mapped[int] = mapped_column(
        ForeignKey("fingerprints.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)


class CohortRow(Base):
    """One clip of a cohort's outside voice: its embedding, never its audio or file name
    (:mod:`speakerdb.storage.sqlite._cohort`)."""

    __tablename__ = "cohort"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(128), nullable=False)
    audio_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    duration_s: Mapped[float] = mapped_column(Float, nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class KeptAudioRow(Base):
    """An enrolled clip's audio, kept with ``--keep-audio`` for re-embedding: sealed
    (encrypted) bytes and the id of the key that sealed them (:mod:`speakerdb.storage._kept`).
    Deleted with its utterance (``ON DELETE CASCADE``), hence with its speaker."""

    __tablename__ = "kept_audio"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    utterance_id: Mapped[int] = mapped_column(
        ForeignKey("utterances.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ApiKeyRow(Base):
    """A key of the HTTP service: its name, scope and the SHA-256 of its secret (the
    secret itself is shown once, when created, and never stored)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    digest: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: The group the key is bound to (its queries consider only that group), or NULL.
    group_name: Mapped[str | None] = mapped_column(String(64), nullable=True)


class GroupRow(Base):
    """A named group of speakers (:mod:`speakerdb.storage.sqlite._groups`); it stays,
    empty, when its last member leaves, until it is deleted."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class GroupMemberRow(Base):
    """One speaker in one group; deleted with either (``ON DELETE CASCADE``)."""

    __tablename__ = "group_members"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TombstoneRow(Base):
    """A person who opted out: their external id and name skeletons, nothing else."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    name_key: Mapped[str] = mapped_column(String, nullable=False, index=True)
    folded_key: Mapped[str] = mapped_column(String, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


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
        if path.is_dir():
            raise DatabaseError(f"{path}: is a directory; pass a database file with --db")
        _refuse_linked_sidecars(path)
        created = not path.exists()
        if created:
            if not create:
                raise missing_database(path)
            _create_private_file(path)
        # URL.create, not "sqlite:///{path}": '?', '%' and '#' stay in the file's name.
        engine = create_engine(URL.create("sqlite", database=str(path)))
        _install_pragmas(engine)
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
            if not _not_a_database(exc.orig):  # a folder it cannot write, a full disk...
                raise sqlite_error(self.path, exc.orig or exc, BUSY_TIMEOUT_MS / 1000) from exc
            raise DatabaseError(
                f"{self.path}: not an SQLite database (corrupt or another kind of file); "
                "pass the right file with --db"
            ) from exc

    def translated(self) -> AbstractContextManager[None]:
        """A block whose SQLite errors become :class:`DatabaseError` naming the fix."""
        return _wrapped(self.path)

    def use_wal(self) -> None:
        """Journal in WAL mode: readers never block the writer or vice versa.

        The mode is stored in the file and this is a no-op once set. It is called
        only once the file is known to be speakerdb's, so that opening another
        application's SQLite file by mistake leaves it exactly as it was.
        """
        with _wrapped(self.path):
            raw = self.engine.raw_connection()
            try:
                _switch_to_wal(raw.cursor())
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
        with _wrapped(self.path):
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
        with _wrapped(self.path), Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One atomic write transaction (``BEGIN IMMEDIATE``): all of it commits or none.

        The write lock is taken before the body runs. Another writer is waited for
        (SQLite's busy timeout, then retries with backoff) up to ``BUSY_TIMEOUT_MS``.
        """
        with _wrapped(self.path):
            session, transaction = self._begin_write()
            with session, transaction:
                yield session

    def _begin_write(self) -> tuple[Session, SessionTransaction]:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
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


@contextmanager
def _wrapped(path: Path) -> Iterator[None]:
    try:
        yield
    except sa_exc.DBAPIError as exc:
        cause = exc.orig if exc.orig is not None else exc
        raise sqlite_error(path, cause, BUSY_TIMEOUT_MS / 1000) from exc


def _not_a_database(exc: BaseException | None) -> bool:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    return code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or code == 0


def _refuse_linked_sidecars(path: Path) -> None:
    """Refuse a database whose journal files are symbolic links: SQLite would write the
    database's pages (voiceprints) wherever they point, a file another user may own."""
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.is_symlink():
            raise DatabaseError(
                f"{sidecar}: is a symbolic link, and speakerdb writes no database through "
                f"one (it may have been planted); remove it (`rm {sidecar}`) and retry"
            )


def _create_private_file(path: Path) -> None:
    if not path.parent.exists():
        raise DatabaseError(f"{path}: folder {path.parent} does not exist")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except PermissionError as exc:
        raise unwritable_folder(path, exc.strerror or str(exc)) from exc
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot create the database ({exc.strerror})") from exc


def _install_pragmas(engine: Engine) -> None:
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


def _switch_to_wal(cursor: Any) -> None:
    """Set WAL mode, waiting while other processes create the same new database.

    Changing the journal mode needs the file to itself and SQLite does not apply
    the busy timeout to it, so several processes opening one new database at the
    same moment would otherwise fail with "database is locked".
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
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
