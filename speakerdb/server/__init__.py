"""``speakerdb serve``: the HTTP and WebSocket service, a thin front end of
:class:`~speakerdb.SpeakerDB` (parse, authenticate, call the library, render, map
errors to statuses), with the operator page at ``/``.

Needs the ``server`` extra (FastAPI, uvicorn, python-multipart, websockets). The
modules: :mod:`._app` builds the app, :mod:`._routes` the HTTP endpoints,
:mod:`._streams` the WebSocket streams, :mod:`._auth` checks keys, :mod:`._limits`
the caps, :mod:`._work` runs library calls on worker threads, :mod:`._idempotency`
replays a retried decision, :mod:`._metrics` counts for Prometheus, :mod:`._page`
serves the operator page and :mod:`._run` starts uvicorn.
"""

from ._app import create_app
from ._limits import Limits
from ._run import run

__all__ = ["Limits", "create_app", "run"]
