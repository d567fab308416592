"""The optional audit log of identify and verify decisions.

Off by default: unless auditing is turned on (:meth:`SpeakerDB.set_audit
<speakerdb.SpeakerDB.set_audit>`, ``speakerdb audit on``), speakerdb keeps no
trace of queries and writes nothing when it answers one. When it is on, every
decision of ``identify``, ``identify_many`` and ``verify`` is written to the
``audit`` table by the process that made it, before the result is returned:
the time (UTC), the operation, the claimed speaker (verify), the identified
speaker, the raw cosine score (and the AS-norm score when that decided), the
threshold and the decision. Clips, their file names and embeddings are never
logged.

Retention: every logged decision and every change of the settings first
deletes the entries older than ``retention_days``, then all but the newest
``max_rows``; listing never shows an entry past its retention. The database
runs with ``secure_delete`` and deleted entries are overwritten.

Failure is closed. While auditing is on, a decision that cannot be logged
(the database locked past the busy timeout, a read-only file, a full disk) is
not returned: the query raises :class:`~speakerdb.errors.DatabaseError`. A
caller that grants access on a decision must not act on one that left no
trace; to query a database that cannot be written, turn auditing off.

Entries outlive the speakers they name: removing or renaming a speaker leaves
the log as it was (names and scores, never voiceprints). ``clear`` empties it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ...errors import DatabaseError, InputError
from ...types import AuditEntry, AuditSettings, Identification, Verification
from . import _catalog as catalog
from ._store import AuditRow, Store, as_utc, utcnow

__all__ = ["DEFAULT_MAX_ROWS", "DEFAULT_RETENTION_DAYS", "AuditLog"]

log = logging.getLogger(__name__)

#: How long entries are kept unless set otherwise.
DEFAULT_RETENTION_DAYS = 30
#: How many entries are kept at most unless set otherwise.
DEFAULT_MAX_ROWS = 100_000
_LIMITS = {"retention_days": 36_500, "max_rows": 1_000_000_000}


class AuditLog:
    """The audit log of one database. Each method runs its own transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def settings(self) -> AuditSettings:
        with self._store.read() as session:
            return _read_settings(session)

    def configure(
        self, enabled: bool, retention_days: int | None = None, max_rows: int | None = None
    ) -> AuditSettings:
        """Turn logging on or off; limits left ``None`` keep their stored value or default."""
        if not isinstance(enabled, bool):
            raise InputError(f"audit enabled must be True or False, got {enabled!r}")
        days = _limit(retention_days, "retention_days")
        rows = _limit(max_rows, "max_rows")
        with self._store.write() as session:
            current = _read_settings(session)
            settings = AuditSettings(
                enabled, days or current.retention_days, rows or current.max_rows
            )
            catalog.set_setting(session, "audit", "on" if enabled else "off")
            catalog.set_setting(session, "audit_retention_days", str(settings.retention_days))
            catalog.set_setting(session, "audit_max_rows", str(settings.max_rows))
            _prune(session, settings, utcnow())
        log.info("audit log %s: %s", "on" if enabled else "off", settings)
        return settings

    def entries(self, limit: int | None = None) -> list[AuditEntry]:
        """Logged decisions within retention, newest first, at most ``limit`` of them."""
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise InputError(f"limit must be a positive number of entries, got {limit!r}")
        with self._store.read() as session:
            settings = _read_settings(session)
            stmt = (
                select(AuditRow)
                .where(AuditRow.created_at >= _cutoff(settings, utcnow()))
                .order_by(AuditRow.id.desc())
                .limit(min(limit or settings.max_rows, settings.max_rows))
            )
            return [_entry(row) for row in session.scalars(stmt)]

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        with self._store.write() as session:
            removed = int(session.scalar(select(func.count(AuditRow.id))) or 0)
            session.execute(delete(AuditRow))
        return removed

    def log_identifications(self, results: list[Identification]) -> list[Identification]:
        """Log identify decisions if auditing is on and return them; DatabaseError if it fails."""
        now = utcnow()
        self._record([_identification_row(result, now) for result in results])
        return results

    def log_verification(self, result: Verification) -> Verification:
        """Log a verify decision if auditing is on and return it; DatabaseError if it fails."""
        self._record([_verification_row(result, utcnow())])
        return result

    def _record(self, rows: list[AuditRow]) -> None:
        if not rows:
            return
        # One read when auditing is off: the default writes nothing at all.
        with self._store.read() as session:
            if catalog.get_setting(session, "audit") != "on":
                return
        try:
            with self._store.write() as session:
                settings = _read_settings(session)
                if not settings.enabled:  # turned off meanwhile
                    return
                session.add_all(rows)
                session.flush()
                _prune(session, settings, rows[-1].created_at)
        except DatabaseError as exc:
            # The same class: a busy database stays DatabaseBusy (retrying may work).
            raise type(exc)(
                f"{exc}; auditing is on and the decision could not be logged, so it is not "
                "given: make the database writable and retry, or turn auditing off "
                "(`speakerdb audit off`)"
            ) from exc


def _read_settings(session: Session) -> AuditSettings:
    return AuditSettings(
        enabled=catalog.get_setting(session, "audit") == "on",
        retention_days=_stored_limit(session, "retention_days", DEFAULT_RETENTION_DAYS),
        max_rows=_stored_limit(session, "max_rows", DEFAULT_MAX_ROWS),
    )


def _stored_limit(session: Session, name: str, default: int) -> int:
    text = catalog.get_setting(session, f"audit_{name}")
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= _LIMITS[name]:
        log.warning("stored audit %s %r is not valid; using %d", name, text, default)
        return default
    return value


def _limit(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    top = _LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise InputError(f"audit {name} must be a whole number from 1 to {top}, got {value!r}")
    return value


def _cutoff(settings: AuditSettings, now: datetime) -> datetime:
    return now - timedelta(days=settings.retention_days)


def _prune(session: Session, settings: AuditSettings, now: datetime) -> None:
    """Delete entries past retention: older than the cutoff, or beyond the newest max_rows."""
    session.execute(delete(AuditRow).where(AuditRow.created_at < _cutoff(settings, now)))
    oldest_kept = (
        select(AuditRow.id)
        .order_by(AuditRow.id.desc())
        .offset(settings.max_rows - 1)
        .limit(1)
        .scalar_subquery()
    )
    session.execute(delete(AuditRow).where(AuditRow.id < oldest_kept))


def _identification_row(result: Identification, now: datetime) -> AuditRow:
    best = result.best
    return AuditRow(
        created_at=now,
        operation="identify",
        claimed=None,
        identified=best.speaker if best is not None else None,
        score=best.score if best is not None else None,
        normalized=best.normalized if best is not None else None,
        threshold=result.threshold,
        accepted=result.accepted,
    )


def _verification_row(result: Verification, now: datetime) -> AuditRow:
    return AuditRow(
        created_at=now,
        operation="verify",
        claimed=result.speaker,
        identified=result.speaker,
        score=result.score,
        normalized=result.normalized,
        threshold=result.threshold,
        accepted=result.accepted,
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
