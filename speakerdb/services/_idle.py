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
It runs by itself: the same background thread sweeps after a process's first query
and then at most once every :data:`SWEEP_EVERY`, so a running service or application
deletes an idle voiceprint within the hour after its limit passes, without a query
ever waiting for it. A speaker idle past the limit may still be matched in that hour
(the limit is counted in days); ``speakerdb expire`` sweeps at once, for sites whose
processes run rarely.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..errors import InputError
from ..types import Outcome

if TYPE_CHECKING:
    from ..storage import Snapshot, Storage
    from ._checks import Query, Verdict

__all__ = ["PERIOD", "SWEEP_EVERY", "LastMatches", "idle_due", "idle_setting", "utcnow"]

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


#: How often a process sweeps for idle voiceprints, after its queries.
SWEEP_EVERY = timedelta(hours=1)


class LastMatches:
    """Records accepted matches, and sweeps idle voiceprints, off the queries' path (see
    the module's docstring).

    A :class:`~speakerdb.services._checks.QueryCheck` that never answers."""

    def __init__(
        self,
        storage: Storage,
        sweep: Callable[[datetime], object] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``sweep(now)`` is the expiry sweep (the facade passes
        :func:`speakerdb.services._retention.expire_due`; ``None``: no sweeping)."""
        self._storage = storage
        self._sweep_due = sweep
        self._clock = clock or (lambda: utcnow())
        self._written: dict[str, datetime] = {}  # by this process, per name
        self._pending: set[str] = set()
        self._swept: datetime | None = None  # when this process last swept
        self._sweep = False  # a sweep is queued for the worker
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        _RECORDERS.add(self)

    def _forget_parent(self) -> None:
        """In a forked child: the parent's worker does not run here, and its lock may
        have been held at the fork; start afresh (what was pending is the parent's)."""
        self._lock = threading.Lock()
        self._worker = None
        self._pending = set()
        self._sweep = False

    def check(self, query: Query) -> Verdict | None:
        return None

    def decided(self, query: Query, outcome: Outcome) -> None:
        now = self._clock()
        with self._lock:
            if self._swept is None or now - self._swept >= SWEEP_EVERY:
                self._swept, self._sweep = now, True
                self._start()
            if outcome is not Outcome.ACCEPTED or query.named is None:
                return
            last = self._written.get(query.named)
            if last is not None and now - last < PERIOD:
                return
            self._written[query.named] = now
            self._pending.add(query.named)
            self._start()

    def _start(self) -> None:
        """Start the worker unless it runs (with the lock held)."""
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
                sweep, self._sweep = self._sweep, False
                if not names and not sweep:
                    self._worker = None
                    return
            if names:
                self._write(names)
            if sweep:
                self._expire()

    def _expire(self) -> None:
        """The expiry sweep, idle speakers included; a failure waits for the next one."""
        if self._sweep_due is None:
            return
        try:
            self._sweep_due(self._clock())
        except Exception as exc:  # never a query's failure
            log.warning("could not sweep expired and idle voiceprints: %s", exc)

    def _write(self, names: list[str]) -> None:
        now = self._clock()
        try:
            # A read first: most names were recorded within the day (by another process,
            # or before this one started), and a read takes no write lock.
            with self._storage.read() as snapshot:
                due = [n for n in names if _stale(snapshot, n, now - PERIOD)]
            if not due:
                return
            with self._storage.change() as change:
                change.record_matches(due, now, now - PERIOD)
        except Exception as exc:  # never a query's failure: the next match tries again
            log.warning("could not record the last match of %d speaker(s): %s", len(names), exc)
            with self._lock:
                for name in names:
                    self._written.pop(name, None)


#: Every recorder of this process, for :func:`_after_fork`.
_RECORDERS: weakref.WeakSet[LastMatches] = weakref.WeakSet()


def _stale(snapshot: Snapshot, name: str, older_than: datetime) -> bool:
    from ..errors import SpeakerNotFound

    try:
        last = snapshot.speaker(name).last_match_at
    except SpeakerNotFound:
        return False  # removed meanwhile
    return last is None or last < older_than


def _before_fork() -> None:
    # A connection the worker holds at the fork would stay locked in the child (SQLite's
    # locks are per process: see speakerdb.storage.sqlite._store): let it finish first.
    for recorder in list(_RECORDERS):
        recorder.flush(timeout=35)


def _after_fork() -> None:
    for recorder in list(_RECORDERS):
        recorder._forget_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork)
