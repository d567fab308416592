"""Fitting margin-duration's duration slope (:mod:`speakerdb.decision._norms`) to scores
whose right answers and strangers are known."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["duration_slope"]

# Keeps the logistic regression's Newton steps finite when the classes separate.
_RIDGE = 1e-4


def duration_slope(scores: np.ndarray, durations_s: np.ndarray, genuine: np.ndarray) -> float:
    """The slope of margin-duration's duration term that ``scores`` call for.

    A quality-measure function, as in speaker-verification calibration: the
    class-balanced logistic regression of ``genuine`` (true for right answers,
    false for strangers) on ``(score, ln(d / 0.5 s))``, with ``d`` clamped as
    :func:`speakerdb.decision._norms.duration_penalty` clamps it, models the log-odds
    as ``a * score + b * ln(d / 0.5 s) + c``. Accepting where those reach a
    constant is accepting where ``score - slope * ln(d / 0.5 s)`` does, with
    ``slope = -b / a``; that is returned. Weighing both classes equally keeps
    the slope independent of how many strangers were sampled.
    """
    from ._norms import duration_penalty

    x = np.column_stack([scores, duration_penalty(durations_s, 1.0), np.ones(len(scores))])
    y = np.asarray(genuine, dtype=np.float64)
    if not 0 < y.sum() < len(y):
        raise InputError("fitting a duration slope needs both right answers and strangers")
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w = np.zeros(3)
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (weight * (p - y)) + _RIDGE * w
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + _RIDGE * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(-w[1] / w[0])
