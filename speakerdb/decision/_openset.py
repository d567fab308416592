"""Thresholds that bound the share of strangers let in: identify's (best of N) and
verify's (one claim).

A stranger's identify score is the **best** of their scores against the N enrolled
speakers, so the share of strangers who are given a name grows with N. If ``p(t)``
is the chance that one enrolled speaker's score reaches ``t`` for a stranger, then:

- whatever the dependence between speakers (the union bound), the share named at N is
  at most ``N * p(t)``; for the cosine and the margin scores, which a larger
  population only pushes down for every speaker but the best, it is also at most
  ``ceil(N / m)`` times the share named at any smaller size ``m``;
- if the speakers' scores were independent, it would be ``1 - (1 - p(t)) ** N``,
  about ``N * p(t)`` while that is small. On real voices it grows a little slower
  (the best scores of similar voices go together).

So an identify threshold is calibrated at the database's own N, from *stranger
trials* scored against N or N - 1 speakers: each enrolled speaker in turn plays the
stranger against the others (the best of the rest), and each voice of an imported
cohort plays one against everyone. A trial scored against ``m < N`` speakers is
carried to N by the independence model: a share ``r`` named at ``m`` becomes
``1 - (1 - r) ** (N / m)``. A database that grows after calibrating lets in more
strangers; calibrate again.

Counting alone cannot show a small rate from a few trials: ``k`` of ``n`` strangers
named bound the true share, with 95% confidence, only by the one-sided
Clopper-Pearson limit, about ``3 / n`` when ``k = 0``. The threshold is therefore the
higher of two, each at the target share:

- the *counted* one: the lowest threshold at which the share of the trials (carried
  to N) named is at most the target;
- the *modelled* one: the target's quantile of a normal fitted to the trials' scores
  (carried to N), which extrapolates past the highest stranger score seen.

The result states both the counted share and its 95% upper limit, which is the
guarantee that holds without a model. Verification gets its own threshold the same
way from one-claim impostor scores (N = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_TARGET",
    "StrangerBound",
    "carried_share",
    "stranger_threshold",
    "upper_limit",
]

#: The share of strangers a plain ``calibrate`` (and the shipped defaults) aim at.
DEFAULT_TARGET = 0.01
#: The confidence of :func:`upper_limit`.
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class StrangerBound:
    """A threshold at a target share of strangers, and what holds at it.

    ``named`` of ``n`` trials reach the threshold; ``counted`` is their share
    carried to ``n_speakers``; ``upper`` its one-sided 95% upper limit (the share
    that holds without a model); ``modelled`` the normal model's share at the
    threshold; ``method`` says which rule set it (``"counted"`` or ``"modelled"``, or
    ``"default"`` when the caller fixed it or the trials could not show a lower one,
    ``"upper"`` when the upper limit set it, ``"ceiling"`` when the score's range did).
    """

    threshold: float
    target: float
    n_speakers: int
    n: int
    named: int
    counted: float
    upper: float
    modelled: float
    method: str


def carried_share(share: float | np.ndarray, m: float, n: int) -> np.ndarray:
    """A share of strangers named at ``m`` speakers, carried to ``n`` by the
    independence model: ``1 - (1 - share) ** (n / m)``."""
    share = np.clip(np.asarray(share, np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):  # a share of 1 stays 1: log1p(-1) is -inf
        return np.asarray(-np.expm1((n / max(m, 1)) * np.log1p(-share)))


def upper_limit(named: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper limit of a share when ``named`` of ``n`` were named."""
    if n <= 0:
        return 1.0
    if named >= n:
        return 1.0
    lo, hi = named / n, 1.0
    for _ in range(60):  # bisect P(X <= named | p) = 1 - confidence
        mid = (lo + hi) / 2
        if _binomial_cdf(named, n, mid) > 1.0 - confidence:
            lo = mid
        else:
            hi = mid
    return hi


def _binomial_cdf(k: int, n: int, p: float) -> float:
    logs = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * math.log(p)
        + (n - i) * math.log1p(-p)
        for i in range(k + 1)
    ]
    top = max(logs)
    return math.exp(top) * sum(math.exp(v - top) for v in logs)


def stranger_threshold(
    scores: np.ndarray,
    sizes: np.ndarray | float,
    n_speakers: int,
    target: float,
    fixed: float | None = None,
    ceiling: float = math.inf,
    default: float | None = None,
) -> StrangerBound:
    """The threshold at which at most ``target`` of strangers are named at ``n_speakers``.

    ``scores`` are stranger trials' best scores, each against ``sizes`` speakers (one
    number, or one per trial): see the module's docstring. With ``fixed``, that is the
    threshold (``method`` ``"default"``), and the rest says what holds at it. No
    threshold exceeds ``ceiling`` (a cosine's is 1; ``method`` ``"ceiling"``).

    With ``default`` (the measured default), a threshold below it is taken only as far
    as the trials *show* the target without a model: down to the lowest threshold whose
    counted share's 95% upper limit is at most ``target`` (``method`` ``"upper"``); where
    no threshold below ``default`` shows it, ``default`` stays (``method``
    ``"default"``). A few trials cannot show a small share, so calibrating a small site
    can make it stricter than the default, never more lenient.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"the target share must be between 0 and 1, got {target}")
    scores = np.asarray(scores, np.float64)
    if scores.size < 2 or not np.all(np.isfinite(scores)):
        raise ValueError("a stranger threshold needs at least 2 finite scores")
    size = np.broadcast_to(np.asarray(sizes, np.float64), scores.shape)
    # Per trial: the target share at its own size (the inverse of carried_share).
    per_trial = 1.0 - (1.0 - target) ** (size / n_speakers)
    counted_t = _counted(scores, size, n_speakers, target)
    modelled_t = _modelled(scores, float(np.mean(per_trial)))
    chosen, method = _chosen(counted_t, modelled_t, fixed)
    if method != "default" and default is not None and chosen < default:
        shown = _shown(scores, float(size.mean()), n_speakers, target, chosen, default)
        chosen, method = (default, "default") if shown is None else (shown, "upper")
    threshold = min(chosen, ceiling)
    named = int(np.sum(scores >= threshold))
    counted = _share_at(scores, size, n_speakers, threshold)
    mean, spread = _fit(scores)
    typical = float(size.mean())
    modelled = float(carried_share(_normal_tail(threshold, mean, spread), typical, n_speakers))
    return StrangerBound(
        threshold=threshold,
        target=target,
        n_speakers=n_speakers,
        n=int(scores.size),
        named=named,
        counted=counted,
        upper=float(carried_share(upper_limit(named, scores.size), typical, n_speakers)),
        modelled=modelled,
        method="ceiling" if threshold == ceiling else method,
    )


def _chosen(counted: float, modelled: float, fixed: float | None) -> tuple[float, str]:
    if fixed is not None:
        return fixed, "default"
    return (counted, "counted") if counted >= modelled else (modelled, "modelled")


def _shown(
    scores: np.ndarray, typical: float, n_speakers: int, target: float, low: float, high: float
) -> float | None:
    """The lowest threshold in ``[low, high)`` (a stranger score, or just above the
    highest) at which the 95% upper limit of the share named, carried to
    ``n_speakers``, is at most ``target``; None if there is none."""
    candidates = _candidates(scores)
    candidates = candidates[(candidates >= low) & (candidates < high)]

    def shows(threshold: float) -> bool:  # the upper limit falls as the threshold rises
        limit = upper_limit(int(np.sum(scores >= threshold)), scores.size)
        return float(carried_share(limit, typical, n_speakers)) <= target + 1e-12

    return _lowest(candidates, shows)


def _share_at(scores: np.ndarray, size: np.ndarray, n_speakers: int, threshold: float) -> float:
    """The share of trials named at ``threshold``, each size's share carried to
    ``n_speakers`` and weighted by its trials."""
    hit = scores >= threshold
    total = 0.0
    for m in np.unique(size):
        group = size == m
        total += float(carried_share(hit[group].mean(), float(m), n_speakers)) * group.sum()
    return total / scores.size


def _counted(scores: np.ndarray, size: np.ndarray, n_speakers: int, target: float) -> float:
    """The lowest threshold (a stranger score, or just above the highest) whose carried
    share of trials named is at most ``target``."""
    candidates = _candidates(scores)
    found = _lowest(candidates, lambda t: _share_at(scores, size, n_speakers, t) <= target + 1e-12)
    assert found is not None  # it holds at the top candidate, where no one is named
    return found


def _candidates(scores: np.ndarray) -> np.ndarray:
    """Every threshold worth trying: each distinct score, and just above the highest."""
    return np.unique(np.append(scores, np.nextafter(scores.max(), np.inf)))


def _lowest(candidates: np.ndarray, holds: Callable[[float], bool]) -> float | None:
    """The lowest of sorted ``candidates`` at which ``holds``, which once true stays true
    for every higher one (so a bisection finds it); None if it holds at none."""
    lo, hi = 0, candidates.size
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(float(candidates[mid])):
            hi = mid
        else:
            lo = mid + 1
    return None if lo == candidates.size else float(candidates[lo])


def _fit(scores: np.ndarray) -> tuple[float, float]:
    return float(np.mean(scores)), max(float(np.std(scores, ddof=1)), 1e-6)


def _modelled(scores: np.ndarray, share: float) -> float:
    """The score a normal fitted to ``scores`` exceeds with probability ``share``."""
    from statistics import NormalDist

    mean, spread = _fit(scores)
    return float(NormalDist(mean, spread).inv_cdf(1.0 - share))


def _normal_tail(threshold: float, mean: float, spread: float) -> float:
    from statistics import NormalDist

    return 1.0 - NormalDist(mean, spread).cdf(threshold)
