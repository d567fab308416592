"""``speakerdb reembed`` (a database for a new model, from the kept enrollment audio; or
this database's whole clips embedded again from their words, ``--in-place``),
``speakerdb retention`` (idle expiry), and the ``--keep-audio`` and ``--audio-key-file``
options ``enroll`` and ``enroll-batch`` share with ``reembed``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ._common import (
    EXIT_NEGATIVE,
    BackendOpt,
    DbOpt,
    JsonOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    echo,
    examples,
    handles_errors,
    open_db,
    progress,
)
from ._lifecycle import secret_file

if TYPE_CHECKING:
    from ..types import ReembedReport

__all__ = ["AudioKeyFileOpt", "KeepAudioOpt", "audio_key", "register"]

KeepAudioOpt = Annotated[
    bool,
    typer.Option(
        "--keep-audio",
        help="Keep the clips' audio, encrypted, so that `speakerdb reembed` can move the "
        "speaker to a new model (needs SPEAKERDB_AUDIO_KEY or --audio-key-file).",
    ),
]
AudioKeyFileOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--audio-key-file",
        metavar="FILE",
        help="A file whose first line is the secret (32+ characters) that encrypts kept "
        "audio. [env SPEAKERDB_AUDIO_KEY]",
        show_default=False,
    ),
]


def audio_key(path: Path | None) -> str | None:
    """The audio key of ``--audio-key-file`` (``None``: the environment's, if any)."""
    return secret_file(path, "audio key")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``speakerdb`` app."""
    app.command(
        "reembed",
        epilog=examples(
            "export SPEAKERDB_AUDIO_KEY=$(cat audio.key)",
            "speakerdb reembed --to new.db --to-model resemblyzer",
            "speakerdb reembed --to new.db --to-model ./my-xvector --overwrite --json",
            "speakerdb reembed --to new.db --to-model resemblyzer   # same model: from the "
            "words (info: voiceprints)",
            "speakerdb reembed --in-place   # the same, in this database (PostgreSQL too)",
        ),
    )(handles_errors(reembed))
    app.command(
        "retention",
        epilog=examples(
            "speakerdb retention                   # show",
            "speakerdb retention --idle-days 365   # delete after a year without a match",
            "speakerdb retention --idle-days 0     # never (the default)",
        ),
    )(handles_errors(retention))


def reembed(
    to: Annotated[
        Optional[Path],
        typer.Option(
            "--to", metavar="FILE", help="The new database file to build.", show_default=False
        ),
    ] = None,
    to_model: Annotated[
        Optional[str],
        typer.Option(
            "--to-model",
            metavar="MODEL",
            help="The new model: hub id, local model folder, or 'ge2e'.",
            show_default=False,
        ),
    ] = None,
    to_revision: Annotated[
        Optional[str],
        typer.Option("--to-revision", metavar="REV", help="The new model's hub revision."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the --to file if it exists.")
    ] = False,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Embed the whole clips again from their words in this database, with its "
            "own model (no --to): every backend; the audit log, thresholds and keys stay.",
        ),
    ] = False,
    audio_key_file: AudioKeyFileOpt = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    backend: BackendOpt = None,
    json: JsonOpt = False,
) -> None:
    """Build a database for a new model from the kept audio.

    Or for this database's own model, when `info` says voiceprints are of whole clips
    (enrolled by an older speakerdb): they are embedded again from the clips' words,
    into a new file (--to, --to-model), or in this database itself (--in-place: on
    PostgreSQL too, one speaker per transaction, everything else kept; a second run
    does nothing). Speakers enrolled with --keep-audio are embedded again with
    --to-model, with their metadata, watchlist marks, expiry and last match; opt-outs
    and the settings that do not depend on the model carry over. Names the speakers who
    must enroll again (no audio kept) and what does not carry over (thresholds of the
    old model, the cohort, the audit log). --model stays this database's own model. The
    new file appears only once it is complete.
    """
    from ._render import emit_json

    target = _target(to, to_model, to_revision, overwrite, in_place)
    key = audio_key(audio_key_file)
    with open_db(db, model, revision, offline, backend=backend, audio_key=key) as database:
        total = len(database.speakers())
        with progress(total, "re-embedding", unit="speakers") as advance:
            if target is None:
                report = database.lifecycle.reembed_in_place(progress=lambda d, of: advance(1))
            else:
                report = database.lifecycle.reembed(
                    target,
                    model=to_model,
                    revision=to_revision,
                    overwrite=overwrite,
                    progress=lambda done, of: advance(1),
                )
    if json:
        emit_json(report)
    else:
        echo(_in_place_text(report) if report.in_place else _reembed_text(report))
    if report.failed:
        raise typer.Exit(EXIT_NEGATIVE)


def _target(
    to: Path | None,
    to_model: str | None,
    to_revision: str | None,
    overwrite: bool,
    in_place: bool,
) -> Path | None:
    """The new database file, or ``None`` for ``--in-place``; :class:`InputError` for
    options of the other kind, or for neither."""
    from ..errors import InputError

    if in_place and (to is not None or to_model or to_revision or overwrite):
        raise InputError(
            "--in-place re-embeds this database with its own model; leave out --to, "
            "--to-model, --to-revision and --overwrite"
        )
    if not in_place and (to is None or not to_model):
        raise InputError(
            "give the new database and its model (--to FILE --to-model MODEL), or "
            "--in-place to bring this database's whole clips up to date in it"
        )
    return to


def _in_place_text(report: ReembedReport) -> str:
    from ._render import safe

    lines = [f"failed: {safe(n)}: {safe(why)}" for n, why in report.failed.items()]
    if report.partial:
        names = ", ".join(safe(n) for n in report.partial)
        lines.append(f"partly re-embedded (whole clips without kept audio stay): {names}")
    if report.reenroll:
        names = ", ".join(safe(n) for n in report.reenroll)
        lines.append(
            f"must enroll again (whole clips, no audio kept; or remove those clips): {names}"
        )
    done = len(report.reembedded) + len(report.partial)
    lines.append(
        f"re-embedded in place {report.n_utterances} clip(s) of {done} speaker(s) from "
        f"their words with {safe(report.model)} in {safe(report.path)} "
        f"({report.seconds:.1f} s); everything else stays"
    )
    return "\n".join(lines)


def _reembed_text(report: ReembedReport) -> str:
    from ._render import safe

    lines = [
        f"partial: {safe(n)}: enrolled from the clips whose audio was kept" for n in report.partial
    ]
    lines += [f"failed: {safe(n)}: {safe(why)}" for n, why in report.failed.items()]
    if report.copied:
        names = ", ".join(safe(n) for n in report.copied)
        lines.append(f"taken over as they are (from their words already, no audio kept): {names}")
    if report.reenroll:
        names = ", ".join(safe(n) for n in report.reenroll)
        lines.append(f"must enroll again (no audio kept): {names}")
    lines += [f"not carried over: {safe(what)}" for what in report.not_carried]
    settings = ", ".join(report.carried) or "none"
    lines.append(f"carried over: {report.n_tombstones} opt-out(s); settings: {settings}")
    done = len(report.reembedded) + len(report.partial) + len(report.copied)
    lines.append(
        f"re-embedded {done} speaker(s), {report.n_utterances} clip(s) with "
        f"{safe(report.model)} into {safe(report.path)} ({report.seconds:.1f} s)"
    )
    return "\n".join(lines)


def retention(
    idle_days: Annotated[
        Optional[int],
        typer.Option(
            "--idle-days",
            metavar="DAYS",
            help="Delete a voiceprint after N days without a successful match (0: never, "
            "the default); counted from now on, by `speakerdb expire`.",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show or set idle expiry.

    Expiry dates are set per speaker (enroll/meta --expires); idle expiry deletes those
    who have not matched for N days. `speakerdb expire` (schedule it daily) deletes both.
    """
    from ._render import emit_json

    with open_db(db, create=idle_days is not None) as database:
        if idle_days is not None:
            database.lifecycle.set_idle_days(idle_days)
        days, since = database.lifecycle.idle_days()
        kept = database.lifecycle.kept_audio()
    if json:
        emit_json({"idle_days": days, "idle_since": since, "kept_audio_clips": kept})
        return
    if days is None:
        echo("idle expiry: off (voiceprints are kept until removed, opted out or expired)")
    else:
        counting = f" (counting from {since:%Y-%m-%d})" if since is not None else ""
        echo(f"idle expiry: after {days} day(s) without a successful match{counting}")
    echo(f"kept audio: {kept} clip(s) (enroll --keep-audio; deleted with their speaker)")
