#!/usr/bin/env python3
"""Who spoke when, by name: ``SpeakerDB.segments`` against a naive baseline, in one run.

Builds synthetic conversations from the shared corpus (scripts/_conversations.py:
2-4 speakers, 1-3 min, turns of 1-8 s with pauses, some with a never-enrolled
speaker, some with overlap; reference RTTM beside each WAV), enrolls the split's
enrolled speakers from the protocol's enrollment clips (never used in a
conversation) with the offline GE2E encoder, then runs on every conversation:

- ``segments``: speakerdb's method (windows, clustering, one-to-one naming);
- the baseline: fixed 1.5 s windows, each identified alone (``identify_many``),
  over the same speech detector's frames.

Metrics are pyannote.metrics' (the ``eval`` extra): DER with no collar and with
collar 0.25 s (pyannote's convention: 0.125 s either side of each reference
boundary), JER, and the identification error rate with unknowns (names must match,
no optimal mapping; every ``unknown-N``, and every never-enrolled reference speaker,
is ``unknown``) with no collar and collar 0.25 s; per condition, and for the target
pool (2-3 speakers, no overlap, with or without a stranger). The real-time factor
is ``segments``' wall-clock time over the audio's duration, on this machine under
whatever load it has (printed with the load average), and its CPU time (all of the
process's threads) over the audio's duration, which load changes less.

Parameters are chosen with ``--split tune`` (other speakers); figures are reported
with ``--split report`` (the default).

    python scripts/eval_segments.py [--split report] [--per-condition 6]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from _conversations import CONDITIONS, SPLITS, Conversation, build_set, enrollment_clips
from corpus import ensure_corpus

from speakerdb import SegmentOptions, SpeakerDB
from speakerdb.audio import load_clip, speech_mask

BASELINE_WINDOW_S = 1.5
TARGET = "2-3 spk, no overlap"
TARGET_CONDITIONS = ("2-3 spk", "2-3 spk + stranger")
COLUMNS = ("DER", "DER c.25", "JER", "IER", "IER c.25")


def annotation(turns: Iterable[tuple[float, float, str]]):  # -> pyannote Annotation
    from pyannote.core import Annotation, Segment

    out = Annotation()
    for i, (start, end, label) in enumerate(turns):
        if end > start:
            out[Segment(start, end), i] = label
    return out


def as_unknown(turns: Iterable[tuple[float, float, str]], names: set[str]):
    """Turns with every label that is not an enrolled name written ``unknown``."""
    return [(a, b, who if who in names else "unknown") for a, b, who in turns]


def baseline(db: SpeakerDB, path: Path) -> list[tuple[float, float, str]]:
    """Fixed 1.5 s windows, each identified alone; speech frames take their window's answer."""
    samples = load_clip(path).samples
    mask = speech_mask(samples)
    size, frame = int(BASELINE_WINDOW_S * 16000), 480
    spans = [(s, min(s + size, len(samples))) for s in range(0, len(samples), size)]
    spans = [(a, b) for a, b in spans if b - a >= 8000]
    speechy = [(a, b) for a, b in spans if mask[a // frame : b // frame].mean() >= 0.5]
    results = db.identify_many([(samples[a:b], 16000) for a, b in speechy])
    turns = []
    for (a, b), result in zip(speechy, results, strict=True):
        label = result.speaker or "unknown"
        frames = np.flatnonzero(mask[a // frame : b // frame])
        for f in frames:
            start = (a // frame + f) * frame / 16000
            turns.append((start, start + frame / 16000, label))
    return merged(turns)


def merged(turns: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    out: list[tuple[float, float, str]] = []
    for start, end, who in turns:
        if out and out[-1][2] == who and start - out[-1][1] < 1e-6:
            out[-1] = (out[-1][0], end, who)
        else:
            out.append((start, end, who))
    return out


class Scores:
    """pyannote.metrics accumulators for one system and one pool of conversations."""

    def __init__(self) -> None:
        from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
        from pyannote.metrics.identification import IdentificationErrorRate

        self.metrics = {
            "DER": DiarizationErrorRate(collar=0.0),
            "DER c.25": DiarizationErrorRate(collar=0.25),
            "JER": JaccardErrorRate(collar=0.0),
            "IER": IdentificationErrorRate(collar=0.0),
            "IER c.25": IdentificationErrorRate(collar=0.25),
        }

    def add(self, conv: Conversation, hyp: list, names: set[str]) -> None:
        from pyannote.core import Segment, Timeline

        uem = Timeline([Segment(0, conv.duration)])
        ref, out = annotation(conv.turns), annotation(hyp)
        for key, metric in self.metrics.items():
            if key.startswith("IER"):
                ref_u = annotation(as_unknown(conv.turns, names))
                metric(ref_u, annotation(as_unknown(hyp, names)), uem=uem)
            else:
                metric(ref, out, uem=uem)

    def values(self) -> dict[str, float]:
        return {k: abs(m) for k, m in self.metrics.items()}


def enroll(db: SpeakerDB, corpus: Path, split: str) -> set[str]:
    enrolled, _ = SPLITS[split]
    for speaker, clips in enrollment_clips(corpus, enrolled).items():
        db.enroll(speaker, clips)
    return set(enrolled)


def run(args: argparse.Namespace) -> None:
    corpus = ensure_corpus()
    out = Path(args.out) / args.split
    conversations = build_set(corpus, args.split, args.per_condition, out)
    options = SegmentOptions(
        hop_s=args.hop,
        cluster_threshold=args.cluster_threshold,
        link_threshold=args.link_threshold,
        min_windows=args.min_windows,
    )
    pools = [*CONDITIONS, TARGET]
    systems = ["segments"] + ([] if args.no_baseline else ["baseline"])
    scores = {(s, p): Scores() for s in systems for p in pools}
    spent = {s: 0.0 for s in systems}
    cpu = {s: 0.0 for s in systems}
    audio = sum(c.duration for c in conversations)
    with (
        tempfile.TemporaryDirectory() as tmp,
        SpeakerDB(Path(tmp) / "eval.db", model="resemblyzer") as db,
    ):
        names = enroll(db, corpus, args.split)
        db.segments(out / f"{conversations[0].name}.wav", options=options)  # warm the encoder
        for conv in conversations:
            path = out / f"{conv.name}.wav"
            started, started_cpu = time.perf_counter(), time.process_time()
            found = db.segments(path, options=options, threshold=args.threshold)
            spent["segments"] += time.perf_counter() - started
            cpu["segments"] += time.process_time() - started_cpu
            hyps = {"segments": [(s.start, s.end, s.label) for s in found]}
            if not args.no_baseline:
                started, started_cpu = time.perf_counter(), time.process_time()
                hyps["baseline"] = baseline(db, path)
                spent["baseline"] += time.perf_counter() - started
                cpu["baseline"] += time.process_time() - started_cpu
            for system, hyp in hyps.items():
                scores[(system, conv.condition)].add(conv, hyp, names)
                if conv.condition in TARGET_CONDITIONS:
                    scores[(system, TARGET)].add(conv, hyp, names)
    report(args, conversations, pools, systems, scores, (spent, cpu), audio)


def report(args, conversations, pools, systems, scores, times, audio) -> None:
    spent, cpu = times
    load = os.getloadavg()
    print(
        f"split {args.split}: {len(conversations)} conversations, {audio / 60:.1f} min of audio; "
        f"enrolled {', '.join(SPLITS[args.split][0])}; "
        f"never enrolled {', '.join(SPLITS[args.split][1])}"
    )
    print(f"{'condition':<22} {'n':>3} {'system':<9} " + " ".join(f"{c:>9}" for c in COLUMNS))
    for pool in pools:
        n = sum(
            1
            for c in conversations
            if c.condition == pool or (pool == TARGET and c.condition in TARGET_CONDITIONS)
        )
        for system in systems:
            values = scores[(system, pool)].values()
            cells = " ".join(f"{100 * values[c]:>8.1f}%" for c in COLUMNS)
            print(f"{pool:<22} {n:>3} {system:<9} {cells}")
    if "baseline" in systems:
        beaten = all(
            scores[("segments", p)].values()[c] < scores[("baseline", p)].values()[c]
            for p in pools
            for c in COLUMNS
        )
        print(f"segments beats the baseline on every metric and condition: {beaten}")
    for system in systems:
        print(
            f"real-time factor {system}: {spent[system] / audio:.4f} wall-clock, "
            f"{cpu[system] / audio:.4f} in CPU time (all threads)"
        )
    print(f"load average during the run (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(SPLITS), default="report")
    parser.add_argument("--per-condition", type=int, default=6)
    parser.add_argument(
        "--out",
        default=str(Path.home() / ".cache" / "speakerdb-segments-eval"),
        help="where the conversations (WAV and RTTM) are written",
    )
    defaults = SegmentOptions()
    parser.add_argument("--hop", type=float, default=defaults.hop_s)
    parser.add_argument("--cluster-threshold", type=float, default=defaults.cluster_threshold)
    parser.add_argument("--link-threshold", type=float, default=defaults.link_threshold)
    parser.add_argument("--min-windows", type=int, default=defaults.min_windows)
    parser.add_argument("--threshold", type=float, default=None, help="the naming threshold")
    parser.add_argument("--no-baseline", action="store_true")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
