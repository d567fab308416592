"""Enrollment, the service behind :meth:`SpeakerDB.enroll <speakerdb.SpeakerDB.enroll>`:
one speaker, or many.

An enrollment has two steps. *Preparing* (:mod:`speakerdb.services._enroll_prepare`)
decodes the clips (a path or encoded audio; a decoded clip passes through), embeds and
fingerprints them and runs the quality gates (:mod:`speakerdb.services._enroll_gates`);
it reads the database but never writes.
*Committing* (:mod:`speakerdb.services._enroll_commit`) writes prepared enrollments in
one ``BEGIN IMMEDIATE`` transaction and updates the index once. :meth:`enroll` commits
one speaker; :meth:`enroll_many` commits up to :data:`CHUNK_SPEAKERS` speakers, or
:data:`CHUNK_SECONDS` of work, at a time, so that a bulk enrollment writes the index
file once per chunk instead of once per speaker. A crash loses at most the chunk in
progress, none of which was reported as enrolled.

The quality gates look only at what they need, so they no longer read every enrolled
utterance. What still grows with the database is the index update of each commit (a
copy of the index and a rewrite of its file), which is paid once per chunk rather than
once per speaker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .._names import clean_name
from ..audio._decode import Clip, ClipInput
from ..errors import InputError, SpeakerDBError
from ..types import Enrollment
from ._enroll_commit import Committing
from ._enroll_metadata import Metadata
from ._enroll_prepare import Embedder, Prepared, Preparing

if TYPE_CHECKING:
    from ..storage import Storage
    from ._model import ModelSlot
    from ._sealing import AudioKey, KeyChoice
    from ._settings import Settings

__all__ = ["CHUNK_SECONDS", "CHUNK_SPEAKERS", "Enrolling"]

#: Most speakers committed in one transaction by :meth:`Enrolling.enroll_many`.
CHUNK_SPEAKERS = 64
#: Longest stretch of work (seconds) before :meth:`Enrolling.enroll_many` commits.
CHUNK_SECONDS = 5.0


class Enrolling:
    """Enrollment into one database: its storage, its model and its decision settings."""

    def __init__(
        self,
        storage: Storage,
        slot: ModelSlot,
        settings: Settings,
        *,
        speech_gate: bool = True,
        keys: KeyChoice | None = None,
    ) -> None:
        self._storage = storage
        self._slot = slot
        self._keys = keys
        self._preparing = Preparing(storage, slot, settings)
        self._committing = Committing(storage, slot)
        #: Whether clips that are not speech are refused (:mod:`speakerdb.services._quality`).
        self.speech_gate = speech_gate

    def enroll(
        self,
        name: str,
        clips: Sequence[ClipInput],
        *,
        force: bool = False,
        metadata: Metadata | None = None,
        keep_audio: bool = False,
    ) -> Enrollment:
        """Create ``name`` or add clips to it; all clips of the call are enrolled, or none.

        A clip whose audio is enrolled for ``name`` already is skipped (listed in
        :attr:`Enrollment.skipped`), so that repeating a call changes nothing; when every
        clip is skipped the call is a successful no-op. Raises :class:`AudioError` for an
        unusable clip, :class:`DuplicateUtterance` when the same audio is enrolled for
        another speaker, :class:`InvalidName` for a bad name,
        :class:`EnrollmentRefused` when a quality gate refuses (:mod:`speakerdb.services._quality`;
        ``force`` enrolls anyway, and the issues are returned with the result).
        ``metadata`` is set in the same transaction (even when every clip is skipped).
        ``keep_audio`` keeps the clips' audio, sealed (:mod:`speakerdb.services._sealing`).
        """
        watchlisting = metadata is not None and metadata.watchlist
        key = self._audio_key(keep_audio)
        prepared = self._preparing.prepare(
            name,
            clips,
            [],
            force=force,
            speech_gate=self.speech_gate,
            watchlisting=watchlisting,
            key=key,
        )
        prepared = replace(prepared, metadata=metadata)
        if not prepared.clips and metadata is None:
            return self._committing.nothing_new(prepared)
        return self._committing.commit([prepared])[0]

    def enroll_many(
        self,
        groups: Iterable[tuple[str, Sequence[ClipInput]]],
        *,
        force: bool = False,
        embedder: Embedder | None = None,
        keep_audio: bool = False,
    ) -> Iterator[tuple[str, Enrollment | SpeakerDBError]]:
        """:meth:`SpeakerDB.enroll_many <speakerdb.SpeakerDB.enroll_many>`: committed in
        chunks of :data:`CHUNK_SPEAKERS` speakers or :data:`CHUNK_SECONDS` of work. The
        clips are embedded by ``embedder`` (default: the database's model)."""
        embedder = embedder or self._slot
        key = self._audio_key(keep_audio)
        commit_chunk = self._committing.commit_chunk
        pending: list[Prepared] = []
        started = time.monotonic()
        for name, clips in groups:
            if _clean_or_none(name) in {p.name for p in pending}:
                # Committed first: the gates then check the new clips against those.
                yield from commit_chunk(pending, embedder)
                pending, started = [], time.monotonic()
            try:
                prepared = self._preparing.prepare(
                    name,
                    clips,
                    pending,
                    embedder,
                    force=force,
                    speech_gate=self.speech_gate,
                    key=key,
                )
            except SpeakerDBError as exc:
                yield name, exc
            else:
                if prepared.clips:
                    pending.append(prepared)
                else:
                    yield name, self._committing.nothing_new(prepared)
            if len(pending) >= CHUNK_SPEAKERS or time.monotonic() - started > CHUNK_SECONDS:
                yield from commit_chunk(pending, embedder)
                pending, started = [], time.monotonic()
        yield from commit_chunk(pending, embedder)

    def find_enrolled(self, clips: Sequence[Clip]) -> dict[str, str]:
        """Map the audio hash of each clip that is enrolled already to its speaker's name."""
        return self._preparing.find_enrolled(clips)

    # -- internals -------------------------------------------------------

    def _audio_key(self, keep_audio: bool) -> AudioKey | None:
        """The key to seal kept audio with (checked against the database's), or ``None``."""
        if not keep_audio:
            return None
        if self._keys is None:
            raise InputError("this database keeps no audio")
        key = self._keys.key()
        with self._storage.read() as snapshot:
            key.check_database(snapshot)
        return key


def _clean_or_none(name: str) -> str | None:
    try:
        return clean_name(name)
    except SpeakerDBError:
        return None  # refused when its turn comes
