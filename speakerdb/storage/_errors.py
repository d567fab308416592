"""The storage's errors, worded once for every backend: a name nobody is enrolled under, a
database no write has created yet, and what SQLite's errors mean for the user (busy, a
folder it cannot write in, a full disk or a file-size limit), each naming the fix."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import DatabaseBusy, DatabaseError, Fix, SpeakerNotFound

__all__ = [
    "missing_database",
    "missing_folder",
    "no_such_speaker",
    "sqlite_busy",
    "sqlite_error",
    "unwritable_folder",
]


def no_such_speaker(name: str, enrolled: Iterable[str] = ()) -> SpeakerNotFound:
    """The error for a name nobody is enrolled under (one wording for every reader), with
    the closest of the ``enrolled`` names as a suggestion ("did you mean 'carlo'?"), and
    the way to see who is enrolled (:attr:`Fix.LIST_SPEAKERS`) either way, so that a
    client branching on the fix finds it on every such error."""
    import difflib

    close = difflib.get_close_matches(name, list(enrolled), n=3, cutoff=0.6)
    guess = " (did you mean " + " or ".join(repr(c) for c in close) + "?)" if close else ""
    return SpeakerNotFound(f"no speaker named {name!r}{guess}", fix=Fix.LIST_SPEAKERS)


def missing_database(path: object, *, unfinished: bool = False) -> DatabaseError:
    """The error for a read of a database that no write has created yet: the file is
    missing, or (``unfinished``) its first write never committed."""
    if unfinished:
        return DatabaseError(
            f"{path}: the database is not finished: its first enrollment has not completed "
            "(it is under way, or was interrupted); enroll a speaker to create it, or check --db"
        )
    return DatabaseError(f"{path}: no such database; check --db, or enroll a speaker to create it")


def sqlite_error(path: object, exc: BaseException, busy_timeout_s: float) -> DatabaseError:
    """The error, naming the fix, for ``exc`` raised by SQLite on the database at ``path``."""
    import sqlite3

    if sqlite_busy(exc):
        return DatabaseBusy(
            f"{path}: another program kept the database busy for over "
            f"{busy_timeout_s:.0f} s; retry, or end the program that holds it "
            "(an open transaction in an sqlite3 shell, for instance)"
        )
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return unwritable_folder(path, str(exc))
    if code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
        return DatabaseError(f"{path}: {exc}: {_write_failure(path)}")
    if isinstance(exc, sqlite3.OperationalError):
        return DatabaseError(f"{path}: {exc}")
    return DatabaseError(f"{path}: database is corrupt or unreadable ({exc})")


def missing_folder(path: object) -> str:
    """The message for a file to be written at ``path`` whose folder does not exist."""
    import os.path

    folder = os.path.dirname(os.path.abspath(str(path)))
    return f"{path}: folder {folder} does not exist; create it first (`mkdir -p {folder}`)"


def unwritable_folder(path: object, cause: str) -> DatabaseError:
    """The error for a database whose file, or whose ``-wal`` and ``-shm`` files beside it,
    cannot be created or written (a read-only or immutable folder, another owner)."""
    import os.path

    folder = os.path.dirname(os.path.abspath(str(path)))
    return DatabaseError(
        f"{path}: cannot open or write the database ({cause}); SQLite needs to create and "
        f"write the file and its -wal and -shm files beside it: make the folder {folder} "
        "writable for this user (and not immutable: `lsattr -d`), or pass a database in "
        "another folder with --db"
    )


def _write_failure(path: object) -> str:
    """What stopped a write, as far as can be told once SQLite has said only "disk I/O
    error" or "database or disk is full" (it keeps the errno to itself)."""
    import os.path
    import resource
    import shutil

    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        return (
            f"this process may not write files over {soft} bytes (a file-size limit, "
            "`ulimit -f`); raise the limit (`ulimit -f unlimited`) and retry"
        )
    folder = os.path.dirname(os.path.abspath(str(path)))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < 16 * 1024 * 1024:
        return f"the disk holding {folder} is full ({free} bytes free); free space and retry"
    return (
        f"the disk holding {folder} may be full or your disk quota used up "
        "(`quota -s`), or the disk failing; free space or raise the quota, and retry"
    )


def sqlite_busy(exc: BaseException | None) -> bool:
    """Whether SQLite raised ``exc`` for SQLITE_BUSY or SQLITE_LOCKED."""
    import sqlite3

    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc) or "busy" in str(exc)  # "database is locked"...
