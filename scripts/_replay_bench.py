"""``scripts/eval_replay.py --bench`` (evaluation only): the replay lookup's cost against
1,000 and 10,000 stored 3 s clips, beside the exact scan of every stored fingerprint and
the GE2E embedding of the same query, and whether noisy copies of stored clips are still
found. Timings under load are not valid: run it on a quiet machine."""

from __future__ import annotations

import random
import time

import numpy as np
import soundfile as sf
import soxr
from _replay_corpus import RATE, clips_by_speaker
from _replay_lookup import SCORED_SHARE, database, lookup, printed_of, scored_count
from _replay_setups import ROWS_CHOICES
from _replay_transforms import noisy

from speakerdb.audio import Fingerprint, best_matches, fingerprint
from speakerdb.errors import AudioError
from speakerdb.services._replay import MATCH_THRESHOLD, ROWS_PER_KEY
from speakerdb.storage import Storage


def bench(seed: int, sizes: tuple[int, ...] = (1_000, 10_000), queries: int = 20) -> None:
    """Time a 3 s query's replay lookup against ``sizes`` stored 3 s clips (as the check
    reads, :data:`ROWS_PER_KEY` rows per key, and reading every row), the exact scan of
    every stored fingerprint (the cost without the index) and the query's GE2E embedding
    (what every query pays anyway), in one run."""
    bases = _segments(seed)
    probes = [_segment(b) * 0.5 for b in bases[:queries]]  # genuine queries: never stored
    embed = _embedding_seconds(probes)
    print(f"GE2E embedding of a 3 s query: {1000 * embed:.1f} ms", flush=True)
    t0 = time.perf_counter()
    prints, sources = _stock(bases[queries:], max(sizes))
    print(f"fingerprint of a 3 s clip: {1000 * (time.perf_counter() - t0) / len(prints):.1f} ms")
    if len(prints) < max(sizes):
        print(f"only {len(prints)} distinct 3 s clips: sizes above it are not measured")
    rng = np.random.default_rng(seed)
    for size in (n for n in sizes if n <= len(prints)):
        print(f"storing {size} fingerprints...", flush=True)
        with database(prints[:size]) as storage:
            _time_lookups(storage, size, probes, embed)
            # Replays of stored clips (white noise at 10 dB): the index must still find them.
            chosen = rng.choice(size, queries, replace=False)
            found = sum(
                lookup(storage, printed_of(noisy(10, False)(_variant(*sources[i]), rng)))
                >= MATCH_THRESHOLD
                for i in chosen
            )
            exact = _scan_seconds(probes[:3], prints[:size])
            print(
                f"{size:6d} stored: exact scan of every stored clip {1000 * exact:7.1f} ms; "
                f"replays of stored clips (10 dB white noise) found {found}/{queries}"
            )


def _segments(seed: int) -> list[Segment]:
    """(path, start) of every 3 s segment of the corpus (about 3,400), in an order seeded
    by ``seed``; loaded when used."""
    every, _ = clips_by_speaker()
    paths = sorted(p for v in every.values() for p in v)
    random.Random(seed).shuffle(paths)
    return [
        (path, start)
        for path in paths
        for start in range(0, sf.info(path).frames - 3 * RATE + 1, 3 * RATE)
    ]


def _scan_seconds(probes: list[np.ndarray], prints: list[Fingerprint]) -> float:
    """Seconds per query of the exact scan of every one of ``prints``."""
    scan = [fingerprint(c) for c in probes]
    t0 = time.perf_counter()
    for printed in scan:
        best_matches(printed, prints)
    return (time.perf_counter() - t0) / len(scan)


Segment = tuple[str, int]
#: How the corpus's 3 s segments become distinct stored clips: as they are, time-reversed,
#: and 10% faster or slower (Kaldi's speed perturbation), each also reversed.
VARIANTS = ("", "reversed", "0.9", "1.1", "0.9 reversed", "1.1 reversed")


def _segment(base: Segment) -> np.ndarray:
    path, start = base
    return sf.read(path, dtype="float64", start=start, frames=3 * RATE)[0]


def _variant(base: Segment, variant: str) -> np.ndarray:
    x = _segment(base)
    if variant[:1].isdigit():
        x = soxr.resample(x, RATE, RATE / float(variant.split()[0]))[: 3 * RATE]
    return x[::-1].copy() if variant.endswith("reversed") else x


def _stock(bases: list[Segment], most: int) -> tuple[list[Fingerprint], list[tuple[Segment, str]]]:
    """Up to ``most`` distinct stored 3 s clips (every segment in one variant, then the
    next), and where each comes from."""
    prints: list[Fingerprint] = []
    sources: list[tuple[Segment, str]] = []
    for variant in VARIANTS:
        for base in bases:
            try:
                prints.append(fingerprint(_variant(base, variant)))
            except AudioError:  # a silent stretch of a prompt
                continue
            sources.append((base, variant))
            if len(prints) == most:
                return prints, sources
    return prints, sources


def _time_lookups(storage: Storage, size: int, probes: list[np.ndarray], embed: float) -> None:
    """Print the lookup's time per query, fingerprint included, as the check reads,
    scoring a share of the stored clips (the third rule's choices, not shipped), at the
    other choices of rows per key, and reading every row, against the embedding's and the
    shipped lookup's. The choices take turns on each query, and each gets the median of
    its times, so that a change of load during the run or a cold cache favours none."""
    choices: list[tuple[int | None, float]] = [
        (ROWS_PER_KEY, SCORED_SHARE),
        (ROWS_PER_KEY, 0.005),
        (ROWS_PER_KEY, 0.04),
    ]
    choices += [(rows, SCORED_SHARE) for rows in (*ROWS_CHOICES, None) if rows != ROWS_PER_KEY]
    times: dict[tuple[int | None, float], list[float]] = {choice: [] for choice in choices}
    for rows, share in choices:
        lookup(storage, printed_of(probes[0]), rows, share)  # warm the caches
    for probe in probes:
        for rows, share in choices:
            t0 = time.perf_counter()
            lookup(storage, printed_of(probe), rows, share)
            times[rows, share].append(time.perf_counter() - t0)
    shipped = float(np.median(times[choices[0]]))
    for rows, share in choices:
        took = float(np.median(times[rows, share]))
        how = "every row" if rows is None else f"{rows} rows per key"
        how += f", {scored_count(size, share)} scored"
        how += " (shipped)" if (rows, share) == choices[0] else ""
        print(
            f"{size:6d} stored 3 s clips, {how:38s}: lookup {1000 * took:7.1f} ms per "
            f"query (median, fingerprint included) = {took / embed:5.2f} x the embedding, "
            f"{took / shipped:5.2f} x the shipped lookup",
            flush=True,
        )


def _embedding_seconds(clips: list[np.ndarray]) -> float:
    """Seconds per clip of the GE2E encoder's embedding (after one warm-up call)."""
    from speakerdb.encoders import load_encoder

    encoder = load_encoder("resemblyzer")  # the offline GE2E encoder
    encoder.encode([clips[0].astype(np.float32)])
    t0 = time.perf_counter()
    for clip in clips:
        encoder.encode([clip.astype(np.float32)])
    return (time.perf_counter() - t0) / len(clips)
