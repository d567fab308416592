"""What ``scripts/eval_replay.py`` prints of its folds (evaluation only): a rotation's
tables, the false flags at scale with the shared recordings told apart, the rules against
chance matches at scale, and the genuine clips flagged with their matches."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from _rates import rate
from _replay_corpus import load, load_as, short_path
from _replay_figures import Figures, figures
from _replay_fold import Fold
from _replay_lookup import losses_text
from _replay_rules import Rotation, lowest
from _replay_setups import CLEAN, LOOKS_IN, OWN, SCALE
from _replay_transforms import ACCEPTANCE, TRANSFORMS
from _shared_audio import SAME, shared_stretch

from speakerdb.services._replay import MATCH_THRESHOLD, ROWS_PER_KEY


def at_scale_report(name: str, fold: Fold) -> None:
    """The false flags of one fold at the shipped threshold and rows per key, among its
    own stored clips and with its distractors: raw, and free of the corpus's shared
    recordings (genuine clips that share audio with a stored clip left out; distractors
    that share audio with a genuine clip not stored: the clean database); every genuine
    clip flagged with distractors, with what it matched and the waveforms' verdict."""
    print(f"\n#### fold {name} at scale ({', '.join(fold.speakers)})")
    _shared_report(fold)
    rows = ROWS_PER_KEY
    print(f"   at the shipped threshold {MATCH_THRESHOLD:.2f}, {rows} rows per key:")
    for label, scores in (
        ("own database, every genuine clip", fold.genuine[OWN, rows]),
        ("own database, confound-free", fold.confound_free((OWN, rows))),
        ("with distractors, raw", fold.genuine[SCALE, rows]),
        ("with distractors, confound-free", fold.confound_free((CLEAN, rows))),
    ):
        flagged = int((scores >= MATCH_THRESHOLD).sum())
        print(f"   {'genuine flagged, ' + label:52s} {rate(flagged, scores.size)}")
    for db in (OWN, SCALE, CLEAN):
        got = figures(fold, (db, rows), MATCH_THRESHOLD).pooled(ACCEPTANCE)
        print(f"   {'copies detected (issue list), ' + db + ' database':52s} {rate(*got)}")
    extra = [db for db, _ in fold.replay if db in LOOKS_IN]
    for db in extra:
        got = figures(fold, (db, rows), MATCH_THRESHOLD).pooled(ACCEPTANCE)
        print(f"   {'copies detected (issue list), ' + db:52s} {rate(*got)}")
        scores = fold.confound_free((db, rows))
        flagged = int((scores >= MATCH_THRESHOLD).sum())
        print(f"   {'genuine flagged, confound-free, ' + db:52s} {rate(flagged, scores.size)}")
    losses_report(fold, (SCALE, CLEAN, *extra))
    flagged_report(
        fold,
        SCALE,
        "with distractors",
        lambda i: (
            "" if fold.genuine[CLEAN, rows][i] >= MATCH_THRESHOLD else "; not flagged when clean"
        ),
    )


def _shared_report(fold: Fold) -> None:
    """The fold's shared recordings (:class:`~_replay_confounds.Confounds`): how many pairs
    were screened and decided, the screen's checks, and every pair found."""
    shared = fold.shared
    passed, same, made = shared.splices
    missed, checked = shared.rejected
    n_genuine = len(fold.genuine_paths)
    print(
        f"   shared recorded audio (waveforms, not fingerprints: a 0.5 s stretch "
        f"correlating >= {SAME}): of the {shared.compared} pairs of a genuine clip and a "
        f"distractor of its speaker ({n_genuine} x {fold.distractors} in all), the "
        f"screen passed {shared.screened}, all decided; "
        f"checks: spliced 0.6 s copies passed the screen {passed}/{made}, decided the "
        f"same recording {same}/{made}; of the {checked} highest-screened rejected "
        f"pairs, {missed} are the same recording"
    )
    print(
        f"   genuine clips sharing audio with a stored clip: {len(shared.genuine_with_stored)}"
        f"; distractors sharing audio with a genuine clip (not stored in the clean "
        f"database): {len(shared.distractors_shared)} of {fold.distractors}"
    )
    for genuine, other, rev, pair in shared.pairs:
        print(
            f"     {short_path(genuine)} ~ {short_path(other)}{' (reversed)' if rev else ''}:"
            f" corr {pair.corr:.3f} at {pair.query_at:.2f} s / {pair.other_at:.2f} s"
        )


def scale_rules_report(built: dict[str, Fold], max_flags: float) -> None:
    """Two rules against chance matches among many stored clips, each chosen on one
    fold and reported on the other (both rotations), at ROWS_PER_KEY rows per key:

    - a threshold rising with the stored clips, ``T(N) = MATCH_THRESHOLD + b ln(N /
      N0)`` (``N0`` the tuning fold's own database, below it the shipped threshold):
      ``b`` takes the tuning fold's clean database to the first rule's threshold there
      (at most ``max_flags`` of its confound-free genuine clips flagged);
    - a margin: a match must also lead the other candidates' median score by ``m``, the
      smallest (in steps of 0.25) with at most ``max_flags`` of the tuning fold's
      confound-free genuine clips flagged in its clean database.

    Nothing in the library applies either; this tells whether one would carry over."""
    print("\n#### rules against chance matches at scale (not shipped), tuned on one fold")
    for tuned, reported in (("A", "B"), ("B", "A")):
        fold = built[tuned]
        b, m = _scale_rules(fold, max_flags)
        print(
            f"   tuned on fold {tuned}: b = {b:.3f} per unit of ln N (N0 = {fold.sizes[0]}), "
            f"margin m = {m:.2f}; reported on fold {reported}:"
        )
        other = built[reported]
        for i, db in enumerate((OWN, SCALE, CLEAN)):
            rising = MATCH_THRESHOLD + b * max(0.0, math.log(other.sizes[i] / fold.sizes[0]))
            raw = db == SCALE
            g, gm, copies, copy_margins = scores_and_leads(other, db)
            for label, flag, detect in (
                ("shipped", g >= MATCH_THRESHOLD, copies >= MATCH_THRESHOLD),
                (f"rising T = {rising:.2f}", g >= rising, copies >= rising),
                (
                    f"margin {m:.2f}",
                    (g >= MATCH_THRESHOLD) & (gm >= m),
                    (copies >= MATCH_THRESHOLD) & (copy_margins >= m),
                ),
            ):
                where = f"{db} database ({other.sizes[i]} stored{', raw' if raw else ''}),"
                print(
                    f"     {where:35s} {label:18s} genuine flagged "
                    f"{rate(int(flag.sum()), flag.size)}; "
                    f"copies detected {rate(int(detect.sum()), detect.size)}"
                )


def _scale_rules(fold: Fold, max_flags: float) -> tuple[float, float]:
    """:func:`scale_rules_report`'s two rules tuned on ``fold``'s clean database: the
    threshold's rise ``b`` per unit of ln N, and the margin ``m``."""
    rows = ROWS_PER_KEY
    scores = fold.confound_free((CLEAN, rows))
    margins = fold.confound_free((CLEAN, rows), margins=True)
    allowed = math.floor(max_flags * scores.size)
    top = max(MATCH_THRESHOLD, lowest(scores, max_flags))
    b = (top - MATCH_THRESHOLD) / math.log(fold.sizes[2] / fold.sizes[0])
    m = next(
        float(m)
        for m in np.arange(0, 100, 0.25)
        if ((scores >= MATCH_THRESHOLD) & (margins >= m)).sum() <= allowed
    )
    return b, m


def scores_and_leads(fold: Fold, db: str) -> tuple[np.ndarray, ...]:
    """In ``db`` at the shipped rows per key: the genuine clips' best scores and their
    leads (:func:`~_replay_lookup.lead_of`; confound-free, but raw in the :data:`SCALE`
    database), and the copies of the issue's list's."""
    rows = ROWS_PER_KEY
    raw = db == SCALE
    g = fold.genuine[db, rows] if raw else fold.confound_free((db, rows))
    gm = fold.genuine_margin[db, rows] if raw else fold.confound_free((db, rows), True)
    copies = np.concatenate([fold.replay[db, rows][n] for n in ACCEPTANCE])
    leads = np.concatenate([fold.replay_margin[db, rows][n] for n in ACCEPTANCE])
    return g, gm, copies, leads


def losses_report(fold: Fold, dbs: Iterable[str]) -> None:
    """Why the copies of the issue's list missed in each of ``dbs`` at the shipped rows
    per key were missed (:func:`~_replay_lookup.loss_of`)."""
    for db in dbs:
        print(f"   copies of the issue's list missed in the {db} database, by why:")
        for line in losses_text(fold.losses[db, ROWS_PER_KEY]):
            print(f"     {line}")


def flagged_report(fold: Fold, db: str, where: str, note: Callable[[int], str]) -> None:
    """Every genuine clip flagged in ``db`` at the shipped lookup, its match, and whether
    the two share recorded audio, decided from the waveforms over every alignment;
    ``note(i)`` ends genuine clip ``i``'s line."""
    rows = ROWS_PER_KEY
    print(f"   genuine clips flagged {where} (fingerprint score; the matched clip):")
    for i, score in enumerate(fold.genuine[db, rows]):
        source = fold.matches[db, rows][i]
        if score < MATCH_THRESHOLD or source is None:
            continue
        kind, path, rev = source
        corr, g_at, o_at = shared_stretch(load(fold.genuine_paths[i]), load_as(path, rev))
        print(
            f"     {short_path(fold.genuine_paths[i])} {score:6.2f} ~ {kind} "
            f"{short_path(path)}{' (reversed)' if rev else ''}: waveform corr {corr:.3f} "
            f"({'same recording' if corr >= SAME else 'no shared recording'}; at "
            f"{g_at:.2f} s / {o_at:.2f} s){note(i)}"
        )


def report(title: str, tuned: Figures, shipped: Figures) -> None:
    print(f"\n== {title} ==")
    print(f"   thresholds: tuned {tuned.threshold:.2f}, shipped {shipped.threshold:.2f}")
    print(
        f"   {'copies detected':34s} {'at the tuned threshold':>33s}   "
        f"{'at the shipped threshold':>33s}   {'exact own clip (no index), shipped':>33s}"
    )
    for name in TRANSFORMS:
        extra = "" if name in ACCEPTANCE else " *"
        print(
            f"   {name + extra:34s} {rate(*tuned.detected[name])}   "
            f"{rate(*shipped.detected[name])}   {rate(*shipped.exact_detected[name])}"
        )
    for label, names in (("ALL, the issue's list", ACCEPTANCE), ("ALL, with *", TRANSFORMS)):
        print(f"   {label:34s} {rate(*tuned.pooled(names))}   {rate(*shipped.pooled(names))}")
    for label in tuned.noisy_by_seconds:
        print(
            f"   {'noisy copies, clips ' + label:34s} {rate(*tuned.noisy_by_seconds[label])}"
            f"   {rate(*shipped.noisy_by_seconds[label])}"
        )
    print(f"   {'genuine new clips flagged':34s} {rate(*tuned.flagged)}   {rate(*shipped.flagged)}")
    print(
        "   targets (>= 95% of the issue's list detected, <= 1% genuine flagged): "
        f"tuned {'MET' if tuned.meets_targets() else 'NOT MET'}, "
        f"shipped {'MET' if shipped.meets_targets() else 'NOT MET'}"
    )
    print("   * not in the issue's list")


def rotation_report(rotations: list[Rotation]) -> None:
    """Each rotation of :func:`~_replay_rules.replay_figures`: the tuning fold's choice of
    rows per key, the chosen setup's tables, and every setup in short."""
    for title, lines, tables in rotations:
        print(f"\n#### {title}")
        for line in lines:
            print(f"   tuning fold, with distractors: {line}")
        for name, tuned, shipped in tables:
            if name.endswith("(chosen)"):
                report(name, tuned, shipped)
        print("\n   in short (the issue's list detected; genuine clips flagged):")
        for name, tuned, shipped in tables:
            print(f"   {name:48s} tuned {tuned.threshold:5.2f}: {_in_short(tuned)}")
            print(f"   {'':48s} shipped {shipped.threshold:.2f}: {_in_short(shipped)}")


def _in_short(got: Figures) -> str:
    k, n = got.pooled(ACCEPTANCE)
    flagged = (
        f"{got.flagged[0]}/{got.flagged[1]} = {100 * got.flagged[0] / max(got.flagged[1], 1):.2f}%"
    )
    return f"{k}/{n} = {100 * k / max(n, 1):.2f}% detected, {flagged} flagged"
