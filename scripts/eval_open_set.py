#!/usr/bin/env python3
"""Keeping strangers out, by the numbers: open-set identification on the shared corpus
with speakers left out, at the defaults and after ``calibrate``.

Data (scripts/_openset_data.py): per speaker of the shared real-speech corpus, 3
enrollment clips, up to ``--singles`` single clips and up to ``--items`` items of 3 s
or more (the speaker's clips concatenated until they reach 3 s), embedded once with
the offline GE2E encoder and cached under ~/.cache/speakerdb-openset. The corpus's
60 ``silence__N.wav`` clips (digital silence, labelled as speakers) are left out.

Speakers left out: the 11 speakers are split into two folds (alternate speakers in
sorted order). The defaults are chosen on fold A alone (probes and populations of
fold A, :func:`tune`: margin-duration's identify threshold as a curve a + b / N of
the population size, falling by fall x ln(d / 0.5 s) with the query's duration d;
``--one-bar`` tunes one bar for every duration, the rule before); the report is on
fold B's speakers as probes (shipped
defaults, "A -> B"), then the other way round ("B -> A", the rotation). A probe's
populations hold speakers of both folds, as a real site holds voices no tuning saw.
``scripts/eval_open_set_loso.py`` runs the same tuning with each speaker left out.

Per probe item and population size N (3, 6, 10), one of ``--populations`` seeded
populations is drawn (items spread over them in turn):

- as a stranger: N enrolled speakers, none of them the probe's; *named* when the
  best score reaches the threshold and the clip has enough net speech;
- as an enrolled speaker: the probe and N - 1 others; *correct* when the probe's own
  speaker scores best, reaches the threshold and the clip has enough net speech
  (``not_enough_speech`` counts as a miss).

"After calibrate": each population is calibrated as ``speakerdb calibrate`` does
(speakerdb.decision._calibration.calibrate_population, target 1% of strangers), from
its own 3-clip enrollments; with "+ cohort" also from outside voices (30 clips of each
speaker neither enrolled nor the probe), where any are left. With fewer than
MIN_VOICES stranger voices calibration keeps the default (tuned on the other fold);
with more, it goes below that default only as far as its trials show the target
(the counted share's 95% upper limit), as the library does.

Scores are computed as the library computes them (speakerdb.decision.population_scores),
with the enrolled population as AS-norm's cohort. The library itself does not decide
by AS-norm with fewer than MIN_COHORT_VOICES (3) cohort voices (it falls back to the
model's default score); the AS-norm rows at N = 3 show what AS-norm alone would do.

Counts come with 95% Wilson intervals. Trials of one speaker are not independent
(11 voices in all), so the intervals are narrower than the truth.

Replay detection, false flags and noise refusals are measured by
scripts/eval_replay.py and scripts/eval_speech_gate.py; this script runs them after
its own tables unless ``--skip-replay``.

    nice -n 10 python scripts/eval_open_set.py [--skip-replay] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from _openset_data import Items, Speaker, load_speakers
from _rates import wilson
from corpus import ensure_corpus

from speakerdb.config import DEFAULT_TOP_N, DURATION_SLOPE, MIN_QUERY_SPEECH_S
from speakerdb.decision import Population, get_norm, population_scores
from speakerdb.decision._calibration import calibrate_population
from speakerdb.decision._norms import duration_penalty
from speakerdb.encoders._registry import ThresholdCurve, family_of
from speakerdb.errors import InputError

KINDS = ("none", "margin", "margin-duration", "asnorm")
SIZES = (3, 6, 10)
SETS = ("single clips", "items >= 3 s")
#: The issue's targets: strangers named at most, enrolled identified at least.
TARGETS = {
    "single clips": (0.05, 0.40),
    "items >= 3 s": (0.02, 0.60),
}
#: What the defaults are tuned to: the share of strangers named at each N.
TUNE_SHARE = {"single clips": 0.01, "items >= 3 s": 0.01}
#: The default score, whose identify threshold depends on N.
DEFAULT_KIND = family_of("resemblyzer").default_score
#: The largest N the defaults are reported on; the curve holds its value beyond.
CURVE_HIGH = 10
#: The net-speech minimums tried. A clip with too little speech for a secure decision is
#: answered not_enough_speech (issue 11), so there is always one: 0 s is not a choice.
SPEECH_GRID = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
#: How far identify's default may fall per ln(d / 0.5 s) of
#: the query's duration d (ThresholdCurve.fall), from one bar for all (0) to the score's
#: own duration slope (beyond it, padding a clip with silence would lower its bar).
FALL_GRID = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, DURATION_SLOPE)


@dataclass
class Trials:
    """One set of trials: each item's best score, whether that is its own speaker, its
    net speech, the identify threshold its population was calibrated to (without and
    with a cohort; NaN where calibration refused) and its duration (s)."""

    best: np.ndarray
    own: np.ndarray
    speech: np.ndarray
    calibrated: np.ndarray
    with_cohort: np.ndarray
    duration: np.ndarray

    def named(self, threshold: float | np.ndarray, min_speech: float) -> np.ndarray:
        return (self.best >= threshold) & (self.speech >= min_speech)

    def shifted(self, fall: float) -> Trials:
        """These trials with each best score raised by ``fall x ln(d / 0.5 s)``: a bar
        ``t`` on them is the bar that falls with duration, ``t - fall x ln(d / 0.5 s)``
        (:class:`~speakerdb.encoders._registry.ThresholdCurve`'s ``fall``), on these."""
        if not fall:
            return self
        return replace(self, best=self.best + duration_penalty(self.duration, fall))


def bar(curve: ThresholdCurve, n: int, x: Trials) -> float | np.ndarray:
    """``curve``'s threshold at ``n`` speakers for each of ``x``'s trials (one value
    when it does not fall with duration), as the library computes it."""
    if not curve.fall:
        return curve.at(n)
    return np.array([curve.at(n, float(d)) for d in x.duration])


def items_of(speaker: Speaker, which: str) -> Items:
    return speaker.singles if which == SETS[0] else speaker.long


def population_of(by_name: dict[str, Speaker], names: tuple[str, ...]) -> Population:
    return Population.from_groups(
        {n: by_name[n].enroll.vectors for n in names},
        {n: by_name[n].enroll.durations for n in names},
    )


class Calibrations:
    """Each population's calibrated identify threshold, computed once."""

    def __init__(
        self, by_name: dict[str, Speaker], every: list[str], defaults: dict[str, ThresholdCurve]
    ) -> None:
        self.by_name, self.every, self.defaults = by_name, every, defaults
        self.done: dict[tuple[object, ...], tuple[float, bool]] = {}

    def __call__(
        self, names: tuple[str, ...], kind: str, probe: str, cohort: bool, durations: np.ndarray
    ) -> np.ndarray:
        """The threshold each query of ``durations`` seconds faces after calibrating:
        the calibrated one, or the default (at each duration) where calibrate keeps it."""
        outside = tuple(n for n in self.every if n not in names and n != probe) if cohort else ()
        key = (names, kind, outside)
        if key not in self.done:
            vectors = [self.by_name[n].singles.vectors[:30] for n in outside]
            try:
                result = calibrate_population(
                    population_of(self.by_name, names),
                    score_norm=kind,
                    top_n=DEFAULT_TOP_N,
                    cohort=np.concatenate(vectors) if vectors else None,
                    default=self.defaults[kind].at(len(names)),
                )
                kept = result.identify.method == "default"
                self.done[key] = (result.identify.threshold, kept)
            except InputError:
                self.done[key] = (math.nan, False)
        threshold, kept = self.done[key]
        curve = self.defaults[kind]
        if kept and curve.fall:
            return np.array([curve.at(len(names), float(d)) for d in durations])
        return np.full(len(durations), threshold)


def drawn_populations(
    probe: str, pool: list[str], n: int, stranger: bool, seed: int, count: int
) -> list[tuple[str, ...]] | None:
    """The populations of ``n`` enrolled speakers that ``probe``'s items face: ``count``
    seeded draws from ``pool`` (repeats dropped; sorted), without the probe when it is a
    stranger, else the probe and ``n - 1`` others; None when ``pool`` is too small."""
    others = sorted(set(pool) - {probe})
    need = n if stranger else n - 1
    if len(others) < need:
        return None
    rng = random.Random(f"{seed}|{probe}|{n}|{stranger}")
    draws = {tuple(sorted(rng.sample(others, need))) for _ in range(count)}
    return [tuple(sorted(d if stranger else (*d, probe))) for d in sorted(draws)]


def trials(
    by_name: dict[str, Speaker],
    probes: list[str],
    pool: list[str],
    n: int,
    stranger: bool,
    kind: str,
    which: str,
    calibrations: Calibrations | None,
) -> Trials | None:
    """The trials of ``probes``' items against populations of ``n`` drawn from ``pool``."""
    parts: list[tuple[np.ndarray, ...]] = []
    for probe in probes:
        draws = drawn_populations(probe, pool, n, stranger, ARGS.seed, ARGS.populations)
        if draws is None:
            return None
        items = items_of(by_name[probe], which)
        for k, names in enumerate(draws):
            rows = np.arange(k, len(items.vectors), len(draws))
            scored = population_scores(
                kind,
                items.vectors[rows],
                population_of(by_name, names),
                DEFAULT_TOP_N,
                items.durations[rows],
            )[1]
            best = scored.argmax(axis=1)
            own = np.array([names[j] == probe for j in best], dtype=bool)
            durations = items.durations[rows]
            plain = cohort = np.full(len(rows), math.nan)
            if calibrations is not None:
                plain = calibrations(names, kind, probe, False, durations)
                cohort = calibrations(names, kind, probe, True, durations)
            parts.append((scored.max(axis=1), own, items.speech[rows], plain, cohort, durations))
    return Trials(*(np.concatenate([p[i] for p in parts]) for i in range(6)))


def count(mask: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    if valid is not None:
        mask = mask[valid]
    k, n = int(mask.sum()), int(mask.size)
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "share": k / n if n else math.nan, "lo": lo, "hi": hi}


def fmt(c: dict[str, float]) -> str:
    if not c["n"]:
        return f"{'-':>27s}"
    share, lo, hi = 100 * c["share"], 100 * c["lo"], 100 * c["hi"]
    return f"{c['k']:4d}/{c['n']:<4d} {share:5.1f}% [{lo:4.1f},{hi:5.1f}]"


def figures_of(
    rows: dict[str, tuple[Trials | None, Trials | None]],
    pick: Callable[[Trials], float | np.ndarray],
    min_speech: float,
) -> dict[str, dict[str, float]]:
    """Strangers named and enrolled speakers identified correctly, per set of ``rows``
    (each set's stranger and genuine trials) at the threshold ``pick`` gives (per trial
    where it is an array; NaN trials are left out); keys ``"stranger single clips"``,
    ``"stranger items >= 3 s"``, ``"genuine single clips"``, ``"genuine items >= 3 s"``."""
    figures = {}
    for role in ("stranger", "genuine"):
        for which in SETS:
            x = rows[which][0 if role == "stranger" else 1]
            if x is None:
                c = count(np.zeros(0, bool))
            else:
                threshold = pick(x)
                valid = np.isfinite(threshold) if np.ndim(threshold) else None
                hit = x.named(threshold, min_speech) & (True if role == "stranger" else x.own)
                c = count(np.asarray(hit), valid)
            figures[f"{role} {which}"] = c
    return figures


# -- tuning ------------------------------------------------------------------------


def carried(share: float | np.ndarray, n_from: int, n_to: int) -> float | np.ndarray:
    return 1.0 - (1.0 - share) ** (n_to / n_from)


def lowest_threshold(t: Trials, min_speech: float, share: float, n_from: int, n_to: int) -> float:
    """The lowest threshold at which the strangers' share named, carried from
    ``n_from`` to ``n_to`` speakers, is at most ``share``."""
    candidates = np.unique(t.best)
    eligible = np.sort(t.best[t.speech >= min_speech])
    # Trials named at each candidate: those eligible scoring at least it (the share only
    # falls as the candidate rises, so the first one within the share is the lowest).
    named = eligible.size - np.searchsorted(eligible, candidates, side="left")
    within = carried(named / t.best.size, n_from, n_to) <= share + 1e-12
    if within.any():
        return float(candidates[int(np.argmax(within))])
    return float(np.nextafter(candidates[-1], np.inf))


def per_size(
    got: dict[tuple[str, str, int], Trials], kind: str, m: float, top: int
) -> dict[int, float]:
    """Per population size n of 2 to ``top``: the lowest threshold at which at most
    :data:`TUNE_SHARE` of the strangers' single clips and of their items of 3 s or more
    are named at that n (clips under ``m`` s of net speech answered not_enough_speech)."""
    return {
        n: max(lowest_threshold(got[kind, w, n], m, TUNE_SHARE[w], n, n) for w in SETS)
        for n in range(2, top + 1)
    }


def fitted(
    per_n: dict[int, float], fit: str = "envelope", high: int = CURVE_HIGH
) -> ThresholdCurve:
    """``a + b / n`` fitted to ``per_n`` by least squares (``lsq``), or, with
    ``envelope``, then raised until it lies on or above every point (so that at every
    tuned n at most the target share is named); held beyond N = ``high``."""
    sizes = np.array(sorted(per_n), np.float64)
    values = np.array([per_n[int(n)] for n in sizes])
    b, a = np.polyfit(1.0 / sizes, values, 1)
    if fit == "envelope":
        a += max(float(np.max(values - (a + b / sizes))), 0.0)
    return ThresholdCurve(float(a), float(b), high=high)


def constant(value: float) -> ThresholdCurve:
    return ThresholdCurve(value, 0.0)


def flat(got: dict[tuple[str, str, int], Trials], kind: str, m: float, top: int) -> float:
    """One threshold for every N: the lowest at which at most :data:`TUNE_SHARE` of
    strangers are named at every N of 2 to ``top``, the largest carried to 10."""
    return max(
        lowest_threshold(got[kind, w, n], m, TUNE_SHARE[w], n, 10 if n == top else n)
        for w in SETS
        for n in range(2, top + 1)
    )


def tune(
    by_name: dict[str, Speaker],
    fold: list[str],
    kinds: tuple[str, ...] = KINDS,
    rule: tuple[str, str] = ("envelope", "grid"),
    falls: tuple[float, ...] = (0.0,),
    hold_from_top: bool = False,
) -> dict[str, object]:
    """Defaults from ``fold`` alone: the net-speech minimum (on margin-duration, the
    default score) and each score kind's identify threshold at it.

    Duration-aware (``falls``, :data:`FALL_GRID` unless ``--one-bar``): the
    default score's threshold also falls with the query's duration d, by ``fall x
    ln(d / 0.5 s)`` (ThresholdCurve.fall). Each fall of ``falls`` is tried with each
    minimum: the per-N thresholds and the curve are found as below on the scores raised
    by that term (:meth:`Trials.shifted`), and the (minimum, fall) pair that then
    identifies most enrolled speakers' items correctly at the fold's largest N is
    chosen (ties: the smaller fall, then the smaller minimum). The shipped default was
    tuned so; one fall, 0 (``--one-bar``), is the rule of the one bar before it.

    The default score's threshold depends on the population size N (see
    :class:`~speakerdb.encoders._registry.ThresholdCurve`): at each N of 2 to the
    fold's size less one, the lowest threshold at which at most :data:`TUNE_SHARE` of
    the fold's strangers are named (:func:`per_size`), and ``a + b / N`` fitted to them
    (``rule[0]``, :func:`fitted`), held from N = :data:`CURVE_HIGH` (with
    ``hold_from_top``, from the fold's largest N: eval_open_set_wider.py's rule).
    The other scores keep one threshold for every N (as shipped): the lowest at which
    at most :data:`TUNE_SHARE` of strangers are named at every N of 2 to the fold's
    largest, the largest carried to 10 by the independence model. The minimum is the
    one (of :data:`SPEECH_GRID`, or 0.5 s when ``rule[1]`` is ``fixed``) that then
    identifies most enrolled speakers' items correctly at the fold's largest N.
    """
    top = len(fold) - 1
    high = top if hold_from_top else CURVE_HIGH
    got: dict[tuple[str, str, int], Trials] = {}
    for kind in kinds:
        for which in SETS:
            for n in range(2, top + 1):
                got[kind, which, n] = trials(by_name, fold, fold, n, True, kind, which, None)  # type: ignore[assignment]
            got[kind, which, 0] = trials(by_name, fold, fold, top, False, kind, which, None)  # type: ignore[assignment]

    def threshold(kind: str, m: float, fall: float = 0.0) -> ThresholdCurve:
        if kind == DEFAULT_KIND:
            lifted = {key: t.shifted(fall) for key, t in got.items() if key[0] == kind}
            return replace(fitted(per_size(lifted, kind, m, top), rule[0], high), fall=fall)
        return constant(flat(got, kind, m, top))

    def correct(kind: str, m: float, t: ThresholdCurve) -> float:
        genuine = [got[kind, w, 0] for w in SETS]
        return float(np.mean([(g.named(bar(t, top, g), m) & g.own).mean() for g in genuine]))

    grid = SPEECH_GRID if rule[1] == "grid" else (SPEECH_GRID[0],)
    curve = {
        (m, r): correct(DEFAULT_KIND, m, threshold(DEFAULT_KIND, m, r)) for m in grid for r in falls
    }
    best_m, best_r = max(curve, key=lambda mr: (round(curve[mr], 3), -mr[1], -mr[0]))
    lifted = {key: t.shifted(best_r) for key, t in got.items() if key[0] == DEFAULT_KIND}
    return {
        "n": top,
        "speech_curve": {m: v for (m, r), v in curve.items() if r == best_r},
        "fall_curve": {r: v for (m, r), v in curve.items() if m == best_m},
        "min_speech": best_m,
        "fall": best_r,
        "per_size": per_size(lifted, DEFAULT_KIND, best_m, top),
        "thresholds": {
            kind: threshold(kind, best_m, best_r if kind == DEFAULT_KIND else 0.0) for kind in kinds
        },
        # Verify's default for the default score: one claim, one bar for every N.
        "verify": flat(got, DEFAULT_KIND, best_m, top),
    }


# -- report ------------------------------------------------------------------------


def report(
    by_name: dict[str, Speaker],
    probes: list[str],
    every: list[str],
    tuned: dict[str, object],
    thresholds: dict[str, ThresholdCurve],
) -> dict[str, object]:
    """Strangers named and correct identifications of ``probes``' items at
    ``thresholds`` (each score's default at each N), and after calibrate (which keeps
    them when too few voices)."""
    calibrations = Calibrations(by_name, every, thresholds)
    m = float(tuned["min_speech"])  # type: ignore[arg-type]
    out: dict[str, object] = {}
    header = (
        f"  {'score':16s} {'N':>2s} {'threshold':10s} | {'strangers named: single clips':27s} "
        f"| {'items >= 3 s':27s} | {'correct: single clips':27s} | {'items >= 3 s':27s}"
    )
    print(header)
    for kind in KINDS:
        for n in SIZES:
            rows = {}
            for which in SETS:
                s = trials(by_name, probes, every, n, True, kind, which, calibrations)
                g = trials(by_name, probes, every, n, False, kind, which, calibrations)
                rows[which] = (s, g)
            t = thresholds[kind].at(n)
            for label, pick in (
                (f"{t:.3f}", lambda x, c=thresholds[kind], n=n: bar(c, n, x)),
                ("calibrated", lambda x: x.calibrated),
                ("calib+cohort", lambda x: x.with_cohort),
            ):
                figures = figures_of(rows, pick, m)
                if all(not c["n"] for c in figures.values()):
                    continue
                cells = " | ".join(map(fmt, figures.values()))
                print(f"  {kind:16s} {n:2d} {label:10s} | {cells}")
                out[f"{kind} N={n} {label if label[0].isalpha() else 'default'}"] = figures
    return out


def verdicts(results: dict[str, object]) -> None:
    """The issue's targets for every score, at the defaults and after calibrate."""
    print("\ntargets (fold A -> B; 'MISSED' where a figure is outside its target):")
    for key, figures in results.items():
        if "cohort" in key:
            continue
        checks = []
        for which, (most, least) in TARGETS.items():
            s, g = figures[f"stranger {which}"], figures[f"genuine {which}"]  # type: ignore[index]
            if s["n"]:
                ok = "met" if s["share"] <= most else "MISSED"
                checks.append(f"strangers {which} {s['share']:.1%} (<= {most:.0%}: {ok})")
            if g["n"]:
                ok = "met" if g["share"] >= least else "MISSED"
                checks.append(f"correct {which} {g['share']:.1%} (>= {least:.0%}: {ok})")
        print(f"  {key}: " + "; ".join(checks))


def other_evaluations() -> None:
    """Replay detection and false flags, and noise refusals, by their own scripts."""
    here = Path(__file__).resolve().parent
    for script in ("eval_replay.py", "eval_speech_gate.py"):
        print(f"\n===== {script} (replay engineer's evaluation) =====", flush=True)
        subprocess.run([sys.executable, str(here / script)], check=False)


def main() -> None:
    # Calibration warns, per population, when it keeps a default; the table says so.
    logging.getLogger("speakerdb").setLevel(logging.ERROR)
    start = time.perf_counter()
    corpus = ensure_corpus()
    speakers, silent = load_speakers(corpus, ARGS.singles, ARGS.items, ARGS.seed)
    by_name = {s.name: s for s in speakers}
    every = sorted(by_name)
    folds = {"A": every[0::2], "B": every[1::2]}
    print(
        f"offline GE2E encoder; {len(every)} speakers; left out: {silent} clips labelled "
        f"silence__N.wav (digital silence) and clips speakerdb refuses to decode"
    )
    for name, members in folds.items():
        print(f"fold {name}: {', '.join(members)}")
    per = {s.name: (len(s.singles.vectors), len(s.long.vectors)) for s in speakers}
    print(f"per speaker: 3 enrollment clips, (single clips, items >= 3 s): {per}")
    results: dict[str, object] = {}
    for tuned_on, reported_on in (("A", "B"), ("B", "A")):
        tuned = tune(by_name, folds[tuned_on], falls=(0.0,) if ARGS.one_bar else FALL_GRID)
        print(
            f"\n== defaults tuned on fold {tuned_on} (N = 2 to {tuned['n']}: strangers named "
            f"<= {TUNE_SHARE['items >= 3 s']:.0%} of items >= 3 s and "
            f"<= {TUNE_SHARE['single clips']:.0%} of single clips at each N) =="
        )
        print(
            f"  {DEFAULT_KIND} threshold per N: "
            + ", ".join(f"{n}: {v:.3f}" for n, v in tuned["per_size"].items())  # type: ignore[union-attr]
        )
        if not ARGS.one_bar:
            falls = tuned["fall_curve"]
            print(
                f"  duration fall -> mean correct identification on fold {tuned_on}: "
                + ", ".join(f"{k:g}: {v:.1%}" for k, v in falls.items())  # type: ignore[attr-defined]
            )
        curve = tuned["speech_curve"]
        print(
            "  net-speech minimum (s) -> mean correct identification on fold "
            f"{tuned_on}: " + ", ".join(f"{k:g}: {v:.1%}" for k, v in curve.items())
        )  # type: ignore[union-attr]
        print(
            f"  chosen minimum net speech {tuned['min_speech']} s; thresholds "
            + described(tuned["thresholds"])  # type: ignore[arg-type]
        )
        print(f"  shipped: {shipped()}")
        print(f"\n== reported on fold {reported_on}'s speakers as probes ==")
        # The shipped defaults came from fold A: A -> B reports at them (AS-norm's is
        # chosen by scripts/eval_asnorm_cohort.py, on fold A too); B -> A at fold B's own.
        at = shipped_thresholds() if tuned_on == "A" else tuned["thresholds"]
        if ARGS.one_bar and tuned_on == "A":  # fold A's one bar, not the shipped curve
            at = {**shipped_thresholds(), DEFAULT_KIND: tuned["thresholds"][DEFAULT_KIND]}  # type: ignore[index]
        print("  reported at: " + described(at))  # type: ignore[arg-type]
        figures = report(by_name, folds[reported_on], every, tuned, at)  # type: ignore[arg-type]
        results[f"{tuned_on}->{reported_on}"] = {"tuned": tuned, "figures": figures}
        if tuned_on == "A":
            verdicts(figures)
    print(f"\nwall time {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if ARGS.json:
        ARGS.json.write_text(json.dumps(results, indent=1, default=jsonable))
    if not ARGS.skip_replay:
        other_evaluations()


def jsonable(value: object) -> object:
    """A figure's JSON form: a curve as its fields, a number as a float."""
    if isinstance(value, ThresholdCurve):
        return {"a": value.a, "b": value.b, "high": value.high, "fall": value.fall}
    return float(value)  # type: ignore[arg-type]


def shipped_thresholds() -> dict[str, ThresholdCurve]:
    """Each score's shipped identify threshold, as a curve over N (flat for most)."""
    family = family_of("resemblyzer")
    return {
        k: family.identify_curves.get(k)
        or constant(get_norm(k).default_threshold(family, "resemblyzer"))
        for k in KINDS
    }


def described(thresholds: dict[str, ThresholdCurve]) -> str:
    """Each score's threshold, at N = 3, 6 and 10 where it depends on N."""

    def one(kind: str, c: ThresholdCurve) -> str:
        if c.b == 0:
            return f"{kind} {c.at(10):.3f}"
        at = ", ".join(f"N={n}: {c.at(n):.3f}" for n in SIZES)
        falls = f" - {c.fall:.3f} x ln(d / 0.5 s)" if c.fall else ""
        return f"{kind} {c.a:.4f} + {c.b:.4f}/N{falls} ({at}{' at 0.5 s' if falls else ''})"

    return ", ".join(one(k, c) for k, c in thresholds.items())


def shipped() -> str:
    thresholds = described(shipped_thresholds())
    return f"minimum net speech {MIN_QUERY_SPEECH_S} s; thresholds {thresholds}"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--singles", type=int, default=100, help="single clips per speaker")
    parser.add_argument("--items", type=int, default=40, help="items >= 3 s per speaker")
    parser.add_argument("--populations", type=int, default=8, help="populations per probe")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--skip-replay", action="store_true", help="skip the replay scripts")
    parser.add_argument(
        "--one-bar",
        action="store_true",
        help="tune one identify bar for every query duration (the rule before identify's "
        "default fell with duration) and report fold A's on fold B",
    )
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse()
    main()
