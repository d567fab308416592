"""The first step of an enrollment, *preparing* (:mod:`speakerdb.services._enrolling`):
one speaker's clips decoded, embedded, fingerprinted, sealed if kept and passed through
the quality gates, as a :class:`Prepared` that :mod:`speakerdb.services._enroll_commit`
writes. Preparing reads the database but never writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .._names import admit_name, clean_name
from .._vectors import l2_normalize
from ..audio._decode import Clip, ClipInput, refuse_repeats, to_clip
from ..errors import DuplicateUtterance, InputError
from ..storage._rules import refuse_enrolled
from ..types import EncoderInfo, QualityIssue
from ._enroll_gates import Gates
from ._enroll_metadata import Metadata
from ._replay import fingerprints_of
from ._retention import refuse_opted_out
from ._watchlist import refuse_watchlisted

if TYPE_CHECKING:
    from ..audio._fingerprint import Fingerprint
    from ..storage import Storage
    from ._model import ModelSlot
    from ._sealing import AudioKey
    from ._settings import Settings

__all__ = ["Embedder", "Prepared", "Preparing"]


@dataclass(frozen=True, slots=True, eq=False)
class Prepared:
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


class Embedder(Protocol):
    """Where an enrollment's embeddings come from: the database's model
    (:class:`~speakerdb.services._model.ModelSlot`), or embeddings computed elsewhere
    (on a Ray cluster: :mod:`speakerdb.services._raybatch`)."""

    def embed(self, clips: Sequence[Clip]) -> np.ndarray: ...

    def info(self) -> EncoderInfo: ...


class Preparing:
    """Preparing enrollments into one database: its storage, its model and its decision
    settings."""

    def __init__(self, storage: Storage, slot: ModelSlot, settings: Settings) -> None:
        self._storage = storage
        self._slot = slot
        self._settings = settings
        self._gates = Gates(storage, slot, settings)

    def prepare(
        self,
        given: str,
        clips: Sequence[ClipInput],
        pending: Sequence[Prepared],
        embedder: Embedder | None = None,
        *,
        force: bool,
        speech_gate: bool,
        watchlisting: bool = False,
        key: AudioKey | None = None,
    ) -> Prepared:
        """Speaker ``given``'s ``clips`` prepared (embedded by ``embedder``, default the
        database's model), checked against the database and against ``pending``, the
        enrollments prepared but not committed yet. Clips enrolled for the speaker
        already are skipped; raises as :meth:`Enrolling.enroll
        <speakerdb.services._enrolling.Enrolling.enroll>` says."""
        name, new = self._admitted(given, pending)
        if not clips:
            raise InputError(f"no clips given to enroll {name!r}")
        decoded = [to_clip(c) for c in clips]
        refuse_repeats(decoded)
        decoded, skipped = self._without_own(name, decoded)
        _refuse_pending(decoded, pending)
        if not decoded:
            return Prepared(name, given, (), np.empty((0, 0), np.float32), (), skipped)
        # Normalised again so that stored vectors have unit norm whatever the encoder.
        embeddings = l2_normalize((embedder or self._slot).embed(decoded))
        if new and not watchlisting:  # a second voice of a fraudster is fine
            self._refuse_watchlisted(name, embeddings)
        others = {p.name: p.embeddings for p in pending}
        issues = self._gates.check(
            name, decoded, embeddings, others, force=force, speech_gate=speech_gate
        )
        prints = fingerprints_of(decoded)
        sealed = {} if key is None else {c.sha256: key.seal(c) for c in decoded}
        return Prepared(
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

    def _admitted(self, given: str, pending: Sequence[Prepared]) -> tuple[str, bool]:
        """``given``'s canonical name, once admitted (not opted out if new, and not a
        look-alike of an enrolled or ``pending`` name), and whether it is new."""
        name = clean_name(given)
        with self._storage.read() as snapshot:
            enrolled = snapshot.names()
            if name not in enrolled:
                refuse_opted_out(snapshot, name, None)
        admit_name(given, name, enrolled | {p.name for p in pending})
        return name, name not in enrolled

    def _refuse_watchlisted(self, name: str, embeddings: np.ndarray) -> None:
        """Refuse a new speaker whose clips match a watchlisted voice
        (:mod:`speakerdb.services._watchlist`) at the database's cosine threshold."""
        threshold = self._settings.cosine_choice().value
        with self._storage.read() as snapshot:
            refuse_watchlisted(snapshot, name, embeddings, threshold)

    def find_enrolled(self, clips: Sequence[Clip]) -> dict[str, str]:
        """Map the audio hash of each clip that is enrolled already to its speaker's name."""
        with self._storage.read() as snapshot:
            return snapshot.enrolled_hashes([c.sha256 for c in clips])

    def _without_own(self, name: str, clips: list[Clip]) -> tuple[list[Clip], tuple[Clip, ...]]:
        """The clips not enrolled yet, and those enrolled for ``name`` already; audio
        enrolled for another speaker is refused."""
        known = self.find_enrolled(clips)
        own = {sha for sha, owner in known.items() if owner == name}
        refuse_enrolled({sha: o for sha, o in known.items() if sha not in own}, clips)
        return [c for c in clips if c.sha256 not in own], tuple(c for c in clips if c.sha256 in own)


def _refuse_pending(clips: Sequence[Clip], pending: Sequence[Prepared]) -> None:
    """Raise :class:`DuplicateUtterance` for audio that an uncommitted enrollment holds."""
    owners = {c.sha256: p.name for p in pending for c in p.clips}
    for clip in clips:
        if clip.sha256 in owners:
            raise DuplicateUtterance(
                f"{clip.label}: the same audio is being enrolled for "
                f"{owners[clip.sha256]!r}; leave it out"
            )
