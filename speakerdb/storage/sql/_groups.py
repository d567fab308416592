"""Groups in SQL (the SQLite and PostgreSQL backends; the policy is
:mod:`speakerdb.services._groups`), and the marks a search reads
(:mod:`speakerdb.storage._marks`).

Every change of a membership, a watchlist mark or an expiry bumps the
``marks_version`` counter, so that a search's cached marks are read again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ...types import Group
from .._marks import MARKS_COUNTER, Marks, Members
from .._rules import no_such_group
from ._catalog import bump_counter, require_speaker
from ._models import GroupMemberRow, GroupRow, SpeakerRow, as_utc, utcnow

__all__ = [
    "add_members",
    "bump_marks",
    "delete_group",
    "group_members",
    "groups_of",
    "list_groups",
    "read_marks",
    "remove_members",
]


def bump_marks(session: Session) -> None:
    """Record that a watchlist mark, an expiry or a group changed."""
    bump_counter(session, MARKS_COUNTER)


def list_groups(session: Session) -> list[Group]:
    members = _members_by_group(session)
    rows = session.scalars(select(GroupRow).order_by(GroupRow.name))
    return [Group(r.name, tuple(sorted(members.get(r.id, ()))), as_utc(r.created_at)) for r in rows]


def group_members(session: Session, group: str) -> list[str]:
    """The names of ``group``'s members, sorted; GroupNotFound if there is no such group."""
    row = _require_group(session, group)
    stmt = (
        select(SpeakerRow.name)
        .join(GroupMemberRow, GroupMemberRow.speaker_id == SpeakerRow.id)
        .where(GroupMemberRow.group_id == row.id)
    )
    return sorted(session.scalars(stmt))


def groups_of(
    session: Session, speaker_ids: Iterable[int] | None = None
) -> dict[int, tuple[str, ...]]:
    """Each speaker's groups by name (sorted), by speaker id; of ``speaker_ids`` only when given."""
    stmt = select(GroupMemberRow.speaker_id, GroupRow.name).join(
        GroupRow, GroupRow.id == GroupMemberRow.group_id
    )
    if speaker_ids is not None:
        stmt = stmt.where(GroupMemberRow.speaker_id.in_(list(speaker_ids)))
    found: dict[int, list[str]] = {}
    for speaker_id, name in session.execute(stmt):
        found.setdefault(int(speaker_id), []).append(str(name))
    return {i: tuple(sorted(names)) for i, names in found.items()}


def add_members(session: Session, group: str, names: Sequence[str]) -> int:
    """Put the speakers ``names`` in ``group``, made if new; return how many joined."""
    ids = [require_speaker(session, n).id for n in names]
    row = session.scalars(select(GroupRow).where(GroupRow.name == group)).first()
    if row is None:
        row = GroupRow(name=group, created_at=utcnow())
        session.add(row)
        session.flush()
    held = _member_ids(session, row.id)
    new = [i for i in dict.fromkeys(ids) if i not in held]
    session.add_all(GroupMemberRow(group_id=row.id, speaker_id=i) for i in new)
    session.flush()
    bump_marks(session)
    return len(new)


def remove_members(session: Session, group: str, names: Sequence[str]) -> int:
    """Take the speakers ``names`` out of ``group``; return how many were in it."""
    row = _require_group(session, group)
    ids = [require_speaker(session, n).id for n in names]
    result = session.execute(
        delete(GroupMemberRow).where(
            GroupMemberRow.group_id == row.id, GroupMemberRow.speaker_id.in_(ids)
        )
    )
    bump_marks(session)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delete_group(session: Session, group: str) -> Group:
    """Delete ``group`` (not its members' voiceprints); return it as it was."""
    row = _require_group(session, group)
    before = Group(row.name, tuple(group_members(session, group)), as_utc(row.created_at))
    session.delete(row)
    session.flush()
    bump_marks(session)
    return before


def read_marks(session: Session, names: Mapping[int, str]) -> Marks:
    """The marks a search needs, in three indexed reads; ``names`` is every speaker's
    name by id, read in the same transaction."""
    watched = session.scalars(select(SpeakerRow.id).where(SpeakerRow.watchlist == True))  # noqa: E712
    expiring = session.scalar(select(func.min(SpeakerRow.expires_at)))
    members: dict[str, list[int]] = {}
    by_id = {row.id: row.name for row in session.scalars(select(GroupRow))}
    for group_id, speaker_id in session.execute(
        select(GroupMemberRow.group_id, GroupMemberRow.speaker_id)
    ):
        members.setdefault(by_id[group_id], []).append(int(speaker_id))
    return Marks(
        frozenset(names[int(i)] for i in watched if int(i) in names),
        None if expiring is None else as_utc(expiring),
        {name: Members(members.get(name, [])) for name in by_id.values()},
        len(names),
    )


def _require_group(session: Session, group: str) -> GroupRow:
    row = session.scalars(select(GroupRow).where(GroupRow.name == group)).first()
    if row is None:
        raise no_such_group(group)
    return row


def _member_ids(session: Session, group_id: int) -> set[int]:
    stmt = select(GroupMemberRow.speaker_id).where(GroupMemberRow.group_id == group_id)
    return {int(i) for i in session.scalars(stmt)}


def _members_by_group(session: Session) -> dict[int, list[str]]:
    stmt = select(GroupMemberRow.group_id, SpeakerRow.name).join(
        SpeakerRow, SpeakerRow.id == GroupMemberRow.speaker_id
    )
    found: dict[int, list[str]] = {}
    for group_id, name in session.execute(stmt):
        found.setdefault(int(group_id), []).append(str(name))
    return found
