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

__all__ = ["PrintHit", "StoredPrint", "best_lag_votes"]


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
    pairs, counts = np.unique(np.stack([ids, lags], axis=1), axis=0, return_counts=True)
    best: dict[int, int] = {}
    for (print_id, _lag), n in zip(pairs.tolist(), counts.tolist(), strict=True):
        best[print_id] = max(best.get(print_id, 0), n)
    return best
