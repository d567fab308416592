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

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..types import DecisionPolicy, Match
from ._asnorm import Cohort
from ._scores import Cosines, ScoreNorm, get_norm

if TYPE_CHECKING:
    from ._population import Population

__all__ = [
    "GroupSearch",
    "Search",
    "Within",
    "normalize",
    "normalized_claim",
    "normalized_matches",
    "population_scores",
    "rank",
]

#: ``search(queries, k)``: each query row's ``k`` nearest speakers by raw cosine.
Search = Callable[[np.ndarray, int], list[tuple[Match, ...]]]
#: ``search(queries, k, overall)``: each query row's ``k`` nearest speakers of a group,
#: and its ``overall`` nearest of every enrolled speaker (none when ``overall`` is 0).
GroupSearch = Callable[
    [np.ndarray, int, int], tuple[list[tuple[Match, ...]], list[tuple[Match, ...]]]
]


@dataclass(frozen=True)
class Within:
    """A query confined to a group: only its members are candidates, but scores that
    compare with other speakers compare with everyone. The margin's best other speaker
    is the best of the whole database (``search``'s ``overall`` matches), and so is
    AS-norm's cohort; and the threshold is the database's, set for its whole population
    (:mod:`speakerdb.decision._openset`), not one for the group's size. A door that
    admits 10 people is still asked by strangers who resemble any of the 10,000."""

    search: GroupSearch
    #: The names of the group's members (read only by population scores).
    members: Callable[[], Collection[str]]


def rank(
    policy: DecisionPolicy,
    queries: np.ndarray,
    top_k: int,
    search: Search,
    population: Callable[[], Population],
    durations_s: Sequence[float],
    within: Within | None = None,
) -> list[tuple[Match, ...]]:
    """Each query's ``top_k`` speakers, best first by the score ``policy`` decides by;
    of a group's members only, ``within`` one (see :class:`Within`).

    ``durations_s`` holds each query clip's length (for scores that use it).
    """
    norm = get_norm(policy.score_norm)
    if norm.needs_population:
        if within is None:
            return normalized_matches(norm, queries, population(), policy.top_n, top_k)
        everyone = population()
        ranked = normalized_matches(norm, queries, everyone, policy.top_n, everyone.n_speakers)
        members = frozenset(within.members())
        return [tuple(m for m in found if m.speaker in members)[:top_k] for found in ranked]
    k = norm.search_k(top_k)
    overall: list[tuple[Match, ...]]
    if within is None:
        found, overall = search(queries, k), [()] * len(queries)
    else:
        found, overall = within.search(
            queries, k, 0 if norm.decides_by_cosine else norm.search_k(1)
        )
    lengths: Sequence[float | None] = (
        durations_s if len(durations_s) == len(found) else [None] * len(found)
    )
    return [
        _rescored(norm, matches, others, length, top_k)
        for matches, others, length in zip(
            found, overall or [()] * len(found), lengths, strict=True
        )
    ]


def _rescored(
    norm: ScoreNorm,
    matches: tuple[Match, ...],
    overall: tuple[Match, ...],
    duration_s: float | None,
    top_k: int,
) -> tuple[Match, ...]:
    """``matches`` (best first) rescored among the ``overall`` best of everyone: a score
    that looks at the best other speaker looks at the best of all, and only ``matches``
    are kept. A group's best two are never better than everyone's, so the merged list's
    first two are everyone's."""
    if not overall:
        return norm.rescore(matches, duration_s)[:top_k]
    merged = sorted({m.speaker: m for m in (*overall, *matches)}.values(), key=lambda m: -m.score)
    kept = {m.speaker for m in matches}
    return tuple(m for m in norm.rescore(tuple(merged), duration_s) if m.speaker in kept)[:top_k]


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
