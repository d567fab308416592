#!/usr/bin/env python3
"""Bulk enrollment against the raw embedding throughput, in one run.

"Raw" is the encoder alone on clips already decoded and in memory; "enroll-batch"
is :meth:`speakerdb.SpeakerDB.enroll_batch` from the CSV manifest into a database,
with the same loaded encoder: decoding, quality gates, SQLite writes and the
index included. Both run on the same real clips of the shared corpus,
alternately, ``--repeats`` times; the medians and their ratio are printed.

``--existing N`` first fills each database with N synthetic speakers (random
unit vectors recorded under the real encoder's identity), to show that the
cost of enrolling does not grow with the size of the database.

    python scripts/bench_enroll.py [--model resemblyzer] [--per-speaker 20] [--existing 0]
    SPEAKERDB_BACKEND=openvino-bf16 python scripts/bench_enroll.py --model DIR  # fast path
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from corpus import ensure_corpus

from speakerdb import SpeakerDB
from speakerdb.audio import load_clip
from speakerdb.encoders import load_encoder
from speakerdb.services import read_manifest
from speakerdb.types import EncoderInfo


class RandomEncoder:
    """Random unit vectors under another encoder's identity: fills a database fast."""

    def __init__(self, info: EncoderInfo) -> None:
        self.info = info
        self._rng = np.random.default_rng(0)

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        vectors = self._rng.standard_normal((len(clips), self.info.dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def prefill(path: Path, info: EncoderInfo, n: int) -> None:
    """``n`` speakers of one distinct 0.5 s noise clip each, embedded as ``info``'s model."""
    rng = np.random.default_rng(1)
    groups = (
        (f"synthetic-{k:07d}", [(0.1 * rng.standard_normal(8000).astype(np.float32), 16_000)])
        for k in range(n)
    )
    with SpeakerDB(path, encoder=RandomEncoder(info)) as db:
        for _, outcome in db.enroll_many(groups, force=True):
            assert not isinstance(outcome, Exception), outcome


def write_manifest(folder: Path, per_speaker: int, min_s: float) -> Path:
    """``per_speaker`` clips of at least ``min_s`` seconds of each corpus speaker."""
    with (ensure_corpus() / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen: dict[str, list[str]] = {}
    for row in rows:
        picked = chosen.setdefault(row["speaker_id"], [])
        if float(row["duration_s"]) >= min_s and len(picked) < per_speaker:
            picked.append(row["path"])
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["speaker", "path"])
        for speaker, paths in chosen.items():
            out.writerows([speaker, p] for p in paths)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resemblyzer", help="model to embed with")
    parser.add_argument("--per-speaker", type=int, default=20)
    parser.add_argument("--min-s", type=float, default=1.5, help="shortest clip used")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--existing", type=int, default=0, help="speakers enrolled before")
    args = parser.parse_args()

    encoder = load_encoder(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp), args.per_speaker, args.min_s)
        rows = read_manifest(manifest)
        samples = [load_clip(r.path).samples for r in rows]
        audio_s = sum(len(s) for s in samples) / 16_000
        encoder.encode(samples[:2])  # warm up (first-call allocations)
        raw, batch = [], []
        for attempt in range(args.repeats):
            start = time.perf_counter()
            encoder.encode(samples)
            raw.append(time.perf_counter() - start)
            path = Path(tmp) / f"bench{attempt}.db"
            if args.existing:
                prefill(path, encoder.info, args.existing)
            with SpeakerDB(path, encoder=encoder) as db:
                start = time.perf_counter()
                report = db.enroll_batch(rows, force=True)
                batch.append(time.perf_counter() - start)
            assert not report.failures, report.failures[:3]
    raw_s, batch_s = statistics.median(raw), statistics.median(batch)
    print(f"{len(rows)} clips, {audio_s:.0f} s of audio, model {args.model}, ", end="")
    print(f"into a database of {args.existing} speakers")
    print(f"raw embedding:  {raw_s:6.2f} s  ({audio_s / raw_s:6.1f}x realtime)")
    print(f"enroll-batch:   {batch_s:6.2f} s  ({audio_s / batch_s:6.1f}x realtime)")
    print(f"enroll-batch reaches {raw_s / batch_s:.1%} of the raw embedding throughput")


if __name__ == "__main__":
    main()
