"""Queries and updates on one open session: the data-access layer of the service.

Functions here take a :class:`~sqlalchemy.orm.Session` inside a transaction opened
by a backend's store (SQLite's or PostgreSQL's) and convert rows into the frozen
results of :mod:`speakerdb.types`; ORM rows never leave this module's callers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..._metadata import attributes_from_json, attributes_to_json
from ..._vectors import template_of
from ...audio._decode import Clip
from ...decision._population import Population
from ...errors import DatabaseError
from ...types import EncoderInfo, Speaker, Utterance
from .. import _digest
from .. import _rules as rules
from .._errors import no_such_speaker
from .._marks import MARKS_COUNTER
from .._rules import check_clip_number, no_such_clip, storable_source
from ._models import (
    EncoderRow,
    SettingRow,
    SpeakerRow,
    UtteranceRow,
    as_utc,
    from_blob,
    to_blob,
    utcnow,
)

__all__ = [
    "DIGEST_KEY",
    "add_utterances",
    "all_settings",
    "all_templates",
    "bump_counter",
    "bump_generation",
    "checked_vectors",
    "count_utterances",
    "delete_setting",
    "ensure_uuid",
    "existing_hashes",
    "find_external_id",
    "find_speaker",
    "get_or_create_speaker",
    "get_setting",
    "get_settings",
    "list_speakers",
    "list_utterances",
    "read_encoder",
    "read_population",
    "refresh_template",
    "refuse_enrolled",
    "replace_vectors",
    "require_speaker",
    "require_utterance",
    "set_metadata",
    "set_setting",
    "set_watchlist",
    "speaker_names",
    "to_speaker",
    "to_utterance",
    "update_digest",
    "watchlisted",
    "whole_clip_speakers",
    "write_encoder",
]

#: The setting holding the digest of every speaker's (id, template) (:mod:`.._digest`).
DIGEST_KEY = "index_digest"
# A template change for the digest: (speaker id, old template, new template), b"" for none.
TemplateChange = tuple[int, bytes, bytes]


def get_setting(session: Session, key: str) -> str | None:
    row = session.get(SettingRow, key)
    return row.value if row is not None else None


def get_settings(session: Session, keys: Sequence[str]) -> dict[str, str]:
    """The settings among ``keys`` that are set, in one query."""
    rows = session.execute(select(SettingRow.key, SettingRow.value).where(SettingRow.key.in_(keys)))
    return {key: value for key, value in rows}


def all_settings(session: Session) -> dict[str, str]:
    return {key: value for key, value in session.execute(select(SettingRow.key, SettingRow.value))}


def set_setting(session: Session, key: str, value: str) -> None:
    row = session.get(SettingRow, key)
    if row is None:
        session.add(SettingRow(key=key, value=value))
    else:
        row.value = value


def delete_setting(session: Session, key: str) -> bool:
    row = session.get(SettingRow, key)
    if row is None:
        return False
    session.delete(row)
    session.flush()  # until flushed, session.get would still return the row
    return True


def bump_generation(session: Session) -> int:
    """Count one more change of the templates; the index file records this counter."""
    ensure_uuid(session)
    return bump_counter(session, "generation")


def bump_counter(session: Session, key: str) -> int:
    """Add one to the counter stored as setting ``key``; return its new value."""
    value = int(get_setting(session, key) or 0) + 1
    set_setting(session, key, str(value))
    return value


def update_digest(session: Session, changes: Sequence[TemplateChange]) -> str | None:
    """Store the templates' digest after ``changes``, which the session has made;
    return the digest before them (``None`` when the database recorded none).

    Two terms per change, so a change at 10^5 speakers stays cheap; a database
    without a (valid) digest, written by an older speakerdb, gets one from every
    template, once.
    """
    before = get_setting(session, DIGEST_KEY)
    try:
        after = before if before is not None and _digest.parse(before) is not None else None
    except ValueError:
        before = after = None
    if after is None:
        ids, blobs = all_templates(session)
        after = _digest.digest_of(zip(ids.tolist(), blobs, strict=True))
    else:
        for speaker_id, old, new in changes:
            if old:
                after = _digest.remove(after, speaker_id, old)
            if new:
                after = _digest.add(after, speaker_id, new)
    set_setting(session, DIGEST_KEY, after)
    return before


def ensure_uuid(session: Session) -> str:
    value = get_setting(session, "uuid")
    if value is None:
        value = uuid.uuid4().hex
        set_setting(session, "uuid", value)
    return value


def read_encoder(session: Session) -> EncoderInfo | None:
    row = session.get(EncoderRow, 1)
    if row is None:
        return None
    return EncoderInfo(row.model, row.revision, row.dim, row.sample_rate)


def write_encoder(session: Session, info: EncoderInfo) -> None:
    session.add(
        EncoderRow(
            id=1,
            model=info.model,
            revision=info.revision,
            dim=info.dim,
            sample_rate=info.sample_rate,
            created_at=utcnow(),
        )
    )


def find_speaker(session: Session, name: str) -> SpeakerRow | None:
    return session.scalars(select(SpeakerRow).where(SpeakerRow.name == name)).one_or_none()


def get_or_create_speaker(session: Session, name: str) -> tuple[SpeakerRow, bool]:
    """The speaker named ``name``, created (without a template yet) if new; and whether it was."""
    row = find_speaker(session, name)
    if row is not None:
        return row, False
    now = utcnow()
    row = SpeakerRow(name=name, template=b"", created_at=now, last_match_at=now)
    session.add(row)
    session.flush()
    return row, True


def require_speaker(session: Session, name: str) -> SpeakerRow:
    row = find_speaker(session, name)
    if row is None:
        raise no_such_speaker(name, session.scalars(select(SpeakerRow.name)))
    return row


def require_utterance(session: Session, utterance_id: int) -> UtteranceRow:
    check_clip_number(utterance_id)
    row = session.get(UtteranceRow, utterance_id)
    if row is None:
        raise no_such_clip(utterance_id)
    return row


def existing_hashes(session: Session, hashes: Sequence[str]) -> dict[str, str]:
    """Map each already-enrolled audio hash to the name of the speaker who has it."""
    stmt = (
        select(UtteranceRow.audio_sha256, SpeakerRow.name)
        .join(SpeakerRow)
        .where(UtteranceRow.audio_sha256.in_(list(hashes)))
    )
    return {sha: name for sha, name in session.execute(stmt)}


def refuse_enrolled(session: Session, clips: Sequence[Clip]) -> None:
    """Raise :class:`DuplicateUtterance` when any of ``clips`` is enrolled already."""
    rules.refuse_enrolled(existing_hashes(session, [c.sha256 for c in clips]), clips)


def add_utterances(
    session: Session, speaker: SpeakerRow, clips: Sequence[Clip], embeddings: np.ndarray
) -> list[UtteranceRow]:
    now = utcnow()
    rows = [
        UtteranceRow(
            source=storable_source(clip.source),
            audio_sha256=clip.sha256,
            duration_s=clip.spoken_s,
            embedding=to_blob(vector),
            created_at=now,
            spoken_margin_s=clip.spoken_margin_s,
        )
        for clip, vector in zip(clips, embeddings, strict=True)
    ]
    speaker.utterances.extend(rows)
    session.flush()
    return rows


def replace_vectors(
    rows: Sequence[UtteranceRow], clips: Sequence[Clip], embeddings: np.ndarray
) -> None:
    """Store in ``rows`` the vectors of ``clips`` (their audio), with how they were made."""
    for row, clip, vector in zip(rows, clips, embeddings, strict=True):
        row.embedding = to_blob(vector)
        row.duration_s = clip.spoken_s
        row.spoken_margin_s = clip.spoken_margin_s


def refresh_template(session: Session, speaker: SpeakerRow) -> np.ndarray:
    """Recompute the speaker's template from all their utterances (the enrollment rule)."""
    found = session.execute(
        select(UtteranceRow.id, UtteranceRow.embedding).where(UtteranceRow.speaker_id == speaker.id)
    ).all()
    fix = _remove_clip_fix(speaker.name)

    def row(i: int) -> str:
        return f"clip {found[i][0]} of {speaker.name!r}"

    vectors = checked_vectors([blob for _, blob in found], row, fix, _encoder_dim(session))
    template = template_of(vectors)
    speaker.template = to_blob(template)
    return template


def checked_vectors(
    blobs: Sequence[bytes],
    row: Callable[[int], str],
    fix: str | Callable[[int], str],
    dim: int | None,
) -> np.ndarray:
    """The stored float32 vectors ``blobs`` as rows of one array; a DatabaseError naming
    the row (``row(i)`` describes the i-th) and ``fix`` when one is not ``dim`` floats
    (or, with no encoder recorded, as long as the first), or is not finite: a damaged
    row must not decide an answer, nor fail as an unexplained ValueError."""
    size = 4 * dim if dim else len(blobs[0]) if blobs else 0
    bad = next((i for i, b in enumerate(blobs) if len(b) != size or not b), None)
    if bad is not None:
        raise _damaged(bad, row, f"{len(blobs[bad])} bytes, not {size}", fix)
    vectors = np.stack([from_blob(b) for b in blobs]) if blobs else np.zeros((0, 0), np.float32)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise _damaged(int(np.argmin(finite)), row, "a value that is not finite", fix)
    return vectors


def _damaged(
    at: int, row: Callable[[int], str], why: str, fix: str | Callable[[int], str]
) -> DatabaseError:
    remedy = fix if isinstance(fix, str) else fix(at)
    return DatabaseError(f"the database is damaged: the {row(at)} holds {why}; {remedy}")


def _remove_clip_fix(name: str) -> str:
    return (
        f"remove the damaged clip (`speakerdb remove-utterance ID`; `speakerdb show {name}` "
        f"lists them) or the speaker (`speakerdb remove {name}`)"
    )


def _encoder_dim(session: Session) -> int | None:
    encoder = read_encoder(session)
    return encoder.dim if encoder is not None else None


def count_utterances(session: Session, speaker_id: int | None = None) -> int:
    stmt = select(func.count(UtteranceRow.id))
    if speaker_id is not None:
        stmt = stmt.where(UtteranceRow.speaker_id == speaker_id)
    return int(session.scalar(stmt) or 0)


def whole_clip_speakers(session: Session) -> int:
    """How many speakers have a clip embedded from the whole clip (no spoken margin)."""
    stmt = select(func.count(func.distinct(UtteranceRow.speaker_id))).where(
        UtteranceRow.spoken_margin_s.is_(None)
    )
    return int(session.scalar(stmt) or 0)


def to_speaker(row: SpeakerRow, n_utterances: int) -> Speaker:
    return Speaker(
        id=row.id,
        name=row.name,
        n_utterances=n_utterances,
        created_at=as_utc(row.created_at),
        external_id=row.external_id,
        attributes=attributes_from_json(row.attributes),
        expires_at=None if row.expires_at is None else as_utc(row.expires_at),
        watchlist=bool(row.watchlist),
        last_match_at=None if row.last_match_at is None else as_utc(row.last_match_at),
    )


def set_watchlist(session: Session, name: str, on: bool) -> Speaker:
    row = require_speaker(session, name)
    row.watchlist = on
    bump_counter(session, MARKS_COUNTER)  # the searches' cached watchlist
    session.flush()
    return to_speaker(row, count_utterances(session, row.id))


def set_last_match(session: Session, name: str, when: datetime) -> Speaker:
    row = require_speaker(session, name)
    row.last_match_at = when
    session.flush()
    return to_speaker(row, count_utterances(session, row.id))


def watchlisted(session: Session) -> frozenset[str]:
    stmt = select(SpeakerRow.name).where(SpeakerRow.watchlist == True)  # noqa: E712 (the index)
    return frozenset(session.scalars(stmt))


def find_external_id(session: Session, external_id: str) -> SpeakerRow | None:
    stmt = select(SpeakerRow).where(SpeakerRow.external_id == external_id)
    return session.scalars(stmt).one_or_none()


def set_metadata(
    session: Session,
    name: str,
    external_id: str | None,
    attributes: Mapping[str, Any],
    expires_at: datetime | None,
) -> Speaker:
    """Replace the metadata of ``name``; DuplicateSpeaker if the external id is another's."""
    row = require_speaker(session, name)
    if external_id is not None:
        owner = find_external_id(session, external_id)
        if owner is not None and owner.id != row.id:
            raise rules.external_id_taken(external_id, owner.name)
    row.external_id = external_id
    row.attributes = attributes_to_json(attributes)
    row.expires_at = expires_at
    bump_counter(session, MARKS_COUNTER)  # the searches' cached next expiry
    session.flush()
    return to_speaker(row, count_utterances(session, row.id))


def to_utterance(row: UtteranceRow, speaker: str) -> Utterance:
    return Utterance(
        id=row.id,
        speaker=speaker,
        source=row.source,
        audio_sha256=row.audio_sha256,
        duration_s=row.duration_s,
        created_at=as_utc(row.created_at),
        spoken_margin_s=row.spoken_margin_s,
    )


def list_speakers(session: Session) -> list[Speaker]:
    counts = (
        select(UtteranceRow.speaker_id, func.count(UtteranceRow.id).label("n"))
        .group_by(UtteranceRow.speaker_id)
        .subquery()
    )
    stmt = (
        select(SpeakerRow, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.speaker_id == SpeakerRow.id)
        .order_by(SpeakerRow.name)
    )
    return [to_speaker(row, int(n)) for row, n in session.execute(stmt)]


def list_utterances(session: Session, name: str) -> list[Utterance]:
    """The enrolled clips of speaker ``name``, oldest first."""
    row = require_speaker(session, name)
    return [to_utterance(u, row.name) for u in sorted(row.utterances, key=_by_id)]


def _by_id(row: UtteranceRow) -> int:
    return row.id


def speaker_names(session: Session) -> dict[int, str]:
    """Every speaker's name, by speaker id (the ids the index returns)."""
    return {int(i): name for i, name in session.execute(select(SpeakerRow.id, SpeakerRow.name))}


def all_templates(session: Session) -> tuple[np.ndarray, list[bytes]]:
    rows = session.execute(select(SpeakerRow.id, SpeakerRow.template)).all()
    return np.asarray([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]


def read_population(session: Session, names: Sequence[str] | None = None) -> Population:
    """Every utterance embedding in the database (or of ``names`` only), by speaker."""
    stmt = (
        select(SpeakerRow.name, UtteranceRow.id, UtteranceRow.embedding, UtteranceRow.duration_s)
        .join(UtteranceRow, UtteranceRow.speaker_id == SpeakerRow.id)
        .order_by(SpeakerRow.name, UtteranceRow.id)
    )
    if names is not None:
        stmt = stmt.where(SpeakerRow.name.in_(list(names)))
    rows = session.execute(stmt).all()

    def row(i: int) -> str:
        return f"clip {rows[i][1]} of {rows[i][0]!r}"

    fix = "remove the damaged clip (`speakerdb remove-utterance ID`)"
    vectors = checked_vectors([r[2] for r in rows], row, fix, _encoder_dim(session))
    groups: dict[str, list[np.ndarray]] = {}
    lengths: dict[str, list[float]] = {}
    for (name, _, _, seconds), vector in zip(rows, vectors, strict=True):
        groups.setdefault(name, []).append(vector)
        lengths.setdefault(name, []).append(seconds)
    return Population.from_groups(
        {n: np.stack(v) for n, v in groups.items()},
        {n: np.asarray(v) for n, v in lengths.items()},
    )
