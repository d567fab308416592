"""What every storage backend refuses, worded once so that all refuse alike."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import DuplicateSpeaker, DuplicateUtterance, Fix, GroupNotFound, InputError

if TYPE_CHECKING:
    from ..audio._decode import Clip

__all__ = [
    "already_enrolled",
    "check_clip_number",
    "external_id_taken",
    "key_taken",
    "last_clip",
    "name_taken",
    "no_such_clip",
    "no_such_group",
    "no_such_key",
    "refuse_enrolled",
    "storable_source",
]


def check_clip_number(utterance_id: object) -> None:
    """Refuse a clip number that is not an int (a bool is not one either)."""
    if isinstance(utterance_id, bool) or not isinstance(utterance_id, int):
        raise InputError(f"a clip is given by its number, got {utterance_id!r}")


def no_such_clip(utterance_id: int) -> InputError:
    return InputError(
        f"no enrolled clip #{utterance_id}; `speakerdb show NAME` lists a speaker's clips"
    )


def last_clip(utterance_id: int, owner: str) -> InputError:
    """A speaker without clips has no voiceprint, so the last clip is never removed."""
    return InputError(
        f"clip #{utterance_id} is the only one of {owner!r}; remove the "
        f"speaker instead (`speakerdb remove {shlex.quote(owner)}`)"
    )


def check_replacement(found: Sequence[tuple[int, str, str]], clips: Sequence[Clip]) -> None:
    """Refuse to replace the vectors of the clips ``found`` (id, speaker, audio hash)
    when there are none, they are not one speaker's, or ``clips`` are other audio."""
    if not found or len(found) != len(clips):
        raise InputError(f"give one new clip per clip replaced ({len(found)} and {len(clips)})")
    if len({owner for _, owner, _ in found}) > 1:
        raise InputError("the clips are not all one speaker's; replace each speaker's apart")
    for (number, owner, sha), clip in zip(found, clips, strict=True):
        if sha != clip.sha256:
            raise InputError(
                f"clip #{number} of {owner!r} is other audio than {clip.label}; "
                "give the clip's own audio"
            )


def name_taken(name: str) -> DuplicateSpeaker:
    return DuplicateSpeaker(f"a speaker named {name!r} exists already; pick another name")


def external_id_taken(external_id: str, owner: str) -> DuplicateSpeaker:
    return DuplicateSpeaker(
        f"external id {external_id!r} belongs to speaker {owner!r} already; give another id, "
        f"or clear theirs first"
    )


def already_enrolled(label: str, owner: str) -> DuplicateUtterance:
    """The error for a clip (called ``label``) whose audio ``owner`` has enrolled."""
    return DuplicateUtterance(
        f"{label}: this audio is enrolled already (speaker {owner!r}); leave it out"
    )


def refuse_enrolled(known: Mapping[str, str], clips: Sequence[Clip]) -> None:
    """Raise :class:`DuplicateUtterance` for the first clip whose audio hash is in
    ``known`` (hashes enrolled already, each mapped to its speaker's name)."""
    for clip in clips:
        if clip.sha256 in known:
            raise already_enrolled(clip.label, known[clip.sha256])


def storable_source(source: str | None) -> str | None:
    """A file name as text any store can keep: bytes that are not UTF-8 (which Python
    holds as lone surrogates) are kept as ``\\xNN`` escapes."""
    if source is None:
        return None
    try:
        raw = source.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = source.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def key_taken(name: str) -> InputError:
    return InputError(
        f"a service key named {name!r} exists already; choose another name, or revoke it "
        f"first (`speakerdb key revoke {name}`)"
    )


def no_such_key(name: str) -> InputError:
    return InputError(f"no service key named {name!r}; `speakerdb key list` shows them")


def no_such_group(group: str) -> GroupNotFound:
    return GroupNotFound(f"no group named {group!r}", fix=Fix.LIST_GROUPS, group=group)
