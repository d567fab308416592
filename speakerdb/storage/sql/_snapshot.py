"""The reads of the SQL backends: a :class:`~speakerdb.storage.Snapshot` on one
SQLAlchemy session (SQLite's, and PostgreSQL's, which shares the schema), each read
done by the module of its concept (:mod:`._catalog`, :mod:`._groups`, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from ...decision._population import CohortVoices, Population
from ...types import ApiKey, AuditEntry, EncoderInfo, Group, Speaker, Tombstone, Utterance
from .._kept import KeptAudio
from .._prints import PrintHit
from . import _audit as audit
from . import _catalog as catalog
from . import _cohort as cohort
from . import _groups as membership
from . import _kept as kept
from . import _keys as keys
from . import _prints as prints
from . import _retention as retention
from ._models import SpeakerRow

__all__ = ["SessionSnapshot", "blank"]


def blank(session: Session) -> bool:
    """Whether the database holds nothing at all: no speaker, setting or service key."""
    if catalog.all_settings(session) or catalog.speaker_names(session):
        return False
    return not keys.list_keys(session)


class SessionSnapshot:
    """A :class:`~speakerdb.storage.Snapshot` on one session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def settings(self) -> dict[str, str]:
        return catalog.all_settings(self._session)

    def encoder(self) -> EncoderInfo | None:
        return catalog.read_encoder(self._session)

    def speakers(self) -> list[Speaker]:
        member_of = membership.groups_of(self._session)
        found = catalog.list_speakers(self._session)
        return [replace(s, groups=member_of.get(s.id, ())) for s in found]

    def names(self) -> frozenset[str]:
        return frozenset(catalog.speaker_names(self._session).values())

    def speaker(self, name: str) -> Speaker:
        return self._with_groups(catalog.require_speaker(self._session, name))

    def speaker_by_external_id(self, external_id: str) -> Speaker | None:
        row = catalog.find_external_id(self._session, external_id)
        return None if row is None else self._with_groups(row)

    def _with_groups(self, row: SpeakerRow) -> Speaker:
        speaker = catalog.to_speaker(row, catalog.count_utterances(self._session, row.id))
        return replace(
            speaker, groups=membership.groups_of(self._session, [row.id]).get(row.id, ())
        )

    def groups(self) -> list[Group]:
        return membership.list_groups(self._session)

    def group_members(self, group: str) -> list[str]:
        return membership.group_members(self._session, group)

    def utterances(self, name: str) -> list[Utterance]:
        return catalog.list_utterances(self._session, name)

    def template(self, name: str) -> np.ndarray:
        row = catalog.require_speaker(self._session, name)
        encoder = catalog.read_encoder(self._session)
        fix = f"remove the speaker (`speakerdb remove {name}`) and enroll them again"
        dim = encoder.dim if encoder is not None else None
        return catalog.checked_vectors([row.template], lambda _: f"template of {name!r}", fix, dim)[
            0
        ]

    def counts(self) -> tuple[int, int]:
        return len(catalog.list_speakers(self._session)), catalog.count_utterances(self._session)

    def version(self) -> int:
        return int(catalog.get_setting(self._session, "generation") or 0)

    def enrolled_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        return catalog.existing_hashes(self._session, hashes)

    def population(self, names: Sequence[str] | None = None) -> Population:
        return catalog.read_population(self._session, names)

    def cohort(self) -> CohortVoices:
        return cohort.voices(self._session)

    def cohort_hashes(self, hashes: Sequence[str]) -> frozenset[str]:
        return cohort.known_hashes(self._session, hashes)

    def audit_entries(self, since: datetime, limit: int) -> list[AuditEntry]:
        return audit.entries(self._session, since, limit)

    def print_candidates(
        self,
        keys: np.ndarray,
        since: datetime,
        limit: int,
        session: str | None = None,
        rows: int | None = None,
    ) -> list[PrintHit]:
        return prints.candidates(self._session, keys, since, limit, session, rows)

    def print_counts(self, since: datetime) -> tuple[int, int]:
        return prints.counts(self._session, since)

    def has_print_keys(self, low: int, high: int) -> bool:
        return prints.has_keys(self._session, low, high)

    def expired(self, now: datetime) -> list[str]:
        return retention.expired(self._session, now)

    def watchlist(self) -> frozenset[str]:
        return catalog.watchlisted(self._session)

    def tombstones(self) -> list[Tombstone]:
        return retention.tombstones(self._session)

    def idle(self, before: datetime) -> list[str]:
        return kept.idle(self._session, before)

    def kept_audio(self, utterance_ids: Sequence[int]) -> dict[int, KeptAudio]:
        return kept.kept(self._session, utterance_ids)

    def kept_audio_count(self, name: str | None = None) -> int:
        return kept.count(self._session, name)

    def find_tombstone(
        self, keys: tuple[str, str] | None, external_id: str | None
    ) -> Tombstone | None:
        return retention.find_tombstone(self._session, keys, external_id)

    def api_keys(self) -> list[ApiKey]:
        return keys.list_keys(self._session)

    def api_key(self, digest: str) -> ApiKey | None:
        return keys.find_key(self._session, digest)

    def whole_clip_speakers(self) -> int:
        return catalog.whole_clip_speakers(self._session)
