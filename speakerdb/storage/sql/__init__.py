"""What every SQLAlchemy engine shares: the SQLAlchemy models of speakerdb's tables
(:mod:`._models`) and the schema, one chain of Alembic revisions (``migrations/``)
run on SQLite and PostgreSQL alike (:mod:`._schema`).

The backends that use it, :mod:`speakerdb.storage.sqlite` and
:mod:`speakerdb.storage.postgres`, keep only what is their engine's own; neither
imports the other, and this package imports neither (``lint-imports`` checks both).
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
