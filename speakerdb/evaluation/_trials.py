"""From a score matrix to the accuracy report: verification, identification, margins.

Everything here is pure numpy on a score matrix ``(items, speakers)`` and the
column of each item's true speaker (``-1`` for an impostor who is not
enrolled), so that ``speakerdb evaluate`` and ``scripts/eval_table.py``
compute the same figures the same way. The conventions are those of
:mod:`speakerdb.decision._metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..decision import _metrics as metrics

__all__ = [
    "Margins",
    "Trials",
    "VerificationResult",
    "balanced_trials",
    "margins",
    "verification",
]

#: The priors of the detection costs reported (NIST SRE's 0.01, and a laxer 0.05).
P_TARGETS = (0.01, 0.05)


@dataclass(frozen=True, slots=True, eq=False)
class Trials:
    """Verification trials on a score matrix: item row, speaker column, target or not."""

    items: np.ndarray
    speakers: np.ndarray
    target: np.ndarray

    def scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The target and non-target scores of these trials."""
        values = np.asarray(matrix)[self.items, self.speakers]
        return values[self.target], values[~self.target]


def balanced_trials(truth: np.ndarray, n_speakers: int, seed: int = 1234) -> Trials:
    """One target trial per enrolled item, and as many non-target trials drawn at random.

    Non-target trials are drawn uniformly, without repetition, from every pair
    of an item (impostors' included) and an enrolled speaker who is not its
    speaker, as ``../shared/data/protocol.py`` does.
    """
    truth = np.asarray(truth)
    genuine = np.flatnonzero(truth >= 0)
    items, speakers = np.meshgrid(np.arange(len(truth)), np.arange(n_speakers), indexing="ij")
    other = speakers != truth[:, None]
    pool_items, pool_speakers = items[other], speakers[other]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pool_items), size=min(len(genuine), len(pool_items)), replace=False)
    pick.sort()
    return Trials(
        items=np.concatenate([genuine, pool_items[pick]]),
        speakers=np.concatenate([truth[genuine], pool_speakers[pick]]),
        target=np.concatenate([np.ones(len(genuine), bool), np.zeros(len(pick), bool)]),
    )


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """EER and minimum detection costs of a set of trials, with their thresholds."""

    n_target: int
    n_nontarget: int
    eer: float
    eer_threshold: float
    min_dcf_01: float
    min_dcf_01_threshold: float
    min_dcf_05: float
    min_dcf_05_threshold: float


def verification(target: np.ndarray, nontarget: np.ndarray) -> VerificationResult:
    rate, at = metrics.eer(target, nontarget)
    dcf1, at1 = metrics.min_dcf(target, nontarget, P_TARGETS[0])
    dcf5, at5 = metrics.min_dcf(target, nontarget, P_TARGETS[1])
    return VerificationResult(len(target), len(nontarget), rate, at, dcf1, at1, dcf5, at5)


@dataclass(frozen=True, slots=True)
class Margins:
    """Medians of the gap between the best and second-best score.

    A large gap on correct answers and a small one on wrong answers and
    impostors means the margin itself tells how sure an answer is.
    ``nan`` where there is no such item.
    """

    correct: float
    wrong: float
    impostor: float


def margins(scores: np.ndarray, truth: np.ndarray) -> Margins:
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth)
    if scores.shape[1] < 2:
        nan = float("nan")
        return Margins(nan, nan, nan)
    top2 = -np.sort(-scores, axis=1)[:, :2]
    gap = top2[:, 0] - top2[:, 1]
    right = scores.argmax(axis=1) == truth
    genuine = truth >= 0
    return Margins(
        correct=_median(gap[genuine & right]),
        wrong=_median(gap[genuine & ~right]),
        impostor=_median(gap[~genuine]),
    )


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")
