"""The lifecycle of voiceprints, the service behind :attr:`SpeakerDB.lifecycle
<speakerdb.SpeakerDB.lifecycle>`: who a speaker is to other systems (their external id
and attributes, :mod:`speakerdb._metadata`), retention (removal, expiry and opt-out,
:mod:`speakerdb.services._retention`) and its online backup.

Each method runs its own transaction; none embeds audio.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from .._metadata import clean_attributes, clean_expiry, clean_external_id, merged_attributes
from .._names import clean_name, name_keys
from ..errors import DatabaseError, InputError, SpeakerNotFound
from ..storage import Backup
from ._retention import expire_due, refuse_opted_out, remove_speaker

if TYPE_CHECKING:
    from ..storage import Storage
    from ..types import BackupReport, Speaker, Tombstone

__all__ = ["Lifecycle"]

log = logging.getLogger(__name__)


class Lifecycle:
    """Lifecycle administration of one database."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def backup(self, target: str | os.PathLike[str], *, overwrite: bool = False) -> BackupReport:
        """Write a consistent copy of the live database to the file ``target`` while
        others go on reading and writing (:mod:`speakerdb.storage.sqlite._backup`).

        :class:`InputError` when ``target`` exists (unless ``overwrite``), is the
        database, or its folder is missing; :class:`DatabaseError` on a storage without
        a file (PostgreSQL: use ``pg_dump``)."""
        if not isinstance(self._storage, Backup):
            raise DatabaseError(
                f"{self._storage.path}: this storage is not backed up by speakerdb; use its "
                "own tools (for PostgreSQL, `pg_dump --format=custom`)"
            )
        report = self._storage.backup(Path(target), overwrite=overwrite)
        log.info("backed up %s to %s", self._storage.path, report.path)
        return report

    def find(self, external_id: str) -> Speaker:
        """The speaker whose external id is ``external_id``; :class:`SpeakerNotFound` if none."""
        wanted = clean_external_id(external_id)
        with self._storage.read() as snapshot:
            found = snapshot.speaker_by_external_id(wanted)
        if found is None:
            raise SpeakerNotFound(f"no speaker has external id {wanted!r}")
        return found

    def set_metadata(
        self,
        name: str,
        *,
        external_id: str | EllipsisType | None = ...,
        attributes: Mapping[str, Any] | None = None,
        expires_at: datetime | date | str | EllipsisType | None = ...,
    ) -> Speaker:
        """Change the metadata of speaker ``name``; return the speaker after.

        ``external_id`` is set (a text), cleared (``None``) or kept (left out);
        :class:`DuplicateSpeaker` if another speaker has it, :class:`OptedOut` if a person
        with it opted out. ``attributes`` are merged into the speaker's: a key given
        ``None`` is deleted. ``expires_at`` (a future date or aware datetime) is set,
        cleared (``None``) or kept (left out).
        """
        name = clean_name(name)
        wanted = clean_external_id(external_id) if isinstance(external_id, str) else external_id
        given = None if attributes is None else clean_attributes(attributes)
        expiry = expires_at if expires_at is ... or expires_at is None else clean_expiry(expires_at)
        with self._storage.change() as change:
            current = change.speaker(name)
            if isinstance(wanted, str) and wanted != current.external_id:
                refuse_opted_out(change, None, wanted)
            new_id = current.external_id if wanted is ... else wanted
            merged = current.attributes
            if given is not None:
                merged = merged_attributes(current.attributes, given)
            expiring = current.expires_at if expiry is ... else expiry
            speaker = change.set_metadata(name, new_id, merged, expiring)
        log.info("set the metadata of %r", name)
        return speaker

    # -- retention (speakerdb.services._retention) ---------------------------

    def remove(self, name: str, *, purge_audit: bool = False) -> Speaker:
        """Delete ``name`` with their clips; their audit entries name them
        ``removed-<id>`` afterwards, or are deleted with ``purge_audit``."""
        name = clean_name(name)
        with self._storage.change(templates=True) as change:
            return remove_speaker(change, name, purge_audit=purge_audit)

    def opt_out(self, name: str, *, purge_audit: bool = False) -> Tombstone:
        """Remove ``name`` as :meth:`remove` does and keep a tombstone (their external id
        and name skeletons), so that they are not enrolled again; return it."""
        name = clean_name(name)
        with self._storage.change(templates=True) as change:
            removed = remove_speaker(change, name, purge_audit=purge_audit)
            tombstone = change.add_tombstone(removed.external_id, name_keys(name))
        log.info("%r opted out: voiceprint deleted, tombstone #%d kept", name, tombstone.id)
        return tombstone

    def clear_opt_out(self, name: str | None = None, *, external_id: str | None = None) -> int:
        """Delete the tombstones of ``name`` (and its look-alikes) and of ``external_id``,
        so that the person may be enrolled again; return how many there were."""
        if name is None and external_id is None:
            raise InputError("name the person whose opt-out to clear, or give their --id")
        keys = None if name is None else name_keys(clean_name(name))
        wanted = None if external_id is None else clean_external_id(external_id)
        with self._storage.change() as change:
            return change.clear_tombstones(keys, wanted)

    def opt_outs(self) -> list[Tombstone]:
        """Every opt-out tombstone, oldest first."""
        with self._storage.read() as snapshot:
            return snapshot.tombstones()

    def expire(self) -> list[Speaker]:
        """Remove the speakers whose expiry has passed now; return them. Queries do this
        too before they search, so this is for a scheduled job, not for correctness."""
        return expire_due(self._storage)
