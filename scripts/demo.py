#!/usr/bin/env python3
"""Enroll real voices and identify held-out clips, end to end.

Uses the default transformers model when it is cached or the Hugging Face Hub
can be reached; otherwise says so and uses the offline GE2E encoder
(``--model resemblyzer``). Works in a temporary folder; touches nothing else.
"""

from __future__ import annotations

import argparse
import csv
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from corpus import ensure_corpus

from speakerdb import AudioError, ModelError, SpeakerDB
from speakerdb.audio import load_clip
from speakerdb.config import DEFAULT_MODEL
from speakerdb.encoders import GE2EFamily, load_encoder

RESEMBLYZER = GE2EFamily.name  # the offline encoder's model name


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def pick_model(wanted: str | None) -> str:
    if wanted:
        return wanted
    try:
        load_encoder(DEFAULT_MODEL, local_files_only=True)
        return DEFAULT_MODEL
    except ModelError:
        pass
    if hub_reachable():
        return DEFAULT_MODEL
    print(
        f"The Hugging Face Hub cannot be reached and {DEFAULT_MODEL} is not cached:\n"
        f"using the offline encoder instead (--model {RESEMBLYZER}, resemblyzer's GE2E).\n"
    )
    return RESEMBLYZER


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def cli(*args: str) -> None:
    print("$ speakerdb " + " ".join(args))
    subprocess.run([sys.executable, "-m", "speakerdb", *args], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model to use instead of the automatic choice")
    parser.add_argument("--per-speaker", type=int, default=10, help="held-out clips per speaker")
    args = parser.parse_args()
    corpus = ensure_corpus()
    model = pick_model(args.model)
    enroll_csv = corpus / "protocol" / "enroll.csv"
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "demo.db")
        cli("enroll-batch", str(enroll_csv), "--db", db, "--model", model)
        cli("list", "--db", db)
        evaluate(db, corpus, args.per_speaker)


def evaluate(db: str, corpus: Path, per_speaker: int) -> None:
    test = rows(corpus / "protocol" / "test.csv")
    taken: Counter[str] = Counter()
    sample = []
    clips = []
    for row in test:
        if taken[row["speaker_id"]] < per_speaker:
            try:
                clips.append(load_clip(row["path"]))
            except AudioError as exc:  # the corpus has a few silent prompts
                print(f"skipped: {exc}")
                continue
            taken[row["speaker_id"]] += 1
            sample.append(row)
    with SpeakerDB(db) as speakers:
        start = time.perf_counter()
        results = speakers.identify_many(clips, top_k=3)
        elapsed = time.perf_counter() - start
        threshold = speakers.policy().threshold
    report(sample, results, threshold, elapsed)
    # Clips no query has used: a clip decided moments ago is answered 'replay'.
    speaker = sample[0]["speaker_id"]
    fresh = [
        r["path"]
        for r in test
        if r["speaker_id"] == speaker and r not in sample and float(r["duration_s"]) >= 2.0
    ]
    if len(fresh) >= 2:
        cli("identify", fresh[0], "--db", db, "--top-k", "3")
        cli("verify", speaker, fresh[1], "--db", db)


def report(sample, results, threshold: float, elapsed: float) -> None:  # type: ignore[no-untyped-def]
    genuine = [(r, res) for r, res in zip(sample, results) if r["enrolled"] == "1"]
    impostors = [(r, res) for r, res in zip(sample, results) if r["enrolled"] == "0"]
    top1 = sum(res.best is not None and res.best.speaker == r["speaker_id"] for r, res in genuine)
    accepted_right = sum(res.speaker == r["speaker_id"] for r, res in genuine)
    impostor_in = sum(res.speaker is not None for _, res in impostors)
    took = f"{elapsed:.1f} s (threshold {threshold:.4f})"
    print(f"\nidentified {len(sample)} held-out clips in {took}")
    print(
        f"  enrolled speakers' clips: top-1 correct {top1}/{len(genuine)}, "
        f"accepted and correct {accepted_right}/{len(genuine)}"
    )
    print(f"  never-enrolled impostors' clips: wrongly accepted {impostor_in}/{len(impostors)}\n")


if __name__ == "__main__":
    main()
