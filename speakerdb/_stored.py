"""The database's stored settings, parsed once into one typed, frozen object.

Storage keeps settings as untyped ``key -> text`` rows and returns them as a
dict; :meth:`StoredSettings.parse` is the one place that turns that text into
values, so that the decision policy, the fast reader and ``info`` never parse
strings of their own. It imports nothing heavy: ``speakerdb list`` and
``info`` read settings too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import DatabaseError

__all__ = ["StoredSettings"]

_T = TypeVar("_T", int, float)

# A score normalisation's own threshold is stored under "<name>_threshold"; the
# plain "threshold" key is the cosine one (written before normalisations existed).
_NORM_THRESHOLD_SUFFIX = "_threshold"


@dataclass(frozen=True, slots=True)
class StoredSettings:
    """What ``set-threshold``, ``score-norm``, ``calibrate`` and writers stored.

    ``None`` means "never stored": the decision policy then falls back to the
    next source (:mod:`speakerdb.decision._policy`).
    """

    #: The cosine threshold (``set-threshold``, or ``calibrate`` of cosine scores).
    threshold: float | None = None
    #: The score normalisation chosen for good (``score-norm``).
    score_norm: str | None = None
    #: AS-norm's cohort size, when ``score-norm asnorm --top-n`` stored one.
    asnorm_top_n: int | None = None
    #: The threshold of each normalised score that has one stored, by score name.
    norm_thresholds: Mapping[str, float] = field(default_factory=dict)
    #: The database's generation counter (bumped by every change of templates).
    generation: int = 0

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> StoredSettings:
        """Parse the settings table's rows; a value that is not what its key holds is a
        :class:`~speakerdb.errors.DatabaseError` naming the key."""
        norm_thresholds = {
            key.removesuffix(_NORM_THRESHOLD_SUFFIX): _number(raw, key, float)
            for key in raw
            if key.endswith(_NORM_THRESHOLD_SUFFIX) and key != "threshold"
        }
        threshold = raw.get("threshold")
        return cls(
            threshold=None if threshold is None else _number(raw, "threshold", float),
            score_norm=raw.get("score_norm") or None,
            asnorm_top_n=_number(raw, "asnorm_top_n", int) if raw.get("asnorm_top_n") else None,
            norm_thresholds=norm_thresholds,
            generation=_number(raw, "generation", int) if raw.get("generation") else 0,
        )

    def norm_threshold(self, norm: str) -> float | None:
        """The stored threshold of ``norm`` scores, if any."""
        return self.norm_thresholds.get(norm)


def _number(raw: Mapping[str, str], key: str, kind: Callable[[str], _T]) -> _T:
    try:
        return kind(raw[key])
    except ValueError:
        raise DatabaseError(
            f"the database's setting {key!r} is not a number: {raw[key]!r}; store it again "
            "(`speakerdb set-threshold` or `speakerdb score-norm`)"
        ) from None
