"""The replay check (``outcome`` ``replay``): a slot of :mod:`speakerdb.services._checks`.

No check is installed yet: every clip goes on to the next check and the score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..storage import Storage
    from ._checks import QueryCheck
    from ._settings import Settings

__all__ = ["replay_checks"]


def replay_checks(storage: Storage, settings: Settings) -> tuple[QueryCheck, ...]:
    """The replay checks of a database: none yet."""
    return ()
