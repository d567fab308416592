"""Groups: named sets of speakers (a door's, a team's), and queries confined to one.

A speaker belongs to zero or more groups (``speakerdb enroll --group G``,
``speakerdb group add G NAME...``). ``identify``, ``verify`` and ``segments`` given a
group consider only its members:

- identify names only a member: the search is the index's, filtered by the group's
  member ids (exact on a flat index; :meth:`~speakerdb.storage.Storage.find`), not a
  scan of the database;
- verify of a claimed speaker outside the group is ``rejected``, with the reason;
- segments names voices after members only.

What a score compares with stays the whole database: the margin's best other speaker,
AS-norm's cohort, and the population size the threshold was set for
(:class:`speakerdb.decision._ranking.Within`). A group of 10 at a door of a
10,000-person building is still asked by strangers who sound like anyone.

A group stays, empty, when its last member leaves or is removed; ``delete`` removes it.
A service key may be bound to a group (:mod:`speakerdb.services._keys`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from .._names import clean_group, clean_name
from ..decision._ranking import Within
from ..errors import InputError
from ..types import Match
from ._retention import expire_due

if TYPE_CHECKING:
    from ..storage import Storage
    from ..storage._marks import Found
    from ..types import Group

__all__ = ["GroupAdmin", "QuerySearch"]

log = logging.getLogger(__name__)


class GroupAdmin:
    """The groups of one database (``db.lifecycle.groups``). Each method runs its own
    transaction."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def list(self) -> list[Group]:
        """Every group with its members, by name."""
        with self._storage.read() as snapshot:
            return snapshot.groups()

    def get(self, group: str) -> Group:
        """Group ``group``; :class:`GroupNotFound` if there is none."""
        group = clean_group(group)
        with self._storage.read() as snapshot:
            members = snapshot.group_members(group)
            made = next(g.created_at for g in snapshot.groups() if g.name == group)
        from ..types import Group

        return Group(group, tuple(members), made)

    def add(self, group: str, names: Sequence[str]) -> int:
        """Put the speakers ``names`` in ``group`` (made if new), all or none; return how
        many joined. :class:`SpeakerNotFound` names a speaker that is not enrolled."""
        group, cleaned = clean_group(group), _names(names)
        with self._storage.change() as change:
            added = change.add_to_group(group, cleaned)
        log.info("added %d speaker(s) to group %r", added, group)
        return added

    def remove(self, group: str, names: Sequence[str]) -> int:
        """Take the speakers ``names`` out of ``group``; return how many were in it."""
        group, cleaned = clean_group(group), _names(names)
        with self._storage.change() as change:
            removed = change.remove_from_group(group, cleaned)
        log.info("took %d speaker(s) out of group %r", removed, group)
        return removed

    def delete(self, group: str) -> Group:
        """Delete ``group``; its members stay enrolled. Keys bound to it then answer
        :class:`GroupNotFound` until it is made again."""
        group = clean_group(group)
        with self._storage.change() as change:
            deleted = change.delete_group(group)
        log.info("deleted group %r (%d member(s))", group, len(deleted.members))
        return deleted


def _names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    if not names:
        raise InputError("name at least one speaker")
    return [clean_name(n) for n in names]


class QuerySearch:
    """The search of one query (of ``group``'s members when given), which keeps the marks
    it read with it (:class:`~speakerdb.storage._marks.Found`): the watchlist, and whether
    a voiceprint has expired, at no extra read (issue 15's cost goal)."""

    def __init__(self, storage: Storage, group: str | None) -> None:
        self._storage = storage
        self.group = None if group is None else clean_group(group)
        self.found: Found | None = None

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Match, ...]]:
        """Every speaker's ``k`` nearest (a :data:`~speakerdb.decision._ranking.Search`)."""
        self.found = self._storage.find(queries, k)
        return self.found.matches

    def within(self) -> Within | None:
        """The group's search for :func:`~speakerdb.decision._ranking.rank`, if any."""
        return None if self.group is None else Within(self._group_search, self.members)

    def _group_search(
        self, queries: np.ndarray, k: int, overall: int
    ) -> tuple[list[tuple[Match, ...]], list[tuple[Match, ...]]]:
        self.found = self._storage.find(queries, k, group=self.group, overall=overall)
        return self.found.matches, self.found.overall

    def members(self) -> frozenset[str]:
        """The group's members' names (:class:`GroupNotFound` for an unknown group)."""
        assert self.group is not None
        with self._storage.read() as snapshot:
            return frozenset(snapshot.group_members(self.group))

    def check_group(self) -> None:
        """Refuse an unknown group before any work is done."""
        if self.group is not None:
            self.members()

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the search saw a voiceprint past its expiry; then it is deleted now, and
        the caller searches again (so an expired voiceprint is never matched)."""
        found = self.found
        now = now or datetime.now(timezone.utc)
        if found is None or found.expiring is None or found.expiring > now:
            return False
        return bool(expire_due(self._storage, now))

    def watchlist(self) -> frozenset[str] | None:
        """The watchlist the search read (``None`` when nothing was searched)."""
        return None if self.found is None else self.found.watchlist
