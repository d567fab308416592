"""The replay fingerprints' rows in SQL (:mod:`speakerdb.storage._prints`).

The lookup counts the stored rows of each of the query's keys, reads the rows of the
keys that fit its budget, rarest first (:func:`~speakerdb.storage._prints.affordable_keys`),
both through the primary key's B-tree (so its cost follows the rows that share a key,
not the number of stored fingerprints), in portable SQL (the PostgreSQL backend shares
these functions), and counts hits per (fingerprint, lag) with numpy
(:func:`~speakerdb.storage._prints.lag_votes`). Which fingerprints are visible (enrolled,
or a query within the window and not of the caller's session) is checked only for the
best-voted ones: joining every index row with its fingerprint's row took two thirds of a
lookup (measured on 6,800 stored 3 s clips: 170 ms against 56 ms without the join).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import chain

import numpy as np
from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from .._prints import PrintHit, StoredPrint, affordable_keys, lag_votes, ranked_by_votes
from ._models import PrintKeyRow, PrintRow, SpeakerRow, UtteranceRow

__all__ = ["add", "candidates", "counts", "has_keys", "prune"]


def add(session: Session, prints: Sequence[StoredPrint]) -> None:
    for printed in prints:
        row = PrintRow(
            utterance_id=printed.utterance_id,
            speaker_id=_owner(session, printed),
            session=printed.session,
            created_at=printed.time,
            data=printed.data,
        )
        session.add(row)
        session.flush()
        keys = np.unique(np.asarray(printed.keys, np.int64), axis=0)
        if keys.size:
            # Core's executemany: an enrolled 10-minute clip has over 100,000 rows, which
            # the ORM's bulk insert took seconds to prepare.
            session.connection().execute(
                insert(PrintKeyRow),
                [{"key": k, "print_id": row.id, "step": s} for k, s in keys.tolist()],
            )


def _owner(session: Session, printed: StoredPrint) -> int | None:
    """The speaker a fingerprint goes with: its utterance's, else the named one's."""
    if printed.utterance_id is not None:
        stmt = select(UtteranceRow.speaker_id).where(UtteranceRow.id == printed.utterance_id)
    elif printed.speaker is not None:
        stmt = select(SpeakerRow.id).where(SpeakerRow.name == printed.speaker)
    else:
        return None
    return session.scalar(stmt)


def candidates(
    session: Session,
    keys: np.ndarray,
    since: datetime,
    limit: int,
    exclude_session: str | None,
    rows: int | None = None,
) -> list[PrintHit]:
    keys = np.asarray(keys, np.int64).reshape(-1, 2)
    if not keys.size or limit <= 0:
        return []
    wanted = np.unique(keys[:, 0])
    if rows is not None:
        counting = "SELECT key, count(*) FROM {} WHERE key IN ({}) GROUP BY key"
        counted = _fetch(session, counting, wanted)
        wanted = affordable_keys(counted[0::2], counted[1::2], rows)
    found = _fetch(session, "SELECT print_id, key, step FROM {} WHERE key IN ({})", wanted)
    votes = lag_votes(keys, found)
    ranked = ranked_by_votes(votes)
    hits: list[PrintHit] = []
    # The best-voted first, a few more than asked for at a time: fingerprints out of the
    # window (not pruned yet) or of the caller's session are skipped.
    for start in range(0, len(ranked), 2 * limit):
        hits += _visible(session, ranked[start : start + 2 * limit], votes, since, exclude_session)
        if len(hits) >= limit:
            break
    return hits[:limit]


def _fetch(session: Session, sql: str, keys: np.ndarray) -> np.ndarray:
    """The rows of ``sql`` (its table, then the keys, filled in), flattened to int64."""
    if not keys.size:
        return np.zeros(0, np.int64)
    # The keys are int64 from numpy, written as literals: thousands of bound parameters
    # took SQLAlchemy longer to expand than SQLite took to run the query.
    # The driver's own cursor: SQLAlchemy's result rows took longer to make than the rows.
    listed = ",".join(map(str, keys.tolist()))
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql.format(PrintKeyRow.__tablename__, listed))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    width = len(rows[0]) if rows else 1
    return np.fromiter(chain.from_iterable(rows), np.int64, width * len(rows))


def _visible(
    session: Session,
    ids: list[int],
    votes: dict[int, int],
    since: datetime,
    exclude_session: str | None,
) -> list[PrintHit]:
    """The fingerprints of ``ids`` a lookup may return, in the order of ``ids``."""
    visible = or_(PrintRow.utterance_id.is_not(None), PrintRow.created_at >= since)
    if exclude_session is not None:
        visible = and_(
            visible, or_(PrintRow.session.is_(None), PrintRow.session != exclude_session)
        )
    rows = session.execute(
        select(PrintRow.id, PrintRow.data, PrintRow.utterance_id, SpeakerRow.name)
        .outerjoin(SpeakerRow, SpeakerRow.id == PrintRow.speaker_id)
        .where(PrintRow.id.in_(ids), visible)
    ).all()
    hits = {
        int(i): PrintHit(int(i), bytes(data), utterance is not None, name, votes[int(i)])
        for i, data, utterance, name in rows
    }
    return [hits[i] for i in ids if i in hits]


def prune(session: Session, before: datetime) -> int:
    """Delete the queries' fingerprints older than ``before``; return how many."""
    result = session.execute(
        delete(PrintRow).where(PrintRow.utterance_id.is_(None), PrintRow.created_at < before)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def counts(session: Session, since: datetime) -> tuple[int, int]:
    """How many enrolled clips' fingerprints, and queries' within the window, are kept."""
    enrolled = session.scalar(
        select(func.count(PrintRow.id)).where(PrintRow.utterance_id.is_not(None))
    )
    recent = session.scalar(
        select(func.count(PrintRow.id)).where(
            PrintRow.utterance_id.is_(None), PrintRow.created_at >= since
        )
    )
    return int(enrolled or 0), int(recent or 0)


def has_keys(session: Session, low: int, high: int) -> bool:
    """Whether any index row has a key ``low <= key < high``: one step into the primary
    key's B-tree (the key leads it), whatever the number of rows."""
    first = select(PrintKeyRow.key).where(PrintKeyRow.key >= low, PrintKeyRow.key < high)
    return session.scalar(first.limit(1)) is not None
