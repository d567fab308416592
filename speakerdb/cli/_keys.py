"""``speakerdb key``: the keys of the HTTP service (``speakerdb serve``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ._common import DbOpt, JsonOpt, echo, examples, handles_errors, open_db

__all__ = ["key_app"]

key_app: typer.Typer = typer.Typer(
    help="Keys of the HTTP service (speakerdb serve).", no_args_is_help=True
)

KeyNameArg = Annotated[
    str, typer.Argument(metavar="KEY", help="The key's name (letters, digits, '.', '_', '-').")
]


@key_app.command(
    "create",
    epilog=examples(
        "speakerdb key create door-1 --scope query",
        "speakerdb key create ops --scope admin --json",
        "speakerdb key create door-a --scope query --group door-a   # confined to door-a",
    ),
)
@handles_errors
def key_create(
    name: KeyNameArg,
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="'query' (identify, verify, list) or 'admin' (everything).",
        ),
    ] = "query",
    group: Annotated[
        Optional[str],
        typer.Option(
            "--group",
            metavar="GROUP",
            help="Bind the key to a group: its queries consider only that group's members, "
            "and may name no other.",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a key and print it, once: only its hash is stored.

    Requests send it as `Authorization: Bearer KEY`.
    """
    from ._render import emit_json, safe

    with open_db(db, create=True) as database:
        key, secret = database.keys.create(name, scope, group=group)
    if json:
        emit_json({"name": key.name, "scope": key.scope, "group": key.group, "key": secret})
        return
    echo(secret)
    bound = f", bound to group {safe(key.group)}" if key.group else ""
    typer.echo(
        f"speakerdb: created {key.scope} key {safe(key.name)}{bound}; it is shown only now: "
        "keep it safe",
        err=True,
    )


@key_app.command("list", epilog=examples("speakerdb key list", "speakerdb key list --json"))
@handles_errors
def key_list(db: DbOpt = None, json: JsonOpt = False) -> None:
    """List the keys: name, scope and creation time (never the secret)."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        keys = database.keys.list()
    if json:
        emit_json(keys)
        return
    for key in keys:
        bound = f"\tgroup {safe(key.group)}" if key.group else ""
        echo(f"{safe(key.name)}\t{key.scope}\t{key.created_at:%Y-%m-%d %H:%M:%S}Z{bound}")
    if not keys:
        typer.echo("no keys; create one with `speakerdb key create NAME --scope ...`", err=True)


@key_app.command("revoke", epilog=examples("speakerdb key revoke door-1"))
@handles_errors
def key_revoke(name: KeyNameArg, db: DbOpt = None, json: JsonOpt = False) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from ._render import emit_json, safe

    with open_db(db) as database:
        key = database.keys.revoke(name)
    if json:
        emit_json(key)
    else:
        echo(f"revoked {key.scope} key {safe(key.name)}")
