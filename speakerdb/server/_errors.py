"""Every error answer is ``{"error": {"type": ..., "message": ...}}`` with the status
of :attr:`~speakerdb.errors.SpeakerDBError.http_status`, plus ``fix`` when the error
names one (:mod:`._fixes` spells it for HTTP): the library's errors, the
framework's own (request validation, unknown routes) and anything unexpected, which
is logged here and never shown as a traceback."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import Fix, InputError, SpeakerDBError
from ._fixes import document

__all__ = ["install_error_handlers", "unknown_parameter"]

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SpeakerDBError, _library_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _library_error(request: Request, exc: SpeakerDBError) -> JSONResponse:
    # The message is the library's as it is: clips are named as the client knows them
    # when they are decoded (server._body.Upload.called), so nothing is rewritten here.
    headers = None
    if exc.http_status == 503:  # a busy service or database may answer in a moment
        headers = {"Retry-After": "1"}
    elif exc.http_status == 401:  # HTTP requires the scheme to use with every 401
        headers = {"WWW-Authenticate": 'Bearer realm="speakerdb"'}
    return JSONResponse(document(exc), status_code=exc.http_status, headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems, fix, body = [], None, False
    for error in exc.errors():
        loc = tuple(str(part) for part in error.get("loc", ()))
        # The body's JSON decode error is located by offset; the client needs the field.
        where = ".".join(part for part in loc if not part.isdigit())
        problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        if loc == ("query", "threshold"):
            fix = Fix.THRESHOLD  # not a number: the same fix as a number out of range
        body = body or loc[:1] == ("body",)
    message = "; ".join(problems + [_JSON_BODY] * body) or "the request is not valid"
    # 422 as FastAPI's validation has always answered; the document as the library's.
    return JSONResponse(document(InputError(message, fix=fix)), status_code=422)


def unknown_parameter(name: str, known: list[str]) -> str:
    """Why query parameter ``name`` is refused, with the closest of ``known`` if any."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    takes = ", ".join(known) if known else "none"
    return f"not a parameter of this endpoint; {guess}it takes: {takes}"


_JSON_BODY = (
    "send the body as a JSON object with `Content-Type: application/json` "
    "(GET /openapi.json gives its fields)"
)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    headers = None
    if exc.status_code == 405:
        # HTTP requires Allow with a 405; Starlette's names one route's methods, not the path's.
        allowed = _allowed(request, exc)
        message = f"method not allowed here; this path takes {', '.join(allowed)}"
        headers = {"Allow": ", ".join(allowed)}
    elif exc.status_code == 404:
        message = "no such endpoint; GET /openapi.json (with a key) lists them"
    else:
        message = str(exc.detail)
    return _document(
        exc.status_code, "InputError", f"{request.method} {request.url.path}: {message}", headers
    )


def _allowed(request: Request, exc: HTTPException) -> list[str]:
    """The methods of the request's path: from the OpenAPI description (one path may be
    several routes, and Starlette's Allow names one route's), else Starlette's."""
    path = request.url.path
    for template, operations in request.app.openapi()["paths"].items():
        parts = re.split(r"(\{[^/]+?\})", template)  # /v1/speakers/{name}/verify
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        if re.fullmatch(pattern, path):
            return sorted(method.upper() for method in operations)
    given = (exc.headers or {}).get("Allow", "")
    return sorted(m.strip() for m in given.split(",") if m.strip())


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return _document(500, "ServiceError", f"unexpected {type(exc).__name__}; see the server's log")


def _document(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": kind, "message": " ".join(message.splitlines())}}
    return JSONResponse(body, status_code=status, headers=headers)
