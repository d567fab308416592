"""The speech-amount rule (``outcome`` ``not_enough_speech``): a slot of
:mod:`speakerdb.services._checks`.

No rule is installed yet: every clip goes on to the score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..storage import Storage
    from ._checks import QueryCheck
    from ._settings import Settings

__all__ = ["speech_checks"]


def speech_checks(storage: Storage, settings: Settings) -> tuple[QueryCheck, ...]:
    """The speech-amount checks of a database: none yet."""
    return ()
