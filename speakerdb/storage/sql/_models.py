"""The SQLAlchemy models of speakerdb's tables, and how values are kept in their columns.

The SQLite and the PostgreSQL backends share them. The schema itself is owned by the
Alembic migrations in ``migrations/`` beside this module, whose ``env.py`` compares against
:data:`Base.metadata`; a test checks that the migrated schema and these models agree.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiKeyRow",
    "AuditRow",
    "Base",
    "CohortRow",
    "EncoderRow",
    "GroupMemberRow",
    "GroupRow",
    "KeptAudioRow",
    "PrintKeyRow",
    "PrintRow",
    "SettingRow",
    "SpeakerRow",
    "TombstoneRow",
    "UtteranceRow",
    "as_utc",
    "from_blob",
    "to_blob",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from SQLite, which keeps no time zone: all of ours are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def to_blob(vector: np.ndarray) -> bytes:
    """Store a vector as little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    """Read a vector written by :func:`to_blob` (bit-exact)."""
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


class Base(DeclarativeBase):
    pass


class SpeakerRow(Base):
    __tablename__ = "speakers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    # Derived from the utterances (normalised mean), kept so the index can be
    # rebuilt without re-reading every utterance.
    template: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The speaker's metadata (speakerdb._metadata): the id another system knows them
    # by, unique where set, and their attributes as canonical JSON text (NULL: none).
    external_id: Mapped[str | None] = mapped_column(
        String(128), nullable=True, unique=True, index=True
    )
    attributes: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    # A voice never to admit: a query it matches is flagged, not accepted.
    watchlist: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false(), index=True
    )
    # The last successful match (at most a day old: :mod:`speakerdb.services._idle`), or
    # the enrollment until the first; idle expiry removes those that are too old.
    last_match_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    utterances: Mapped[list[UtteranceRow]] = relationship(
        back_populates="speaker", cascade="all, delete-orphan", passive_deletes=True
    )


class UtteranceRow(Base):
    __tablename__ = "utterances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source: Mapped[str | None] = mapped_column(String, nullable=True)
    audio_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    duration_s: Mapped[float] = mapped_column(Float, nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # How the embedding was made (Clip.spoken_margin_s): from the words and this much
    # either side; NULL: from the whole clip, as every clip before migration 0012 was.
    spoken_margin_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    speaker: Mapped[SpeakerRow] = relationship(back_populates="utterances")


class EncoderRow(Base):
    """The one encoder whose embeddings this database holds."""

    __tablename__ = "encoder"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String, nullable=False)
    revision: Mapped[str | None] = mapped_column(String, nullable=True)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    sample_rate: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SettingRow(Base):
    """Key/value settings: ``threshold``, ``uuid``, ``generation``, and the audit
    log's ``audit``, ``audit_retention_days`` and ``audit_max_rows``.

    ``generation`` is bumped by every template change; the index file records it.
    """

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String, nullable=False)


class AuditRow(Base):
    """One identify or verify decision, written only while auditing is on (:mod:`.audit`).

    Names are copied, not linked: the log keeps what was decided even after a rename
    or a removal. ``normalized`` is the normalised score when one decided, else NULL.
    """

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    operation: Mapped[str] = mapped_column(String(16), nullable=False)
    claimed: Mapped[str | None] = mapped_column(String(128), nullable=True)
    identified: Mapped[str | None] = mapped_column(String(128), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    normalized: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    accepted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    #: The answer (:class:`~speakerdb.types.Outcome`'s value); revision 0005 filled in
    #: the older rows from ``accepted`` and ``operation``.
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    api_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    countermeasure: Mapped[str | None] = mapped_column(String(64), nullable=True)
    countermeasure_score: Mapped[float | None] = mapped_column(Float, nullable=True)


class PrintRow(Base):
    """The acoustic fingerprint of an enrolled clip (``utterance_id``) or of a query this
    database decided within its replay window (:mod:`speakerdb.storage._prints`).

    Deleted with its utterance or its speaker (``ON DELETE CASCADE``); a query's also
    when the window passes.
    """

    __tablename__ = "fingerprints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    utterance_id: Mapped[int | None] = mapped_column(
        ForeignKey("utterances.id", ondelete="CASCADE"), nullable=True, index=True
    )
    speaker_id: Mapped[int | None] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), nullable=True, index=True
    )
    session: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class PrintKeyRow(Base):
    """One index key of a fingerprint at one step (:mod:`speakerdb.audio._fpindex`)."""

    __tablename__ = "fingerprint_keys"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012

    key: Mapped[int] = mapped_column(Integer, primary_key=True)
    print_id: Mapped[int] = mapped_column(
        ForeignKey("fingerprints.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)


class CohortRow(Base):
    """One clip of a cohort's outside voice: its embedding, never its audio or file name
    (:mod:`speakerdb.storage.sql._cohort`)."""

    __tablename__ = "cohort"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(128), nullable=False)
    audio_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    duration_s: Mapped[float] = mapped_column(Float, nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class KeptAudioRow(Base):
    """An enrolled clip's audio, kept with ``--keep-audio`` for re-embedding: sealed
    (encrypted) bytes and the id of the key that sealed them (:mod:`speakerdb.storage._kept`).
    Deleted with its utterance (``ON DELETE CASCADE``), hence with its speaker."""

    __tablename__ = "kept_audio"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    utterance_id: Mapped[int] = mapped_column(
        ForeignKey("utterances.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ApiKeyRow(Base):
    """A key of the HTTP service: its name, scope and the SHA-256 of its secret (the
    secret itself is shown once, when created, and never stored)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    digest: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: The group the key is bound to (its queries consider only that group), or NULL.
    group_name: Mapped[str | None] = mapped_column(String(64), nullable=True)


class GroupRow(Base):
    """A named group of speakers (:mod:`speakerdb.storage.sql._groups`); it stays,
    empty, when its last member leaves, until it is deleted."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class GroupMemberRow(Base):
    """One speaker in one group; deleted with either (``ON DELETE CASCADE``)."""

    __tablename__ = "group_members"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    speaker_id: Mapped[int] = mapped_column(
        ForeignKey("speakers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TombstoneRow(Base):
    """A person who opted out: their external id and name skeletons, nothing else."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    name_key: Mapped[str] = mapped_column(String, nullable=False, index=True)
    folded_key: Mapped[str] = mapped_column(String, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
