"""Identification and verification: the services behind :meth:`SpeakerDB.identify
<speakerdb.SpeakerDB.identify>` and :meth:`~speakerdb.SpeakerDB.verify`.

Each query resolves its decision policy once, decodes its clips and offers each to
the pre-decision checks (:mod:`speakerdb.services._checks`: ``replay``,
``not_enough_speech``), embeds them, scores them through the storage's search (or the
enrolled population, for scores that need it), and hands the results to the audit
log before returning them; the checks then hear each outcome. A result's
``outcome`` is the first check's verdict, else what its score decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .._names import clean_group, clean_name
from ..audio._decode import Clip, ClipInput, to_clip
from ..config import MIN_COHORT_VOICES
from ..decision._countermeasure import judge
from ..decision._policy import for_duration
from ..decision._ranking import normalized_claim, rank
from ..decision._scores import get_norm
from ..errors import InputError
from ..storage import require_database
from ..types import (
    CountermeasureScore,
    DecisionPolicy,
    Identification,
    Match,
    Outcome,
    Verification,
)
from ._checks import Query, QueryCheck, Verdict, first_verdict
from ._groups import QuerySearch
from ._watchlist import flag_identification, flag_verification, query_guard
from ._whole_clips import WholeClipWarning

if TYPE_CHECKING:
    from ..decision._population import Population
    from ..storage import Storage
    from ._audit import AuditLog
    from ._model import ModelSlot
    from ._settings import Settings

__all__ = ["Querying"]

log = logging.getLogger(__name__)


class Querying:
    """Queries on one database. Safe to use from several threads at once."""

    def __init__(
        self,
        storage: Storage,
        slot: ModelSlot,
        settings: Settings,
        audit: AuditLog,
        checks: Sequence[QueryCheck] = (),
    ) -> None:
        self._storage = storage
        self._slot = slot
        self._settings = settings
        self._audit = audit
        self._checks = tuple(checks)
        self._whole_clips = WholeClipWarning(storage)

    def embed(self, clips: Sequence[ClipInput]) -> np.ndarray:
        """L2-normalised embeddings ``(n, dim)`` of the clips, with the database's encoder."""
        return self._slot.embed([to_clip(c) for c in clips])

    def population(self) -> Population:
        """Every enrolled utterance embedding with its speaker, and the cohort of outside
        voices (calibration, AS-norm)."""
        with self._storage.read() as snapshot:
            return snapshot.population().with_outside(snapshot.cohort())

    def identify_many(
        self,
        clips: Sequence[ClipInput],
        top_k: int,
        threshold: float | None,
        score_norm: str | None,
        replay_session: str | None = None,
        group: str | None = None,
    ) -> list[Identification]:
        """Each clip's ``top_k`` speakers (of ``group``'s members when given), and the
        answer by the query's policy. Refuses a database no write has created."""
        require_database(self._storage)
        self._whole_clips.check(self._slot.stored)
        if top_k < 1:
            raise InputError(f"top-k must be at least 1, got {top_k}")
        # An unknown group is refused by the search itself (from its cached marks): a
        # check before it would cost every grouped query a read.
        searching = QuerySearch(self._storage, group)
        policy, population, guarded = self._policy(threshold, score_norm, "identify")
        decoded = [to_clip(c) for c in clips]
        asked = [Query("identify", clip, session=replay_session) for clip in decoded]
        judged, verdicts = self._pre_decide(asked)
        found = self._ranked(policy, decoded, top_k, searching, population)
        if searching.found is not None:  # the default threshold at the searched database's N
            policy = self._settings.sized(policy, searching.found.speakers)
        watched = guarded if guarded is not None else searching.watchlist() or frozenset()
        decided = []
        for clip, matches, verdict, judgement in zip(decoded, found, verdicts, judged, strict=True):
            # The built-in default may fall with the clip's duration: each its own bar.
            own = for_duration(policy, clip.spoken_s)
            flagged = verdict or flag_identification(matches, own, watched)
            decided.append(_identified(clip, matches, own, flagged, judgement, searching.group))
        results = self._audit.log_identifications(decided)
        for query, result in zip(asked, results, strict=True):
            self._tell(query, result)
        return results

    def verify(
        self,
        name: str,
        clip: ClipInput,
        threshold: float | None,
        score_norm: str | None,
        replay_session: str | None = None,
        group: str | None = None,
    ) -> Verification:
        """Accept or reject the claim that ``clip`` is ``name``; a claimed speaker outside
        ``group`` (when given) is rejected, with the reason. Refuses a database no write
        has created."""
        require_database(self._storage)
        self._whole_clips.check(self._slot.stored)
        name = clean_name(name)
        group = None if group is None else clean_group(group)
        policy, population, guarded = self._policy(threshold, score_norm, "verify")
        watched = guarded if guarded is not None else query_guard(self._storage)
        template, outside = self._claim(name, group)
        decoded = to_clip(clip)
        asked = Query("verify", decoded, name, session=replay_session)
        (judged,), (verdict,) = self._pre_decide([asked])
        query = self._slot.embed([decoded])[0]
        score = float(np.dot(query, template))
        normalized = normalized_claim(
            policy, name, query, score, self._storage.search, population, decoded.spoken_s
        )
        if verdict is None:
            accepted = policy.accepts(score if normalized is None else normalized)
            cosine = self._settings.cosine_choice().value
            verdict = flag_verification(
                self._storage, name, query, score, accepted, cosine, watched
            )
        given = _given(verdict)
        if outside and verdict is None:
            given = (Outcome.REJECTED, _outside_reason(name, str(group)))
        result = _verified(decoded, name, (score, normalized), policy, given, judged, group)
        self._tell(asked, self._audit.log_verification(result))
        return result

    def _ranked(
        self,
        policy: DecisionPolicy,
        decoded: Sequence[Clip],
        top_k: int,
        searching: QuerySearch,
        population: Callable[[], Population],
    ) -> list[tuple[Match, ...]]:
        """Each clip's ``top_k`` matches by ``policy``'s score. An expired voiceprint is
        never matched: when the search met one, it was deleted, and the search runs again."""
        queries = self._slot.embed(decoded)
        durations = [clip.spoken_s for clip in decoded]
        within = searching.within()
        found = rank(policy, queries, top_k, searching.search, population, durations, within)
        if searching.expired():
            found = rank(policy, queries, top_k, searching.search, population, durations, within)
        return found

    def _claim(self, name: str, group: str | None) -> tuple[np.ndarray, bool]:
        """The claimed speaker's template, and whether they are outside ``group``, in one
        read."""
        with self._storage.read() as snapshot:
            template = snapshot.template(name)  # an unknown speaker is refused first
            return template, group is not None and name not in snapshot.group_members(group)

    def _pre_decide(
        self, asked: Sequence[Query]
    ) -> tuple[list[CountermeasureScore | None], list[Verdict | None]]:
        """Each clip's countermeasure judgement (when one is in use) and the verdict that
        decides it before its score, if any: a spoof's (``replay``), else the first
        check's."""
        countermeasure, _ = self._settings.countermeasure()
        judged = [None if countermeasure is None else judge(countermeasure, q.clip) for q in asked]
        verdicts = [
            _spoof_verdict(j) if j is not None and j.spoof else first_verdict(self._checks, q)
            for q, j in zip(asked, judged, strict=True)
        ]
        return judged, verdicts

    def _policy(
        self, threshold: float | None, score_norm: str | None, operation: str
    ) -> tuple[DecisionPolicy, Callable[[], Population], frozenset[str] | None]:
        """The query's policy, and its population as the scores will read it. A population
        score (AS-norm) whose cohort is too small gives way to the fallback policy, which
        says so (and a warning is logged): it would let strangers in at any threshold.

        A population score reads no index, so the voiceprints that expired are deleted
        first and the watchlist read here (the third value; ``None``: the search does)."""
        policy = self._settings.policy(threshold, score_norm, operation)
        if not get_norm(policy.score_norm).needs_population:
            return policy, self.population, None
        watched = query_guard(self._storage)
        population = self.population()
        if population.cohort_voices < MIN_COHORT_VOICES:
            policy = self._settings.cohort_fallback(policy, operation, population.cohort_voices)
            log.warning("%s", policy.notice)
            if operation == "identify":
                policy = self._settings.sized(policy, population.n_speakers)
        return policy, lambda: population, watched

    def _tell(self, query: Query, result: Identification | Verification) -> None:
        """Let every check hear the outcome of a logged decision."""
        named: str | None = None
        if isinstance(result, Verification):
            named = result.speaker
        else:
            named = result.best.speaker if result.best is not None else None
        decided = replace(query, named=named)
        for check in self._checks:
            check.decided(decided, result.outcome)


def _identified(
    clip: Clip,
    matches: tuple[Match, ...],
    policy: DecisionPolicy,
    verdict: Verdict | None,
    judged: CountermeasureScore | None,
    group: str | None,
) -> Identification:
    return Identification(
        clip.source,
        matches,
        policy.threshold,
        policy.score_norm,
        policy,
        *_given(verdict),
        countermeasure=judged,
        group=group,
    )


def _verified(
    clip: Clip,
    name: str,
    scores: tuple[float, float | None],
    policy: DecisionPolicy,
    given: tuple[Outcome | None, str | None],
    judged: CountermeasureScore | None,
    group: str | None,
) -> Verification:
    """The claim that ``clip`` is ``name``, decided by ``policy`` on ``scores`` (the raw
    cosine, and the normalised score if one decides), unless ``given`` holds the outcome
    and reason a check gave."""
    score, normalized = scores
    return Verification(
        name,
        clip.source,
        score,
        policy.threshold,
        normalized,
        policy.score_norm,
        policy,
        *given,
        countermeasure=judged,
        group=group,
    )


def _spoof_verdict(judged: CountermeasureScore) -> Verdict:
    return Verdict(
        Outcome.REPLAY,
        f"the countermeasure {judged.name!r} scored the clip {judged.score:.2f}, under its "
        f"threshold {judged.threshold:.2f}: a presentation attack (a recording or a "
        "synthetic voice); ask the person to speak live, and use a second factor",
    )


def _outside_reason(name: str, group: str) -> str:
    return (
        f"{name!r} is not a member of group {group!r}, whose members alone this query "
        f"admits (the operator's `speakerdb group add {group} {name}` makes them one)"
    )


def _given(verdict: Verdict | None) -> tuple[Outcome | None, str | None]:
    """A result's ``verdict`` and ``reason`` fields from a check's verdict."""
    return (None, None) if verdict is None else (verdict.outcome, verdict.reason)
