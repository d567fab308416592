"""Where speakers are kept: the storage protocol and its backends.

:func:`open_storage` is the one place that chooses a backend for a location;
:class:`SpeakerDB <speakerdb.SpeakerDB>` calls it and then speaks only the
protocol of :mod:`speakerdb.storage._protocol`. Backends load on first use,
so importing this package (as the fast read-only commands do) stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._protocol import Change, IndexAdmin, SearchFn, Snapshot, Storage

if TYPE_CHECKING:
    from ._memory import MemoryStorage

__all__ = [
    "Change",
    "IndexAdmin",
    "MemoryStorage",
    "SearchFn",
    "Snapshot",
    "Storage",
    "open_storage",
    "upgrade_storage",
]


def open_storage(location: str | os.PathLike[str], *, create: bool = True) -> Storage:
    """Open the database at ``location`` (an SQLite file path), creating it when ``create``.

    Raises :class:`~speakerdb.errors.DatabaseError` when it cannot be opened, and
    :class:`~speakerdb.errors.SchemaError` when its schema is not this version's.
    """
    from .sqlite._backend import SQLiteStorage

    return SQLiteStorage.open(location, create=create)


def upgrade_storage(location: str | os.PathLike[str]) -> tuple[str | None, str]:
    """Migrate the existing database at ``location`` to this version's schema;
    return the schema revisions ``(before, after)``."""
    from .sqlite._backend import upgrade

    return upgrade(Path(location))


def __getattr__(name: str) -> Any:
    if name == "MemoryStorage":
        from ._memory import MemoryStorage

        return MemoryStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
