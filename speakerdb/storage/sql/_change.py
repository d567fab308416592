"""The writes of the SQL backends: a :class:`~speakerdb.storage.Change` on one write
session (SQLite's, and PostgreSQL's), which also collects what the storage must do
once it commits: the template updates for the index, the digest's rows, and whether
rows were deleted (so that the WAL is purged of them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from ...types import ApiKey, AuditEntry, EncoderInfo, Enrollment, Group, Speaker, Tombstone
from .._index import SpeakerIndex
from .._prints import StoredPrint
from .._rules import check_replacement, last_clip, name_taken
from . import _audit as audit
from . import _catalog as catalog
from . import _cohort as cohort
from . import _groups as membership
from . import _kept as kept
from . import _keys as keys
from . import _prints as prints
from . import _retention as retention
from ._models import SpeakerRow
from ._snapshot import SessionSnapshot

if TYPE_CHECKING:
    from ...audio._decode import Clip

__all__ = ["IndexOp", "SessionChange"]

# A template update for the index: (speaker id, new template), or (id, None) to remove.
IndexOp = tuple[int, np.ndarray | None]


class SessionChange(SessionSnapshot):
    """A :class:`~speakerdb.storage.Change` on one write session. Template updates are
    collected in :attr:`ops` for the index, which the storage applies once the change
    has committed (``SQLiteStorage.change``, ``PostgresStorage.change``)."""

    def __init__(self, session: Session, *, templates: bool) -> None:
        super().__init__(session)
        self._templates = templates
        self.ops: list[IndexOp] = []
        # The same changes for the digest: (speaker id, old template, new template).
        self.rows: list[catalog.TemplateChange] = []
        self.dim = 0
        self.deleted = False
        self.recorded: EncoderInfo | None = None

    def apply_to(self, index: SpeakerIndex) -> None:
        for speaker_id, template in self.ops:
            if template is None:
                index.remove(speaker_id)
            else:
                index.upsert(speaker_id, template)

    def set_setting(self, key: str, value: str) -> None:
        catalog.set_setting(self._session, key, value)

    def delete_setting(self, key: str) -> bool:
        return catalog.delete_setting(self._session, key)

    def record_encoder(self, info: EncoderInfo) -> None:
        catalog.write_encoder(self._session, info)
        self.recorded = info

    def enroll(self, name: str, clips: Sequence[Clip], embeddings: np.ndarray) -> Enrollment:
        self._check_templates()
        session = self._session
        catalog.refuse_enrolled(session, clips)
        row, created = catalog.get_or_create_speaker(session, name)
        added = catalog.add_utterances(session, row, clips, embeddings)
        old = row.template
        self._upsert(row, old, catalog.refresh_template(session, row))
        speaker = catalog.to_speaker(row, catalog.count_utterances(session, row.id))
        return Enrollment(speaker, tuple(catalog.to_utterance(u, name) for u in added), created)

    def remove_speaker(self, name: str) -> Speaker:
        self._check_templates()
        row = catalog.require_speaker(self._session, name)
        removed = catalog.to_speaker(row, catalog.count_utterances(self._session, row.id))
        self.rows.append((row.id, row.template, b""))
        self._session.delete(row)
        self.ops.append((removed.id, None))
        self.deleted = True
        return removed

    def replace_vectors(
        self, utterance_ids: Sequence[int], clips: Sequence[Clip], embeddings: np.ndarray
    ) -> Speaker:
        self._check_templates()
        session = self._session
        rows = [catalog.require_utterance(session, i) for i in utterance_ids]
        check_replacement([(u.id, u.speaker.name, u.audio_sha256) for u in rows], clips)
        catalog.replace_vectors(rows, clips, embeddings)
        owner = rows[0].speaker
        old = owner.template
        self._upsert(owner, old, catalog.refresh_template(session, owner))
        return catalog.to_speaker(owner, catalog.count_utterances(session, owner.id))

    def remove_utterance(self, utterance_id: int) -> Speaker:
        self._check_templates()
        session = self._session
        row = catalog.require_utterance(session, utterance_id)
        owner = row.speaker
        left = catalog.count_utterances(session, owner.id) - 1
        if left < 1:
            raise last_clip(utterance_id, owner.name)
        session.delete(row)
        session.flush()
        old = owner.template
        self._upsert(owner, old, catalog.refresh_template(session, owner))
        self.deleted = True
        return catalog.to_speaker(owner, left)

    def rename(self, old: str, new: str) -> Speaker:
        session = self._session
        row = catalog.require_speaker(session, old)
        if new != old and catalog.find_speaker(session, new) is not None:
            raise name_taken(new)
        row.name = new
        catalog.bump_counter(session, "names_version")  # for the index's cache of names
        session.flush()
        return catalog.to_speaker(row, catalog.count_utterances(session, row.id))

    def set_metadata(
        self,
        name: str,
        external_id: str | None,
        attributes: Mapping[str, Any],
        expires_at: datetime | None,
    ) -> Speaker:
        return catalog.set_metadata(self._session, name, external_id, attributes, expires_at)

    def set_watchlist(self, name: str, on: bool) -> Speaker:
        return catalog.set_watchlist(self._session, name, on)

    def add_to_group(self, group: str, names: Sequence[str]) -> int:
        return membership.add_members(self._session, group, names)

    def remove_from_group(self, group: str, names: Sequence[str]) -> int:
        return membership.remove_members(self._session, group, names)

    def delete_group(self, group: str) -> Group:
        return membership.delete_group(self._session, group)

    def rewrite_audit(self, name: str, replacement: str | None) -> int:
        self.deleted = True  # the old rows' images must leave the WAL
        return audit.rewrite(self._session, name, replacement)

    def keep_audio(self, utterance_id: int, key_id: str, data: bytes) -> None:
        kept.keep(self._session, utterance_id, key_id, data)

    def record_matches(self, names: Sequence[str], when: datetime, older_than: datetime) -> int:
        return kept.record_matches(self._session, names, when, older_than)

    def set_last_match(self, name: str, when: datetime) -> Speaker:
        return catalog.set_last_match(self._session, name, when)

    def add_tombstone(self, external_id: str | None, keys: tuple[str, str]) -> Tombstone:
        return retention.add_tombstone(self._session, external_id, keys)

    def clear_tombstones(self, keys: tuple[str, str] | None, external_id: str | None) -> int:
        return retention.clear_tombstones(self._session, keys, external_id)

    def add_cohort(self, label: str, clips: Sequence[Clip], embeddings: np.ndarray) -> int:
        return cohort.add(self._session, label, clips, embeddings)

    def clear_cohort(self) -> int:
        self.deleted = True  # the voices' embeddings leave the WAL too
        return cohort.clear(self._session)

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        audit.add_entries(self._session, entries)

    def prune_audit(self, before: datetime, keep: int) -> None:
        audit.prune(self._session, before, keep)

    def clear_audit(self) -> int:
        self.deleted = True
        return audit.clear(self._session)

    def add_prints(self, stored: Sequence[StoredPrint]) -> None:
        prints.add(self._session, stored)

    def prune_prints(self, before: datetime) -> int:
        removed = prints.prune(self._session, before)
        self.deleted = self.deleted or removed > 0
        return removed

    def add_api_key(self, key: ApiKey, digest: str) -> None:
        keys.add_key(self._session, key, digest)

    def revoke_api_key(self, name: str) -> ApiKey:
        self.deleted = True  # the WAL keeps no copy of the revoked key's hash
        return keys.revoke_key(self._session, name)

    def _upsert(self, row: SpeakerRow, old: bytes, template: np.ndarray) -> None:
        """Record the change of ``row``'s template from ``old`` to ``template``."""
        self.rows.append((row.id, old, row.template))
        self.ops.append((row.id, template))
        self.dim = len(template)

    def _check_templates(self) -> None:
        if not self._templates:
            # The index lock must be taken before the transaction begins (lock order).
            raise RuntimeError("a change of templates needs storage.change(templates=True)")
