"""``speakerdb evaluate``: accuracy on labelled audio (EER, minDCF, top-k, open-set
figures, DET plots), enrolled into an in-memory database."""

from __future__ import annotations

from ._evaluate import EvaluationReport, OpenSetAt, Skipped, evaluate
from ._trials import balanced_trials

__all__ = [
    "EvaluationReport",
    "OpenSetAt",
    "Skipped",
    "balanced_trials",
    "evaluate",
]
