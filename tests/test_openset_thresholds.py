"""The rule that bounds the share of strangers let in (speakerdb.decision._openset):
property tests on synthetic scores, and the growth with the population size N."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakerdb.decision._openset import carried_share, stranger_threshold, upper_limit

scores = st.lists(
    st.floats(-1, 1, allow_nan=False, allow_infinity=False), min_size=2, max_size=200
).map(np.array)
targets = st.sampled_from([0.001, 0.01, 0.05, 0.2])
sizes = st.integers(1, 50)


@settings(max_examples=150, deadline=None)
@given(scores, targets, sizes)
def test_the_counted_share_at_the_threshold_is_within_the_target(
    values: np.ndarray, target: float, n: int
) -> None:
    bound = stranger_threshold(values, n, n, target)
    assert bound.counted <= target + 1e-9
    assert bound.named == int(np.sum(values >= bound.threshold))
    assert bound.counted == pytest.approx(bound.named / values.size)
    assert bound.upper >= bound.counted


@settings(max_examples=100, deadline=None)
@given(scores, sizes)
def test_a_stricter_target_or_a_larger_population_never_lowers_the_threshold(
    values: np.ndarray, n: int
) -> None:
    loose = stranger_threshold(values, 1, n, 0.05).threshold
    assert stranger_threshold(values, 1, n, 0.01).threshold >= loose
    assert stranger_threshold(values, 1, n + 10, 0.05).threshold >= loose


@settings(max_examples=100, deadline=None)
@given(scores, targets, st.floats(-2, 2))
def test_a_fixed_threshold_is_kept_and_described(
    values: np.ndarray, target: float, fixed: float
) -> None:
    bound = stranger_threshold(values, 3, 4, target, fixed=fixed)
    assert bound.threshold == fixed and bound.method == "default"
    assert bound.named == int(np.sum(values >= fixed))


@settings(max_examples=150, deadline=None)
@given(scores, targets, sizes, st.floats(-1, 1))
def test_a_default_is_left_downward_only_as_far_as_the_trials_show(
    values: np.ndarray, target: float, n: int, default: float
) -> None:
    """Calibrating never goes below the measured default on less evidence than it takes
    to show the target without a model (the counted share's 95% upper limit)."""
    free = stranger_threshold(values, max(n - 1, 1), n, target)
    bound = stranger_threshold(values, max(n - 1, 1), n, target, default=default)
    if free.threshold >= default:
        assert bound.threshold == free.threshold and bound.method == free.method
    elif bound.method == "upper":
        assert free.threshold <= bound.threshold < default
        assert bound.upper <= target + 1e-9
    else:
        assert bound.threshold == default and bound.method == "default"


@settings(max_examples=100, deadline=None)
@given(scores, targets)
def test_no_threshold_passes_the_ceiling(values: np.ndarray, target: float) -> None:
    bound = stranger_threshold(values, 1, 1000, target, ceiling=0.5)
    assert bound.threshold <= 0.5


@given(st.integers(0, 40), st.integers(1, 400))
def test_the_upper_limit_is_clopper_pearsons(named: int, n: int) -> None:
    named = min(named, n)
    limit = upper_limit(named, n)
    assert named / n <= limit <= 1.0
    if named == 0:  # closed form: 1 - 0.05 ** (1 / n), about 3 / n
        assert limit == pytest.approx(1 - 0.05 ** (1 / n), abs=1e-9)
    if named < n:
        assert upper_limit(named + 1, n) >= limit


@given(st.floats(0, 1), st.integers(1, 30), st.integers(1, 30))
def test_carrying_a_share_between_population_sizes(share: float, m: int, n: int) -> None:
    carried = float(carried_share(share, m, n))
    assert carried == pytest.approx(1 - (1 - share) ** (n / m))
    assert (carried >= share - 1e-12) if n >= m else (carried <= share + 1e-12)
    # Carrying back is ill-conditioned once 1 - carried nears the float spacing: skip there.
    if carried < 0.999:
        assert float(carried_share(carried, n, m)) == pytest.approx(share, abs=1e-9)


def test_best_of_n_strangers_are_bounded_at_the_databases_size() -> None:
    """Independent speakers: calibrated on the best of 9 (each enrolled speaker playing
    the stranger against the other 9 of 10), the share of fresh strangers named among
    all 10 stays near the target, while the 1:1 threshold lets in several times more."""
    rng = np.random.default_rng(4)
    held_out = rng.normal(0.4, 0.1, (20_000, 9)).max(axis=1)
    bound = stranger_threshold(held_out, 9, 10, 0.01)
    fresh = rng.normal(0.4, 0.1, (200_000, 10)).max(axis=1)
    assert float(np.mean(fresh >= bound.threshold)) == pytest.approx(0.01, abs=0.002)
    one_to_one = stranger_threshold(rng.normal(0.4, 0.1, 20_000), 1, 1, 0.01).threshold
    assert float(np.mean(fresh >= one_to_one)) > 0.05
    # The stranger rate grows with N: about N times the per-speaker rate while small.
    per_speaker = 1 - 0.99 ** (1 / 10)
    assert per_speaker * 10 == pytest.approx(0.01, rel=0.01)
    assert math.isfinite(bound.modelled) and bound.n_speakers == 10


@settings(max_examples=150, deadline=None)
@given(
    st.floats(0.0, 1.5),
    st.floats(0.0, 1.0),
    st.integers(2, 20),
    st.lists(st.integers(0, 10_000), min_size=2, max_size=10),
)
def test_a_threshold_curve_never_rises_with_n_and_holds_past_its_range(
    a: float, b: float, high: int, sizes: list[int]
) -> None:
    """Identify's default as a curve of N (speakerdb.encoders._registry.ThresholdCurve):
    with b >= 0 a larger population never gets a stricter default, beyond ``high`` it
    stays put, and with N unknown the strictest value is taken."""
    from speakerdb.encoders._registry import ThresholdCurve

    curve = ThresholdCurve(a, b, high=high)
    ordered = [curve.at(n) for n in sorted(sizes)]
    assert all(x >= y for x, y in itertools.pairwise(ordered))
    assert curve.at(high) == curve.at(high + 1) == curve.at(10**6)
    assert curve.at(0) == curve.at(1) == curve.at(2)
    assert curve.at(None) == max(curve.at(2), curve.at(high)) >= max(ordered)
