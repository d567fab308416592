"""Create, check and upgrade the database schema with Alembic.

Decided once: opening a database never migrates it behind the user's back. A
new (empty) database is created at the head revision; a database at an older
revision is refused with :class:`~speakerdb.errors.SchemaError` telling the user
to back it up and run ``speakerdb db upgrade``; a newer one asks for a newer
speakerdb. Alembic is imported only to create or upgrade, so opening an
up-to-date database stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import SchemaError

if TYPE_CHECKING:
    # Not at run time: the fast reader (._reader) checks SCHEMA_HEAD without SQLAlchemy.
    from ._store import Store

__all__ = ["SCHEMA_HEAD", "current_revision", "ensure_schema", "migrations_dir", "upgrade"]

log = logging.getLogger(__name__)

#: The newest schema revision; a test checks it equals Alembic's head.
SCHEMA_HEAD = "0002"
#: Every released revision, oldest first: 0001 the initial schema, 0002 the audit log.
KNOWN_REVISIONS = ("0001", "0002")


def migrations_dir() -> Path:
    """The Alembic scripts, which live beside this module (and ship in the wheel)."""
    candidate = Path(__file__).resolve().parent / "migrations"
    if (candidate / "env.py").is_file():
        return candidate
    raise SchemaError("speakerdb's migrations are missing from this installation; reinstall it")


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
    revision = current_revision(store)
    if revision == SCHEMA_HEAD:
        return
    if revision in KNOWN_REVISIONS:
        raise SchemaError(
            f"{store.path}: schema revision {revision} is older than this speakerdb's "
            f"{SCHEMA_HEAD}; back the file up, then run `speakerdb db upgrade`"
        )
    raise SchemaError(
        f"{store.path}: schema revision {revision!r} is unknown to this speakerdb "
        f"(head {SCHEMA_HEAD}); upgrade speakerdb to open it"
    )


def upgrade(store: Store) -> tuple[str | None, str]:
    """Migrate the database to the head revision; return ``(before, after)``."""
    _refuse_foreign(store, store.table_names())
    before = current_revision(store)
    if before is not None and before not in KNOWN_REVISIONS:
        raise SchemaError(f"{store.path}: revision {before!r} is newer than this speakerdb")
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


def _create(store: Store) -> None:
    _run_alembic(store)
    log.info("created %s at schema revision %s", store.path, SCHEMA_HEAD)


def _run_alembic(store: Store) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with store.engine.execution_options(speakerdb_immediate=True).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
