"""The commands on the enrolled speakers themselves: ``list``, ``show``, ``rename``,
``remove`` and ``remove-utterance``."""

from __future__ import annotations

from typing import Annotated

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
    open_for_reading,
)
from ._lifecycle import PurgeAuditOpt

__all__ = ["list_speakers", "register", "remove", "remove_utterance", "rename", "show"]


def register(app: typer.Typer) -> None:
    """Add the speaker commands to the ``speakerdb`` app."""
    app.command("list", epilog=examples("speakerdb list", "speakerdb list --json --db door.db"))(
        handles_errors(list_speakers)
    )
    app.command("show", epilog=examples("speakerdb show alice", "speakerdb show alice --json"))(
        handles_errors(show)
    )
    app.command("rename", epilog=examples("speakerdb rename alice alice.smith"))(
        handles_errors(rename)
    )
    app.command(
        "remove",
        epilog=examples("speakerdb remove bob", "speakerdb remove bob --yes   # no question"),
    )(handles_errors(remove))
    app.command(
        "remove-utterance", epilog=examples("speakerdb show alice", "speakerdb remove-utterance 42")
    )(handles_errors(remove_utterance))


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


def rename(
    old: Annotated[str, name_arg("Current name.", "OLD")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="New name.")],
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
