"""Groups in memory (the policy is :mod:`speakerdb.services._groups`), and the marks a
search reads (:mod:`speakerdb.storage._marks`), built once per published state."""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime, timezone

from ...types import Group
from .._marks import Marks, Members
from .._rules import no_such_group
from ._state import State

__all__ = [
    "add_members",
    "delete_group",
    "forget_speaker",
    "group",
    "groups_of",
    "list_groups",
    "marks_of",
    "remove_members",
    "require",
]


def list_groups(state: State) -> list[Group]:
    return [group(state, name) for name in sorted(state.groups)]


def group(state: State, name: str) -> Group:
    """The group ``name`` with its members' names, sorted."""
    made, held = require(state, name)
    names = sorted(state.speakers[i].name for i in held if i in state.speakers)
    return Group(name, tuple(names), made)


def groups_of(state: State, speaker_id: int) -> tuple[str, ...]:
    """The names of the groups ``speaker_id`` is in, sorted."""
    return tuple(sorted(g for g, held in state.groups.items() if speaker_id in held[1]))


def require(state: State, name: str) -> tuple[datetime, frozenset[int]]:
    """When group ``name`` was made and its members' ids; raises if there is none."""
    held = state.groups.get(name)
    if held is None:
        raise no_such_group(name)
    return held


def add_members(state: State, name: str, ids: Set[int]) -> int:
    """Put ``ids`` in group ``name``, making it if new; return how many joined."""
    made, held = state.groups.get(name, (datetime.now(timezone.utc), frozenset()))
    state.groups[name] = (made, held | ids)
    return len(ids - held)


def remove_members(state: State, name: str, ids: Set[int]) -> int:
    """Take ``ids`` out of the existing group ``name``; return how many left it."""
    made, held = require(state, name)
    state.groups[name] = (made, held - ids)
    return len(ids & held)


def delete_group(state: State, name: str) -> Group:
    before = group(state, name)
    del state.groups[name]
    return before


def forget_speaker(state: State, speaker_id: int) -> None:
    """Take a removed speaker out of every group."""
    state.groups = {g: (t, ids - {speaker_id}) for g, (t, ids) in state.groups.items()}


def marks_of(state: State) -> Marks:
    if state.marks is None:
        people = state.speakers.values()
        expiries = [p.expires_at for p in people if p.expires_at is not None]
        state.marks = Marks(
            frozenset(p.name for p in people if p.watchlist),
            min(expiries, default=None),
            {name: Members(sorted(held[1])) for name, held in state.groups.items()},
            len(state.speakers),
        )
    return state.marks
