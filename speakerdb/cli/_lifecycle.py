"""The lifecycle commands: ``meta`` (a speaker's external id and attributes), and the
``--id``/``--attr`` options ``enroll`` shares with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._common import DbOpt, JsonOpt, echo, examples, handles_errors, name_arg, open_db

if TYPE_CHECKING:
    from ..types import Speaker

__all__ = ["AttrOpt", "ExternalIdOpt", "meta", "parse_attributes", "register"]

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


def _metadata_text(speaker: Speaker) -> str:
    from ._render import metadata_lines, speaker_line

    lines = metadata_lines(speaker)
    return "\n".join([speaker_line(speaker), *(lines or ["  no external id or attributes"])])
