"""Accuracy measures against cases worked out by hand (see the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from speakerdb.decision import _metrics as metrics
from speakerdb.evaluation import _trials as scoring

# Accept at score >= t. The curve's thresholds: 0.1 0.2 0.3 0.6 0.65 0.7 0.8 0.9 inf
#   t     0.1  0.2  0.3  0.6  0.65 0.7  0.8  0.9  inf
#   far   1    .75  .5   .25  .25  0    0    0    0
#   frr   0    0    0    0    .25  .25  .5   .75  1
TARGET = [0.9, 0.8, 0.7, 0.6]
NONTARGET = [0.1, 0.2, 0.3, 0.65]


def test_det_curve_by_hand() -> None:
    curve = metrics.det_curve(TARGET, NONTARGET)
    assert curve.thresholds.tolist() == [0.1, 0.2, 0.3, 0.6, 0.65, 0.7, 0.8, 0.9, np.inf]
    assert curve.far.tolist() == [1, 0.75, 0.5, 0.25, 0.25, 0, 0, 0, 0]
    assert curve.frr.tolist() == [0, 0, 0, 0, 0.25, 0.25, 0.5, 0.75, 1]


def test_eer_by_hand() -> None:
    # |far - frr| is 0 first at t = 0.65, where both are 0.25.
    assert metrics.eer(TARGET, NONTARGET) == (0.25, 0.65)


def test_eer_of_separated_scores_is_zero() -> None:
    rate, threshold = metrics.eer([0.8, 0.9], [0.1, 0.2])
    assert rate == 0.0
    assert 0.2 < threshold <= 0.8


def test_min_dcf_by_hand() -> None:
    # p = 0.5: cost = (frr + far) / 2, normalised by 0.5: frr + far, lowest (0.25) first at 0.6.
    assert metrics.min_dcf(TARGET, NONTARGET, 0.5) == (0.25, 0.6)
    # p = 0.01: cost = 0.01 frr + 0.99 far over 0.01. At 0.7: 0.0025 / 0.01 = 0.25;
    # at 0.6: 0.2475 / 0.01 = 24.75; rejecting everything costs 1.
    value, threshold = metrics.min_dcf(TARGET, NONTARGET, 0.01)
    assert value == pytest.approx(0.25)
    assert threshold == 0.7


def test_min_dcf_never_exceeds_the_trivial_system() -> None:
    rng = np.random.default_rng(0)
    for p in (0.01, 0.05, 0.5):
        value, _ = metrics.min_dcf(rng.normal(size=50), rng.normal(size=50), p)
        assert 0.0 <= value <= 1.0


def test_threshold_for_far_and_rates_there() -> None:
    assert metrics.threshold_for_far(TARGET, NONTARGET, 0.25) == 0.6
    assert metrics.threshold_for_far(TARGET, NONTARGET, 0.0) == 0.7
    assert metrics.far_at(NONTARGET, 0.6) == 0.25
    assert metrics.frr_at(TARGET, 0.6) == 0.0
    assert metrics.frr_at(TARGET, 0.7) == 0.25
    assert metrics.frr_at(TARGET, 0.75) == 0.5


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="no target"):
        metrics.eer([], [0.1])
    with pytest.raises(ValueError, match="finite"):
        metrics.eer([np.nan], [0.1])
    with pytest.raises(ValueError, match="p_target"):
        metrics.min_dcf(TARGET, NONTARGET, 1.0)


# Rows: items; columns: speakers 0, 1, 2. The last item is an impostor (-1).
SCORES = np.array(
    [
        [0.9, 0.1, 0.2],  # speaker 0: right, 0.9
        [0.3, 0.5, 0.4],  # speaker 2: ranked 2nd behind speaker 1 (0.5)
        [0.2, 0.6, 0.7],  # speaker 1: ranked 2nd behind speaker 2 (0.7)
        [0.8, 0.1, 0.1],  # impostor, best 0.8
    ]
)
TRUTH = np.array([0, 2, 1, -1])


def test_top_k_by_hand() -> None:
    assert metrics.top_k_accuracy(SCORES, TRUTH, 1) == pytest.approx(1 / 3)
    assert metrics.top_k_accuracy(SCORES, TRUTH, 2) == 1.0


def test_open_set_by_hand() -> None:
    # At 0.55: item 0 right and accepted; item 1's best (0.5) rejected; item 2's best
    # (speaker 2, 0.7) accepted but wrong; the impostor's best (0.8) accepted.
    result = metrics.open_set(SCORES, TRUTH, 0.55)
    assert (result.correct, result.wrong, result.impostors_accepted) == (1 / 3, 1 / 3, 1.0)
    assert (result.n_genuine, result.n_impostor) == (3, 1)
    high = metrics.open_set(SCORES, TRUTH, 0.85)
    assert (high.correct, high.wrong, high.impostors_accepted) == (1 / 3, 0.0, 0.0)


def test_open_set_with_a_falling_bar_takes_each_items_own() -> None:
    """Where the bar falls with duration (identify's GE2E default), each item faces the
    bar at its own duration, as identify decides it: a long item is accepted at a score
    a 0.5 s one is not, and a bar given without durations is one bar for all."""
    scores = np.array([[0.88, 0.1], [0.88, 0.1], [0.1, 0.865]])
    truth = np.array([0, 0, -1])
    long_s = 0.5 * np.exp(3)  # the bar falls 3 x 0.01 = 0.03, to 0.87
    falling = metrics.open_set(scores, truth, 0.9, 0.01, [0.5, long_s, long_s])
    assert (falling.correct, falling.impostors_accepted) == (0.5, 0.0)
    assert (falling.threshold, falling.duration_fall) == (0.9, 0.01)
    falling = metrics.open_set(scores, truth, 0.89, 0.01, [0.5, long_s, long_s])
    assert (falling.correct, falling.impostors_accepted) == (0.5, 1.0)
    flat = metrics.open_set(scores, truth, 0.89, 0.01)
    assert (flat.correct, flat.impostors_accepted, flat.duration_fall) == (0.0, 0.0, 0.0)


def test_threshold_for_correct_id_by_hand() -> None:
    assert metrics.threshold_for_correct_id(SCORES, TRUTH, 1 / 3) == 0.9
    assert metrics.threshold_for_correct_id(SCORES, TRUTH, 0.5) is None  # top-1 is only 1/3
    assert metrics.threshold_for_correct_id(SCORES, TRUTH, 0.0) == np.inf


def test_margins_by_hand() -> None:
    margins = scoring.margins(SCORES, TRUTH)
    assert margins.correct == pytest.approx(0.7)  # 0.9 - 0.2
    assert margins.wrong == pytest.approx(0.1)  # median of 0.1 (0.5-0.4) and 0.1 (0.7-0.6)
    assert margins.impostor == pytest.approx(0.7)


def test_balanced_trials() -> None:
    truth = np.array([0, 0, 1, 1, 2, -1, -1])
    trials = scoring.balanced_trials(truth, n_speakers=3, seed=5)
    assert trials.target.sum() == 5 and (~trials.target).sum() == 5
    pairs = list(zip(trials.items.tolist(), trials.speakers.tolist()))
    assert len(set(pairs)) == len(pairs)
    for item, speaker, target in zip(trials.items, trials.speakers, trials.target):
        assert (truth[item] == speaker) == target
    again = scoring.balanced_trials(truth, n_speakers=3, seed=5)
    assert np.array_equal(again.items, trials.items)


def test_verification_summary_matches_metrics() -> None:
    result = scoring.verification(np.array(TARGET), np.array(NONTARGET))
    assert (result.eer, result.eer_threshold) == (0.25, 0.65)
    assert result.min_dcf_01 == pytest.approx(0.25)
    assert (result.n_target, result.n_nontarget) == (4, 4)
