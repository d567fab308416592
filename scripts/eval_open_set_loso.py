#!/usr/bin/env python3
"""Does the way the defaults are chosen keep strangers out *and* identify enrolled
speakers, for voices it was not chosen on? Leave-one-speaker-out on the shared corpus.

``scripts/eval_open_set.py`` chooses the shipped defaults on one fold (6 speakers) and
reports on the other (5). This script leaves each of the 11 speakers out in turn and
runs the same tuning procedure (:func:`eval_open_set.tune`) on the other 10: at each
population size N of 2 to 9, the lowest margin-duration threshold at which at most 1%
of the strangers' single clips and 1% of their items of 3 s or more are named; the
curve ``a + b / N`` fitted to them (held from N = 10), falling with the query's
duration d by ``fall x ln(d / 0.5 s)``; the net-speech minimum and fall that identify
most of the 10's items correctly (``--one-bar``: fall 0, the rule before). The
held-out speaker's items are then
reported as a stranger and as an enrolled speaker, against populations of N = 3, 6
and 10 drawn from the other 10:

- at the tuned defaults (the curve at N);
- after ``calibrate`` (:func:`speakerdb.decision._calibration.calibrate_population`,
  target 1% of strangers) from each population's own 3-clip enrollments, which keeps
  the tuned default with fewer than 6 stranger voices (N = 3);
- after ``calibrate`` with a cohort of outside voices (30 clips of each speaker
  neither enrolled nor the probe).

No figure of a held-out speaker takes part in choosing its defaults. Counts are pooled
over the held-out speakers, with 95% Wilson intervals (trials of one speaker are not
independent: the intervals are narrower than the truth).

    nice -n 10 python scripts/eval_open_set_loso.py      # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_open_set as base
from corpus import ensure_corpus

KIND = base.DEFAULT_KIND
LABELS = ("default", "calibrated", "calib+cohort")
STRANGERS = {w: most for w, (most, _) in base.TARGETS.items()}
CORRECT = {w: least for w, (_, least) in base.TARGETS.items()}

#: [strangers named, stranger trials, correct, genuine trials] per (label, N, set).
Counts = dict[tuple[str, int, str], np.ndarray]


Rule = tuple[str, str]
#: The rule the shipped defaults were tuned by (eval_open_set.tune's default).
SHIPPED_RULE: Rule = ("envelope", "grid")
#: With --nested: the curve fitted by least squares or raised to an envelope, the
#: net-speech minimum chosen from the grid or fixed at 0.5 s.
RULES = (("envelope", "grid"), ("envelope", "fixed"), ("lsq", "grid"), ("lsq", "fixed"))
NESTED = False
#: The falls tried (eval_open_set.tune): the grid of falls with the query's duration the
#: shipped default was tuned by, or with --one-bar one bar for every duration.
FALLS: tuple[float, ...] = base.FALL_GRID


def cached(uncached: Callable[..., base.Trials | None]) -> Callable[..., base.Trials | None]:
    """``eval_open_set.trials`` remembered for uncalibrated calls: every rule's tuning
    on the same speakers scores the same trials."""
    memo: dict[tuple[object, ...], base.Trials | None] = {}

    def trials(by_name, probes, pool, n, stranger, kind, which, calibrations):  # type: ignore[no-untyped-def]
        if calibrations is not None:
            return uncached(by_name, probes, pool, n, stranger, kind, which, calibrations)
        key = (tuple(probes), tuple(pool), n, stranger, kind, which)
        if key not in memo:
            memo[key] = uncached(by_name, probes, pool, n, stranger, kind, which, None)
        return memo[key]

    return trials


def choose(fold: list[str]) -> Rule:
    """The rule whose inner leave-one-out figures on ``fold`` are best: each of its
    speakers held out in turn, the rule tuned on the rest; the rules that keep
    strangers named at most at half the targets, the one with the most correct
    identifications, else the one that exceeds least."""

    def merit(rule: Rule) -> tuple[bool, float]:
        inner = pooled(
            [
                report(
                    h, base.tune(BY_NAME, [s for s in fold if s != h], (KIND,), rule, FALLS), fold
                )
                for h in fold
            ]
        )
        excess = max(c[0] / c[1] / (STRANGERS[w] / 2) for (_, _, w), c in inner.items())
        correct = float(np.mean([c[2] / c[3] for c in inner.values()]))
        return (excess <= 1.0, correct if excess <= 1.0 else -excess)

    return max(RULES, key=merit)


def report(probe: str, tuned: dict[str, object], pool: list[str] | None = None) -> Counts:
    """The held-out ``probe``'s counts at the defaults ``tuned`` without it, against
    populations drawn from ``pool`` (every speaker); with no ``pool`` also after
    calibrate (each population calibrated as a site would, the tuned default kept
    when too few voices)."""
    curve = tuned["thresholds"][KIND]  # type: ignore[index]
    speech = float(tuned["min_speech"])  # type: ignore[arg-type]
    calibrations = None if pool else base.Calibrations(BY_NAME, list(EVERY), {KIND: curve})
    out: Counts = {}
    for n in base.SIZES:
        for which in base.SETS:
            got = {
                stranger: base.trials(
                    BY_NAME, [probe], list(pool or EVERY), n, stranger, KIND, which, calibrations
                )
                for stranger in (True, False)
            }
            s, g = got[True], got[False]
            if s is None or g is None:  # an inner fold has no 10 strangers' worth
                continue
            for label, threshold in (
                ("default", (base.bar(curve, n, s), base.bar(curve, n, g))),
                ("calibrated", (s.calibrated, g.calibrated)),
                ("calib+cohort", (s.with_cohort, g.with_cohort)),
            )[: 1 if pool else 3]:
                out[label, n, which] = np.array(
                    [
                        s.named(threshold[0], speech).sum(),
                        s.best.size,
                        (g.named(threshold[1], speech) & g.own).sum(),
                        g.best.size,
                    ]
                )
    return out


def pooled(parts: list[Counts]) -> Counts:
    total: Counts = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def line(counts: Counts) -> str:
    cells = []
    for (label, n, which), c in sorted(counts.items()):
        if label == "default":
            share, correct = c[0] / c[1], c[2] / c[3]
            cells.append(f"N{n} {which[:6]}: strangers {share:5.1%}, correct {correct:5.1%}")
    return "; ".join(cells)


def cell(k: float, n: float) -> str:
    lo, hi = base.wilson(int(k), int(n))
    return f"{int(k):4d}/{int(n):<5d} {k / n:5.1%} [{100 * lo:4.1f},{100 * hi:5.1f}]"


def main() -> None:
    start = time.perf_counter()
    print(f"offline GE2E, {KIND}; {len(EVERY)} speakers, each held out in turn")
    if NESTED:
        fold_a = list(EVERY[0::2])
        print(f"fold A (the shipped defaults' speakers): rule chosen {choose(fold_a)}", flush=True)
    parts = []
    for held in EVERY:
        fold = [s for s in EVERY if s != held]
        rule = choose(fold) if NESTED else SHIPPED_RULE
        tuned = base.tune(BY_NAME, fold, (KIND,), rule, FALLS)
        curve = tuned["thresholds"][KIND]  # type: ignore[index]
        part = report(held, tuned)
        parts.append(part)
        at = ", ".join(f"N={n}: {curve.at(n):.3f}" for n in base.SIZES)
        print(
            f"\n{held}: rule {rule}; min speech {tuned['min_speech']} s; threshold "
            f"{curve.a:.4f} + {curve.b:.4f}/N - {curve.fall:g} x ln(d / 0.5 s) ({at} at 0.5 s)"
            f"\n  {line(part)}",
            flush=True,
        )
    total = pooled(parts)
    print(
        "\nheld-out speakers pooled (targets: strangers named <= 5% of single clips and "
        "<= 2% of items >= 3 s; correct >= 40% and >= 60%):"
    )
    missed = 0
    for label in LABELS:
        for n in base.SIZES:
            for which in base.SETS:
                c = total[label, n, which]
                met = c[0] / c[1] <= STRANGERS[which] and c[2] / c[3] >= CORRECT[which]
                missed += not met and label != "calib+cohort"
                print(
                    f"  {label:12s} N={n:2d} {which:13s} strangers named {cell(c[0], c[1])}  "
                    f"correct {cell(c[2], c[3])}  {'met' if met else 'MISSED'}"
                )
    verdict = "every target met" if not missed else f"{missed} figure(s) MISSED"
    print(f"\nat the defaults and after calibrate: {verdict}")
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    logging.getLogger("speakerdb").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--nested",
        action="store_true",
        help="choose each fold's rule among RULES by an inner leave-one-out (about 3 minutes)",
    )
    parser.add_argument(
        "--one-bar",
        action="store_true",
        help="tune one identify bar for every query duration (the rule before it fell)",
    )
    args = parser.parse_args()
    NESTED = args.nested
    FALLS = (0.0,) if args.one_bar else base.FALL_GRID
    base.ARGS = argparse.Namespace(singles=100, items=40, populations=8, seed=args.seed)
    speakers, _ = base.load_speakers(ensure_corpus(), 100, 40, args.seed)
    BY_NAME = {s.name: s for s in speakers}
    EVERY = tuple(sorted(BY_NAME))
    base.trials = cached(base.trials)  # type: ignore[assignment]

    main()
