"""Create, check and upgrade the schema of an SQLite file.

The revisions, the Alembic scripts and the rule for a database at another revision
are every SQL engine's (:mod:`speakerdb.storage.sql._schema`): a new (empty) file is
created at the head revision, an older one is refused until ``speakerdb db upgrade``.
What is SQLite's is here: the revision read from the file, WAL mode, another
application's file refused untouched. Alembic is imported only to create or upgrade,
so opening an up-to-date database stays fast.

A database file may come from anyone. Opening one at the head revision also
checks that it holds no trigger, view, table or index that the migrations did
not create: a foreign ``AFTER DELETE`` trigger could copy every voiceprint that
``remove`` deletes. The objects the migrations create are listed in
:data:`HEAD_OBJECTS` (a test derives the list from the migrations), so the
check costs one query; a database holding anything else is checked against a
fresh in-memory database migrated to head before it is refused, so a list that
was not updated can delay an open but never refuse a good database.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from ...errors import SchemaError
from ..sql._schema import SCHEMA_HEAD, migrate, refuse_newer, refuse_revision

if TYPE_CHECKING:
    # For annotations only: this module loads no SQLAlchemy until it creates or checks.
    from ._store import Store

__all__ = [
    "HEAD_OBJECTS",
    "current_revision",
    "ensure_schema",
    "migrated_objects",
    "upgrade",
]

log = logging.getLogger(__name__)

#: The (type, name) of every object the migrations create at :data:`SCHEMA_HEAD`, besides
#: SQLite's own; a test checks it equals :func:`migrated_objects`.
HEAD_OBJECTS = frozenset(
    {
        ("table", "alembic_version"),
        ("table", "speakers"),
        ("table", "utterances"),
        ("index", "ix_utterances_speaker_id"),
        ("index", "ix_speakers_external_id"),
        ("index", "ix_speakers_expires_at"),
        ("index", "ix_speakers_watchlist"),
        ("index", "ix_speakers_last_match_at"),
        ("table", "kept_audio"),
        ("table", "tombstones"),
        ("index", "ix_tombstones_external_id"),
        ("index", "ix_tombstones_name_key"),
        ("index", "ix_tombstones_folded_key"),
        ("table", "encoder"),
        ("table", "settings"),
        ("table", "audit"),
        ("index", "ix_audit_created_at"),
        ("table", "fingerprints"),
        ("index", "ix_fingerprints_utterance_id"),
        ("index", "ix_fingerprints_speaker_id"),
        ("index", "ix_fingerprints_created_at"),
        ("table", "fingerprint_keys"),
        ("index", "ix_fingerprint_keys_print_id"),
        ("table", "api_keys"),
        ("table", "cohort"),
        ("table", "groups"),
        ("table", "group_members"),
        ("index", "ix_group_members_speaker_id"),
    }
)
# SQLite's own objects are left out by name *and* type: a trigger named sqlite_* is not
# SQLite's (only writable_schema makes one), and is caught.
_DROP_ORDER = ("trigger", "view", "index", "table")
_OBJECTS = """
    SELECT type, name FROM sqlite_master
    WHERE NOT (type = 'index' AND name LIKE 'sqlite\\_autoindex\\_%' ESCAPE '\\')
      AND NOT (type = 'table' AND name IN ('sqlite_sequence', 'sqlite_stat1', 'sqlite_stat4'))
"""


def current_revision(store: Store) -> str | None:
    """The database's Alembic revision, or ``None`` when it has none."""
    from sqlalchemy import text

    if "alembic_version" not in store.table_names():
        return None
    with store.read() as session:
        return session.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(store: Store) -> None:
    """Create an empty database at head; refuse one at another revision or a foreign one."""
    tables = store.table_names()
    _refuse_foreign(store, tables)
    store.use_wal()
    if not tables:
        _create(store)
        return
    refuse_revision(str(store.path), current_revision(store), "the file")
    _refuse_foreign_objects(store)


def upgrade(store: Store) -> tuple[str | None, str]:
    """Migrate the database to the head revision; return ``(before, after)``."""
    _refuse_foreign(store, store.table_names())
    before = current_revision(store)
    refuse_newer(str(store.path), before)
    if before != SCHEMA_HEAD:
        _run_alembic(store)
        log.info("upgraded %s from %s to %s", store.path, before, SCHEMA_HEAD)
    return before, SCHEMA_HEAD


def _refuse_foreign(store: Store, tables: set[str]) -> None:
    """Refuse another application's SQLite database: it is never written to."""
    if tables and "alembic_version" not in tables:
        raise SchemaError(
            f"{store.path}: an SQLite database, but not a speakerdb one (tables: "
            f"{', '.join(sorted(tables)[:5])}); pass another file with --db"
        )


def _refuse_foreign_objects(store: Store) -> None:
    """Raise SchemaError naming every trigger, view, table or index the migrations did
    not create, and the fix."""
    import shlex  # only for this message: not on list's path

    from sqlalchemy import text

    with store.read() as session:
        found = {(str(kind), str(name)) for kind, name in session.execute(text(_OBJECTS))}
    foreign = found - HEAD_OBJECTS
    if foreign:
        foreign -= migrated_objects()
    if not foreign:
        return
    # Triggers first: dropping a table a trigger writes to would leave it failing.
    ordered = sorted(foreign, key=lambda o: (_DROP_ORDER.index(o[0]), o[1]))
    listed = ", ".join(f"{kind} {name!r}" for kind, name in ordered)
    drops = "; ".join(f"DROP {kind.upper()} {name}" for kind, name in ordered)
    raise SchemaError(
        f"{store.path}: holds objects speakerdb's migrations did not create ({listed}); "
        "another program (or an attacker) may copy or change voiceprints through them. "
        "Check what they do, then remove them "
        f"(`sqlite3 {shlex.quote(str(store.path))} {shlex.quote(drops)}`) or restore a backup"
    )


@functools.lru_cache(maxsize=1)
def migrated_objects() -> frozenset[tuple[str, str]]:
    """The (type, name) of every object of a fresh database migrated to head (besides
    SQLite's own): computed once per process, in memory."""
    from sqlalchemy import create_engine, text

    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            migrate(conn)
            return frozenset((str(k), str(n)) for k, n in conn.execute(text(_OBJECTS)))
    finally:
        engine.dispose()


def _create(store: Store) -> None:
    _run_alembic(store)
    log.info("created %s at schema revision %s", store.path, SCHEMA_HEAD)


def _run_alembic(store: Store) -> None:
    with store.engine.execution_options(speakerdb_immediate=True).begin() as conn:
        migrate(conn)
