"""What a search reads besides the templates: the marks on speakers (the watchlist, the
next expiry, the groups), kept by each backend beside its index and read again only
when they change, so a query pays no extra read for them (issue 15's cost goal).

A backend builds one :class:`Marks` per state of its speakers (for SQLite and the
PostgreSQL cache: per value of the ``generation``, ``names_version`` and
``marks_version`` counters, the last bumped by every change of a watchlist mark, an
expiry or a group) and answers :meth:`~speakerdb.storage.Storage.find` with a
:class:`Found`: the matches, and the marks of the same moment.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..types import Match
from ._rules import no_such_group

if TYPE_CHECKING:
    from ._index import SpeakerIndex

__all__ = ["MARKS_COUNTER", "Found", "Marks", "Members", "named"]

#: The setting bumped by every change of a watchlist mark, an expiry or a group.
MARKS_COUNTER = "marks_version"


class Found(NamedTuple):
    """One search and the marks of the same moment.

    ``matches`` holds each query's ``k`` best speakers (of the group, when one was
    given), best first; ``overall`` each query's best ``overall`` speakers of the whole
    database (asked for with a group: the margin's best other is everyone's), else
    empty lists; ``watchlist`` the watchlisted names; ``expiring`` the earliest
    expiry date of any speaker (``None``: none has one); ``speakers`` how many
    speakers the database holds (identify's default threshold depends on it)."""

    matches: list[tuple[Match, ...]]
    overall: list[tuple[Match, ...]]
    watchlist: frozenset[str]
    expiring: datetime | None
    speakers: int = 0


class Members:
    """The speaker ids of one group (sorted), with what an index derives from them for a
    filtered search, computed once per index (:meth:`derived`)."""

    def __init__(self, ids: Sequence[int] | np.ndarray) -> None:
        self.ids = np.unique(np.asarray(ids, np.int64))
        self._lock = threading.Lock()
        self._derived: dict[str, tuple[weakref.ref[Any], object]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def derived(self, owner: Any, kind: str, make: Callable[[], Any]) -> Any:
        """``make()``, kept as ``kind`` for ``owner`` (an index, held weakly): the next call
        with the same owner and kind returns it; another owner replaces it."""
        held = self._derived.get(kind)
        if held is not None and held[0]() is owner:
            return held[1]
        value = make()
        with self._lock:
            self._derived[kind] = (weakref.ref(owner), value)
        return value


@dataclass(frozen=True, eq=False)
class Marks:
    """The watchlisted names, the earliest expiry, each group's members and how many
    speakers are enrolled."""

    watchlist: frozenset[str] = frozenset()
    expiring: datetime | None = None
    groups: Mapping[str, Members] = field(default_factory=dict)
    speakers: int = 0

    def members(self, group: str) -> Members:
        """The members of ``group``; :class:`~speakerdb.errors.GroupNotFound` if none."""
        found = self.groups.get(group)
        if found is None:
            raise no_such_group(group)
        return found

    def found(
        self, matches: list[tuple[Match, ...]], overall: list[tuple[Match, ...]] | None = None
    ) -> Found:
        return Found(matches, overall or [], self.watchlist, self.expiring, self.speakers)

    def search(
        self,
        index: SpeakerIndex,
        names: Mapping[int, str],
        queries: np.ndarray,
        k: int,
        group: str | None,
        overall: int,
    ) -> Found:
        """:meth:`~speakerdb.storage.Storage.find` on a
        :class:`~speakerdb.storage._index.SpeakerIndex` whose ids ``names`` names."""
        if group is None:
            return self.found(named(index.search(queries, k), names))
        within, everyone = index.search_within(queries, k, self.members(group), overall)
        return self.found(
            named(within, names), None if everyone is None else named(everyone, names)
        )


def named(
    found: tuple[np.ndarray, np.ndarray], names: Mapping[int, str]
) -> list[tuple[Match, ...]]:
    """Each query row's ``(scores, ids)`` from an index as matches by name; ids that are
    not in ``names`` (FAISS pads missing slots with -1) are left out."""
    scores, ids = found
    return [
        tuple(
            Match(names[int(i)], float(s))
            for s, i in zip(row, found, strict=True)
            if int(i) in names
        )
        for row, found in zip(scores, ids, strict=True)
    ]
