"""The in-memory storage itself: it holds the published state, runs each change on a
copy and publishes the copy whole when the change ends without raising."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...types import Match
from .._marks import Found
from .._protocol import StoreDescription
from ._change import Change
from ._search import find
from ._snapshot import Snapshot
from ._state import State

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """A :class:`~speakerdb.storage.Storage` that lives as long as the object."""

    def __init__(self) -> None:
        self._state = State()
        self._writer = threading.RLock()

    @property
    def path(self) -> Path:
        return Path(":memory:")

    @property
    def created(self) -> bool:
        return True

    @property
    def exists(self) -> bool:
        return True

    @contextmanager
    def read(self) -> Iterator[Snapshot]:
        yield Snapshot(self._state)

    @contextmanager
    def change(self, *, templates: bool = False) -> Iterator[Change]:
        with self._writer:
            change = Change(self._state.copy(), templates=templates)
            yield change
            if change.changed_templates:
                change.state.version += 1
                change.state.matrix = None
            change.state.marks = None  # any change may change a mark
            self._state = change.state  # published whole, only once nothing raised

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Match, ...]]:
        return self.find(queries, k).matches

    def find(
        self, queries: np.ndarray, k: int, *, group: str | None = None, overall: int = 0
    ) -> Found:
        return find(self._state, queries, k, group, overall)

    def describe(self, generation: int, digest: str | None) -> StoreDescription:
        return StoreDescription(":memory:", "in memory", f"up to date (generation {generation})")

    def discard(self) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: the data goes with the object."""
