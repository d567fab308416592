#!/usr/bin/env python3
"""The shipped open-set defaults on voices nobody has looked at: Debian's ktuberling
recordings of single words, and populations larger than the shared corpus's.

PROTOCOL (pre-registered: committed before any figure was computed on these voices).

The rule. The shipped defaults are applied unchanged and nothing is tuned on these
voices: GE2E (the offline encoder, model ``ge2e``), margin-duration scores, identify's
threshold the shipped curve at the population's size N (0.8834 + 0.0275 / N, held from
N = 10: 0.893 at 3, 0.888 at 6, 0.886 at 9 and above), clips under 0.5 s of net speech
answered ``not_enough_speech`` (speakerdb.config.MIN_QUERY_SPEECH_S). That curve is
pinned here (:data:`PROTOCOL_CURVE`): identify's default has since changed to fall with
the query's duration, and scripts/eval_long_queries.py compares the two on these voices
(as a second look) and on unseen ones; ``--shipped`` reports at today's default instead.
Clips are embedded as the library now embeds them, from their words and up to 0.5 s
either side (scripts/_openset_data.py), so even without ``--shipped`` a run no longer
reproduces the pre-registered one, which heard whole clips. If the defaults
miss a target here, that is reported as it is; neither the defaults nor this protocol
change after seeing it. Anything looked at later is labelled post hoc.

Voices. The 10 languages of ``ktuberling-data`` that scripts/fresh_voices.py keeps
(its ``VOICES``: da, de, en, fr, gl, lt, ru, sl, uk, wa; ca, el and nn left out since
their files' tags name more than one person), one voice each: the words of the four
playgrounds every language has (potato head, Egypt, moon, pizzeria) in the language's
most common recording format; 54-67 clips per voice, most 0.5-1.5 s. Built by
``python scripts/fresh_voices.py`` under $SPEAKERDB_FRESH. The shared corpus's 11
voices (scripts/_openset_data.py, enrolled with its 3 clips each) are only ever
enrolled speakers of the mixed populations, never probes.

Split, per fresh voice, seed 1234 (:func:`split_voice`): enrollment, 3 clips drawn at
random among the voice's clips of at least 1 s (all its clips when fewer than 3 are),
as the shared protocol (/work/shared/data/protocol.py) enrolls; queries, every other
clip. Single clips: each query clip. Items of 3 s or more: the query clips in path
order joined by the shared protocol's rule (consecutive clips until they reach 3 s; a
remainder shorter than that joins the last item; :func:`joined`). Clips speakerdb
refuses to decode are left out before the split.

Populations. Per probe voice (each of the 10 in turn), role (stranger: N enrolled
speakers, none of them the probe; enrolled: the probe and N - 1 others) and N, 8
seeded populations (eval_open_set.drawn_populations, seed 1234; repeats dropped), the
probe's items spread over them in turn (eval_open_set.trials):

- fresh (the same family): drawn from the other 9 fresh voices, N = 3, 6 and 9 (with
  10 voices a stranger faces at most 9; 9 stands for 10);
- mixed: drawn from the other 9 fresh voices and the shared corpus's 11, N = 3, 6, 10,
  15 and 20 (at 20 a stranger faces all 20).

Strangers are always fresh voices that are not enrolled. A stranger's item is *named*
when its best score reaches the threshold and it has enough net speech; an enrolled
speaker's is *correct* when its own speaker scores best, reaches the threshold and it
has enough net speech (``not_enough_speech`` counts as a miss).

Figures (95% Wilson intervals; a probe's items are not independent, so they are
narrower than the truth): strangers named and correct identifications, single clips
and items of 3 s or more, per slice and N, at the shipped defaults and after
``calibrate`` (speakerdb.decision._calibration.calibrate_population on the population's
own 3-clip enrollments, target 1% of strangers; it keeps the default with fewer than 6
stranger voices), as scripts/eval_open_set.py computes them. Secondary: after calibrate
with a cohort (30 query clips of every voice of the slice neither enrolled nor the
probe); the share of query clips and items under 0.5 s of net speech; strangers named
per probe voice at each slice's largest N; and a label check that changes nothing:
per voice, the share of its single clips and items whose best template among all 10
fresh voices (all enrolled) is its own.

Judged against the issue's targets (strangers named at most 5% of single clips and 2%
of items of 3 s or more; correct at least 40% and 60%), on the point estimates, saying
also where the whole interval lies on one side. Primary: the defaults and calibrate,
every slice and N.

POST HOC (added after the pre-registered run, and reported apart from it). The split
draws enrollment clips among all of a voice's clips, but ``speakerdb enroll`` refuses a
clip with under 0.5 s of net speech (speakerdb.services._quality.MIN_SPEECH_S) unless
forced. The first run showed one voice (ru, whose clips are the shortest) enrolled with
3 clips of 0.36-0.48 s of net speech: its template matched other voices' short clips
and not its own items of 3 s or more. ``--gated-enrollment`` draws the enrollment clips
(same seed and rule) among those the gate accepts; nothing else changes. The other
enrollment gates (outliers, near-duplicates) are not applied in either run. Printed
last, also looked at after the first run: how often the right speaker scores best among
clips with enough speech, the 99th percentile of strangers' best scores, per slice and
N at the defaults, and the items' mean cosines within and across voices.

RESULT of the pre-registered run (whole clips, :data:`PROTOCOL_CURVE`, calibrate's rule
of the time). At the defaults strangers were named at most 2.3% of single clips and
1.2% of items; correct identifications fell below the targets from N = 6 in the fresh
populations (39.9% of single clips; from N = 9 both, 33.9% / 50.3%) and from N = 10
(items, 58.9%) or 15 (single clips, 33.7%) in the mixed ones, 32.4% / 42.9% at N = 20.
Calibrate, by its rule then, met every target at N = 20 but named 6.0% of strangers'
single clips at fresh N = 6 and 2.5% of items at mixed N = 6.

RESULT with ``--shipped`` (2026-12-08: clips embedded and timed from their words,
identify's shipped curve, calibrate as it now is; a report, not the test; 41 s with the
embeddings cached). Strangers named at most 2.3% of single clips and 1.2% of items at
the defaults (1.7% and none after calibrate). Correct, single clips / items: fresh
N = 3, 6, 9: 47.7 / 38.4 / 32.4% and 72.4 / 62.0 / 52.1%; mixed N = 3, 6, 10, 15, 20:
52.7 / 40.0 / 39.2 / 32.2 / 30.9% and 77.9 / 63.2 / 60.7 / 50.9 / 44.8%: single clips
0-2.5 points fewer than in the first run, items 0.6-3.7 points more; mixed N = 10's single
clips now miss 40%. After calibrate fewer still from N = 6 (a calibrated bar does not
fall with duration): fresh N = 9, 26.4% / 35.6%; mixed N = 20, 30.6% / 44.8%. With
``--gated-enrollment``: strangers at most 2.2% / 1.2%; every target met at N = 3;
single clips short from N = 6 (fresh 37.9%, mixed 39.4%), both from N = 9 (fresh 32.9% /
52.8%; mixed N = 20, 30.7% / 45.4%).

    python scripts/fresh_voices.py                      # once: build the voices
    nice -n 10 python scripts/eval_open_set_fresh.py [--json out.json] [--gated-enrollment]
        [--shipped]
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

import eval_open_set as eos
import numpy as np
from _openset_cli import finished, parsed, shipped_option
from _openset_data import Embedder, Items, Speaker, load_speakers
from corpus import ensure_corpus
from fresh_voices import FRESH, VOICES, manifest

from speakerdb.audio import Clip, clip_from_array, load_clip, net_speech_s
from speakerdb.config import MIN_QUERY_SPEECH_S
from speakerdb.encoders._registry import ThresholdCurve
from speakerdb.errors import AudioError
from speakerdb.services._quality import MIN_SPEECH_S

SEED = 1234
#: The identify default this protocol was registered with (one bar for every duration).
PROTOCOL_CURVE = ThresholdCurve(0.8834, 0.0275)
POPULATIONS = 8
N_ENROLL = 3
ENROLL_MIN_S = 1.0
CONCAT_MIN_S = 3.0
FRESH_SIZES = (3, 6, 9)
MIXED_SIZES = (3, 6, 10, 15, 20)
COHORT_CLIPS = 30
Row = dict[str, str]


@dataclass(frozen=True)
class Split:
    """One voice's clips: enrollment, single query clips, and the query clips joined
    into items of 3 s or more (each a list of rows)."""

    enroll: list[Row]
    queries: list[Row]
    items: list[list[Row]]


def joined(rows: list[Row], least: float = CONCAT_MIN_S) -> list[list[Row]]:
    """The shared protocol's items: ``rows`` in path order, consecutive ones joined until
    their duration reaches ``least``; a shorter remainder joins the last item (or is
    the only one)."""
    chunks: list[list[Row]] = []
    current: list[Row] = []
    for row in sorted(rows, key=lambda r: r["path"]):
        current.append(row)
        if sum(float(r["duration_s"]) for r in current) >= least:
            chunks.append(current)
            current = []
    if current:
        if chunks:
            chunks[-1].extend(current)
        else:
            chunks.append(current)
    return chunks


def split_voice(rows: list[Row], seed: int = SEED, enrollable: set[str] | None = None) -> Split:
    """Enrollment (3 seeded clips of at least 1 s where there are 3) and queries; with
    ``enrollable``, enrollment clips are drawn among those paths only (post hoc)."""
    ordered = sorted(rows, key=lambda r: r["path"])
    voice = ordered[0]["speaker_id"]
    rng = random.Random(f"{seed}|{voice}")
    allowed = [r for r in ordered if enrollable is None or r["path"] in enrollable]
    longer = [r for r in allowed if float(r["duration_s"]) >= ENROLL_MIN_S]
    enroll = rng.sample(longer if len(longer) >= N_ENROLL else allowed, N_ENROLL)
    queries = [r for r in ordered if r not in enroll]
    return Split(enroll, queries, joined(queries))


def _manifest_rows() -> dict[str, list[Row]]:
    """The fresh voices' decodable clips, per voice (only the voices VOICES keeps)."""
    with manifest().open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = {f"ktuberling-{lang}" for lang, (keep, _) in VOICES.items() if keep}
    by_voice: dict[str, list[Row]] = {}
    for row in rows:
        if row["speaker_id"] in kept:
            by_voice.setdefault(row["speaker_id"], []).append(row)
    return by_voice


def fresh_speakers(
    embed: Embedder, gated: bool = False, by_voice: dict[str, list[Row]] | None = None
) -> tuple[list[Speaker], int]:
    """Each fresh voice (or each of ``by_voice``'s) embedded by its split, and how many
    clips failed to decode; ``gated`` (post hoc): enrolled only with clips the
    enrollment gate does not refuse for too little speech."""
    speakers, refused = [], 0
    for voice, rows in sorted((by_voice or _manifest_rows()).items()):
        clips: dict[str, Clip] = {}
        for row in rows:
            try:
                clips[row["path"]] = load_clip(row["path"])
            except AudioError:
                refused += 1
        enrollable = None
        if gated:
            enrollable = {p for p, c in clips.items() if net_speech_s(c.samples) >= MIN_SPEECH_S}
        split = split_voice([r for r in rows if r["path"] in clips], SEED, enrollable)
        items = [
            clip_from_array(np.concatenate([clips[r["path"]].samples for r in group]), 16_000)
            for group in split.items
        ]
        speakers.append(
            Speaker(
                voice,
                embed([clips[r["path"]] for r in split.enroll]),
                embed([clips[r["path"]] for r in split.queries]),
                embed(items),
            )
        )
    return speakers, refused


def short_share(items: Iterable[Items]) -> dict[str, float]:
    """How many clips have under the minimum of net speech (not_enough_speech)."""
    speech = np.concatenate([i.speech for i in items])
    return eos.count(speech < MIN_QUERY_SPEECH_S)


def describe_voices(speakers: list[Speaker]) -> dict[str, dict[str, float]]:
    """Print each probe voice's enrollment and queries, and how many of its clips and
    items have under the minimum of net speech (returned, per set)."""
    for s in speakers:
        print(
            f"  {s.name:16s} enrollment {s.enroll.lengths.sum():4.1f} s in 3 clips "
            f"(net speech {', '.join(f'{v:.2f}' for v in s.enroll.speech)} s); "
            f"{len(s.singles.lengths)} single clips (median "
            f"{np.median(s.singles.lengths):.2f} s), {len(s.long.lengths)} items >= 3 s"
        )
    short = {
        "single clips": short_share(s.singles for s in speakers),
        "items >= 3 s": short_share(s.long for s in speakers),
    }
    for which, c in short.items():
        print(f"  under {MIN_QUERY_SPEECH_S} s of net speech, {which}: {eos.fmt(c)}")
    return short


def slice_table(
    by_name: dict[str, Speaker],
    probes: list[str],
    pool: list[str],
    sizes: tuple[int, ...],
    curve: ThresholdCurve = PROTOCOL_CURVE,
    min_speech: float = MIN_QUERY_SPEECH_S,
) -> dict[str, object]:
    """The table for one slice: each N at the defaults (identify's ``curve``, at each
    query's duration where it falls with it, and clips under ``min_speech`` s of net
    speech answered not_enough_speech), calibrated, and with a cohort."""
    shipped = {**eos.shipped_thresholds(), eos.DEFAULT_KIND: curve}
    calibrations = eos.Calibrations(by_name, pool, shipped)
    out: dict[str, object] = {}
    for n in sizes:
        rows = {
            which: tuple(
                eos.trials(by_name, probes, pool, n, role, eos.DEFAULT_KIND, which, calibrations)
                for role in (True, False)
            )
            for which in eos.SETS
        }
        # A bar that falls with duration is labelled by its value for a 0.5 s query.
        at_default = f"{curve.at(n):.3f}" + ("@0.5s" if curve.fall else "")
        for label, pick in (
            (at_default, lambda x, n=n: eos.bar(curve, n, x)),
            ("calibrated", lambda x: x.calibrated),
            ("calib+cohort", lambda x: x.with_cohort),
        ):
            figures = eos.figures_of(rows, pick, min_speech)  # type: ignore[arg-type]
            cells = " | ".join(map(eos.fmt, figures.values()))
            print(f"  {n:2d} {label:12s} | {cells}", flush=True)
            out[f"N={n} {label if label[0].isalpha() else 'default'}"] = figures
    return out


def per_probe(
    by_name: dict[str, Speaker],
    probes: list[str],
    pool: list[str],
    n: int,
    curve: ThresholdCurve = PROTOCOL_CURVE,
    min_speech: float = MIN_QUERY_SPEECH_S,
) -> dict[str, object]:
    """Strangers named per probe voice at the defaults (secondary)."""
    out: dict[str, object] = {}
    for probe in probes:
        cells = []
        for which in eos.SETS:
            t = eos.trials(by_name, [probe], pool, n, True, eos.DEFAULT_KIND, which, None)
            assert t is not None
            c = eos.count(t.named(eos.bar(curve, n, t), min_speech))
            out[f"{probe} {which}"] = c
            cells.append(f"{which} {eos.fmt(c)}")
        print(f"  {probe:16s} " + " | ".join(cells))
    return out


def label_check(by_name: dict[str, Speaker], probes: list[str]) -> dict[str, object]:
    """Per voice, the share of its clips whose best template among all fresh voices is
    its own (closed set; changes nothing)."""
    out: dict[str, object] = {}
    for probe in probes:
        cells = []
        for which in eos.SETS:
            t = eos.trials(by_name, [probe], probes, len(probes), False, "none", which, None)
            assert t is not None
            c = eos.count(t.own)
            out[f"{probe} {which}"] = c
            cells.append(f"{which} {eos.fmt(c)}")
        print(f"  {probe:16s} " + " | ".join(cells))
    return out


Slices = dict[str, tuple[list[str], tuple[int, ...]]]


def post_hoc(
    by_name: dict[str, Speaker],
    probes: list[str],
    slices: Slices,
    curve: ThresholdCurve = PROTOCOL_CURVE,
) -> dict[str, object]:
    """Looks taken after the first run (see POST HOC): per slice and N at the defaults,
    how often the right speaker scores best among clips with enough speech, and the 99th
    percentile of strangers' best scores; and each voice's items' mean cosine to its own
    other items and to other voices' items."""
    out: dict[str, object] = {}
    for name, (pool, sizes) in slices.items():
        for n in sizes:
            cells = []
            for which in eos.SETS:
                g = eos.trials(by_name, probes, pool, n, False, eos.DEFAULT_KIND, which, None)
                s = eos.trials(by_name, probes, pool, n, True, eos.DEFAULT_KIND, which, None)
                assert g is not None and s is not None
                enough = g.speech >= MIN_QUERY_SPEECH_S
                top = float(g.own[enough].mean())
                p99 = float(np.quantile(s.best[s.speech >= MIN_QUERY_SPEECH_S], 0.99))
                out[f"{name} N={n} {which}"] = {"top1 with enough speech": top, "stranger p99": p99}
                cells.append(f"{which}: best is right {top:.1%}, strangers' p99 {p99:.3f}")
            print(f"  {name} N={n:2d} (threshold {curve.at(n):.3f}): " + "; ".join(cells))
    within, across = [], []
    for a in probes:
        for b in probes:
            cos = by_name[a].long.vectors @ by_name[b].long.vectors.T
            if a == b:
                within.append(float(cos[~np.eye(len(cos), dtype=bool)].mean()))
            else:
                across.append(float(cos.mean()))
    print(
        f"  items' mean cosine within a voice {min(within):.2f}-{max(within):.2f}, "
        f"across voices {min(across):.2f}-{max(across):.2f}"
    )
    out["item cosines"] = {"within": within, "across": across}
    return out


def verdicts(tables: dict[str, dict[str, object]]) -> None:
    """The issue's targets, primary rows (defaults and calibrate)."""
    print("\ntargets ('MISSED' where the point estimate is outside; '(sure)' where the")
    print("whole 95% interval is on that side):")
    for slice_name, table in tables.items():
        for key, figures in table.items():
            if "cohort" in key:
                continue
            checks = []
            for which, (most, least) in eos.TARGETS.items():
                s = figures[f"stranger {which}"]  # type: ignore[index]
                g = figures[f"genuine {which}"]  # type: ignore[index]
                checks.append(_verdict(f"strangers {which}", s, most, upper=True))
                checks.append(_verdict(f"correct {which}", g, least, upper=False))
            print(f"  {slice_name} {key}: " + "; ".join(checks))


def _verdict(what: str, c: dict[str, float], target: float, upper: bool) -> str:
    if not c["n"]:
        return f"{what} -"
    ok = c["share"] <= target if upper else c["share"] >= target
    sure = c["hi"] <= target if upper else c["lo"] >= target
    sure_miss = c["lo"] > target if upper else c["hi"] < target
    word = "met" if ok else "MISSED"
    if (ok and sure) or (not ok and sure_miss):
        word += " (sure)"
    sign = "<=" if upper else ">="
    return f"{what} {c['share']:.1%} ({sign} {target:.0%}: {word})"


HEADER = (
    f"   N {'threshold':12s} | {'strangers named: single clips':27s} | {'items >= 3 s':27s} "
    f"| {'correct: single clips':27s} | {'items >= 3 s':27s}"
)


def slice_report(
    by_name: dict[str, Speaker],
    probes: list[str],
    slices: Slices,
    curve: ThresholdCurve = PROTOCOL_CURVE,
    min_speech: float = MIN_QUERY_SPEECH_S,
) -> dict[str, object]:
    """Each slice's table (:func:`slice_table`), the targets judged on them, and strangers
    named per probe voice at each slice's largest N: ``{"tables": ..., "per probe": ...}``."""
    tables: dict[str, dict[str, object]] = {}
    for name, (pool, sizes) in slices.items():
        print(f"\n== {name}: enrolled populations drawn from {len(pool)} voices ==")
        print(HEADER)
        tables[name] = slice_table(by_name, probes, pool, sizes, curve, min_speech)
    verdicts(tables)
    per: dict[str, object] = {}
    for name, (pool, sizes) in slices.items():
        print(f"\n== strangers named per probe voice, {name}, N = {sizes[-1]} (defaults) ==")
        per[name] = per_probe(by_name, probes, pool, sizes[-1], curve, min_speech)
    return {"tables": tables, "per probe": per}


def main() -> int:
    logging.getLogger("speakerdb").setLevel(logging.ERROR)
    start = time.perf_counter()
    if not (FRESH / "manifest.csv").is_file():
        manifest()  # exits 2, saying how to build the voices
    curve = eos.shipped_thresholds()[eos.DEFAULT_KIND] if ARGS.shipped else PROTOCOL_CURVE
    embed = Embedder(FRESH / "embeddings")
    fresh, refused = fresh_speakers(embed, ARGS.gated_enrollment)
    embed.save()
    shared, _ = load_speakers(ensure_corpus(), COHORT_CLIPS, 1, SEED)
    by_name = {s.name: s for s in [*fresh, *shared]}
    probes = [s.name for s in fresh]
    print(
        f"offline GE2E, {'the shipped' if ARGS.shipped else 'the protocol'} identify curve: "
        f"{eos.described({eos.DEFAULT_KIND: curve})}, minimum net speech "
        f"{MIN_QUERY_SPEECH_S} s; {len(probes)} fresh voices ({refused} clips refused "
        f"by the decoder), {len(shared)} shared-corpus voices (enrolled only)"
    )
    results: dict[str, object] = {"not_enough_speech": describe_voices(fresh)}
    slices = {
        "fresh": (probes, FRESH_SIZES),
        "mixed": (sorted(by_name), MIXED_SIZES),
    }
    results.update(slice_report(by_name, probes, slices, curve))
    print("\n== label check: own voice best among all 10 fresh voices (closed set) ==")
    results["label check"] = label_check(by_name, probes)
    print("\n== post hoc (looked at after the first run) ==")
    results["post hoc"] = post_hoc(by_name, probes, slices, curve)
    return finished(start, ARGS.json, results)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gated-enrollment",
        action="store_true",
        help="post hoc: enroll only with clips of at least 0.5 s of net speech (see POST HOC)",
    )
    shipped_option(parser)


if __name__ == "__main__":
    ARGS = parsed(__doc__, SEED, POPULATIONS, options)
    sys.exit(main())
