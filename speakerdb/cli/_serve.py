"""``speakerdb serve``: the HTTP and WebSocket service (the ``server`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import (
    BackendOpt,
    DbOpt,
    ModelOpt,
    OfflineOpt,
    RevisionOpt,
    examples,
    handles_errors,
    open_db,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        epilog=examples(
            "speakerdb key create ops --scope admin   # the key is printed once",
            "speakerdb serve --port 8000",
            "speakerdb serve --host 0.0.0.0 --ssl-certfile cert.pem --ssl-keyfile key.pem",
        ),
    )(handles_errors(serve))


def serve(
    host: Annotated[
        str,
        typer.Option(
            "--host", metavar="HOST", help="Address to listen on (off loopback only with keys)."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 8000,
    db: DbOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    backend: BackendOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, max=64, help="Library calls (decode, embed, search) run at once."
        ),
    ] = 2,
    ssl_certfile: Annotated[
        Optional[Path],
        typer.Option(
            "--ssl-certfile", metavar="FILE", help="TLS certificate (PEM), for HTTPS and WSS."
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Optional[Path], typer.Option("--ssl-keyfile", metavar="FILE", help="TLS private key (PEM).")
    ] = None,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0.001, help="Largest request body (413 beyond).")
    ] = 64.0,
    max_clip_s: Annotated[
        float, typer.Option("--max-clip-s", min=1.0, help="Longest clip, in seconds (413 beyond).")
    ] = 120.0,
) -> None:
    """Serve the database over HTTP and WebSocket.

    The operator page is at /. Every endpoint but / and /healthz needs a key
    (`speakerdb key create`). The model is loaded once, at start. SIGTERM finishes
    the requests in flight.
    """
    try:
        from ..server import Limits, run
    except ImportError as exc:
        from ..errors import InputError

        raise InputError(
            f"the service needs the 'server' extra ({exc.name} is missing): "
            "pip install 'speakerdb[server]'"
        ) from None
    with open_db(db, model, revision=revision, offline=offline, backend=backend) as database:
        run(
            database,
            host=host,
            port=port,
            limits=Limits(
                workers=workers, max_body_bytes=int(max_body_mb * 2**20), max_clip_s=max_clip_s
            ),
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
