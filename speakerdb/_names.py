"""Speaker-name rules.

A name is stored NFC-normalised, with surrounding whitespace removed. It must
be 1 to :data:`MAX_NAME_LENGTH` characters and hold no control or format
characters (which could rewrite a terminal or hide one name inside another).

The names ``unknown`` and ``unknown-N`` (any case) are reserved for voices that
are not enrolled (``segments`` labels them so): a new name may not take them. Nor may
a new name hold ``/`` or be ``.`` or ``..``: the service's URLs carry names as one path
segment (``/v1/speakers/NAME``), which an encoded ``/`` splits and URL libraries drop
dot segments from, so such a speaker could not be reached over HTTP.

A name is an identity, so a *new* name (a first enrollment, or the new name of
a rename) must also not pass for another: :func:`admit_name` refuses one that
holds invisible characters or unusual spaces, mixes scripts beyond the
combinations of UTS #39's highly restrictive profile (Latin with Han and the
Japanese, Chinese or Korean scripts), or that shares a :func:`name_keys` with an
enrolled name. The keys are UTS #39 confusable skeletons of the NFKC form, as
written and case-folded, so ``Alice``, ``alice`` in full-width letters or with a
Cyrillic ``a`` (U+0430), and ``alice`` share one. Clips are added to an enrolled
speaker only through the name spelled exactly as enrolled. Lookups stay exact,
and names enrolled before these rules are kept as they are.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from .errors import InvalidName

__all__ = ["MAX_NAME_LENGTH", "admit_name", "clean_group", "clean_name", "name_keys"]

MAX_NAME_LENGTH = 128
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties.txt): drawn as nothing.
_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip
# Drawn blank although not ignorable: the Braille blank and the Hangul fillers' kin.
_BLANK = {"\u2800", "\u3000"}
# UTS #39 highly restrictive: one script, or Latin with these (Common and Inherited aside).
_SCRIPT_SETS = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_ANY_SCRIPT = {"COMMON", "INHERITED"}


_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def clean_group(group: str) -> str:
    """``group`` if it is a group name (1 to 64 letters, digits, '.', '_' or '-', starting
    with a letter or digit: it goes into URLs, keys and shell commands unquoted), else
    :class:`InvalidName`."""
    if not isinstance(group, str) or not _GROUP.fullmatch(group):
        raise InvalidName(
            "a group name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit, got {group!r}"
        )
    return group


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
            f"speaker name '{cleaned.encode('unicode_escape').decode()}' contains control "
            f"characters ({', '.join(repr(c) for c in bad[:3])}); use printable text"
        )
    return cleaned


def admit_name(given: str, name: str, existing: Iterable[str]) -> None:
    """Raise :class:`InvalidName` unless ``name`` (``clean_name(given)``) may be used.

    ``existing`` are the enrolled names, other than the one being renamed. A name
    among them must be spelled exactly (up to NFC); any other is new and must be
    plain and distinct: see the module's docstring. Costs a pass over ``existing``:
    under 0.1 s for 10^5 names.
    """
    names = existing if isinstance(existing, (set, frozenset, dict)) else set(existing)
    if name in names:
        if unicodedata.normalize("NFC", given) != name:
            raise InvalidName(
                f"speaker name {_shown(given)} differs from the enrolled {_shown(name)} only "
                f"in surrounding whitespace; give {_shown(name)} exactly to add clips to it"
            )
        return
    _refuse_reserved(name)
    _refuse_unaddressable(name)
    _refuse_invisible(name)
    _refuse_mixed_scripts(name)
    written, folded = name_keys(name)
    for other in names:
        other_written, other_folded = name_keys(other)
        if other_written == written or other_folded == folded:
            raise InvalidName(
                f"speaker name {_shown(name)} looks like the enrolled {_shown(other)}; "
                f"give {_shown(other)} exactly to add clips to it, or pick a distinct name"
            )


# ``segments`` labels voices that are not enrolled ``unknown-1``, ``unknown-2``...: an
# enrolled name of that form could not be told from them (in RTTM, say).
_RESERVED = re.compile(r"unknown(-[0-9]+)?", re.IGNORECASE)


def _refuse_reserved(name: str) -> None:
    if _RESERVED.fullmatch(unicodedata.normalize("NFKC", name).strip()):
        raise InvalidName(
            f"speaker name {_shown(name)} is reserved: 'unknown' and 'unknown-N' label voices "
            "that are not enrolled; pick another name"
        )


def _refuse_unaddressable(name: str) -> None:
    if "/" in name:
        raise InvalidName(
            f"speaker name {_shown(name)} holds '/', which the service's URLs "
            "(/v1/speakers/NAME) cannot carry; pick another name, with '-' for instance"
        )
    if name in (".", ".."):
        raise InvalidName(
            f"speaker name {_shown(name)} is a step of a URL's path, which URL libraries "
            "drop (/v1/speakers/NAME); pick another name"
        )


def name_keys(name: str) -> tuple[str, str]:
    """What two names that a reader could take for each other have in common, one of.

    The UTS #39 skeleton of the NFKC name without ignorable characters, and that of
    its case-folded form: ``aIice`` passes for ``alice`` as written (``I`` looks like
    ``l``), ``ALICE`` once folded.
    """
    if name.isascii():  # character by character, so from tables: 10x faster
        written, folded = _ascii_keys()
        return name.translate(written), name.translate(folded)
    return _keys(name)


@functools.lru_cache(maxsize=1 << 16)
def _keys(name: str) -> tuple[str, str]:
    text = unicodedata.normalize("NFKC", name).translate(_drop_ignorable())
    return _skeleton(text), _skeleton(unicodedata.normalize("NFKC", text.casefold()))


def _refuse_invisible(name: str) -> None:
    hidden = [c for c in name if _ignorable(c) or c in _BLANK]
    odd_spaces = [c for c in name if unicodedata.category(c) == "Zs" and c != " "]
    if hidden or odd_spaces:
        shown = ", ".join(f"U+{ord(c):04X}" for c in (hidden + odd_spaces)[:3])
        raise InvalidName(
            f"speaker name {_shown(name)} contains invisible characters or unusual "
            f"spaces ({shown}); use visible characters and plain spaces"
        )


def _refuse_mixed_scripts(name: str) -> None:
    from confusable_homoglyphs.categories import alias

    scripts = {alias(c) for c in name} - _ANY_SCRIPT
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_SETS):
        raise InvalidName(
            f"speaker name {_shown(name)} mixes scripts ({', '.join(sorted(scripts)).lower()}), "
            "as look-alike names do; write it in one script"
        )


def _ignorable(c: str) -> bool:
    return ord(c) in _drop_ignorable()


@functools.cache
def _ascii_keys() -> tuple[dict[int, str], dict[int, str]]:
    keys = [_keys(chr(code)) for code in range(128)]
    return dict(enumerate(k[0] for k in keys)), dict(enumerate(k[1] for k in keys))


@functools.cache
def _drop_ignorable() -> dict[int, None]:
    return {code: None for low, high in _IGNORABLE for code in range(low, high + 1)}


def _skeleton(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", decomposed.translate(_prototypes()))


@functools.cache
def _prototypes() -> dict[int, str]:
    """Each confusable character's stand-in, from the confusables data of UTS #39.

    ``confusable_homoglyphs`` ships that data as symmetric pairs (each character
    with its prototype, each prototype with its characters), so the classes are
    the connected groups. A class's stand-in is its multi-character prototype if
    it has one, else its smallest member: the same strings then share a skeleton
    as with Unicode's own prototypes.
    """
    from confusable_homoglyphs.confusables import confusables_data

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, entries in confusables_data.items():
        for entry in entries:
            a, b = find(key.replace("\u200e", "")), find(entry["c"].replace("\u200e", ""))
            if a != b:
                parent[max(a, b)] = min(a, b)
    classes: dict[str, list[str]] = {}
    for member in list(parent):
        classes.setdefault(find(member), []).append(member)
    single: dict[str, str] = {}
    longer: dict[str, str] = {}
    for members in classes.values():
        multi = sorted(m for m in members if len(m) > 1)
        stand_in = multi[0] if multi else min(members)
        for m in members:
            if len(m) == 1:
                (longer if multi else single)[m] = stand_in
    single.update((c, "".join(single.get(p, p) for p in s)) for c, s in longer.items())
    return {ord(c): stand_in for c, stand_in in single.items() if stand_in != c}


def _shown(name: str) -> str:
    """``name`` quoted, with what cannot be seen written as its code point."""

    def visible(c: str) -> str:
        plain = c.isprintable() and not _ignorable(c) and c not in _BLANK
        return c if plain and (c == " " or not c.isspace()) else f"\\u{ord(c):04x}"

    return "'" + "".join(visible(c) for c in name) + "'"
