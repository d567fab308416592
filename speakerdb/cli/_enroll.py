"""``speakerdb enroll`` and ``enroll-batch``: add speakers and clips, and report what the
quality gates found on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ._common import (
    EXIT_ERROR,
    EXIT_NEGATIVE,
    BackendOpt,
    ClipsArg,
    DbOpt,
    ForceOpt,
    JsonOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    echo,
    examples,
    handles_errors,
    name_arg,
    open_db,
    progress,
)
from ._lifecycle import AttrOpt, ExpiresOpt, ExternalIdOpt, parse_attributes
from ._membership import GroupsOpt
from ._reembed import AudioKeyFileOpt, KeepAudioOpt, audio_key

if TYPE_CHECKING:
    from ..services._batch import BatchFailure, BatchReport
    from ..types import Enrollment

__all__ = ["enroll", "enroll_batch", "register"]


def register(app: typer.Typer) -> None:
    """Add ``enroll`` and ``enroll-batch`` to the ``speakerdb`` app."""
    app.command(
        "enroll",
        epilog=examples(
            "speakerdb enroll alice alice1.wav alice2.flac alice3.ogg",
            "speakerdb enroll alice alice4.wav --json   # clips enrolled already are skipped",
            "speakerdb enroll alice a.wav --id E1042 --attr team=night --attr floor:=3",
            "speakerdb enroll alice a.wav --group door-a --group lab",
        ),
    )(handles_errors(enroll))
    app.command(
        "enroll-batch",
        epilog=examples(
            "speakerdb enroll-batch people.csv          # header: speaker,path",
            "speakerdb enroll-batch people.csv --json",
            "speakerdb enroll-batch archive.csv --ray --actors 8 --ray-address auto",
        ),
    )(handles_errors(enroll_batch))


def enroll(
    name: Annotated[str, name_arg("Speaker name; created if new.")],
    clips: ClipsArg,
    external_id: ExternalIdOpt = None,
    attr: AttrOpt = None,
    expires: ExpiresOpt = None,
    watchlist: Annotated[
        bool,
        typer.Option("--watchlist", help="A voice never to admit (a known fraudster)."),
    ] = False,
    keep_audio: KeepAudioOpt = False,
    audio_key_file: AudioKeyFileOpt = None,
    group: GroupsOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    backend: BackendOpt = None,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Enroll a speaker, or add clips to one.

    Creates NAME from CLIPs, or adds them to NAME: all of them, or none. Clips enrolled
    for NAME already are skipped, so running the command again is harmless.
    """
    from ._render import emit_json, enrollment_text

    attributes = parse_attributes(attr)
    key = audio_key(audio_key_file)
    with open_db(
        db, model, revision, offline, create=True, backend=backend, audio_key=key
    ) as database:
        result = database.enroll(
            name,
            clips,
            force=force,
            external_id=external_id,
            attributes=attributes,
            expires_at=expires,
            watchlist=watchlist,
            keep_audio=keep_audio,
            groups=group or (),
        )
    _report_warnings(result)
    if json:
        emit_json(result)
        return
    echo(enrollment_text(result))


def enroll_batch(
    manifest: Annotated[
        Path, typer.Argument(metavar="MANIFEST", help="CSV with 'speaker' and 'path' columns.")
    ],
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    backend: BackendOpt = None,
    force: ForceOpt = False,
    keep_audio: KeepAudioOpt = False,
    audio_key_file: AudioKeyFileOpt = None,
    use_ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Embed on a Ray cluster (needs speakerdb[ray]); this process writes.",
        ),
    ] = False,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--ray-address",
            metavar="ADDRESS",
            help="The Ray cluster to join (e.g. auto). [default: a local one, for the job]",
            show_default=False,
        ),
    ] = None,
    actors: Annotated[
        int, typer.Option("--actors", min=1, help="Ray actors, one model copy each.")
    ] = 2,
    json: JsonOpt = False,
) -> None:
    """Enroll many speakers from a CSV manifest.

    A clip that fails is reported and does not stop the others. Clips enrolled already
    are skipped, so an interrupted run resumes where it stopped.
    """
    from ..services import read_manifest
    from ._render import emit_json

    rows = read_manifest(manifest)
    ray = None
    if use_ray or ray_address:
        from ..services._raybatch import RayOptions

        ray = RayOptions(address=ray_address, actors=actors)
    key = audio_key(audio_key_file)
    with open_db(
        db, model, revision, offline, create=True, backend=backend, audio_key=key
    ) as database:
        with progress(len(rows), "enrolling") as advance:
            report = database.enroll_batch(
                rows, advance, force=force, ray=ray, keep_audio=keep_audio
            )
    for enrollment in report.enrollments:
        _report_warnings(enrollment)
    if json:
        emit_json(_spelled_for_cli(report))
    else:
        echo(_batch_summary(report))
    if report.failures:
        # A clip skipped as enrolled already succeeded on an earlier run: a rerun whose
        # one new clip fails has failed partly (1), not wholly (2), as cohort import says.
        done = report.enrollments or report.skipped
        raise typer.Exit(EXIT_NEGATIVE if done else EXIT_ERROR)


def _report_warnings(enrollment: Enrollment) -> None:
    """The quality gates' findings of an enrollment, and its notice, on stderr."""
    from ._render import safe

    for issue in enrollment.issues:
        kind = "enrolled despite" if issue.refused else "warning"
        typer.echo(f"speakerdb: {kind}: {safe(issue.message)}", err=True)
    if enrollment.notice:
        typer.echo(f"speakerdb: warning: {safe(enrollment.notice)}", err=True)


def _naming(source: str, reason: str) -> str:
    """The reason, prefixed with the file unless the reason names it already."""
    return reason if source and source in reason else f"{source}: {reason}"


def _reason(failure: BatchFailure) -> str:
    from ._fixes import cli_message

    return failure.reason if failure.error is None else cli_message(failure.error)


def _spelled_for_cli(report: BatchReport) -> BatchReport:
    """The report with each failure's reason naming its fix as this CLI does (``--force``),
    not as the library's ``str(exc)`` does (``force=True``)."""
    import dataclasses

    failures = tuple(dataclasses.replace(f, reason=_reason(f)) for f in report.failures)
    return dataclasses.replace(report, failures=failures)


def _batch_summary(report: BatchReport) -> str:
    from ._render import safe

    lines = [f"failed: {safe(_naming(f.source, _reason(f)))}" for f in report.failures]
    lines += [f"skipped: {safe(f.source)} ({safe(f.reason)})" for f in report.skipped]
    created = sum(e.created for e in report.enrollments)
    skipped = f"; {len(report.skipped)} enrolled already, skipped" if report.skipped else ""
    lines.append(
        f"enrolled {report.n_enrolled} clip(s) for {len(report.enrollments)} speaker(s) "
        f"({created} new); {len(report.failures)} clip(s) failed{skipped}"
    )
    return "\n".join(lines)
