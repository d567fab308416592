"""The in-memory backend's writes: a :class:`~speakerdb.storage.Change` that edits a
private copy of the state, published by the storage only once nothing raised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._metadata import attributes_to_json
from ..._vectors import template_of
from ...types import (
    ApiKey,
    AuditEntry,
    EncoderInfo,
    Enrollment,
    Group,
    Speaker,
    Tombstone,
    Utterance,
)
from .._kept import KeptAudio
from .._prints import StoredPrint
from .._rules import (
    check_clip_number,
    check_replacement,
    external_id_taken,
    key_taken,
    last_clip,
    name_taken,
    no_such_clip,
    no_such_key,
    refuse_enrolled,
    storable_source,
)
from . import _groups as membership
from . import _prints as prints
from ._snapshot import Snapshot, matches_tombstone
from ._state import Person, State, next_id

if TYPE_CHECKING:
    from ...audio._decode import Clip

__all__ = ["Change"]


class Change(Snapshot):
    """A :class:`~speakerdb.storage.Change` on a private copy of the state."""

    def __init__(self, state: State, *, templates: bool) -> None:
        super().__init__(state)
        self._templates = templates
        self.changed_templates = False

    def set_setting(self, key: str, value: str) -> None:
        self.state.settings[key] = value

    def delete_setting(self, key: str) -> bool:
        return self.state.settings.pop(key, None) is not None

    def record_encoder(self, info: EncoderInfo) -> None:
        self.state.encoder = info

    def enroll(self, name: str, clips: Sequence[Clip], embeddings: np.ndarray) -> Enrollment:
        self._check_templates()
        refuse_enrolled(self.enrolled_hashes([c.sha256 for c in clips]), clips)
        now = datetime.now(timezone.utc)
        created = name not in self.state.by_name
        speaker_id = next_id(self.state.speakers) if created else self.state.by_name[name]
        added = tuple(
            self._add_clip(speaker_id, name, clip, vector, now)
            for clip, vector in zip(clips, embeddings, strict=True)
        )
        old = self.state.speakers.get(speaker_id)
        new = tuple(u.id for u in added)
        if old is None:
            empty = np.zeros(0, np.float32)
            self._store(speaker_id, Person(name, empty, now, new, last_match_at=now))
        else:
            self._store(speaker_id, replace(old, clips=old.clips + new))
        return Enrollment(self._speaker(speaker_id), added, created)

    def remove_speaker(self, name: str) -> Speaker:
        self._check_templates()
        speaker_id = self._id_of(name)
        removed = self._speaker(speaker_id)
        for utterance_id in self.state.speakers.pop(speaker_id).clips:
            self._drop_clip(utterance_id)
        membership.forget_speaker(self.state, speaker_id)
        prints.forget_speaker(self.state, speaker_id)
        del self.state.by_name[name]
        self.changed_templates = True
        return removed

    def replace_vectors(
        self, utterance_ids: Sequence[int], clips: Sequence[Clip], embeddings: np.ndarray
    ) -> Speaker:
        self._check_templates()
        for utterance_id in utterance_ids:
            check_clip_number(utterance_id)
            if utterance_id not in self.state.utterances:
                raise no_such_clip(utterance_id)
        found = [self.state.utterances[i] for i in utterance_ids]
        check_replacement([(u.id, u.speaker, u.audio_sha256) for u in found], clips)
        for utterance, clip, vector in zip(found, clips, embeddings, strict=True):
            self.state.utterances[utterance.id] = replace(
                utterance, duration_s=clip.spoken_s, spoken_margin_s=clip.spoken_margin_s
            )
            self.state.embeddings[utterance.id] = _stored_vector(vector)
        speaker_id = self.state.by_name[found[0].speaker]
        self._store(speaker_id, self.state.speakers[speaker_id])
        return self._speaker(speaker_id)

    def remove_utterance(self, utterance_id: int) -> Speaker:
        self._check_templates()
        check_clip_number(utterance_id)
        clip = self.state.utterances.get(utterance_id)
        if clip is None:
            raise no_such_clip(utterance_id)
        speaker_id = self.state.by_name[clip.speaker]
        person = self.state.speakers[speaker_id]
        if len(person.clips) < 2:
            raise last_clip(utterance_id, person.name)
        self._drop_clip(utterance_id)
        left = tuple(u for u in person.clips if u != utterance_id)
        self._store(speaker_id, replace(person, clips=left))
        return self._speaker(speaker_id)

    def rename(self, old: str, new: str) -> Speaker:
        speaker_id = self._id_of(old)
        if new != old and new in self.state.by_name:
            raise name_taken(new)
        person = self.state.speakers[speaker_id]
        del self.state.by_name[old]
        self.state.by_name[new] = speaker_id
        self.state.speakers[speaker_id] = replace(person, name=new)
        for u in person.clips:
            self.state.utterances[u] = replace(self.state.utterances[u], speaker=new)
        self.state.matrix = None  # its names are stale
        return self._speaker(speaker_id)

    def set_metadata(
        self,
        name: str,
        external_id: str | None,
        attributes: Mapping[str, Any],
        expires_at: datetime | None,
    ) -> Speaker:
        speaker_id = self._id_of(name)
        owner = self._external_ids().get(external_id) if external_id is not None else None
        if owner is not None and owner != speaker_id:
            raise external_id_taken(str(external_id), self.state.speakers[owner].name)
        person = self.state.speakers[speaker_id]
        self.state.speakers[speaker_id] = replace(
            person,
            external_id=external_id,
            attributes=attributes_to_json(attributes),
            expires_at=expires_at,
        )
        return self._speaker(speaker_id)

    def set_watchlist(self, name: str, on: bool) -> Speaker:
        speaker_id = self._id_of(name)
        person = self.state.speakers[speaker_id]
        self.state.speakers[speaker_id] = replace(person, watchlist=on)
        return self._speaker(speaker_id)

    def add_to_group(self, group: str, names: Sequence[str]) -> int:
        ids = {self._id_of(n) for n in names}
        return membership.add_members(self.state, group, ids)

    def remove_from_group(self, group: str, names: Sequence[str]) -> int:
        membership.require(self.state, group)  # an unknown group is named before any speaker
        ids = {self._id_of(n) for n in names}
        return membership.remove_members(self.state, group, ids)

    def delete_group(self, group: str) -> Group:
        return membership.delete_group(self.state, group)

    def rewrite_audit(self, name: str, replacement: str | None) -> int:
        def naming(e: AuditEntry) -> bool:
            return name in (e.claimed, e.identified)

        found = sum(map(naming, self.state.audit))
        if replacement is None:
            self.state.audit = [e for e in self.state.audit if not naming(e)]
            return found

        def renamed(value: str | None) -> str | None:
            return replacement if value == name else value

        self.state.audit = [
            replace(e, claimed=renamed(e.claimed), identified=renamed(e.identified))
            for e in self.state.audit
        ]
        return found

    def keep_audio(self, utterance_id: int, key_id: str, data: bytes) -> None:
        check_clip_number(utterance_id)
        if utterance_id not in self.state.utterances:
            raise no_such_clip(utterance_id)
        self.state.kept[utterance_id] = KeptAudio(utterance_id, key_id, bytes(data))

    def record_matches(self, names: Sequence[str], when: datetime, older_than: datetime) -> int:
        changed = 0
        for name in set(names) & set(self.state.by_name):
            speaker_id = self.state.by_name[name]
            person = self.state.speakers[speaker_id]
            if person.last_match_at is None or person.last_match_at < older_than:
                self.state.speakers[speaker_id] = replace(person, last_match_at=when)
                changed += 1
        return changed

    def set_last_match(self, name: str, when: datetime) -> Speaker:
        speaker_id = self._id_of(name)
        person = self.state.speakers[speaker_id]
        self.state.speakers[speaker_id] = replace(person, last_match_at=when)
        return self._speaker(speaker_id)

    def add_tombstone(self, external_id: str | None, keys: tuple[str, str]) -> Tombstone:
        number = max((t.id for t in self.state.tombstones), default=0) + 1
        made = Tombstone(number, external_id, keys[0], keys[1], datetime.now(timezone.utc))
        self.state.tombstones.append(made)
        return made

    def clear_tombstones(self, keys: tuple[str, str] | None, external_id: str | None) -> int:
        before = len(self.state.tombstones)
        self.state.tombstones = [
            t for t in self.state.tombstones if not matches_tombstone(t, keys, external_id)
        ]
        return before - len(self.state.tombstones)

    def add_cohort(self, label: str, clips: Sequence[Clip], embeddings: np.ndarray) -> int:
        held = {r[1] for r in self.state.cohort}
        added = 0
        for clip, vector in zip(clips, np.asarray(embeddings, np.float32), strict=True):
            if clip.sha256 not in held:
                self.state.cohort.append((label, clip.sha256, clip.spoken_s, vector.copy()))
                held.add(clip.sha256)
                added += 1
        return added

    def clear_cohort(self) -> int:
        removed = len(self.state.cohort)
        self.state.cohort = []
        return removed

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        for entry in entries:
            self.state.audit.append(replace(entry, id=self.state.next_audit))
            self.state.next_audit += 1

    def prune_audit(self, before: datetime, keep: int) -> None:
        kept = [e for e in self.state.audit if e.time >= before]
        self.state.audit = kept[-keep:]

    def clear_audit(self) -> int:
        removed = len(self.state.audit)
        self.state.audit = []
        return removed

    def add_prints(self, stored: Sequence[StoredPrint]) -> None:
        prints.add(self.state, stored)

    def prune_prints(self, before: datetime) -> int:
        return prints.prune(self.state, before)

    def add_api_key(self, key: ApiKey, digest: str) -> None:
        if any(k.name == key.name for k in self.state.keys.values()):
            raise key_taken(key.name)
        self.state.keys[digest] = key

    def revoke_api_key(self, name: str) -> ApiKey:
        for digest, key in self.state.keys.items():
            if key.name == name:
                del self.state.keys[digest]
                return key
        raise no_such_key(name)

    def _add_clip(
        self, speaker_id: int, name: str, clip: Clip, vector: np.ndarray, now: datetime
    ) -> Utterance:
        utterance_id = next_id(self.state.utterances)
        source = storable_source(clip.source)
        utterance = Utterance(
            utterance_id, name, source, clip.sha256, clip.spoken_s, now, clip.spoken_margin_s
        )
        self.state.utterances[utterance_id] = utterance
        self.state.embeddings[utterance_id] = _stored_vector(vector)
        self.state.by_hash[clip.sha256] = utterance_id
        return utterance

    def _drop_clip(self, utterance_id: int) -> None:
        utterance = self.state.utterances.pop(utterance_id)
        del self.state.embeddings[utterance_id]
        del self.state.by_hash[utterance.audio_sha256]
        self.state.kept.pop(utterance_id, None)
        prints.forget_clip(self.state, utterance_id)

    def _store(self, speaker_id: int, person: Person) -> None:
        """Keep ``person`` with its template recomputed from its clips (the enrollment rule)."""
        vectors = np.stack([self.state.embeddings[u] for u in person.clips])
        template = np.asarray(template_of(vectors), dtype="<f4").astype(np.float32)
        self.state.speakers[speaker_id] = replace(person, template=template)
        self.state.by_name[person.name] = speaker_id
        self.changed_templates = True

    def _check_templates(self) -> None:
        if not self._templates:
            raise RuntimeError("a change of templates needs storage.change(templates=True)")


def _stored_vector(vector: np.ndarray) -> np.ndarray:
    # Kept as the SQLite backend keeps it: little-endian float32, bit for bit.
    return np.asarray(vector, dtype="<f4").astype(np.float32)
