"""Retention: how long a voiceprint is kept, and who may not be enrolled again.

- **Removal.** Removing a speaker deletes their voiceprint and clips, and in the
  same transaction replaces their name in the audit entries that claim or
  identify them with ``removed-<id>`` (their speaker number), or deletes those
  entries (``purge_audit``). Entries written under an earlier name of a renamed
  speaker keep that name.
- **Expiry.** A speaker enrolled with an expiry date is removed as above once it
  passes: every query first deletes the speakers that are due (one indexed read
  when none is; a write only when one is), so an expired voiceprint is never
  matched, even if ``speakerdb expire`` was not run.
- **Idle expiry.** Optionally, a speaker who has not matched for N days is removed
  as above by the same sweep (:mod:`speakerdb.services._idle`).
- **Opt-out.** Opting out removes the speaker and keeps a *tombstone*: their
  external id and the confusable skeletons of their name
  (:func:`speakerdb._names.name_keys`), nothing else. A new speaker whose name
  shares a skeleton, or whose external id is the tombstone's, is refused with
  :class:`~speakerdb.errors.OptedOut` (``force`` does not override it), until the
  tombstone is cleared.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .._names import name_keys
from ..errors import Fix, OptedOut, SpeakerNotFound

if TYPE_CHECKING:
    from ..storage import Change, Snapshot, Storage
    from ..types import Speaker

__all__ = ["expire_due", "refuse_opted_out", "remove_speaker"]

log = logging.getLogger(__name__)


def remove_speaker(change: Change, name: str, *, purge_audit: bool = False) -> Speaker:
    """Remove ``name`` in ``change`` (a templates change) and rewrite or purge their
    audit entries; return the speaker as it was. A name that opted out is not found, and
    the error says when it opted out (removing it again answered only "no speaker")."""
    try:
        removed = change.remove_speaker(name)
    except SpeakerNotFound as exc:
        found = change.find_tombstone(name_keys(name), None)
        if found is None:
            raise
        raise SpeakerNotFound(
            f"{exc.problem}: {name!r} (or a look-alike name) opted out on "
            f"{found.created_at:%Y-%m-%d}, and their voiceprint and clips were deleted then",
            fix=exc.fix,
            **exc.fix_args,
        ) from None
    rewritten = change.rewrite_audit(name, None if purge_audit else f"removed-{removed.id}")
    if rewritten:
        what = "deleted" if purge_audit else f"renamed removed-{removed.id} in"
        log.info("%s %d audit entries of %r", what, rewritten, name)
    return removed


def expire_due(storage: Storage, now: datetime | None = None) -> list[Speaker]:
    """Remove every speaker whose expiry has passed, or who has been idle for longer than
    the idle limit (:mod:`speakerdb.services._idle`); return them (usually none)."""
    from ._idle import idle_due

    now = now or datetime.now(timezone.utc)
    with storage.read() as snapshot:
        if not snapshot.expired(now) and not idle_due(snapshot, now):
            return []
    with storage.change(templates=True) as change:
        due = sorted(set(change.expired(now)) | set(idle_due(change, now)))
        removed = [remove_speaker(change, name) for name in due]
    for speaker in removed:
        if speaker.expires_at is not None and speaker.expires_at <= now:
            log.info("removed %r: their voiceprint expired at %s", speaker.name, speaker.expires_at)
        else:
            log.info("removed %r: no match since %s", speaker.name, speaker.last_match_at)
    return removed


def refuse_opted_out(snapshot: Snapshot, name: str | None, external_id: str | None) -> None:
    """Raise :class:`OptedOut` when a tombstone matches the new name or external id."""
    keys = None if name is None else name_keys(name)
    found = snapshot.find_tombstone(keys, external_id)
    if found is None:
        return
    if external_id is not None and found.external_id == external_id:
        who, clear = f"external id {external_id!r}", {"external_id": external_id}
    else:
        who, clear = f"{name!r} (or a look-alike name)", {"name": str(name)}
    raise OptedOut(
        f"{who} opted out on {found.created_at:%Y-%m-%d} and is not enrolled again",
        fix=Fix.CLEAR_OPT_OUT,
        **clear,
    )
