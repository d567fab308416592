"""Typed, frozen results returned by the library.

Scores are raw cosine similarities in [-1, 1]; speakerdb never rescales them.

Every result's ``to_dict()`` is its JSON document, the one every front end
writes (the CLI's ``--json``, a service's responses): plain JSON values, times
in ISO 8601, and ``None`` for a float that is not finite (a rate with nothing to
measure). :func:`to_jsonable` does the same for any value made of results.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = [
    "ApiKey",
    "ArchiveReport",
    "AuditEntry",
    "AuditSettings",
    "BackupReport",
    "CohortVoice",
    "CountermeasureScore",
    "DatabaseInfo",
    "DecisionPolicy",
    "EncoderInfo",
    "Enrollment",
    "Group",
    "Identification",
    "Match",
    "Outcome",
    "QualityIssue",
    "ReembedReport",
    "Segment",
    "Speaker",
    "StoredThreshold",
    "Threshold",
    "Tombstone",
    "Utterance",
    "Verification",
    "to_jsonable",
]


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON values: results by their ``to_dict()``, other dataclasses
    field by field, sequences as lists, mapping keys as strings."""
    if isinstance(value, _Result):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: "not measured" (e.g. a rate with no items) is null
    return value


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}


class _Result:
    """What every result shares: its JSON document. Not a dataclass itself."""

    __slots__ = ()  # the subclasses' slots stay the only storage

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of this result: every field, as :func:`to_jsonable` has it."""
        return _fields(self)


class Outcome(str, Enum):
    """The answer of an identify or verify: always an answer, never an error.

    - ``accepted``: the score reached the threshold (identify named a speaker, verify
      accepted the claim);
    - ``rejected``: verify's score fell short of the threshold;
    - ``unknown``: identify's best score fell short (or no one is enrolled);
    - ``not_enough_speech``: the clip holds too little speech for a secure decision,
      so it is neither named nor rejected (ask for a longer clip);
    - ``replay``: the clip is a copy of audio this database has heard (an enrolled clip,
      or a query it decided recently), refused whatever its score;
    - ``watchlist``: the voice matches a speaker on the watchlist (a known fraudster),
      at the threshold: flagged, never accepted (:mod:`speakerdb.services._watchlist`).

    The last two are given by the checks that run before the score decides
    (:mod:`speakerdb.services._checks`). A str, so ``outcome == "accepted"`` holds and
    JSON writes the value.
    """

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    NOT_ENOUGH_SPEECH = "not_enough_speech"
    REPLAY = "replay"
    WATCHLIST = "watchlist"

    def __str__(self) -> str:
        return self.value


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
    """One enrolled clip: where it came from and a hash of its decoded audio."""

    id: int
    speaker: str
    source: str | None
    audio_sha256: str
    duration_s: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QualityIssue(_Result):
    """A finding of the enrollment quality gates (:mod:`speakerdb.services._quality`).

    ``check`` is ``speech``, ``clipping``, ``outlier`` or ``near_duplicate``;
    ``refused`` tells a refusal (overridden with ``force``) from a warning.
    """

    check: str
    refused: bool
    source: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Enrollment(_Result):
    """The outcome of one enroll call: the speaker after it, the clips it added, the
    quality issues found (warnings, and refusals that ``force`` overrode), and the
    sources of the clips ``skipped`` because they were enrolled for this speaker already
    (``None`` for a clip without a file)."""

    speaker: Speaker
    added: tuple[Utterance, ...]
    created: bool
    issues: tuple[QualityIssue, ...] = ()
    skipped: tuple[str | None, ...] = ()


@dataclass(frozen=True, slots=True)
class Match(_Result):
    """A candidate speaker and the raw cosine score of the query against its template.

    ``normalized`` is the normalised score when one decides (``margin``,
    ``margin-duration`` or ``asnorm``: :mod:`speakerdb.decision._scores`), else ``None``;
    it is then compared with the threshold, and ``score`` stays the raw cosine.
    """

    speaker: str
    score: float
    normalized: float | None = None

    @property
    def decision_score(self) -> float:
        """The score compared with the threshold: ``normalized`` if set, else ``score``."""
        return self.score if self.normalized is None else self.normalized


@dataclass(frozen=True, slots=True)
class Segment(_Result):
    """A stretch of a recording in which one voice speaks (``SpeakerDB.segments``).

    ``start`` and ``end`` are seconds from the recording's start. ``speaker`` is the
    enrolled name, or ``None`` for a voice that is not enrolled; ``label`` is the name,
    or ``unknown-N`` (numbered by first appearance, stable within one recording).
    ``score`` is the raw cosine of the voice (all its windows) to the named speaker's
    template, or to the nearest one for an unknown voice; ``decision_score`` is the
    score compared with the threshold (the normalised one where the policy normalises).
    Both are ``None`` when nobody is enrolled.
    """

    start: float
    end: float
    speaker: str | None
    label: str
    score: float | None
    decision_score: float | None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class DecisionPolicy(_Result):
    """How a query was decided: by which score, at which threshold, and where that
    threshold came from. Resolved once per query (:mod:`speakerdb.decision._policy`).

    ``score_norm`` names the score (``none``: raw cosine; see
    :mod:`speakerdb.decision._scores`). ``source`` is ``argument``, ``environment``,
    ``database`` or ``default for MODEL``. ``top_n`` is AS-norm's cohort size.
    ``notice`` says why the score is not the one the database would decide by on its
    own (a bare cosine threshold, a cohort too small for AS-norm), if it is not.
    """

    score_norm: str
    threshold: float
    source: str
    top_n: int = 50  # speakerdb.config.DEFAULT_TOP_N: results import nothing of the package
    notice: str | None = None

    def accepts(self, score: float) -> bool:
        """The decision rule, the only place it is written: the score reaches the threshold."""
        return score >= self.threshold


def _given(policy: DecisionPolicy | None, threshold: float, score_norm: str) -> DecisionPolicy:
    # A result built without a policy (older callers, tests) was decided by its own fields.
    if policy is not None:
        return policy
    return DecisionPolicy(score_norm, threshold, "argument")


@dataclass(frozen=True, slots=True)
class CountermeasureScore(_Result):
    """A countermeasure's judgement of one query clip
    (:mod:`speakerdb.decision._countermeasure`): its ``name``, its ``score`` (higher: more
    likely live speech), its ``threshold``, and whether the clip is a ``spoof`` (the score
    is below the threshold, or not a number); a spoof is refused as ``replay``."""

    name: str
    score: float
    threshold: float
    spoof: bool


@dataclass(frozen=True, slots=True)
class Identification(_Result):
    """Open-set identification of one clip.

    ``matches`` are the top-k candidates, best first. :attr:`outcome` is the answer:
    ``accepted`` when the best score reaches ``threshold`` (:attr:`speaker` is then
    its name), else ``unknown``; or what a check before the score decided
    (``not_enough_speech``, ``replay``: ``verdict`` holds it, ``reason`` says why), and
    then no one is named whatever the scores.
    """

    source: str | None
    matches: tuple[Match, ...]
    threshold: float
    #: ``none`` (raw cosine), ``margin``, ``margin-duration`` or ``asnorm``: what
    #: ``Match.normalized`` holds.
    score_norm: str = "none"
    #: The policy that decided (its threshold and score are the two fields above).
    policy: DecisionPolicy | None = None
    #: The outcome a check gave before the score decided, if one did.
    verdict: Outcome | None = None
    #: Why that check gave it, in words that name the fix.
    reason: str | None = None
    #: The countermeasure's judgement of the clip, when one is in use.
    countermeasure: CountermeasureScore | None = None
    #: The group the query was confined to (``None``: every speaker).
    group: str | None = None

    @property
    def decided_by(self) -> DecisionPolicy:
        """The policy that decided this result."""
        return _given(self.policy, self.threshold, self.score_norm)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None

    @property
    def outcome(self) -> Outcome:
        """``accepted``, ``unknown``, or the check's ``verdict``."""
        if self.verdict is not None:
            return self.verdict
        best = self.best
        if best is not None and self.decided_by.accepts(best.decision_score):
            return Outcome.ACCEPTED
        return Outcome.UNKNOWN

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED

    @property
    def speaker(self) -> str | None:
        """The identified speaker, or ``None`` for "unknown"."""
        best = self.best
        return best.speaker if best is not None and self.accepted else None

    def to_dict(self) -> dict[str, Any]:
        """The fields and the answer (``outcome``, ``speaker``, ``accepted``, ``best``) a
        user reads."""
        return {
            "source": self.source,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "speaker": self.speaker,
            "accepted": self.accepted,
            "threshold": self.threshold,
            "score_norm": self.score_norm,
            "policy": to_jsonable(self.decided_by),
            "best": to_jsonable(self.best),
            "matches": to_jsonable(self.matches),
            "countermeasure": to_jsonable(self.countermeasure),
            "group": self.group,
        }


@dataclass(frozen=True, slots=True)
class Verification(_Result):
    """A 1:1 decision: does the clip come from ``speaker``?

    :attr:`outcome` is the answer: ``accepted`` when the decision score reaches
    ``threshold``, else ``rejected``; or what a check before the score decided
    (``not_enough_speech``, ``replay``: ``verdict`` holds it, ``reason`` says why),
    and then the claim is not accepted whatever the score.
    """

    speaker: str
    source: str | None
    score: float
    threshold: float
    normalized: float | None = None
    score_norm: str = "none"
    #: The policy that decided (its threshold and score are the fields above).
    policy: DecisionPolicy | None = None
    #: The outcome a check gave before the score decided, if one did.
    verdict: Outcome | None = None
    #: Why that check gave it, in words that name the fix.
    reason: str | None = None
    #: The countermeasure's judgement of the clip, when one is in use.
    countermeasure: CountermeasureScore | None = None
    #: The group the query was confined to (``None``: every speaker).
    group: str | None = None

    @property
    def decided_by(self) -> DecisionPolicy:
        """The policy that decided this result."""
        return _given(self.policy, self.threshold, self.score_norm)

    @property
    def outcome(self) -> Outcome:
        """``accepted`` when ``normalized`` (when a normalised score decides) or else
        ``score`` reaches ``threshold``, else ``rejected``; or the check's ``verdict``."""
        if self.verdict is not None:
            return self.verdict
        value = self.score if self.normalized is None else self.normalized
        return Outcome.ACCEPTED if self.decided_by.accepts(value) else Outcome.REJECTED

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED

    def to_dict(self) -> dict[str, Any]:
        """Every field but ``verdict``, with ``outcome`` and ``accepted``."""
        fields = _fields(self)
        del fields["verdict"]
        return {**fields, "outcome": self.outcome.value, "accepted": self.accepted}


@dataclass(frozen=True, slots=True)
class CohortVoice(_Result):
    """One outside voice of the cohort (``speakerdb cohort list``): its label and how
    many clips of it are stored (as embeddings only)."""

    label: str
    n_clips: int


@dataclass(frozen=True, slots=True)
class Threshold(_Result):
    """The threshold an operation decides by: of which ``score`` (``none``: raw cosine),
    its ``value``, and its ``source`` (as :class:`DecisionPolicy`'s)."""

    score: str
    value: float
    source: str


@dataclass(frozen=True, slots=True)
class StoredThreshold(_Result):
    """A threshold the database stores: for which ``operation`` (``identify``, ``verify``,
    or ``both`` for one stored by an older speakerdb), of which ``score``, its ``value``,
    and whether it ``decides`` now (it does not when another score decides, or when an
    argument or ``SPEAKERDB_THRESHOLD`` overrides it)."""

    operation: str
    score: str
    value: float
    decides: bool


@dataclass(frozen=True, slots=True)
class DatabaseInfo(_Result):
    """What ``speakerdb info`` shows.

    ``threshold`` and ``threshold_source`` are identify's (``thresholds`` has both
    operations'); ``stored_thresholds`` lists every threshold stored, deciding or not.
    """

    path: str
    encoder: EncoderInfo | None
    threshold: float
    threshold_source: str
    n_speakers: int
    n_utterances: int
    schema_revision: str | None
    index_path: str
    index_state: str
    #: The scores decisions use (``none``: cosine; see :mod:`speakerdb.decision._norms`),
    #: and their threshold when that is not the cosine one.
    score_norm: str = "none"
    score_norm_threshold: float | None = None
    #: How long (seconds) decided queries' fingerprints are kept for the replay check
    #: (0: off), and where that came from (``argument``, ``environment``, ``database``,
    #: ``default``).
    replay_window_s: int = 600  # speakerdb.config.DEFAULT_REPLAY_WINDOW_S
    replay_window_source: str = "default"
    #: The threshold each operation (``identify``, ``verify``) decides by.
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    stored_thresholds: tuple[StoredThreshold, ...] = ()
    #: Why the deciding score is not the one the database chose, if it is not.
    notice: str | None = None


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
class ArchiveReport(_Result):
    """What ``speakerdb export`` wrote or ``speakerdb import`` read: the archive, whether it
    is encrypted, and how many speakers, clips, opt-out tombstones and cohort clips it
    holds. On import, ``imported`` and ``skipped`` name the speakers added and those left
    out as duplicates (``on_duplicate="skip"``)."""

    path: str
    encrypted: bool
    n_speakers: int
    n_utterances: int
    n_tombstones: int
    imported: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    n_cohort: int = 0


@dataclass(frozen=True, slots=True)
class ReembedReport(_Result):
    """What ``speakerdb reembed`` built: the new database at ``path`` for ``model``.

    ``reembedded`` speakers were embedded again from their kept audio (``n_utterances``
    clips); ``partial`` ones from the part of their clips whose audio was kept; those in
    ``reenroll`` had no audio kept and must enroll again; ``failed`` maps a speaker the
    new database refused to why. ``carried`` names the settings taken over; ``not_carried``
    says, in words, what was not and why (it belongs to the old model, or to the old
    database)."""

    path: str
    model: str
    reembedded: tuple[str, ...]
    n_utterances: int
    partial: tuple[str, ...]
    reenroll: tuple[str, ...]
    failed: dict[str, str]
    n_tombstones: int
    carried: tuple[str, ...]
    not_carried: tuple[str, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class BackupReport(_Result):
    """A backup written by ``speakerdb backup``: where, what it holds, its size in bytes,
    its schema revision and how long it took."""

    path: str
    n_speakers: int
    n_utterances: int
    bytes: int
    schema_revision: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class AuditSettings(_Result):
    """Whether decisions are logged, and how long entries are kept
    (:mod:`speakerdb.storage.sqlite._audit`)."""

    enabled: bool
    retention_days: int
    max_rows: int


@dataclass(frozen=True, slots=True)
class AuditEntry(_Result):
    """One logged decision.

    ``operation`` is ``identify`` or ``verify``. ``claimed`` is the speaker a verify
    was asked about (``None`` for identify). ``identified`` is the speaker that
    ``score`` is against: the best candidate of an identify (``None`` when no one is
    enrolled), the claimed speaker of a verify; ``accepted`` is the decision.
    ``score`` is the raw cosine; ``normalized`` the normalised score (AS-norm, margin
    or margin-duration) when one decided. ``outcome`` is the answer
    (:class:`Outcome`); entries logged before outcomes existed have the one their
    decision gave (``accepted``, else ``unknown`` or ``rejected``). ``api_key`` is the
    name of the service key (``speakerdb key create``) that asked, ``None`` for a call
    of the library or CLI. ``countermeasure`` and ``countermeasure_score`` record the
    countermeasure's judgement (:class:`CountermeasureScore`); a spoof's outcome is
    ``replay``.
    """

    id: int
    time: datetime
    operation: str
    claimed: str | None
    identified: str | None
    score: float | None
    normalized: float | None
    threshold: float
    accepted: bool
    outcome: Outcome
    api_key: str | None = None
    #: The countermeasure in use and its score of the clip (``None``: none in use).
    countermeasure: str | None = None
    countermeasure_score: float | None = None

    def __post_init__(self) -> None:
        # Stored as text: read back as the enum, so every backend returns equal entries.
        object.__setattr__(self, "outcome", Outcome(self.outcome))


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
