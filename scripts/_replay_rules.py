"""The choice rules of ``scripts/eval_replay.py`` (evaluation only), each fixed before the
reported fold is looked at: the threshold (:func:`tune`), the rows read per key
(:func:`choose_rows`) and the share of the stored clips scored (:func:`choose_share`);
and the two rotations that apply the first two (:func:`replay_figures`)."""

from __future__ import annotations

import argparse
import math

import numpy as np
from _rates import rate
from _replay_corpus import FOLDS, load, progress
from _replay_figures import Figures, figures
from _replay_fold import Fold, build_fold, distractors, fold_paths
from _replay_lookup import database, printed_of, scored_count, scored_most
from _replay_setups import OWN, ROWS_CHOICES, SCALE, SETUPS, Setup
from _replay_transforms import ACCEPTANCE, copies

from speakerdb.audio import Fingerprint, fingerprint
from speakerdb.services._replay import MATCH_THRESHOLD, ROWS_PER_KEY

#: The shares of the stored clips scored exactly that the third rule picks from
#: (:data:`SCORED_SHARE`; 0: the ten best-voted, the previous lookup).
SHARE_CHOICES = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.04)


def choose_share(speakers: list[str], args: argparse.Namespace) -> tuple[float, list[str]]:
    """The third choice rule, on the tuning fold's replayed copies (no genuine clip is
    looked up): the smallest share of :data:`SHARE_CHOICES` whose detection of the
    issue's list in the fold's database with its distractors, at the shipped threshold
    and rows per key, is at most ``args.tolerance`` below the detection in its own
    database (the largest when none is); and a line per share saying what it gave."""
    stored_paths, replayed, _, spare = fold_paths(speakers, args)
    prints = [fingerprint(load(p)) for p in stored_paths]
    progress(f"{', '.join(speakers)}: fingerprints of the distractors")
    others = distractors(spare, args.distractors, args.seed)[0]
    found = _found_by_share(prints, others, replayed, args.seed)
    return _smallest_share(found, len(prints + others), args.tolerance)


def _found_by_share(
    prints: list[Fingerprint], others: list[Fingerprint], replayed: list[str], seed: int
) -> dict[tuple[str, float], list[bool]]:
    """Per database (own, with the distractors) and share of :data:`SHARE_CHOICES`,
    whether each copy of the issue's list is detected at the shipped threshold."""
    found: dict[tuple[str, float], list[bool]] = {}
    with database(prints) as small, database(prints + others) as large:
        for db, storage, size in ((OWN, small, len(prints)), (SCALE, large, len(prints + others))):
            progress(f"looking up the copies among {size} stored clips")
            for j, path in enumerate(replayed):
                x = load(path)
                for _, samples in copies(x, seed, j, ACCEPTANCE):
                    scores = scored_most(storage, printed_of(samples))
                    for share in SHARE_CHOICES:
                        best = scores[: scored_count(size, share)].max(initial=0.0)
                        found.setdefault((db, share), []).append(best >= MATCH_THRESHOLD)
    return found


def _smallest_share(
    found: dict[tuple[str, float], list[bool]], stored: int, tolerance: float
) -> tuple[float, list[str]]:
    """The third rule's choice from :func:`_found_by_share` (``stored``: the fingerprints
    with the distractors), and a line per share saying what it gave."""
    lines, chosen = [], None
    for share in SHARE_CHOICES:
        own, scale = (found[db, share] for db in (OWN, SCALE))
        k, n = sum(scale), len(scale)
        ok = k / n >= sum(own) / n - tolerance
        lines.append(
            f"share {100 * share:5.2f}% ({scored_count(stored, share)} of "
            f"{stored} scored): {rate(k, n)} with distractors, "
            f"{rate(sum(own), n)} own database{'  within tolerance' if ok else ''}"
        )
        if chosen is None and ok:
            chosen = share
    return (SHARE_CHOICES[-1] if chosen is None else chosen), lines


def tune(fold: Fold, setup: Setup, max_flags: float) -> float:
    """The choice rule: the lowest threshold flagging at most ``max_flags`` of the
    tuning fold's genuine clips."""
    return lowest(fold.genuine[setup], max_flags)


def lowest(scores: np.ndarray, max_flags: float) -> float:
    best = np.sort(scores)
    allowed = math.floor(max_flags * best.size)
    # Just above the (allowed + 1)-th highest genuine score.
    return float(best[best.size - allowed - 1]) + 1e-6


def choose_rows(fold: Fold, threshold: float, tolerance: float) -> tuple[int | None, list[str]]:
    """The second choice rule, on the tuning fold with its distractors stored: the fewest
    rows per key (of :data:`ROWS_CHOICES`) whose detection of the issue's list at
    ``threshold`` (the first rule's, from the fold's own database) is at most
    ``tolerance`` below reading every row (``None``, every row, when none is); and a line
    per choice saying what it gave. Genuine clips' flags do not enter it: among the
    distractors some share recorded audio with them (see :func:`replay_figures`)."""

    def detected(rows: int | None) -> float:
        k, n = figures(fold, (SCALE, rows), threshold).pooled(ACCEPTANCE)
        return k / max(n, 1)

    every = detected(None)
    lines, chosen = [f"every row: {100 * every:.2f}% detected at {threshold:.2f}"], None
    for rows in ROWS_CHOICES:
        share = detected(rows)
        lines.append(f"{rows} rows per key: {100 * share:.2f}% detected")
        if chosen is None and share >= every - tolerance:
            chosen = rows
    return chosen, lines


Rotation = tuple[str, list[str], list[tuple[str, Figures, Figures]]]


def replay_figures(
    seed: int = 1234,
    recent: int = 30,
    genuine: int = 60,
    replays: int = 8,
    tune_flags: float = 0.005,
    distractors: int = 8000,
    tolerance: float = 0.005,
) -> tuple[list[Rotation], dict[str, Fold]]:
    """For each rotation (tuned on A reported on B, then the reverse): a title naming
    the speakers, the second rule's choice of rows per key on the tuning fold, and for
    the reported fold with and without its distractors (and reading every row, the old
    lookup), the figures at the threshold the first rule took from the tuning fold's own
    database, and at the shipped threshold. With distractors, a genuine clip that is
    flagged may share recorded audio with a distractor (the corpus's prompts reuse
    recordings: retuned there, the first rule chose thresholds of 27 and 55), so those
    flags are an upper bound and no rule is tuned on them (:func:`at_scale_report` tells
    them apart). The built folds come with the rotations."""
    args = argparse.Namespace(
        seed=seed,
        recent=recent,
        genuine=genuine,
        genuine_from=0,
        replays=replays,
        replays_from=0,  # the first stored clips, as before --replays-from
        tune_flags=tune_flags,
        distractors=distractors,
    )
    built = {name: build_fold(members, args) for name, members in FOLDS.items()}
    rotations = [
        _rotation(built, tuned, reported, tune_flags, tolerance)
        for tuned, reported in (("A", "B"), ("B", "A"))
    ]
    return rotations, built


def _rotation(
    built: dict[str, Fold], tuned: str, reported: str, tune_flags: float, tolerance: float
) -> Rotation:
    """One rotation of :func:`replay_figures`: tuned on fold ``tuned``, reported on fold
    ``reported``."""
    threshold = tune(built[tuned], (OWN, None), tune_flags)
    rows, lines = choose_rows(built[tuned], threshold, tolerance)
    title = (
        f"tuned on fold {tuned} ({', '.join(FOLDS[tuned])}; "
        f"{built[tuned].genuine[SETUPS[0]].size} genuine clips), reported on fold "
        f"{reported} ({', '.join(FOLDS[reported])}; {built[reported].stored} stored "
        f"clips, {built[reported].distractors} distractors)"
    )
    lines.append(f"chosen: {rows} rows per key (shipped: {ROWS_PER_KEY})")
    tables = []
    for db in (OWN, SCALE):
        for r in dict.fromkeys((rows, ROWS_PER_KEY, None)):
            setup = (db, r)
            name = (
                f"{'with' if db == SCALE else 'without'} distractors, "
                f"{'every row' if r is None else f'{r} rows per key'}"
                f"{' (chosen)' if r == rows else ''}"
            )
            shipped = figures(built[reported], setup, MATCH_THRESHOLD)
            tables.append((name, figures(built[reported], setup, threshold), shipped))
    return title, lines, tables
