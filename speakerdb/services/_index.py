"""``db.index``: the derived search index of a database, for administration.

The index is rebuilt from the store whenever it is missing, stale or damaged, so
nothing here is needed for correct answers; it is for looking and tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DatabaseError
from ..storage import IndexAdmin, Storage

if TYPE_CHECKING:
    from ..storage._index import SpeakerIndex
    from ..storage._indexkind import IndexChoice

__all__ = ["IndexTools"]


class IndexTools:
    """The search index of one database. On a storage without an index file (in
    memory) every method raises :class:`~speakerdb.errors.DatabaseError`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def path(self) -> Path:
        """The index file, beside the database."""
        return self._admin().index_path

    def rebuild(self) -> int:
        """Rebuild the index file from the database; return the number of speakers in it."""
        return self._admin().rebuild_index()

    def choice(self) -> IndexChoice:
        """The index setting (``auto``, ``flat``, ``ivf``) and the index it gives now."""
        return self._admin().index_choice()

    def configure(self, kind: str, *, ivf_from: int | None = None) -> IndexChoice:
        """Store the index setting (see :mod:`speakerdb.storage._indexkind`) and rebuild
        by it if needed. ``ivf_from`` sets where ``auto`` switches to IVF (``None``:
        kept as stored)."""
        return self._admin().set_index_kind(kind, ivf_from)

    def current(self) -> SpeakerIndex:
        """The FAISS index, agreeing with the database; loaded or rebuilt when stale."""
        return self._admin().current_index()

    def _admin(self) -> IndexAdmin:
        if not isinstance(self._storage, IndexAdmin):
            path = self._storage.path
            raise DatabaseError(f"{path}: this storage has no search index to administer")
        return self._storage
