"""``db.guards``: the settings of the checks that refuse a clip before its score
decides: the replay window (:mod:`speakerdb.services._replay`) and the countermeasure
(:mod:`speakerdb.decision._countermeasure`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..decision._countermeasure import Countermeasure
    from ._settings import Settings

__all__ = ["Guards"]


class Guards:
    """The replay window and the countermeasure of one database."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def replay_window(self) -> tuple[int, str]:
        """The replay window in seconds and where it came from."""
        return self._settings.replay_window()

    def set_replay_window(self, value: int | str) -> int:
        """Store how long decided queries' fingerprints are kept for the replay check:
        seconds, or ``"10m"``; 0 turns the window off (enrolled clips are still checked).
        Returns the seconds; ``SPEAKERDB_REPLAY_WINDOW`` and the ``replay_window`` argument
        take precedence (:func:`~speakerdb.config.resolve_replay_window`)."""
        return self._settings.set_replay_window(value)

    def countermeasure(self) -> tuple[Countermeasure | None, str]:
        """The countermeasure in use (``None``: none) and where it was chosen."""
        return self._settings.countermeasure()

    def set_countermeasure(self, name: str) -> str:
        """Store the countermeasure (a registered name, :mod:`speakerdb.decision._countermeasure`;
        ``"none"`` for none) that judges every query clip: a spoof is refused as ``replay``."""
        return self._settings.set_countermeasure(name)
