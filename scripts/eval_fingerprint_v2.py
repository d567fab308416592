"""How version 2 of the replay fingerprint was chosen: on ktuberling clips no figure had used.

**Why.** Version 1 of the fingerprint (128 ms frames, 16 ms steps, 32 bits a step)
missed the issue's targets on short clips: on the 10 fresh ktuberling voices
(``eval_replay_fresh.py``: single words, mostly under 1 s) it detected 91.2% of copies
(59-64% at 5 dB SNR), and on fold A of the shared corpus it flagged 1.85% of the newest
genuine clips, short prompts matched with other short prompts (``eval_replay_length.py``).
Under 1 s, 32 bits every 16 ms are too few to tell a noisy copy from chance.

**The design set** (this script): ktuberling's clips that ``scripts/fresh_voices.py``
leaves out, which no run had used: the newer themes of the kept languages and every clip
of the three languages left out as more than one speaker (ca, el, nn); for a replay,
whose voice it is does not matter. Converted to 16 kHz mono under ``$SPEAKERDB_FRESH/
unused`` (clips under 0.5 s and repeated audio dropped). Per language in a seeded
order, 23 clips are stored (as ``eval_replay_fresh.py``: 3 enrolled and 20 kept
queries) in one database of every language; the first 8 stored of each go through the
issue's copies (``_replay_transforms``); every other clip is a genuine new clip. Genuine
clips sharing recorded audio with a stored clip are left out (from the waveforms,
``_replay_confounds.confounds``; none on seed 1234). Scores are exact, every stored clip
and alignment (no index), so they do not depend on the lookup.

**Variants**: the frame, the step, the number of bands and the loudness kept (bits of
cells within that many dB of the clip's loud cells). Each is compared with the others
at the threshold that flags at most ``--flags`` (0.5%) of the design set's genuine clips
(the rule ``eval_replay.py`` tunes by), so a variant that only moves its scores gains
nothing.

**The choice** (session 13, 16:05-16:50 UTC, exploration on this set only; no figure of
any new variant on the shared corpus or the used ktuberling clips was computed before
the test below was fixed). On seed 1234 (806 genuine clips, 768 copies of 64 stored
clips), by exact scores:

| variant (frame ms / step ms / bands / dB) | threshold at 0.5% | copies detected | at 5 dB |
|---|---|---|---|
| 128/16/33/30 (version 1) | 9.63 | 94.9% | 75.0% |
| 128/16/65/30 | 10.51 | 96.0% | 79.7% |
| 64/8/33/30 | 8.67 | 97.1% | 85.2% |
| 64/8/49/30 | 8.27 | 98.0% | 89.8% |
| 64/8/65/30 | 8.92 | 98.2% | 89.8% |
| 64/16/49/30 | 7.24 | 96.6% | 82.0% |
| 128/16/33/20 | 8.28 | 99.0% | 94.5% |
| 64/8/33/20 | 6.76 | 99.6% | 98.4% |
| **64/8/49/20 (version 2)** | **6.88** | **99.6%** | **97.7%** |
| 64/8/49/15 | 5.79 | 99.9% | 99.2% |
| 64/8/49/10 | 2.19 | 95.1% | 94.5% |

(The exploration's thresholds were the 99.5th percentile; this script's rule, a count,
gives the same to 0.01 for the two rows it was run on.) Most of the gain is the loudness
kept: noise flips the bits of cells 20-30 dB below the loudest first, and version 1 kept
them. Shorter frames and steps keep more of a recording's own timing. 15 dB was as good
through the lookup (99.2% both) and keeps fewer bits; 20 dB was kept. Version 1 at its
shipped 7.5 flags 30/806 (3.7%) of this set's genuine clips: single words of 0.6-1.1 s
matched with other short words, often of another language.

**The index** (``speakerdb/audio/_fpindex.py``) had to change with it: through the
shipped lookup, version 2 with version 1's kind of keys (16 random bits of a step, a
step counting when half its key's bits are loud) found 88.3% of copies (49% at 5 dB)
against 99.6% by exact scores: only a quarter of version 2's bits are loud at a step,
gathered in a formant's bands. 12 random bits: 93.2%; 16 adjacent bits, a table every
8: 96.9%; 12 adjacent bits, a table every 12: 98.8%; **12 adjacent bits, a table every
6 (7 tables): 99.2% (96.1% at 5 dB)**, chosen. ``--lookup`` prints it.
**Threshold: 6.9** (the rule's 6.88, rounded up as version 1's 7.45 was).

**The test** (fixed 16:55 UTC, commit 0c63905, before any figure of version 2 on its
data), on data the choice never saw, with the scripts that measured version 1 and the
shipped lookup (threshold 6.9, ``CANDIDATES`` and ``ROWS_PER_KEY`` unchanged), seed
1234:

- the shared corpus, each fold in its own database (per speaker 3 enrollment clips and
  30 kept queries): ``eval_replay_length.py --choose`` (genuine clips 1-480, copies of
  stored clips 1-24) and ``eval_replay_length.py --test 0 0`` (genuine clips 481
  onwards, copies of stored clips 25-33), read at ``b = 0``, the shipped check;
- the 10 used ktuberling voices: ``eval_replay_fresh.py`` (402 genuine, 960 copies).

**Criteria**, on each fold, pooled over the two runs: (1) at most 1% (point estimate)
of the confound-free genuine clips flagged, (2) at least 95% of the copies of the
issue's list detected. The shared corpus's clips are not new to the project (version 1
was chosen, diagnosed and measured on them, and the idea that short clips were the
weakness came from them), but no choice of version 2 used them. Version 2 ships if both
are met on both folds and it is no worse than version 1 on ktuberling's two figures
(0.75% flagged, 91.2% detected); otherwise the figures are reported as they are and
version 1 stays. Nothing is retuned.

**Result** (16:56-17:27 UTC): **met on both folds; version 2 ships.** Read at ``b = 0``:

| data (own database) | copies detected | genuine flagged | version 1 on the same data |
|---|---|---|---|
| fold A, clips 1-480 | 1,719/1,728, 99.48% | 4/2,626, 0.15% | 96.53%, 0.72% |
| fold A, clips 481+ | 646/648, 99.69% | 2/812, 0.25% | 96.14%, 1.85% |
| **fold A, pooled** | **2,365/2,376, 99.54%** | **6/3,438, 0.17% [0.08, 0.38]** | 96.42%, 0.99% |
| fold B, clips 1-480 | 1,434/1,440, 99.58% | 4/2,204, 0.18% | 97.64%, 0.91% |
| fold B, clips 481+ | 540/540, 100% | 0/192, 0% | 97.41%, 0% |
| **fold B, pooled** | **1,974/1,980, 99.70%** | **4/2,396, 0.17% [0.06, 0.43]** | 97.58%, 0.83% |
| ktuberling, 10 used voices | 946/960, 98.54% | 1/402, 0.25% | 91.15%, 0.75% |

The extra copies (cut, padded, a sub-segment; not judged) on ktuberling: 222/240 (version
1: 225/240); on the shared corpus 162/162 and 135/135 for clips 481+.

**After it shipped, at scale** (not part of the test; ``eval_replay.py --at-scale --folds
A``, 17:28-17:54 UTC): with 5,085 other clips of fold A's speakers stored, version 2
detects 507/576 (88.0%) of copies in the clean database against version 1's 95.7%, and
flags 0/360 genuine clips (version 1: 1/360). All 69 misses are the lookup's: the copied
clip ranked below the 10 candidates by votes. 12-bit keys are less selective than
version 1's 16-bit ones. ``eval_fpindex_v2.py`` added 16-bit keys to them: 562/576
(97.6%) there.

    python scripts/fresh_voices.py && nice -n 10 python scripts/eval_fingerprint_v2.py
"""

from __future__ import annotations

import argparse
import random

import numpy as np
from _rates import rate
from _replay_confounds import confounds
from _replay_corpus import load, progress
from _replay_lookup import EPOCH, database, printed_of
from _replay_transforms import ACCEPTANCE, copies
from fresh_voices import FRESH, _shared_builder, package_sounds

from speakerdb.audio import _fingerprint
from speakerdb.audio._fingerprint import (
    VERSION,
    Fingerprint,
    _Plan,
    best_matches,
    fingerprint,
    threshold_of,
)
from speakerdb.errors import AudioError
from speakerdb.services._replay import stored_candidates

LANGUAGES = ["ca", "da", "el", "fr", "lt", "nn", "ru", "uk"]
#: name: (frame, step, bands, loudness kept in dB); each is compared at --flags.
VARIANTS = {
    "128/16/33/30 (version 1)": (2048, 256, 33, 30.0),
    "128/16/65/30": (2048, 256, 65, 30.0),
    "64/8/33/30": (1024, 128, 33, 30.0),
    "64/8/49/30": (1024, 128, 49, 30.0),
    "64/8/65/30": (1024, 128, 65, 30.0),
    "64/16/49/30": (1024, 256, 49, 30.0),
    "128/16/33/20": (2048, 256, 33, 20.0),
    "64/8/33/20": (1024, 128, 33, 20.0),
    "64/8/49/20 (version 2)": (1024, 128, 49, 20.0),
    "64/8/49/15": (1024, 128, 49, 15.0),
    "64/8/49/10": (1024, 128, 49, 10.0),
}
STORED, REPLAYED = 23, 8


def unused_clips() -> dict[str, list[str]]:
    """Each language's clips that fresh_voices.py does not use, as 16 kHz mono WAV."""
    used_by_lang = {
        (p.parent.name.split("-", 1)[1], p.stem) for p in (FRESH / "wav").glob("*/*.wav")
    }
    sounds, converter, seen, out = package_sounds(), _shared_builder(), set(), {}
    for lang in LANGUAGES:
        for src in sorted((sounds / lang).iterdir()):
            if (lang, src.stem) in used_by_lang or not src.is_file():
                continue
            dst = FRESH / "unused" / lang / (src.stem + ".wav")
            # The shared corpus's converter (as fresh_voices.py uses it): 16 kHz mono
            # 16-bit, converted once, with the duration and digest of the samples.
            seconds, digest = converter.convert((str(src), str(dst)))  # type: ignore[attr-defined]
            if seconds >= 0.5 and digest not in seen:
                seen.add(digest)
                out.setdefault(lang, []).append(str(dst))
    return out


def split(clips: dict[str, list[str]], seed: int) -> tuple[list[str], list[str], list[str]]:
    stored, replayed, genuine = [], [], []
    for lang, paths in sorted(clips.items()):
        order = paths[:]
        random.Random(f"{seed}|{lang}").shuffle(order)
        stored += order[:STORED]
        replayed += order[:REPLAYED]
        genuine += order[STORED:]
    return stored, replayed, genuine


def design_set(seed: int) -> tuple[list[str], list[np.ndarray], list[tuple[str, np.ndarray]]]:
    """The design set: the stored clips' paths, the genuine clips that share no audio with
    a stored clip, and the named copies of the replayed clips (printing how many)."""
    stored, replayed, genuine_paths = split(unused_clips(), seed)
    shared = confounds(genuine_paths, stored, [], [], seed).genuine_with_stored
    genuine = [load(p) for i, p in enumerate(genuine_paths) if i not in shared]
    made = [c for j, p in enumerate(replayed) for c in copies(load(p), seed, j, ACCEPTANCE)]
    print(
        f"{len(stored)} stored, {len(replayed)} replayed ({len(made)} copies), "
        f"{len(genuine)} genuine ({len(shared)} share audio with a stored clip: left out)"
    )
    return stored, genuine, made


def best_scores(version: int, stored: list[str], queries: list[np.ndarray]) -> np.ndarray:
    """Each query's best exact score over every stored clip (0 when it has no print)."""
    prints = [fingerprint(load(p), version) for p in stored]
    out = []
    for x in queries:
        try:
            out.append(float(best_matches(fingerprint(x, version), prints).max()))
        except AudioError:
            out.append(0.0)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--flags", type=float, default=0.005, help="genuine clips flagged")
    parser.add_argument(
        "--variants", nargs="*", help="only the variants whose names start so (default: all)"
    )
    parser.add_argument(
        "--lookup", action="store_true", help="also the shipped version 2 through the lookup"
    )
    args = parser.parse_args()
    stored, genuine, made = design_set(args.seed)
    names = np.array([name for name, _ in made])
    chosen = (
        [v for v in VARIANTS if v.startswith(tuple(args.variants))] if args.variants else VARIANTS
    )
    for i, label in enumerate(chosen):
        frame, hop, bands, loud_db = VARIANTS[label]
        version = 100 + i  # a plan of the evaluation's own, never stored
        _fingerprint._PLANS[version] = _Plan(frame, hop, bands, loud_db, threshold=0.0)
        progress(label)
        g = best_scores(version, stored, genuine)
        c = best_scores(version, stored, [x for _, x in made])
        allowed = int(args.flags * g.size)
        threshold = float(np.sort(g)[::-1][allowed]) + 1e-6 if allowed < g.size else 0.0
        noisy = np.char.find(names, "5 dB") >= 0
        flagged = rate(int((g >= threshold).sum()), g.size)
        print(
            f"{label:24s} threshold {threshold:6.2f}: flagged {flagged}, "
            f"detected {rate(int((c >= threshold).sum()), c.size)}, "
            f"at 5 dB {rate(int((c[noisy] >= threshold).sum()), int(noisy.sum()))}",
            flush=True,
        )
    if args.lookup:
        lookups(stored, genuine, made)


def lookups(
    stored: list[str], genuine: list[np.ndarray], made: list[tuple[str, np.ndarray]]
) -> None:
    """The shipped version 2 through the shipped lookup (the index's candidates, scored
    exactly), at its threshold, beside the exact scores of every stored clip."""
    threshold = threshold_of(VERSION)
    prints = [fingerprint(load(p)) for p in stored]
    with database(prints) as storage:
        for what, clips in (
            ("genuine flagged", genuine),
            ("copies detected", [x for _, x in made]),
        ):
            found = np.array([_both(storage, prints, x) for x in clips]) >= threshold
            n = len(clips)
            print(
                f"version 2 at {threshold}: {what}: lookup {rate(int(found[:, 0].sum()), n)}, "
                f"every stored clip {rate(int(found[:, 1].sum()), n)}",
                flush=True,
            )


def _both(storage: object, prints: list[Fingerprint], x: np.ndarray) -> tuple[float, float]:
    printed = printed_of(x)
    if printed is None:
        return 0.0, 0.0
    scores, _ = stored_candidates(storage, *printed, EPOCH)  # type: ignore[arg-type]
    return float(scores.max(initial=0.0)), float(best_matches(printed[0], prints).max())


if __name__ == "__main__":
    main()
