"""What every result shares: its JSON document (:func:`to_jsonable`, :class:`_Result`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON values: results by their ``to_dict()``, other dataclasses
    field by field, sequences as lists, mapping keys as strings."""
    if isinstance(value, _Result):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Mapping):  # a dict, or a read-only view of one
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: "not measured" (e.g. a rate with no items) is null
    return value


def _fields(value: Any) -> dict[str, Any]:
    # A field marked {"json": False} is for the library's callers, not for a document.
    fields = [f for f in dataclasses.fields(value) if f.metadata.get("json", True)]
    return {f.name: to_jsonable(getattr(value, f.name)) for f in fields}


class _Result:
    """What every result shares: its JSON document. Not a dataclass itself."""

    __slots__ = ()  # the subclasses' slots stay the only storage

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of this result: every field, as :func:`to_jsonable` has it."""
        return _fields(self)
