"""Speaker-name rules.

A name is stored NFC-normalised, with surrounding whitespace removed. It must
be 1 to :data:`MAX_NAME_LENGTH` characters and hold no control or format
characters (which could rewrite a terminal or hide one name inside another).
"""

from __future__ import annotations

import unicodedata

from .errors import InvalidName

__all__ = ["MAX_NAME_LENGTH", "clean_name"]

MAX_NAME_LENGTH = 128
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def clean_name(name: str) -> str:
    """Return the canonical form of ``name`` or raise :class:`InvalidName`."""
    if not isinstance(name, str):
        raise InvalidName(f"speaker name must be text, got {type(name).__name__}")
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidName("speaker name is empty; give a name such as 'alice'")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"speaker name is {len(cleaned)} characters long, at most {MAX_NAME_LENGTH} are allowed"
        )
    bad = [c for c in cleaned if unicodedata.category(c) in _FORBIDDEN_CATEGORIES]
    if bad:
        raise InvalidName(
            f"speaker name {cleaned.encode('unicode_escape').decode()!r} contains control "
            f"characters ({', '.join(repr(c) for c in bad[:3])}); use printable text"
        )
    return cleaned
