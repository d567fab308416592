"""``speakerdb audit``: the optional log of identify and verify decisions (off by default)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ._common import DbOpt, JsonOpt, YesOpt, confirm, echo, examples, handles_errors, open_db

__all__ = ["audit_app"]

audit_app: typer.Typer = typer.Typer(
    help="The optional log of decisions (off by default).",
    no_args_is_help=True,
)

RetentionOpt = Annotated[
    Optional[int],
    typer.Option(
        "--retention-days",
        min=1,
        help="Delete entries older than this many days. [default: the stored value, else 30]",
        show_default=False,
    ),
]
MaxRowsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-rows",
        min=1,
        help="Keep at most this many newest entries. [default: the stored value, else 100000]",
        show_default=False,
    ),
]


@audit_app.command(
    "on", epilog=examples("speakerdb audit on", "speakerdb audit on --retention-days 7")
)
@handles_errors
def audit_on(
    retention_days: RetentionOpt = None,
    max_rows: MaxRowsOpt = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Log every identify and verify decision.

    A decision that cannot be logged is then an error.
    """
    from ._render import audit_settings_text, emit_json

    with open_db(db) as database:
        settings = database.audit.configure(True, retention_days=retention_days, max_rows=max_rows)
    if json:
        emit_json(settings)
    else:
        echo(audit_settings_text(settings))


@audit_app.command("off", epilog=examples("speakerdb audit off"))
@handles_errors
def audit_off(db: DbOpt = None, json: JsonOpt = False) -> None:
    """Stop logging decisions.

    Entries kept so far stay until `speakerdb audit clear`.
    """
    from ._render import audit_settings_text, emit_json

    with open_db(db) as database:
        settings = database.audit.configure(False)
    if json:
        emit_json(settings)
    else:
        echo(f"{audit_settings_text(settings)}; `speakerdb audit clear` deletes what was logged")


@audit_app.command(
    "show", epilog=examples("speakerdb audit show", "speakerdb audit show -n 5 --json")
)
@handles_errors
def audit_show(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many of the newest entries to show.")
    ] = 20,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show the audit settings and the newest logged decisions."""
    from ._render import audit_entry_line, audit_settings_text, emit_json

    with open_db(db) as database:
        settings = database.audit.settings()
        entries = database.audit.entries(limit)
    if json:
        emit_json({"settings": settings, "entries": entries})
        return
    echo("\n".join([audit_settings_text(settings), *map(audit_entry_line, entries)]))
    if not entries:  # as `list` says so of no speakers: an empty log is not a failure
        typer.echo(
            "no decisions logged yet (identify and verify log them while it is on)", err=True
        )


@audit_app.command("clear", epilog=examples("speakerdb audit clear", "speakerdb audit clear --yes"))
@handles_errors
def audit_clear(yes: YesOpt = False, db: DbOpt = None, json: JsonOpt = False) -> None:
    """Delete every logged decision.

    The settings stay as they are. Asks first on a terminal (--yes does not ask).
    """
    from ._render import emit_json

    confirm("Delete every logged decision?", yes, json)
    with open_db(db) as database:
        removed = database.audit.clear()
    if json:
        emit_json({"removed": removed})
    else:
        echo(f"deleted {removed} audit entries")
