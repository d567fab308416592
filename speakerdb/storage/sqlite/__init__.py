"""The SQLite + FAISS backend: what is SQLite's own. The connection and its pragmas
(WAL, busy timeout, ``BEGIN IMMEDIATE``), the file's schema checks, online backup, the
FAISS index file kept in step with the store, and the fast read-only path of ``list``,
``show`` and ``info`` on Python's own ``sqlite3``.

The tables, their models and the Alembic migrations are every SQL engine's
(:mod:`speakerdb.storage.sql`), shared with the PostgreSQL backend, which this
package never imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

__all__ = ["Reader", "SQLiteStorage", "Store", "open_reader"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SQLiteStorage": "._backend",
        "Store": "._store",
        "Reader": "._reader",
        "open_reader": "._reader",
    },
)

if TYPE_CHECKING:
    from ._backend import SQLiteStorage
    from ._reader import Reader, open_reader
    from ._store import Store
