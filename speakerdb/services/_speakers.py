"""The enrolled speakers and their clips, read and renamed: the service behind
:meth:`SpeakerDB.speakers <speakerdb.SpeakerDB.speakers>`, ``speaker``, ``utterances``
and ``rename``. Removal is retention's (:mod:`speakerdb.services._lifecycle`).

Each refuses a database that no write has created
(:func:`~speakerdb.storage.require_database`), as every query does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._names import admit_name, clean_name
from ..storage import require_database
from ._retention import refuse_opted_out

if TYPE_CHECKING:
    from ..storage import Storage
    from ..types import Speaker, Utterance

__all__ = ["Roster"]


class Roster:
    """The speakers of one database. Each call is one transaction."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def speakers(self) -> list[Speaker]:
        """All speakers, by name."""
        require_database(self._storage)
        with self._storage.read() as snapshot:
            return snapshot.speakers()

    def speaker(self, name: str) -> Speaker:
        """Speaker ``name``; :class:`SpeakerNotFound` if there is none."""
        require_database(self._storage)
        name = clean_name(name)
        with self._storage.read() as snapshot:
            return snapshot.speaker(name)

    def utterances(self, name: str) -> list[Utterance]:
        """The enrolled clips of ``name``, oldest first."""
        require_database(self._storage)
        name = clean_name(name)
        with self._storage.read() as snapshot:
            return snapshot.utterances(name)

    def rename(self, old: str, new: str) -> Speaker:
        """Give speaker ``old`` the name ``new``: refused when ``new`` is taken, too like
        another speaker's name, or the name of a person who opted out."""
        require_database(self._storage)
        old, new = clean_name(old), clean_name(new)
        with self._storage.change() as change:
            admit_name(new, new, change.names() - {old})
            if new != old:
                refuse_opted_out(change, new, None)
            return change.rename(old, new)
