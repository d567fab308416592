"""The watchlist: voices never to admit (known fraudsters), as Amazon Voice ID had.

A speaker enrolled with ``watchlist`` (``speakerdb enroll --watchlist``, ``meta
--watchlist``) is searched like any other, but:

- an identify whose best match is on the watchlist, at the threshold, has the
  outcome ``watchlist`` (:class:`~speakerdb.types.Outcome`): no one is named, and the
  audit log records it so;
- a verify is flagged ``watchlist``, and not accepted, when the claimed speaker is on
  the watchlist and the claim would be accepted, or when a watchlisted voice matches
  the clip at the cosine threshold at least as well as the claimed speaker does;
- a new speaker whose clips (or their template) match a watchlisted voice at the
  cosine threshold is refused (:class:`~speakerdb.errors.EnrollmentRefused`, which
  ``force`` does not override).

The check costs each query one indexed read of the watchlist's names, in the read
that also finds expired voiceprints (:func:`query_guard`), and nothing more when
the watchlist is empty.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from .._vectors import template_of
from ..errors import EnrollmentRefused
from ..types import Match, Outcome
from ._checks import Verdict
from ._retention import expire_due

if TYPE_CHECKING:
    from ..storage import Snapshot, Storage
    from ..types import DecisionPolicy

__all__ = ["flag_identification", "flag_verification", "query_guard", "refuse_watchlisted"]


def query_guard(storage: Storage) -> frozenset[str]:
    """Before a query: delete the voiceprints that expired, and return the watchlist,
    from one read (a write only when something expired)."""
    now = datetime.now(timezone.utc)
    with storage.read() as snapshot:
        due = bool(snapshot.expired(now))
        watched = snapshot.watchlist()
    if due:
        expire_due(storage, now)
    return watched


def flag_identification(
    matches: tuple[Match, ...], policy: DecisionPolicy, watched: frozenset[str]
) -> Verdict | None:
    """``watchlist`` when the best match is watchlisted and reaches the threshold."""
    best = matches[0] if matches else None
    if best is None or best.speaker not in watched or not policy.accepts(best.decision_score):
        return None
    return Verdict(Outcome.WATCHLIST, f"the voice matches {best.speaker!r} on the watchlist")


def flag_verification(
    storage: Storage,
    claimed: str,
    query: np.ndarray,
    score: float,
    accepted: bool,
    cosine_threshold: float,
    watched: frozenset[str],
) -> Verdict | None:
    """``watchlist`` for a verify: see the module's docstring."""
    if not watched:
        return None
    if claimed in watched and accepted:
        return Verdict(Outcome.WATCHLIST, f"{claimed!r} is on the watchlist")
    with storage.read() as snapshot:
        found = _best_watched(snapshot, watched, query[None, :])
    if found is not None and found[1] >= max(cosine_threshold, score):
        return Verdict(Outcome.WATCHLIST, f"the voice matches {found[0]!r} on the watchlist")
    return None


def refuse_watchlisted(
    snapshot: Snapshot, name: str, embeddings: np.ndarray, cosine_threshold: float
) -> None:
    """Raise :class:`EnrollmentRefused` when a new speaker's voice matches a watchlisted one."""
    watched = snapshot.watchlist()
    if not watched:
        return
    probes = np.vstack([embeddings, template_of(embeddings)[None, :]])
    found = _best_watched(snapshot, watched, probes)
    if found is not None and found[1] >= cosine_threshold:
        raise EnrollmentRefused(
            f"the voice of {name!r} matches {found[0]!r} on the watchlist (cosine "
            f"{found[1]:.3f} >= {cosine_threshold:.3f}); a watchlisted voice is not "
            "enrolled as a new person"
        )


def _best_watched(
    snapshot: Snapshot, watched: frozenset[str], probes: np.ndarray
) -> tuple[str, float] | None:
    """The watchlisted speaker closest to any of ``probes``, and that cosine."""
    names = sorted(n for n in watched if n in snapshot.names())
    if not names:
        return None
    templates = np.stack([snapshot.template(n) for n in names])
    scores = (np.asarray(probes, np.float32) @ templates.T).max(axis=0)
    best = int(np.argmax(scores))
    return names[best], float(scores[best])
