"""The audit log's rows in SQLite (the policy is :mod:`speakerdb.services._audit`).

Names are copied into each row, not linked, so that the log keeps what was
decided after a rename or a removal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ...types import AuditEntry
from ._store import AuditRow, as_utc

__all__ = ["add_entries", "clear", "entries", "prune"]


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


def clear(session: Session) -> int:
    removed = int(session.scalar(select(func.count(AuditRow.id))) or 0)
    session.execute(delete(AuditRow))
    return removed


def _row(entry: AuditEntry) -> AuditRow:
    return AuditRow(
        created_at=entry.time,
        operation=entry.operation,
        claimed=entry.claimed,
        identified=entry.identified,
        score=entry.score,
        normalized=entry.normalized,
        threshold=entry.threshold,
        accepted=entry.accepted,
    )


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        time=as_utc(row.created_at),
        operation=row.operation,
        claimed=row.claimed,
        identified=row.identified,
        score=row.score,
        normalized=row.normalized,
        threshold=row.threshold,
        accepted=bool(row.accepted),
    )
