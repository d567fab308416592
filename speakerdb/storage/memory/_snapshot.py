"""The in-memory backend's reads: a :class:`~speakerdb.storage.Snapshot` of one
published state, which no change edits, so it needs no lock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from ..._metadata import attributes_from_json
from ...decision._population import CohortVoices, Population
from ...types import ApiKey, AuditEntry, EncoderInfo, Group, Speaker, Tombstone, Utterance
from .._errors import no_such_speaker
from .._kept import KeptAudio
from .._prints import PrintHit
from . import _groups as membership
from . import _prints as prints
from ._state import State

__all__ = ["Snapshot", "matches_tombstone"]


class Snapshot:
    """A :class:`~speakerdb.storage.Snapshot` of one published state."""

    def __init__(self, state: State) -> None:
        self.state = state

    def settings(self) -> dict[str, str]:
        return dict(self.state.settings)

    def encoder(self) -> EncoderInfo | None:
        return self.state.encoder

    def speakers(self) -> list[Speaker]:
        return [self._speaker(i) for _, i in sorted(self.state.by_name.items())]

    def names(self) -> frozenset[str]:
        return frozenset(self.state.by_name)

    def speaker(self, name: str) -> Speaker:
        return self._speaker(self._id_of(name))

    def speaker_by_external_id(self, external_id: str) -> Speaker | None:
        found = self._external_ids().get(external_id)
        return None if found is None else self._speaker(found)

    def utterances(self, name: str) -> list[Utterance]:
        person = self.state.speakers[self._id_of(name)]
        return [self.state.utterances[u] for u in person.clips]

    def template(self, name: str) -> np.ndarray:
        return self.state.speakers[self._id_of(name)].template.copy()

    def counts(self) -> tuple[int, int]:
        return len(self.state.speakers), len(self.state.utterances)

    def version(self) -> int:
        return self.state.version

    def enrolled_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        found = {h: self.state.by_hash[h] for h in hashes if h in self.state.by_hash}
        return {h: self.state.utterances[u].speaker for h, u in found.items()}

    def population(self, names: Sequence[str] | None = None) -> Population:
        wanted = self.state.by_name if names is None else set(names) & set(self.state.by_name)
        groups, lengths = {}, {}
        for name in wanted:
            clips = self.state.speakers[self.state.by_name[name]].clips
            groups[name] = np.stack([self.state.embeddings[u] for u in clips])
            lengths[name] = np.asarray([self.state.utterances[u].duration_s for u in clips])
        return Population.from_groups(groups, lengths)

    def cohort(self) -> CohortVoices:
        rows = self.state.cohort
        if not rows:
            return CohortVoices.empty(self.state.encoder.dim if self.state.encoder else 0)
        return CohortVoices(
            tuple(r[0] for r in rows),
            np.stack([r[3] for r in rows]),
            np.asarray([r[2] for r in rows], np.float64),
            tuple(r[1] for r in rows),
        )

    def cohort_hashes(self, hashes: Sequence[str]) -> frozenset[str]:
        return frozenset(hashes) & {r[1] for r in self.state.cohort}

    def audit_entries(self, since: datetime, limit: int) -> list[AuditEntry]:
        newest_first = reversed(self.state.audit)
        return [e for e in newest_first if e.time >= since][:limit]

    def print_candidates(
        self,
        keys: np.ndarray,
        since: datetime,
        limit: int,
        session: str | None = None,
        rows: int | None = None,
    ) -> list[PrintHit]:
        return prints.candidates(self.state, keys, since, limit, session, rows)

    def print_counts(self, since: datetime) -> tuple[int, int]:
        return prints.counts(self.state, since)

    def has_print_keys(self, low: int, high: int) -> bool:
        return prints.has_keys(self.state, low, high)

    def watchlist(self) -> frozenset[str]:
        return frozenset(p.name for p in self.state.speakers.values() if p.watchlist)

    def groups(self) -> list[Group]:
        return membership.list_groups(self.state)

    def group_members(self, group: str) -> list[str]:
        return list(membership.group(self.state, group).members)

    def expired(self, now: datetime) -> list[str]:
        people = self.state.speakers.values()
        return sorted(p.name for p in people if p.expires_at is not None and p.expires_at <= now)

    def tombstones(self) -> list[Tombstone]:
        return list(self.state.tombstones)

    def idle(self, before: datetime) -> list[str]:
        people = self.state.speakers.values()
        return sorted(
            p.name for p in people if p.last_match_at is not None and p.last_match_at < before
        )

    def kept_audio(self, utterance_ids: Sequence[int]) -> dict[int, KeptAudio]:
        return {u: self.state.kept[u] for u in utterance_ids if u in self.state.kept}

    def kept_audio_count(self, name: str | None = None) -> int:
        if name is None:
            return len(self.state.kept)
        clips = self.state.speakers[self._id_of(name)].clips
        return sum(u in self.state.kept for u in clips)

    def find_tombstone(
        self, keys: tuple[str, str] | None, external_id: str | None
    ) -> Tombstone | None:
        found = self.state.tombstones
        return next((t for t in found if matches_tombstone(t, keys, external_id)), None)

    def api_keys(self) -> list[ApiKey]:
        return sorted(self.state.keys.values(), key=lambda k: k.name)

    def api_key(self, digest: str) -> ApiKey | None:
        return self.state.keys.get(digest)

    def whole_clip_speakers(self) -> int:
        utterances = self.state.utterances.values()
        return len({u.speaker for u in utterances if u.spoken_margin_s is None})

    def _id_of(self, name: str) -> int:
        found = self.state.by_name.get(name)
        if found is None:
            raise no_such_speaker(name, self.state.by_name)
        return found

    def _speaker(self, speaker_id: int) -> Speaker:
        person = self.state.speakers[speaker_id]
        attributes = attributes_from_json(person.attributes)
        clips = len(person.clips)
        return Speaker(
            speaker_id,
            person.name,
            clips,
            person.created_at,
            person.external_id,
            attributes,
            person.expires_at,
            person.watchlist,
            person.last_match_at,
            membership.groups_of(self.state, speaker_id),
        )

    def _external_ids(self) -> dict[str, int]:
        people = self.state.speakers.items()
        return {p.external_id: i for i, p in people if p.external_id is not None}


def matches_tombstone(
    found: Tombstone, keys: tuple[str, str] | None, external_id: str | None
) -> bool:
    """Whether tombstone ``found`` is for the name ``keys`` or for ``external_id``."""
    by_name = keys is not None and (found.name_key == keys[0] or found.folded_key == keys[1])
    return by_name or (external_id is not None and found.external_id == external_id)
