"""What ``scripts/eval_replay.py`` reports of a fold at one threshold (evaluation only):
the copies detected by transform, by the replayed clip's duration and against their own
stored clip without the index, and the genuine clips flagged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from _replay_fold import Fold
from _replay_setups import Setup
from _replay_transforms import ACCEPTANCE, TRANSFORMS

#: Duration bands of the replayed clips, for the noisy copies' breakdown.
DURATIONS = [("under 1 s", 0.0, 1.0), ("1-2 s", 1.0, 2.0), ("2-3 s", 2.0, 3.0), ("3 s+", 3.0, 1e9)]
Count = tuple[int, int]


@dataclass
class Figures:
    """Replays detected and genuine clips flagged on one fold at one threshold."""

    threshold: float
    detected: dict[str, Count]
    exact_detected: dict[str, Count]
    noisy_by_seconds: dict[str, Count]
    flagged: Count

    def pooled(self, names: Iterable[str]) -> Count:
        counts = [self.detected[name] for name in names]
        return sum(k for k, _ in counts), sum(n for _, n in counts)

    def meets_targets(self) -> bool:
        k, n = self.pooled(ACCEPTANCE)
        return k >= 0.95 * n and self.flagged[0] <= 0.01 * self.flagged[1]


def figures(fold: Fold, setup: Setup, threshold: float) -> Figures:
    def count(scores: np.ndarray) -> Count:
        return int((scores >= threshold).sum()), int(scores.size)

    replay = fold.replay[setup]
    noisy = np.stack([replay[name] for name in TRANSFORMS if "noise" in name], axis=1)
    by_seconds = {}
    for label, lo, hi in DURATIONS:
        inside = (fold.seconds >= lo) & (fold.seconds < hi)
        by_seconds[label] = count(noisy[inside].ravel())
    return Figures(
        threshold,
        {name: count(s) for name, s in replay.items()},
        {name: count(s) for name, s in fold.exact.items()},
        by_seconds,
        count(fold.genuine[setup]),
    )
