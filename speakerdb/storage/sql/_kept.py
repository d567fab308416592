"""Kept enrollment audio and the last successful matches, in SQL (the policies are
:mod:`speakerdb.services._sealing` and :mod:`speakerdb.services._idle`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from .._kept import KeptAudio
from .._rules import no_such_clip
from ._models import KeptAudioRow, SpeakerRow, UtteranceRow, utcnow

__all__ = ["count", "idle", "keep", "kept", "record_matches"]


def keep(session: Session, utterance_id: int, key_id: str, data: bytes) -> None:
    if session.get(UtteranceRow, utterance_id) is None:
        raise no_such_clip(utterance_id)
    session.add(
        KeptAudioRow(utterance_id=utterance_id, key_id=key_id, data=data, created_at=utcnow())
    )
    session.flush()


def kept(session: Session, utterance_ids: Sequence[int]) -> dict[int, KeptAudio]:
    found: dict[int, KeptAudio] = {}
    ids = list(utterance_ids)
    # In slices: SQLite takes at most 32766 parameters in one statement (PostgreSQL 65535).
    for start in range(0, len(ids), 10_000):
        stmt = select(KeptAudioRow.utterance_id, KeptAudioRow.key_id, KeptAudioRow.data).where(
            KeptAudioRow.utterance_id.in_(ids[start : start + 10_000])
        )
        found.update((int(u), KeptAudio(int(u), k, bytes(d))) for u, k, d in session.execute(stmt))
    return found


def count(session: Session, name: str | None) -> int:
    stmt = select(func.count(KeptAudioRow.id))
    if name is not None:
        stmt = (
            stmt.join(UtteranceRow, UtteranceRow.id == KeptAudioRow.utterance_id)
            .join(SpeakerRow, SpeakerRow.id == UtteranceRow.speaker_id)
            .where(SpeakerRow.name == name)
        )
    return int(session.scalar(stmt) or 0)


def record_matches(
    session: Session, names: Sequence[str], when: datetime, older_than: datetime
) -> int:
    stmt = (
        update(SpeakerRow)
        .where(SpeakerRow.name.in_(list(names)))
        .where(or_(SpeakerRow.last_match_at.is_(None), SpeakerRow.last_match_at < older_than))
        .values(last_match_at=when)
    )
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def idle(session: Session, before: datetime) -> list[str]:
    # Sorted here: ORDER BY name would walk every row by the name index (see _retention).
    return sorted(session.scalars(select(SpeakerRow.name).where(SpeakerRow.last_match_at < before)))
