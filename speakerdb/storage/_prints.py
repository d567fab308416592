"""The acoustic fingerprints a database keeps for its replay check, as the storage sees them.

A fingerprint (:mod:`speakerdb.audio._fingerprint`) is kept for every enrolled
clip (it goes with its utterance) and, while the replay window is open, for
every query the database decided (it goes with the speaker it named or was
claimed for, if any, and expires with the window). No audio is kept. Each comes
with its index keys (:mod:`speakerdb.audio._fpindex`): a backend looks up the
stored fingerprints that share the most keys with a query at one time lag
(:meth:`~speakerdb.storage.Snapshot.print_candidates`) without reading the others.

Common keys are read last: a key that many stored steps share tells little about which
clip a query copies, and reading every stored row of every key the query probes cost
about 10 rows per stored 3 s clip. A lookup given a budget of rows reads the keys with
the fewest stored rows first and stops before the budget is exceeded
(:func:`affordable_keys`), so its cost stays bounded as the stored clips grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

__all__ = [
    "PrintHit",
    "StoredPrint",
    "affordable_keys",
    "best_lag_votes",
    "lag_votes",
    "ranked_by_votes",
]


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


def affordable_keys(keys: np.ndarray, counts: np.ndarray, rows: int | None) -> np.ndarray:
    """The keys a lookup reads: of ``keys`` (each with ``counts`` stored rows), those with
    the fewest rows first (ties by key), as many as fit within ``rows`` rows in all; every
    key when ``rows`` is ``None``. The rule every backend applies."""
    keys = np.asarray(keys, np.int64)
    if rows is None:
        return keys
    order = np.lexsort((keys, np.asarray(counts, np.int64)))
    # The running total only grows, so the keys within the budget are a prefix.
    within = np.cumsum(np.asarray(counts, np.int64)[order]) <= rows
    return keys[order[within]]


def best_lag_votes(ids: np.ndarray, lags: np.ndarray) -> dict[int, int]:
    """For each stored fingerprint, its most key hits at one lag, from one row per hit
    (the reference a backend without SQL uses)."""
    if not ids.size:
        return {}
    # One sort of a single int64 code per hit, (dense id, lag): each (id, lag) is a run and
    # each id's runs are contiguous, so run lengths and a max per id give the votes (a
    # lexsort of the two columns took most of a lookup's vote count).
    ids, lags = np.asarray(ids, np.int64), np.asarray(lags, np.int64)
    low = int(lags.min())
    span = int(lags.max()) - low + 1
    owners = None
    if int(ids.min()) < 0 or int(ids.max()) >= (1 << 62) // span:  # the code would overflow
        owners, ids = np.unique(ids, return_inverse=True)
    codes = np.sort(ids.reshape(-1) * span + (lags - low))
    runs = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[runs, codes.size])
    run_owner = codes[runs] // span
    firsts = np.flatnonzero(np.r_[True, run_owner[1:] != run_owner[:-1]])
    most = np.maximum.reduceat(counts, firsts)
    voted = run_owner[firsts] if owners is None else owners[run_owner[firsts]]
    return dict(zip(voted.tolist(), most.tolist(), strict=True))


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


def ranked_by_votes(votes: dict[int, int]) -> list[int]:
    """The fingerprints of ``votes``, the most votes first (ties: the lower id first)."""
    if not votes:
        return []
    ids = np.fromiter(votes.keys(), np.int64, len(votes))
    counts = np.fromiter(votes.values(), np.int64, len(votes))
    return ids[np.lexsort((ids, -counts))].tolist()
