"""What an enrollment sets besides clips (:class:`Metadata`): the speaker's external id,
attributes, expiry, watchlist flag and groups, checked when the call is made and written
in the enrollment's transaction."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from .._metadata import clean_attributes, clean_expiry, clean_external_id, merged_attributes
from .._names import clean_group
from ..errors import InputError
from ..types import Speaker
from ._retention import refuse_opted_out

if TYPE_CHECKING:
    from ..storage import Change

__all__ = ["Metadata"]


@dataclass(frozen=True, slots=True)
class Metadata:
    """What an enrollment sets besides clips: ``None`` leaves a field as it is, and
    ``attributes`` are merged into the speaker's (:mod:`speakerdb._metadata`)."""

    external_id: str | None = None
    attributes: dict[str, Any] | None = None
    expires_at: datetime | None = None
    watchlist: bool = False
    #: Groups to put the speaker in (made if new); groups they are in already stay.
    groups: tuple[str, ...] = ()

    @classmethod
    def given(
        cls,
        external_id: str | None,
        attributes: Mapping[str, Any] | None,
        expires_at: datetime | date | str | None = None,
        watchlist: bool = False,
        groups: Sequence[str] = (),
    ) -> Metadata | None:
        """The checked metadata of a call, or ``None`` when it gives none."""
        if isinstance(groups, str):
            groups = (groups,)
        given = (external_id, attributes, expires_at)
        if all(v is None for v in given) and not watchlist and not groups:
            return None
        return cls(
            None if external_id is None else clean_external_id(external_id),
            None if attributes is None else clean_attributes(attributes),
            None if expires_at is None else clean_expiry(expires_at),
            watchlist is True,
            tuple(dict.fromkeys(clean_group(g) for g in groups)),
        )

    def apply(self, change: Change, name: str) -> Speaker:
        """Write it to speaker ``name`` in ``change``; return the speaker after."""
        current = change.speaker(name)
        external_id = current.external_id
        if self.external_id is not None and self.external_id != external_id:
            if external_id is not None:
                raise InputError(
                    f"speaker {name!r} has external id {external_id!r} already; change it "
                    f"with `speakerdb meta {shlex.quote(name)} --id NEW`"
                )
            refuse_opted_out(change, None, self.external_id)
            external_id = self.external_id
        attributes = current.attributes
        if self.attributes is not None:
            attributes = merged_attributes(current.attributes, self.attributes)
        expires_at = self.expires_at or current.expires_at
        if self.watchlist and not current.watchlist:
            change.set_watchlist(name, True)
        for group in self.groups:
            change.add_to_group(group, [name])
        speaker = change.set_metadata(name, external_id, attributes, expires_at)
        return change.speaker(name) if self.groups else speaker
