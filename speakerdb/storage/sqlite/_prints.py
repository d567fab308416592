"""The replay fingerprints' rows in SQLite (:mod:`speakerdb.storage._prints`).

The lookup is one query: the query's ``(key, step)`` rows arrive as a JSON
array, each is joined with the stored rows of that key through the primary
key's B-tree (so the cost follows the rows that share a key, not the stored
fingerprints), and hits are counted per (fingerprint, lag).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import DateTime, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session

from .._prints import PrintHit, StoredPrint
from ._store import PrintKeyRow, PrintRow, SpeakerRow, UtteranceRow

__all__ = ["add", "candidates", "counts", "prune"]

_CANDIDATES = text(
    """
    WITH q(key, step) AS (
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:q)
    ),
    votes(print_id, n) AS (
        SELECT k.print_id, count(*) FROM q JOIN fingerprint_keys AS k ON k.key = q.key
        GROUP BY k.print_id, k.step - q.step
    )
    SELECT f.id, f.data, f.utterance_id IS NOT NULL, s.name, max(v.n) AS best
    FROM votes AS v JOIN fingerprints AS f ON f.id = v.print_id
    LEFT JOIN speakers AS s ON s.id = f.speaker_id
    WHERE (f.utterance_id IS NOT NULL OR f.created_at >= :since)
      AND (:session IS NULL OR f.session IS NULL OR f.session != :session)
    GROUP BY f.id ORDER BY best DESC, f.id LIMIT :limit
    """
).bindparams(bindparam("since", type_=DateTime(timezone=True)))


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
            session.execute(
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
    params = {
        "q": json.dumps(np.asarray(keys, np.int64).tolist()),
        "since": since,
        "limit": limit,
        "session": exclude_session,
    }
    rows = session.execute(_CANDIDATES, params).all()
    return [PrintHit(int(i), bytes(d), bool(e), s, int(n)) for i, d, e, s, n in rows]


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
