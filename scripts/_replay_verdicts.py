"""The pre-registered tests of ``scripts/eval_replay.py`` (evaluation only), each judged
on every fold by criteria fixed before its data was looked at: the margin rule, the
other-voice crowd and the suspect-aware check (the protocols: eval_replay's docstring)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from _rates import rate
from _replay_crowd import CROWD_SIZE, matched_voices, speaker_of, voices_stored
from _replay_figures import figures
from _replay_fold import Fold
from _replay_reports import flagged_report, losses_report, scores_and_leads
from _replay_setups import CLEAN, OTHER, OWN, SCALE, SUSPECT
from _replay_transforms import ACCEPTANCE

from speakerdb.services._replay import MATCH_THRESHOLD, ROWS_PER_KEY

#: The margin of the pre-registered test (fold A's choice on genuine clips 1-120).
PREREGISTERED_MARGIN = 8.5


def margin_rule_report(built: dict[str, Fold], m: float, span: tuple[int, int]) -> bool:
    """The margin rule (best >= MATCH_THRESHOLD and best - median(others) >= ``m``) on each
    fold at ROWS_PER_KEY rows per key, nothing tuned: genuine clips flagged (confound-free
    in the own and clean databases, raw at scale) and copies of the issue's list detected,
    with the pre-registered criteria; whether all are met (see the module docstring).
    ``span``: which genuine clips of each speaker's seeded order were looked up (the test
    is those after the first 120)."""
    test = span[0] >= 120
    what = "PRE-REGISTERED TEST" if test else "NOT part of the test (m was chosen here)"
    print(f"\n#### margin rule m = {m:.2f}, threshold {MATCH_THRESHOLD:.2f}: {what}")
    met = True
    for name, fold in built.items():
        clips = f"{len(fold.genuine_paths)} genuine clips, {span[0] + 1}-{span[1]} of each speaker"
        print(f"   fold {name} ({clips}):")
        for i, db in enumerate((OWN, SCALE, CLEAN)):
            raw = db == SCALE
            g, gm, copies, leads = scores_and_leads(fold, db)
            flag = (g >= MATCH_THRESHOLD) & (gm >= m)
            found = (copies >= MATCH_THRESHOLD) & (leads >= m)
            ok = raw or (flag.sum() <= 0.01 * flag.size and found.sum() >= 0.95 * found.size)
            met &= ok
            where = f"{db} ({fold.sizes[i]} stored{', raw: not judged' if raw else ''})"
            print(
                f"     {where:37s} genuine flagged {rate(int(flag.sum()), flag.size)}; "
                f"copies detected {rate(int(found.sum()), found.size)}"
                f"{'' if raw else ('  MET' if ok else '  NOT MET')}"
            )
    verdict = "MET" if met else "NOT MET"
    print(f"   every criterion (<= 1% flagged, >= 95% detected; own, clean): {verdict}")
    return met


def suspect_report(name: str, fold: Fold, skipped: int, replays: int) -> bool:
    """The pre-registered test of the suspect-aware check on one fold (the module
    docstring): the shipped check and the suspect-aware one in the fold's own and
    other-voice databases, confound-free genuine clips flagged and copies of the issue's
    list detected, the suspect-aware ones judged; why copies were missed; every genuine
    clip the suspect-aware check flags, with the waveforms' verdict. ``skipped`` and
    ``replays``: which stored clips of each speaker were copied (a speaker with fewer
    than ``skipped + replays`` stored has fewer copied). Whether all four criteria are met."""
    title = f"fold {name}, suspect-aware check: PRE-REGISTERED TEST"
    print(f"\n#### {title} ({', '.join(fold.speakers)})")
    _suspect_data_report(fold, skipped, replays)
    labels = {
        OWN: "own, shipped",
        "own, suspect-aware": "own, suspect-aware",
        OTHER: "other-voice, shipped",
        "other voices, suspect-aware": "other-voice, suspect-aware",
        CLEAN: "same-voice clean, shipped",
    }
    met = _judged(
        fold,
        [
            (db, label + ("" if db in SUSPECT else " (not judged)"), db in SUSPECT)
            for db, label in labels.items()
        ],
    )
    losses_report(fold, (OTHER, *SUSPECT))
    for db in SUSPECT:
        flagged_report(fold, db, f"by the suspect-aware check ({db})", _left_out(fold))
    verdict = "MET" if met else "NOT MET"
    print(f"   fold {name}: the four criteria of the suspect-aware check: {verdict}")
    return met


def _suspect_data_report(fold: Fold, skipped: int, replays: int) -> None:
    """The suspect-aware test's data on ``fold``: per speaker, the stored clips (the
    suspect's prints), those copied and the genuine clips; and what was left out."""
    genuine = Counter(speaker_of(p) for p in fold.genuine_paths)
    held = Counter(speaker_of(p) for p in fold.stored_files[OWN])
    for spk in fold.speakers:
        print(
            f"   {spk:22s} stored {held[spk]:3d} (the suspect's prints), copied "
            f"{min(replays, max(0, held[spk] - skipped))} stored clips, "
            f"{genuine[spk]} genuine clips"
        )
    print(
        f"   {len(fold.genuine_paths)} genuine clips, {len(fold.shared.genuine_with_stored)} "
        f"sharing recorded audio with a stored clip left out; other-voice database "
        f"{len(fold.stored_files[OTHER])} stored"
    )


def crowd_report(name: str, fold: Fold) -> bool:
    """The pre-registered test of the other-voice crowd on one fold (the module
    docstring), at the shipped threshold, rows per key and candidates, nothing tuned:
    confound-free genuine clips flagged and copies of the issue's list detected in each
    database (only the other-voice one judged), why copies were missed, every genuine
    clip flagged among the other voices with the waveforms' verdict on its match, and
    whose voice each flagged clip matched. Whether both criteria are met."""
    crowd = len(fold.stored_files[OTHER]) - fold.stored
    left_out = len(fold.shared.genuine_with_stored)
    print(
        f"\n#### fold {name}, other voices' crowd: PRE-REGISTERED TEST ({', '.join(fold.speakers)})"
    )
    print(
        f"   {len(fold.genuine_paths)} genuine clips, {left_out} sharing recorded audio with a "
        f"stored clip left out; crowd: {crowd} fingerprints of the other fold's voices "
        f"(protocol: {CROWD_SIZE[name]}{'' if crowd == CROWD_SIZE[name] else ', or all there are'})"
        f"; same-voice clean database: {fold.sizes[2] - fold.stored} distractors"
    )
    labels = {OWN: "own", CLEAN: "same-voice clean", OTHER: "other-voice"}
    stored = {db: f"{len(fold.stored_files[db])} stored" for db in labels}
    met = _judged(
        fold,
        [
            (db, f"{label} ({stored[db]}{'' if db == OTHER else ', not judged'})", db == OTHER)
            for db, label in labels.items()
        ],
    )
    losses_report(fold, (CLEAN, OTHER))
    flagged_report(fold, OTHER, "among other voices", _left_out(fold))
    for db in (CLEAN, OTHER):
        _voices_report(fold, db)
    print(
        f"   fold {name}: <= 1% flagged and >= 95% detected among other voices: "
        f"{'MET' if met else 'NOT MET'}"
    )
    return met


def _judged(fold: Fold, lines: list[tuple[str, str, bool]]) -> bool:
    """For each ``(db, label, judge)``: a line ``label`` with the confound-free genuine
    clips flagged and the copies of the issue's list detected in ``db`` at the shipped
    lookup, and when ``judge`` the verdict (at most 1% flagged, at least 95% detected);
    whether every database judged meets both."""
    rows, met = ROWS_PER_KEY, True
    for db, label, judge in lines:
        flags = fold.confound_free((db, rows)) >= MATCH_THRESHOLD
        found = figures(fold, (db, rows), MATCH_THRESHOLD).pooled(ACCEPTANCE)
        ok = bool(flags.sum() <= 0.01 * flags.size and found[0] >= 0.95 * found[1])
        met &= ok or not judge
        print(
            f"   {label:44s} genuine flagged {rate(int(flags.sum()), flags.size)}; "
            f"copies detected {rate(*found)}{('  MET' if ok else '  NOT MET') if judge else ''}"
        )
    return met


def _left_out(fold: Fold) -> Callable[[int], str]:
    """The note ending a flagged genuine clip's line when it shares recorded audio with a
    stored clip of the fold (so its flag is not counted)."""
    with_stored = fold.shared.genuine_with_stored
    return lambda i: " (shares audio with a stored clip: left out)" if i in with_stored else ""


def _voices_report(fold: Fold, db: str) -> None:
    """Whose voice the confound-free genuine clips flagged in ``db`` matched (their own
    or another's), beside how many stored fingerprints of each the database held."""
    rows = ROWS_PER_KEY
    pairs = [
        (fold.genuine_paths[i], source[1])
        for i, (score, source) in enumerate(zip(fold.genuine[db, rows], fold.matches[db, rows]))
        if score >= MATCH_THRESHOLD
        and source is not None
        and i not in fold.shared.genuine_with_stored
    ]
    held = voices_stored(fold.stored_files[db], fold.speakers)
    voices = matched_voices(pairs)
    print(
        f"   whose voice the confound-free genuine clips flagged in the {db} database "
        f"matched: own voice {voices['own']}, another voice {voices['other']}"
    )
    for spk, (own, other) in held.items():
        mine = matched_voices((g, m) for g, m in pairs if speaker_of(g) == spk)
        print(
            f"     {spk:22s} stored prints of this voice {own:5d}, of other voices "
            f"{other:5d}; flagged matching own voice {mine['own']}, another {mine['other']}"
        )
