"""The suspect-aware replay check of ``scripts/eval_replay.py --suspect`` (evaluation only,
not in the library): a replay matters for the speaker the decision is about (a verify's
claimed speaker, or the one identify would name), so besides the shipped lookup's
best-voted candidates the check scores every stored fingerprint of that *suspect*: a
handful per person, so neither its cost nor its chance of a false match grows with the
site."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np
from _replay_crowd import speaker_of

Print = TypeVar("Print")


def prints_by_voice(prints: Iterable[Print], paths: Iterable[str]) -> dict[str, list[Print]]:
    """The stored fingerprints of each voice (the speaker whose directory holds the clip),
    ``paths[i]`` the file of ``prints[i]``."""
    out: dict[str, list[Print]] = {}
    for printed, path in zip(prints, paths, strict=True):
        out.setdefault(speaker_of(path), []).append(printed)
    return out


def suspect_union(voted: Sequence[bytes], suspect: Sequence[bytes]) -> list[bytes]:
    """The fingerprints the suspect-aware check scores: the shipped lookup's candidates
    (best-voted first), then each stored fingerprint of the suspect not among them, each
    once; nobody else's is added."""
    seen = set(voted)
    return list(voted) + [p for p in dict.fromkeys(suspect) if p not in seen]


def best_of_union(
    voted: Sequence[bytes],
    suspect: Sequence[bytes],
    score: Callable[[list[bytes]], np.ndarray],
) -> tuple[float, bytes | None]:
    """The best exact score over :func:`suspect_union` (``score`` gives each fingerprint's
    score against the query) and the fingerprint that has it; ``0.0, None`` when there is
    no candidate."""
    union = suspect_union(voted, suspect)
    if not union:
        return 0.0, None
    scores = score(union)
    best = int(np.argmax(scores))
    return float(scores[best]), union[best]
