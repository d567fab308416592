"""A query's lookup as ``scripts/eval_replay.py`` measures it (evaluation only): a
temporary database of kept fingerprints, the replay check's best match in it (with the
margin rule's lead, and a share of the stored clips scored), and why a missed copy was
missed."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from speakerdb.audio import Fingerprint, best_matches
from speakerdb.audio._fingerprint import fingerprint_with_margins
from speakerdb.audio._fpindex import stored_keys
from speakerdb.errors import AudioError
from speakerdb.services._replay import (
    CANDIDATES,
    MATCH_THRESHOLD,
    ROWS_PER_KEY,
    stored_candidates,
    voted_prints,
)
from speakerdb.storage import Storage, open_storage
from speakerdb.storage._prints import PrintHit, StoredPrint

EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


#: The share of the stored clips the shipped check scores: none beyond its CANDIDATES
#: best-voted (the third rule's choice missed its pre-registered test).
SCORED_SHARE = 0.0


#: The most a share may score, fixed beforehand by cost (about 0.4 ms a candidate, so
#: about 80 ms): above 40,000 stored clips a share would be cut.
SCORED_MOST = 200


def scored_count(stored: int, share: float = SCORED_SHARE) -> int:
    """How many of the best-voted fingerprints a lookup scoring ``share`` of ``stored``
    stored ones scores exactly: at least :data:`CANDIDATES`, at most :data:`SCORED_MOST`."""
    return min(SCORED_MOST, max(CANDIDATES, math.ceil(share * stored)))


@contextmanager
def database(prints: list[Fingerprint]) -> Iterator[Storage]:
    """A temporary SQLite database holding ``prints`` as kept queries (none expires)."""
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(Path(tmp) / "replay.db")
        try:
            now = datetime.now(timezone.utc)
            for start in range(0, len(prints), 200):
                with storage.change() as change:
                    change.add_prints(
                        [
                            StoredPrint(p.to_bytes(), stored_keys(p), now)
                            for p in prints[start : start + 200]
                        ]
                    )
            yield storage
        finally:
            storage.close()


Printed = tuple[Fingerprint, np.ndarray] | None


def printed_of(samples: np.ndarray) -> Printed:
    """A query's fingerprint and margins (``None``: too short or quiet, a miss)."""
    try:
        return fingerprint_with_margins(samples)
    except AudioError:
        return None


def lookup(
    storage: Storage, printed: Printed, rows: int | None = ROWS_PER_KEY, share: float = SCORED_SHARE
) -> float:
    """The best match of a query in ``storage`` as the replay check finds it, reading at
    most ``rows`` index rows per key of the query (``None``: every row; 0: no candidate)
    and scoring ``share`` of the stored clips."""
    return matched(storage, printed, rows, share)[0]


def lead_of(scores: np.ndarray) -> tuple[int, float]:
    """The margin rule's lead: the index of the best of the candidates' ``scores`` (not
    empty, the best-voted first), and how far it leads the median of the others among
    the :data:`CANDIDATES` best-voted (its score when there is none): the reference stays
    the best-voted ten however many are scored, so a source found further down is
    measured against the same crowd as one among the ten. Here, not in the library: the
    rule missed its pre-registered test, so nothing ships it."""
    best = int(np.argmax(scores))
    crowd = scores[:CANDIDATES]
    others = np.delete(crowd, best) if best < crowd.size else crowd
    return best, float(scores[best] - (np.median(others) if others.size else 0.0))


def matched(
    storage: Storage, printed: Printed, rows: int | None = ROWS_PER_KEY, share: float = SCORED_SHARE
) -> tuple[float, PrintHit | None, float]:
    """:func:`lookup`'s score, the stored fingerprint it matched (as
    :func:`~speakerdb.services._replay.best_stored_match` picks it among the same
    candidates, ``share`` its share of the stored ones scored), and its lead over the
    median of the other best-voted candidates' scores
    (:func:`lead_of`)."""
    if printed is None:
        return 0.0, None, 0.0
    limit = CANDIDATES
    if share:  # the stored clips are counted only when a share is scored
        with storage.read() as snapshot:
            limit = scored_count(sum(snapshot.print_counts(EPOCH)), share)
    scores, hits = stored_candidates(storage, *printed, EPOCH, rows_per_key=rows, limit=limit)
    if not hits:
        return 0.0, None, 0.0
    best, lead = lead_of(scores)
    return float(scores[best]), hits[best], lead


#: Why a copy was missed (:func:`loss_of`): a letter of :data:`LOSSES`, and its source's
#: rank by votes among the stored clips (b, c), else ``None``.
Loss = tuple[str, int | None]


LOSSES = {
    "a": "its exact score against its own stored clip is below the threshold (fingerprint)",
    "b": "its source got votes but ranked below the candidates scored",
    "c": "its source got no votes within the row budget, but would reading every row",
    "d": "its source got no votes even reading every row",
}


def loss_of(
    storage: Storage,
    copy: Printed,
    source: Fingerprint,
    rows: int | None,
    exact: float,
) -> Loss:
    """Why a missed copy of ``source`` was missed (``exact`` its score against ``source``,
    ``rows`` the lookup's rows per key)."""
    if copy is None or exact < MATCH_THRESHOLD:
        return "a", None
    for why, budget in (("b", rows), ("c", None)):
        # Every voted clip, in the lookup's order (the cut aside); the source's place.
        hits = voted_prints(storage, *copy, EPOCH, rows_per_key=budget, limit=1 << 30)
        ranks = [i for i, hit in enumerate(hits, 1) if hit.data == source.to_bytes()]
        if ranks:
            return why, ranks[0]
    return "d", None


def losses_text(losses: list[Loss]) -> list[str]:
    """A line per reason a copy was missed: how many, and the sources' ranks."""
    lines = []
    for why, what in LOSSES.items():
        ranks = sorted(r for w, r in losses if w == why and r is not None)
        at = f" (its rank by votes: {', '.join(map(str, ranks))})" if ranks else ""
        lines.append(f"({why}) {sum(w == why for w, _ in losses):3d}  {what}{at}")
    return lines


def scored_most(storage: Storage, copy: Printed) -> np.ndarray:
    """The exact scores of the :data:`SCORED_MOST` best-voted stored clips, best-voted
    first (a lookup scoring fewer scores a prefix)."""
    if copy is None:
        return np.zeros(0)
    hits = voted_prints(storage, *copy, EPOCH, limit=SCORED_MOST)
    if not hits:
        return np.zeros(0)
    return best_matches(copy[0], [Fingerprint.from_bytes(h.data) for h in hits])


def exact_score(copy: Printed, stored: Fingerprint) -> float:
    return 0.0 if copy is None else float(best_matches(copy[0], [stored])[0])
