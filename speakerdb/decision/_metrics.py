"""Accuracy measures for verification and identification scores. Pure numpy.

Conventions, used everywhere in speakerdb:

- A trial is *accepted* when its score is ``>= threshold``.
- ``far`` (false-accept rate) is the share of non-target scores accepted;
  ``frr`` (false-reject rate) the share of target scores rejected.
- The DET curve is evaluated at every distinct observed score, plus ``+inf``
  (accept nothing), so each point is an operating point a user can set.
- The equal error rate is taken at the curve point where ``|far - frr|`` is
  smallest, as the mean of the two rates there; its threshold is that point's.
- The detection cost is NIST's: ``DCF(t) = c_miss * p * frr(t) + c_fa * (1 - p) * far(t)``,
  normalised by the cost of the best trivial system, ``min(c_miss * p, c_fa * (1 - p))``;
  minDCF is its minimum over the curve.

Identification works on a score matrix ``(items, speakers)`` and the column of
each item's true speaker, ``-1`` for an impostor who is not enrolled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..encoders._registry import fallen

__all__ = [
    "DetCurve",
    "OpenSetResult",
    "det_curve",
    "eer",
    "far_at",
    "frr_at",
    "min_dcf",
    "open_set",
    "threshold_for_correct_id",
    "threshold_for_far",
    "top_k_accuracy",
]


@dataclass(frozen=True, slots=True)
class DetCurve:
    """Operating points, by increasing threshold: ``far`` falls and ``frr`` rises."""

    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray


def _scores(values: object, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"no {what} scores")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} scores must be finite")
    return array


def det_curve(target: object, nontarget: object) -> DetCurve:
    """False-accept and false-reject rates at every distinct score, and at ``+inf``."""
    tar, non = _scores(target, "target"), _scores(nontarget, "non-target")
    thresholds = np.append(np.unique(np.concatenate([tar, non])), np.inf)
    tar_sorted, non_sorted = np.sort(tar), np.sort(non)
    # Scores below t are rejected: searchsorted(side="left") counts them.
    frr = np.searchsorted(tar_sorted, thresholds, side="left") / tar.size
    far = 1.0 - np.searchsorted(non_sorted, thresholds, side="left") / non.size
    return DetCurve(thresholds, far, frr)


def eer(target: object, nontarget: object) -> tuple[float, float]:
    """The equal error rate and its threshold."""
    curve = det_curve(target, nontarget)
    i = int(np.argmin(np.abs(curve.far - curve.frr)))
    return float(curve.far[i] + curve.frr[i]) / 2.0, float(curve.thresholds[i])


def min_dcf(
    target: object,
    nontarget: object,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """The normalised minimum detection cost at prior ``p_target``, and its threshold."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    curve = det_curve(target, nontarget)
    cost = c_miss * p_target * curve.frr + c_fa * (1.0 - p_target) * curve.far
    i = int(np.argmin(cost))
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(cost[i] / norm), float(curve.thresholds[i])


def far_at(nontarget: object, threshold: float) -> float:
    """Share of non-target scores at or above ``threshold``."""
    return float(np.mean(_scores(nontarget, "non-target") >= threshold))


def frr_at(target: object, threshold: float) -> float:
    """Share of target scores below ``threshold``."""
    return float(np.mean(_scores(target, "target") < threshold))


def threshold_for_far(target: object, nontarget: object, target_far: float) -> float:
    """The lowest curve threshold whose false-accept rate is at most ``target_far``."""
    if not 0.0 <= target_far < 1.0:
        raise ValueError(f"target false-accept rate must be in [0, 1), got {target_far}")
    curve = det_curve(target, nontarget)
    # far falls with the threshold, so the first point at or under the target is the lowest.
    i = int(np.argmax(curve.far <= target_far + 1e-12))
    return float(curve.thresholds[i])


def top_k_accuracy(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Closed-set: share of enrolled items whose speaker is among their ``k`` best scores."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth)
    known = truth >= 0
    if not known.any():
        raise ValueError("no items of enrolled speakers")
    rows = scores[known]
    own = rows[np.arange(len(rows)), truth[known]]
    # Rank = number of other speakers scoring strictly higher; ties count in the item's favour.
    rank = np.sum(rows > own[:, None], axis=1)
    return float(np.mean(rank < k))


@dataclass(frozen=True, slots=True)
class OpenSetResult:
    """Open-set identification at one threshold.

    Rates of enrolled speakers' items: ``correct`` (best match is the right
    speaker and reaches the threshold), ``wrong`` (best match is another
    speaker and reaches it) and the rest rejected as unknown. ``impostors_accepted``
    is the share of impostor items whose best match reaches the threshold.
    ``threshold`` is the bar of a 0.5 s item; with a ``duration_fall`` each item faced
    that bar fallen at its own duration, as identify decides
    (:func:`speakerdb.encoders._registry.fallen`).
    """

    threshold: float
    correct: float
    wrong: float
    impostors_accepted: float
    n_genuine: int
    n_impostor: int
    duration_fall: float = 0.0


def open_set(
    scores: np.ndarray,
    truth: np.ndarray,
    threshold: float,
    duration_fall: float = 0.0,
    durations_s: Sequence[float] | None = None,
) -> OpenSetResult:
    """Open-set identification of every item of a score matrix at ``threshold``, or,
    with a ``duration_fall`` and each item's duration, at each item's own bar."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth)
    best, top = scores.argmax(axis=1), scores.max(axis=1)
    if not duration_fall or durations_s is None:
        duration_fall = 0.0
        bars = np.full(len(top), threshold)
    else:
        bars = np.array([fallen(threshold, duration_fall, d) for d in durations_s])
    accepted = top >= bars
    genuine, impostor = truth >= 0, truth < 0
    n_gen, n_imp = int(genuine.sum()), int(impostor.sum())
    right = best == truth
    return OpenSetResult(
        threshold=float(threshold),
        correct=_share(accepted & right & genuine, n_gen),
        wrong=_share(accepted & ~right & genuine, n_gen),
        impostors_accepted=_share(accepted & impostor, n_imp),
        n_genuine=n_gen,
        n_impostor=n_imp,
        duration_fall=duration_fall,
    )


def threshold_for_correct_id(scores: np.ndarray, truth: np.ndarray, rate: float) -> float | None:
    """The highest threshold at which the correct-identification rate reaches ``rate``.

    ``None`` when even accepting everything identifies fewer items correctly
    (the closed-set top-1 accuracy is below ``rate``).
    """
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth)
    genuine = truth >= 0
    rows = scores[genuine]
    right = rows.argmax(axis=1) == truth[genuine]
    needed = int(np.ceil(rate * len(rows) - 1e-9))
    if needed == 0:
        return float("inf")
    hits = np.sort(rows.max(axis=1)[right])[::-1]
    return float(hits[needed - 1]) if needed <= len(hits) else None


def _share(mask: np.ndarray, total: int) -> float:
    return float(mask.sum()) / total if total else float("nan")
