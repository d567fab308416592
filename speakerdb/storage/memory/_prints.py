"""Replay fingerprints in memory (:mod:`speakerdb.storage._prints`): the lookup of the
stored fingerprints that share the most keys with a query, and their pruning."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from .._prints import PrintHit, StoredPrint, affordable_keys, lag_votes, ranked_by_votes
from ._state import State

__all__ = ["add", "candidates", "counts", "forget_clip", "forget_speaker", "has_keys", "prune"]


def candidates(
    state: State,
    keys: np.ndarray,
    since: datetime,
    limit: int,
    session: str | None,
    rows: int | None,
) -> list[PrintHit]:
    """:meth:`~speakerdb.storage.Snapshot.print_candidates` on ``state``."""
    held = state.prints
    stored = [
        np.column_stack([np.full(len(p.keys), i), np.asarray(p.keys, np.int64)])
        for i, (p, _) in held.items()
        if len(p.keys)
    ]
    every = np.concatenate(stored) if stored else np.zeros((0, 3), np.int64)
    wanted, counted = np.unique(every[:, 1], return_counts=True)
    asked = np.isin(wanted, np.asarray(keys, np.int64).reshape(-1, 2)[:, 0])
    read = affordable_keys(wanted[asked], counted[asked], rows)
    live = [i for i, p in held.items() if _visible(p, since, session)]
    chosen = every[np.isin(every[:, 1], read) & np.isin(every[:, 0], live)]
    votes = lag_votes(keys, chosen)
    return [_hit(state, i, votes[i]) for i in ranked_by_votes(votes)[: max(limit, 0)]]


def _visible(held: tuple[StoredPrint, int | None], since: datetime, session: str | None) -> bool:
    """Whether a stored fingerprint takes part in a lookup: an enrolled clip's always, a
    query's within the window and not of the asking session."""
    printed = held[0]
    if printed.utterance_id is not None:
        return True
    return printed.time >= since and (session is None or printed.session != session)


def _hit(state: State, print_id: int, votes: int) -> PrintHit:
    printed, owner = state.prints[print_id]
    person = state.speakers.get(owner) if owner is not None else None
    name = person.name if person is not None else None
    return PrintHit(print_id, printed.data, printed.utterance_id is not None, name, votes)


def counts(state: State, since: datetime) -> tuple[int, int]:
    """How many fingerprints are kept: of enrolled clips, and of queries since ``since``."""
    held = state.prints.values()
    enrolled = sum(p.utterance_id is not None for p, _ in held)
    recent = sum(p.utterance_id is None and p.time >= since for p, _ in held)
    return enrolled, recent


def has_keys(state: State, low: int, high: int) -> bool:
    """Whether any kept fingerprint has an index key ``low <= key < high``."""
    for printed, _ in state.prints.values():
        keys = np.asarray(printed.keys, np.int64).reshape(-1, 2)[:, 0]
        if np.any((keys >= low) & (keys < high)):
            return True
    return False


def add(state: State, prints: Sequence[StoredPrint]) -> None:
    """Keep ``prints``, each with the id of its clip's speaker or of the speaker it names."""
    for printed in prints:
        owner = state.by_name.get(printed.speaker) if printed.speaker else None
        if printed.utterance_id is not None:
            owner = state.by_name.get(state.utterances[printed.utterance_id].speaker)
        state.prints[state.next_print] = (printed, owner)
        state.next_print += 1


def prune(state: State, before: datetime) -> int:
    """Drop the queries' fingerprints older than ``before``; return how many."""
    old = [i for i, (p, _) in state.prints.items() if p.utterance_id is None and p.time < before]
    for print_id in old:
        del state.prints[print_id]
    return len(old)


def forget_speaker(state: State, speaker_id: int) -> None:
    """Drop every fingerprint that goes with a removed speaker."""
    state.prints = {i: h for i, h in state.prints.items() if h[1] != speaker_id}


def forget_clip(state: State, utterance_id: int) -> None:
    """Drop the fingerprint of a removed clip."""
    held = state.prints.items()
    state.prints = {i: h for i, h in held if h[0].utterance_id != utterance_id}
