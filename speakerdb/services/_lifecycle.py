"""The lifecycle of voiceprints, the service behind :attr:`SpeakerDB.lifecycle
<speakerdb.SpeakerDB.lifecycle>`: who a speaker is to other systems (their external id
and attributes, :mod:`speakerdb._metadata`), and its online backup.

Each method runs its own transaction; none embeds audio.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from .._metadata import clean_attributes, clean_external_id, merged_attributes
from .._names import clean_name
from ..errors import DatabaseError, SpeakerNotFound
from ..storage import Backup

if TYPE_CHECKING:
    from ..storage import Storage
    from ..types import BackupReport, Speaker

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
    ) -> Speaker:
        """Change the metadata of speaker ``name``; return the speaker after.

        ``external_id`` is set (a text), cleared (``None``) or kept (left out);
        :class:`DuplicateSpeaker` if another speaker has it. ``attributes`` are merged
        into the speaker's: a key given ``None`` is deleted.
        """
        name = clean_name(name)
        wanted = clean_external_id(external_id) if isinstance(external_id, str) else external_id
        given = None if attributes is None else clean_attributes(attributes)
        with self._storage.change() as change:
            current = change.speaker(name)
            new_id = current.external_id if wanted is ... else wanted
            merged = current.attributes
            if given is not None:
                merged = merged_attributes(current.attributes, given)
            speaker = change.set_metadata(name, new_id, merged)
        log.info("set the metadata of %r", name)
        return speaker
