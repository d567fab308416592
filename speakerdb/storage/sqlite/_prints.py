"""The replay fingerprints' rows in SQLite (:mod:`speakerdb.storage._prints`).

The lookup reads the stored rows of the query's keys through the primary key's
B-tree (so its cost follows the rows that share a key, not the number of stored
fingerprints), in portable SQL (the PostgreSQL backend shares these functions), and
counts hits per (fingerprint, lag) with numpy (:func:`~speakerdb.storage._prints.lag_votes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import chain

import numpy as np
from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from .._prints import PrintHit, StoredPrint, lag_votes
from ._store import PrintKeyRow, PrintRow, SpeakerRow, UtteranceRow

__all__ = ["add", "candidates", "counts", "prune"]


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
    session: Session, keys: np.ndarray, since: datetime, limit: int, exclude_session: str | None
) -> list[PrintHit]:
    keys = np.asarray(keys, np.int64).reshape(-1, 2)
    if not keys.size:
        return []
    visible = or_(PrintRow.utterance_id.is_not(None), PrintRow.created_at >= since)
    if exclude_session is not None:
        visible = and_(
            visible, or_(PrintRow.session.is_(None), PrintRow.session != exclude_session)
        )
    # Through Core, flattened in C: tens of thousands of rows per lookup, which the ORM's
    # rows and numpy's conversion of them (it probes each row) took most of a lookup to read.
    found = (
        session.connection()
        .execute(
            select(PrintKeyRow.print_id, PrintKeyRow.key, PrintKeyRow.step)
            .join(PrintRow, PrintRow.id == PrintKeyRow.print_id)
            .where(PrintKeyRow.key.in_(np.unique(keys[:, 0]).tolist()), visible)
        )
        .all()
    )
    votes = lag_votes(keys, np.fromiter(chain.from_iterable(found), np.int64, 3 * len(found)))
    best = sorted(votes, key=lambda i: (-votes[i], i))[:limit]
    if not best:
        return []
    rows = session.execute(
        select(PrintRow.id, PrintRow.data, PrintRow.utterance_id, SpeakerRow.name)
        .outerjoin(SpeakerRow, SpeakerRow.id == PrintRow.speaker_id)
        .where(PrintRow.id.in_(best))
    ).all()
    hits = {
        int(i): PrintHit(int(i), bytes(data), utterance is not None, name, votes[int(i)])
        for i, data, utterance, name in rows
    }
    return [hits[i] for i in best if i in hits]


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
