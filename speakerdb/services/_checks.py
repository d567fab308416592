"""The seam where a query's outcome is decided before its score is: the pre-decision checks.

Every identify and verify clip is decoded, then offered to each
:class:`QueryCheck` in turn, in the order :func:`~speakerdb.services._checklist.query_checks`
lists them. The first
check that returns a :class:`Verdict` gives the clip's outcome
(``not_enough_speech`` or ``replay``, :class:`~speakerdb.types.Outcome`) and its
reason; the clip is still embedded and scored, so its matches and score are kept
(the audit log has them), but no one is named and no claim is accepted. A clip no
check answers is decided by its score: ``accepted``, ``rejected`` or ``unknown``.

Once the decision is logged (:mod:`speakerdb.services._audit`), every check's
:meth:`QueryCheck.decided` hears each clip's outcome: a replay check remembers what
this database has decided, for its window.

A new check is one module with a factory ``(storage, settings) -> sequence of
checks``, called once when a database is opened, and one line in
:func:`~speakerdb.services._checklist.query_checks`. The factories of the checks of issue 11 are:

- :func:`speakerdb.services._replay.replay_checks`: ``replay``, when the clip's
  acoustic fingerprint matches an enrolled clip or a recent query;
- :func:`speakerdb.services._speech_rule.speech_checks`: ``not_enough_speech``, when the
  clip holds too little net speech for a secure decision.

Replay runs first: a replayed clip is refused as a replay whatever its length.
A check must be thread-safe (queries run from several threads) and must not
raise for a clip that decoded: its answer is an outcome, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ..types import Outcome

if TYPE_CHECKING:
    from ..audio._decode import Clip

__all__ = ["Query", "QueryCheck", "Verdict", "first_verdict"]


@dataclass(frozen=True, slots=True)
class Query:
    """One clip of an identify or verify, as the checks see it."""

    operation: Literal["identify", "verify"]
    clip: Clip
    #: The claimed speaker of a verify (``None`` for identify).
    claimed: str | None = None
    #: The caller's session (``replay_session``): its own earlier queries are not replays.
    session: str | None = None
    #: Once decided, the speaker the decision was about: the claimed one of a verify, the
    #: best candidate of an identify (``None`` before the decision, or with no one enrolled).
    named: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's answer: the outcome and why, in words that name the fix."""

    outcome: Outcome
    reason: str

    def __post_init__(self) -> None:
        if self.outcome in (Outcome.ACCEPTED, Outcome.REJECTED, Outcome.UNKNOWN):
            raise ValueError(f"a check cannot decide {self.outcome.value!r}: the score does")


class QueryCheck(Protocol):
    """A check that may answer a query before its score decides."""

    def check(self, query: Query) -> Verdict | None:
        """The verdict on ``query``, or ``None`` to let the next check (or the score) decide."""
        ...

    def decided(self, query: Query, outcome: Outcome) -> None:
        """Hear the outcome given to ``query`` once it is logged (may do nothing)."""
        ...


def first_verdict(checks: Sequence[QueryCheck], query: Query) -> Verdict | None:
    """The verdict of the first check that gives one, else ``None``."""
    for check in checks:
        verdict = check.check(query)
        if verdict is not None:
            return verdict
    return None
