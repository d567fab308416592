"""From query embeddings to scored speakers, by the score the decision policy names.

Scores that need only each query's nearest speakers get them from a ``search``
callable (raw-cosine matches by name, best first, one tuple per query row);
scores that need the whole enrolled population (AS-norm) score it. Which is
which, and how each scores, is the strategy's business
(:mod:`speakerdb.decision._scores`); nothing here compares score names. The
population is passed as a callable because reading it costs a pass over every
enrolled utterance, and only population scores need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import DecisionPolicy, Match
from ._asnorm import Cohort
from ._scores import Cosines, ScoreNorm, get_norm

if TYPE_CHECKING:
    from ._population import Population

__all__ = [
    "Search",
    "normalize",
    "normalized_claim",
    "normalized_matches",
    "population_scores",
    "rank",
]

#: ``search(queries, k)``: each query row's ``k`` nearest speakers by raw cosine.
Search = Callable[[np.ndarray, int], list[tuple[Match, ...]]]


def rank(
    policy: DecisionPolicy,
    queries: np.ndarray,
    top_k: int,
    search: Search,
    population: Callable[[], Population],
    durations_s: Sequence[float],
) -> list[tuple[Match, ...]]:
    """Each query's ``top_k`` speakers, best first by the score ``policy`` decides by.

    ``durations_s`` holds each query clip's length (for scores that use it).
    """
    norm = get_norm(policy.score_norm)
    if norm.needs_population:
        return normalized_matches(norm, queries, population(), policy.top_n, top_k)
    found = search(queries, norm.search_k(top_k))
    lengths: Sequence[float | None] = (
        durations_s if len(durations_s) == len(found) else [None] * len(found)
    )
    return [
        norm.rescore(matches, length)[:top_k]
        for matches, length in zip(found, lengths, strict=True)
    ]


def normalized_claim(
    policy: DecisionPolicy,
    name: str,
    query: np.ndarray,
    score: float,
    search: Search,
    population: Callable[[], Population],
    duration_s: float,
) -> float | None:
    """The score that ``policy`` decides by of the claim that ``query`` (cosine ``score``
    to it, from a clip of ``duration_s`` seconds) is ``name``; ``None`` when that is
    the cosine itself."""
    norm = get_norm(policy.score_norm)
    if not norm.needs_population:
        nearest = () if norm.decides_by_cosine else search(query[None, :], norm.search_k(1))[0]
        return norm.claim(name, score, nearest, duration_s)
    cohort = population()
    normalized = population_scores(norm, query[None, :], cohort, policy.top_n)[1]
    return float(normalized[0, cohort.names.index(name)])


def normalize(
    mode: str | ScoreNorm,
    raw: np.ndarray,
    queries: np.ndarray,
    templates: np.ndarray,
    cohort: Cohort,
    top_n: int,
    durations_s: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Scores ``(q, s)`` of ``mode`` from raw cosines of queries against templates.

    ``cohort`` and ``top_n`` are used by population scores only; the cohort's owners
    index the template columns. ``durations_s``, each query clip's length, is
    needed by scores that use it.
    """
    norm = get_norm(mode) if isinstance(mode, str) else mode
    return norm.matrix(Cosines(raw, queries, templates, cohort, top_n, durations_s))


def population_scores(
    mode: str | ScoreNorm,
    queries: np.ndarray,
    population: Population,
    top_n: int,
    durations_s: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw and normalised scores ``(q, s)`` of queries against every enrolled speaker."""
    templates = population.templates()
    raw = np.asarray(queries, dtype=np.float64) @ templates.astype(np.float64).T
    return raw, normalize(mode, raw, queries, templates, population.cohort(), top_n, durations_s)


def normalized_matches(
    mode: str | ScoreNorm, queries: np.ndarray, population: Population, top_n: int, top_k: int
) -> list[tuple[Match, ...]]:
    """Each query's ``top_k`` speakers by normalised score, best first."""
    if population.n_speakers == 0:
        return [() for _ in range(len(queries))]
    raw, normalized = population_scores(mode, queries, population, top_n)
    out = []
    for raw_row, norm_row in zip(raw, normalized, strict=True):
        best = np.argsort(-norm_row, kind="stable")[:top_k]
        names = population.names
        out.append(tuple(Match(names[j], float(raw_row[j]), float(norm_row[j])) for j in best))
    return out
