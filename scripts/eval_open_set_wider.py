#!/usr/bin/env python3
"""Do defaults chosen on more voices identify more enrolled people without letting more
strangers in? A pre-registered test of the open-set rule on a wider tuning set.

PROTOCOL (pre-registered: committed before this script's code was written and before
any figure of the candidate was computed; the decision to ship follows it, whatever it
shows). Anything looked at later is labelled post hoc.

Why. The shipped identify default (GE2E, margin-duration, ``0.9016 + 0.0031 / N -
0.01 x ln(d / 0.5 s)``, held from N = 10) was chosen by eval_open_set.tune on fold A's
6 speakers of the shared corpus. Six voices show the 1% threshold only up to N = 5,
and one close pair of voices sets it for everyone: the B -> A rotation (the rule on
fold B's 5) identifies too few (31.7% of single clips and 44.2% of items at N = 10),
and on every set of unseen voices strangers are named far under the targets from
N = 10 while too few enrolled people are identified (Tux Paint, mixed N = 10: 52.9% of
items). The candidate tunes the same rule on more voices.

The rule W (the candidate). eval_open_set.tune, unchanged in every step (per-N
lowest threshold at which at most 1% of strangers' single clips and 1% of their items
of 3 s or more are named; ``a + b / N`` fitted by least squares and raised onto every
per-N threshold; the (net-speech minimum, fall) pair of SPEECH_GRID x FALL_GRID that
identifies most of the tuning voices' items correctly at the largest N), run on a
wider tuning set: the tuning speakers of the shared corpus **plus the 13 unseen voices**
of scripts/unseen_voices.py (10 KLettres languages, 3 ktuberling Catalan artists; split
as scripts/eval_long_queries.py splits them: seed 1234, 3 enrollment clips of at least
1 s among those the enrollment gate accepts, every other clip a single-clip query, the
queries joined in path order into items of 3 s or more; 20-102 clips a voice, used
as they are). Populations of the tuning are drawn from the tuning set (8 seeded per
probe, role and N), N from 2 to the set's size less one ("top"). One change follows
from the wider set: the curve is held from N = top, the largest N it was tuned at
(10 before, where the reports stopped), and the choice of minimum and fall is made at
N = top as before.

The test. Four parts; the candidate ships (W on fold A's 6 speakers plus the 13
unseen voices becomes identify's default, with its net-speech minimum, and the README
and tests follow) only if all four hold:

1. A -> B: W on fold A plus the unseen voices, reported on fold B's 5 speakers as
   probes against populations of N = 3, 6 and 10 drawn from the shared corpus's 11 (as
   eval_open_set.py reports the shipped defaults), at the default and after calibrate
   (from each population's own 3-clip enrollments): every one of the issue's targets
   met on the point estimates (strangers named at most 5% of single clips and 2% of
   items of 3 s or more; correct at least 40% and 60%, ``not_enough_speech`` a miss).
2. B -> A: W on fold B plus the unseen voices, reported on fold A likewise: every
   target met at the default and after calibrate.
3. Each speaker left out: W on the other 10 plus the unseen voices, the held-out
   speaker reported as eval_open_set_loso.py reports (populations from the other 10),
   pooled over the 11: every target met at the default and after calibrate.
4. Tux Paint (scripts/eval_open_set_tuxpaint.py's voices, split, slices and
   populations, unchanged): with the candidate in place of the shipped curve (and its
   minimum, if it picks another), strangers named within the targets at every slice
   and N at the default and after calibrate; and pooled over every slice and N, the
   candidate's correct identifications of single clips and of items each no more
   than 2 percentage points below the shipped curve's on the same trials.

Reported too, judged by nothing: each part's figures for the shipped rule alongside
(parts 1-3 as eval_open_set.py and eval_open_set_loso.py print them), and which of the
issue's targets the candidate meets on Tux Paint.

Caveats, fixed now. The unseen voices were the test voices of eval_long_queries.py
and are enrolled-only members of Tux Paint's large populations; after this test they
are tuning voices, and no longer unseen. The shared corpus's figures of parts 1-3 are
not new to the project: earlier rules were diagnosed on them. Tux Paint's voices were
looked at once, by the shipped default's check; nothing was chosen on them. Trials of
one voice are not independent (95% Wilson intervals are narrower than the truth).

RESULT of the pre-registered run (the script's output, 98 s): **the candidate does not
ship**; parts 1 and 4 hold, parts 2 and 3 do not. The shipped default is unchanged.

- W is stricter for few speakers and more lenient for many: on fold A plus the unseen
  voices, ``0.8747 + 0.2903 / N - 0.02 x ln(d / 0.5 s)`` held from N = 18 (0.972 /
  0.923 / 0.904 / 0.891 at N = 3 / 6 / 10 / 18 for 0.5 s; shipped 0.903 / 0.902 /
  0.902). Every W tuned here has b of 0.21-0.47: the per-N thresholds of the wider
  sets fall steeply from N = 2.
- Part 1 (A -> B) holds: strangers named at most 0.8% of single clips and 0 items;
  correct 58.6 / 62.2 / 61.0% of single clips and 76.0 / 87.0 / 88.0% of items at
  N = 3 / 6 / 10 (the shipped rule: 73.6 / 63.0 / 55.6% and 92.0 / 86.0 / 78.5%).
- Part 2 (B -> A) misses every correct-identification target: 37.5 / 32.3 / 27.7% of
  single clips and 41.7 / 37.1 / 35.4% of items at the default (W on fold B holds no
  fall and sits at 0.987 / 0.951 / 0.937), fewer than the shipped rule on fold B
  alone (37.5 / 35.0 / 31.7% and 56.7 / 50.0 / 44.2%). Strangers named at most 0.7%.
- Part 3 (each speaker left out) misses one target: items of 3 s or more at N = 3,
  237/440, 53.9% correct (default and after calibrate); every other figure met, and
  strangers named at most 0.8% of single clips and 1/440 items (the shipped rule
  meets every target here).
- Part 4 (Tux Paint) holds: strangers named at most 0.8% of single clips and 0.1% of
  items at every slice and N; pooled correct, single clips 49.3% against the shipped
  curve's 50.2%, items 66.6% against 64.8%. W identifies more at large N (large
  N = 20: 45.6% / 63.1% against 40.1% / 52.0%; N = 30: 41.2% / 56.8% against 35.1% /
  44.1%) and fewer at N = 3 (mixed: 48.5% / 63.0% against 59.5% / 77.8%); mixed N = 10
  items still miss 60% (58.7%; shipped 52.9%).

What it says: more tuning voices do not cure the small-N side: the 1% thresholds at
N = 2-3 of the wider set are high, and a + b / N raised onto all of them is strict for
small sites. It does lower the bar for many speakers, where the shipped curve, held
from N = 10, turns enrolled people away.

POST HOC rerun (2026-12-08, the script unchanged, 4 minutes under load), after clips
came to be embedded and timed from their words and the shipped default became
``0.9029 + 0.0037 / N - 0.01 x ln(d / 0.5 s)``. Not a test: the verdict above stands,
and it says the same. W on fold A plus the unseen voices is ``0.8645 + 0.3568 / N -
0.03 x ln(d / 0.5 s)`` held from N = 18 (0.983 / 0.924 / 0.900 / 0.884 at N = 3 / 6 /
10 / 18 for 0.5 s), stricter still for few speakers. Part 1 holds (58.4 / 62.4 / 64.2%
of single clips and 76.5 / 87.0 / 90.5% of items at N = 3 / 6 / 10); part 2 misses
every correct-identification target by more (26.2 / 26.5 / 25.3% and 30.4 / 31.2 /
34.2%); part 3 misses two (N = 3: 39.7% of single clips, 52.3% of items); part 4 holds
and gains more: every target met at W's default in every slice and N (large N = 30:
45.9% / 68.2% against the shipped curve's 34.9% / 43.5%; strangers at most 0.9% of
single clips and 0.4% of items), pooled 51.9% / 73.4% against 50.0% / 64.3%, but
fewer at N = 3 (mixed: 49.0% / 67.0% against 59.6% / 77.6%).

    python scripts/unseen_voices.py && python scripts/tuxpaint_voices.py   # once
    nice -n 10 python scripts/eval_open_set_wider.py [--json out.json]
"""

from __future__ import annotations

import logging
import sys
import time

import eval_open_set as eos
import eval_open_set_loso as loso
from _openset_cli import finished, parsed
from _openset_data import Embedder, Speaker, load_speakers
from corpus import ensure_corpus
from eval_open_set_fresh import fresh_speakers, slice_report
from eval_open_set_tuxpaint import COHORT_CLIPS, LARGE_SIZES, MIXED_SIZES, TUXPAINT_SIZES
from tuxpaint_voices import TUXPAINT
from tuxpaint_voices import manifest as tuxpaint_manifest
from unseen_voices import UNSEEN, manifest_rows

from speakerdb.config import MIN_QUERY_SPEECH_S

SEED = 1234
KIND = eos.DEFAULT_KIND
#: Part 4's allowance: the candidate's pooled correct identifications at most this
#: far below the shipped curve's.
ALLOWANCE = 0.02
Tuned = dict[str, object]


def unseen_speakers() -> list[Speaker]:
    """The 13 unseen voices, split as eval_long_queries.py splits them."""
    embed = Embedder(UNSEEN / "embeddings")
    speakers, _ = fresh_speakers(embed, gated=True, by_voice=manifest_rows())
    embed.save()
    return speakers


def rule_w(fold: list[str], unseen: list[str]) -> Tuned:
    """The rule W: the shipped rule on ``fold`` plus ``unseen``, held from the largest N."""
    return eos.tune(loso.BY_NAME, [*fold, *unseen], (KIND,), loso.SHIPPED_RULE, eos.FALL_GRID, True)


def tuned_on(fold: list[str], unseen: list[str]) -> tuple[Tuned, Tuned]:
    """The rule W on ``fold`` plus ``unseen``, and the shipped rule on ``fold`` alone."""
    alone = eos.tune(loso.BY_NAME, fold, (KIND,), loso.SHIPPED_RULE, eos.FALL_GRID)
    return rule_w(fold, unseen), alone


def described(tuned: Tuned) -> str:
    curve = tuned["thresholds"][KIND]  # type: ignore[index]
    at = ", ".join(f"N={n}: {curve.at(n):.3f}" for n in (3, 6, 10, curve.high))
    return (
        f"{curve.a:.4f} + {curve.b:.4f}/N - {curve.fall:g} x ln(d / 0.5 s), held from "
        f"N = {curve.high} ({at} at 0.5 s); minimum net speech {tuned['min_speech']} s"
    )


def judged(counts: loso.Counts, title: str) -> tuple[bool, dict[str, object]]:
    """``counts`` printed against the issue's targets; whether every one is met at the
    default and after calibrate, and the figures."""
    print(f"  {title}:")
    met_all, figures = True, dict[str, object]()
    for label in loso.LABELS:
        for n in eos.SIZES:
            for which in eos.SETS:
                c = counts.get((label, n, which))
                if c is None:
                    continue
                met = c[0] / c[1] <= loso.STRANGERS[which] and c[2] / c[3] >= loso.CORRECT[which]
                if label != "calib+cohort":
                    met_all &= bool(met)
                figures[f"{label} N={n} {which}"] = [int(v) for v in c]
                print(
                    f"    {label:12s} N={n:2d} {which:13s} strangers named "
                    f"{loso.cell(c[0], c[1])}  correct {loso.cell(c[2], c[3])}  "
                    f"{'met' if met else 'MISSED'}"
                )
    return met_all, figures


def rotation(folds: dict[str, list[str]], unseen: list[str], out: dict[str, object]) -> bool:
    """Parts 1 and 2: W on one fold plus the unseen voices, reported on the other."""
    ok = True
    for part, (tune_fold, report_fold) in enumerate((("A", "B"), ("B", "A")), start=1):
        wide, alone = tuned_on(folds[tune_fold], unseen)
        print(f"\n== part {part}: {tune_fold} -> {report_fold} ==")
        print(f"  W on fold {tune_fold} + {len(unseen)} unseen voices: {described(wide)}")
        print(f"  the shipped rule on fold {tune_fold} alone: {described(alone)}")
        met, figures = judged(loso.pooled([loso.report(p, wide) for p in folds[report_fold]]), "W")
        _, before = judged(
            loso.pooled([loso.report(p, alone) for p in folds[report_fold]]),
            "the shipped rule (reported alongside, judged by nothing)",
        )
        print(f"  part {part}: {'every target met' if met else 'a target MISSED'}")
        out[f"part {part}"] = {
            "met": met,
            "W": figures,
            "shipped rule": before,
            "curve": described(wide),
        }
        ok &= met
    return ok


def left_out(unseen: list[str], out: dict[str, object]) -> bool:
    """Part 3: each shared-corpus speaker left out in turn, W tuned without it."""
    parts, curves = [], {}
    for held in loso.EVERY:
        fold = [s for s in loso.EVERY if s != held]
        wide = rule_w(fold, unseen)
        parts.append(loso.report(held, wide))
        curves[held] = described(wide)
        print(f"  without {held}: {curves[held]}\n    {loso.line(parts[-1])}", flush=True)
    met, figures = judged(loso.pooled(parts), "W, held-out speakers pooled")
    print(f"  part 3: {'every target met' if met else 'a target MISSED'}")
    out["part 3"] = {"met": met, "W": figures, "curves": curves}
    return met


def pooled_correct(tables: dict[str, dict[str, object]]) -> dict[str, tuple[int, int]]:
    """Correct identifications at the default, pooled over every slice and N."""
    total = {which: [0, 0] for which in eos.SETS}
    for table in tables.values():
        for key, figures in table.items():
            if key.endswith(" default"):
                for which in eos.SETS:
                    c = figures[f"genuine {which}"]  # type: ignore[index]
                    total[which][0] += int(c["k"])
                    total[which][1] += int(c["n"])
    return {w: (k, n) for w, (k, n) in total.items()}


def strangers_within(tables: dict[str, dict[str, object]]) -> bool:
    """Strangers named within the targets at every slice and N, default and calibrated."""
    ok = True
    for table in tables.values():
        for key, figures in table.items():
            if key.endswith((" default", " calibrated")):
                for which, (most, _) in eos.TARGETS.items():
                    c = figures[f"stranger {which}"]  # type: ignore[index]
                    ok &= not c["n"] or c["share"] <= most
    return ok


def tuxpaint(wide: Tuned, out: dict[str, object]) -> bool:
    """Part 4: Tux Paint's check with the candidate and with the shipped curve."""
    by_voice = tuxpaint_manifest()
    embed = Embedder(TUXPAINT / "embeddings")
    voices, _ = fresh_speakers(embed, gated=True, by_voice=by_voice)
    embed.save()
    shared, _ = load_speakers(ensure_corpus(), COHORT_CLIPS, 1, SEED)
    by_name = {s.name: s for s in [*voices, *shared, *unseen_speakers()]}
    probes = [s.name for s in voices]
    slices = {
        "tuxpaint": (probes, TUXPAINT_SIZES),
        "mixed": (probes + [s.name for s in shared], MIXED_SIZES),
        "large": (sorted(by_name), LARGE_SIZES),
    }
    shipped = eos.shipped_thresholds()[KIND]
    candidate = wide["thresholds"][KIND]  # type: ignore[index]
    tables = {}
    for label, curve, minimum in (
        ("shipped", shipped, MIN_QUERY_SPEECH_S),
        ("W", candidate, float(wide["min_speech"])),  # type: ignore[arg-type]
    ):
        print(f"\n== part 4: Tux Paint at the {label} curve ==")
        tables[label] = slice_report(by_name, probes, slices, curve, minimum)["tables"]
    within = strangers_within(tables["W"])  # type: ignore[arg-type]
    correct = {label: pooled_correct(t) for label, t in tables.items()}  # type: ignore[arg-type]
    print(f"\n  part 4: strangers within the targets everywhere at W: {within}")
    kept = True
    for which in eos.SETS:
        (k1, n1), (k0, n0) = correct["W"][which], correct["shipped"][which]
        fine = k1 / n1 >= k0 / n0 - ALLOWANCE
        kept &= fine
        print(
            f"  pooled correct, {which}: W {k1}/{n1} {k1 / n1:.1%}, shipped {k0}/{n0} "
            f"{k0 / n0:.1%} ({'within' if fine else 'MORE than'} {ALLOWANCE:.0%} below)"
        )
    out["part 4"] = {"strangers within": within, "correct": correct, "tables": tables}
    return within and kept


def main() -> int:
    logging.getLogger("speakerdb").setLevel(logging.ERROR)
    start = time.perf_counter()
    manifest_rows(), tuxpaint_manifest()  # both sets built, or exit 2 saying how
    shared, _ = load_speakers(ensure_corpus(), 100, 40, SEED)
    unseen = unseen_speakers()
    loso.BY_NAME = {s.name: s for s in [*shared, *unseen]}
    loso.EVERY = tuple(sorted(s.name for s in shared))
    folds = {"A": list(loso.EVERY[0::2]), "B": list(loso.EVERY[1::2])}
    names = [s.name for s in unseen]
    print(f"offline GE2E, {KIND}; {len(shared)} shared-corpus speakers, {len(names)} unseen")
    out: dict[str, object] = {}
    results = [rotation(folds, names, out)]
    print("\n== part 3: each speaker left out ==", flush=True)
    results.append(left_out(names, out))
    wide_a, _ = tuned_on(folds["A"], names)
    results.append(tuxpaint(wide_a, out))
    verdict = all(results)
    print(f"\nparts 1-2, 3, 4: {results}; the candidate {'SHIPS' if verdict else 'does not ship'}")
    return finished(start, ARGS.json, out)


if __name__ == "__main__":
    ARGS = parsed(__doc__, SEED, 8)  # eval_open_set_loso's base is eval_open_set
    sys.exit(main())
