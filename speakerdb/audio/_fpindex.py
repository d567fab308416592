"""Index keys of acoustic fingerprints: find the stored clips a query may replay
without comparing it with every stored fingerprint.

:func:`~speakerdb.audio._fingerprint.best_matches` compares a query with every
alignment of every stored fingerprint: exact, but linear in the stored audio
(0.6 s for 1,000 stored 3 s clips). The replay check first asks the storage for
the few stored fingerprints that share the most *keys* with the query at one
time lag, and scores only those exactly.

A key is some of a step's bits at fixed positions (a *selection*); each version of
the fingerprint has its own selections (:data:`SELECTIONS`), so each loud step of a
stored clip gives up to one ``(key, step)`` row per selection (a selection counts when
at least half of its bits are loud). A copy of the clip shares a key wherever none of
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

from ._fingerprint import VERSIONS, Fingerprint, _plan_bits, _popcount

__all__ = ["PROBES", "SELECTIONS", "STRIDE", "key_range", "query_keys", "stored_keys"]

#: Weakest bits of each query key flipped, one at a time, as extra probes.
PROBES = 3
#: A stored clip is indexed at every STRIDE-th step (the query at every step, so a copy
#: still meets it at its lag). Every step: at 5-10 dB SNR a 16-bit key survives at few
#: steps, and indexing every 4th (8 tables) left a noisy copy of a 1-3 s clip one or two
#: hits at its lag, fewer than chance gave other clips: the index lost copies that the
#: exact score would have caught (fold A: 94% of all copies detected, 69% at 5 dB white
#: noise; every step with 4 tables, twice the rows: 98%, 85%).
STRIDE = 1


def _seeded(bits: int, key_bits: int, tables: int) -> list[np.ndarray]:
    """Version 1's selections: ``key_bits`` of the 32 bits at random, seeded (fixed)."""
    return [
        np.sort(np.random.default_rng(2026 + t).choice(bits, key_bits, replace=False))
        for t in range(tables)
    ]


def _bands_in_a_row(bits: int, key_bits: int, stride: int) -> list[np.ndarray]:
    """Version 2's selections: ``key_bits`` adjacent bits, one every ``stride`` bits."""
    return [np.arange(s, s + key_bits) for s in range(0, bits - key_bits + 1, stride)]


#: Each fingerprint version's selections, one array of bit positions per table: fixed,
#: since stored keys must stay valid across releases (a table's selection never changes;
#: a new one gets a new table number, and prints stored before it lack its rows). Version
#: 1: 16 of its 32 bits at random, 4 tables (chosen on fold A of scripts/eval_replay.py
#: among 4, 8 and 16 tables). Version 2: 12 adjacent bits (bands), a table every 6 (7
#: tables), then 16 adjacent bits, a table every 4 (9 more). Only a quarter of version 2's
#: bits are loud at a step, gathered in the bands of a formant, so random selections were
#: seldom half loud and a noisy copy kept few keys at its lag (88-93% of the design set's
#: copies found, against 99.6% by exact scores; scripts/eval_fingerprint_v2.py). The
#: 12-bit keys find copies in a small database (99.2%) but are shared by many steps of
#: other clips among thousands (87.8% with 2,563 other clips stored); 16-bit keys are
#: selective there (95.7%) but fewer survive noise (97.4% alone). Both: 99.4% and 95.7%
#: (scripts/eval_fpindex_v2.py, which states the rule and the test).
SELECTIONS = {
    1: _seeded(32, 16, 4),
    2: _bands_in_a_row(_plan_bits(2), 12, 6) + _bands_in_a_row(_plan_bits(2), 16, 4),
}
# Each version numbers its tables after the earlier versions', and a key holds its table
# above its bits (at most 16), so that a key of one version never meets a row of another.
_FIRST_TABLE = {
    version: sum(len(SELECTIONS[older]) for older in VERSIONS if older < version)
    for version in VERSIONS
}
_TABLE_SHIFT = 16


def stored_keys(printed: Fingerprint) -> np.ndarray:
    """The ``(key, step)`` rows a stored fingerprint is indexed by: int64 ``(n, 2)``."""
    tables = len(SELECTIONS[printed.version])
    rows = np.concatenate([_table_keys(printed, t)[0] for t in range(tables)])
    return rows[rows[:, 1] % STRIDE == 0]


def query_keys(printed: Fingerprint, margins: np.ndarray) -> np.ndarray:
    """The ``(key, step)`` rows a query looks up: its own keys, and each with one of its
    :data:`PROBES` weakest bits flipped. ``margins`` are
    :func:`~speakerdb.audio._fingerprint.fingerprint_with_margins`' second value."""
    rows = []
    for t, chosen in enumerate(SELECTIONS[printed.version]):
        keys, steps = _table_keys(printed, t)
        rows.append(keys)
        if not steps.size:
            continue
        weakest = np.argsort(margins[steps][:, chosen], axis=1)[:, :PROBES]
        for p in range(weakest.shape[1]):
            flipped = keys[:, 0] ^ (np.int64(1) << weakest[:, p].astype(np.int64))
            rows.append(np.stack([flipped, keys[:, 1]], axis=1))
    return np.concatenate(rows)


def key_range(version: int) -> tuple[int, int]:
    """The keys of ``version``, stored or probed, are ``low <= key < high``: its tables'
    numbers above the key's bits (a storage that holds no row in this range holds no
    print of that version a lookup could find)."""
    first = _FIRST_TABLE[version]
    return first << _TABLE_SHIFT, (first + len(SELECTIONS[version])) << _TABLE_SHIFT


def _table_keys(printed: Fingerprint, table: int) -> tuple[np.ndarray, np.ndarray]:
    """Table ``table``'s ``(key, step)`` rows (of the print's version), and the steps
    they come from."""
    word = printed.bits.dtype.type
    chosen = SELECTIONS[printed.version][table].astype(word)
    wanted = word(int((word(1) << chosen).sum()))
    # A step counts when most of the key's bits are loud: requiring all of them left
    # narrow-band sounds (few loud bands) without any key.
    steps = np.flatnonzero(_popcount(printed.mask & wanted) >= chosen.size // 2)
    bits = ((printed.bits[steps, None] >> chosen) & word(1)).astype(np.int64)
    places = np.int64(1) << np.arange(chosen.size, dtype=np.int64)
    keys = bits @ places + (np.int64(_FIRST_TABLE[printed.version] + table) << _TABLE_SHIFT)
    return np.stack([keys, steps.astype(np.int64)], axis=1), steps
