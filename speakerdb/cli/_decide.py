"""``speakerdb identify`` and ``verify``: the two questions, their answers rendered and
their exit codes (0 yes, 1 no, 2 error, 3 not enough speech)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    EXIT_ERROR,
    EXIT_NEGATIVE,
    EXIT_NOT_ENOUGH_SPEECH,
    BackendOpt,
    ClipsArg,
    DbOpt,
    JsonOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    ScoreNormOpt,
    ThresholdOpt,
    echo,
    examples,
    handles_errors,
    name_arg,
    open_db,
)
from ._membership import GroupOpt

__all__ = ["identify", "register", "verify"]


def register(app: typer.Typer) -> None:
    """Add ``identify`` and ``verify`` to the ``speakerdb`` app."""
    app.command(
        "identify",
        epilog=examples(
            "speakerdb identify visitor.wav",
            "speakerdb identify a.wav b.flac --top-k 3 --json",
            "speakerdb identify visitor.wav --group door-a   # only door-a's members",
        ),
    )(handles_errors(identify))
    app.command(
        "verify",
        epilog=examples(
            "speakerdb verify alice door.wav && echo welcome",
            "speakerdb verify alice door.wav --threshold 0.8 --json",
            "speakerdb verify alice door.wav --group door-a   # rejected unless alice is in it",
        ),
    )(handles_errors(verify))


def identify(
    clips: ClipsArg,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Candidates to list.")] = 5,
    threshold: ThresholdOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    backend: BackendOpt = None,
    score_norm: ScoreNormOpt = None,
    group: GroupOpt = None,
    json: JsonOpt = False,
) -> None:
    """Say who speaks in each clip, or 'unknown'.

    'unknown' when the best score is below the threshold; 'not_enough_speech' or
    'replay' when a check refuses to decide by the score. Exit 0, or 1 when some
    clips failed, 2 when all did, 3 when every clip had too little speech.
    """
    from ..errors import AudioError, error_document
    from ..types import Outcome
    from ._fixes import CLI_FIXES, cli_message
    from ._render import emit_json, identification_text, safe, to_jsonable

    results: list[Any] = []
    failed = short = answered = 0
    with open_db(db, model, revision=revision, offline=offline, backend=backend) as database:
        for clip in clips:
            try:
                result = database.identify(
                    clip, top_k=top_k, threshold=threshold, score_norm=score_norm, group=group
                )
            except AudioError as exc:
                failed += 1
                results.append({"source": str(clip), **error_document(exc, CLI_FIXES)})
                typer.echo(f"speakerdb: error: {safe(cli_message(exc))}", err=True)
                continue
            if not answered:  # one policy for the whole command: its notice once
                _report_notice(result.decided_by.notice)
            answered += 1
            results.append(to_jsonable(result))
            short += result.outcome is Outcome.NOT_ENOUGH_SPEECH
            if not json:
                echo(identification_text(result))
    if json:
        emit_json(results)
    if failed:
        raise typer.Exit(EXIT_ERROR if failed == len(clips) else EXIT_NEGATIVE)
    if short == len(clips):
        raise typer.Exit(EXIT_NOT_ENOUGH_SPEECH)


def verify(
    name: Annotated[str, name_arg("The claimed speaker.")],
    clip: Annotated[Path, typer.Argument(metavar="CLIP", help="Audio file.")],
    threshold: ThresholdOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    backend: BackendOpt = None,
    score_norm: ScoreNormOpt = None,
    group: GroupOpt = None,
    json: JsonOpt = False,
) -> None:
    """Accept or reject the claim that CLIP is NAME.

    Exit 0 accepted, 1 rejected or a replay, 2 an error, 3 not enough speech to decide.
    """
    from ..types import Outcome
    from ._render import emit_json, verification_text

    with open_db(db, model, revision=revision, offline=offline, backend=backend) as database:
        result = database.verify(
            name, clip, threshold=threshold, score_norm=score_norm, group=group
        )
    _report_notice(result.decided_by.notice)
    if json:
        emit_json(result)
    else:
        echo(verification_text(result))
    if result.outcome is Outcome.NOT_ENOUGH_SPEECH:
        raise typer.Exit(EXIT_NOT_ENOUGH_SPEECH)
    if not result.accepted:
        raise typer.Exit(EXIT_NEGATIVE)


def _report_notice(notice: str | None) -> None:
    """Why the score that decided is not the database's own choice, on stderr."""
    from ._render import safe

    if notice:
        typer.echo(f"speakerdb: notice: {safe(notice)}", err=True)
