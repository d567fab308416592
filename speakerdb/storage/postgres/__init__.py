"""The PostgreSQL backend: one database shared by many processes and machines.

The speakers, utterances, settings and audit log are the tables every SQL engine
shares (:mod:`speakerdb.storage.sql`: one Alembic chain runs on SQLite and here).
Search is pgvector's HNSW index when the extension is there (:mod:`._pgvector`), else
a FAISS cache in each process, derived from the table (:mod:`._cache`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

__all__ = ["PostgresStorage", "masked", "upgrade"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"PostgresStorage": "._backend", "upgrade": "._backend", "masked": "._url"},
)

if TYPE_CHECKING:
    from ._backend import PostgresStorage, upgrade
    from ._url import masked
