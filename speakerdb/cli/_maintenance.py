"""``speakerdb info``, ``set-threshold``, ``rebuild-index`` and ``db upgrade``: looking
after the database itself rather than its speakers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ._common import DbOpt, JsonOpt, echo, examples, handles_errors, open_db, open_for_reading

if TYPE_CHECKING:
    from .._facade import SpeakerDB
    from ..types import ClearedThreshold, DatabaseInfo

__all__ = [
    "countermeasure",
    "db_upgrade",
    "info",
    "rebuild_index",
    "register",
    "replay_window",
    "set_threshold",
]


def register(app: typer.Typer) -> None:
    """Add this module's commands, and the ``db`` group, to the ``speakerdb`` app."""
    app.command("info", epilog=examples("speakerdb info", "speakerdb info --json"))(
        handles_errors(info)
    )
    app.command(
        "set-threshold",
        epilog=examples(
            "speakerdb set-threshold 0.8                  # a cosine, where the cosine decides",
            "speakerdb set-threshold 0.7 --score-norm margin-duration --for identify",
            "speakerdb set-threshold 0.85 --score-norm none   # decide by raw cosine from now on",
            "speakerdb set-threshold --clear --for identify  # the default decides identify again",
        ),
    )(handles_errors(set_threshold))
    app.command(
        "replay-window",
        epilog=examples(
            "speakerdb replay-window          # show it",
            "speakerdb replay-window 10m",
            "speakerdb replay-window 0        # keep no query fingerprints",
        ),
    )(handles_errors(replay_window))
    app.command(
        "countermeasure",
        epilog=examples(
            "speakerdb countermeasure            # show it",
            "speakerdb countermeasure bandwidth",
            "speakerdb countermeasure none",
        ),
    )(handles_errors(countermeasure))
    app.command("rebuild-index", epilog=examples("speakerdb rebuild-index"))(
        handles_errors(rebuild_index)
    )
    db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
    db_app.command(
        "upgrade", epilog=examples("cp speakers.db speakers.db.bak && speakerdb db upgrade")
    )(handles_errors(db_upgrade))
    app.add_typer(db_app, name="db")


def info(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Show the database's settings and counts.

    Path, model, threshold, counts, schema revision and index state.
    """
    from ._render import emit_json, info_text

    with open_for_reading(db) as database:
        result = database.info()
    if json:
        emit_json(result)
    else:
        echo(info_text(result))


def set_threshold(
    value: Annotated[
        Optional[float],
        typer.Argument(
            metavar="[VALUE]",
            help="Threshold to store: of the score --score-norm names, else a cosine in [-1, "
            "1]. Not with --clear.",
            show_default=False,
        ),
    ] = None,
    score_norm: Annotated[
        Optional[str],
        typer.Option(
            "--score-norm",
            metavar="NORM",
            help="Whose threshold, and the score that decides from now on: 'none' (raw "
            "cosine), 'margin', 'margin-duration', 'asnorm'. [default: the cosine, on a "
            "database that decides by cosine; required on one that decides by another score; "
            "with --clear, every score's]",
            show_default=False,
        ),
    ] = None,
    operation: Annotated[
        str,
        typer.Option(
            "--for",
            metavar="DECISION",
            help="The operation whose threshold it is: identify, verify or both.",
        ),
    ] = "both",
    clear: Annotated[
        bool,
        typer.Option(
            "--clear",
            help="Remove the stored threshold instead, so that the default decides (the "
            "score that decides stays).",
        ),
    ] = False,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Store or clear a threshold of identify, verify or both.

    Used when neither --threshold nor SPEAKERDB_THRESHOLD is given. Says so when the
    score that decides changes.
    """
    from ..errors import InputError
    from ._render import emit_json, threshold_set_text

    if clear == (value is not None):
        raise InputError("give the threshold VALUE to store, or --clear to remove it, not both")
    with open_db(db) as database:
        before = _info_if_any(database)
        if value is None:
            cleared = database.set_threshold(None, score_norm=score_norm, operation=operation)
        else:
            stored = database.set_threshold(value, score_norm=score_norm, operation=operation)
        after = database.info()
    if value is None:
        _cleared_output(cleared, after, json)
        return
    if json:
        emit_json({"threshold": stored, "for": operation, "thresholds": after.thresholds})
        return
    was = None if before is None else before.score_norm
    echo(threshold_set_text(operation, stored, was, after))


def _cleared_output(cleared: tuple[ClearedThreshold, ...], after: DatabaseInfo, json: bool) -> None:
    """What ``set-threshold --clear`` did: each threshold removed, and what each operation
    decides by now."""
    from ._render import cleared_text, emit_json

    if json:
        emit_json({"cleared": cleared, "thresholds": after.thresholds})
    else:
        echo(cleared_text(cleared, after))


def _info_if_any(database: SpeakerDB) -> DatabaseInfo | None:
    """``info`` of the database, or ``None`` when no write has created it yet."""
    from ..errors import DatabaseError

    try:
        return database.info()
    except DatabaseError:
        return None


def replay_window(
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="VALUE", help="Seconds, or 10m / 1h; 0 turns it off. Omit to show it."
        ),
    ] = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show or set how long decided queries count as replays.

    A clip matching an enrolled clip, or a query decided within the window, is
    answered 'replay'. Only fingerprints are kept, never audio.
    SPEAKERDB_REPLAY_WINDOW overrides the stored value.
    """
    from ._render import emit_json, window_span

    with open_db(db) as database:
        if value is not None:
            database.guards.set_replay_window(value)
        seconds, source = database.guards.replay_window()
    if json:
        emit_json({"replay_window_s": seconds, "source": source})
    else:
        checked = " (enrolled clips are still checked)" if seconds == 0 else ""
        echo(f"replay window {window_span(seconds)}{checked} ({source})")


def countermeasure(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME", help="A registered countermeasure, or 'none'. Omit to show it."
        ),
    ] = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show or choose the countermeasure against spoofs.

    A clip it calls a spoof is answered 'replay'. SPEAKERDB_COUNTERMEASURE overrides
    the stored choice. The built-in 'bandwidth' is an example for full-band
    microphones: it calls a clip with almost no power above 4 kHz a telephone copy,
    so live telephone-band audio (8 kHz) fails it too.
    """
    from ..decision._countermeasure import countermeasure_names
    from ._render import emit_json

    with open_db(db) as database:
        if name is not None:
            database.guards.set_countermeasure(name)
        chosen, source = database.guards.countermeasure()
    shown = "none" if chosen is None else chosen.name
    if json:
        emit_json({"countermeasure": shown, "source": source})
    else:
        choices = ", ".join(["none", *countermeasure_names()])
        echo(f"countermeasure {shown} ({source}); choices: {choices}")


def rebuild_index(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Rebuild the search index from the database.

    The FAISS index file beside an SQLite database; on PostgreSQL, the pgvector table
    and its HNSW index, or this process's FAISS cache.
    """
    from ._render import emit_json, safe

    with open_db(db) as database:
        count = database.index.rebuild()
        where = database.index.where
    if json:
        emit_json({"index": where, "speakers": count})
    else:
        echo(f"rebuilt {safe(where)} with {count} speaker(s)")


def db_upgrade(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Migrate the database to this version's schema.

    Back it up first.
    """
    from .._facade import SpeakerDB
    from ._render import emit_json

    before, after = SpeakerDB.upgrade(db)
    if json:
        emit_json({"from": before, "to": after})
    elif before == after:
        echo(f"already at schema revision {after}")
    else:
        echo(f"upgraded schema from {before} to {after}")
