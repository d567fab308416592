"""Results that describe what is stored: encoders, speakers, groups, clips, enrollments,
the cohort of outside voices, tombstones and service keys."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ._base import _Result


@dataclass(frozen=True, slots=True)
class EncoderInfo(_Result):
    """The identity of a speaker encoder: what a database's embeddings came from.

    ``model`` is a Hugging Face hub id, an absolute local directory, or
    ``"resemblyzer"``. ``revision`` is the resolved commit or weights hash where
    known. ``dim`` is the embedding size and ``sample_rate`` the audio rate the
    encoder consumes.
    """

    model: str
    revision: str | None
    dim: int
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Speaker(_Result):
    """An enrolled speaker.

    ``external_id`` is the id another system knows them by (unique in a database), and
    ``attributes`` free JSON values (:mod:`speakerdb._metadata`): a copy, so changing it
    changes nothing stored. ``expires_at`` is when the voiceprint is deleted (``None``:
    never). ``watchlist`` marks a voice never to admit (:mod:`speakerdb.services._watchlist`).
    ``last_match_at`` is their last successful match, recorded at most once a day, or
    their enrollment until the first (idle expiry, :mod:`speakerdb.services._idle`).
    ``groups`` are the groups they belong to, by name (:mod:`speakerdb.services._groups`).
    """

    id: int
    name: str
    n_utterances: int
    created_at: datetime
    external_id: str | None = None
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    expires_at: datetime | None = None
    watchlist: bool = False
    last_match_at: datetime | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Group(_Result):
    """A group of speakers (``speakerdb group list``): a door's, a team's. Queries given a
    group consider only its ``members`` (by name)."""

    name: str
    members: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Utterance(_Result):
    """One enrolled clip: where it came from and a hash of its decoded audio.

    ``duration_s`` is what the encoder heard of it (:attr:`speakerdb.audio.Clip.spoken_s`:
    the words and up to ``spoken_margin_s`` either side). ``spoken_margin_s`` is ``None``
    for a clip whose vector was embedded from the whole clip, as speakerdb did before it
    cut clips to their words (after 0.1.0): its ``duration_s`` is then the whole length,
    and ``speakerdb reembed`` makes it anew from kept audio.
    """

    id: int
    speaker: str
    source: str | None
    audio_sha256: str
    duration_s: float
    created_at: datetime
    spoken_margin_s: float | None = None


#: The enrollment quality gates' names, the values of :attr:`QualityIssue.check`.
QualityCheck = Literal["not_speech", "speech", "clipping", "outlier", "near_duplicate"]


@dataclass(frozen=True, slots=True)
class QualityIssue(_Result):
    """A finding of the enrollment quality gates (:mod:`speakerdb.services._quality`).

    ``check`` is one of ``not_speech`` (the clip is not someone speaking), ``speech``
    (too little net speech), ``clipping`` (samples at full scale), ``outlier`` (the
    clip does not sound like the speaker's other clips) or ``near_duplicate`` (a new
    speaker sounds like an enrolled one); ``refused`` tells a refusal (overridden with
    ``force``) from a warning. ``source`` is the clip's file (``None`` for a clip
    without one, and for ``near_duplicate``, which is about the speaker).
    """

    check: QualityCheck
    refused: bool
    source: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Enrollment(_Result):
    """The outcome of one enroll call: the speaker after it, the clips it added, the
    quality issues found (warnings, and refusals that ``force`` overrode), and the
    sources of the clips ``skipped`` because they were enrolled for this speaker already
    (``None`` for a clip without a file).

    ``notice`` is a warning about the speaker's voiceprint as a whole rather than about
    a clip: today only that it rests on one clip (after a call that added clips), so it
    is unsteady; ``None`` otherwise.
    """

    speaker: Speaker
    added: tuple[Utterance, ...]
    created: bool
    issues: tuple[QualityIssue, ...] = ()
    skipped: tuple[str | None, ...] = ()
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class CohortVoice(_Result):
    """One outside voice of the cohort (``speakerdb cohort list``): its label and how
    many clips of it are stored (as embeddings only)."""

    label: str
    n_clips: int


@dataclass(frozen=True, slots=True)
class Tombstone(_Result):
    """What is kept of a person who opted out, so that they are not enrolled again: their
    external id (if they had one) and the confusable skeletons of their name
    (:func:`speakerdb._names.name_keys`), never the voiceprint or the name as written."""

    id: int
    external_id: str | None
    name_key: str
    folded_key: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey(_Result):
    """A key of the HTTP service (``speakerdb key create``), without its secret: only a
    hash of that is stored. ``scope`` is ``query`` (identify, verify, list) or ``admin``
    (everything). A key with a ``group`` is bound to it: its identify, verify and
    segments requests consider only that group's members, and may name no other."""

    name: str
    scope: str
    created_at: datetime
    group: str | None = None
