"""The checks of a database, in the order they run: the one place the pre-decision
checks of :mod:`speakerdb.services._checks` are listed (kept apart from the seam
itself, which the checks import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._replay import replay_checks
from ._speech_rule import speech_checks

if TYPE_CHECKING:
    from ..storage import Storage
    from ._checks import QueryCheck
    from ._settings import Settings

__all__ = ["query_checks"]


def query_checks(storage: Storage, settings: Settings) -> tuple[QueryCheck, ...]:
    """The checks of a database, in the order they run: replay first, so a replayed clip
    is refused as a replay whatever its length (see :mod:`speakerdb.services._checks`)."""
    return (*replay_checks(storage, settings), *speech_checks(storage, settings))
