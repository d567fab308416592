"""``speakerdb cohort``: the cohort of outside voices (AS-norm's cohort, calibration's
strangers), stored as embeddings only and never identified or verified against."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    EXIT_ERROR,
    EXIT_NEGATIVE,
    DbOpt,
    JsonOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    YesOpt,
    confirm,
    echo,
    examples,
    handles_errors,
    open_db,
    progress,
)

__all__ = ["cohort_app"]

cohort_app: typer.Typer = typer.Typer(
    help="Outside voices for AS-norm and calibration.",
    no_args_is_help=True,
)


@cohort_app.command(
    "import",
    epilog=examples(
        "speakerdb cohort import outsiders.csv      # header: label,path",
        "speakerdb cohort import outsiders.csv --json",
    ),
)
@handles_errors
def cohort_import(
    manifest: Annotated[
        Path,
        typer.Argument(
            metavar="MANIFEST", help="CSV with 'label' (or 'speaker') and 'path' columns."
        ),
    ],
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    json: JsonOpt = False,
) -> None:
    """Add outside voices from a CSV manifest, embedded with the database's model.

    One label per outside person; they must never be enrolled. Only embeddings are
    kept. A clip that fails is reported and does not stop the others; clips imported
    already are skipped.
    """
    from ..services import read_manifest
    from ..services._cohort import COHORT_COLUMNS
    from ._render import emit_json, safe

    rows = read_manifest(manifest, COHORT_COLUMNS)
    with open_db(db, model, revision=revision, offline=offline, create=True) as database:
        with progress(len(rows), "importing") as advance:
            report = database.cohort.import_rows(rows, advance)
    if json:
        emit_json(report)
    else:
        for failure in report.failures:
            typer.echo(f"failed: {safe(failure.source)}: {safe(failure.reason)}", err=True)
        echo(
            f"cohort: +{report.added} clip(s); {len(report.skipped)} in it already, "
            f"{len(report.failures)} failed"
        )
    if report.failures:
        raise typer.Exit(EXIT_NEGATIVE if report.added or report.skipped else EXIT_ERROR)


@cohort_app.command(
    "list", epilog=examples("speakerdb cohort list", "speakerdb cohort list --json")
)
@handles_errors
def cohort_list(db: DbOpt = None, json: JsonOpt = False) -> None:
    """List the outside voices and their clip counts."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        voices = database.cohort.voices()
    if json:
        emit_json(voices)
        return
    for voice in voices:
        echo(f"{safe(voice.label)}\t{voice.n_clips} clip(s)")
    if not voices:
        typer.echo("no cohort; add one with `speakerdb cohort import CSV`", err=True)


@cohort_app.command("clear", epilog=examples("speakerdb cohort clear", "speakerdb cohort clear -y"))
@handles_errors
def cohort_clear(yes: YesOpt = False, db: DbOpt = None, json: JsonOpt = False) -> None:
    """Delete every outside voice of the cohort."""
    confirm("Delete the whole cohort of outside voices?", yes, json)
    with open_db(db) as database:
        removed = database.cohort.clear()
    if json:
        from ._render import emit_json

        emit_json({"removed": removed})
    else:
        echo(f"removed {removed} cohort clip(s)")
