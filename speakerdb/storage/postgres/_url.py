"""A PostgreSQL URL: the driver it runs on, how it is shown, and its errors.

A URL may hold a password. It is shown only through :func:`masked`, and every
error of the server or the driver goes through :func:`server_error`, which
strips the password from the message as well: ``info``, the logs and the
errors never carry it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from ...errors import DatabaseBusy, DatabaseError, InputError

__all__ = ["engine_url", "masked", "server_error", "translated"]


def engine_url(url: str) -> URL:
    """``url`` for SQLAlchemy, on psycopg 3 (``postgresql://`` means psycopg2 to SQLAlchemy)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError and ValueError, with the URL in them
        raise InputError(f"{masked(url)}: not a valid PostgreSQL URL") from exc
    if not parsed.database:
        raise InputError(
            f"{masked(url)}: names no database; add one, as in postgresql://HOST/speakers"
        )
    return parsed.set(drivername="postgresql+psycopg")


def masked(url: str | URL) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return "a PostgreSQL URL that cannot be parsed"
    shown = parsed.set(drivername=parsed.drivername.split("+")[0])
    return shown.render_as_string(hide_password=True)


def server_error(url: URL, exc: BaseException) -> DatabaseError:
    """The error, naming the fix, for ``exc`` raised by the server or the driver."""
    where = masked(url)
    message = _first_line(exc)
    if url.password:
        message = message.replace(url.password, "***")
    cause = getattr(exc, "orig", None) or exc
    sqlstate = getattr(cause, "sqlstate", None) or ""
    if sqlstate in ("40001", "40P01", "55P03"):  # serialization failure, deadlock, lock
        return DatabaseBusy(f"{where}: the server gave up a transaction ({message}); retry")
    # At connection time psycopg gives no SQLSTATE: the server's message says it.
    if sqlstate == "3D000" or f'database "{url.database}" does not exist' in message:
        database = url.database or "?"
        return DatabaseError(
            f"{where}: database {database!r} does not exist; create it "
            f"(`createdb {database}`, or CREATE DATABASE) or check --db"
        )
    if _lost_connection(cause, sqlstate):
        return DatabaseError(
            f"{where}: cannot reach the PostgreSQL server ({message}); check that it is "
            "running and accepts connections: speakerdb reconnects by itself once it does"
        )
    return DatabaseError(f"{where}: {message}")


def _lost_connection(cause: BaseException, sqlstate: str) -> bool:
    # Class 08 is connection exceptions; 57P0x the server shutting down or restarting.
    if sqlstate.startswith("08") or sqlstate.startswith("57P"):
        return True
    import psycopg

    return isinstance(cause, psycopg.OperationalError) and not sqlstate


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


@contextmanager
def translated(url: URL) -> Iterator[None]:
    """A block whose driver errors become :class:`DatabaseError` naming the fix."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        raise server_error(url, exc) from None
