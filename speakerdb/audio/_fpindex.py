"""Index keys of acoustic fingerprints: find the stored clips a query may replay
without comparing it with every stored fingerprint.

:func:`~speakerdb.audio._fingerprint.best_matches` compares a query with every
alignment of every stored fingerprint: exact, but linear in the stored audio
(0.6 s for 1,000 stored 3 s clips). The replay check first asks the storage for
the few stored fingerprints that share the most *keys* with the query at one
time lag, and scores only those exactly.

A key is :data:`KEY_BITS` of a step's 32 bits, at fixed positions; there are
:data:`TABLES` such selections, so each loud step of a stored clip gives up to
:data:`TABLES` ``(key, step)`` rows (a step's selection counts when at least half
of its bits are loud). A copy of the clip shares a key wherever none of
those bits flipped; the query also probes, for each key, the keys with one of
its :data:`PROBES` weakest bits flipped (the energy differences closest to
zero, which noise flips first: Haitsma and Kalker's "soft" lookup). Votes are
counted per (stored clip, lag): a replay's hits line up at one lag, chance hits
scatter. The lookup reads the rarest of the query's keys first, within a budget of
stored rows (:data:`speakerdb.services._replay.ROWS_PER_KEY`): a key that many stored
steps share tells little, and reading it costs the most. The parameters were chosen on
one fold of the shared corpus's speakers and measured on the other
(``scripts/eval_replay.py``, which states the rules).
"""

from __future__ import annotations

import numpy as np

from ._fingerprint import Fingerprint, _popcount

__all__ = ["KEY_BITS", "PROBES", "STRIDE", "TABLES", "query_keys", "stored_keys"]

#: Bits per key: fewer survive noise better, more are more selective.
KEY_BITS = 16
#: Bit selections (hash tables) per step. Tables are added or dropped at the end: the
#: first four of the earlier eight are these four, so earlier rows stay valid.
TABLES = 4
#: Weakest bits of each query key flipped, one at a time, as extra probes.
PROBES = 3
#: A stored clip is indexed at every STRIDE-th step (the query at every step, so a copy
#: still meets it at its lag). Every step: at 5-10 dB SNR a 16-bit key survives at few
#: steps, and indexing every 4th (8 tables) left a noisy copy of a 1-3 s clip one or two
#: hits at its lag, fewer than chance gave other clips: the index lost copies that the
#: exact score would have caught (fold A: 94% of all copies detected, 69% at 5 dB white
#: noise; every step with 4 tables, twice the rows: 98%, 85%).
STRIDE = 1

# Fixed, seeded selections: stored keys must stay valid across versions (a new
# selection needs a re-index of the stored fingerprints, from their bytes).
_SELECTIONS = np.stack(
    [
        np.sort(np.random.default_rng(2026 + t).choice(32, KEY_BITS, replace=False))
        for t in range(TABLES)
    ]
).astype(np.uint32)
_PLACES = np.int64(1) << np.arange(KEY_BITS, dtype=np.int64)
_MIN_LOUD = KEY_BITS // 2


def stored_keys(printed: Fingerprint) -> np.ndarray:
    """The ``(key, step)`` rows a stored fingerprint is indexed by: int64 ``(n, 2)``."""
    rows = np.concatenate([_table_keys(printed, t)[0] for t in range(TABLES)])
    return rows[rows[:, 1] % STRIDE == 0]


def query_keys(printed: Fingerprint, margins: np.ndarray) -> np.ndarray:
    """The ``(key, step)`` rows a query looks up: its own keys, and each with one of its
    :data:`PROBES` weakest bits flipped. ``margins`` are
    :func:`~speakerdb.audio._fingerprint.fingerprint_with_margins`' second value."""
    rows = []
    for t in range(TABLES):
        keys, steps = _table_keys(printed, t)
        rows.append(keys)
        if not steps.size:
            continue
        weakest = np.argsort(margins[steps][:, _SELECTIONS[t]], axis=1)[:, :PROBES]
        for p in range(weakest.shape[1]):
            flipped = keys[:, 0] ^ _PLACES[weakest[:, p]]
            rows.append(np.stack([flipped, keys[:, 1]], axis=1))
    return np.concatenate(rows)


def _table_keys(printed: Fingerprint, table: int) -> tuple[np.ndarray, np.ndarray]:
    """Table ``table``'s ``(key, step)`` rows, and the steps they come from."""
    chosen = _SELECTIONS[table]
    wanted = np.uint32(int((np.uint32(1) << chosen).sum()))
    # A step counts when most of the key's bits are loud: requiring all of them left
    # narrow-band sounds (few loud bands) without any key.
    steps = np.flatnonzero(_popcount(printed.mask & wanted) >= _MIN_LOUD)
    bits = ((printed.bits[steps, None] >> chosen) & np.uint32(1)).astype(np.int64)
    keys = bits @ _PLACES + (np.int64(table) << KEY_BITS)
    return np.stack([keys, steps.astype(np.int64)], axis=1), steps
