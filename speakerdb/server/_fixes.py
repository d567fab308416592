"""How the service spells the fixes errors name (:class:`speakerdb.errors.Fix`), and the
error document it answers with.

A client of the service fixes a request, not a command line: it is told the endpoint to
call or the field to send (``GET /v1/speakers``, ``force=true``). A fix that only the
server's operator can apply (a group to make, an opt-out to clear, the database file or
the model of :attr:`~speakerdb.errors.SpeakerDBError.operator_fix` errors) is said to be
the operator's, on the server, so a client does not look for an endpoint that is not
there. The document adds ``fix`` to ``type`` and ``message`` (which stay as they were)::

    {"error": {"type": "EnrollmentRefused", "message": "...; send force=true ...",
               "fix": {"code": "force", "args": {"name": "alice"}, "by": "client",
                       "hint": "send force=true ..."}}}
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from ..errors import Fix, SpeakerDBError, Spellings, error_document

__all__ = ["HTTP_FIXES", "OPERATOR_FIXES", "document"]


def _force(args: Mapping[str, str]) -> str:
    name = urllib.parse.quote(args.get("name", "NAME"), safe="")
    return f"send force=true (`POST /v1/speakers/{name}/enrollments?force=true`) to enroll anyway"


HTTP_FIXES: Spellings = {
    Fix.LIST_SPEAKERS: "GET /v1/speakers lists who is enrolled",
    Fix.LIST_GROUPS: (
        "send the name of an existing group as `group`, or leave it out; the server's "
        "operator lists the groups (`speakerdb group list`) and makes one "
        "(`speakerdb group add {group} NAME...`) on the server"
    ),
    Fix.FORCE: _force,
    Fix.THRESHOLD: (
        "send `threshold` as a number within the score's range, or leave it out to decide at "
        "the database's threshold"
    ),
    Fix.CLEAR_OPT_OUT: (
        "if they consent again, the server's operator clears it first "
        "(`speakerdb opt-out --clear`, on the server)"
    ),
    # A retry is the client's; turning the guard off is the operator's, on the server.
    Fix.AUDIT_OFF: (
        "retry once the database is writable; if it stays unwritable, the server's operator "
        "may turn auditing off (`speakerdb audit off`, on the server)"
    ),
    Fix.REPLAY_WINDOW_OFF: (
        "retry once the database is writable; if it stays unwritable, the server's operator "
        "may turn the replay window off (`speakerdb replay-window 0`, on the server)"
    ),
}

#: The fixes that over HTTP are the operator's to apply, not the client's.
OPERATOR_FIXES = frozenset({Fix.CLEAR_OPT_OUT})

_OPERATOR = "the server cannot answer this; its operator must fix it on the server: "


def document(exc: SpeakerDBError) -> dict[str, dict[str, Any]]:
    """The error document the service answers ``exc`` with: the library's
    (:func:`~speakerdb.errors.error_document`) with the fix spelled for HTTP and
    ``fix.by`` saying whose fix it is (``client`` or ``operator``): the operator's for
    the fixes of :data:`OPERATOR_FIXES` and for errors of the server's (a database that
    cannot be written: :attr:`~speakerdb.errors.SpeakerDBError.operator_fix`)."""
    found = error_document(exc, HTTP_FIXES)
    error = found["error"]
    if exc.fix is not None:
        operators = exc.fix in OPERATOR_FIXES or exc.operator_fix
        error["fix"]["by"] = "operator" if operators else "client"
    elif exc.operator_fix:
        error["message"] = _OPERATOR + error["message"]
        error["fix"] = {"code": None, "args": {}, "by": "operator", "hint": None}
    return found
