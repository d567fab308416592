"""The cohort of outside voices in SQL (the policy is :mod:`speakerdb.services._cohort`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ...audio._decode import Clip
from ...decision._population import CohortVoices
from ._catalog import checked_vectors, read_encoder
from ._models import CohortRow, to_blob, utcnow

__all__ = ["add", "clear", "known_hashes", "voices"]


def voices(session: Session) -> CohortVoices:
    rows = session.execute(
        select(
            CohortRow.id,
            CohortRow.label,
            CohortRow.duration_s,
            CohortRow.embedding,
            CohortRow.audio_sha256,
        ).order_by(CohortRow.id)
    ).all()
    encoder = read_encoder(session)
    dim = encoder.dim if encoder is not None else None
    if not rows:
        return CohortVoices.empty(dim or 0)
    vectors = checked_vectors(
        [r[3] for r in rows],
        lambda i: f"cohort clip {rows[i][0]} of {rows[i][1]!r}",
        "import the cohort again (`speakerdb cohort clear`, then `speakerdb cohort import`)",
        dim,
    )
    durations = np.asarray([r[2] for r in rows], np.float64)
    return CohortVoices(tuple(r[1] for r in rows), vectors, durations, tuple(r[4] for r in rows))


def known_hashes(session: Session, hashes: Sequence[str]) -> frozenset[str]:
    stmt = select(CohortRow.audio_sha256).where(CohortRow.audio_sha256.in_(list(hashes)))
    return frozenset(session.scalars(stmt))


def add(session: Session, label: str, clips: Sequence[Clip], embeddings: np.ndarray) -> int:
    now = utcnow()
    held = set(known_hashes(session, [c.sha256 for c in clips]))
    rows = []
    for clip, vector in zip(clips, embeddings, strict=True):
        if clip.sha256 not in held:
            held.add(clip.sha256)
            rows.append(
                CohortRow(
                    label=label,
                    audio_sha256=clip.sha256,
                    duration_s=clip.spoken_s,
                    embedding=to_blob(vector),
                    created_at=now,
                )
            )
    session.add_all(rows)
    session.flush()
    return len(rows)


def clear(session: Session) -> int:
    removed = int(session.scalar(select(func.count(CohortRow.id))) or 0)
    session.execute(delete(CohortRow))
    return removed
