"""Start the service: open the database, refuse bad settings and listening off loopback
without keys, load the model once, and run uvicorn (which, on SIGTERM or Ctrl-C, stops taking
connections and finishes the requests in flight before it exits)."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from .._facade import SpeakerDB
    from ._limits import Limits

__all__ = ["is_loopback", "run"]

log = logging.getLogger(__name__)

#: How long a SIGTERM waits for the requests in flight.
GRACEFUL_S = 60


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_settings(db: SpeakerDB) -> None:
    """Resolve now what every request reads (thresholds, replay window, countermeasure).

    A bad ``SPEAKERDB_THRESHOLD``, ``SPEAKERDB_REPLAY_WINDOW`` or
    ``SPEAKERDB_COUNTERMEASURE`` otherwise let the server start and failed every decision
    with a 400 that told the client to fix a variable only the operator can set.
    """
    for operation in ("identify", "verify"):
        db.policy(operation=operation)
    db.guards.replay_window()
    db.guards.countermeasure()


def run(
    db: SpeakerDB,
    *,
    host: str,
    port: int,
    limits: Limits,
    ssl_certfile: str | os.PathLike[str] | None = None,
    ssl_keyfile: str | os.PathLike[str] | None = None,
) -> None:
    """Serve ``db`` on ``host:port`` until SIGTERM or SIGINT."""
    import uvicorn

    from ._app import create_app

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise InputError("TLS needs both --ssl-certfile and --ssl-keyfile")
    if not is_loopback(host) and not db.keys.list():
        raise InputError(
            f"refusing to listen on {host}, which is not loopback, while the database has no "
            "keys: create one first (`speakerdb key create NAME --scope admin`)"
        )
    _check_settings(db)
    db.encoder()  # the model loads now, once, not at the first request
    config = uvicorn.Config(
        create_app(db, limits),
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        timeout_graceful_shutdown=GRACEFUL_S,
        server_header=False,
        log_level="info",
    )
    uvicorn.Server(config).run()
