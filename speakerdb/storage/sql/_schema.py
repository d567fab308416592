"""The schema every SQL engine shares: its revisions, its Alembic scripts, and the rule
for a database at another revision.

One chain of Alembic revisions (``migrations/`` beside this module, shipped in the
wheel) creates and upgrades the tables of :mod:`._models` on SQLite and PostgreSQL
alike. Decided once, for both: opening a database never migrates it behind the
user's back; an older revision is refused with :class:`~speakerdb.errors.SchemaError`
naming ``speakerdb db upgrade``, a newer one asks for a newer speakerdb
(:func:`refuse_revision`). How a backend finds its revision, holds its lock and
spots a foreign database is its own (:mod:`speakerdb.storage.sqlite._schema`,
:mod:`speakerdb.storage.postgres._store`).

Alembic and SQLAlchemy are imported only to migrate: the fast reader of SQLite files
checks :data:`SCHEMA_HEAD` without either.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import SchemaError

__all__ = [
    "KNOWN_REVISIONS",
    "SCHEMA_HEAD",
    "migrate",
    "migrations_dir",
    "refuse_newer",
    "refuse_revision",
]

#: The newest schema revision; a test checks it equals Alembic's head.
SCHEMA_HEAD = "0012"
#: Every released revision, oldest first: 0001 the initial schema, 0002 the audit log,
#: 0003 speaker metadata, 0004 the service's keys, 0005 the audit log's outcomes,
#: 0006 retention (expiry, opt-out tombstones), 0007 the cohort of outside voices,
#: 0008 the watchlist, 0009 the replay fingerprints and the audit log's countermeasure,
#: 0010 groups and the group a service key is bound to, 0011 the kept enrollment audio
#: and each speaker's last match, 0012 how each clip's vector was made (its spoken
#: part's margin; NULL: the whole clip).
KNOWN_REVISIONS = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
    "0010",
    "0011",
    "0012",
)


def migrations_dir() -> Path:
    """The Alembic scripts, which live beside this module (and ship in the wheel)."""
    candidate = Path(__file__).resolve().parent / "migrations"
    if (candidate / "env.py").is_file():
        return candidate
    raise SchemaError("speakerdb's migrations are missing from this installation; reinstall it")


def refuse_revision(where: str, revision: str | None, backup: str) -> None:
    """Raise SchemaError unless ``revision`` is :data:`SCHEMA_HEAD`: an older known one
    asks the user to back up ``backup`` ("the file", "the database") and upgrade."""
    if revision == SCHEMA_HEAD:
        return
    if revision in KNOWN_REVISIONS:
        raise SchemaError(
            f"{where}: schema revision {revision} is older than this speakerdb's "
            f"{SCHEMA_HEAD}; back {backup} up, then run `speakerdb db upgrade`"
        )
    raise SchemaError(
        f"{where}: schema revision {revision!r} is unknown to this speakerdb "
        f"(head {SCHEMA_HEAD}); upgrade speakerdb to open it"
    )


def refuse_newer(where: str, before: str | None) -> None:
    """Raise SchemaError when a database about to be upgraded is at a revision this
    speakerdb does not know (a newer one's); ``None`` (no schema yet) passes."""
    if before is not None and before not in KNOWN_REVISIONS:
        raise SchemaError(
            f"{where}: revision {before!r} is newer than this speakerdb; upgrade speakerdb "
            "to open it"
        )


def migrate(connection: object) -> None:
    """Bring the database of ``connection`` (a SQLAlchemy Connection, in the caller's
    transaction) to :data:`SCHEMA_HEAD`."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
