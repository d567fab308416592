"""The ASGI app: the endpoints, the streams, the page, the error handlers and the
metrics middleware, around one open :class:`~speakerdb.SpeakerDB`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response

from .. import __version__
from . import _page, _routes, _streams
from ._errors import install_error_handlers
from ._limits import Limits
from ._state import Service

if TYPE_CHECKING:
    from .._facade import SpeakerDB

__all__ = ["create_app"]

_DESCRIPTION = (
    "Enroll speakers, then identify or verify who is speaking. Every endpoint but `/` and "
    "`/healthz` needs `Authorization: Bearer KEY` (the server's operator makes keys with "
    '`speakerdb key create`). Errors are `{"error": {"type": ..., "message": ..., "fix": '
    '{"code": ..., "by": "client" | "operator", "hint": ...}}}`: `fix` says what fixes the '
    "request (an endpoint to call, a field to send), or that the fix is the operator's."
)


def create_app(db: SpeakerDB, limits: Limits | None = None) -> FastAPI:
    """The service on ``db`` (which the caller opens and closes)."""
    service = Service.start(db, limits or Limits())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.workers.close()  # after uvicorn has finished the requests in flight

    app = FastAPI(
        title="speakerdb",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        # Served by _routes behind a key instead: every endpoint but / and /healthz needs one.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    app.include_router(_page.router)
    app.include_router(_routes.router)
    app.include_router(_streams.router)

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        service.metrics.request(
            request.method, route, response.status_code, time.perf_counter() - started
        )
        return response

    return app
