"""The maths of the margin scores (the strategies that use it are in
:mod:`speakerdb.decision._scores`; AS-norm's is in :mod:`speakerdb.decision._asnorm`).

- ``margin``: the cosine plus :data:`MARGIN_WEIGHT` times its lead over the
  best *other* enrolled speaker, ``s_j + w * (s_j - max_{k != j} s_k)``. With a
  single enrolled speaker there is no other, and the score is the cosine.
- ``margin-duration``: the margin score minus :func:`duration_penalty`,
  ``DURATION_SLOPE * ln(d / 0.5 s)`` with ``d`` clamped to [0.5 s, 30 s]. The
  slope and where it comes from are in :mod:`speakerdb.config`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import DURATION_CAP_S, DURATION_REFERENCE_S, DURATION_SLOPE
from ..types import Match

__all__ = ["MARGIN_WEIGHT", "duration_penalty", "margin_matches", "margin_scores"]

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


def duration_penalty(
    durations_s: Sequence[float] | np.ndarray, slope: float = DURATION_SLOPE
) -> np.ndarray:
    """What margin-duration subtracts from a clip's margin scores, per clip duration (s)."""
    seconds = np.clip(np.asarray(durations_s, np.float64), DURATION_REFERENCE_S, DURATION_CAP_S)
    return np.asarray(slope * np.log(seconds / DURATION_REFERENCE_S))


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
