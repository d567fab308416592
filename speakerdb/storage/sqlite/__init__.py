"""The SQLite + FAISS backend: SQLAlchemy models and sessions, the Alembic schema
(migrations/ beside it), the index kept in step with the store, and the fast
read-only path of ``list``, ``show`` and ``info``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

__all__ = [
    "KNOWN_REVISIONS",
    "SCHEMA_HEAD",
    "Base",
    "Reader",
    "SQLiteStorage",
    "Store",
    "from_blob",
    "open_reader",
    "to_blob",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SQLiteStorage": "._backend",
        "Base": "._models",
        "Store": "._store",
        "from_blob": "._models",
        "to_blob": "._models",
        "KNOWN_REVISIONS": "._schema",
        "SCHEMA_HEAD": "._schema",
        "Reader": "._reader",
        "open_reader": "._reader",
    },
)

if TYPE_CHECKING:
    from ._backend import SQLiteStorage
    from ._models import Base, from_blob, to_blob
    from ._reader import Reader, open_reader
    from ._schema import KNOWN_REVISIONS, SCHEMA_HEAD
    from ._store import Store
