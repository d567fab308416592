"""The ``speakerdb`` command line: parse, call the library, render, map errors to exit codes.

Exit codes: 0 success (for ``verify``: accepted), 1 a negative answer or partial
failure (``verify`` rejected or a replay, some ``enroll-batch`` or ``identify``
clips failed), 2 an error (bad input, unknown speaker, unusable database or
model), 3 not enough speech to decide (``verify``; ``identify`` when every clip).
An outcome (:class:`~speakerdb.types.Outcome`) is an answer, never an error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._accuracy import register as register_accuracy
from ._audit import audit_app
from ._cohort import cohort_app
from ._common import (
    EXIT_ERROR,
    EXIT_NEGATIVE,
    EXIT_NOT_ENOUGH_SPEECH,
    BackendOpt,
    ClipsArg,
    DbOpt,
    ForceOpt,
    JsonOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    ScoreNormOpt,
    ThresholdOpt,
    YesOpt,
    confirm,
    echo,
    examples,
    handles_errors,
    name_arg,
    open_db,
    open_for_reading,
    progress,
)
from ._group import SpeakerdbGroup, log_to_stderr
from ._index import register as register_index
from ._keys import key_app
from ._lifecycle import AttrOpt, ExpiresOpt, ExternalIdOpt, PurgeAuditOpt, parse_attributes
from ._lifecycle import register as register_lifecycle
from ._maintenance import register as register_maintenance
from ._membership import GroupOpt, GroupsOpt, group_app
from ._model import register as register_model
from ._reembed import AudioKeyFileOpt, KeepAudioOpt, audio_key
from ._reembed import register as register_reembed
from ._segments import register as register_segments
from ._serve import register as register_serve

if TYPE_CHECKING:
    from ..services._batch import BatchReport
    from ..types import QualityIssue

app = typer.Typer(
    name="speakerdb",
    help="Enroll speakers from audio clips, then identify or verify who is speaking.",
    cls=SpeakerdbGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"speakerdb {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Enroll speakers from audio clips, then identify or verify who is speaking."""
    # The CLI owns the terminal: no download or weight-loading bars from HF libraries.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    log_to_stderr(logging.DEBUG if verbose else logging.WARNING)


@app.command(
    epilog=examples(
        "speakerdb enroll alice alice1.wav alice2.flac alice3.ogg",
        "speakerdb enroll alice alice4.wav --json   # clips enrolled already are skipped",
        "speakerdb enroll alice a.wav --id E1042 --attr team=night --attr floor:=3",
        "speakerdb enroll alice a.wav --group door-a --group lab",
    )
)
@handles_errors
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
    _report_issues(result.issues)
    if json:
        emit_json(result)
        return
    echo(enrollment_text(result))


@app.command(
    "enroll-batch",
    epilog=examples(
        "speakerdb enroll-batch people.csv          # header: speaker,path",
        "speakerdb enroll-batch people.csv --json",
        "speakerdb enroll-batch archive.csv --ray --actors 8 --ray-address auto",
    ),
)
@handles_errors
def enroll_batch(
    manifest: Annotated[Path, typer.Argument(help="CSV with 'speaker' and 'path' columns.")],
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
        _report_issues(enrollment.issues)
    if json:
        emit_json(report)
    else:
        echo(_batch_summary(report))
    if report.failures:
        raise typer.Exit(EXIT_NEGATIVE if report.enrollments else EXIT_ERROR)


def _report_issues(issues: tuple[QualityIssue, ...]) -> None:
    """The quality gates' findings of an enrollment, on stderr."""
    from ._render import safe

    for issue in issues:
        kind = "enrolled despite" if issue.refused else "warning"
        typer.echo(f"speakerdb: {kind}: {safe(issue.message)}", err=True)


def _report_notice(notice: str | None) -> None:
    """Why the score that decided is not the database's own choice, on stderr."""
    from ._render import safe

    if notice:
        typer.echo(f"speakerdb: notice: {safe(notice)}", err=True)


def _naming(source: str, reason: str) -> str:
    """The reason, prefixed with the file unless the reason names it already."""
    return reason if source and source in reason else f"{source}: {reason}"


def _batch_summary(report: BatchReport) -> str:
    from ._render import safe

    lines = [f"failed: {safe(_naming(f.source, f.reason))}" for f in report.failures]
    lines += [f"skipped: {safe(f.source)} ({safe(f.reason)})" for f in report.skipped]
    created = sum(e.created for e in report.enrollments)
    skipped = f"; {len(report.skipped)} enrolled already, skipped" if report.skipped else ""
    lines.append(
        f"enrolled {report.n_enrolled} clip(s) for {len(report.enrollments)} speaker(s) "
        f"({created} new); {len(report.failures)} clip(s) failed{skipped}"
    )
    return "\n".join(lines)


@app.command(
    epilog=examples(
        "speakerdb identify visitor.wav",
        "speakerdb identify a.wav b.flac --top-k 3 --json",
        "speakerdb identify visitor.wav --group door-a   # only door-a's members",
    )
)
@handles_errors
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
                results.append({"source": str(clip), **error_document(exc)})
                typer.echo(f"speakerdb: error: {safe(exc)}", err=True)
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


@app.command(
    epilog=examples(
        "speakerdb verify alice door.wav && echo welcome",
        "speakerdb verify alice door.wav --threshold 0.8 --json",
        "speakerdb verify alice door.wav --group door-a   # rejected unless alice is in it",
    )
)
@handles_errors
def verify(
    name: Annotated[str, name_arg("The claimed speaker.")],
    clip: Annotated[Path, typer.Argument(help="Audio file.")],
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


@app.command("list", epilog=examples("speakerdb list", "speakerdb list --json --db door.db"))
@handles_errors
def list_speakers(db: DbOpt = None, json: JsonOpt = False) -> None:
    """List the enrolled speakers."""
    from ._render import emit_json, speaker_line

    with open_for_reading(db) as database:
        speakers = database.speakers()
    if json:
        emit_json(speakers)
        return
    for speaker in speakers:
        echo(speaker_line(speaker))
    if not speakers:
        typer.echo("no speakers enrolled; add one with `speakerdb enroll NAME CLIP...`", err=True)


@app.command(epilog=examples("speakerdb show alice", "speakerdb show alice --json"))
@handles_errors
def show(
    name: Annotated[str, name_arg("Speaker name.")],
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show a speaker and their enrolled clips."""
    from ._render import emit_json, metadata_lines, speaker_line, utterance_line

    with open_for_reading(db) as database:
        speaker = database.speaker(name)
        utterances = database.utterances(name)
    if json:
        emit_json({"speaker": speaker, "utterances": utterances})
        return
    lines = [speaker_line(speaker), *metadata_lines(speaker), *map(utterance_line, utterances)]
    echo("\n".join(lines))


@app.command(epilog=examples("speakerdb rename alice alice.smith"))
@handles_errors
def rename(
    old: Annotated[str, name_arg("Current name.")],
    new: Annotated[str, typer.Argument(help="New name.")],
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Rename speaker OLD to NEW."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        speaker = database.rename(old, new)
    if json:
        emit_json(speaker)
    else:
        echo(f"renamed {safe(old)} to {safe(speaker.name)}")


@app.command(epilog=examples("speakerdb remove bob", "speakerdb remove bob --yes   # no question"))
@handles_errors
def remove(
    name: Annotated[str, name_arg("Speaker to delete with all their clips.")],
    purge_audit: PurgeAuditOpt = False,
    yes: YesOpt = False,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Delete a speaker with all their clips.

    Removes them from the database file, its WAL and the index; their audit entries
    name them removed-<id> (--purge-audit deletes them). Asks first on a terminal
    (--yes does not ask); scripts without a terminal are not asked.
    """
    from ._render import emit_json, safe

    confirm(f"Delete {safe(name)} and all their clips?", yes, json)
    with open_db(db) as database:
        speaker = database.remove(name, purge_audit=purge_audit)
    if json:
        emit_json(speaker)
    else:
        echo(f"removed {safe(speaker.name)} ({speaker.n_utterances} clip(s))")


@app.command(
    "remove-utterance", epilog=examples("speakerdb show alice", "speakerdb remove-utterance 42")
)
@handles_errors
def remove_utterance(
    utterance_id: Annotated[
        int, typer.Argument(metavar="ID", help="Clip number, as `speakerdb show NAME` lists it.")
    ],
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Delete one enrolled clip by its number.

    Its embedding goes too, and the speaker's voiceprint is recomputed.
    """
    from ._render import emit_json, safe

    with open_db(db) as database:
        speaker = database.lifecycle.remove_utterance(utterance_id)
    if json:
        emit_json(speaker)
    else:
        echo(
            f"removed clip #{utterance_id} of {safe(speaker.name)} "
            f"({speaker.n_utterances} left; voiceprint recomputed)"
        )


def run() -> None:
    """Console-script entry point."""
    # Named, so that `python -m speakerdb` completes as `speakerdb` does.
    app(prog_name="speakerdb")


# Command groups in modules of their own, registered in the order `--help` lists them.
register_segments(app)
register_maintenance(app)
register_index(app)
register_lifecycle(app)
register_reembed(app)
app.add_typer(audit_app, name="audit")
app.add_typer(key_app, name="key")
app.add_typer(group_app, name="group")
app.add_typer(cohort_app, name="cohort")
register_serve(app)
register_accuracy(app)
register_model(app)
