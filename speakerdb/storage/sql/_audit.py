"""The audit log's rows in SQL (the policy is :mod:`speakerdb.services._audit`).

Names are copied into each row, not linked, so that the log keeps what was
decided after a rename or a removal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from ...errors import DatabaseError
from ...types import AuditEntry, Outcome
from ._models import AuditRow, as_utc

__all__ = ["add_entries", "clear", "entries", "prune", "rewrite"]


def add_entries(session: Session, rows: Sequence[AuditEntry]) -> None:
    session.add_all([_row(entry) for entry in rows])
    session.flush()


def entries(session: Session, since: datetime, limit: int) -> list[AuditEntry]:
    stmt = (
        select(AuditRow)
        .where(AuditRow.created_at >= since)
        .order_by(AuditRow.id.desc())
        .limit(limit)
    )
    return [_entry(row) for row in session.scalars(stmt)]


def prune(session: Session, before: datetime, keep: int) -> None:
    """Delete entries older than ``before``, then all but the newest ``keep``."""
    session.execute(delete(AuditRow).where(AuditRow.created_at < before))
    oldest_kept = (
        select(AuditRow.id).order_by(AuditRow.id.desc()).offset(keep - 1).limit(1).scalar_subquery()
    )
    session.execute(delete(AuditRow).where(AuditRow.id < oldest_kept))


def rewrite(session: Session, name: str, replacement: str | None) -> int:
    """Replace ``name`` in the entries that name it, or delete them (``None``)."""
    naming = or_(AuditRow.claimed == name, AuditRow.identified == name)
    found = int(session.scalar(select(func.count(AuditRow.id)).where(naming)) or 0)
    if replacement is None:
        session.execute(delete(AuditRow).where(naming))
        return found
    for column in (AuditRow.claimed, AuditRow.identified):
        session.execute(update(AuditRow).where(column == name).values({column: replacement}))
    return found


def clear(session: Session) -> int:
    removed = int(session.scalar(select(func.count(AuditRow.id))) or 0)
    session.execute(delete(AuditRow))
    return removed


# The columns that hold an entry's fields under the same names.
_FIELDS = (
    "operation",
    "claimed",
    "identified",
    "score",
    "normalized",
    "threshold",
    "api_key",
    "countermeasure",
    "countermeasure_score",
)


def _row(entry: AuditEntry) -> AuditRow:
    same: dict[str, Any] = {name: getattr(entry, name) for name in _FIELDS}
    return AuditRow(
        created_at=entry.time, accepted=entry.accepted, outcome=entry.outcome.value, **same
    )


def _entry(row: AuditRow) -> AuditEntry:
    same: dict[str, Any] = {name: getattr(row, name) for name in _FIELDS}
    return AuditEntry(
        id=row.id,
        time=as_utc(row.created_at),
        accepted=bool(row.accepted),
        outcome=_outcome(row.outcome),
        **same,
    )


def _outcome(text: str) -> Outcome:
    try:
        return Outcome(text)
    except ValueError:
        raise DatabaseError(
            f"the audit log holds an unknown outcome {text[:40]!r}; the database is damaged: "
            "restore it from a backup, or empty the log with `speakerdb audit clear`"
        ) from None
