"""The lifecycle commands: ``meta`` (a speaker's external id and attributes, and the
``--id``/``--attr`` options ``enroll`` shares with it) and ``backup``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._common import DbOpt, JsonOpt, echo, examples, handles_errors, name_arg, open_db

if TYPE_CHECKING:
    from ..types import Speaker

__all__ = ["AttrOpt", "ExternalIdOpt", "backup", "meta", "parse_attributes", "register"]

ExternalIdOpt = Annotated[
    Optional[str],
    typer.Option(
        "--id", help="The id another system knows the speaker by (unique).", show_default=False
    ),
]
AttrOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--attr",
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
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Set a speaker's external id and attributes.

    Attributes are merged into the speaker's. Without options, shows them.
    """
    from ..errors import InputError
    from ._render import emit_json

    if clear_id and external_id is not None:
        raise InputError("give --id or --clear-id, not both")
    wanted: Any = None if clear_id else ... if external_id is None else external_id
    attributes = parse_attributes(attr)
    with open_db(db) as database:
        if wanted is ... and attributes is None:
            speaker = database.speaker(name)
        else:
            speaker = database.lifecycle.set_metadata(
                name, external_id=wanted, attributes=attributes
            )
    if json:
        emit_json(speaker)
    else:
        echo(_metadata_text(speaker))


def backup(
    out: Annotated[Path, typer.Argument(help="The backup file to write.")],
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


def _metadata_text(speaker: Speaker) -> str:
    from ._render import metadata_lines, speaker_line

    lines = metadata_lines(speaker)
    return "\n".join([speaker_line(speaker), *(lines or ["  no external id or attributes"])])
