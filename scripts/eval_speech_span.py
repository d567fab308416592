#!/usr/bin/env python3
"""Margin-duration's d on the speech span, not the clip's length: the choice on fold A,
and the pre-registered test it must pass to ship.

Why (session 15, ``scripts/eval_padded_queries.py``): a door that records a fixed
window sends silence around the answer. Margin-duration's duration term counts that
silence, taking 0.057 x ln(d / 0.5 s) off the score while identify's bar falls by only
0.01 x ln(d / 0.5 s): identify named the right speaker for 62% of genuine 2.5-6 s
queries as they were, 50% with 1 s of silence either side, 5-8% with 2 s, none with 3 s.

PROTOCOL (committed before any code of the candidate was written or any figure of it
seen; the test's scripts and thresholds are fixed here and not changed afterwards):

*Candidate.* ``Clip.speech_span_s``: from :data:`speakerdb.audio._vad.PAD_S` (0.1 s)
before the first speech frame of :func:`speakerdb.audio.speech_mask` to 0.1 s after
the last, clamped to the clip; the clip's whole length when no frame is speech.
Margin-duration's d, and identify's falling bar, take it instead of the clip's length
for every query (identify, verify, ``evaluate``, ``calibrate``'s trials), and new
enrollments store it as the utterance's ``duration_s`` (which ``calibrate`` scores
held-out enrollments by). Embeddings, decoding and every length check are unchanged.
Utterances enrolled before keep their stored lengths (CHANGELOG).

*Choice* (this script). The shipped rule, :func:`eval_open_set.tune` on fold A with
span durations (the open-set data's ``Items.durations`` become spans), its grids
unchanged: identify's margin-duration curve (a, b, fall) and the net-speech minimum.
Verify's margin-duration default by the rule the shipped 0.891 came from: the lowest
threshold at which at most 1% of fold A's strangers' single clips and 1% of their items
of 3 s or more are named at every N of 2 to 5, carried to 10, at the chosen minimum.
Check first: the same code on clip lengths must give the shipped values
(0.9016 + 0.0031 / N, fall 0.01, minimum 0.5 s; verify 0.891), or the code is mended
before anything else runs.

*Test*, with the choice in the registry, every part required:

1. ``eval_padded_queries.py``: identify names the right speaker for at least 55%
   (61 of 110) of the genuine queries at every padding of 0.5, 1 and 2 s either side,
   of silence and of noise. 3 s is reported, with no target.
2. ``eval_padded_queries.py --strangers``: at most 2% (2 of 110) of strangers' queries
   named at every padding (none, 0.5-3 s, silence and noise).
3. ``eval_open_set.py`` A -> B: every verdict line of margin-duration, the default
   score (strangers named and correct identifications, single clips and items of 3 s
   or more, N = 3, 6 and 10, at the defaults and after ``calibrate``) says "met"; and
   ``eval_open_set_loso.py`` (the shipped rule, each speaker left out) ends "every
   target met" (at the defaults and after ``calibrate``; its cohort column is reported,
   as that script counts it).

Reported, not required: B -> A, the nested selection (``eval_open_set_loso.py
--nested``), Tux Paint, the fresh and unseen voices; the README's open-set tables are
rerun with the shipped result.

*Decision.* All three parts pass: the candidate ships, with the chosen defaults. Any
part fails: the library change is reverted, the defaults stay, and RESULT below says
which part failed and by how much.

RESULT (2026-12-08, 01:37-01:49 UTC; candidate in 1d6c14e): **part 1 failed; the
candidate did not ship** (reverted).

- The check on clip lengths gave the shipped values (0.9016 + 0.0031 / N, fall 0.01,
  minimum 0.5 s; verify 0.8909). With spans, fold A chose 0.8834 + 0.0275 / N with
  **no fall** (fold A's mean correct identification by fall: 0: 71.0%, 0.01: 70.8%,
  ... 0.057: 68.7%), minimum 0.5 s, verify 0.8917 (0.892).
- Part 1, identify correct of 110 (silence / noise): none 68; 0.5 s 72 / 73; 1 s
  68 / 69; **2 s 17 / 18 (15.5% / 16.4%, target 55%)**; 3 s 0 / 0. Verify
  accepted 16 / 16 at 2 s. The median cosine with the speaker's own template is
  0.842 at 2 s, against 0.860 unpadded: from 2 s the embedding itself is diluted by
  the silence (GE2E averages 1.6 s partials, silent ones too), which spans cannot fix.
  Session 15's reading, that up to 2 s the loss was the decision's and not the
  embedding's, was wrong at 2 s.
- Part 2 was stopped after its first row (0/110 strangers named unpadded), since part 1
  had already decided.
- Part 3 passed: A -> B, every margin-duration line met (N = 10 at the defaults:
  57.8% of single clips and 75.0% of items identified, strangers 0.2% / 0.0%; the
  shipped defaults gave 55.6% and 78.5%); leave-one-speaker-out "every target met".

PROTOCOL 2 (committed after candidate 1's result and before any code of candidate 2;
its choice and test are candidate 1's, unchanged):

*Candidate 2.* The encoder hears the words, not the recorder's silence, and d times
what it heard. Each clip is cut to its words plus up to M = 0.5 s either side (the first
and last speech frames of :func:`speakerdb.audio.speech_mask`; the whole clip when no
frame is speech) before it is embedded, wherever the library embeds
(``encoders.embed_clips``: queries, enrollments, cohort voices, ``calibrate``'s trials,
``evaluate``); margin-duration's d and identify's falling bar take the cut's length,
and enrollments store it as ``duration_s``. Fingerprints (replay), the speech gate, net
speech and every length check still see the whole clip. Vectors stored before keep
working and are not re-embedded (``speakerdb reembed`` would; CHANGELOG).

M is fixed here, not chosen by a run. It comes from session 15's padded figures, which
are of all 11 speakers: 0.5 s of silence either side did not lower identification
(69-70 of 110 against 68), trimming to 0.1 s did (54 of 110). So parts 1 and 2 are not
independent of M; part 3's defaults are chosen on fold A and reported on the others.

*Choice and test*: as for candidate 1 (the choice on fold A with clips cut so and
their cut lengths as durations; parts 1, 2 and 3 with the same targets), and part 1 is
also reported for fold B's 5 speakers alone (not required). *Decision*: the same.

RESULT 2 (2026-12-08, 01:51-02:17 UTC; candidate in 4b82e3f): **every part passed;
candidate 2 shipped** with fold A's choice.

- Choice: per-N 0.8895, 0.9042, 0.8955, 0.8859 at N = 2-5; fold A's mean correct
  identification by fall 0: 67.3%, 0.01: 68.7%, 0.02: 67.4%, ... 0.057: 63.9%; minimum
  0.5 s. Identify 0.9029 + 0.0037 / N - 0.01 x ln(d / 0.5 s); verify 0.8958 (0.896).
- Part 1, identify correct of 110 (silence / noise), target 61: 0.5 s 62 / 63; 1 s
  63 / 63; 2 s 63 / 64; 3 s 65 / 65 (reported). Unpadded 60 (whole clips embedded, in
  session 15 and candidate 1: 68). Verify accepted 58-62 at every padding. Fold B's
  5 speakers alone: 29/50 unpadded, 31-33/50 at every padding.
- Part 2: 0/110 strangers named at every padding, silence and noise, and unpadded.
- Part 3: A -> B, every margin-duration line met (N = 3 / 6 / 10 at the defaults:
  strangers' single clips 2.0 / 0.6 / 0.0%, items 1.5 / 0.5 / 0.0%; correct single
  clips 69.8 / 57.4 / 50.6%, items 90.0 / 79.0 / 70.5%). Leave-one-speaker-out: "every
  target met" (N = 3: strangers 1.2% / 1.4%, correct 51.3% / 69.3%).
- Reported, not required. The cost on clean clips: on whole clips the same rule had
  identified 73.6 / 63.0 / 55.6% of fold B's single clips and 92.0 / 86.0 / 78.5% of
  its items. B -> A still identifies too few (30.2% / 45.8% at N = 10). The nested
  selection misses as before: strangers' items at N = 3, 10/440 (2.3%). Tux Paint at
  the new defaults (``eval_open_set_tuxpaint.py --shipped``): within 1.1 points of
  every figure before.

    nice -n 10 python scripts/eval_speech_span.py [--lengths]   # the choice on fold A
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_open_set as base
from _openset_data import Speaker
from corpus import ensure_corpus

from speakerdb.encoders._registry import ThresholdCurve

#: What this script chose on fold A for candidate 2, which passed its test and shipped.
CHOSEN_IDENTIFY = ThresholdCurve(0.9029, 0.0037, fall=0.01)
CHOSEN_VERIFY = 0.896


def with_lengths(speaker: Speaker) -> Speaker:
    """``speaker`` with every clip's length as its duration (the rule before)."""
    return replace(
        speaker,
        enroll=replace(speaker.enroll, durations=speaker.enroll.lengths),
        singles=replace(speaker.singles, durations=speaker.singles.lengths),
        long=replace(speaker.long, durations=speaker.long.lengths),
    )


def main() -> None:
    args = parse()
    logging.getLogger("speakerdb").setLevel(logging.ERROR)
    start = time.perf_counter()
    base.ARGS = argparse.Namespace(singles=100, items=40, populations=8, seed=args.seed)
    speakers, _ = base.load_speakers(ensure_corpus(), 100, 40, args.seed)
    if args.lengths:
        speakers = [with_lengths(s) for s in speakers]
    by_name = {s.name: s for s in speakers}
    fold = sorted(by_name)[0::2]
    tuned = base.tune(by_name, fold, kinds=(base.DEFAULT_KIND,), falls=base.FALL_GRID)
    curve = tuned["thresholds"][base.DEFAULT_KIND]  # type: ignore[index]
    print(f"durations: {'clip lengths' if args.lengths else 'spoken lengths'}; fold A: {fold}")
    per_n, falls = tuned["per_size"], tuned["fall_curve"]
    print("per N: " + ", ".join(f"{n}: {v:.4f}" for n, v in per_n.items()))  # type: ignore[attr-defined]
    print("fall -> correct: " + ", ".join(f"{k:g}: {v:.1%}" for k, v in falls.items()))  # type: ignore[attr-defined]
    print(f"minimum net speech {tuned['min_speech']} s")
    print(
        f"identify: ThresholdCurve({curve.a:.4f}, {curve.b:.4f}, fall={curve.fall:g}); "
        f"verify: {tuned['verify']:.4f}"
    )
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--lengths",
        action="store_true",
        help="whole clips' lengths as durations (candidate 1's check; the embeddings "
        "are of the spoken part now)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
