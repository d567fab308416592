"""Deciding: which score decides at which threshold (the policy), the score
normalisations (a registry of strategies), ranking, calibration and the metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__all__ = [
    "DEFAULT_TOP_N",
    "MARGIN_WEIGHT",
    "AsNorm",
    "BandwidthCountermeasure",
    "Calibration",
    "Cohort",
    "Cosine",
    "Cosines",
    "Countermeasure",
    "CountermeasureScore",
    "Margin",
    "MarginDuration",
    "PolicySources",
    "Population",
    "ScoreNorm",
    "as_norm",
    "calibrate_population",
    "cohort_stats",
    "countermeasure_names",
    "duration_penalty",
    "duration_slope",
    "enrollment_scores",
    "get_countermeasure",
    "get_norm",
    "margin_scores",
    "norm_names",
    "normalize",
    "normalized_matches",
    "population_scores",
    "register",
    "register_countermeasure",
    "resolve_policy",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BandwidthCountermeasure": "._countermeasure",
        "Countermeasure": "._countermeasure",
        "countermeasure_names": "._countermeasure",
        "get_countermeasure": "._countermeasure",
        "register_countermeasure": "._countermeasure",
        "CountermeasureScore": "..types",
        "PolicySources": "._policy",
        "resolve_policy": "._policy",
        "AsNorm": "._scores",
        "Cosine": "._scores",
        "Cosines": "._scores",
        "Margin": "._scores",
        "MarginDuration": "._scores",
        "ScoreNorm": "._scores",
        "get_norm": "._scores",
        "norm_names": "._scores",
        "register": "._scores",
        "Population": "._population",
        "normalize": "._ranking",
        "normalized_matches": "._ranking",
        "population_scores": "._ranking",
        "MARGIN_WEIGHT": "._norms",
        "duration_penalty": "._norms",
        "margin_scores": "._norms",
        "DEFAULT_TOP_N": "._asnorm",
        "Cohort": "._asnorm",
        "as_norm": "._asnorm",
        "cohort_stats": "._asnorm",
        "Calibration": "._thresholds",
        "calibrate_population": "._calibration",
        "duration_slope": "._duration_slope",
        "enrollment_scores": "._enrollment_trials",
    },
)

if TYPE_CHECKING:
    from ..types import CountermeasureScore
    from ._asnorm import DEFAULT_TOP_N, Cohort, as_norm, cohort_stats
    from ._calibration import calibrate_population
    from ._countermeasure import (
        BandwidthCountermeasure,
        Countermeasure,
        countermeasure_names,
        get_countermeasure,
        register_countermeasure,
    )
    from ._duration_slope import duration_slope
    from ._enrollment_trials import enrollment_scores
    from ._norms import MARGIN_WEIGHT, duration_penalty, margin_scores
    from ._policy import PolicySources, resolve_policy
    from ._population import Population
    from ._ranking import normalize, normalized_matches, population_scores
    from ._scores import (
        AsNorm,
        Cosine,
        Cosines,
        Margin,
        MarginDuration,
        ScoreNorm,
        get_norm,
        norm_names,
        register,
    )
    from ._thresholds import Calibration
