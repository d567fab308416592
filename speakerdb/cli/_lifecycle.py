"""The lifecycle commands: ``meta`` (a speaker's external id, attributes and expiry, and
the ``--id``/``--attr``/``--expires`` options ``enroll`` shares with it), ``opt-out``,
``expire``, ``export``, ``import`` and ``backup``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._common import (
    DbOpt,
    JsonOpt,
    YesOpt,
    confirm,
    echo,
    examples,
    handles_errors,
    name_arg,
    open_db,
)

if TYPE_CHECKING:
    from ..types import Speaker, Tombstone

__all__ = [
    "AttrOpt",
    "ExpiresOpt",
    "ExternalIdOpt",
    "PurgeAuditOpt",
    "backup",
    "expire",
    "export",
    "import_archive",
    "meta",
    "opt_out",
    "parse_attributes",
    "register",
    "secret_file",
]

ExternalIdOpt = Annotated[
    Optional[str],
    typer.Option(
        "--id",
        metavar="ID",
        help="The id another system knows the speaker by (unique).",
        show_default=False,
    ),
]
ExpiresOpt = Annotated[
    Optional[str],
    typer.Option(
        "--expires",
        metavar="DATE",
        help="Delete the voiceprint on this date (00:00 UTC; or an ISO time with a zone).",
        show_default=False,
    ),
]
PurgeAuditOpt = Annotated[
    bool,
    typer.Option(
        "--purge-audit",
        help="Delete their audit entries too, instead of renaming them removed-<id>.",
    ),
]
AttrOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--attr",
        metavar="KEY=VALUE",
        help="An attribute, key=value (text) or key:=JSON (floor:=3; key:=null deletes it). "
        "Repeat for more.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``speakerdb`` app."""
    app.command(
        "meta",
        epilog=examples(
            "speakerdb meta alice --id E1042 --attr team=night",
            "speakerdb meta alice --attr team:=null   # delete an attribute",
            "speakerdb meta alice --clear-id --json",
        ),
    )(handles_errors(meta))
    app.command(
        "backup",
        epilog=examples(
            "speakerdb backup /backups/speakers-$(date +%F).db",
            "speakerdb backup nightly.db --overwrite --json",
        ),
    )(handles_errors(backup))
    app.command(
        "opt-out",
        epilog=examples(
            "speakerdb opt-out bob            # asks first on a terminal",
            "speakerdb opt-out --list",
            "speakerdb opt-out --clear bob    # bob consents again",
            "speakerdb opt-out --clear --id E1042",
        ),
    )(handles_errors(opt_out))
    app.command(
        "export",
        epilog=examples(
            "speakerdb export people.sdb",
            "speakerdb export people.sdb --passphrase-file key.txt   # encrypted",
        ),
    )(handles_errors(export))
    app.command(
        "import",
        epilog=examples(
            "speakerdb import people.sdb --db new.db",
            "speakerdb import people.sdb --passphrase-file key.txt --on-duplicate skip",
        ),
    )(handles_errors(import_archive))
    app.command(
        "expire", epilog=examples("speakerdb expire   # e.g. nightly from cron; queries do it too")
    )(handles_errors(expire))


def parse_attributes(given: list[str] | None) -> dict[str, Any] | None:
    """The ``--attr`` options as one mapping (``None`` when none was given)."""
    from .._metadata import parse_attribute

    if not given:
        return None
    return dict(parse_attribute(text) for text in given)


def meta(
    name: Annotated[str, name_arg("Speaker name.")],
    external_id: ExternalIdOpt = None,
    clear_id: Annotated[bool, typer.Option("--clear-id", help="Remove the external id.")] = False,
    attr: AttrOpt = None,
    expires: ExpiresOpt = None,
    keep_forever: Annotated[
        bool, typer.Option("--no-expiry", help="Remove the expiry date.")
    ] = False,
    watchlist: Annotated[
        Optional[bool],
        typer.Option(
            "--watchlist/--no-watchlist",
            help="Put on the watchlist (a voice never to admit), or take off it.",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Set a speaker's external id, attributes and expiry.

    Attributes are merged into the speaker's. Without options, shows them.
    """
    from ..errors import InputError
    from ._render import emit_json

    if clear_id and external_id is not None:
        raise InputError("give --id or --clear-id, not both")
    if keep_forever and expires is not None:
        raise InputError("give --expires or --no-expiry, not both")
    wanted: Any = None if clear_id else ... if external_id is None else external_id
    expiry: Any = None if keep_forever else ... if expires is None else expires
    attributes = parse_attributes(attr)
    with open_db(db) as database:
        if watchlist is not None:
            database.lifecycle.set_watchlist(name, watchlist)
        if wanted is ... and expiry is ... and attributes is None:
            speaker = database.speaker(name)
        else:
            speaker = database.lifecycle.set_metadata(
                name, external_id=wanted, attributes=attributes, expires_at=expiry
            )
    if json:
        emit_json(speaker)
    else:
        echo(_metadata_text(speaker))


def backup(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="The backup file to write.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Back up the live database to one file.

    A consistent snapshot, taken while others go on reading and writing; OUT is the
    whole backup or is not created. Restore by copying it back (`speakerdb list --db
    OUT` opens it as it is). PostgreSQL: use `pg_dump`.
    """
    from ._render import emit_json, safe

    with open_db(db) as database:
        report = database.lifecycle.backup(out, overwrite=overwrite)
    if json:
        emit_json(report)
    else:
        echo(
            f"backed up {report.n_speakers} speaker(s), {report.n_utterances} clip(s) to "
            f"{safe(report.path)} ({report.bytes / 1e6:.1f} MB, {report.seconds:.1f} s)"
        )


def opt_out(
    name: Annotated[
        Optional[str], typer.Argument(metavar="NAME", help="The person opting out.")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the opt-out: they may enroll again.")
    ] = False,
    external_id: ExternalIdOpt = None,
    listing: Annotated[bool, typer.Option("--list", help="List the opt-outs.")] = False,
    purge_audit: PurgeAuditOpt = False,
    yes: YesOpt = False,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Delete a voiceprint and bar re-enrollment.

    Keeps a tombstone of their external id and their name's look-alike key (never
    the voiceprint), until --clear. Asks first on a terminal (--yes does not ask).
    """
    from ..errors import InputError
    from ._render import emit_json, safe

    if listing:
        with open_db(db) as database:
            found = database.lifecycle.opt_outs()
        emit_json(found) if json else echo(_tombstones_text(found))
        return
    if clear:
        with open_db(db) as database:
            count = database.lifecycle.clear_opt_out(name, external_id=external_id)
        emit_json({"cleared": count}) if json else echo(f"cleared {count} opt-out(s)")
        return
    if name is None or external_id is not None:
        raise InputError("give the NAME of the speaker opting out (--id is for --clear)")
    confirm(f"Delete {safe(name)}'s voiceprint and refuse to enroll them again?", yes, json)
    with open_db(db) as database:
        tombstone = database.lifecycle.opt_out(name, purge_audit=purge_audit)
    if json:
        emit_json(tombstone)
    else:
        echo(f"{safe(name)} opted out: voiceprint deleted, tombstone #{tombstone.id} kept")


def expire(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Delete expired voiceprints, and idle ones.

    Queries delete expired ones too before they search; idle ones (`speakerdb retention
    --idle-days`) only this deletes: run it daily, from a scheduled job.
    """
    from ._render import emit_json, safe

    with open_db(db) as database:
        removed = database.lifecycle.expire()
    if json:
        emit_json(removed)
        return
    for speaker in removed:
        echo(f"removed {safe(speaker.name)} ({_why_removed(speaker)})")
    echo(f"{len(removed)} expired voiceprint(s) deleted")


def _why_removed(speaker: Speaker) -> str:
    from ..services._idle import utcnow

    if speaker.expires_at is not None and speaker.expires_at <= utcnow():
        return f"expired {speaker.expires_at:%Y-%m-%d %H:%M} UTC"
    when = speaker.last_match_at
    return f"idle: no match since {when:%Y-%m-%d}" if when is not None else "idle"


PassphraseOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--passphrase-file",
        metavar="FILE",
        help="A file whose first line is the passphrase: the archive is encrypted "
        "(AES-256-GCM, key by scrypt).",
        show_default=False,
    ),
]


def secret_file(path: Path | None, what: str = "passphrase") -> str | None:
    """The first line of the ``what`` file ``path`` (``None`` without one)."""
    from ..errors import InputError

    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what} file ({exc})") from exc
    if not lines or not lines[0]:
        raise InputError(f"{path}: the {what} file's first line is empty")
    return lines[0]


def export(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="The archive file to write.")],
    passphrase_file: PassphraseOpt = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write the database to a portable archive.

    Speakers with their embeddings, provenance, metadata and expiry, the opt-outs,
    the cohort of outside voices, the decision settings and the encoder's identity;
    encrypted with a passphrase.
    """
    from ._render import emit_json, safe

    secret = secret_file(passphrase_file)
    with open_db(db) as database:
        report = database.lifecycle.export(out, passphrase=secret)
    if json:
        emit_json(report)
    else:
        how = "encrypted " if report.encrypted else ""
        cohort = f", {report.n_cohort} cohort clip(s)" if report.n_cohort else ""
        echo(
            f"exported {report.n_speakers} speaker(s), {report.n_utterances} clip(s), "
            f"{report.n_tombstones} opt-out(s){cohort} to {how}{safe(report.path)}"
        )


def import_archive(
    archive: Annotated[
        Path, typer.Argument(metavar="ARCHIVE", help="An archive written by `speakerdb export`.")
    ],
    passphrase_file: PassphraseOpt = None,
    on_duplicate: Annotated[
        str,
        typer.Option(
            "--on-duplicate",
            metavar="ACTION",
            help="A speaker the database has already (name, look-alike name, audio or "
            "external id), or who opted out: 'fail' imports nothing, 'skip' leaves them out.",
        ),
    ] = "fail",
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add the speakers of an archive to the database.

    All of it or nothing; an archive of another model is refused. Creates the
    database if it does not exist.
    """
    from ._render import emit_json, safe

    secret = secret_file(passphrase_file)
    with open_db(db, create=True) as database:
        report = database.lifecycle.import_archive(
            archive, passphrase=secret, on_duplicate=on_duplicate
        )
    if json:
        emit_json(report)
        return
    for name in report.skipped:
        echo(f"skipped {safe(name)}: in the database already (or opted out)")
    echo(f"imported {len(report.imported)} speaker(s) from {safe(report.path)}")


def _tombstones_text(found: list[Tombstone]) -> str:
    from ._render import safe

    lines = [
        f"#{t.id}	{t.created_at:%Y-%m-%d}	id {safe(t.external_id or '-')}	name key "
        f"{safe(t.folded_key)}"
        for t in found
    ]
    return "\n".join(lines) or "no opt-outs"


def _metadata_text(speaker: Speaker) -> str:
    from ._render import metadata_lines, speaker_line

    lines = metadata_lines(speaker)
    return "\n".join([speaker_line(speaker), *(lines or ["  no external id or attributes"])])
