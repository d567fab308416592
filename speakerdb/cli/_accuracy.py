"""``speakerdb evaluate``, ``calibrate`` and ``score-norm``: accuracy on the user's own data."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ._common import (
    DbOpt,
    JsonOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    ScoreNormOpt,
    echo,
    examples,
    handles_errors,
    open_db,
    progress,
)

if TYPE_CHECKING:
    from ..decision._calibration import Calibration
    from ..decision._metrics import OpenSetResult
    from ..evaluation._evaluate import EvaluationReport

__all__ = ["calibrate", "evaluate", "score_norm"]

TargetFarOpt = Annotated[
    Optional[float],
    typer.Option(
        "--target-far",
        min=0.0,
        max=1.0,
        help="The share of strangers the thresholds may let in: identify's among all "
        "enrolled speakers, verify's per claim. [default: 0.01]",
        show_default=False,
    ),
]
TrialsOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--trials",
        metavar="FILE",
        help="CSV of labelled trials: enroll_speaker, test_path, target (1 or 0).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``speakerdb`` app."""
    app.command(
        "evaluate",
        epilog=examples(
            "speakerdb evaluate --enroll enroll.csv --test test.csv",
            "speakerdb evaluate --enroll enroll.csv --test test.csv --db speakers.db --det det.png",
        ),
    )(handles_errors(evaluate))
    app.command(
        "calibrate",
        epilog=examples(
            "speakerdb calibrate                      # at most 1% of strangers let in",
            "speakerdb calibrate --target-far 0.005 --dry-run",
        ),
    )(handles_errors(calibrate))
    app.command(
        "score-norm",
        epilog=examples("speakerdb score-norm margin-duration", "speakerdb score-norm none"),
    )(handles_errors(score_norm))


def evaluate(
    enroll: Annotated[
        Path,
        typer.Option("--enroll", metavar="FILE", help="CSV of enrollment clips: speaker, path."),
    ],
    test: Annotated[
        Path,
        typer.Option(
            "--test",
            metavar="FILE",
            help="CSV of test clips: speaker, path (unenrolled = impostor).",
        ),
    ],
    trials: TrialsOpt = None,
    det: Annotated[
        Optional[Path],
        typer.Option(
            "--det", metavar="FILE", help="Write the DET curve to this PNG (needs speakerdb[plot])."
        ),
    ] = None,
    db: Annotated[
        Optional[str],
        typer.Option(
            "--db",
            metavar="DB",
            help="Report open-set results at this database's threshold and use its model. "
            "It is only read. [env SPEAKERDB_DB; default ./speakers.db if it exists "
            "and no model is given (--model or SPEAKERDB_MODEL)]",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            "--threshold", metavar="T", help="The threshold to report open-set results at."
        ),
    ] = None,
    score_norm: ScoreNormOpt = None,
    offline: OfflineOpt = False,
    json: JsonOpt = False,
) -> None:
    """Measure accuracy on labelled clips.

    Runs in a temporary database: yours is only read, never changed.
    """
    from ..evaluation._evaluate import evaluate as run_evaluation
    from ._render import emit_json

    norm, top_n, model, threshold = _evaluation_settings(db, model, threshold, score_norm)
    with progress(_count_rows(enroll) + _count_rows(test), "evaluating") as advance:
        report = run_evaluation(
            enroll,
            test,
            trials,
            model=model,
            threshold=threshold,
            score_norm=norm,
            top_n=top_n,
            det_plot=det,
            local_files_only=True if offline else None,
            progress=advance,
        )
    if json:
        emit_json(report)
    else:
        echo(evaluation_text(report))


def _evaluation_settings(
    db: str | None, model: str | None, threshold: float | None, score_norm: str | None
) -> tuple[str | None, int, str | None, float | None]:
    """Score normalisation, cohort size, model and threshold: from the flags, then ``--db``
    (without either, the score normalisation is the model's default)."""
    from ..config import DEFAULT_DB, ENV_DB, ENV_MODEL
    from ..decision._asnorm import DEFAULT_TOP_N

    if db is None:
        # As every command reads SPEAKERDB_DB, else ./speakers.db: that one only where it
        # exists and no model is asked for (evaluate needs no database of its own). The
        # variable asks as the flag does: read anyway, the database's threshold would be
        # reported for another model's scores.
        asked = model or os.environ.get(ENV_MODEL)
        implicit = not asked and Path(DEFAULT_DB).is_file()
        db = os.environ.get(ENV_DB) or (DEFAULT_DB if implicit else None)
    if db is None:
        return score_norm, DEFAULT_TOP_N, model, threshold
    with open_db(db, model) as database:
        # As identify decides: a --threshold with no --score-norm is a cosine where
        # the database never chose a score.
        policy = database.policy(threshold, score_norm)
        return policy.score_norm, policy.top_n, database.model, policy.threshold


def _count_rows(path: Path) -> int:
    try:
        with path.open(encoding="utf-8-sig") as fh:
            return max(sum(1 for _ in fh) - 1, 0)
    except OSError:
        return 0


def calibrate(
    target_far: TargetFarOpt = None,
    trials: TrialsOpt = None,
    score_norm: ScoreNormOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report the threshold without storing it.")
    ] = False,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    json: JsonOpt = False,
) -> None:
    """Set the thresholds that keep strangers out.

    Identify's threshold lets in at most --target-far of strangers among all the
    enrolled speakers (each enrolled speaker plays the stranger against the others);
    verify's, per claim. Or from a list of labelled trials (--trials).
    """
    from ._render import emit_json

    with open_db(db, model, revision=revision, offline=offline) as database:
        result = database.calibrate(
            target_far=target_far, trials=trials, score_norm=score_norm, apply=not dry_run
        )
    for overridden in result.overridden:
        typer.echo(f"speakerdb: notice: {overridden.notice}", err=True)
    stored = not dry_run and not result.kept_defaults
    if json:
        emit_json({"stored": stored, "calibration": result})
    else:
        echo(calibration_text(result, stored=stored, applied=not dry_run))


def score_norm(
    mode: Annotated[
        str,
        typer.Argument(
            metavar="MODE", help="'none' (raw cosine), 'margin', 'margin-duration' or 'asnorm'."
        ),
    ],
    top_n: Annotated[
        Optional[int],
        typer.Option("--top-n", min=1, help="AS-norm cohort size. [default: 50]"),
    ] = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Choose the score that decides queries.

    'none' (raw cosine), 'margin', 'margin-duration' or 'asnorm', each with its own
    threshold.
    """
    from ..decision._scores import AsNorm, get_norm
    from ._render import emit_json

    with open_db(db) as database:
        mode, size = database.set_score_norm(mode, top_n=top_n)
        threshold = database.policy(score_norm=mode).threshold
    norm = get_norm(mode)
    if json:
        emit_json({"score_norm": mode, "top_n": size, "threshold": threshold})
    elif isinstance(norm, AsNorm):  # the only score with a cohort to describe
        echo(
            f"AS-norm on (cohort: the enrolled population, top {size}); threshold "
            f"{threshold:.3f}; run `speakerdb calibrate` to fit it to your data"
        )
    elif not norm.decides_by_cosine:
        echo(
            f"{mode} scores on ({norm.meaning}); threshold "
            f"{threshold:.3f}; run `speakerdb calibrate` to fit it to your data"
        )
    else:
        echo(f"score normalisation off: raw cosine, threshold {threshold:.4f}")


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.1%}"


def evaluation_text(report: EvaluationReport) -> str:
    """The evaluation report as a few aligned lines."""
    from ._render import safe

    v = report.verification
    lines = [
        f"model {safe(report.model)}, scores: {report.score}; {report.n_speakers} speakers "
        f"enrolled from {report.n_enroll_clips} clips; {report.n_test_items} test clips "
        f"({report.n_impostor_items} of impostors)",
        f"verification ({v.n_target} target, {v.n_nontarget} non-target trials): "
        f"EER {_pct(v.eer)} at {v.eer_threshold:.3f}; minDCF(0.01) {v.min_dcf_01:.3f}, "
        f"minDCF(0.05) {v.min_dcf_05:.3f}",
        f"closed-set identification: top-1 {_pct(report.top1)}, top-5 {_pct(report.top5)}",
    ]
    for point in report.open_set:
        r = point.result
        lines.append(
            f"open-set at the {point.name} threshold {_bar(r)}: correct {_pct(r.correct)}, "
            f"wrong {_pct(r.wrong)}, impostors accepted {_pct(r.impostors_accepted)}"
        )
    if report.calibration_note:
        lines.append(f"no calibrated threshold: {safe(report.calibration_note)}")
    m = report.margins
    lines.append(
        f"median top-1/top-2 margin: correct {_num(m.correct)}, wrong {_num(m.wrong)}, "
        f"impostors {_num(m.impostor)}"
    )
    lines += [
        f"skipped: {safe(s.reason if s.path in s.reason else f'{s.path}: {s.reason}')}"
        for s in report.skipped
    ]
    if report.det_plot:
        lines.append(f"DET plot written to {safe(report.det_plot)}")
    return "\n".join(lines)


def _bar(result: OpenSetResult) -> str:
    from ._render import falling_text

    if not result.duration_fall:
        return f"{result.threshold:.3f}"
    return falling_text(result.threshold, result.duration_fall)


_HOW = {
    "default": "the measured default, kept: too few voices or trials to show a lower one",
    "upper": "as low as the trials show the target, by its 95% upper limit",
}


def calibration_text(result: Calibration, *, stored: bool, applied: bool = True) -> str:
    """What a calibration found, whether it was stored, and the stored thresholds a kept
    default removed (would remove, where not ``applied``)."""
    from ._render import decides_text

    lines = [
        f"{_verb(result, stored)} {result.score} thresholds for at most "
        f"{result.target_far:.1%} of strangers let in, from {result.source} "
        f"({result.n_genuine} genuine scores)"
    ]
    for choice in (result.identify, result.verify):
        # The shares are of strangers, not of the scores counted before: identify's
        # are carried from the best of N - 1 to the database's N speakers.
        among = (
            f"carried to {choice.n_speakers} enrolled speakers"
            if choice.operation == "identify"
            else "per claim"
        )
        how = _HOW.get(choice.method, f"set by the {choice.method} share")
        lines.append(
            f"{choice.operation} {choice.threshold:.4f} ({how}): {choice.named} of "
            f"{choice.n_strangers} stranger scores reach it; strangers let in {among}: "
            f"{_pct(choice.counted)} counted, at most {_pct(choice.upper)} with 95% "
            f"confidence, {_pct(choice.modelled)} by the normal model; genuine clips "
            f"turned away {_pct(choice.frr)}"
        )
    verb = "cleared" if applied else "would clear"
    lines += [
        f"{verb} the {c.operation} threshold stored earlier, {c.value:.4f} "
        f"({decides_text(c.score)}): the default kept above replaces it"
        for c in result.cleared
    ]
    return "\n".join(lines)


def _verb(result: Calibration, stored: bool) -> str:
    if result.kept_defaults:
        return "kept the default (nothing stored):"
    return "calibrated" if stored else "would calibrate"


def _num(value: float) -> str:
    """A median, or "n/a" where there was nothing to take it of."""
    return "n/a" if math.isnan(value) else f"{value:.3f}"
