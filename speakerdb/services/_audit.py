"""The optional audit log of identify and verify decisions.

Off by default: unless auditing is turned on (:meth:`SpeakerDB.set_audit
<speakerdb.SpeakerDB.set_audit>`, ``speakerdb audit on``), speakerdb keeps no
trace of queries and writes nothing when it answers one. When it is on, every
decision of ``identify``, ``identify_many`` and ``verify`` is written to the
storage (:meth:`~speakerdb.storage.Change.add_audit`) by the process that made
it, before the result is returned:
the time (UTC), the operation, the claimed speaker (verify), the identified
speaker, the raw cosine score (and the normalised score when one decided), the
threshold, the decision and its outcome (``accepted``, ``rejected``, ``unknown``,
``not_enough_speech`` or ``replay``: :class:`~speakerdb.types.Outcome`). Clips,
their file names and embeddings are never logged.

Retention: every logged decision and every change of the settings first
deletes the entries older than ``retention_days``, then all but the newest
``max_rows``; listing never shows an entry past its retention. The database
runs with ``secure_delete`` and deleted entries are overwritten.

Failure is closed. While auditing is on, a decision that cannot be logged
(the database locked past the busy timeout, a read-only file, a full disk) is
not returned: the query raises :class:`~speakerdb.errors.DatabaseError`. A
caller that grants access on a decision must not act on one that left no
trace; to query a database that cannot be written, turn auditing off.

A front end serving many callers (``speakerdb serve``) names the caller of the
decisions made in a block with :meth:`AuditLog.asked_by`; each entry keeps that
name (``api_key``).

Entries outlive the speakers they name: renaming a speaker leaves the log as it
was (names and scores, never voiceprints); removing one renames them
``removed-<id>`` in it, or deletes their entries
(:mod:`speakerdb.services._retention`). ``clear`` empties it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import DatabaseError, Fix, InputError
from ..storage._protocol import Change, Storage
from ..types import AuditEntry, AuditSettings, Identification, Verification

__all__ = ["DEFAULT_MAX_ROWS", "DEFAULT_RETENTION_DAYS", "AuditLog"]

log = logging.getLogger(__name__)

#: How long entries are kept unless set otherwise.
DEFAULT_RETENTION_DAYS = 30
#: How many entries are kept at most unless set otherwise.
DEFAULT_MAX_ROWS = 100_000
_LIMITS = {"retention_days": 36_500, "max_rows": 1_000_000_000}
# Who asks for the decisions made in this thread or task (AuditLog.asked_by).
_ASKED_BY: ContextVar[str | None] = ContextVar("speakerdb_asked_by", default=None)


class AuditLog:
    """The audit log of one database. Each method runs its own transaction."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @staticmethod
    @contextmanager
    def asked_by(key_name: str | None) -> Iterator[None]:
        """Log the decisions made in this block (in this thread or task) as asked by the
        service key ``key_name``."""
        token = _ASKED_BY.set(key_name)
        try:
            yield
        finally:
            _ASKED_BY.reset(token)

    def settings(self) -> AuditSettings:
        with self._storage.read() as snapshot:
            return _read_settings(snapshot.settings())

    def configure(
        self, enabled: bool, retention_days: int | None = None, max_rows: int | None = None
    ) -> AuditSettings:
        """Turn logging on or off; limits left ``None`` keep their stored value or default."""
        if not isinstance(enabled, bool):
            raise InputError(f"audit enabled must be True or False, got {enabled!r}")
        days = _limit(retention_days, "retention_days")
        rows = _limit(max_rows, "max_rows")
        with self._storage.change() as change:
            current = _read_settings(change.settings())
            settings = AuditSettings(
                enabled, days or current.retention_days, rows or current.max_rows
            )
            change.set_setting("audit", "on" if enabled else "off")
            change.set_setting("audit_retention_days", str(settings.retention_days))
            change.set_setting("audit_max_rows", str(settings.max_rows))
            _prune(change, settings, utcnow())
        log.info("audit log %s: %s", "on" if enabled else "off", settings)
        return settings

    def entries(self, limit: int | None = None) -> list[AuditEntry]:
        """Logged decisions within retention, newest first, at most ``limit`` of them."""
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise InputError(f"limit must be a positive number of entries, got {limit!r}")
        with self._storage.read() as snapshot:
            settings = _read_settings(snapshot.settings())
            since = _cutoff(settings, utcnow())
            return snapshot.audit_entries(since, min(limit or settings.max_rows, settings.max_rows))

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        with self._storage.change() as change:
            return change.clear_audit()

    def log_identifications(self, results: list[Identification]) -> list[Identification]:
        """Log identify decisions if auditing is on and return them; DatabaseError if it fails."""
        now = utcnow()
        self._record([_identification_entry(result, now) for result in results])
        return results

    def log_verification(self, result: Verification) -> Verification:
        """Log a verify decision if auditing is on and return it; DatabaseError if it fails."""
        self._record([_verification_entry(result, utcnow())])
        return result

    def _record(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        # One read when auditing is off: the default writes nothing at all.
        with self._storage.read() as snapshot:
            if snapshot.settings().get("audit") != "on":
                return
        try:
            with self._storage.change() as change:
                settings = _read_settings(change.settings())
                if not settings.enabled:  # turned off meanwhile
                    return
                change.add_audit(entries)
                _prune(change, settings, entries[-1].time)
        except DatabaseError as exc:
            # The same class: a busy database stays DatabaseBusy (retrying may work).
            raise type(exc)(
                f"{exc}; auditing is on and the decision could not be logged, so it is not given",
                fix=Fix.AUDIT_OFF,
            ) from exc


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _read_settings(stored: Mapping[str, str]) -> AuditSettings:
    return AuditSettings(
        enabled=stored.get("audit") == "on",
        retention_days=_stored_limit(stored, "retention_days", DEFAULT_RETENTION_DAYS),
        max_rows=_stored_limit(stored, "max_rows", DEFAULT_MAX_ROWS),
    )


def _stored_limit(stored: Mapping[str, str], name: str, default: int) -> int:
    text = stored.get(f"audit_{name}")
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


def _prune(change: Change, settings: AuditSettings, now: datetime) -> None:
    """Delete entries past retention: older than the cutoff, or beyond the newest max_rows."""
    change.prune_audit(_cutoff(settings, now), settings.max_rows)


def _countermeasure(result: Identification | Verification) -> dict[str, Any]:
    judged = result.countermeasure
    if judged is None:
        return {}
    return {"countermeasure": judged.name, "countermeasure_score": judged.score}


def _identification_entry(result: Identification, now: datetime) -> AuditEntry:
    best = result.best
    return AuditEntry(
        id=0,
        time=now,
        operation="identify",
        claimed=None,
        identified=best.speaker if best is not None else None,
        score=best.score if best is not None else None,
        normalized=best.normalized if best is not None else None,
        threshold=result.threshold,
        accepted=result.accepted,
        outcome=result.outcome,
        api_key=_ASKED_BY.get(),
        **_countermeasure(result),
    )


def _verification_entry(result: Verification, now: datetime) -> AuditEntry:
    return AuditEntry(
        id=0,
        time=now,
        operation="verify",
        claimed=result.speaker,
        identified=result.speaker,
        score=result.score,
        normalized=result.normalized,
        threshold=result.threshold,
        accepted=result.accepted,
        outcome=result.outcome,
        api_key=_ASKED_BY.get(),
        **_countermeasure(result),
    )
