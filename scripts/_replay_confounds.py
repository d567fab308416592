"""Shared recorded audio in ``scripts/eval_replay.py``'s folds (evaluation only): which
genuine clips share a recording with a stored clip or a distractor, decided from the
waveforms (:mod:`_shared_audio`), and how well the screen that picks the pairs to decide
was checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _replay_corpus import load, load_as, progress
from _shared_audio import (
    SAME,
    SCREEN,
    Pair,
    Screen,
    decide,
    screened_pairs,
    shared_stretch,
    spectra,
    spliced,
)

#: A pair of clips that share recorded audio: the genuine clip's path, the other's, whether
#: the other is time-reversed, and where they line up.
Shared = tuple[str, str, bool, Pair]


@dataclass
class Confounds:
    """Which genuine clips share recorded audio (:mod:`_shared_audio`) with a stored
    clip of the fold or a distractor, and how well the screen was checked."""

    genuine_with_stored: set[int]
    distractors_shared: set[int]
    pairs: list[Shared]
    compared: int  # genuine-distractor pairs of one speaker screened
    screened: int  # pairs the screen passed, all decided
    splices: tuple[int, int, int]  # spliced copies: passed the screen, decided same, made
    rejected: tuple[int, int]  # of the highest-screened pairs rejected: same, decided


def _screen_by_speaker(
    genuine_paths: list[str],
    genuine_frames: list[np.ndarray],
    sources: list[tuple[str, bool]],
    frames: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The screen's score of every genuine clip with every distractor of its own speaker,
    ``(genuine, distractors)``, -1 for another speaker's (not screened: a recording is
    one voice's, and a flagged pair across voices is decided in full by the report); and
    where each pair's best diagonal starts, ``(genuine, distractors, 2)`` seconds."""
    scores = np.full((len(genuine_paths), len(frames)), -1.0)
    where = np.zeros((*scores.shape, 2))
    speaker = np.array([Path(path).parent.name for path, _ in sources])
    for spk in sorted(set(speaker)):
        columns = np.flatnonzero(speaker == spk)
        view = Screen.of([frames[j] for j in columns])
        for i, path in enumerate(genuine_paths):
            if Path(path).parent.name == spk:
                scores[i, columns], where[i, columns] = view.best_at(
                    genuine_frames[i], columns.size
                )
    return scores, where


def confounds(
    genuine_paths: list[str],
    stored_paths: list[str],
    sources: list[tuple[str, bool]],
    frames: list[np.ndarray],
    seed: int,
    checks: int = 50,
) -> Confounds:
    """Which genuine clips share recorded audio with a stored clip of the fold, and which
    distractors share it with a genuine clip, decided from the waveforms
    (:mod:`_shared_audio`: every pair of one speaker the screen passes is decided), with
    the screen's checks: ``checks`` spliced copies among the genuine clips, and the
    ``checks`` highest-screened pairs it rejected, decided exhaustively."""
    genuine = [load(p) for p in genuine_paths]
    with_stored, pairs = _shared_with_stored(genuine, genuine_paths, stored_paths)
    genuine_frames = [spectra(g) for g in genuine]
    scores, where = _screen_by_speaker(genuine_paths, genuine_frames, sources, frames)
    progress(f"deciding {int((scores >= SCREEN).sum())} screened pairs")
    shared, found, decided = _decide_screened(genuine, genuine_paths, sources, scores, where)
    return Confounds(
        with_stored,
        shared,
        pairs + found,
        int((scores > -1).sum()),
        decided,
        _splices_check(genuine, seed, checks),
        _rejected_check(genuine, sources, scores, checks),
    )


def _shared_with_stored(
    genuine: list[np.ndarray], genuine_paths: list[str], stored_paths: list[str]
) -> tuple[set[int], list[Shared]]:
    """The genuine clips that share recorded audio with a stored clip of the fold (every
    pair screened, those it passes decided), and those pairs."""
    with_stored: set[int] = set()
    pairs: list[Shared] = []
    for pair in screened_pairs(genuine, [load(p) for p in stored_paths])[0]:
        if pair.same:
            with_stored.add(pair.query)
            pairs.append((genuine_paths[pair.query], stored_paths[pair.other], False, pair))
    return with_stored, pairs


def _decide_screened(
    genuine: list[np.ndarray],
    genuine_paths: list[str],
    sources: list[tuple[str, bool]],
    scores: np.ndarray,
    where: np.ndarray,
) -> tuple[set[int], list[Shared], int]:
    """Every genuine-distractor pair the screen passed, decided from the waveforms near
    where the screen lined them up: the distractors that share recorded audio with a
    genuine clip, those pairs, and how many pairs were decided."""
    shared: set[int] = set()
    pairs: list[Shared] = []
    decided = 0
    other, other_at = np.zeros(0), -1
    # By distractor, so each is read once.
    for oi, qi in zip(*np.nonzero(scores.T >= SCREEN), strict=True):
        path, rev = sources[oi]
        if oi != other_at:
            other, other_at = load_as(path, rev), oi
        near = (where[qi, oi, 0], where[qi, oi, 1])
        corr, q_at, o_at = shared_stretch(genuine[qi], other, near=near)
        decided += 1
        if corr >= SAME:
            shared.add(int(oi))
            pair = Pair(int(qi), int(oi), float(scores[qi, oi]), corr, q_at, o_at)
            pairs.append((genuine_paths[qi], path, rev, pair))
    return shared, pairs, decided


def _rejected_check(
    genuine: list[np.ndarray], sources: list[tuple[str, bool]], scores: np.ndarray, checks: int
) -> tuple[int, int]:
    """Of the ``checks`` highest-screened pairs the screen rejected, decided over every
    alignment: how many are the same recording, and how many were decided."""
    below = np.where(scores < SCREEN, scores, -2.0).ravel()
    top = np.argsort(below)[::-1][:checks]
    count = scores.shape[1]  # the distractors
    missed = sum(
        shared_stretch(genuine[i // count], load_as(*sources[i % count]))[0] >= SAME for i in top
    )
    return missed, len(top)


def _splices_check(genuine: list[np.ndarray], seed: int, checks: int) -> tuple[int, int, int]:
    """``checks`` spliced copies among the genuine clips: how many the screen passed, how
    many were decided the same recording, and how many were made."""
    rng = np.random.default_rng(seed)
    passed = same = 0
    for _ in range(checks):
        clip, host = spliced(genuine, genuine, rng)
        clip_frames, host_frames = spectra(clip), spectra(host)
        passed += Screen.of([host_frames]).best(clip_frames, 1)[0] >= SCREEN
        same += decide(clip, host, clip_frames, host_frames)[0] >= SAME
    return passed, same, checks
