"""How the ``speakerdb`` command spells the fixes errors name (:class:`speakerdb.errors.Fix`):
as the command or flag a user of this CLI runs."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from ..errors import Fix, SpeakerDBError, Spellings

__all__ = ["CLI_FIXES", "cli_message"]


def _clear_opt_out(args: Mapping[str, str]) -> str:
    if "external_id" in args:
        clear = f"--id {shlex.quote(args['external_id'])}"
    else:
        clear = shlex.quote(args["name"])
    return f"if they consent again, clear it first (`speakerdb opt-out --clear {clear}`)"


CLI_FIXES: Spellings = {
    Fix.LIST_SPEAKERS: "`speakerdb list` shows who is enrolled",
    Fix.LIST_GROUPS: (
        "`speakerdb group list` shows the groups, and `speakerdb group add {group} NAME...` "
        "makes it"
    ),
    Fix.FORCE: "--force enrolls anyway",
    Fix.THRESHOLD: "give --threshold a number within the score's range",
    Fix.CLEAR_OPT_OUT: _clear_opt_out,
    Fix.AUDIT_OFF: (
        "retry once the database is writable, or turn auditing off (`speakerdb audit off`)"
    ),
    Fix.REPLAY_WINDOW_OFF: (
        "retry once the database is writable, or turn the replay window off "
        "(`speakerdb replay-window 0`, or SPEAKERDB_REPLAY_WINDOW=0)"
    ),
}


def cli_message(exc: SpeakerDBError) -> str:
    """The error's message with its fix spelled for this CLI."""
    return exc.spelled(CLI_FIXES)
