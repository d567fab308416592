"""The one exception tree of speakerdb.

Every error the library raises on purpose derives from :class:`SpeakerDBError`,
and its message names the problem, the file or speaker involved, and the fix::

                              exit  HTTP
    SpeakerDBError
    ├── AudioError             2    400   a clip is unreadable, too short, too long, silent, ...
    ├── ModelError             2    500   the encoder cannot be loaded or run
    ├── ModelMismatch          2    409   the database was built with another encoder
    ├── InvalidName            2    400   a speaker name is empty, too long or has controls
    ├── SpeakerNotFound        2    404   no speaker of that name
    ├── GroupNotFound          2    404   no group of that name
    ├── DuplicateSpeaker       2    409   a speaker of that name exists already
    ├── DuplicateUtterance     2    409   the same audio is enrolled already
    ├── EnrollmentRefused      2    422   a quality gate refused the clips (``force``)
    ├── OptedOut               2    409   the person opted out: not enrolled again
    ├── DatabaseError          2    500   the database file cannot be opened or written
    │   ├── DatabaseBusy       2    503   another program held it past the timeout; retry
    │   └── SchemaError        2    500   the schema is older or newer than this speakerdb
    ├── InputError             2    400   a bad argument or manifest (a threshold > 1, ...)
    │   └── TooLarge           2    413   a request body or a clip over the service's cap
    └── ServiceError           2    500   what only the HTTP service (speakerdb serve) refuses
        ├── Unauthorized       2    401   no key, or not a key of this database
        ├── Forbidden          2    403   the key's scope does not allow the request
        ├── RequestTimeout     2    408   the request's body did not arrive in time
        └── ServiceBusy        2    503   every worker busy and the queue full; retry

Each class states what a front end answers with: :attr:`~SpeakerDBError.exit_code`
for the ``speakerdb`` command and :attr:`~SpeakerDBError.http_status` for a
service, and :func:`error_document` is the JSON body that describes the error.
One table, here, so the CLI and a service cannot disagree.

Backend errors (SQLAlchemy, FAISS, soundfile, transformers) are wrapped with
``raise ... from exc`` so the cause stays in the traceback for debugging.

A fix that a caller applies through the front end it uses (see who is enrolled, enroll
despite the gates, give a threshold within range) is carried as data, a :class:`Fix`
with its arguments, not only as text: the library raises
``SpeakerNotFound("no speaker named 'carol'", fix=Fix.LIST_SPEAKERS)``, and each front
end spells the fix its own way with :meth:`SpeakerDBError.spelled`: the CLI as a
command or flag (```speakerdb list```, ``--force``), the service as an endpoint or a
request field (``GET /v1/speakers``, ``force=true``), ``str(exc)`` in Python
(``db.speakers()``, ``force=True``). A fix that is no caller's to apply (the database
file, the model) stays in the message; :attr:`SpeakerDBError.operator_fix` says so, and
a service tells its client that the server's operator must act.

An error document read back (:func:`error_from_document`, as :mod:`speakerdb.client`
reads a service's answers) is the same class with the same ``fix`` and ``fix_args``;
its message is the document's, the fix spelled as the front end that answered spelled it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Union

__all__ = [
    "PYTHON_FIXES",
    "AudioError",
    "DatabaseBusy",
    "DatabaseError",
    "DuplicateSpeaker",
    "DuplicateUtterance",
    "EnrollmentRefused",
    "Fix",
    "Forbidden",
    "GroupNotFound",
    "InputError",
    "InvalidName",
    "ModelError",
    "ModelMismatch",
    "OptedOut",
    "RequestTimeout",
    "SchemaError",
    "ServiceBusy",
    "ServiceError",
    "SpeakerDBError",
    "SpeakerNotFound",
    "Spelling",
    "Spellings",
    "TooLarge",
    "Unauthorized",
    "error_document",
    "error_from_document",
    "spell",
]


class Fix(str, enum.Enum):
    """The fix an error names, as a stable code (the service's error documents carry it
    as ``fix.code``, so a client may branch on it). Each front end keeps one spelling
    per code (:data:`Spellings`); the error's ``fix_args`` fill it in."""

    #: The name is not enrolled: see who is.
    LIST_SPEAKERS = "list_speakers"
    #: The group does not exist (``group``): see the groups, or make it.
    LIST_GROUPS = "list_groups"
    #: A quality gate refused the clips (of ``name``): enroll them anyway.
    FORCE = "force"
    #: The threshold given is out of the score's range: give one within it.
    THRESHOLD = "threshold"
    #: The person opted out (``name`` or ``external_id``): clear it if they consent again.
    CLEAR_OPT_OUT = "clear_opt_out"
    #: A decision could not be written to the audit log: retry, or turn auditing off.
    AUDIT_OFF = "audit_off"
    #: A decision's fingerprint could not be kept for the replay window: retry, or turn
    #: the window off.
    REPLAY_WINDOW_OFF = "replay_window_off"

    @property
    def code(self) -> str:
        """The stable code, as an error document's ``fix.code`` spells it."""
        return str(self.value)


#: A front end's spelling of a fix: a ``str.format`` template of the error's
#: ``fix_args``, or a function of them.
Spelling = Union[str, Callable[[Mapping[str, str]], str]]
Spellings = Mapping[Fix, Spelling]


def _clear_opt_out_in_python(args: Mapping[str, str]) -> str:
    call = f"external_id={args['external_id']!r}" if "external_id" in args else repr(args["name"])
    return f"if they consent again, clear it first (db.lifecycle.clear_opt_out({call}))"


#: How ``str(exc)`` spells each fix: for a caller of the library.
PYTHON_FIXES: Spellings = {
    Fix.LIST_SPEAKERS: "db.speakers() lists who is enrolled",
    Fix.LIST_GROUPS: (
        "db.lifecycle.groups.list() shows the groups, and "
        "db.lifecycle.groups.add({group!r}, [NAME, ...]) makes it"
    ),
    Fix.FORCE: "force=True enrolls anyway",
    Fix.THRESHOLD: "give threshold= a number within the score's range",
    Fix.CLEAR_OPT_OUT: _clear_opt_out_in_python,
    Fix.AUDIT_OFF: (
        "retry once the database is writable, or turn auditing off (db.audit.configure(False))"
    ),
    Fix.REPLAY_WINDOW_OFF: (
        "retry once the database is writable, or turn the replay window off "
        "(db.guards.set_replay_window(0), or SPEAKERDB_REPLAY_WINDOW=0)"
    ),
}


def spell(spelling: Spelling, args: Mapping[str, str]) -> str:
    """``spelling`` filled in with ``args``."""
    return spelling(args) if callable(spelling) else spelling.format(**args)


class SpeakerDBError(Exception):
    """Base class of every error speakerdb raises on purpose."""

    #: The exit status of a ``speakerdb`` command that fails with this error (the
    #: same for every class today: 1 is kept for a negative answer, see the README).
    exit_code: ClassVar[int] = 2
    #: The HTTP status a service answers this error with.
    http_status: ClassVar[int] = 500
    #: Whether the fix is the operator's rather than a caller's (the database file, the
    #: model): a service's client cannot apply it, and the service says so.
    operator_fix: ClassVar[bool] = False

    def __init__(self, message: str = "", *, fix: Fix | None = None, **fix_args: str) -> None:
        #: The message without the fix: what went wrong.
        self.problem = message
        #: The fix, if the error names one that callers apply, and its arguments.
        self.fix = fix
        self.fix_args = fix_args
        super().__init__(self.spelled(PYTHON_FIXES))

    def spelled(self, spellings: Spellings) -> str:
        """The message with the fix spelled as ``spellings`` (a front end's) spell it."""
        if self.fix is None:
            return self.problem
        return f"{self.problem}; {self.fix_hint(spellings)}"

    def fix_hint(self, spellings: Spellings) -> str | None:
        """The fix alone, spelled as ``spellings`` spell it; ``None`` without a fix."""
        return None if self.fix is None else spell(spellings[self.fix], self.fix_args)


class AudioError(SpeakerDBError):
    """A clip cannot be decoded or does not hold enough usable audio."""

    http_status = 400


class ModelError(SpeakerDBError):
    """The speaker encoder cannot be loaded or run."""

    http_status = 500
    operator_fix = True


class ModelMismatch(SpeakerDBError):
    """The database holds embeddings of another encoder than the one asked for."""

    http_status = 409
    operator_fix = True


class InvalidName(SpeakerDBError):
    """A speaker name is not acceptable."""

    http_status = 400


class SpeakerNotFound(SpeakerDBError):
    """No speaker has the given name."""

    http_status = 404


class GroupNotFound(SpeakerDBError):
    """No group has the given name (``speakerdb group list`` shows the groups)."""

    http_status = 404


class DuplicateSpeaker(SpeakerDBError):
    """A speaker with the given name exists already."""

    http_status = 409


class DuplicateUtterance(SpeakerDBError):
    """The same decoded audio is enrolled already."""

    http_status = 409


class EnrollmentRefused(SpeakerDBError):
    """An enrollment quality gate refused the clips; ``issues`` says why."""

    http_status = 422

    def __init__(
        self,
        message: str,
        issues: tuple[object, ...] = (),
        *,
        fix: Fix | None = None,
        **fix_args: str,
    ) -> None:
        super().__init__(message, fix=fix, **fix_args)
        self.issues = issues


class OptedOut(SpeakerDBError):
    """The person opted out (``speakerdb opt-out``): their name's look-alikes and their
    external id are not enrolled again until the opt-out is cleared. ``force`` does not
    override it."""

    http_status = 409


class DatabaseError(SpeakerDBError):
    """The database file cannot be opened, read or written."""

    http_status = 500
    operator_fix = True


class DatabaseBusy(DatabaseError):
    """Another program kept the database, or the index lock, past the wait allowed.

    Nothing is wrong with the request: the same call may succeed once the other
    program is done, hence 503 (Service Unavailable) rather than 500, and a retry is the
    caller's fix.
    """

    http_status = 503
    operator_fix = False


class SchemaError(DatabaseError):
    """The database schema revision does not match this version of speakerdb."""

    http_status = 500


class InputError(SpeakerDBError):
    """An argument or input file is malformed."""

    http_status = 400


class TooLarge(InputError):
    """A request body, or a clip in it, is over the service's cap."""

    http_status = 413


class ServiceError(SpeakerDBError):
    """A refusal of the HTTP service (``speakerdb serve``) rather than of the library."""

    http_status = 500


class Unauthorized(ServiceError):
    """The request sent no key, or a key this database does not know (revoked, mistyped)."""

    http_status = 401


class Forbidden(ServiceError):
    """The key's scope does not allow the request (a ``query`` key asked to change)."""

    http_status = 403


class RequestTimeout(ServiceError):
    """The request's body, or a stream's audio, did not arrive in time."""

    http_status = 408


class ServiceBusy(ServiceError):
    """Every worker of the service is busy and its queue is full: retry after a moment."""

    http_status = 503


def error_document(
    exc: SpeakerDBError, spellings: Spellings = PYTHON_FIXES
) -> dict[str, dict[str, Any]]:
    """The JSON body that describes ``exc`` to a client:
    ``{"error": {"type": "SpeakerNotFound", "message": "no speaker named ..."}}``.

    ``type`` is the class name (a client may branch on it); ``message`` is the one-line
    message, its fix spelled by ``spellings`` (a front end's), line breaks (from a
    backend's text) joined by spaces. An error that names a :class:`Fix` adds
    ``"fix": {"code": ..., "args": {...}, "hint": ...}``: the fix's stable code, its
    arguments (``fix_args``: the ``name`` or ``group`` it is about) and its spelling.
    """
    message = _one_line(exc.spelled(spellings))
    error: dict[str, Any] = {"type": type(exc).__name__, "message": message}
    hint = exc.fix_hint(spellings)
    if exc.fix is not None and hint is not None:
        error["fix"] = {"code": exc.fix.code, "args": dict(exc.fix_args), "hint": _one_line(hint)}
    return {"error": error}


def error_from_document(document: Mapping[str, Any]) -> SpeakerDBError:
    """The error an error document (:func:`error_document`'s) describes: of the class its
    ``type`` names (:class:`ServiceError` for a name outside this tree), with the same
    ``fix`` and ``fix_args``, and the document's message, whose fix is spelled as the
    front end that wrote it spelled it (a service's hint, not a Python call). A fix
    code this version does not know is left in the message only. :class:`KeyError`
    or :class:`TypeError` when ``document`` is not an error document."""
    error = document["error"]
    kind = globals().get(str(error["type"]))
    cls = kind if isinstance(kind, type) and issubclass(kind, SpeakerDBError) else ServiceError
    message = str(error["message"])
    fix, args, hint = _fix_of(error.get("fix"))
    if fix is None or hint is None:
        return cls(message)
    found = cls(message.removesuffix(f"; {hint}"))
    found.fix, found.fix_args = fix, args
    found.args = (message,)  # str(found): the fix as the document spells it
    return found


def _fix_of(found: Any) -> tuple[Fix | None, dict[str, str], str | None]:
    """The fix, its arguments and its spelling in a document's ``fix`` member."""
    if not isinstance(found, Mapping):
        return None, {}, None
    try:
        fix = Fix(found.get("code"))
    except ValueError:
        return None, {}, None
    given = found.get("args")
    args = {str(k): str(v) for k, v in given.items()} if isinstance(given, Mapping) else {}
    hint = found.get("hint")
    return fix, args, hint if isinstance(hint, str) else None


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
