"""The other-voice crowd of ``scripts/eval_replay.py --crowd other``: which clips a fold's
at-scale database stores besides its own, when they are other people's voices.

A fold's same-voice distractors are clips of its own speakers, so each person has about
a thousand stored fingerprints; a large site has thousands of other people and few
fingerprints of each. The crowd models that site: clips of the *other* fold's speakers
(none of them is ever looked up in this fold's test), in a seeded order, each as it is
and time-reversed, as many as the same-voice clean database held distractors in the
session-10 test (:data:`CROWD_SIZE`), or every one there is when there are fewer.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

#: The crowd per fold: as many fingerprints as that fold's clean same-voice database held
#: distractors in the session-10 test (5,880 - 198 and 3,901 - 165 stored), so only whose
#: voices they are changes.
CROWD_SIZE = {"A": 5682, "B": 3736}

Print = TypeVar("Print")
#: Where a crowd fingerprint comes from: its file and whether it is time-reversed.
CrowdSource = tuple[str, bool]


def speaker_of(path: str) -> str:
    """The corpus files a clip under its speaker's directory."""
    return Path(path).parent.name


def crowd_paths(
    fold: str, folds: Mapping[str, Sequence[str]], every: Mapping[str, Sequence[str]], seed: int
) -> list[str]:
    """Every clip of the speakers of the folds other than ``fold`` (``every``: the usable
    clips per speaker), in an order seeded by ``seed`` and ``fold`` alone: the same inputs
    give the same crowd, whatever order ``every`` lists them in."""
    mine = set(folds[fold])
    voices = [spk for name, members in folds.items() if name != fold for spk in members]
    paths = sorted({p for spk in voices if spk not in mine for p in every.get(spk, ())})
    random.Random(f"{seed}|crowd|{fold}").shuffle(paths)
    return paths


def crowd_prints(
    paths: Iterable[str], most: int, printed: Callable[[str, bool], Print | None]
) -> tuple[list[Print], list[CrowdSource]]:
    """Up to ``most`` fingerprints of ``paths`` in their order, each clip as it is and
    then time-reversed, as ``distractors()`` stores them; ``printed(path, reversed)`` is
    the fingerprint, ``None`` for audio too short or quiet (skipped)."""
    out: list[Print] = []
    sources: list[CrowdSource] = []
    for path in paths:
        for reversed_ in (False, True):
            if len(out) >= most:
                return out, sources
            got = printed(path, reversed_)
            if got is not None:
                out.append(got)
                sources.append((path, reversed_))
    return out, sources


#: Per speaker: (stored prints of their voice, of other voices).
Voices = dict[str, tuple[int, int]]


def voices_stored(stored_paths: Iterable[str], speakers: Iterable[str]) -> Voices:
    """For each of ``speakers``, how many of the stored fingerprints (one path each, a
    time-reversed clip's path repeated) are of their own voice and how many of others."""
    count = Counter(speaker_of(p) for p in stored_paths)
    total = sum(count.values())
    return {spk: (count[spk], total - count[spk]) for spk in speakers}


def matched_voices(flagged: Iterable[tuple[str, str]]) -> Counter[str]:
    """Of the ``(genuine path, matched path)`` pairs of the genuine clips flagged, how many
    matched a clip of the genuine clip's own voice (``"own"``) or another's (``"other"``)."""
    return Counter("own" if speaker_of(g) == speaker_of(m) else "other" for g, m in flagged)
