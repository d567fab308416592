"""Score normalisation: turning raw cosines against the enrolled population into decisions.

Four modes, chosen per database (``speakerdb score-norm``) or per query; a
database that never chose one uses its model's default
(:func:`speakerdb.config.default_score_norm`):

- ``none``: the raw cosine between the query and the template.
- ``asnorm``: adaptive symmetric normalisation with the enrolled population as
  cohort (:mod:`speakerdb.decision._asnorm`).
- ``margin``: the cosine plus :data:`MARGIN_WEIGHT` times its lead over the
  best *other* enrolled speaker, ``s_j + w * (s_j - max_{k != j} s_k)``. A
  stranger's voice matches someone mostly by being close to several people at
  once; this penalises exactly that. With a single enrolled speaker there is
  no other, and the score is the cosine.
- ``margin-duration`` (the default for GE2E): the margin score minus a term
  that grows with the clip's length, ``DURATION_SLOPE * ln(d / 0.5 s)`` with
  ``d`` clamped to [0.5 s, 30 s]. This is a quality-measure function as in
  speaker-verification calibration: a longer clip's embedding is cleaner and
  scores higher against everyone, strangers included, so a fixed bar lets long
  strangers in while it turns short genuine clips away. The slope and where it
  comes from are in :mod:`speakerdb.config`. The term depends on the query
  only, so it never changes which speaker ranks first.

Raw cosines are always kept in :attr:`~speakerdb.types.Match.score`; the
normalised score goes in ``normalized`` and decides. Each mode has its own
threshold (``speakerdb calibrate`` sets the one of the mode in use).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import DURATION_CAP_S, DURATION_REFERENCE_S, DURATION_SLOPE
from ..types import Match
from ._asnorm import Cohort, as_norm
from ._population import Population

__all__ = [
    "MARGIN_MODES",
    "MARGIN_WEIGHT",
    "duration_penalty",
    "margin_matches",
    "margin_scores",
    "normalize",
    "normalized_matches",
    "population_scores",
    "query_penalties",
]

#: Weight of the lead over the best other speaker in ``margin`` scores.
MARGIN_WEIGHT = 1.0
#: The modes built on the margin: both need only each query's best two speakers.
MARGIN_MODES = ("margin", "margin-duration")


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


def duration_penalty(
    durations_s: Sequence[float] | np.ndarray, slope: float = DURATION_SLOPE
) -> np.ndarray:
    """What margin-duration subtracts from a clip's margin scores, per clip duration (s)."""
    seconds = np.clip(np.asarray(durations_s, np.float64), DURATION_REFERENCE_S, DURATION_CAP_S)
    return np.asarray(slope * np.log(seconds / DURATION_REFERENCE_S))


def query_penalties(
    mode: str, durations_s: Sequence[float] | np.ndarray | None, n_queries: int
) -> np.ndarray:
    """What ``mode`` subtracts from each query's scores: the duration term, or nothing."""
    if mode != "margin-duration":
        return np.zeros(n_queries)
    if durations_s is None or len(durations_s) != n_queries:
        raise ValueError("margin-duration scores need one duration per query")
    return duration_penalty(durations_s)


def margin_matches(
    matches: Sequence[Match], weight: float = MARGIN_WEIGHT, penalty: float = 0.0
) -> tuple[Match, ...]:
    """Matches, best first by cosine, with their margin scores minus ``penalty`` (the
    order does not change).

    The best two matches are all a margin needs: the best other speaker of the
    first is the second, and of every other it is the first.
    """
    if len(matches) < 2:
        return tuple(Match(m.speaker, m.score, m.score - penalty) for m in matches)
    first, second = matches[0].score, matches[1].score
    return tuple(
        Match(
            m.speaker,
            m.score,
            m.score + weight * (m.score - (second if i == 0 else first)) - penalty,
        )
        for i, m in enumerate(matches)
    )


def normalize(
    mode: str,
    raw: np.ndarray,
    queries: np.ndarray,
    templates: np.ndarray,
    cohort: Cohort,
    top_n: int,
    durations_s: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Scores ``(q, s)`` of ``mode`` from raw cosines of queries against templates.

    ``cohort`` and ``top_n`` are used by ``asnorm`` only; the cohort's owners
    index the template columns. ``durations_s``, each query clip's length, is
    needed by ``margin-duration`` only.
    """
    if mode == "asnorm":
        return as_norm(raw, queries, templates, cohort, top_n)
    if mode in MARGIN_MODES:
        return margin_scores(raw) - query_penalties(mode, durations_s, len(raw))[:, None]
    return np.asarray(raw, dtype=np.float64)


def population_scores(
    mode: str,
    queries: np.ndarray,
    population: Population,
    top_n: int,
    durations_s: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw and normalised scores ``(q, s)`` of queries against every enrolled speaker."""
    templates = population.templates()
    raw = np.asarray(queries, dtype=np.float64) @ templates.astype(np.float64).T
    cohort = Cohort(population.embeddings, population.owners)
    return raw, normalize(mode, raw, queries, templates, cohort, top_n, durations_s)


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
