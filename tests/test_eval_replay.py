"""scripts/eval_replay.py's margin rule and its share of candidates scored (neither
shipped: their pre-registered test missed): the lead is measured against the same crowd
however many candidates are scored, and the number scored is bounded."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakerdb.services._replay import CANDIDATES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from eval_replay import SCORED_MOST, SCORED_SHARE, lead_of, scored_count

candidate_scores = hnp.arrays(
    np.float64,
    st.integers(1, 3 * CANDIDATES),
    elements=st.floats(-5.0, 80.0, allow_nan=False, allow_subnormal=False),
)


@given(candidate_scores)
def test_the_lead_is_over_the_median_of_the_other_best_voted(scores: np.ndarray) -> None:
    best, lead = lead_of(scores)
    assert scores[best] == scores.max()
    crowd = [s for i, s in enumerate(scores[:CANDIDATES]) if i != best]
    assert lead == pytest.approx(scores.max() - (np.median(crowd) if crowd else 0.0))
    # Candidates voted below the ten may hold the best, never change the crowd.
    if scores.size >= CANDIDATES:
        assert lead_of(np.concatenate([scores, [-5.0] * 7]))[1] == pytest.approx(lead)


def test_a_lone_candidate_leads_by_its_score() -> None:
    assert lead_of(np.array([12.0])) == (0, 12.0)
    assert lead_of(np.array([30.0, 2.0, 25.0, 1.0])) == (0, 28.0)
    # The best found below the ten leads the median of all ten.
    assert lead_of(np.array([1.0] * CANDIDATES + [40.0])) == (CANDIDATES, 39.0)


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.floats(0.0, 1.0))
def test_the_candidates_scored_grow_with_the_stored_clips_and_are_bounded(
    one: int, two: int, share: float
) -> None:
    fewer, more = sorted((one, two))
    assert CANDIDATES <= scored_count(fewer, share) <= scored_count(more, share) <= SCORED_MOST
    assert scored_count(fewer, share) >= min(SCORED_MOST, share * fewer)
    assert scored_count(fewer) == min(SCORED_MOST, max(CANDIDATES, math.ceil(SCORED_SHARE * fewer)))
