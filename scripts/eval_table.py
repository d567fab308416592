#!/usr/bin/env python3
"""Which accuracy features earn their place: one table on the shared real-speech corpus.

Rows: the baseline (plain cosine, 3-clip templates), each feature alone, and the
defaults. Every row but the two "whole clips" ones embeds each clip as the library
does, from its words and up to 0.5 s either side (:attr:`speakerdb.audio.Clip.spoken`),
and times it so (margin-duration's d is :attr:`~speakerdb.audio.Clip.spoken_s`); the
whole-clip rows show the baseline and the defaults as speakerdb embedded clips before.
Columns, for single clips and for items of at least 3 s: EER and minDCF(0.01) on the
protocol's trials, closed-set top-1, and the share of impostor items accepted at the
threshold that gives a fixed correct-ID rate (``--correct-id``, default 80 %).

Impostors are the protocol's 2 never-enrolled speakers plus, in turn, each
enrolled speaker held out of the database (leave one speaker out, templates and
AS-norm cohort rebuilt without them): 2 impostor speakers alone are too few to
measure a rate. The never-enrolled speakers' share alone is in the JSON.

The duration term of margin-duration has one parameter, its slope, fitted by
logistic regression on the single clips (speakerdb.decision._calibration.duration_slope;
``--fit`` prints the fit, its leave-one-speaker-out range and the table's
sensitivity to it). The row
"slope refit per held-out speaker" scores each item with the slope fitted
without its own speaker, an honest out-of-sample figure.

Every clip is embedded once per front-end variant and the embeddings are reused
across rows; ``--cache FILE`` keeps them between runs (keyed by encoder revision,
variant, audio hash and, for the spoken part, its bounds).

RESULT (2026-12-08, clips embedded from their words; 2.5 minutes with nothing cached).
Single clips / items of 3 s or more; before, on whole clips, in brackets:

- baseline: EER 10.1% / 5.4% (10.1 / 5.4), minDCF 0.594 / 0.356 (0.574 / 0.315), top-1
  92.6% / 94.6% (the same), impostors in 28.5% / 12.6% (27.9 / 9.8);
- defaults (margin-duration + windows + gates): EER 4.7% / 2.7% (5.1 / 2.7), minDCF
  0.399 / 0.034 (0.376 / 0.034), top-1 92.6% / 94.6%, impostors in 13.1% / 0.5% (13.4
  / 0.5): still under half the baseline's;
- ``--fit`` on the spoken lengths: margin slope 0.054 (0.050-0.058 with each speaker
  left out; on whole clips 0.057, 0.054-0.060), cosine 0.037 (0.039); the library keeps
  0.057. ``--gates``: 4.7% / 0.6% of genuine clips under 0.65 / 0.55, 3.9% / 0.05% of
  different speakers' templates at 0.80 / 0.875 (5 / 0.5% and 4 / 0.05% before).

    python scripts/eval_table.py [--cache ~/.cache/speakerdb-eval.npz] [--json out.json]
    python scripts/eval_table.py --fit       # the duration slope: fit, spread, sensitivity
    python scripts/eval_table.py --gates     # the quality-gate limits on the corpus
    python scripts/eval_table.py --memory    # peak memory of long audio, with and without windows
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _openset_data import spoken_key
from corpus import ensure_corpus
from memory_probe import memory_report

from speakerdb._vectors import template_of
from speakerdb.audio import Clip, load_clip, net_speech_s, trim_silences
from speakerdb.config import DURATION_SLOPE
from speakerdb.decision import (
    DEFAULT_TOP_N,
    MARGIN_WEIGHT,
    Population,
    duration_penalty,
    duration_slope,
    population_scores,
)
from speakerdb.decision import _metrics as metrics
from speakerdb.encoders import WINDOW_S, default_threshold, embed_clips
from speakerdb.errors import AudioError
from speakerdb.services._quality import MIN_SPEECH_S, check_enrollment

SETS = (
    ("single clips", "test.csv", "trials.csv"),
    ("items >= 3 s", "test_concat3s.csv", "trials_concat3s.csv"),
)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


class Embedder:
    """GE2E embeddings of corpus clips per front-end variant, each computed once.

    Variants: ``plain``, what the library's encoder hears of a clip (its spoken part,
    :attr:`speakerdb.audio.Clip.spoken`); ``windows``, the same through the library's
    own path (:func:`speakerdb.encoders.embed_clips`, long audio in windows); ``vad``,
    every silence trimmed; ``whole``, the whole clip, as speakerdb embedded it before
    clips were cut to their words.
    """

    def __init__(self, cache: Path | None) -> None:
        from speakerdb.encoders._ge2e import GE2EEncoder

        self.encoder = GE2EEncoder.load()
        self.revision = self.encoder.info.revision
        self.cache = cache
        self.store: dict[str, np.ndarray] = {}
        if cache is not None and cache.is_file():
            with np.load(cache) as data:
                self.store = {k: data[k] for k in data.files}
        self.computed = 0

    def __call__(self, clip: Clip, variant: str) -> np.ndarray:
        if variant == "windows" and clip.spoken_s <= WINDOW_S:
            variant = "plain"  # one window: embed_clips calls the encoder on the spoken part
        audio = clip.sha256 if variant in ("vad", "whole") else spoken_key(clip)
        key = f"{self.revision}:{variant}:{audio}"
        if key not in self.store:
            if variant == "vad":
                vector = self.encoder.encode([trim_silences(clip.samples)])[0]
            elif variant == "whole":
                vector = self.encoder.encode([clip.samples])[0]
            elif variant == "windows":
                vector = embed_clips(self.encoder, [clip])[0]
            else:
                vector = self.encoder.encode([clip.spoken])[0]
            self.store[key] = vector
            self.computed += 1
        return self.store[key]

    def save(self) -> None:
        if self.cache is not None and self.computed:
            np.savez(self.cache, **self.store)


def duration_of(clip: Clip, variant: str) -> float:
    """The duration margin-duration's term takes (its d): the length of what the encoder
    heard, the spoken part as the library times it, or the whole clip for ``whole``."""
    return clip.duration_s if variant == "whole" else clip.spoken_s


@dataclass
class Config:
    """One row: front-end variant, score normalisation, query speech minimum, gates.

    ``slope`` adds a duration term to the library's scores (the term alone, on
    cosines); ``refit`` replaces margin-duration's slope by one fitted without
    each item's own speaker.
    """

    name: str
    variant: str = "plain"
    score_norm: str = "none"
    min_speech: float = 0.0
    gates: bool = False
    slope: float = 0.0
    refit: bool = False


def configs(cosine_slope: float) -> list[Config]:
    md = "margin-duration"
    return [
        Config("baseline: cosine, 3-clip templates"),
        Config("whole clips embedded and timed (before)", variant="whole"),
        Config("VAD silence trimming", variant="vad"),
        Config(f"AS-norm, enrolled cohort, top-{DEFAULT_TOP_N}", score_norm="asnorm"),
        Config(f"margin: s + {MARGIN_WEIGHT:g} x (s - best other)", score_norm="margin"),
        Config(f"duration term alone: s - {cosine_slope:.3f} ln(d/0.5s)", slope=cosine_slope),
        Config(f"margin-duration: margin - {DURATION_SLOPE:g} ln(d/0.5s)", score_norm=md),
        Config("  the same, slope refit per held-out speaker", score_norm=md, refit=True),
        Config(f"min. {MIN_SPEECH_S} s net speech per query", min_speech=MIN_SPEECH_S),
        Config("long audio in 30 s windows", variant="windows"),
        Config("enrollment quality gates", gates=True),
        Config("previous defaults: windows + gates", variant="windows", gates=True),
        Config("defaults: margin-duration + windows + gates", "windows", md, gates=True),
        Config("  the same on whole clips (before)", "whole", md, gates=True),
    ]


@dataclass
class Data:
    names: list[str]
    enroll: dict[str, list[Clip]]
    tests: dict[str, tuple[list[Clip], np.ndarray, list[dict[str, str]]]]


def load(corpus: Path) -> Data:
    protocol = corpus / "protocol"
    enroll: dict[str, list[Clip]] = {}
    for r in rows(protocol / "enroll.csv"):
        enroll.setdefault(r["speaker_id"], []).append(load_clip(r["path"]))
    names = sorted(enroll)
    tests = {}
    for label, test_file, _ in SETS:
        clips, truth, kept = [], [], []
        for r in rows(protocol / test_file):
            try:
                clips.append(load_clip(r["path"]))
            except AudioError:
                continue  # a few silent prompts: speakerdb refuses them
            kept.append(r)
            truth.append(names.index(r["speaker_id"]) if r["speaker_id"] in names else -1)
        tests[label] = (clips, np.array(truth), kept)
    return Data(names, enroll, tests)


def enrolled(data: Data, config: Config, embed: Callable[[Clip, str], np.ndarray]) -> Population:
    """The enrolled population; with gates, refused clips are left out, as `enroll` would."""
    groups: dict[str, np.ndarray] = {}
    for name in data.names:
        clips = data.enroll[name]
        vectors = np.stack([embed(c, config.variant) for c in clips])
        if config.gates:
            population = Population.from_groups(groups)
            threshold = default_threshold("resemblyzer")
            issues = check_enrollment(name, clips, vectors, population, threshold)
            refused = {i.source for i in issues if i.refused}
            keep = [k for k, c in enumerate(clips) if c.source not in refused]
            vectors = vectors[keep] if keep else vectors
        groups[name] = vectors
    return Population.from_groups(groups)


def score(
    population: Population, queries: np.ndarray, config: Config, lengths: np.ndarray
) -> np.ndarray:
    """The library's scores (speakerdb.decision._norms), as identify and verify compute them."""
    if config.refit:  # margin-duration with each item's own slope, in lengths[:, 1]
        margins = population_scores("margin", queries, population, DEFAULT_TOP_N)[1]
        return margins - (lengths[:, 1] * duration_penalty(lengths[:, 0], 1.0))[:, None]
    matrix = population_scores(
        config.score_norm, queries, population, DEFAULT_TOP_N, lengths[:, 0]
    )[1]
    return matrix - duration_penalty(lengths[:, 0], config.slope)[:, None]


def without(population: Population, k: int) -> Population:
    keep = population.owners != k
    groups = {
        n: population.embeddings[keep & (population.owners == i)]
        for i, n in enumerate(population.names)
        if i != k
    }
    return Population.from_groups(groups)


@dataclass
class OpenSet:
    """Scores of one test set: the matrix, each item's best score, the pooled impostors'
    best scores and which item each of those is."""

    matrix: np.ndarray
    top: np.ndarray
    pooled: np.ndarray
    pooled_items: np.ndarray


def open_set(
    data: Data,
    label: str,
    config: Config,
    population: Population,
    embed,
    slopes: dict[str, float] | None = None,
) -> OpenSet:
    clips, truth, kept = data.tests[label]
    queries = np.stack([embed(c, config.variant) for c in clips])
    # Per item: clip length and, for `refit` rows, the slope fitted without its speaker.
    slope = [slopes[r["speaker_id"]] if slopes else 0.0 for r in kept]
    lengths = np.column_stack([[duration_of(c, config.variant) for c in clips], slope])
    matrix = score(population, queries, config, lengths)
    refused = np.array([net_speech_s(c.samples) < config.min_speech for c in clips])
    top = np.where(refused, -np.inf, matrix.max(axis=1))
    impostor_top, items = [top[truth < 0]], [np.flatnonzero(truth < 0)]
    for k in range(len(population.names)):  # each enrolled speaker in turn held out
        mine = np.flatnonzero(truth == k)
        held = score(without(population, k), queries[mine], config, lengths[mine]).max(axis=1)
        impostor_top.append(np.where(refused[mine], -np.inf, held))
        items.append(mine)
    return OpenSet(matrix, top, np.concatenate(impostor_top), np.concatenate(items))


def evaluate_set(
    data: Data,
    label: str,
    trials_file: Path,
    config: Config,
    population: Population,
    embed,
    slopes: dict[str, float] | None = None,
) -> dict[str, float]:
    _, truth, kept = data.tests[label]
    scored = open_set(data, label, config, population, embed, slopes if config.refit else None)
    matrix, top = scored.matrix, scored.top
    row_of = {r["path"]: i for i, r in enumerate(kept)}
    tar, non = [], []
    for t in rows(trials_file):
        if t["test_path"] in row_of and t["enroll_speaker"] in population.names:
            value = matrix[row_of[t["test_path"]], population.names.index(t["enroll_speaker"])]
            (tar if t["target"] == "1" else non).append(value)
    eer, _ = metrics.eer(tar, non)
    dcf, _ = metrics.min_dcf(tar, non, 0.01)
    return {
        "eer": eer,
        "min_dcf_01": dcf,
        "top1": metrics.top_k_accuracy(matrix, truth, 1),
        **_at_correct_id(matrix, top, truth, scored.pooled, ARGS.correct_id),
    }


def _at_correct_id(
    matrix: np.ndarray, top: np.ndarray, truth: np.ndarray, pooled: np.ndarray, rate: float
) -> dict[str, float]:
    genuine = truth >= 0
    right = genuine & (matrix.argmax(axis=1) == truth)
    hits = np.sort(top[right])[::-1]
    needed = int(np.ceil(rate * genuine.sum()))
    if needed > len(hits) or not np.isfinite(hits[needed - 1]):
        nan = float("nan")
        return {
            "threshold": nan,
            "impostors": nan,
            "never_enrolled": nan,
            "n_impostor": len(pooled),
        }
    t = float(hits[needed - 1])
    return {
        "threshold": t,
        "impostors": float(np.mean(pooled >= t)),
        "never_enrolled": float(np.mean(top[~genuine] >= t)),
        "n_impostor": len(pooled),
    }


def fit_slopes(data: Data, embed) -> dict[str, dict]:
    """The duration slope fitted on the single clips, for cosine and for margin scores:
    on every speaker, and with each speaker left out (as genuine and as impostor)."""
    label = "single clips"
    clips, truth, kept = data.tests[label]
    population = enrolled(data, Config("fit"), embed)
    durations = np.array([duration_of(c, "plain") for c in clips])
    speakers = np.array([r["speaker_id"] for r in kept])
    fits: dict[str, dict] = {}
    for norm in ("none", "margin"):
        scored = open_set(data, label, Config("fit", score_norm=norm), population, embed)
        right = (truth >= 0) & (scored.matrix.argmax(axis=1) == truth)
        items = np.r_[np.flatnonzero(right), scored.pooled_items]
        values = np.r_[scored.top[right], scored.pooled]
        genuine = np.r_[np.ones(right.sum()), np.zeros(len(scored.pooled))]
        columns = (values, durations[items], genuine)
        who = speakers[items]
        fits[norm] = {
            "all": duration_slope(*columns),
            "without": {
                str(s): duration_slope(*(c[who != s] for c in columns))
                for s in sorted(set(speakers))
            },
        }
    return fits


def fit_report(data: Data, embed, fits: dict[str, dict], corpus: Path) -> None:
    """The fitted slopes, their spread, and imp@rate as the slope varies."""
    for norm, fit in fits.items():
        spread = fit["without"].values()
        print(
            f"{'cosine' if norm == 'none' else norm} scores: slope {fit['all']:.4f}; "
            f"each speaker left out: {min(spread):.4f} to {max(spread):.4f}"
        )
    print(f"library slope (speakerdb.config.DURATION_SLOPE): {DURATION_SLOPE:g}")
    print(f"imp@{ARGS.correct_id:.0%} of margin scores minus slope x ln(d/0.5s):")
    population = enrolled(data, Config("fit"), embed)
    for slope in (0.0, 0.03, 0.04, 0.05, DURATION_SLOPE, 0.07, 0.08, 0.1):
        config = Config("", score_norm="margin", slope=slope)
        figures = [
            evaluate_set(data, label, corpus / "protocol" / trials, config, population, embed)
            for label, _, trials in SETS
        ]
        print(f"  slope {slope:5.3f}: " + ", ".join(f"{_pct(f['impostors'])}" for f in figures))


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    rate = f"imp@{ARGS.correct_id:.0%}"
    head = f"{'configuration':48s}"
    for label, _, _ in SETS:
        head += f" | {label:^31s}"
    sub = f"{'':48s}" + f" | {'EER':>6s} {'DCF.01':>6s} {'top-1':>6s} {rate:>9s}" * len(SETS)
    lines = [head, sub, "-" * len(sub)]
    for name, sets in results.items():
        line = f"{name:48s}"
        for label, _, _ in SETS:
            m = sets[label]
            line += (
                f" | {m['eer']:6.1%} {m['min_dcf_01']:6.3f} {m['top1']:6.1%} "
                f"{_pct(m['impostors']):>9s}"
            )
        lines.append(line)
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.1%}"


def gates_report(data: Data, embed) -> None:
    """Where the similarity limits of the quality gates fall on real speech."""
    rng = np.random.default_rng(0)
    by: dict[str, list[np.ndarray]] = {}
    for label in ("single clips",):
        clips, _, kept = data.tests[label]
        for c, r in zip(clips, kept):
            by.setdefault(r["speaker_id"], []).append(embed(c, "plain"))
    names = sorted(by)
    genuine, cross, same = [], [], []
    for _ in range(200):
        groups = {n: np.stack(by[n])[rng.choice(len(by[n]), 3, replace=False)] for n in names}
        for g in groups.values():
            genuine += [float(template_of(np.delete(g, i, 0)) @ g[i]) for i in range(3)]
        templates = [template_of(g) for g in groups.values()]
        cross += [float(a @ b) for i, a in enumerate(templates) for b in templates[i + 1 :]]
    for n in names:
        for _ in range(30):
            g = np.stack(by[n])[rng.choice(len(by[n]), 6, replace=False)]
            same.append(float(template_of(g[:3]) @ template_of(g[3:])))
    q = [1, 5, 50, 95, 99]
    print("percentiles", q)
    print("clip vs its speaker's other 2 clips:", np.round(np.percentile(genuine, q), 3))
    print("3-clip templates, different speakers:", np.round(np.percentile(cross, q), 3))
    print("3-clip templates, same speaker:      ", np.round(np.percentile(same, q), 3))
    print(
        "share of genuine below 0.65 / 0.55:",
        np.mean(np.array(genuine) < 0.65),
        np.mean(np.array(genuine) < 0.55),
    )
    print(
        "share of different-speaker templates >= 0.80 / 0.875:",
        np.mean(np.array(cross) >= 0.8),
        np.mean(np.array(cross) >= 0.875),
    )


def main() -> None:
    corpus = ensure_corpus()
    start = time.perf_counter()
    embed = Embedder(ARGS.cache)
    data = load(corpus)
    if ARGS.gates:
        gates_report(data, embed)
        embed.save()
        return
    fits = fit_slopes(data, embed)
    if ARGS.fit:
        fit_report(data, embed, fits, corpus)
        embed.save()
        return
    results: dict[str, dict[str, dict[str, float]]] = {}
    for config in configs(round(fits["none"]["all"], 3)):
        population = enrolled(data, config, embed)
        results[config.name] = {
            label: evaluate_set(
                data,
                label,
                corpus / "protocol" / trials,
                config,
                population,
                embed,
                fits["margin"]["without"],
            )
            for label, _, trials in SETS
        }
        print(f"  {config.name}: done ({embed.computed} clips embedded so far)", file=sys.stderr)
    embed.save()
    n_clips = {label: len(data.tests[label][0]) for label, _, _ in SETS}
    print(
        f"offline GE2E encoder, {len(data.names)} enrolled speakers x 3 clips; "
        f"test clips {n_clips}; "
        f"impostors at {ARGS.correct_id:.0%} correct identification "
        f"(never-enrolled + each enrolled speaker held out)"
    )
    print(table(results))
    print(f"wall time {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if ARGS.json:
        ARGS.json.write_text(json.dumps({"rows": results, "slopes": fits}, indent=2))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="npz file to keep embeddings between runs")
    parser.add_argument("--correct-id", type=float, default=0.8)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--fit", action="store_true", help="the duration slope's fit")
    parser.add_argument("--gates", action="store_true", help="quality-gate limits on the corpus")
    parser.add_argument("--memory", action="store_true", help="long-audio memory, windows on/off")
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse()
    if ARGS.memory:
        memory_report()
    else:
        main()
