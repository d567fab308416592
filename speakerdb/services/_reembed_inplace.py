"""Re-embedding in place, the service behind ``speakerdb reembed --in-place``: the
voiceprints an older speakerdb embedded from whole clips (:attr:`Utterance.spoken_margin_s`
``None``) embedded again from the clips' words, in the database itself, with its own
model, from the audio kept with ``--keep-audio`` (:mod:`speakerdb.services._sealing`).

It is the way up for a database that :mod:`speakerdb.services._reembed` cannot rebuild
as a new file (PostgreSQL), or whose audit log, thresholds, cohort, service keys and
replay fingerprints are to stay: everything but the vectors of whole clips stays as it
is. Each speaker is one change of the store (:meth:`Change.replace_vectors`): their clips'
vectors and their template are replaced together, so a crash loses nothing that
committed, and a reader sees a speaker all old or all new; the search index follows as
it does every change of templates. Speakers whose every clip is embedded from its words
are not touched, so a second run has nothing to do. A whole clip whose audio was not
kept stays as it is: its speaker is reported, to enroll again (or to remove that clip).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .._vectors import l2_normalize
from ..encoders._base import check_same_encoder
from ..errors import AudioError, DatabaseError, InputError, SpeakerNotFound
from ..types import ReembedReport

if TYPE_CHECKING:
    from ..audio._decode import Clip
    from ..storage import Storage
    from ..types import Speaker
    from ._model import ModelSlot
    from ._sealing import AudioKey

__all__ = ["reembed_in_place", "refuse_up_to_date"]

log = logging.getLogger(__name__)


def refuse_up_to_date(storage: Storage) -> None:
    """:class:`InputError` when no voiceprint of ``storage`` is of a whole clip."""
    with storage.read() as snapshot:
        if snapshot.whole_clip_speakers():
            return
    raise InputError(
        "every voiceprint of this database is embedded from the clips' words already: "
        "nothing to re-embed in place (to move to another model: reembed --to NEW.db "
        "--to-model MODEL)"
    )


def reembed_in_place(
    storage: Storage,
    slot: ModelSlot,
    key: AudioKey,
    progress: Callable[[int, int], None] | None = None,
) -> ReembedReport:
    """Embed again, with the database's own model, every clip of ``storage`` that was
    embedded whole and whose audio was kept (opened with ``key``), one speaker per
    change; ``progress(done, total)`` after each speaker."""
    started = time.monotonic()
    with storage.read() as snapshot:
        key.check_database(snapshot)
        stored = snapshot.encoder()
        speakers = snapshot.speakers()
    info = slot.info()
    if stored is not None:
        check_same_encoder(storage.path, stored, info)
    done = _Done()
    for number, speaker in enumerate(speakers, 1):
        try:
            _upgrade(storage, slot, key, speaker, done)
        except _Unusable as exc:  # any other error (of the database) stops the run
            done.failed[speaker.name] = str(exc)
            log.warning("%r is not re-embedded: %s", speaker.name, exc)
        if progress is not None:
            progress(number, len(speakers))
    where = storage.path.resolve() if isinstance(storage.path, Path) else storage.path
    log.info("re-embedded %d clip(s) in place in %s", done.clips, where)
    return ReembedReport(
        str(where),
        info.model,
        tuple(done.reembedded),
        done.clips,
        tuple(done.partial),
        tuple(done.reenroll),
        dict(done.failed),
        0,
        (),
        (),
        round(time.monotonic() - started, 3),
        in_place=True,
    )


class _Unusable(Exception):
    """One speaker's kept audio cannot be embedded (the others go on): why, in words."""


class _Done:
    """What happened to each speaker that holds whole clips."""

    def __init__(self) -> None:
        self.reembedded: list[str] = []
        self.partial: list[str] = []
        self.reenroll: list[str] = []
        self.failed: dict[str, str] = {}
        self.clips = 0


def _upgrade(
    storage: Storage, slot: ModelSlot, key: AudioKey, speaker: Speaker, done: _Done
) -> None:
    """Re-embed ``speaker``'s whole clips that have their audio kept, in one change."""
    name = speaker.name
    try:
        ids, clips, left = _whole_clips(storage, key, name)
    except SpeakerNotFound:
        return  # removed meanwhile
    if not ids and not left:
        return  # up to date: untouched
    if not ids:
        done.reenroll.append(name)
        return
    try:
        vectors = l2_normalize(slot.embed(clips))  # as an enrollment embeds them
    except AudioError as exc:
        raise _Unusable(str(exc)) from exc
    with storage.change(templates=True) as change:
        try:
            now = {u.id: u for u in change.utterances(name)}
        except SpeakerNotFound:
            return
        # Only the clips that are still whole and still this audio (another run, or a
        # removal, may have come first).
        wanted = [
            i
            for i, (number, clip) in enumerate(zip(ids, clips, strict=True))
            if number in now
            and now[number].spoken_margin_s is None
            and now[number].audio_sha256 == clip.sha256
        ]
        if wanted:
            change.replace_vectors(
                [ids[i] for i in wanted], [clips[i] for i in wanted], vectors[wanted]
            )
    if not wanted:
        return
    done.clips += len(wanted)
    (done.partial if left else done.reembedded).append(name)
    log.info("re-embedded %d clip(s) of %r from their words", len(wanted), name)


def _whole_clips(storage: Storage, key: AudioKey, name: str) -> tuple[list[int], list[Clip], int]:
    """The ids of ``name``'s whole clips whose audio was kept, those clips opened, and how
    many of their whole clips have no audio kept."""
    with storage.read() as snapshot:
        whole = [u for u in snapshot.utterances(name) if u.spoken_margin_s is None]
        kept = snapshot.kept_audio([u.id for u in whole]) if whole else {}
    opened = [u for u in whole if u.id in kept]
    try:
        clips = [key.open(kept[u.id], u) for u in opened]
    except DatabaseError as exc:  # their kept audio is damaged or altered
        raise _Unusable(str(exc)) from exc
    return [u.id for u in opened], clips, len(whole) - len(opened)
