"""The database's stored settings, parsed once into one typed, frozen object.

Storage keeps settings as untyped ``key -> text`` rows and returns them as a
dict; :meth:`StoredSettings.parse` is the one place that turns that text into
values, so that the decision policy, the fast reader and ``info`` never parse
strings of their own. It imports nothing heavy: ``speakerdb list`` and
``info`` read settings too.

A database file may come from anyone, so every value is checked as the command
that writes it checks it (a stored threshold of ``-inf`` would accept anyone),
and a bad one is a :class:`~speakerdb.errors.DatabaseError` naming the key and
the command that stores it again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import DatabaseError

__all__ = ["BOTH", "OPERATIONS", "StoredSettings", "threshold_key", "without_threshold"]

_T = TypeVar("_T", int, float)

# The largest count a stored counter or size may hold (SQLite's integers are 64-bit).
_MAX_COUNT = 2**62
# The command that stores each setting, named by the error about a bad stored value.
_FIXES = {
    "threshold": "`speakerdb set-threshold T`",
    "score_norm": "`speakerdb score-norm MODE`",
    "asnorm_top_n": "`speakerdb score-norm asnorm --top-n N`",
    "index_kind": "`speakerdb index --kind auto`",
    "index_ivf_from": "`speakerdb index --ivf-from N`",
    "replay_window_s": "`speakerdb replay-window SECONDS`",
}
_DAMAGED = "the database is damaged: restore it from a backup"
_INDEX_KINDS = ("auto", "flat", "ivf")
# Thresholds are stored per operation and score as "threshold:<operation>:<score>"
# (``set-threshold``). Databases from before per-operation thresholds hold one for both
# operations: the plain "threshold" key is the cosine one (written before normalisations
# existed), "<score>_threshold" a normalised score's. Both are still read.
_NORM_THRESHOLD_SUFFIX = "_threshold"
_THRESHOLD_PREFIX = "threshold:"
#: The operations that have thresholds of their own.
OPERATIONS = ("identify", "verify")
#: What a threshold stored for both operations at once (the older keys) is listed as.
BOTH = "both"


@dataclass(frozen=True)  # no slots: building the class twice costs info's start-up
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
    #: The thresholds stored for one operation: ``(operation, score) -> value``.
    operation_thresholds: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: The database's generation counter (bumped by every change of templates).
    generation: int = 0
    #: The digest of every speaker's template (:mod:`speakerdb.storage._digest`), if recorded.
    index_digest: str | None = None
    #: The replay window in seconds (``replay-window``); 0 is off.
    replay_window_s: int | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> StoredSettings:
        """Parse the settings table's rows; a value that is not what its key holds is a
        :class:`~speakerdb.errors.DatabaseError` naming the key."""
        norm_thresholds = {
            key.removesuffix(_NORM_THRESHOLD_SUFFIX): _number(raw, key, float, -math.inf)
            for key in raw
            if key.endswith(_NORM_THRESHOLD_SUFFIX) and not key.startswith(_THRESHOLD_PREFIX)
        }
        threshold = raw.get("threshold")
        _check_index_settings(raw)
        return cls(
            # The cosine threshold is a cosine, as set-threshold and config check it.
            threshold=None if threshold is None else _number(raw, "threshold", float, -1.0, 1.0),
            score_norm=_score_norm(raw),
            asnorm_top_n=_number(raw, "asnorm_top_n", int, 1) if "asnorm_top_n" in raw else None,
            norm_thresholds=norm_thresholds,
            operation_thresholds=_operation_thresholds(raw),
            generation=_number(raw, "generation", int, 0) if "generation" in raw else 0,
            index_digest=_digest(raw),
            replay_window_s=(
                _number(raw, "replay_window_s", int, 0, 86_400)
                if "replay_window_s" in raw
                else None
            ),
        )

    def norm_threshold(self, norm: str) -> float | None:
        """The threshold of ``norm`` scores stored for both operations (older keys), if any."""
        return self.norm_thresholds.get(norm)

    def threshold_for(self, operation: str, score: str) -> float | None:
        """The stored threshold of ``score`` scores (``none``: cosine) for ``operation``:
        its own, else one stored for both operations, else ``None``."""
        own = self.operation_thresholds.get((operation, score))
        if own is not None:
            return own
        return self.threshold if score == "none" else self.norm_thresholds.get(score)

    def stored_thresholds(self) -> list[tuple[str, str, float]]:
        """Every stored threshold as ``(operation or "both", score, value)``, in a stable
        order; one for both operations is left out where each has its own."""
        both = {"none": self.threshold} if self.threshold is not None else {}
        both |= self.norm_thresholds
        found = [
            (BOTH, score, value)
            for score, value in both.items()
            if not all((op, score) in self.operation_thresholds for op in OPERATIONS)
        ]
        found += [(op, score, value) for (op, score), value in self.operation_thresholds.items()]
        return sorted(found, key=lambda row: (row[1], row[0]))

    def any_cosine_threshold(self) -> bool:
        """Whether a cosine threshold is stored, for either operation."""
        return self.threshold is not None or any(
            score == "none" for _, score in self.operation_thresholds
        )


def threshold_key(operation: str, score: str) -> str:
    """The settings key of the threshold of ``score`` scores for ``operation``."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
    return f"{_THRESHOLD_PREFIX}{operation}:{score}"


def without_threshold(raw: Mapping[str, str], operation: str, score: str) -> dict[str, str]:
    """The settings ``raw`` with no threshold of ``score`` scores stored for ``operation``:
    its own key is left out, and so is an older key stored for both operations, whose
    value the other operation then keeps under its own key (unless it has one already),
    so that only ``operation`` changes."""
    after = dict(raw)
    after.pop(threshold_key(operation, score), None)
    both = after.pop("threshold" if score == "none" else f"{score}{_NORM_THRESHOLD_SUFFIX}", None)
    if both is not None:
        for other in OPERATIONS:
            if other != operation:
                after.setdefault(threshold_key(other, score), both)
    return after


def _operation_thresholds(raw: Mapping[str, str]) -> dict[tuple[str, str], float]:
    """The ``threshold:<operation>:<score>`` settings; a cosine one is a cosine."""
    found = {}
    for key in raw:
        if not key.startswith(_THRESHOLD_PREFIX):
            continue
        operation, _, score = key.removeprefix(_THRESHOLD_PREFIX).partition(":")
        if operation not in OPERATIONS or not _is_name(score):
            raise _bad(key, raw[key], "a threshold this speakerdb stores (remove the setting)")
        cosine = score == "none"
        limits = (-1.0, 1.0) if cosine else (-math.inf,)
        found[(operation, score)] = _number(raw, key, float, *limits)
    return found


def _number(
    raw: Mapping[str, str],
    key: str,
    kind: Callable[[str], _T],
    low: float,
    high: float = _MAX_COUNT,
) -> _T:
    """Setting ``key`` as a finite ``kind`` in ``[low, high]``; else a DatabaseError."""
    try:
        value = kind(raw[key])
    except (ValueError, TypeError, OverflowError):
        value = None
    if value is None or not math.isfinite(value) or not low <= value <= high:
        span = f" in [{low:g}, {high:g}]" if high != _MAX_COUNT else f" of at least {low:g}"
        raise _bad(key, raw[key], f"a finite number{span}" if kind is float else "a whole number")
    return value


def _bad(key: str, value: object, wanted: str) -> DatabaseError:
    fix = _FIXES.get(key)
    if fix is None and key.startswith(_THRESHOLD_PREFIX):
        operation, _, score = key.removeprefix(_THRESHOLD_PREFIX).partition(":")
        fix = f"`speakerdb set-threshold T --score-norm {score} --for {operation}`"
    elif fix is None and key.endswith(_NORM_THRESHOLD_SUFFIX):
        norm = key.removesuffix(_NORM_THRESHOLD_SUFFIX)
        fix = f"`speakerdb set-threshold T --score-norm {norm}`"
    again = f"store it again with {fix}" if fix else _DAMAGED
    return DatabaseError(
        f"the database's setting {key!r} holds {str(value)[:40]!r}, not {wanted}; {again}"
    )


def _score_norm(raw: Mapping[str, str]) -> str | None:
    """The stored normalisation's name: a short identifier (the registry, which this
    bottom layer cannot import, says whether one of that name exists)."""
    value = raw.get("score_norm") or None
    if value is not None and not _is_name(value):
        raise _bad("score_norm", value, "a score normalisation's name")
    return value


def _window(raw: Mapping[str, str]) -> int | None:
    if "replay_window_s" not in raw:
        return None
    return _number(raw, "replay_window_s", int, 0, 86_400)  # config.MAX_REPLAY_WINDOW_S


def _is_name(value: str) -> bool:
    return value.replace("-", "_").isidentifier() and len(value) <= 40


def _digest(raw: Mapping[str, str]) -> str | None:
    value = raw.get("index_digest")
    if value is not None and (len(value) != 512 or value.strip("0123456789abcdef")):
        raise _bad("index_digest", value, "a digest (run `speakerdb rebuild-index`)")
    return value


def _check_index_settings(raw: Mapping[str, str]) -> None:
    """The index settings, which the storage reads itself, are checked here too."""
    if raw.get("index_kind", "auto") not in _INDEX_KINDS:
        raise _bad("index_kind", raw["index_kind"], f"one of {', '.join(_INDEX_KINDS)}")
    if "index_ivf_from" in raw:
        _number(raw, "index_ivf_from", int, 1)
    for key in ("names_version",):
        if key in raw:
            _number(raw, key, int, 0)
