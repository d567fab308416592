"""Pre-registered test: a replay score that accounts for how many alignments a pair offers.

**Why.** The replay check's score (:mod:`speakerdb.audio._fingerprint`) is the best
z-score over every alignment of a query and a stored clip. A short query against a long
stored clip is compared at many more alignments than a copy against its source (a 0.6 s
digit inside a 70 s prompt: about 60 times as many), and the best of more alignments is
higher by chance. Looking for the cause of the genuine clips flagged (session 12, 13:02-13:20
UTC: brute-force exact scores of genuine clips 1-480 of **both** folds against every
stored clip of their fold, so the data below used for the *choice* is not clean), most
pairs over the threshold that share no recorded audio were a clip of 0.5-1.1 s inside a
stored clip of 4-70 s, often of another voice. A per-segment evenness statistic and a
peak-to-sidelobe lead did not separate them from copies; the length of the pair did.

**The family.** ``adjusted = z - b * mismatch``, with ``mismatch = ln((a + s) / (2
min(a, s)))`` over the loud spans of the two fingerprints
(:func:`mismatch`: 0 for a copy of its source's length). A
query is a replay when the best adjusted score among the shipped lookup's candidates
(``CANDIDATES`` best-voted, ``ROWS_PER_KEY``) reaches ``MATCH_THRESHOLD`` (7.5). Nothing
else changes.

**The choice rule** (``--choose``), fixed at 13:22 UTC before any figure of this script:
on the tuning fold's own database (per speaker its 3 enrollment clips and 30 kept clips,
as ``eval_replay.py``), with genuine clips 1-480 and copies of stored clips 1-24 (the
issue's list), ``b`` is the smallest of :data:`B_CHOICES` whose confound-free genuine
clips flagged are at most 0.5% and whose detection is at least that at ``b = 0`` less
0.5 points (the largest when none is). Rotation 1 tunes on fold A (the convention),
rotation 2 on fold B.
Chosen (13:42 UTC, before the test ran; detection is the same at every ``b``, since a
copy has its source's length): **rotation 1, fold A: b = 0.5** (flags 19/2,626 0.72% at
b = 0, 10 at 0.5, 7 at 1, 5 at 1.5, 4 at 2, 3 at 3; detected 1,668/1,728 96.53%);
**rotation 2, fold B: b = 1.0** (20/2,204 0.91% at b = 0, 13 at 0.5, 10 at 1, 6 at 1.5
and 2, 5 at 3; detected 1,406/1,440 97.64%).

**The test** (``--test``), on data no run has used: genuine clips 481 onwards
(``--genuine-from 480``, every one left: the test's counts are what the corpus has) and
copies of stored clips 25-33 (``--replays-from 24 --replays 9``). Rotation 1's ``b`` is
reported on fold B and rotation 2's on fold A, with ``b = 0`` (the shipped check) beside
them. **Criteria**, each rotation on its reported fold, all required: (1) at most 1%
(point estimate) of the confound-free genuine clips flagged; (2) at least 95% of the
copies of the issue's list detected. If all are met, rotation 1's ``b`` ships in
``speakerdb.audio._fingerprint``; if any misses, the figures are reported as they are and nothing
ships or is retuned. The extra copies (cut, padded, a sub-segment) are reported, not
judged. Confounds (genuine clips that share recorded audio with a stored clip) are
decided from the waveforms, never the fingerprint (``_replay_confounds.confounds``,
split out of ``eval_replay.py``).

**Result** (13:45-13:52 UTC; ``--test 0.5 1.0``): **not met, not shipped** (so
:func:`mismatch` lives here, not in the library).

| reported fold (fresh data) | b | the issue's list detected | genuine flagged, no confound |
|---|---|---|---|
| B (rotation 1) | 0 (shipped) | 526/540, 97.41% [95.70, 98.45] | 0/192, 0.00% [0.00, 1.96] |
| **B (rotation 1)** | **0.5** | **526/540, 97.41%** | **0/192, 0.00% ✔** |
| A (rotation 2) | 0 (shipped) | 623/648, 96.14% [94.37, 97.37] | **15/812, 1.85% [1.12, 3.03]** |
| **A (rotation 2)** | **1.0** | **623/648, 96.14%** | **10/812, 1.23% [0.67, 2.25] ✘** |
| A (not held out) | 0.5 | 623/648, 96.14% | 12/812, 1.48% [0.85, 2.57] |

Extra copies (cut, padded, a sub-segment): B 133/135, A 160/162 at every b. Fold A's
fresh clips are mostly allison's (540 of 812: the other voices had few left), and 14 of
the 15 clips the shipped check flags are hers (the script now prints flags by voice and
duration; this line first said 13, a miscount of a listing): short prompts (0.6-1.0 s) matched with
other short prompts, mostly of her own voice, where the lengths differ little (mismatch
0.01-0.8), so the penalty cannot remove them. The shipped check's own-database flags on
fold A over the three fresh slices (241-360, 361-480, 481+) are now 26/2,001, 1.30%
[0.89, 1.90]; fold B 9/1,198, 0.75%.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from _rates import rate
from _replay_confounds import confounds
from _replay_corpus import FOLDS, load, progress
from _replay_crowd import speaker_of
from _replay_fold import fold_paths
from _replay_lookup import EPOCH, Printed, database, printed_of
from _replay_transforms import ACCEPTANCE, TRANSFORMS, copies

from speakerdb.audio._fingerprint import Fingerprint, fingerprint
from speakerdb.services._replay import MATCH_THRESHOLD, stored_candidates
from speakerdb.storage import Storage

#: The penalties the choice rule picks from, per unit of mismatch.
B_CHOICES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
TUNE_FLAGS = 0.005
TOLERANCE = 0.005


@dataclass
class Lookups:
    """Each looked-up clip's candidates: raw exact scores and their mismatch."""

    copies: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    genuine: list[tuple[np.ndarray, np.ndarray]]
    confounded: set[int]
    genuine_paths: list[str]

    def detected(self, b: float, names: Sequence[str]) -> tuple[int, int]:
        found = [_hit(c, b) for name in names for c in self.copies[name]]
        return sum(found), len(found)

    def flagged(self, b: float) -> tuple[int, int]:
        clean = [c for i, c in enumerate(self.genuine) if i not in self.confounded]
        return sum(_hit(c, b) for c in clean), len(clean)

    def flagged_by(self, b: float) -> list[str]:
        """The confound-free genuine clips flagged at ``b``, by voice and by duration (under
        1 s or not), against how many of each were looked up: a description, not a test."""
        clean = [i for i in range(len(self.genuine)) if i not in self.confounded]
        groups: dict[str, list[int]] = {}
        for i in clean:
            seconds = sf.info(self.genuine_paths[i]).duration
            groups.setdefault(speaker_of(self.genuine_paths[i]), []).append(i)
            groups.setdefault("under 1 s" if seconds < 1 else "1 s or more", []).append(i)
        return [
            f"    {group:24s} {rate(sum(_hit(self.genuine[i], b) for i in ids), len(ids))}"
            for group, ids in sorted(groups.items())
        ]


def _hit(candidates: tuple[np.ndarray, np.ndarray], b: float) -> bool:
    scores, apart = candidates
    return bool(scores.size) and float(np.max(scores - b * apart)) >= MATCH_THRESHOLD


def candidates(storage: Storage, printed: Printed) -> tuple[np.ndarray, np.ndarray]:
    """The shipped lookup's candidates for a query: their exact scores and their
    :func:`mismatch` with it, both empty for a query with no fingerprint or no candidate."""
    if printed is None:
        return np.zeros(0), np.zeros(0)
    scores, hits = stored_candidates(storage, *printed, EPOCH)
    if not hits:
        return np.zeros(0), np.zeros(0)
    return scores, mismatch(printed[0], [Fingerprint.from_bytes(h.data) for h in hits])


def mismatch(query: Fingerprint, stored: Sequence[Fingerprint]) -> np.ndarray:
    """How many more alignments each pair offers than two clips of the shorter's length:
    ``ln((a + b) / (2 min(a, b)))`` over the spans from first to last loud step (so
    silence padding adds none); 0 for equal lengths, float64 ``(len(stored),)``."""
    mine = _span(query)
    spans = np.array([_span(fp) for fp in stored], dtype=np.float64)
    return np.log((mine + spans) / (2 * np.minimum(mine, spans)))


def _span(printed: Fingerprint) -> int:
    loud = np.flatnonzero(printed.mask)
    return int(loud[-1] - loud[0] + 1) if loud.size else 1


def look_up(speakers: list[str], args: argparse.Namespace) -> Lookups:
    stored_paths, replayed, genuine_paths, _ = fold_paths(speakers, args)
    progress(f"{len(stored_paths)} stored, {len(replayed)} replayed, {len(genuine_paths)} genuine")
    prints = [fingerprint(load(p)) for p in stored_paths]
    progress("looking for shared recorded audio (waveforms)")
    shared = confounds(genuine_paths, stored_paths, [], [], args.seed)
    found_copies: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in TRANSFORMS}
    with database(prints) as storage:
        progress("looking up copies")
        for j, path in enumerate(replayed):
            x = load(path)
            for name, copy in copies(x, args.seed, j):
                found_copies[name].append(candidates(storage, printed_of(copy)))
        progress("looking up genuine clips")
        genuine = [candidates(storage, printed_of(load(p))) for p in genuine_paths]
    return Lookups(found_copies, genuine, shared.genuine_with_stored, genuine_paths)


def choose(found: Lookups) -> tuple[float, list[str]]:
    base = found.detected(0.0, ACCEPTANCE)
    lines, chosen = [], None
    for b in B_CHOICES:
        det, flags = found.detected(b, ACCEPTANCE), found.flagged(b)
        ok = flags[0] <= TUNE_FLAGS * flags[1] and det[0] / det[1] >= base[0] / base[1] - TOLERANCE
        lines.append(f"  b = {b:3.1f}: detected {rate(*det)}  flagged {rate(*flags)}  {'ok' * ok}")
        if ok and chosen is None:
            chosen = b
    return (B_CHOICES[-1] if chosen is None else chosen), lines


def figures(found: Lookups, b: float) -> list[str]:
    extra = [name for name in TRANSFORMS if name not in ACCEPTANCE]
    return [
        f"  b = {b:3.1f}: the issue's list detected {rate(*found.detected(b, ACCEPTANCE))}",
        f"           extra copies detected    {rate(*found.detected(b, extra))}",
        f"           genuine flagged (no confound) {rate(*found.flagged(b))}"
        f"  ({len(found.confounded)} confounded left out), by voice and duration:",
        *found.flagged_by(b),
    ]


def met(found: Lookups, b: float) -> bool:
    det, flags = found.detected(b, ACCEPTANCE), found.flagged(b)
    return flags[0] <= 0.01 * flags[1] and det[0] >= 0.95 * det[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", default="AB", help="which folds to look up")
    parser.add_argument("--choose", action="store_true", help="the choice rule (clips 1-480)")
    parser.add_argument(
        "--test",
        nargs=2,
        type=float,
        metavar=("B_A", "B_B"),
        help=("the pre-registered test: rotation 1's b (tuned on A, reported on B), rotation 2's"),
    )
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    args.recent = 30
    if args.choose:
        args.genuine_from, args.genuine, args.replays_from, args.replays = 0, 480, 0, 24
    elif args.test:
        args.genuine_from, args.genuine, args.replays_from, args.replays = 480, 700, 24, 9
    else:
        parser.error("give --choose or --test")
    for fold in args.folds:
        found = look_up(FOLDS[fold], args)
        if args.choose:
            b, lines = choose(found)
            print(f"fold {fold} (tuning), own database: chooses b = {b}", *lines, sep="\n")
            continue
        rotation_b = args.test[0] if fold == "B" else args.test[1]
        print(f"fold {fold} (reported), own database, fresh data:", *figures(found, 0.0), sep="\n")
        print(*figures(found, rotation_b), sep="\n")
        print(f"  criteria at b = {rotation_b}: {'met' if met(found, rotation_b) else 'NOT met'}")
        if rotation_b != args.test[0]:
            print(
                *figures(found, args.test[0]),
                "  (rotation 1's b on its own tuning fold's speakers: not a held-out figure)",
                sep="\n",
            )


if __name__ == "__main__":
    main()
