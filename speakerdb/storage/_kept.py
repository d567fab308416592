"""Kept enrollment audio, as the storage sees it: opaque sealed bytes per clip.

With ``--keep-audio`` an enrolled clip's decoded samples are kept, encrypted by
:mod:`speakerdb.services._sealing` before they reach the storage, so that
``speakerdb reembed`` can embed them again with another model. The storage keeps
each clip's bytes with its utterance, and deletes them with it: removing the clip
or its speaker (remove, opt-out, expiry) leaves no kept audio behind. It never
sees a key, only the id of the key that sealed the bytes.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["KeptAudio"]


class KeptAudio(NamedTuple):
    """One clip's kept audio: its utterance, the id of the key that sealed it, the bytes."""

    utterance_id: int
    key_id: str
    data: bytes
