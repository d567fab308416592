"""The SQLite + FAISS file backend: only what is SQLite's own.

The file and its connection (:mod:`._connection`: WAL, ``synchronous=FULL``, the busy
timeout, ``BEGIN IMMEDIATE``; :mod:`._store`), the file's schema checks (:mod:`._schema`:
WAL mode, another application's file, objects the migrations did not create), online
backup (:mod:`._backup`), the FAISS index file kept in step with the store
(:mod:`._indexsync`), the fast read-only path of ``list``, ``show`` and ``info`` on
Python's own ``sqlite3`` (:mod:`._reader`), and the :class:`SQLiteStorage` that puts
them together (:mod:`._backend`).

The tables, their models, the Alembic migrations, the queries and the session's
snapshot and change are every SQL engine's (:mod:`speakerdb.storage.sql`, which says
why), shared with the PostgreSQL backend; this package never imports that one.
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
