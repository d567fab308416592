"""The slope of a duration quality term, fitted by logistic regression.

A quality-measure function, as in speaker-verification calibration, models
the log-odds that an answer is right as ``a * score + b * ln(duration) + c``.
Accepting when that reaches a constant is accepting when
``score - slope * ln(duration)`` reaches one, with ``slope = -b / a``: the
score minus the duration term that :mod:`speakerdb.scorenorm` subtracts.
The fit weighs both classes equally, so that the slope does not depend on how
many strangers were sampled.
"""

from __future__ import annotations

import numpy as np

from speakerdb.config import DURATION_CAP_S, DURATION_REFERENCE_S

__all__ = ["log_length", "logistic_slope"]

_RIDGE = 1e-4  # keeps the Newton steps finite when the classes separate


def log_length(durations_s: np.ndarray) -> np.ndarray:
    """``ln(d / reference)`` with ``d`` clamped as the library clamps it."""
    seconds = np.clip(durations_s, DURATION_REFERENCE_S, DURATION_CAP_S)
    return np.log(seconds / DURATION_REFERENCE_S)


def logistic_slope(scores: np.ndarray, log_lengths: np.ndarray, genuine: np.ndarray) -> float:
    """``-b / a`` of the class-balanced logistic regression of ``genuine`` on
    ``(scores, log_lengths)``."""
    x = np.column_stack([scores, log_lengths, np.ones(len(scores))])
    y = np.asarray(genuine, dtype=np.float64)
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w = np.zeros(3)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (weight * (p - y)) + _RIDGE * w
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + _RIDGE * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(-w[1] / w[0])
