"""Idle expiry: a voiceprint that has not matched for N days is deleted (off by default).

``speakerdb retention --idle-days N`` (``lifecycle.set_idle_days``) turns it on; 0
turns it off. The clock starts when it is turned on: no one is deleted for being
idle before N days have passed since, whatever their last match.

**Recording the last match.** Each speaker's ``last_match_at`` is their enrollment
until a query accepts them (an identify names them, a verify accepts their claim).
A query never waits for that record: :class:`LastMatches` hears each decision (it is
one of the pre-decision checks, :mod:`speakerdb.services._checks`, which never
answers), and a background thread writes the names heard, in one small transaction,
only where the stored value is more than a day old (:data:`PERIOD`), so each speaker
costs at most one write a day, whatever the number of queries; within a process, a
name written in the last day is not even queued. A failed write is logged and
forgotten (the next match tries again); it never fails a query. Recording is always
on, so that turning idle expiry on later counts from real matches.

**Deleting.** The expiry sweep (:func:`speakerdb.services._retention.expire_due`:
``speakerdb expire``, and every query that finds an expiry date due) removes idle
speakers as it removes expired ones: their audit entries name them ``removed-<id>``.
Schedule ``speakerdb expire`` daily: queries do not look for idle speakers (that would
cost each one a read); a speaker idle past the limit is deleted by the next sweep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..errors import InputError
from ..types import Outcome

if TYPE_CHECKING:
    from ..storage import Snapshot, Storage
    from ._checks import Query, Verdict

__all__ = ["PERIOD", "LastMatches", "idle_due", "idle_setting", "utcnow"]

log = logging.getLogger(__name__)

#: The last match is written at most once per speaker in this time.
PERIOD = timedelta(days=1)
#: The longest idle limit accepted (10 years).
MAX_IDLE_DAYS = 3650
_DAYS, _SINCE = "idle_days", "idle_since"


def utcnow() -> datetime:
    """The clock of idle expiry (tests replace it)."""
    return datetime.now(timezone.utc)


def idle_setting(snapshot: Snapshot) -> tuple[int | None, datetime | None]:
    """The idle limit in days (``None``: off) and when it was turned on."""
    stored = snapshot.settings()
    days = int(stored.get(_DAYS) or 0)
    since = stored.get(_SINCE)
    return (days or None), (datetime.fromisoformat(since) if since else None)


def check_idle_days(days: int) -> int:
    if not 0 <= days <= MAX_IDLE_DAYS:
        raise InputError(
            f"--idle-days is a number of days from 1 to {MAX_IDLE_DAYS} (0 turns it off), "
            f"got {days}"
        )
    return days


def set_idle_days(storage: Storage, days: int) -> int | None:
    """Store the idle limit (0: off); the clock starts now when it is turned on."""
    days = check_idle_days(days)
    with storage.change() as change:
        before = int(change.settings().get(_DAYS) or 0)
        change.set_setting(_DAYS, str(days))
        if days and not before:
            change.set_setting(_SINCE, utcnow().isoformat())
    return days or None


def idle_due(snapshot: Snapshot, now: datetime) -> list[str]:
    """The speakers idle for longer than the limit at ``now`` (none while it is off)."""
    days, since = idle_setting(snapshot)
    if days is None:
        return []
    cutoff = now - timedelta(days=days)
    if since is not None and since > cutoff:
        return []  # the clock started less than `days` ago
    return snapshot.idle(cutoff)


class LastMatches:
    """Records accepted matches off the queries' path (see the module's docstring).

    A :class:`~speakerdb.services._checks.QueryCheck` that never answers."""

    def __init__(self, storage: Storage, clock: Callable[[], datetime] | None = None) -> None:
        self._storage = storage
        self._clock = clock or (lambda: utcnow())
        self._written: dict[str, datetime] = {}  # by this process, per name
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def check(self, query: Query) -> Verdict | None:
        return None

    def decided(self, query: Query, outcome: Outcome) -> None:
        if outcome is not Outcome.ACCEPTED or query.named is None:
            return
        now = self._clock()
        with self._lock:
            last = self._written.get(query.named)
            if last is not None and now - last < PERIOD:
                return
            self._written[query.named] = now
            self._pending.add(query.named)
            if self._worker is None:
                # Not a daemon: a command that ends right after its query still writes.
                self._worker = threading.Thread(target=self._drain, name="speakerdb-last-match")
                self._worker.start()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the names heard so far are written (or ``timeout`` passes)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def _drain(self) -> None:
        while True:
            with self._lock:
                names = sorted(self._pending)
                self._pending.clear()
                if not names:
                    self._worker = None
                    return
            self._write(names)

    def _write(self, names: list[str]) -> None:
        now = self._clock()
        try:
            with self._storage.change() as change:
                change.record_matches(names, now, now - PERIOD)
        except Exception as exc:  # never a query's failure: the next match tries again
            log.warning("could not record the last match of %d speaker(s): %s", len(names), exc)
            with self._lock:
                for name in names:
                    self._written.pop(name, None)
