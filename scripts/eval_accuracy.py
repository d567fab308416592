#!/usr/bin/env python3
"""Accuracy of speakerdb on the shared real-speech corpus, in one run.

Enrolls the protocol's 3 clips per enrolled speaker, then scores every
held-out clip (single clips, and the >= 3 s concatenated items) against every
template. Prints closed-set top-1, the verification EER and its threshold, and
open-set results at the model's default threshold: correct identifications,
and never-enrolled impostors accepted.

    python scripts/eval_accuracy.py [--model resemblyzer]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
from corpus import ensure_corpus

from speakerdb import AudioError, Clip, SpeakerDB
from speakerdb.audio import load_clip
from speakerdb.encoders import default_threshold


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def eer(target: np.ndarray, nontarget: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the threshold where false accepts equal false rejects."""
    thresholds = np.unique(np.concatenate([target, nontarget]))
    far = np.array([np.mean(nontarget >= t) for t in thresholds])
    frr = np.array([np.mean(target < t) for t in thresholds])
    i = int(np.argmin(np.abs(far - frr)))
    return float(far[i] + frr[i]) / 2, float(thresholds[i])


def usable(test: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[Clip]]:
    """The rows whose audio speakerdb accepts (the corpus has a few silent prompts)."""
    kept, clips = [], []
    for row in test:
        try:
            clips.append(load_clip(row["path"]))
        except AudioError:
            continue
        kept.append(row)
    return kept, clips


def evaluate(db: SpeakerDB, test: list[dict[str, str]], threshold: float) -> dict[str, float]:
    test, clips = usable(test)
    start = time.perf_counter()
    results = db.identify_many(clips, top_k=100, threshold=threshold)
    elapsed = time.perf_counter() - start
    enrolled = [(r, res) for r, res in zip(test, results) if r["enrolled"] == "1"]
    impostors = [res for r, res in zip(test, results) if r["enrolled"] == "0"]
    target = np.array(
        [m.score for r, res in enrolled for m in res.matches if m.speaker == r["speaker_id"]]
    )
    nontarget = np.array(
        [
            m.score
            for r, res in zip(test, results)
            for m in res.matches
            if m.speaker != r["speaker_id"]
        ]
    )
    rate, at = eer(target, nontarget)
    return {
        "clips": len(test),
        "top1": np.mean([res.best.speaker == r["speaker_id"] for r, res in enrolled]),
        "eer": rate,
        "eer_threshold": at,
        "correct_id": np.mean([res.speaker == r["speaker_id"] for r, res in enrolled]),
        "impostors_accepted": np.mean([res.speaker is not None for res in impostors]),
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resemblyzer")
    args = parser.parse_args()
    corpus = ensure_corpus()
    threshold = default_threshold(args.model)
    with (
        tempfile.TemporaryDirectory() as tmp,
        SpeakerDB(Path(tmp) / "eval.db", model=args.model) as db,
    ):
        for name, group in _by_speaker(rows(corpus / "protocol" / "enroll.csv")).items():
            db.enroll(name, group)
        print(f"model {args.model}, {len(db.speakers())} enrolled speakers, threshold {threshold}")
        print(
            f"{'test set':14s} {'clips':>5s} {'top-1':>6s} {'EER':>6s} {'EER thr':>7s} "
            f"{'correct-ID':>10s} {'impostors in':>12s}"
        )
        for label, name in (("single clips", "test.csv"), ("items >= 3 s", "test_concat3s.csv")):
            m = evaluate(db, rows(corpus / "protocol" / name), threshold)
            print(
                f"{label:14s} {m['clips']:5d} {m['top1']:6.1%} {m['eer']:6.1%} "
                f"{m['eer_threshold']:7.3f} "
                f"{m['correct_id']:10.1%} {m['impostors_accepted']:12.1%}"
            )


def _by_speaker(enroll: list[dict[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for r in enroll:
        groups.setdefault(r["speaker_id"], []).append(r["path"])
    return groups


if __name__ == "__main__":
    main()
