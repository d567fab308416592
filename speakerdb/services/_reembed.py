"""Re-embedding, the service behind ``speakerdb reembed``: a new database for another
model, built from the enrollment audio kept with ``--keep-audio``
(:mod:`speakerdb.services._sealing`); or for the same model, when the database holds
voiceprints an older speakerdb embedded from whole clips (:attr:`Utterance.spoken_margin_s`
``None``), so that they are embedded from the clips' words as queries are.

Every speaker whose audio was kept is enrolled in the new database from it, with
their external id, attributes, expiry, watchlist mark, groups and last match, and their
audio kept again under the same key (so the new database can be re-embedded in
turn); a speaker whose clips were only partly kept is enrolled from those. A
speaker with no kept audio cannot be re-embedded: the report names them, to enroll
again. The opt-out tombstones carry over, and so do the settings that do not depend
on the model (:data:`CARRIED`). What does not carry over is said in the report:
thresholds (stored, set or calibrated, they are thresholds of the old model's
scores: the new model's defaults apply until ``speakerdb calibrate``), the cohort
(kept as the old model's embeddings only), the audit log (the old database's record
of its decisions) and the service's keys.

The source is only read. The new database is built in a hidden file beside the
target (``.NAME.reembed-partial``) and renamed to the target only once it is
complete, so a killed run leaves no file that looks finished; the next run
removes what it left.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import is_server_url
from ..errors import (
    AudioError,
    DatabaseError,
    DuplicateUtterance,
    EnrollmentRefused,
    InputError,
    InvalidName,
    OptedOut,
    SpeakerNotFound,
)
from ..storage import open_storage
from ..storage._errors import missing_folder
from ..storage._index import index_path_for
from ..types import ReembedReport
from ._enroll_commit import record_encoder
from ._enroll_metadata import Metadata
from ._enrolling import Enrolling
from ._model import ModelSlot
from ._reembed_copy import copy_speaker, up_to_date
from ._sealing import AudioKey, KeyChoice
from ._settings import Settings

if TYPE_CHECKING:
    from ..audio._decode import Clip
    from ..encoders._protocol import Encoder
    from ..storage import Storage
    from ..types import EncoderInfo, Group, Speaker, Tombstone, Utterance

    #: How speakers go into the new database: enrolled from their kept audio, or (with
    #: the same model only) copied as they are (:func:`copy_speaker`).
    _Ways = tuple[Enrolling, Callable[[Speaker], int] | None]

__all__ = ["CARRIED", "partial_path", "reembed"]

log = logging.getLogger(__name__)

#: The settings that do not depend on the model, taken over as they are.
CARRIED = (
    "audit",
    "audit_retention_days",
    "audit_max_rows",
    "replay_window_s",
    "countermeasure",
    "score_norm",
    "asnorm_top_n",
    "index_kind",
    "index_ivf_from",
    "idle_days",
)
# Refusals of one speaker by the new database: reported, and the others go on.
_REFUSED = (AudioError, DuplicateUtterance, EnrollmentRefused, InvalidName, OptedOut)


def partial_path(target: Path) -> Path:
    """Where the database for ``target`` is built until it is complete."""
    return target.with_name(f".{target.name}.reembed-partial")


def reembed(
    source: Storage,
    key: AudioKey,
    target: str | os.PathLike[str],
    model: str | None,
    encoder: Encoder | None,
    options: dict[str, Any],
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReembedReport:
    """Build the database ``target`` for ``model`` (or ``encoder``) from ``source``'s kept
    audio, opened with ``key``; ``progress(done, total)`` after each speaker."""
    started = time.monotonic()
    path = _checked_target(source, target, overwrite)
    old = _Source.read(source, key)
    partial = partial_path(path)
    _discard(partial)  # what a killed run left
    storage = open_storage(partial)
    try:
        slot = ModelSlot(partial, None, model, encoder, options)
        info = slot.info()
        copying = None
        if _own_model(old, info):
            copying = functools.partial(copy_speaker, source, storage, info)
        enrolling = Enrolling(
            storage, slot, Settings(storage, slot, None), speech_gate=False, keys=KeyChoice.of(key)
        )
        done = _enroll_all(source, (enrolling, copying), key, old.speakers, progress)
        _carry_over(storage, info, old, done)
        storage.close()
        _publish(partial, path)
    except BaseException:
        storage.close()
        _discard(partial)
        raise
    log.info("re-embedded %d speaker(s) into %s", len(done.enrolled), path)
    return ReembedReport(
        str(path.resolve()),
        info.model,
        tuple(n for n in done.enrolled if n not in done.partial and n not in done.copied),
        done.clips,
        tuple(done.partial),
        tuple(done.reenroll),
        dict(done.failed),
        len(old.tombstones),
        tuple(sorted(k for k in old.settings if k in CARRIED)),
        old.leftovers,
        round(time.monotonic() - started, 3),
        tuple(done.copied),
    )


@dataclass(frozen=True, slots=True)
class _Source:
    """What the source database holds besides the kept audio, read once at the start."""

    speakers: list[Speaker]
    settings: dict[str, str]
    tombstones: list[Tombstone]
    encoder: EncoderInfo | None
    groups: list[Group]
    #: What does not carry over, in words (:func:`_not_carried`).
    leftovers: tuple[str, ...]
    #: How many speakers hold voiceprints of whole clips (:meth:`Snapshot.whole_clip_speakers`).
    whole_clip: int

    @classmethod
    def read(cls, source: Storage, key: AudioKey) -> _Source:
        """``source`` read in one snapshot, once ``key`` is checked to be its audio key."""
        with source.read() as snapshot:
            key.check_database(snapshot)
            settings = snapshot.settings()
            leftovers = _not_carried(settings, len(snapshot.cohort()), len(snapshot.api_keys()))
            return cls(
                snapshot.speakers(),
                settings,
                snapshot.tombstones(),
                snapshot.encoder(),
                snapshot.groups(),
                leftovers,
                snapshot.whole_clip_speakers(),
            )


def _own_model(old: _Source, new: EncoderInfo) -> bool:
    """Whether ``new`` is the database's own model; :class:`InputError` when it is and
    none of its voiceprints is of whole clips (embedding those again from the clips'
    words is the only point of the same model)."""
    same = old.encoder is not None and (new.model, new.dim) == (old.encoder.model, old.encoder.dim)
    if same and not old.whole_clip:
        raise InputError(
            f"the database is embedded with {new.model} already, every voiceprint from "
            "the clips' words; give another model (--to-model; model= in Python)"
        )
    if same:
        log.info(
            "re-embedding from the clips' words: %d speaker(s) hold whole clips", old.whole_clip
        )
    return same


def _carry_over(storage: Storage, info: EncoderInfo, old: _Source, done: _Done) -> None:
    """Write to the new database, in one change, what is not embedded: its encoder, the
    settings of :data:`CARRIED`, the opt-outs, the last matches and the groups."""
    with storage.change() as change:
        record_encoder(storage, change, info)
        for name, value in old.settings.items():
            if name in CARRIED:
                change.set_setting(name, value)
        for tombstone in old.tombstones:
            change.add_tombstone(tombstone.external_id, (tombstone.name_key, tombstone.folded_key))
        for speaker in old.speakers:
            if speaker.name in done.enrolled and speaker.last_match_at is not None:
                change.set_last_match(speaker.name, speaker.last_match_at)
        for group in old.groups:  # empty ones too; members who must enroll again are not in
            change.add_to_group(group.name, [m for m in group.members if m in done.enrolled])


class _Done:
    """What happened to each speaker."""

    def __init__(self) -> None:
        self.enrolled: list[str] = []
        self.partial: list[str] = []
        self.reenroll: list[str] = []
        self.copied: list[str] = []
        self.failed: dict[str, str] = {}
        self.clips = 0


def _enroll_all(
    source: Storage,
    enrolling: _Ways,
    key: AudioKey,
    speakers: Sequence[Speaker],
    progress: Callable[[int, int], None] | None,
) -> _Done:
    done = _Done()
    for number, speaker in enumerate(speakers, 1):
        try:
            _enroll_one(source, enrolling, key, speaker, done)
        except _Unusable as exc:
            done.failed[speaker.name] = str(exc)
            log.warning("%r is not re-embedded: %s", speaker.name, exc)
        if progress is not None:
            progress(number, len(speakers))
    return done


class _Unusable(Exception):
    """One speaker cannot be re-embedded (the others go on): why, in words."""


def _enroll_one(source: Storage, ways: _Ways, key: AudioKey, speaker: Speaker, done: _Done) -> None:
    enrolling, copying = ways
    try:
        clips, utterances = _kept_clips(source, key, speaker.name)
    except SpeakerNotFound:
        return  # removed meanwhile
    except DatabaseError as exc:  # their kept audio is damaged or altered
        raise _Unusable(str(exc)) from exc
    if not clips and copying is not None and up_to_date(utterances):
        done.clips += copying(speaker)
        done.enrolled.append(speaker.name)
        done.copied.append(speaker.name)
        return
    if not clips:
        done.reenroll.append(speaker.name)
        return
    metadata = Metadata(
        speaker.external_id, speaker.attributes or None, speaker.expires_at, speaker.watchlist
    )  # (groups are written at the end, empty ones too)
    try:
        enrolling.enroll(speaker.name, clips, force=True, metadata=metadata, keep_audio=True)
    except _REFUSED as exc:  # any other error of the new database stops the whole run
        raise _Unusable(str(exc)) from exc
    done.enrolled.append(speaker.name)
    done.clips += len(clips)
    if len(clips) < len(utterances):
        done.partial.append(speaker.name)


def _kept_clips(source: Storage, key: AudioKey, name: str) -> tuple[list[Clip], list[Utterance]]:
    """The clips of ``name`` whose audio was kept, opened; and all their clips."""
    with source.read() as snapshot:
        utterances = snapshot.utterances(name)
        kept = snapshot.kept_audio([u.id for u in utterances])
    return [key.open(kept[u.id], u) for u in utterances if u.id in kept], utterances


def _not_carried(settings: dict[str, str], cohort: int, keys: int) -> tuple[str, ...]:
    thresholds = sorted(
        k
        for k in settings
        if k == "threshold" or k.startswith("threshold:") or k.endswith("_threshold")
    )
    said = []
    if thresholds:
        said.append(
            f"thresholds ({', '.join(thresholds)}): set on the old voiceprints' scores (of the "
            "old model, or of whole clips); the defaults apply until `speakerdb calibrate` "
            "or `set-threshold`"
        )
    if cohort:
        said.append(
            f"the cohort ({cohort} clips): kept as the old model's embeddings only; import it "
            "again (`speakerdb cohort import`)"
        )
    said.append("the audit log: the old database's record of its decisions stays with it")
    if keys:
        said.append(f"the service's keys ({keys}): create them again (`speakerdb key create`)")
    return tuple(said)


def _checked_target(source: Storage, target: str | os.PathLike[str], overwrite: bool) -> Path:
    if is_server_url(target):
        raise InputError(
            "reembed builds a database file; for PostgreSQL, reembed to a file, then "
            "`speakerdb export` it and `speakerdb import` it into the server"
        )
    path = Path(target).expanduser()
    if not path.parent.is_dir():
        raise InputError(missing_folder(path))
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give the new database's file name")
    if isinstance(source.path, Path) and path.resolve() == source.path.resolve():
        raise InputError(f"{path}: is this database; give the new database another file")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; give another file, or --overwrite to replace it")
    return path


def _sidecars(path: Path) -> tuple[Path, ...]:
    index = index_path_for(path)
    suffixes = ("-wal", "-shm", "-journal")
    return (
        *(path.with_name(path.name + s) for s in suffixes),
        index,
        index.with_name(index.name + ".lock"),
    )


def _discard(partial: Path) -> None:
    for leftover in (partial, *_sidecars(partial)):
        leftover.unlink(missing_ok=True)


def _publish(partial: Path, target: Path) -> None:
    """Rename the complete database to ``target`` (its index with it); an old target's
    journal and index go first, so that none of them is applied to the new file."""
    journal = partial.with_name(partial.name + "-wal")
    if journal.exists() and journal.stat().st_size:
        raise DatabaseError(f"{journal}: the new database was not closed cleanly; run again")
    for old in _sidecars(target):
        old.unlink(missing_ok=True)
    index = index_path_for(partial)
    if index.exists():
        os.replace(index, index_path_for(target))
    os.replace(partial, target)
    for leftover in _sidecars(partial):
        leftover.unlink(missing_ok=True)
