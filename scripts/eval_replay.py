"""Replay detection and false flags of the acoustic fingerprint, speakers left out.

On the shared real-speech corpus (``../shared/data``; ``$SPEAKERDB_CORPUS``):

- The 11 speakers are split into two fixed folds (alternate speakers in sorted
  order, so both folds hold telephone and studio voices). Each fold is its own
  database: per speaker, its 3 enrollment clips (``protocol/enroll.csv``, or 3
  seeded clips of at least 1 s for the never-enrolled speakers) and
  ``--recent`` earlier queries kept for the replay window.
- **Replays**: every stored clip, transformed (noise, gain, resampling,
  telephone band, cuts), against its own fingerprint.
- **Genuine new clips**: ``--genuine`` other clips per speaker, each against
  every stored clip of the fold (its own speaker's and the others'). A clip is
  flagged when any stored clip matches it.
- The threshold is chosen on one fold (the lowest with at most ``--tune-flags``
  of its genuine clips flagged) and reported on the other, both ways round;
  the rows "fold A -> B" are the shipped default's provenance.

Rates come with 95% Wilson intervals. Everything is seeded; it runs in a few
minutes on one core. ``--bench`` times one query against many stored clips.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from speakerdb.audio import Fingerprint, best_matches, fingerprint
from speakerdb.errors import AudioError

CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", Path.home() / ".cache" / "speakerdb-corpus"))
RATE = 16_000
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def noisy(snr_db: float, pink: bool) -> Transform:
    """Adds white or pink noise at ``snr_db`` below the clip's mean power."""

    def add(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(x.size)
        if pink:  # 1/f power: scale the spectrum by 1/sqrt(f)
            spectrum = np.fft.rfft(noise)
            f = np.arange(spectrum.size, dtype=float)
            f[0] = 1.0
            noise = np.fft.irfft(spectrum / np.sqrt(f), n=x.size)
        power = np.mean(x**2) / 10 ** (snr_db / 10)
        return x + noise * np.sqrt(power / np.mean(noise**2))

    return add


def resampled(rate: int) -> Transform:
    return lambda x, _: soxr.resample(soxr.resample(x, RATE, rate), rate, RATE)


def telephone(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
    """300-3400 Hz band-pass, 8 kHz, 8-bit mu-law, back to 16 kHz."""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1 / RATE)
    spectrum[(f < 300) | (f > 3400)] = 0
    y = np.clip(soxr.resample(np.fft.irfft(spectrum, n=x.size), RATE, 8000), -1, 1)
    mu = 255.0
    code = np.round(np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) * 127) / 127
    return soxr.resample(np.sign(code) * ((1 + mu) ** np.abs(code) - 1) / mu, 8000, RATE)


def middle(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
    """The middle 60% of the clip, at least 0.5 s (speakerdb's shortest clip)."""
    n = min(x.size, max(int(0.6 * x.size), RATE // 2))
    start = (x.size - n) // 2
    return x[start : start + n]


TRANSFORMS: dict[str, Transform] = {
    "exact file": lambda x, _: x,
    "white noise 20 dB": noisy(20, pink=False),
    "white noise 10 dB": noisy(10, pink=False),
    "white noise 5 dB": noisy(5, pink=False),
    "pink noise 20 dB": noisy(20, pink=True),
    "pink noise 10 dB": noisy(10, pink=True),
    "pink noise 5 dB": noisy(5, pink=True),
    "gain +12 dB": lambda x, _: x * 10 ** (12 / 20),
    "gain -12 dB": lambda x, _: x * 10 ** (-12 / 20),
    "resampled via 8 kHz": resampled(8000),
    "resampled via 22.05 kHz": resampled(22050),
    "telephone mu-law 8 kHz": telephone,
    "first 0.25 s cut": lambda x, _: x[RATE // 4 :],
    "0.5 s silence padded": lambda x, _: np.concatenate([np.zeros(RATE // 2), x]),
    "middle 60% (sub-segment)": middle,
}


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k:5d}/{n:<5d} {100 * k / max(n, 1):6.2f}%  [{100 * lo:5.2f}, {100 * hi:5.2f}]"


def load(path: str) -> np.ndarray:
    return sf.read(path, dtype="float64")[0]


def clips_by_speaker() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """All clips per speaker, and the enrollment clips per speaker."""
    every: dict[str, list[str]] = {}
    with open(CORPUS / "manifest.csv") as fh:
        for row in csv.DictReader(fh):
            if float(row["duration_s"]) >= 0.5:  # speakerdb refuses shorter clips
                every.setdefault(row["speaker_id"], []).append(row["path"])
    enrolled: dict[str, list[str]] = {}
    with open(CORPUS / "protocol" / "enroll.csv") as fh:
        for row in csv.DictReader(fh):
            enrolled.setdefault(row["speaker_id"], []).append(row["path"])
    return every, enrolled


def usable(path: str) -> bool:
    try:
        fingerprint(load(path))
    except AudioError:
        return False
    return True


def build_fold(speakers: list[str], args: argparse.Namespace) -> dict[str, object]:
    """Stored fingerprints, replay scores and genuine clips' best scores of one fold."""
    every, enrolled = clips_by_speaker()
    stored: list[Fingerprint] = []
    owner: list[str] = []
    sources: list[str] = []
    genuine_paths: list[tuple[str, str]] = []
    for spk in speakers:
        rng = random.Random(f"{args.seed}|{spk}")
        pool = sorted(every[spk])
        first = enrolled.get(spk) or rng.sample(pool, 3)
        # Clips with nothing to fingerprint (the corpus has a few silent prompts)
        # are refused upstream by speakerdb's silence check; they are left out.
        rest = [p for p in pool if p not in first]
        rng.shuffle(rest)
        rest = [p for p in rest[: 2 * (args.recent + args.genuine)] if usable(p)]
        for path in first + rest[: args.recent]:
            stored.append(fingerprint(load(path)))
            owner.append(spk)
            sources.append(path)
        genuine_paths += [(spk, p) for p in rest[args.recent : args.recent + args.genuine]]
    replay = replay_scores(stored, sources, args.seed)
    genuine = []
    for spk, path in genuine_paths:
        scores = best_matches(fingerprint(load(path)), stored)
        same = np.array([o == spk for o in owner])
        genuine.append((scores.max(), scores[same].max(), scores[~same].max(), scores))
    return {"replay": replay, "genuine": genuine, "stored": len(stored)}


def replay_scores(
    stored: list[Fingerprint], sources: list[str], seed: int
) -> dict[str, np.ndarray]:
    """Each transform's score of every stored clip's copy against its own fingerprint."""
    out: dict[str, list[float]] = {name: [] for name in TRANSFORMS}
    for j, path in enumerate(sources):
        x = load(path)
        for t, (name, transform) in enumerate(TRANSFORMS.items()):
            rng = np.random.default_rng([seed, j, t])
            try:
                score = best_matches(fingerprint(transform(x, rng)), [stored[j]])[0]
            except Exception:  # a copy too short or quiet to fingerprint is a miss
                score = 0.0
            out[name].append(float(score))
    return {name: np.array(v) for name, v in out.items()}


def tune(fold: dict[str, object], max_flags: float) -> float:
    """The lowest threshold flagging at most ``max_flags`` of the fold's genuine clips."""
    best = np.sort([g[0] for g in fold["genuine"]])  # type: ignore[attr-defined]
    allowed = math.floor(max_flags * best.size)
    # Just above the (allowed + 1)-th highest genuine score.
    return float(best[best.size - allowed - 1]) + 1e-6


def report(name: str, fold: dict[str, object], threshold: float) -> None:
    print(f"\n== {name}: threshold {threshold:.2f}, {fold['stored']} stored fingerprints ==")
    replay: dict[str, np.ndarray] = fold["replay"]  # type: ignore[assignment]
    hits = total = 0
    for transform, scores in replay.items():
        k = int((scores >= threshold).sum())
        hits, total = hits + k, total + scores.size
        print(f"  detected  {transform:26s} {rate(k, scores.size)}")
    print(f"  detected  {'all transformations':26s} {rate(hits, total)}")
    genuine = fold["genuine"]
    n = len(genuine)  # type: ignore[arg-type]
    flagged = sum(g[0] >= threshold for g in genuine)  # type: ignore[attr-defined]
    same = sum(g[1] >= threshold for g in genuine)  # type: ignore[attr-defined]
    pairs = np.concatenate([g[3] for g in genuine])  # type: ignore[attr-defined]
    print(f"  genuine new clips flagged (any stored clip)  {rate(flagged, n)}")
    print(f"  ... by their own speaker's stored clips      {rate(same, n)}")
    pair_flags = int((pairs >= threshold).sum())
    print(f"  genuine pairs flagged (clip, stored clip)    {rate(pair_flags, pairs.size)}")


def bench(seed: int) -> None:
    """Time one 3 s query against 100 and 1,000 stored 3 s fingerprints."""
    every, _ = clips_by_speaker()
    paths = sorted(p for v in every.values() for p in v)
    rng = random.Random(seed)
    clips = [load(p) for p in rng.sample(paths, 400)]
    long_ = np.concatenate(clips)
    three = [long_[i * 3 * RATE : (i + 1) * 3 * RATE] for i in range(100)]
    t0 = time.perf_counter()
    prints = [fingerprint(c) for c in three]
    per_fp = (time.perf_counter() - t0) / len(three)
    print(f"fingerprint of a 3 s clip: {1000 * per_fp:.1f} ms, {len(prints[0].to_bytes())} bytes")
    for count in (100, 1000):
        stored = (prints * (count // len(prints) + 1))[:count]
        t0 = time.perf_counter()
        best_matches(prints[0], stored)
        print(f"one 3 s query against {count} stored 3 s clips: {time.perf_counter() - t0:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recent", type=int, default=5, help="recent queries kept per speaker")
    parser.add_argument("--genuine", type=int, default=60, help="genuine new clips per speaker")
    parser.add_argument("--tune-flags", type=float, default=0.005, help="flags allowed in tuning")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--bench", action="store_true", help="time the matching, then stop")
    args = parser.parse_args()
    if args.bench:
        bench(args.seed)
        return
    speakers = sorted(clips_by_speaker()[0])
    folds = {"A": speakers[0::2], "B": speakers[1::2]}
    for name, members in folds.items():
        print(f"fold {name}: {', '.join(members)}")
    t0 = time.perf_counter()
    built = {name: build_fold(members, args) for name, members in folds.items()}
    for tuned, reported in (("A", "B"), ("B", "A")):
        threshold = tune(built[tuned], args.tune_flags)
        report(f"tuned on fold {tuned}, reported on fold {reported}", built[reported], threshold)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
