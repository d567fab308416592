"""What every SQLAlchemy engine shares, used by the SQLite and the PostgreSQL backends.

Three backends implement :class:`~speakerdb.storage.Storage`, and each package holds
only what is its own:

* ``storage.sql`` (this package): everything written once for any SQLAlchemy engine.
  The ORM models of speakerdb's tables (:mod:`._models`); the schema, one chain of
  Alembic revisions in ``migrations/`` that runs on SQLite and PostgreSQL alike, and
  the rule for a database at another revision (:mod:`._schema`); the portable
  queries, one module per concept (:mod:`._catalog` speakers, clips, settings and
  the encoder; :mod:`._groups`, :mod:`._audit`, :mod:`._cohort`, :mod:`._keys`,
  :mod:`._kept`, :mod:`._prints`, :mod:`._retention`); and the protocol's reads and
  writes on one session (:class:`._snapshot.SessionSnapshot`,
  :class:`._change.SessionChange`).
* :mod:`speakerdb.storage.sqlite`: what only SQLite has. The file and its
  connection pragmas (WAL, ``BEGIN IMMEDIATE``, busy timeout), the file's schema
  checks (foreign objects, another application's file), online backup, the FAISS
  index file kept in step with the store, and the fast read-only path on Python's
  ``sqlite3``.
* :mod:`speakerdb.storage.postgres`: what only PostgreSQL has. Transactions on a
  server shared by many nodes (an advisory write lock, ``REPEATABLE READ`` reads),
  URLs and their passwords, and search by pgvector's HNSW index or a FAISS cache per
  process.

Why: a table, a query or a migration is then written once and is the same on both
engines (a revision added for one is there for the other), and each backend can
change what is its own without touching the other. Neither backend imports the
other, and this package imports neither (``lint-imports`` checks both). The in-memory
backend (:mod:`speakerdb.storage.memory`) shares none of this: it keeps Python objects.

Nothing here loads SQLAlchemy on import: the fast reader of SQLite files checks
:data:`SCHEMA_HEAD` without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

__all__ = ["KNOWN_REVISIONS", "SCHEMA_HEAD", "Base", "from_blob", "to_blob"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Base": "._models",
        "from_blob": "._models",
        "to_blob": "._models",
        "KNOWN_REVISIONS": "._schema",
        "SCHEMA_HEAD": "._schema",
    },
)

if TYPE_CHECKING:
    from ._models import Base, from_blob, to_blob
    from ._schema import KNOWN_REVISIONS, SCHEMA_HEAD
