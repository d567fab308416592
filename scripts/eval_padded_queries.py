#!/usr/bin/env python3
"""Queries with silence around the speech, as a recorder with a fixed window makes them:
how often identify and verify still recognise the speaker. A measurement; nothing here
chooses a default.

A door intercom that records a fixed window (the README's ``door.sh`` records 3 s)
hands speakerdb the visitor's words with silence or room noise before and after. The
shared corpus's clips are trimmed, so no other figure measures this.

Per speaker of the shared corpus (``scripts/corpus.py``; the ``silence__N.wav`` clips left
out): its 3 protocol enrollment clips (``protocol/enroll.csv``; for the protocol's
never-enrolled speakers 3 seeded clips of at least 1 s) are enrolled, all 11
speakers in one database (GE2E, the shipped defaults, replay check off); then, seeded,
up to 10 of its other clips of 2.5-6 s are queried, each as it is and padded on each
side with 0.5, 1, 2 and 3 s of

- digital silence (zeros), and
- room noise: white noise at -60 dBFS RMS (a quiet room through a close microphone).

Printed per padding: identify's correct identifications (named, and the right
speaker), its outcomes, verify's acceptances of the speaker's own claim, and the median
cosine of the clip with its own speaker's template; with ``--strangers``, each speaker's
queries asked instead of a database of the other 10 (the same enrollments), and how
many are given a name. Counts with 95% Wilson intervals.

RESULT (first run, 2026-12-07; 110 genuine queries of the 11 speakers, 473 s on a loaded
machine). Identify's correct identifications / verify's acceptances:

- as they are: 68/110 (61.8%) / 63/110 (57.3%);
- 0.5 s either side: 69 / 66 (silence), 70 / 67 (noise): no loss;
- 1 s: 55 / 46 (silence), 57 / 51 (noise);
- 2 s: 6 / 4 (silence), 9 / 4 (noise);
- 3 s: 0 / 0 with either.

The median cosine with the speaker's own template barely moves up to 2 s (0.860, then
0.881-0.887, 0.842; 0.777 at 3 s): the loss up to 2 s is margin-duration's duration
term, which counts the whole clip (silence too) and takes 0.057 x ln(d / 0.5 s) off the
score while identify's bar falls by only 0.01 x ln(d / 0.5 s); at 3 s the embedding
itself is diluted. Nothing was changed after this run: counting net speech instead of
the clip's length would change every score, so it needs the defaults chosen again.

With ``--trim`` (added after that run: each padded query's ends trimmed by the library's
voice-activity detection, 0.1 s kept, before it is sent), 376 s: 60-65/110 identified
(54.5-59.1%) and 59-62 verified at every padding of 0.5-3 s, silence or noise; the
clips as they are, trimmed too, 54/110 (49.1%) and 51: trimming a clip's own margins
costs a few points (median cosine 0.829-0.850 trimmed, 0.860-0.887 untrimmed up to 1 s).

With ``--strangers`` (added then too), with and without ``--trim``: 0/110 strangers'
queries named at every padding, silence or noise (each interval 0-3.4%): trimming the
ends did not let strangers in.

Since 2026-12-08 the library embeds each clip from its words and up to 0.5 s either side
and times d on that part (scripts/eval_speech_span.py, whose pre-registered test this
script's two tables were). With it, and the defaults chosen for it: 60/110 identified as
they are, 62-65 at every padding of 0.5-3 s, silence or noise (verify 58-62); fold B's 5
speakers (the last column, added for that test's report) 29/50 as they are and 31-33/50
padded; strangers 0/110 at every padding.

    nice -n 10 python scripts/eval_padded_queries.py [--trim] [--strangers]   # 3-13 minutes
"""

from __future__ import annotations

import csv
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from _openset_data import is_silence_label
from _rates import wilson
from corpus import ensure_corpus

from speakerdb import SpeakerDB
from speakerdb.audio import FRAME_S, load_clip, spoken_part
from speakerdb.storage import MemoryStorage

SEED = 1234
QUERIES = 10
PADS_S = (0.5, 1.0, 2.0, 3.0)
NOISE_DBFS = -60.0
RATE = 16_000
#: --trim: each padded query trimmed at both ends before it is sent (ends_trimmed).
TRIM = "--trim" in sys.argv[1:]
#: --strangers: each speaker's queries asked of a database of the other 10 instead.
STRANGERS = "--strangers" in sys.argv[1:]
TRIMMED = "; each query's ends trimmed before it is sent" if TRIM else ""


def split(corpus: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Each speaker's enrollment clips and query clips (up to QUERIES seeded clips of
    2.5-6 s, none enrolled)."""
    with (corpus / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not is_silence_label(r["path"])]
    protocol: dict[str, list[str]] = {}
    with (corpus / "protocol" / "enroll.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            protocol.setdefault(r["speaker_id"], []).append(r["path"])
    out = {}
    for name in sorted({r["speaker_id"] for r in rows}):
        mine = sorted((r for r in rows if r["speaker_id"] == name), key=lambda r: r["path"])
        rng = random.Random(f"{SEED}|{name}")
        enroll = protocol.get(name) or rng.sample(
            [r["path"] for r in mine if float(r["duration_s"]) >= 1], 3
        )
        fit = [
            r["path"] for r in mine if r["path"] not in enroll and 2.5 < float(r["duration_s"]) < 6
        ]
        out[name] = (enroll, rng.sample(fit, min(QUERIES, len(fit))))
    return out


def paddings() -> Iterator[tuple[str, float, str]]:
    """Each padding measured, as (label, seconds either side, kind): none, then each of
    PADS_S of silence, then of room noise."""
    yield "none", 0.0, "silence"
    for kind, label in (("silence", "silence"), ("noise", f"noise {NOISE_DBFS:.0f} dBFS")):
        for pad in PADS_S:
            yield f"{pad:g} s {label}", pad, kind


def padded(samples: np.ndarray, pad_s: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    n = int(pad_s * RATE)
    if kind == "silence":
        side = np.zeros(n, np.float32), np.zeros(n, np.float32)
    else:
        rms = 10 ** (NOISE_DBFS / 20)
        side = tuple(rng.normal(0, rms, n).astype(np.float32) for _ in range(2))
    return np.concatenate([side[0], samples.astype(np.float32), side[1]])


def ends_trimmed(samples: np.ndarray) -> np.ndarray:
    """``samples`` without the silence before the first and after the last speech the
    library's voice-activity detection finds, keeping 3 frames (0.09 s) either side
    (what a client does with ``sox ... silence 1 0.1 1% reverse silence 1 0.1 1%
    reverse``)."""
    return samples[spoken_part(samples, margin_s=round(0.1 / FRAME_S) * FRAME_S)]


def sent(path: str, pad_s: float, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The query as the client sends it: padded, and with --trim its ends trimmed."""
    samples = padded(load_clip(path).samples, pad_s, kind, rng)
    return (ends_trimmed(samples) if TRIM else samples, RATE)


def strangers_named(
    without: dict[str, SpeakerDB], tests: dict[str, list[str]], pad_s: float, kind: str
) -> tuple[int, int]:
    """How many of each speaker's queries a database of the others names someone for."""
    rng = np.random.default_rng(SEED)
    named = total = 0
    for name, paths in tests.items():
        for path in paths:
            named += without[name].identify(sent(path, pad_s, kind, rng)).speaker is not None
            total += 1
    return named, total


def measure(db: SpeakerDB, tests: dict[str, list[str]], pad_s: float, kind: str) -> dict:
    rng = np.random.default_rng(SEED)
    correct = accepted = total = 0
    fold_b = [0, 0]  # eval_open_set.py's fold B: every other speaker, from the second
    outcomes: Counter[str] = Counter()
    cosines = []
    for name, paths in tests.items():
        in_b = name in sorted(tests)[1::2]
        for path in paths:
            audio = sent(path, pad_s, kind, rng)
            found = db.identify(audio)
            outcomes[found.outcome.value] += 1
            correct += found.speaker == name
            fold_b[0] += in_b and found.speaker == name
            fold_b[1] += in_b
            accepted += db.verify(name, audio).accepted
            plain = db.identify(audio, score_norm="none", top_k=len(tests))
            cosines += [m.score for m in plain.matches if m.speaker == name]
            total += 1
    return {
        "correct": (correct, total),
        "fold B correct": tuple(fold_b),
        "verified": (accepted, total),
        "outcomes": dict(outcomes),
        "median cosine": statistics.median(cosines),
    }


def cell(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k:3d}/{n:<3d} {k / n:5.1%} [{100 * lo:4.1f},{100 * hi:5.1f}]"


def database(enrolled: dict[str, list[str]]) -> SpeakerDB:
    """A new in-memory database (GE2E, shipped defaults, replay check off) holding
    ``enrolled``."""
    db = SpeakerDB(storage=MemoryStorage(), model="resemblyzer", replay_window=0)
    for name, paths in enrolled.items():
        db.enroll(name, paths)
    return db


def strangers_table(tests: dict[str, list[str]], enrolled: dict[str, list[str]]) -> None:
    """--strangers: each speaker's queries against a database of the other 10."""
    without = {name: database({o: p for o, p in enrolled.items() if o != name}) for name in tests}
    n = sum(map(len, tests.values()))
    print(f"GE2E, shipped defaults; {n} queries, each against the other 10 speakers{TRIMMED}")
    print(f"{'padding':22s} | strangers named")
    for label, pad, kind in paddings():
        print(f"{label:22s} | {cell(*strangers_named(without, tests, pad, kind))}", flush=True)


def genuine_table(tests: dict[str, list[str]], enrolled: dict[str, list[str]]) -> None:
    """Each speaker's queries against the database of all 11."""
    db = database(enrolled)
    n = sum(map(len, tests.values()))
    print(f"GE2E, shipped defaults; {len(tests)} speakers enrolled, {n} genuine queries{TRIMMED}")
    header = f"{'padding':22s} | {'identify correct':27s} | {'verify accepted':27s}"
    print(f"{header} | cosine | outcomes | fold B's speakers identified")
    for label, pad, kind in paddings():
        m = measure(db, tests, pad, kind)
        print(
            f"{label:22s} | {cell(*m['correct'])} | {cell(*m['verified'])} | "
            f"{m['median cosine']:.3f}  | {m['outcomes']} | {cell(*m['fold B correct'])}",
            flush=True,
        )


def main() -> int:
    start = time.perf_counter()
    both = split(ensure_corpus())
    tests = {name: asked for name, (_, asked) in both.items()}
    enrolled = {name: enroll for name, (enroll, _) in both.items()}
    (strangers_table if STRANGERS else genuine_table)(tests, enrolled)
    print(f"\nwall time {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
