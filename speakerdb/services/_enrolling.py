"""Enrollment, the service behind :meth:`SpeakerDB.enroll <speakerdb.SpeakerDB.enroll>`:
one speaker, or many.

An enrollment has two steps. *Preparing* decodes nothing (the clips come
decoded), embeds the clips and runs the quality gates; it reads the database
but never writes. *Committing* writes prepared enrollments in one ``BEGIN
IMMEDIATE`` transaction and updates the index once. :meth:`enroll` commits one
speaker; :meth:`enroll_many` commits up to :data:`CHUNK_SPEAKERS` speakers, or
:data:`CHUNK_SECONDS` of work, at a time, so that a bulk enrollment writes the
index file once per chunk instead of once per speaker. A crash loses at most
the chunk in progress, none of which was reported as enrolled.

The quality gates look only at what they need: the speaker's own enrolled
clips and, for a new speaker, the clips of the closest enrolled speaker (found
through the index), so they no longer read every enrolled utterance. What still
grows with the database is the index update of each commit (a copy of the
index and a rewrite of its file), which chunks pay once per 64 speakers.

"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .._metadata import clean_attributes, clean_expiry, clean_external_id, merged_attributes
from .._names import admit_name, clean_group, clean_name
from .._vectors import l2_normalize, template_of
from ..audio._decode import Clip, ClipInput, refuse_repeats, to_clip
from ..decision._population import Population
from ..encoders._base import check_same_encoder
from ..encoders._registry import family_of
from ..errors import (
    DuplicateUtterance,
    EnrollmentRefused,
    Fix,
    InputError,
    InvalidName,
    OptedOut,
    SpeakerDBError,
)
from ..storage._rules import refuse_enrolled
from ..types import EncoderInfo, Enrollment, QualityIssue, Speaker
from ._replay import fingerprints_of, store_enrolled_prints
from ._retention import refuse_opted_out
from ._watchlist import refuse_watchlisted

if TYPE_CHECKING:
    from ..audio._fingerprint import Fingerprint
    from ..storage import Change, Storage
    from ._model import ModelSlot
    from ._sealing import AudioKey, KeyChoice
    from ._settings import Settings

__all__ = [
    "CHUNK_SECONDS",
    "CHUNK_SPEAKERS",
    "Embedder",
    "Enrolling",
    "Metadata",
    "record_encoder",
]

log = logging.getLogger(__name__)

#: Most speakers committed in one transaction by :meth:`Enrolling.enroll_many`.
CHUNK_SPEAKERS = 64
#: Longest stretch of work (seconds) before :meth:`Enrolling.enroll_many` commits.
CHUNK_SECONDS = 5.0


@dataclass(frozen=True, slots=True, eq=False)
class _Prepared:
    """One speaker's clips, embedded and checked, ready to be written."""

    name: str
    given: str  # the name as the caller spelled it
    clips: tuple[Clip, ...]
    embeddings: np.ndarray
    issues: tuple[QualityIssue, ...]
    skipped: tuple[Clip, ...] = ()  # enrolled for this speaker already
    metadata: Metadata | None = None  # to set with the clips
    #: The replay fingerprint of each clip that has one, by audio hash.
    prints: Mapping[str, Fingerprint] = field(default_factory=dict)
    #: With ``keep_audio``: the key, and each clip's sealed audio by audio hash.
    key: AudioKey | None = None
    sealed: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Metadata:
    """What an enrollment sets besides clips: ``None`` leaves a field as it is, and
    ``attributes`` are merged into the speaker's (:mod:`speakerdb._metadata`)."""

    external_id: str | None = None
    attributes: dict[str, Any] | None = None
    expires_at: datetime | None = None
    watchlist: bool = False
    #: Groups to put the speaker in (made if new); groups they are in already stay.
    groups: tuple[str, ...] = ()

    @classmethod
    def given(
        cls,
        external_id: str | None,
        attributes: Mapping[str, Any] | None,
        expires_at: datetime | date | str | None = None,
        watchlist: bool = False,
        groups: Sequence[str] = (),
    ) -> Metadata | None:
        """The checked metadata of a call, or ``None`` when it gives none."""
        if isinstance(groups, str):
            groups = (groups,)
        given = (external_id, attributes, expires_at)
        if all(v is None for v in given) and not watchlist and not groups:
            return None
        return cls(
            None if external_id is None else clean_external_id(external_id),
            None if attributes is None else clean_attributes(attributes),
            None if expires_at is None else clean_expiry(expires_at),
            watchlist is True,
            tuple(dict.fromkeys(clean_group(g) for g in groups)),
        )

    def apply(self, change: Change, name: str) -> Speaker:
        """Write it to speaker ``name`` in ``change``; return the speaker after."""
        current = change.speaker(name)
        external_id = current.external_id
        if self.external_id is not None and self.external_id != external_id:
            if external_id is not None:
                raise InputError(
                    f"speaker {name!r} has external id {external_id!r} already; change it "
                    f"with `speakerdb meta {shlex.quote(name)} --id NEW`"
                )
            refuse_opted_out(change, None, self.external_id)
            external_id = self.external_id
        attributes = current.attributes
        if self.attributes is not None:
            attributes = merged_attributes(current.attributes, self.attributes)
        expires_at = self.expires_at or current.expires_at
        if self.watchlist and not current.watchlist:
            change.set_watchlist(name, True)
        for group in self.groups:
            change.add_to_group(group, [name])
        speaker = change.set_metadata(name, external_id, attributes, expires_at)
        return change.speaker(name) if self.groups else speaker


class Embedder(Protocol):
    """Where an enrollment's embeddings come from: the database's model
    (:class:`~speakerdb.services._model.ModelSlot`), or embeddings computed elsewhere
    (on a Ray cluster: :mod:`speakerdb.services._raybatch`)."""

    def embed(self, clips: Sequence[Clip]) -> np.ndarray: ...

    def info(self) -> EncoderInfo: ...


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
        self._settings = settings
        self._keys = keys
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
        prepared = self._prepare(name, clips, force, [], watchlisting=watchlisting, key=key)
        prepared = replace(prepared, metadata=metadata)
        if not prepared.clips and metadata is None:
            return self._nothing_new(prepared)
        return self._commit([prepared])[0]

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
        pending: list[_Prepared] = []
        started = time.monotonic()
        for name, clips in groups:
            if _clean_or_none(name) in {p.name for p in pending}:
                # Committed first: the gates then check the new clips against those.
                yield from self._commit_chunk(pending, embedder)
                pending, started = [], time.monotonic()
            try:
                prepared = self._prepare(name, clips, force, pending, embedder, key=key)
            except SpeakerDBError as exc:
                yield name, exc
            else:
                if prepared.clips:
                    pending.append(prepared)
                else:
                    yield name, self._nothing_new(prepared)
            if len(pending) >= CHUNK_SPEAKERS or time.monotonic() - started > CHUNK_SECONDS:
                yield from self._commit_chunk(pending, embedder)
                pending, started = [], time.monotonic()
        yield from self._commit_chunk(pending, embedder)

    def find_enrolled(self, clips: Sequence[Clip]) -> dict[str, str]:
        """Map the audio hash of each clip that is enrolled already to its speaker's name."""
        with self._storage.read() as snapshot:
            return snapshot.enrolled_hashes([c.sha256 for c in clips])

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

    def _prepare(
        self,
        given: str,
        clips: Sequence[ClipInput],
        force: bool,
        pending: Sequence[_Prepared],
        embedder: Embedder | None = None,
        *,
        watchlisting: bool = False,
        key: AudioKey | None = None,
    ) -> _Prepared:
        name = clean_name(given)
        with self._storage.read() as snapshot:
            enrolled = snapshot.names()
            if name not in enrolled:
                refuse_opted_out(snapshot, name, None)
        admit_name(given, name, enrolled | {p.name for p in pending})
        if not clips:
            raise InputError(f"no clips given to enroll {name!r}")
        decoded = [to_clip(c) for c in clips]
        refuse_repeats(decoded)
        decoded, skipped = self._without_own(name, decoded)
        _refuse_pending(decoded, pending)
        if not decoded:
            return _Prepared(name, given, (), np.empty((0, 0), np.float32), (), skipped)
        # Normalised again so that stored vectors have unit norm whatever the encoder.
        embeddings = l2_normalize((embedder or self._slot).embed(decoded))
        if name not in enrolled and not watchlisting:  # a second voice of a fraudster is fine
            threshold = self._settings.cosine_choice().value
            with self._storage.read() as snapshot:
                refuse_watchlisted(snapshot, name, embeddings, threshold)
        issues = self._check_quality(name, decoded, embeddings, force, pending)
        prints = fingerprints_of(decoded)
        sealed = {} if key is None else {c.sha256: key.seal(c) for c in decoded}
        return _Prepared(
            name,
            given,
            tuple(decoded),
            embeddings,
            issues,
            skipped,
            prints=prints,
            key=key,
            sealed=sealed,
        )

    def _without_own(self, name: str, clips: list[Clip]) -> tuple[list[Clip], tuple[Clip, ...]]:
        """The clips not enrolled yet, and those enrolled for ``name`` already; audio
        enrolled for another speaker is refused."""
        known = self.find_enrolled(clips)
        own = {sha for sha, owner in known.items() if owner == name}
        refuse_enrolled({sha: o for sha, o in known.items() if sha not in own}, clips)
        return [c for c in clips if c.sha256 not in own], tuple(c for c in clips if c.sha256 in own)

    def _nothing_new(self, prepared: _Prepared) -> Enrollment:
        """The result of a call whose every clip was enrolled already: nothing written."""
        with self._storage.read() as snapshot:
            speaker = snapshot.speaker(prepared.name)
        log.info("every clip is enrolled for %r already; nothing to do", prepared.name)
        return Enrollment(speaker, (), False, skipped=_sources(prepared.skipped))

    def _commit_chunk(
        self, pending: list[_Prepared], embedder: Embedder
    ) -> Iterator[tuple[str, Enrollment | SpeakerDBError]]:
        if not pending:
            return
        try:
            done = self._commit(pending, embedder)
        except (DuplicateUtterance, InvalidName, OptedOut):
            # Another process enrolled some of this audio, or a look-alike name, meanwhile,
            # and the chunk was rolled back: one by one, the others still go in, each
            # reported as soon as it is committed. Any other error (a busy or failing
            # database) is not retried speaker by speaker: it propagates.
            for prepared in pending:
                try:
                    yield prepared.given, self._commit([prepared], embedder)[0]
                except (DuplicateUtterance, InvalidName, OptedOut) as exc:
                    yield prepared.given, exc
            return
        yield from zip((p.given for p in pending), done, strict=True)

    def _commit(
        self, pending: Sequence[_Prepared], embedder: Embedder | None = None
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
            recorded = self._record_encoder(change, info)
            results = [self._write(change, p) for p in pending]
        if recorded is not None:
            self._slot.stored = recorded
        for result in results:
            log.info("enrolled %d clip(s) for %r", len(result.added), result.speaker.name)
            if result.notice:
                log.info("enrollment notice: %s", result.notice)
        return results

    def _write(self, change: Change, prepared: _Prepared) -> Enrollment:
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

    def _check_quality(
        self,
        name: str,
        clips: Sequence[Clip],
        embeddings: np.ndarray,
        force: bool,
        pending: Sequence[_Prepared],
    ) -> tuple[QualityIssue, ...]:
        from ._quality import check_enrollment

        chosen = self._settings.cosine_choice()
        threshold, model = chosen.value, self._slot.model
        # A default nobody measured for this model is too rough for the gates to refuse by.
        measured_default = family_of(model).measured_threshold(model) is not None
        measured = not chosen.builtin_default or measured_default
        if chosen.builtin_default:
            # The gates' limits were measured on the family's cosine scale, not on the
            # (stricter) decision default.
            threshold = family_of(model).threshold(model)
        population = self._gate_population(name, embeddings, pending)
        issues = check_enrollment(
            name,
            clips,
            embeddings,
            population,
            threshold,
            similarity_refuses=measured,
            speech_gate=self.speech_gate,
        )
        refusals = [i.message for i in issues if i.refused]
        if refusals and not force:
            raise EnrollmentRefused("; ".join(refusals), tuple(issues), fix=Fix.FORCE, name=name)
        for issue in issues:
            log.info("enrollment quality: %s", issue.message)
        return tuple(issues)

    def _gate_population(
        self, name: str, embeddings: np.ndarray, pending: Sequence[_Prepared]
    ) -> Population:
        """What the quality gates compare with: the speaker's own enrolled clips, or, for
        a new speaker, the closest enrolled speaker's and those about to be enrolled."""
        # Two short reads, not one around the index search: the search may wait for the
        # index's file lock, and a read held meanwhile made other processes' queries
        # time out as busy (tests/test_concurrency.py).
        with self._storage.read() as snapshot:
            own = snapshot.population(names=[name])
        if own.n_speakers:
            return own
        groups = {p.name: p.embeddings for p in pending}
        closest = self._closest_speaker(template_of(embeddings))
        if closest is not None:
            with self._storage.read() as snapshot:
                found = snapshot.population(names=[closest])
            groups.update((n, found.of(n)) for n in found.names)
        return Population.from_groups(groups)

    def _closest_speaker(self, template: np.ndarray) -> str | None:
        found = self._storage.search(template[None, :], 1)[0]
        return found[0].speaker if found else None

    def _record_encoder(self, change: Change, info: EncoderInfo) -> EncoderInfo | None:
        return record_encoder(self._storage, change, info)


def record_encoder(storage: Storage, change: Change, info: EncoderInfo) -> EncoderInfo | None:
    """Record ``info`` at the first write of embeddings (and return it), else check it is
    the recorded encoder."""
    stored = change.encoder()
    if stored is None:
        change.record_encoder(info)
        return info
    check_same_encoder(storage.path, stored, info)
    return None


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


def _clean_or_none(name: str) -> str | None:
    try:
        return clean_name(name)
    except SpeakerDBError:
        return None  # refused when its turn comes


def _refuse_pending(clips: Sequence[Clip], pending: Sequence[_Prepared]) -> None:
    """Raise :class:`DuplicateUtterance` for audio that an uncommitted enrollment holds."""
    owners = {c.sha256: p.name for p in pending for c in p.clips}
    for clip in clips:
        if clip.sha256 in owners:
            raise DuplicateUtterance(
                f"{clip.label}: the same audio is being enrolled for "
                f"{owners[clip.sha256]!r}; leave it out"
            )
