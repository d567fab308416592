"""A speaker's metadata: an external id and free attributes.

The *external id* is the key another system knows the person by (an employee
number, a customer id): text of 1 to :data:`MAX_EXTERNAL_ID` characters without
control characters, stored NFC-normalised and stripped, unique in a database.

The *attributes* are a JSON object of at most :data:`MAX_ATTRIBUTES_BYTES` bytes
(as compact JSON), with non-empty text keys. They are kept as their canonical
JSON text, so every backend returns the same values, and a caller never holds
the stored object itself. Enrolling with attributes merges them into the
speaker's: a key given the value ``None`` is deleted.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

from .errors import InputError

__all__ = [
    "MAX_ATTRIBUTES_BYTES",
    "MAX_EXTERNAL_ID",
    "attributes_from_json",
    "attributes_to_json",
    "clean_attributes",
    "clean_expiry",
    "clean_external_id",
    "merged_attributes",
    "parse_attribute",
]

MAX_EXTERNAL_ID = 128
MAX_ATTRIBUTES_BYTES = 16_384


def clean_external_id(value: object) -> str:
    """``value`` as it is stored, or :class:`InputError` naming what is wrong."""
    if not isinstance(value, str):
        raise InputError(f"an external id is text, got {type(value).__name__}")
    cleaned = unicodedata.normalize("NFC", value).strip()
    if not cleaned:
        raise InputError("the external id is empty; give the id another system knows them by")
    if len(cleaned) > MAX_EXTERNAL_ID:
        raise InputError(
            f"the external id is {len(cleaned)} characters long, at most {MAX_EXTERNAL_ID}"
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in cleaned):
        raise InputError(
            f"the external id {cleaned.encode('unicode_escape').decode()!r} contains control "
            "characters; use printable text"
        )
    return cleaned


def clean_attributes(value: object) -> dict[str, Any]:
    """A fresh copy of ``value``, a JSON object with text keys, or :class:`InputError`."""
    if not isinstance(value, Mapping):
        raise InputError(f"attributes are a mapping of names to values, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key.strip():
            raise InputError(f"an attribute's name is non-empty text, got {key!r}")
    try:
        text = json.dumps(dict(value), allow_nan=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"attributes must be JSON values (text, numbers, lists): {exc}") from exc
    if len(text.encode()) > MAX_ATTRIBUTES_BYTES:
        raise InputError(
            f"the attributes take {len(text.encode())} bytes as JSON, at most "
            f"{MAX_ATTRIBUTES_BYTES}; keep documents elsewhere and store their id"
        )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def merged_attributes(current: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` updated with ``given``; a key given ``None`` is deleted."""
    merged = {**current, **given}
    return clean_attributes({k: v for k, v in merged.items() if v is not None})


def attributes_to_json(attributes: Mapping[str, Any]) -> str | None:
    """The stored form: canonical compact JSON, or ``None`` for no attributes."""
    if not attributes:
        return None
    return json.dumps(dict(attributes), allow_nan=False, separators=(",", ":"), sort_keys=True)


def attributes_from_json(text: str | None) -> dict[str, Any]:
    """The attributes stored as ``text`` (``None``: none)."""
    if not text:
        return {}
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {}


def parse_attribute(text: str) -> tuple[str, Any]:
    """One ``--attr``: ``key=value`` gives the text ``value``; ``key:=JSON`` a JSON value
    (``floor:=3``, ``badge:=null`` to delete ``badge``)."""
    key, typed, value = _split(text)
    if not typed:
        return key, value
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InputError(f"--attr {text!r}: {value!r} after ':=' is not JSON ({exc})") from exc
    return key, parsed


def _split(text: str) -> tuple[str, bool, str]:
    at = text.find("=")
    if at <= 0:
        raise InputError(f"--attr {text!r}: write key=value (text) or key:=JSON")
    typed = text[at - 1] == ":"
    key = text[: at - 1 if typed else at].strip()
    if not key:
        raise InputError(f"--attr {text!r}: the key is empty")
    return key, typed, text[at + 1 :]


def clean_expiry(value: object, now: datetime | None = None) -> datetime:
    """When a voiceprint expires, in UTC: a :class:`~datetime.date` (00:00 UTC of that day),
    an aware :class:`~datetime.datetime`, or ISO 8601 text of either. It must be in the
    future (``now``, else the current time)."""
    moment = _moment(value)
    if moment <= (now or datetime.now(timezone.utc)):
        raise InputError(
            f"the expiry {moment:%Y-%m-%d %H:%M} UTC has passed already; give a later date"
        )
    return moment


def _moment(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = (date if len(value.strip()) == 10 else datetime).fromisoformat(value.strip())
        except ValueError as exc:
            raise InputError(f"expiry {value!r}: give a date such as 2027-12-31 ({exc})") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError(f"expiry {value.isoformat()}: give a time zone (e.g. +00:00)")
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise InputError(f"an expiry is a date or an aware datetime, got {type(value).__name__}")
