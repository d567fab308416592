"""Start the service: open the database, refuse bad settings and listening off loopback
without keys, load the model once, and run uvicorn (which, on SIGTERM or Ctrl-C, stops taking
connections and finishes the requests in flight before it exits)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
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


#: What to do when the address cannot be bound, by the error's errno.
_BIND_FIXES = {
    errno.EADDRINUSE: "another program listens there: choose another --port, or stop it",
    errno.EADDRNOTAVAIL: "this machine has no such address: check --host",
    errno.EACCES: "ports below 1024 need privileges: choose a --port of 1024 or more",
}


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, before the model loads.

    Left to uvicorn, a port in use was found only after the model had loaded, and ended
    the process with uvicorn's own log lines and exit code 3, which is the CLI's "not
    enough speech"; bound here, it is a one-line error naming the fix, exit 2.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fix = _BIND_FIXES.get(exc.errno or 0, "check --host and --port")
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {fix}") from exc
    sock.set_inheritable(True)
    return sock


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
    sock = _listen(host, port)
    try:
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
        _log_listening(sock, host, tls=ssl_certfile is not None)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _log_listening(sock: socket.socket, host: str, *, tls: bool) -> None:
    """uvicorn's "running on" line, which it leaves to whoever bound a socket it is given
    (the port is the one bound, also for ``--port 0``)."""
    where = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "https" if tls else "http",
        where,
        sock.getsockname()[1],
    )
