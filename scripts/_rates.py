"""Rates as the evaluation scripts print them: ``k/n``, the percentage and its 95% Wilson
score interval (``scripts/eval_replay.py``, ``eval_open_set.py``, ``eval_asnorm_cohort.py``)."""

from __future__ import annotations

import math


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k:5d}/{n:<5d} {100 * k / max(n, 1):6.2f}%  [{100 * lo:5.2f}, {100 * hi:5.2f}]"
