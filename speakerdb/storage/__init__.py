"""Where speakers are kept: the storage protocol and its backends.

:func:`open_storage` is the one place that chooses a backend for a location;
:class:`SpeakerDB <speakerdb.SpeakerDB>` calls it and then speaks only the
protocol of :mod:`speakerdb.storage._protocol`. Backends load on first use,
so importing this package (as the fast read-only commands do) stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ..config import is_server_url

if TYPE_CHECKING:
    from ._admin import Backup, IndexAdmin, SearchAdmin, VectorSearchAdmin
    from ._index import IndexFileError, SpeakerIndex, read_header
    from ._indexkind import AUTO_IVF_FROM, IndexChoice, IndexPlan, nprobe_for, plan_for
    from ._protocol import Change, SearchFn, Snapshot, Storage, StoreDescription
    from .memory import MemoryStorage
    from .sqlite import Reader

__all__ = [
    "AUTO_IVF_FROM",
    "Backup",
    "Change",
    "IndexAdmin",
    "IndexChoice",
    "IndexFileError",
    "IndexPlan",
    "MemoryStorage",
    "Reader",
    "SearchAdmin",
    "SearchFn",
    "Snapshot",
    "SpeakerIndex",
    "Storage",
    "StoreDescription",
    "VectorSearchAdmin",
    "enrolled_names",
    "nprobe_for",
    "open_reader",
    "open_storage",
    "plan_for",
    "read_header",
    "require_database",
    "require_file",
    "upgrade_storage",
]

# The backends and FAISS load on first use: the fast read-only commands import this.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MemoryStorage": ".memory",
        "Reader": ".sqlite",
        **dict.fromkeys(
            ["Change", "SearchFn", "Snapshot", "Storage", "StoreDescription"], "._protocol"
        ),
        **dict.fromkeys(["Backup", "IndexAdmin", "SearchAdmin", "VectorSearchAdmin"], "._admin"),
        **dict.fromkeys(["IndexFileError", "SpeakerIndex", "read_header"], "._index"),
        **dict.fromkeys(
            ["AUTO_IVF_FROM", "IndexChoice", "IndexPlan", "nprobe_for", "plan_for"], "._indexkind"
        ),
    },
)


def open_storage(location: str | os.PathLike[str], *, create: bool = True) -> Storage:
    """Open the database at ``location``, creating it when ``create``: a PostgreSQL URL
    (:func:`speakerdb.config.is_server_url`), else an SQLite file path.

    Raises :class:`~speakerdb.errors.DatabaseError` when it cannot be opened, and
    :class:`~speakerdb.errors.SchemaError` when its schema is not this version's.
    """
    if is_server_url(location):
        from .postgres._backend import PostgresStorage

        return PostgresStorage.open(str(location), create=create)
    from .sqlite._backend import SQLiteStorage

    return SQLiteStorage.open(location, create=create)


def require_database(storage: Storage) -> None:
    """Refuse a read of a database that no write has created
    (:attr:`Storage.exists <speakerdb.storage._protocol.Storage.exists>`): a misspelt path
    must not read as an empty database, and must not be created by reading it."""
    if not storage.exists:
        from ._errors import missing_database

        raise missing_database(storage.path, unfinished=os.path.lexists(storage.path))


def require_file(location: str | os.PathLike[str]) -> None:
    """Refuse at once a file path that :func:`open_storage` with ``create=False`` would
    refuse before opening anything (no such file, a folder...), with the same
    :class:`~speakerdb.errors.DatabaseError`, without loading SQLAlchemy or numpy: a
    command that only looks answers a mistyped ``--db`` as fast as it lists. A PostgreSQL
    URL passes: only connecting tells."""
    if is_server_url(location):
        return
    from .sqlite._connection import file_exists

    file_exists(Path(location).expanduser(), create=False)


def upgrade_storage(location: str | os.PathLike[str]) -> tuple[str | None, str]:
    """Migrate the existing database at ``location`` to this version's schema;
    return the schema revisions ``(before, after)``."""
    if is_server_url(location):
        from .postgres._backend import upgrade as upgrade_server

        return upgrade_server(str(location))
    from .sqlite._backend import upgrade

    return upgrade(Path(location))


def open_reader(location: str | os.PathLike[str]) -> Reader | None:
    """The fast read-only view of the database at ``location`` (Python's ``sqlite3``, no
    SQLAlchemy, numpy or FAISS), for commands that only look; ``None`` when it cannot
    answer (a PostgreSQL URL, a missing file, another schema revision), and the caller
    opens the database through :func:`open_storage` instead."""
    if is_server_url(location):
        return None
    from .sqlite import open_reader as open_file_reader

    return open_file_reader(os.fspath(location))


def enrolled_names(location: str | os.PathLike[str]) -> list[str]:
    """Every enrolled name at ``location``, read the cheapest way each backend allows
    (shell completion asks at every <TAB>); ``[]`` when there is no database. Any
    problem raises: the caller decides whether to stay silent."""
    if is_server_url(location):
        from .postgres._quick import speaker_names

        return speaker_names(str(location))
    reader = open_reader(location)
    if reader is None:
        return []
    with reader:
        return [s.name for s in reader.speakers()]
