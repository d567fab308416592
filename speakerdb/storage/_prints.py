"""The acoustic fingerprints a database keeps for its replay check, as the storage sees them.

A fingerprint (:mod:`speakerdb.audio._fingerprint`) is kept for every enrolled
clip (it goes with its utterance) and, while the replay window is open, for
every query the database decided (it goes with the speaker it named or was
claimed for, if any, and expires with the window). No audio is kept. Each comes
with its index keys (:mod:`speakerdb.audio._fpindex`): a backend looks up the
stored fingerprints that share the most keys with a query at one time lag
(:meth:`~speakerdb.storage.Snapshot.print_candidates`) without reading the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

__all__ = ["PrintHit", "StoredPrint", "best_lag_votes", "lag_votes"]


@dataclass(frozen=True, slots=True, eq=False)
class StoredPrint:
    """A fingerprint to store: an enrolled clip's (``utterance_id`` set) or a decided
    query's (``utterance_id`` ``None``; ``session`` is the caller's, if it gave one)."""

    data: bytes
    #: The index rows ``(key, step)``, int64 ``(n, 2)``.
    keys: np.ndarray
    time: datetime
    utterance_id: int | None = None
    speaker: str | None = None
    session: str | None = None


@dataclass(frozen=True, slots=True)
class PrintHit:
    """A stored fingerprint that shares keys with a query: its bytes, whether it is an
    enrolled clip's (else a recent query's), its speaker and its most keys at one lag."""

    id: int
    data: bytes
    enrolled: bool
    speaker: str | None
    votes: int


def best_lag_votes(ids: np.ndarray, lags: np.ndarray) -> dict[int, int]:
    """For each stored fingerprint, its most key hits at one lag, from one row per hit
    (the reference a backend without SQL uses)."""
    if not ids.size:
        return {}
    # Sorted by id then lag, each (id, lag) is a run and each id's runs are contiguous:
    # run lengths and a max per id, with no 2-D np.unique (several times slower).
    ids, lags = np.asarray(ids, np.int64), np.asarray(lags, np.int64)
    order = np.lexsort((lags, ids))
    ids, lags = ids[order], lags[order]
    new_id = np.r_[True, ids[1:] != ids[:-1]]
    runs = np.flatnonzero(new_id | np.r_[True, lags[1:] != lags[:-1]])
    counts = np.diff(np.r_[runs, ids.size])
    firsts = np.flatnonzero(new_id[runs])
    most = np.maximum.reduceat(counts, firsts)
    return dict(zip(ids[runs[firsts]].tolist(), most.tolist(), strict=True))


def lag_votes(query: np.ndarray, rows: np.ndarray) -> dict[int, int]:
    """Each stored fingerprint's most hits at one lag: ``query`` holds the query's
    ``(key, step)`` rows, ``rows`` the stored ``(print id, key, step)`` rows sharing a key
    with it (what a backend looked up by key)."""
    query = np.asarray(query, np.int64).reshape(-1, 2)
    rows = np.asarray(rows, np.int64).reshape(-1, 3)
    if not query.size or not rows.size:
        return {}
    order = np.argsort(query[:, 0], kind="stable")
    keys, steps = query[order, 0], query[order, 1]
    lo = np.searchsorted(keys, rows[:, 1], side="left")
    hi = np.searchsorted(keys, rows[:, 1], side="right")
    repeats = hi - lo
    # Every (stored row, query step with the same key) pair, as flat index arrays.
    row_of = np.repeat(np.arange(len(rows)), repeats)
    offsets = np.arange(row_of.size) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    query_step = steps[np.repeat(lo, repeats) + offsets]
    return best_lag_votes(rows[row_of, 0], rows[row_of, 2] - query_step)
