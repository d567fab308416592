"""eval_open_set's tuning counts strangers by sorting: the lowest threshold it finds is
the one the definition gives, candidate by candidate (scripts/eval_open_set.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import eval_open_set as eos


def by_definition(t: eos.Trials, min_speech: float, share: float, n_from: int, n_to: int) -> float:
    candidates = np.unique(t.best)
    for value in candidates:
        named = float(t.named(value, min_speech).mean())
        if eos.carried(named, n_from, n_to) <= share + 1e-12:
            return float(value)
    return float(np.nextafter(candidates[-1], np.inf))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 3.0)), min_size=1, max_size=60),
    st.sampled_from([0.0, 0.01, 0.05, 0.2]),
    st.sampled_from([0.0, 0.5, 1.0]),
    st.integers(2, 9),
    st.integers(2, 20),
)
def test_the_lowest_threshold_is_the_definitions(
    rows: list[tuple[float, float]], share: float, minimum: float, n_from: int, n_to: int
) -> None:
    best = np.round(np.array([r[0] for r in rows]), 2)  # ties, as real scores have
    speech = np.array([r[1] for r in rows])
    empty = np.zeros(best.size)
    t = eos.Trials(best, empty.astype(bool), speech, empty, empty, empty)
    expected = by_definition(t, minimum, share, n_from, n_to)
    assert eos.lowest_threshold(t, minimum, share, n_from, n_to) == expected
