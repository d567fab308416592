"""The lifecycle of voiceprints, the service behind :attr:`SpeakerDB.lifecycle
<speakerdb.SpeakerDB.lifecycle>`: who a speaker is to other systems (their external id
and attributes, :mod:`speakerdb._metadata`), groups (:mod:`speakerdb.services._groups`),
retention (removal of a speaker or of one clip, expiry and opt-out,
:mod:`speakerdb.services._retention`), export and import
(:mod:`speakerdb.services._archive`) and its online backup.

Each method runs its own transaction; none embeds audio. On a database that no write
has created (a mistyped path), every one that reads or changes what it holds refuses
with :func:`~speakerdb.storage.require_database`'s error and creates nothing;
``set_idle_days``, a setting, creates the database as the other settings do.
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
from ..storage import Backup, require_database
from ..types import ArchiveReport
from ._groups import GroupAdmin
from ._retention import expire_due, refuse_opted_out, remove_speaker

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..encoders._protocol import Encoder
    from ..storage import Storage
    from ..types import BackupReport, ReembedReport, Speaker, Tombstone
    from ._model import ModelSlot
    from ._sealing import AudioKey, KeyChoice

__all__ = ["Lifecycle"]


def _secret(passphrase: bytes | str | None) -> bytes | None:
    if passphrase is None:
        return None
    secret = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
    if not secret:
        raise InputError(
            "the passphrase is empty; give one, or none for an archive that is not encrypted"
        )
    return secret


log = logging.getLogger(__name__)


class Lifecycle:
    """Lifecycle administration of one database."""

    def __init__(self, storage: Storage, slot: ModelSlot, keys: KeyChoice | None = None) -> None:
        self._storage = storage
        self._slot = slot
        self._keys = keys
        #: The groups of speakers (:mod:`speakerdb.services._groups`): ``add``,
        #: ``remove``, ``list``, ``get``, ``delete``.
        self.groups = GroupAdmin(storage)

    def reembed(
        self,
        target: str | os.PathLike[str],
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        revision: str | None = None,
        overwrite: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReembedReport:
        """Build the database file ``target`` for ``model`` (or ``encoder``) from the
        enrollment audio kept with ``keep_audio``, opened with the database's audio key
        (:mod:`speakerdb.services._reembed`); ``progress(done, total)`` after each speaker.

        ``model`` may be the database's own when some of its voiceprints were embedded
        from whole clips by an older speakerdb (:attr:`DatabaseInfo.n_whole_clip_speakers`):
        the new database has every one embedded from the clips' words, as queries are.

        :class:`InputError` when ``target`` exists (unless ``overwrite``), when no key is
        given (or, without one, when no audio is kept at all) or it is not the database's,
        or when the model is the database's own and every voiceprint is from the clips'
        words already."""
        from ._reembed import reembed

        if model is None and encoder is None:
            raise InputError("name the new model (--to-model; model= or encoder= in Python)")
        options = self._slot.load_options() | {"revision": revision}
        return reembed(
            self._storage,
            self._kept_audio_key(),
            target,
            model,
            encoder,
            options,
            overwrite=overwrite,
            progress=progress,
        )

    def reembed_in_place(
        self, *, progress: Callable[[int, int], None] | None = None
    ) -> ReembedReport:
        """Embed again from their words, with the database's own model and in the
        database itself, the clips an older speakerdb embedded whole
        (:attr:`DatabaseInfo.n_whole_clip_speakers`) whose audio was kept, one speaker per
        transaction (:mod:`speakerdb.services._reembed_inplace`); the audit log, thresholds,
        cohort, keys and fingerprints stay. ``progress(done, total)`` after each speaker.
        A second run has nothing to do. Works on every backend, PostgreSQL included.

        :class:`InputError` when every voiceprint is from the clips' words already, or
        when no audio key is given (or, without one, no audio is kept at all) or it is
        not the database's; :class:`ModelMismatch` for another model than the database's."""
        from ._reembed_inplace import reembed_in_place, refuse_up_to_date

        require_database(self._storage)
        refuse_up_to_date(self._storage)
        key = self._kept_audio_key()
        return reembed_in_place(self._storage, self._slot, key, progress)

    def _kept_audio_key(self) -> AudioKey:
        """The key that opens the kept audio; :class:`InputError` without one, saying there
        is nothing to embed where no audio is kept (no key would help)."""
        from ._sealing import KeyChoice

        try:
            return (self._keys or KeyChoice(None)).key()
        except InputError:
            if self.kept_audio() == 0:
                raise InputError(
                    "this database keeps no enrollment audio, so reembed has nothing to "
                    "embed again: every speaker would have to enroll again; clips enrolled "
                    "with --keep-audio (keep_audio=True) can be re-embedded later"
                ) from None
            raise

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

    def export(
        self, target: str | os.PathLike[str], *, passphrase: bytes | str | None = None
    ) -> ArchiveReport:
        """Write the database to the portable archive ``target``
        (:mod:`speakerdb.services._archive`), encrypted when a ``passphrase`` is given."""
        from ._archive import build_document
        from ._archivefile import write_archive

        path = Path(target)
        if os.path.isdir(path) or not path.parent.is_dir():
            raise InputError(f"{path}: give the archive's file name in an existing folder")
        with self._storage.read() as snapshot:
            document, counts = build_document(snapshot)
        write_archive(path, document, _secret(passphrase))
        log.info("exported %d speaker(s) to %s", counts[0], path)
        encrypted = passphrase is not None
        return ArchiveReport(str(path.resolve()), encrypted, *counts[:3], n_cohort=counts[3])

    def import_archive(
        self,
        source: str | os.PathLike[str],
        *,
        passphrase: bytes | str | None = None,
        on_duplicate: str = "fail",
    ) -> ArchiveReport:
        """Add everything in the archive ``source`` to this database, in one transaction;
        :class:`ModelMismatch` for another encoder's archive, :class:`InputError` for a
        damaged, altered, oversized or wrongly decrypted one, and duplicates by
        ``on_duplicate`` (``"fail"`` or ``"skip"``; :mod:`speakerdb.services._archive`)."""
        from ._archive import ON_DUPLICATE, import_archive, parse_document
        from ._archivefile import read_archive

        if on_duplicate not in ON_DUPLICATE:
            raise InputError(f"on_duplicate is 'fail' or 'skip', got {on_duplicate!r}")
        path = Path(source)
        archive = parse_document(path, read_archive(path, _secret(passphrase)))
        with self._storage.change(templates=True) as change:
            imported, skipped = import_archive(change, path, archive, on_duplicate)
        if self._slot.stored is None:
            self._slot.stored = archive.encoder
        clips = sum(len(s.clips) for s in archive.speakers)
        counts = (len(archive.speakers), clips, len(archive.tombstones))
        log.info("imported %d speaker(s) from %s", len(imported), path)
        encrypted = passphrase is not None
        return ArchiveReport(
            str(path.resolve()),
            encrypted,
            *counts,
            tuple(imported),
            tuple(skipped),
            n_cohort=len(archive.cohort.clips),
        )

    def kept_audio(self, name: str | None = None) -> int:
        """How many clips (of speaker ``name``, or of everyone) have their audio kept
        (``keep_audio``); after a removal, none of theirs is."""
        require_database(self._storage)
        wanted = None if name is None else clean_name(name)
        with self._storage.read() as snapshot:
            return snapshot.kept_audio_count(wanted)

    def find(self, external_id: str) -> Speaker:
        """The speaker whose external id is ``external_id``; :class:`SpeakerNotFound` if none."""
        require_database(self._storage)
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
        require_database(self._storage)
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

    def set_watchlist(self, name: str, on: bool = True) -> Speaker:
        """Put speaker ``name`` on the watchlist (``on``) or take them off it."""
        require_database(self._storage)
        name = clean_name(name)
        with self._storage.change() as change:
            speaker = change.set_watchlist(name, bool(on))
        log.info("%r is %s the watchlist", name, "on" if on else "off")
        return speaker

    # -- retention (speakerdb.services._retention) ---------------------------

    def remove(self, name: str, *, purge_audit: bool = False) -> Speaker:
        """Delete ``name`` with their clips; their audit entries name them
        ``removed-<id>`` afterwards, or are deleted with ``purge_audit``."""
        require_database(self._storage)
        name = clean_name(name)
        with self._storage.change(templates=True) as change:
            return remove_speaker(change, name, purge_audit=purge_audit)

    def remove_utterance(self, utterance_id: int) -> Speaker:
        """Delete one enrolled clip (an :attr:`Utterance.id`) and its embedding; return its
        speaker, template recomputed.

        A speaker's last clip is not removed, since a speaker without clips has no
        voiceprint: that raises :class:`InputError`; remove the speaker instead."""
        require_database(self._storage)
        with self._storage.change(templates=True) as change:
            speaker = change.remove_utterance(utterance_id)
        log.info("removed clip #%d of %r", utterance_id, speaker.name)
        return speaker

    def opt_out(self, name: str, *, purge_audit: bool = False) -> Tombstone:
        """Remove ``name`` as :meth:`remove` does and keep a tombstone (their external id
        and name skeletons), so that they are not enrolled again; return it."""
        require_database(self._storage)
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
        require_database(self._storage)
        keys = None if name is None else name_keys(clean_name(name))
        wanted = None if external_id is None else clean_external_id(external_id)
        with self._storage.change() as change:
            return change.clear_tombstones(keys, wanted)

    def opt_outs(self) -> list[Tombstone]:
        """Every opt-out tombstone, oldest first."""
        require_database(self._storage)
        with self._storage.read() as snapshot:
            return snapshot.tombstones()

    def expire(self) -> list[Speaker]:
        """Remove the speakers whose expiry has passed now, and those idle for longer than
        the idle limit (:meth:`set_idle_days`); return them. Queries remove expired ones
        too before they search, and sweep for idle ones in the background at most
        hourly (:mod:`speakerdb.services._idle`); this sweeps at once."""
        require_database(self._storage)
        from ._idle import utcnow

        return expire_due(self._storage, utcnow())

    def set_idle_days(self, days: int) -> int | None:
        """Delete voiceprints that have not matched for ``days`` days (0: never, the
        default), counted from now on (:mod:`speakerdb.services._idle`); return the limit."""
        from ._idle import set_idle_days

        return set_idle_days(self._storage, days)

    def idle_days(self) -> tuple[int | None, datetime | None]:
        """The idle limit in days (``None``: off) and when it was turned on."""
        require_database(self._storage)
        from ._idle import idle_setting

        with self._storage.read() as snapshot:
            return idle_setting(snapshot)
