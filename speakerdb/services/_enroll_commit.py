"""The second step of an enrollment, *committing* (:mod:`speakerdb.services._enrolling`):
prepared enrollments (:class:`~speakerdb.services._enroll_prepare.Prepared`) written in
one ``BEGIN IMMEDIATE`` transaction, their names checked again under the write lock, the
encoder recorded at the first write, and the index updated once."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .._names import admit_name
from ..audio._decode import Clip
from ..encoders._base import check_same_encoder
from ..errors import DuplicateUtterance, InvalidName, OptedOut, SpeakerDBError
from ..types import EncoderInfo, Enrollment
from ._enroll_prepare import Embedder, Prepared
from ._replay import store_enrolled_prints
from ._retention import refuse_opted_out

if TYPE_CHECKING:
    from ..storage import Change, Storage
    from ._model import ModelSlot

__all__ = ["Committing", "record_encoder"]

log = logging.getLogger(__name__)


class Committing:
    """Committing prepared enrollments into one database: its storage and its model."""

    def __init__(self, storage: Storage, slot: ModelSlot) -> None:
        self._storage = storage
        self._slot = slot

    def commit(
        self, pending: Sequence[Prepared], embedder: Embedder | None = None
    ) -> list[Enrollment]:
        """Write every prepared enrollment in one transaction; update the index once."""
        info = (embedder or self._slot).info()
        with self._storage.change(templates=True) as change:
            # Checked again under the write lock: another process may have enrolled a
            # look-alike name since this call prepared its own.
            names = set(change.names())
            for prepared in pending:
                admit_name(prepared.given, prepared.name, names)
                if prepared.name not in names:
                    refuse_opted_out(change, prepared.name, None)
                names.add(prepared.name)
            recorded = record_encoder(self._storage, change, info)
            results = [_write(change, p) for p in pending]
        if recorded is not None:
            self._slot.stored = recorded
        for result in results:
            log.info("enrolled %d clip(s) for %r", len(result.added), result.speaker.name)
            if result.notice:
                log.info("enrollment notice: %s", result.notice)
        return results

    def commit_chunk(
        self, pending: list[Prepared], embedder: Embedder
    ) -> Iterator[tuple[str, Enrollment | SpeakerDBError]]:
        """:meth:`commit` a chunk of a bulk enrollment, each speaker's result by the name
        the caller gave; when the chunk is refused, speaker by speaker."""
        if not pending:
            return
        try:
            done = self.commit(pending, embedder)
        except (DuplicateUtterance, InvalidName, OptedOut):
            # Another process enrolled some of this audio, or a look-alike name, meanwhile,
            # and the chunk was rolled back: one by one, the others still go in, each
            # reported as soon as it is committed. Any other error (a busy or failing
            # database) is not retried speaker by speaker: it propagates.
            for prepared in pending:
                try:
                    yield prepared.given, self.commit([prepared], embedder)[0]
                except (DuplicateUtterance, InvalidName, OptedOut) as exc:
                    yield prepared.given, exc
            return
        yield from zip((p.given for p in pending), done, strict=True)

    def nothing_new(self, prepared: Prepared) -> Enrollment:
        """The result of a call whose every clip was enrolled already: nothing written."""
        with self._storage.read() as snapshot:
            speaker = snapshot.speaker(prepared.name)
        log.info("every clip is enrolled for %r already; nothing to do", prepared.name)
        return Enrollment(speaker, (), False, skipped=_sources(prepared.skipped))


def record_encoder(storage: Storage, change: Change, info: EncoderInfo) -> EncoderInfo | None:
    """Record ``info`` at the first write of embeddings (and return it), else check it is
    the recorded encoder."""
    stored = change.encoder()
    if stored is None:
        change.record_encoder(info)
        return info
    check_same_encoder(storage.path, stored, info)
    return None


def _write(change: Change, prepared: Prepared) -> Enrollment:
    """Enroll one prepared speaker in ``change`` (and set its metadata)."""
    if prepared.clips:
        result = change.enroll(prepared.name, prepared.clips, prepared.embeddings)
        store_enrolled_prints(change, result.added, prepared.prints)
        if prepared.key is not None:
            prepared.key.record(change)
            for added in result.added:
                sealed = prepared.sealed[added.audio_sha256]
                change.keep_audio(added.id, prepared.key.key_id, sealed)
    else:  # metadata only: every clip was enrolled for them already
        result = Enrollment(change.speaker(prepared.name), (), False)
    if prepared.metadata is not None:
        result = replace(result, speaker=prepared.metadata.apply(change, prepared.name))
    return replace(
        result,
        issues=prepared.issues,
        skipped=_sources(prepared.skipped),
        notice=_one_clip_notice(result),
    )


def _sources(clips: Sequence[Clip]) -> tuple[str | None, ...]:
    return tuple(c.source for c in clips)


def _one_clip_notice(result: Enrollment) -> str | None:
    """The warning for a call that left its speaker with a voiceprint of one clip."""
    if not result.added or result.speaker.n_utterances != 1:
        return None
    return (
        f"{result.speaker.name!r} is enrolled from one clip: its voiceprint is unsteady; "
        "enroll 3 or more clips, from different recordings"
    )
