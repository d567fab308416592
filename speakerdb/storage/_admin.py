"""The administration protocols a backend may implement besides
:class:`~speakerdb.storage.Storage` (:mod:`speakerdb.storage._protocol`): an online
backup to a file, and the administration of its derived search index. The services
check for them with ``isinstance`` (they are runtime-checkable)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pathlib import Path

    from ..types import BackupReport
    from ._index import SpeakerIndex
    from ._indexkind import IndexChoice

__all__ = ["Backup", "IndexAdmin", "SearchAdmin", "VectorSearchAdmin"]


@runtime_checkable
class Backup(Protocol):
    """An online backup of a live database to one file (the SQLite backend). A backend
    on a server is backed up by its own tools (``pg_dump`` for PostgreSQL)."""

    def backup(self, target: Path, *, overwrite: bool = False) -> BackupReport:
        """Copy one consistent snapshot of the database to ``target`` while writers go
        on; ``target`` is the whole copy or is not created. :class:`InputError` when it
        exists (unless ``overwrite``) or is the database itself."""
        ...


@runtime_checkable
class SearchAdmin(Protocol):
    """The administration of a backend's derived search index, wherever it lives: the
    SQLite backend's FAISS file, PostgreSQL's pgvector table or each process's cache."""

    @property
    def index_where(self) -> str:
        """Where the index is, in words: a file's path, a table, a cache in memory."""
        ...

    def rebuild_index(self) -> int:
        """Rebuild the index from the database; return the number of speakers in it."""
        ...

    def index_choice(self) -> IndexChoice:
        """The index setting and the index it gives now."""
        ...

    def set_index_kind(self, kind: str, ivf_from: int | None) -> IndexChoice:
        """Store the index setting and rebuild by it if needed."""
        ...


@runtime_checkable
class IndexAdmin(SearchAdmin, Protocol):
    """A search index in a file of this process (the SQLite + FAISS backend)."""

    @property
    def index_path(self) -> Path: ...

    def current_index(self) -> SpeakerIndex:
        """The index, agreeing with the database; loaded or rebuilt when stale."""
        ...


@runtime_checkable
class VectorSearchAdmin(Protocol):
    """The choice of vector search on a server shared by many nodes (PostgreSQL):
    ``pgvector`` (HNSW on float32), ``halfvec`` (HNSW on half precision) or ``faiss``
    (each process's cache)."""

    def vector_search(self) -> str | None:
        """How the database is searched; ``None`` until chosen (by the first enrollment)."""
        ...

    def set_search(self, kind: str) -> None:
        """Choose how the database is searched, for every node."""
        ...
