"""``db.index``: the derived search index of a database, for administration.

The index is rebuilt from the store whenever it is missing, stale or damaged, so
nothing here is needed for correct answers; it is for looking and tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DatabaseError
from ..storage import IndexAdmin, SearchAdmin, Storage, VectorSearchAdmin

if TYPE_CHECKING:
    from ..storage._index import SpeakerIndex
    from ..storage._indexkind import IndexChoice

__all__ = ["IndexTools"]


class IndexTools:
    """The search index of one database. On a storage without one (in memory) every
    method raises :class:`~speakerdb.errors.DatabaseError`; :attr:`path` and
    :meth:`current` need an index file (SQLite), :meth:`vector_search` and
    :meth:`set_vector_search` a server (PostgreSQL)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def path(self) -> Path:
        """The index file, beside the database."""
        return self._admin().index_path

    @property
    def where(self) -> str:
        """Where the index is, in words: the file's path, a table, each process's cache."""
        return self._search().index_where

    def rebuild(self) -> int:
        """Rebuild the index from the database; return the number of speakers in it."""
        return self._search().rebuild_index()

    def choice(self) -> IndexChoice:
        """The index setting (``auto``, ``flat``, ``ivf``) and the index it gives now."""
        return self._search().index_choice()

    def configure(self, kind: str, *, ivf_from: int | None = None) -> IndexChoice:
        """Store the index setting (see :mod:`speakerdb.storage._indexkind`) and rebuild
        by it if needed. ``ivf_from`` sets where ``auto`` switches to IVF (``None``:
        kept as stored)."""
        return self._search().set_index_kind(kind, ivf_from)

    def vector_search(self) -> str | None:
        """On PostgreSQL, how the database is searched: ``pgvector``, ``halfvec`` or
        ``faiss``; ``None`` until chosen (the first enrollment chooses pgvector when the
        server has it, else faiss)."""
        return self._vectors().vector_search()

    def set_vector_search(self, kind: str) -> None:
        """On PostgreSQL, choose how the database is searched, for every node:
        ``pgvector`` (HNSW on float32), ``halfvec`` (HNSW on half precision: half the
        index's memory) or ``faiss`` (each process's cache of the table)."""
        self._vectors().set_search(kind)

    def current(self) -> SpeakerIndex:
        """The FAISS index, agreeing with the database; loaded or rebuilt when stale."""
        return self._admin().current_index()

    def _admin(self) -> IndexAdmin:
        if not isinstance(self._storage, IndexAdmin):
            path = self._storage.path
            raise DatabaseError(f"{path}: this storage keeps no index file")
        return self._storage

    def _search(self) -> SearchAdmin:
        if not isinstance(self._storage, SearchAdmin):
            path = self._storage.path
            raise DatabaseError(f"{path}: this storage has no search index to administer")
        return self._storage

    def _vectors(self) -> VectorSearchAdmin:
        if not isinstance(self._storage, VectorSearchAdmin):
            path = self._storage.path
            raise DatabaseError(
                f"{path}: the vector search is chosen on a PostgreSQL database only "
                "(this one is searched by its FAISS index)"
            )
        return self._storage
