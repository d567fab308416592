"""``speakerdb group``: named groups of speakers (a door's, a team's), and the ``--group``
option of ``enroll``, ``identify``, ``verify`` and ``segments``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ._common import DbOpt, JsonOpt, echo, examples, handles_errors, open_db

if TYPE_CHECKING:
    from ..types import Group

__all__ = ["GroupOpt", "GroupsOpt", "group_app"]

#: The option of a query confined to one group.
GroupOpt = Annotated[
    Optional[str],
    typer.Option(
        "--group",
        metavar="GROUP",
        help="Consider only this group's members (`speakerdb group list`).",
        show_default=False,
    ),
]
#: The option of an enrollment into groups (repeatable).
GroupsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--group",
        metavar="GROUP",
        help="Put the speaker in this group (made if new). Repeat for more.",
        show_default=False,
    ),
]

group_app: typer.Typer = typer.Typer(
    help="Groups of speakers, to confine queries to one.",
    no_args_is_help=True,
)

GroupArg = Annotated[
    str, typer.Argument(metavar="GROUP", help="The group's name (letters, digits, '.', '_', '-').")
]
NamesArg = Annotated[list[str], typer.Argument(metavar="NAME...", help="Enrolled speakers.")]


@group_app.command(
    "add",
    epilog=examples(
        "speakerdb group add door-a alice bob",
        "speakerdb identify visitor.wav --group door-a",
    ),
)
@handles_errors
def group_add(group: GroupArg, names: NamesArg, db: DbOpt = None, json: JsonOpt = False) -> None:
    """Put speakers in a group, made if new: all of them, or none."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        added = database.lifecycle.groups.add(group, names)
        found = database.lifecycle.groups.get(group)
    if json:
        emit_json(found)
        return
    echo(f"added {added} speaker(s) to {safe(group)}; it has {len(found.members)}")


@group_app.command("remove", epilog=examples("speakerdb group remove door-a bob"))
@handles_errors
def group_remove(group: GroupArg, names: NamesArg, db: DbOpt = None, json: JsonOpt = False) -> None:
    """Take speakers out of a group (they stay enrolled; the group stays, even empty)."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        removed = database.lifecycle.groups.remove(group, names)
        found = database.lifecycle.groups.get(group)
    if json:
        emit_json(found)
        return
    echo(f"took {removed} speaker(s) out of {safe(group)}; it has {len(found.members)}")


@group_app.command("list", epilog=examples("speakerdb group list", "speakerdb group list --json"))
@handles_errors
def group_list(db: DbOpt = None, json: JsonOpt = False) -> None:
    """List the groups and their members."""
    from ._render import emit_json

    with open_db(db) as database:
        groups = database.lifecycle.groups.list()
    if json:
        emit_json(groups)
        return
    for group in groups:
        echo(_group_line(group))
    if not groups:
        typer.echo("no groups; make one with `speakerdb group add GROUP NAME...`", err=True)


@group_app.command("delete", epilog=examples("speakerdb group delete door-a"))
@handles_errors
def group_delete(group: GroupArg, db: DbOpt = None, json: JsonOpt = False) -> None:
    """Delete a group (its members stay enrolled; keys bound to it stop working)."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        deleted = database.lifecycle.groups.delete(group)
    if json:
        emit_json(deleted)
    else:
        echo(f"deleted group {safe(deleted.name)} ({len(deleted.members)} member(s))")


def _group_line(group: Group) -> str:
    from ._render import safe

    members = ", ".join(safe(m) for m in group.members) or "(empty)"
    return f"{safe(group.name)}\t{len(group.members)}\t{members}"
