"""What the in-memory backend keeps: one :class:`State` of plain dicts and lists,
copied by every change and never edited once published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ...types import ApiKey, AuditEntry, EncoderInfo, Tombstone, Utterance
from .._kept import KeptAudio
from .._marks import Marks
from .._prints import StoredPrint

__all__ = ["Person", "State", "next_id"]


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    template: np.ndarray
    created_at: datetime
    clips: tuple[int, ...]  # utterance ids, oldest first
    external_id: str | None = None
    attributes: str | None = None  # canonical JSON, as the SQLite backend keeps it
    expires_at: datetime | None = None
    watchlist: bool = False
    last_match_at: datetime | None = None


@dataclass(slots=True)
class State:
    """Everything stored. Published states are never changed: a change edits a copy."""

    settings: dict[str, str] = field(default_factory=dict)
    encoder: EncoderInfo | None = None
    speakers: dict[int, Person] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    utterances: dict[int, Utterance] = field(default_factory=dict)
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    by_hash: dict[str, int] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    # Service keys by the hash of their secret.
    keys: dict[str, ApiKey] = field(default_factory=dict)
    version: int = 0
    next_audit: int = 1
    # Search's (speaker ids, names, templates matrix), built on first use.
    matrix: tuple[np.ndarray, list[str], np.ndarray] | None = None
    # Replay fingerprints by id, each with its speaker's id (None: nobody's).
    prints: dict[int, tuple[StoredPrint, int | None]] = field(default_factory=dict)
    next_print: int = 1
    # The cohort of outside voices: (label, audio hash, clip length, embedding), oldest first.
    cohort: list[tuple[str, str, float, np.ndarray]] = field(default_factory=list)
    # Kept (sealed) enrollment audio by utterance id.
    kept: dict[int, KeptAudio] = field(default_factory=dict)
    # Groups by name: when each was made, and its members' speaker ids.
    groups: dict[str, tuple[datetime, frozenset[int]]] = field(default_factory=dict)
    # Search's marks (watchlist, next expiry, groups), built on first use.
    marks: Marks | None = None

    def copy(self) -> State:
        return State(
            dict(self.settings),
            self.encoder,
            dict(self.speakers),
            dict(self.by_name),
            dict(self.utterances),
            dict(self.embeddings),
            dict(self.by_hash),
            list(self.audit),
            list(self.tombstones),
            dict(self.keys),
            self.version,
            self.next_audit,
            self.matrix,
            dict(self.prints),
            self.next_print,
            list(self.cohort),
            dict(self.kept),
            dict(self.groups),
        )


def next_id(rows: Mapping[int, object]) -> int:
    # As SQLite numbers rows: one more than the largest id in use.
    return max(rows, default=0) + 1
