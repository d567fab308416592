"""From query embeddings to scored speakers, by raw cosine or a normalised score.

``none``, ``margin`` and ``margin-duration`` search the FAISS index
(:class:`~speakerdb.storage.sqlite._indexsync.IndexSync`); ``asnorm`` scores the whole enrolled
population. The modes themselves are described in :mod:`speakerdb.decision._norms`.
The population is passed as a callable because reading it costs a pass over
every enrolled utterance, and only AS-norm needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import Match

if TYPE_CHECKING:
    from ..storage.sqlite._indexsync import IndexSync
    from ._population import Population

__all__ = ["normalized_claim", "rank"]


def rank(
    norm: str,
    queries: np.ndarray,
    top_k: int,
    top_n: int,
    index: IndexSync,
    population: Callable[[], Population],
    durations_s: Sequence[float],
) -> list[tuple[Match, ...]]:
    """Each query's ``top_k`` speakers, best first by the score that ``norm`` decides by.

    ``durations_s`` holds each query clip's length (used by ``margin-duration``).
    """
    if norm == "asnorm":
        from ._norms import normalized_matches

        return normalized_matches(norm, queries, population(), top_n, top_k)
    from ._norms import MARGIN_MODES, margin_matches, query_penalties

    search, names = index.snapshot()
    # A margin needs the best other speaker: the top 2 hold it for every candidate.
    scores, ids = search.search(queries, max(top_k, 2) if norm in MARGIN_MODES else top_k)
    found = [_matches(row, ids_row, names) for row, ids_row in zip(scores, ids, strict=True)]
    if norm in MARGIN_MODES:
        penalties = query_penalties(norm, durations_s, len(found))
        found = [
            margin_matches(matches, penalty=float(penalty))[:top_k]
            for matches, penalty in zip(found, penalties, strict=True)
        ]
    return found


def normalized_claim(
    norm: str,
    name: str,
    query: np.ndarray,
    score: float,
    top_n: int,
    index: IndexSync,
    population: Callable[[], Population],
    duration_s: float,
) -> float:
    """The ``norm`` score of the claim that ``query`` (cosine ``score`` to it, from a clip
    of ``duration_s`` seconds) is ``name``."""
    from ._norms import MARGIN_MODES, margin_scores, population_scores, query_penalties

    if norm in MARGIN_MODES:
        search, names = index.snapshot()
        scores, ids = search.search(query[None, :], 2)
        found = _matches(scores[0], ids[0], names)
        others = [m.score for m in found if m.speaker != name][:1]
        margin = margin_scores(np.array([[score, *others]]))[0, 0]
        return float(margin - query_penalties(norm, [duration_s], 1)[0])

    cohort = population()
    normalized = population_scores(norm, query[None, :], cohort, top_n)[1]
    return float(normalized[0, cohort.names.index(name)])


def _matches(scores: np.ndarray, ids: np.ndarray, names: dict[int, str]) -> tuple[Match, ...]:
    return tuple(
        Match(names[int(i)], float(s)) for s, i in zip(scores, ids, strict=True) if int(i) in names
    )
