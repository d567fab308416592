"""Score normalisation: turning raw cosines against the enrolled population into decisions.

Three modes, chosen per database (``speakerdb score-norm``) or per query:

- ``none`` (default): the raw cosine between the query and the template.
- ``asnorm``: adaptive symmetric normalisation with the enrolled population as
  cohort (:mod:`speakerdb.asnorm`).
- ``margin``: the cosine plus :data:`MARGIN_WEIGHT` times its lead over the
  best *other* enrolled speaker, ``s_j + w * (s_j - max_{k != j} s_k)``. A
  stranger's voice matches someone mostly by being close to several people at
  once; this penalises exactly that. With a single enrolled speaker there is
  no other, and the score is the cosine.

Raw cosines are always kept in :attr:`~speakerdb.types.Match.score`; the
normalised score goes in ``normalized`` and decides. Each mode has its own
threshold (``speakerdb calibrate`` sets the one of the mode in use).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .asnorm import Cohort, as_norm
from .population import Population
from .types import Match

__all__ = [
    "MARGIN_WEIGHT",
    "margin_matches",
    "margin_scores",
    "normalize",
    "normalized_matches",
    "population_scores",
]

#: Weight of the lead over the best other speaker in ``margin`` scores.
MARGIN_WEIGHT = 1.0


def margin_scores(raw: np.ndarray, weight: float = MARGIN_WEIGHT) -> np.ndarray:
    """``raw[i, j] + weight * (raw[i, j] - max_{k != j} raw[i, k])`` for every cell."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[1] < 2:
        return raw.copy()
    order = np.argsort(-raw, axis=1, kind="stable")
    rows = np.arange(len(raw))
    first, second = raw[rows, order[:, 0]], raw[rows, order[:, 1]]
    best_other = np.repeat(first[:, None], raw.shape[1], axis=1)
    best_other[rows, order[:, 0]] = second
    return raw + weight * (raw - best_other)


def margin_matches(matches: Sequence[Match], weight: float = MARGIN_WEIGHT) -> tuple[Match, ...]:
    """Matches, best first by cosine, with their margin scores (the order does not change).

    The best two matches are all a margin needs: the best other speaker of the
    first is the second, and of every other it is the first.
    """
    if len(matches) < 2:
        return tuple(Match(m.speaker, m.score, m.score) for m in matches)
    first, second = matches[0].score, matches[1].score
    return tuple(
        Match(m.speaker, m.score, m.score + weight * (m.score - (second if i == 0 else first)))
        for i, m in enumerate(matches)
    )


def normalize(
    mode: str,
    raw: np.ndarray,
    queries: np.ndarray,
    templates: np.ndarray,
    cohort: Cohort,
    top_n: int,
) -> np.ndarray:
    """Scores ``(q, s)`` of ``mode`` from raw cosines of queries against templates.

    ``cohort`` and ``top_n`` are used by ``asnorm`` only; the cohort's owners
    index the template columns.
    """
    if mode == "asnorm":
        return as_norm(raw, queries, templates, cohort, top_n)
    if mode == "margin":
        return margin_scores(raw)
    return np.asarray(raw, dtype=np.float64)


def population_scores(
    mode: str, queries: np.ndarray, population: Population, top_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Raw and normalised scores ``(q, s)`` of queries against every enrolled speaker."""
    templates = population.templates()
    raw = np.asarray(queries, dtype=np.float64) @ templates.astype(np.float64).T
    cohort = Cohort(population.embeddings, population.owners)
    return raw, normalize(mode, raw, queries, templates, cohort, top_n)


def normalized_matches(
    mode: str, queries: np.ndarray, population: Population, top_n: int, top_k: int
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
