"""Old member names of :class:`~speakerdb.SpeakerDB`, kept working with a
:class:`DeprecationWarning` that names the new spelling.

One table, read by ``SpeakerDB.__getattr__``: nothing here is a method of the
class, so the class's own surface stays what the README documents.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .services._opening import discard_if_unused

__all__ = ["OLD_MEMBERS", "old_member"]

# old name -> (what to write instead, how to get it from a SpeakerDB)
OLD_MEMBERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "threshold": (
        "db.policy(score_norm='none')",
        lambda db: db._settings.sources().cosine_threshold,
    ),
    "decision_threshold": (
        "db.policy(score_norm=...).threshold",
        lambda db: lambda score_norm=None: db.policy(score_norm=score_norm).threshold,
    ),
    "score_norm": (
        "db.policy(score_norm=...).score_norm",
        lambda db: db._settings.sources().score,
    ),
    "decision": (
        "db.policy(threshold, score_norm)",
        lambda db: (
            lambda threshold=None, score_norm=None: _as_tuple(db.policy(threshold, score_norm))
        ),
    ),
    "population": ("nothing public: it is an internal type", lambda db: db._querying.population),
    "find_enrolled": ("nothing public", lambda db: db._enrolling.find_enrolled),
    "index_path": ("db.index.path", lambda db: db.index.path),
    "current_index": ("db.index.current()", lambda db: db.index.current),
    "rebuild_index": ("db.index.rebuild()", lambda db: db.index.rebuild),
    "index_choice": ("db.index.choice()", lambda db: db.index.choice),
    "set_index_kind": ("db.index.configure(kind, ivf_from=N)", lambda db: db.index.configure),
    "set_audit": ("db.audit.configure(enabled, ...)", lambda db: db.audit.configure),
    "audit_settings": ("db.audit.settings()", lambda db: db.audit.settings),
    "audit_log": (
        "db.audit.entries(limit)",
        lambda db: lambda *, limit=None: db.audit.entries(limit),
    ),
    "clear_audit": ("db.audit.clear()", lambda db: db.audit.clear),
    "remove_utterance": (
        "db.lifecycle.remove_utterance(id)",
        lambda db: db.lifecycle.remove_utterance,
    ),
    "discard_if_unused": (
        "db.close(discard_if_empty=True)",
        lambda db: lambda: discard_if_unused(db._storage),
    ),
}


def old_member(db: Any, name: str) -> Any:
    """``db``'s member under its old ``name``, with a warning; AttributeError if none."""
    entry = OLD_MEMBERS.get(name)
    if entry is None:
        raise AttributeError(f"{type(db).__name__!r} object has no attribute {name!r}")
    instead, get = entry
    warnings.warn(
        f"SpeakerDB.{name} is deprecated; use {instead}", DeprecationWarning, stacklevel=3
    )
    return get(db)


def _as_tuple(policy: Any) -> tuple[str, int, float]:
    return policy.score_norm, policy.top_n, policy.threshold
