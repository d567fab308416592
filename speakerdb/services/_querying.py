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
from typing import TYPE_CHECKING

import numpy as np

from .._names import clean_name
from ..audio._decode import ClipInput, to_clip
from ..config import MIN_COHORT_VOICES
from ..decision._ranking import normalized_claim, rank
from ..decision._scores import get_norm
from ..errors import InputError
from ..types import DecisionPolicy, Identification, Outcome, Verification
from ._checks import Query, QueryCheck, Verdict, first_verdict
from ._watchlist import flag_identification, flag_verification, query_guard

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
    ) -> list[Identification]:
        """Each clip's ``top_k`` speakers, and the answer by the query's policy."""
        if top_k < 1:
            raise InputError(f"top-k must be at least 1, got {top_k}")
        watched = query_guard(self._storage)  # and an expired voiceprint is never matched
        policy, population = self._policy(threshold, score_norm, "identify")
        decoded = [to_clip(c) for c in clips]
        asked = [Query("identify", clip) for clip in decoded]
        verdicts = [first_verdict(self._checks, query) for query in asked]
        queries = self._slot.embed(decoded)
        durations = [clip.duration_s for clip in decoded]
        found = rank(policy, queries, top_k, self._storage.search, population, durations)
        verdicts = [
            verdict or flag_identification(matches, policy, watched)
            for verdict, matches in zip(verdicts, found, strict=True)
        ]
        results = self._audit.log_identifications(
            [
                Identification(
                    clip.source,
                    matches,
                    policy.threshold,
                    policy.score_norm,
                    policy,
                    *_given(verdict),
                )
                for clip, matches, verdict in zip(decoded, found, verdicts, strict=True)
            ]
        )
        for query, result in zip(asked, results, strict=True):
            self._tell(query, result)
        return results

    def verify(
        self, name: str, clip: ClipInput, threshold: float | None, score_norm: str | None
    ) -> Verification:
        """Accept or reject the claim that ``clip`` is ``name``."""
        name = clean_name(name)
        watched = query_guard(self._storage)
        policy, population = self._policy(threshold, score_norm, "verify")
        with self._storage.read() as snapshot:
            template = snapshot.template(name)
        decoded = to_clip(clip)
        asked = Query("verify", decoded, name)
        verdict = first_verdict(self._checks, asked)
        query = self._slot.embed([decoded])[0]
        score = float(np.dot(query, template))
        normalized = normalized_claim(
            policy, name, query, score, self._storage.search, population, decoded.duration_s
        )
        if verdict is None:
            accepted = policy.accepts(score if normalized is None else normalized)
            cosine = self._settings.sources().cosine_threshold()[0]
            verdict = flag_verification(
                self._storage, name, query, score, accepted, cosine, watched
            )
        result = Verification(
            name,
            decoded.source,
            score,
            policy.threshold,
            normalized,
            policy.score_norm,
            policy,
            *_given(verdict),
        )
        self._tell(asked, self._audit.log_verification(result))
        return result

    def _policy(
        self, threshold: float | None, score_norm: str | None, operation: str
    ) -> tuple[DecisionPolicy, Callable[[], Population]]:
        """The query's policy, and its population as the scores will read it. A population
        score (AS-norm) whose cohort is too small gives way to the fallback policy, which
        says so (and a warning is logged): it would let strangers in at any threshold."""
        policy = self._settings.policy(threshold, score_norm, operation)
        if not get_norm(policy.score_norm).needs_population:
            return policy, self.population
        population = self.population()
        if population.cohort_voices < MIN_COHORT_VOICES:
            policy = self._settings.cohort_fallback(policy, operation, population.cohort_voices)
            log.warning("%s", policy.notice)
        return policy, lambda: population

    def _tell(self, query: Query, result: Identification | Verification) -> None:
        """Let every check hear the outcome of a logged decision."""
        for check in self._checks:
            check.decided(query, result.outcome)


def _given(verdict: Verdict | None) -> tuple[Outcome | None, str | None]:
    """A result's ``verdict`` and ``reason`` fields from a check's verdict."""
    return (None, None) if verdict is None else (verdict.outcome, verdict.reason)
