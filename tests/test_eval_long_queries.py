"""The long-query evaluation's pure parts, on fake data: the paired test that decides,
that tuning on raised scores is deciding by a bar that falls with duration, and the
clear exit when the voices are not built (scripts/eval_long_queries.py,
scripts/unseen_voices.py, scripts/eval_open_set.py; the evaluation itself needs apt and
is not run here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import eval_long_queries as longq
import eval_open_set as eos

from speakerdb.encoders._registry import ThresholdCurve

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_the_paired_test_counts_only_discordant_trials() -> None:
    assert longq.mcnemar_one_sided(5, 0) == 1 / 32
    assert longq.mcnemar_one_sided(0, 0) == 1.0
    assert longq.mcnemar_one_sided(3, 3) > 0.5 > longq.mcnemar_one_sided(9, 1)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.6, 1.0), st.floats(0.3, 40.0)), min_size=1, max_size=30),
    st.sampled_from([0.0, 0.01, 0.03, 0.057]),
    st.integers(2, 30),
)
def test_a_bar_on_raised_scores_is_a_bar_that_falls(
    trials: list[tuple[float, float]], fall: float, n: int
) -> None:
    """Tuning finds thresholds on scores raised by fall x ln(d / 0.5 s) (Trials.shifted);
    deciding by the curve that falls (eval_open_set.bar, ThresholdCurve.at) must name
    the same trials, up to the 4-decimal rounding the library shows."""
    best = np.array([t[0] for t in trials])
    duration = np.array([t[1] for t in trials])
    ones = np.ones(len(trials), bool)
    x = eos.Trials(best, ones, ones * 1.0, best * np.nan, best * np.nan, duration)
    curve = ThresholdCurve(0.85, 0.05, fall=fall)
    raised = x.shifted(fall).best - curve.at(n)
    falling = best - np.asarray(eos.bar(curve, n, x))
    clear = np.abs(raised) > 1e-4  # away from the rounding of the bar
    assert np.array_equal((raised >= 0)[clear], (falling >= 0)[clear])


def test_the_evaluation_says_how_to_build_missing_voices(tmp_path: Path) -> None:
    env = dict(os.environ, SPEAKERDB_UNSEEN=str(tmp_path / "none"))
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "eval_long_queries.py"), "--shipped"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "python scripts/unseen_voices.py" in done.stderr
    assert not (tmp_path / "none").exists()
