"""Results of a decision: matches, outcomes, the policy that decided, identifications,
verifications, the segments of a recording, and the audit log's entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from ._base import _fields, _Result, to_jsonable


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
    ``builtin_default`` is true when the threshold is the model's built-in default for
    identify or verify, set where the defaults are resolved
    (:mod:`speakerdb.decision._policy`); identify's then follows the number of enrolled
    speakers. Code tells a default by this flag, never by ``source``'s words. It is left
    out of :meth:`to_dict`, whose ``source`` says the same in words.

    ``duration_fall``: how far the threshold falls per ``ln(d / 0.5 s)`` of a query whose
    words last ``d`` seconds (:attr:`speakerdb.audio.Clip.spoken_s`, clamped to
    [0.5 s, 30 s]); only identify's built-in default of a model that measured one
    falls, a threshold given, set, stored or calibrated never does (0). Where it falls,
    ``threshold`` is the bar of a 0.5 s query until the policy is taken for one query
    (:func:`speakerdb.decision._policy.for_duration`), and then the bar that query was
    decided at, whose duration is ``duration_s``.
    """

    score_norm: str
    threshold: float
    source: str
    top_n: int = 50  # speakerdb.config.DEFAULT_TOP_N: results import nothing of the package
    notice: str | None = None
    builtin_default: bool = False
    duration_fall: float = 0.0
    duration_s: float | None = None

    def accepts(self, score: float) -> bool:
        """The decision rule, the only place it is written: the score reaches the threshold."""
        return score >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: every field but ``builtin_default`` (``source`` says it)."""
        document = _fields(self)
        del document["builtin_default"]
        return document


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
