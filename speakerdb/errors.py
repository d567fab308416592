"""The one exception tree of speakerdb.

Every error the library raises on purpose derives from :class:`SpeakerDBError`,
and its message names the problem, the file or speaker involved, and the fix::

    SpeakerDBError
    ├── AudioError            a clip cannot be used (unreadable, too short, silent, ...)
    ├── ModelError            the encoder cannot be loaded or run
    ├── ModelMismatch         the database was built with another encoder
    ├── InvalidName           a speaker name is empty, too long or has control characters
    ├── SpeakerNotFound       no speaker of that name
    ├── DuplicateSpeaker      a speaker of that name exists already
    ├── DuplicateUtterance    the same audio is enrolled already
    ├── EnrollmentRefused     a quality gate refused the clips (``force`` overrides it)
    ├── DatabaseError         the database file cannot be opened or written
    │   └── SchemaError       the schema is older or newer than this speakerdb
    └── InputError            a bad argument or manifest (threshold out of range, ...)

Backend errors (SQLAlchemy, FAISS, soundfile, transformers) are wrapped with
``raise ... from exc`` so the cause stays in the traceback for debugging.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "DatabaseError",
    "DuplicateSpeaker",
    "DuplicateUtterance",
    "EnrollmentRefused",
    "InputError",
    "InvalidName",
    "ModelError",
    "ModelMismatch",
    "SchemaError",
    "SpeakerDBError",
    "SpeakerNotFound",
]


class SpeakerDBError(Exception):
    """Base class of every error speakerdb raises on purpose."""


class AudioError(SpeakerDBError):
    """A clip cannot be decoded or does not hold enough usable audio."""


class ModelError(SpeakerDBError):
    """The speaker encoder cannot be loaded or run."""


class ModelMismatch(SpeakerDBError):
    """The database holds embeddings of another encoder than the one asked for."""


class InvalidName(SpeakerDBError):
    """A speaker name is not acceptable."""


class SpeakerNotFound(SpeakerDBError):
    """No speaker has the given name."""


class DuplicateSpeaker(SpeakerDBError):
    """A speaker with the given name exists already."""


class DuplicateUtterance(SpeakerDBError):
    """The same decoded audio is enrolled already."""


class EnrollmentRefused(SpeakerDBError):
    """An enrollment quality gate refused the clips; ``issues`` says why."""

    def __init__(self, message: str, issues: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.issues = issues


class DatabaseError(SpeakerDBError):
    """The database file cannot be opened, read or written."""


class SchemaError(DatabaseError):
    """The database schema revision does not match this version of speakerdb."""


class InputError(SpeakerDBError):
    """An argument or input file is malformed."""


def no_such_speaker(name: str) -> SpeakerNotFound:
    """The error for a name nobody is enrolled under (one wording for every reader)."""
    return SpeakerNotFound(f"no speaker named {name!r}; `speakerdb list` shows who is enrolled")


def sqlite_error(path: object, exc: BaseException, busy_timeout_s: float) -> DatabaseError:
    """The error, naming the fix, for ``exc`` raised by SQLite on the database at ``path``."""
    import sqlite3

    if sqlite_busy(exc):
        return DatabaseError(
            f"{path}: another program kept the database busy for over "
            f"{busy_timeout_s:.0f} s; retry, or end the program that holds it "
            "(an open transaction in an sqlite3 shell, for instance)"
        )
    if isinstance(exc, sqlite3.OperationalError):
        return DatabaseError(f"{path}: {exc}")
    return DatabaseError(f"{path}: database is corrupt or unreadable ({exc})")


def sqlite_busy(exc: BaseException | None) -> bool:
    """Whether SQLite raised ``exc`` for SQLITE_BUSY or SQLITE_LOCKED."""
    import sqlite3

    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc) or "busy" in str(exc)  # "database is locked"...
