"""scripts/eval_replay.py: its default run, end to end on a few clips; the options each
run refuses; its margin rule and its share of candidates scored (neither shipped: their
pre-registered test missed): the lead is measured against the same crowd
however many candidates are scored, and the number scored is bounded. Its other-voice
crowd (``--crowd other``): only the other fold's voices, seeded, at most its count."""

from __future__ import annotations

import math
import re
import shlex
import sys
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakerdb.audio._fingerprint import Fingerprint
from speakerdb.services._replay import CANDIDATES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import _replay_corpus
import eval_replay
from _replay_crowd import crowd_paths, crowd_prints, matched_voices, speaker_of, voices_stored
from _replay_lookup import SCORED_MOST, SCORED_SHARE, lead_of, scored_count
from _replay_suspect import best_of_union, prints_by_voice, suspect_union
from eval_replay_length import mismatch


@pytest.mark.slow
def test_the_default_run_reports_both_rotations_and_both_folds_at_scale(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's "both rotations" run (no run flag; ~45 min on the corpus), through
    every step on one speaker per fold and a few clips each: it once crashed with an
    AttributeError that no test ran into."""
    monkeypatch.setattr(_replay_corpus, "CORPUS", corpus)
    monkeypatch.setitem(_replay_corpus.FOLDS, "A", ["asterisk-allison"])
    monkeypatch.setitem(_replay_corpus.FOLDS, "B", ["fillets-cs-big"])
    eval_replay.main(["--recent", "2", "--genuine", "2", "--replays", "1", "--distractors", "6"])
    out = capsys.readouterr().out
    for heading in (
        "#### tuned on fold A (asterisk-allison; ",
        "#### tuned on fold B (fillets-cs-big; ",
        "#### fold A at scale (asterisk-allison)",
        "#### fold B at scale (fillets-cs-big)",
        "#### rules against chance matches at scale",
        "\nwall time ",
    ):
        assert heading in out
    # Each rotation's two tables (without and with distractors) count the 12 copies of the
    # issue's list of the one clip replayed.
    assert len(re.findall(r"ALL, the issue's list +\d+/12 ", out)) == 2 * 2


def _documented_runs() -> list[list[str]]:
    """The options of each command in eval_replay's docstring (its ``Run::`` block)."""
    block = eval_replay.__doc__.split("Run::")[1].split("\n\n")[1].replace("\\\n", " ")
    # "[nice -n 10] python scripts/eval_replay.py OPTIONS  # comment"
    return [
        shlex.split(line.split("eval_replay.py")[1], comments=True) for line in block.splitlines()
    ]


@pytest.mark.parametrize("argv", _documented_runs(), ids=lambda argv: " ".join(argv) or "default")
def test_every_documented_run_is_accepted(argv: list[str]) -> None:
    eval_replay.parse_args(argv)


def test_every_option_says_which_runs_read_it() -> None:
    assert set(vars(eval_replay.parse_args([]))) == set(eval_replay.USED_BY)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--replays-from", "8"], "the default run (both rotations) does not read --replays-from"),
        (["--genuine-from", "120"], "only '--choose-share', '--at-scale --crowd other' or"),
        (["--at-scale", "--tolerance", "0.01"], "--at-scale does not read --tolerance"),
        (["--at-scale", "--crowd", "other", "--also-share", "0.04"], "--also-share (only '--at"),
        (["--bench", "--folds", "A"], "--bench does not read --folds"),
        (["--choose-share", "--margin", "9"], "--choose-share does not read --margin"),
    ],
)
def test_a_run_refuses_an_option_it_would_ignore(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        eval_replay.parse_args(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


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


# The other-voice crowd (scripts/_replay_crowd.py), on synthetic folds and file names.
FOLDS = {"A": ["a1", "a2"], "B": ["b1", "b2", "b3"]}
EVERY = {
    spk: [f"/c/{spk}/clip{i}.wav" for i in range(n)]
    for spk, n in zip(["a1", "a2", "b1", "b2", "b3"], [5, 4, 3, 6, 2])
}


@pytest.mark.parametrize("fold", ["A", "B"])
def test_the_crowd_is_every_clip_of_the_other_folds_voices_and_none_of_its_own(fold: str) -> None:
    paths = crowd_paths(fold, FOLDS, EVERY, seed=1234)
    others = [spk for name, members in FOLDS.items() if name != fold for spk in members]
    assert sorted(paths) == sorted(p for spk in others for p in EVERY[spk])
    assert not {speaker_of(p) for p in paths} & set(FOLDS[fold])


def test_the_crowds_order_is_seeded() -> None:
    shuffled = {spk: list(reversed(paths)) for spk, paths in reversed(list(EVERY.items()))}
    first = crowd_paths("A", FOLDS, EVERY, seed=1234)
    assert crowd_paths("A", FOLDS, shuffled, seed=1234) == first
    assert crowd_paths("A", FOLDS, EVERY, seed=1234) == first
    assert crowd_paths("A", FOLDS, EVERY, seed=99) != first


@given(st.integers(0, 40), st.sets(st.integers(0, 13)))
def test_the_crowd_takes_each_clip_as_it_is_then_reversed_up_to_its_count(
    most: int, quiet: set[int]
) -> None:
    paths = crowd_paths("A", FOLDS, EVERY, seed=7)  # 11 clips of fold B's voices
    # Some fingerprints fail (too quiet): they are skipped, not counted.
    numbered = {(p, rev): 2 * i + rev for i, p in enumerate(paths) for rev in (False, True)}

    def printed(path: str, reversed_: bool) -> str | None:
        n = numbered[path, reversed_]
        return None if n in quiet else f"{path}|{reversed_}"

    prints, sources = crowd_prints(paths, most, printed)
    usable = [key for key, n in sorted(numbered.items(), key=lambda kv: kv[1]) if n not in quiet]
    assert len(prints) == min(most, len(usable))  # all of them when there are fewer
    assert sources == usable[: len(prints)]  # in the seeded order, as it is before reversed
    assert prints == [f"{p}|{rev}" for p, rev in sources]
    assert all(speaker_of(p) in FOLDS["B"] for p, _ in sources)


def test_whose_voice_a_flagged_clip_matched_and_what_was_stored() -> None:
    stored = ["/c/a1/x.wav", "/c/a1/x.wav", "/c/a2/y.wav", "/c/b1/z.wav"]
    assert voices_stored(stored, ["a1", "a2"]) == {"a1": (2, 2), "a2": (1, 3)}
    flagged = [("/c/a1/q.wav", "/c/a1/x.wav"), ("/c/a1/r.wav", "/c/b1/z.wav")]
    assert matched_voices(flagged) == {"own": 1, "other": 1}


# The suspect-aware check (scripts/_replay_suspect.py), on synthetic fingerprints.
SCORES = {b"decoy%d" % i: 3.0 + i for i in range(CANDIDATES)} | {
    b"suspect-1": 2.0,
    b"suspect-2": 20.0,  # out-voted by the ten decoys, yet the best
    b"stranger": 40.0,  # another speaker's, also out-voted: never added
}
VOTED = [b"decoy%d" % i for i in range(CANDIDATES)]


def score_of(union: list[bytes]) -> np.ndarray:
    return np.array([SCORES[p] for p in union])


def test_the_suspects_prints_are_scored_even_when_out_voted() -> None:
    suspect = [b"suspect-1", b"suspect-2", b"suspect-2"]
    assert suspect_union(VOTED, suspect) == [*VOTED, b"suspect-1", b"suspect-2"]
    assert best_of_union(VOTED, suspect, score_of) == (20.0, b"suspect-2")
    # A suspect print among the voted is scored once; no candidate, no match.
    assert suspect_union([b"suspect-1"], suspect) == [b"suspect-1", b"suspect-2"]
    assert best_of_union([], [], score_of) == (0.0, None)


def test_other_speakers_prints_are_not_added() -> None:
    # Without the suspect's prints the check is the shipped one: the stranger is not scored.
    assert best_of_union(VOTED, [], score_of) == (3.0 + CANDIDATES - 1, VOTED[-1])
    assert b"stranger" not in suspect_union(VOTED, [b"suspect-1", b"suspect-2"])
    stored = ["/c/a1/x.wav", "/c/b1/y.wav", "/c/a1/z.wav"]
    prints = [b"x", b"y", b"z"]
    assert prints_by_voice(prints, stored) == {"a1": [b"x", b"z"], "b1": [b"y"]}


def _printed(pattern: list[int]) -> Fingerprint:
    mask = np.array([0xFFFFFFFF if loud else 0 for loud in pattern], dtype=np.uint32)
    return Fingerprint(bits=np.zeros(len(pattern), dtype=np.uint32), mask=mask)


@given(st.integers(1, 300), st.integers(1, 300), st.integers(0, 50), st.integers(0, 50))
def test_the_length_mismatch_is_zero_for_equal_spans_and_ignores_padding(
    a: int, b: int, pad_a: int, pad_b: int
) -> None:
    """eval_replay_length's rule (not shipped): the penalty grows with how much longer one
    clip's loud span is than the other's, whatever silence surrounds them."""
    short = _printed([0] * pad_a + [1] * a + [0] * pad_a)
    other = _printed([0] * pad_b + [1] * b + [0] * pad_b)
    got = mismatch(short, [other, short])
    assert got[1] == 0.0
    assert got[0] == pytest.approx(math.log((a + b) / (2 * min(a, b))))
    assert got[0] == pytest.approx(mismatch(other, [short])[0])
