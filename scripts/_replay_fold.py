"""A fold of ``scripts/eval_replay.py`` (evaluation only): which clips its databases
store and which it looks up (:func:`fold_paths`), the distractors, and every lookup of
its copies and genuine clips in each database of a run's setups (:func:`build_fold`),
kept as a :class:`Fold`."""

from __future__ import annotations

import argparse
import random
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
from _replay_confounds import Confounds, confounds
from _replay_corpus import RATE, clips_by_speaker, load, load_as, progress, usable
from _replay_crowd import crowd_prints, speaker_of
from _replay_lookup import (
    EPOCH,
    Loss,
    Printed,
    database,
    exact_score,
    loss_of,
    matched,
    printed_of,
)
from _replay_setups import CLEAN, LOOKS_IN, OTHER, OWN, SCALE, SETUPS, SUSPECT, Setup, share_of
from _replay_suspect import best_of_union, prints_by_voice
from _replay_transforms import ACCEPTANCE, TRANSFORMS, copies
from _shared_audio import spectra

from speakerdb.audio import Fingerprint, best_matches, fingerprint
from speakerdb.errors import AudioError
from speakerdb.services._replay import CANDIDATES, MATCH_THRESHOLD, voted_prints
from speakerdb.storage import Storage


@dataclass
class Fold:
    """One fold's scores, per :data:`Setup`: replays by transform (and the exact own clip)
    with each replayed clip's duration, and each genuine new clip's best match."""

    speakers: list[str]
    stored: int
    distractors: int
    replay: dict[Setup, dict[str, np.ndarray]]
    exact: dict[str, np.ndarray]
    seconds: np.ndarray
    genuine: dict[Setup, np.ndarray]
    shared: Confounds
    #: Per setup with distractors, each genuine clip's matched stored clip (its source).
    matches: dict[Setup, list[Source | None]]
    genuine_paths: list[str]
    #: Each lookup's margin: its best score less the median of the other candidates'.
    replay_margin: dict[Setup, dict[str, np.ndarray]]
    genuine_margin: dict[Setup, np.ndarray]
    #: Stored fingerprints in the own, scale and clean databases.
    sizes: tuple[int, int, int]
    #: Per setup, why each copy of the issue's list it missed was missed (:func:`loss_of`).
    losses: dict[Setup, list[Loss]]
    #: Per database, the file of each stored fingerprint (whose voice it is).
    stored_files: dict[str, list[str]] = field(default_factory=dict)

    def confound_free(self, setup: Setup, margins: bool = False) -> np.ndarray:
        """The genuine clips' best matches (or their margins), less those of clips that
        share recorded audio with a stored clip of the fold (true replays of a part)."""
        keep = np.ones(len(self.genuine_paths), bool)
        keep[sorted(self.shared.genuine_with_stored)] = False
        return (self.genuine_margin if margins else self.genuine)[setup][keep]


#: Where a stored fingerprint comes from: ``(kind, path, time-reversed)``, kind "stored"
#: (the fold's enrolled and kept clips), "distractor" or "crowd" (another fold's voice).
Source = tuple[str, str, bool]


FoldPaths = tuple[list[str], list[str], list[str], list[str]]


def fold_paths(speakers: list[str], args: argparse.Namespace) -> FoldPaths:
    """A fold's stored, replayed and genuine clips, and the spare ones (distractors)."""
    every, enrolled = clips_by_speaker()
    stored_paths: list[str] = []
    genuine_paths: list[str] = []
    replayed: list[str] = []
    spare: list[str] = []
    for spk in speakers:
        rng = random.Random(f"{args.seed}|{spk}")
        pool = sorted(every[spk])
        first = [p for p in enrolled.get(spk, []) if p in pool] or rng.sample(pool, 3)
        rest = [p for p in pool if p not in first]
        rng.shuffle(rest)
        skip = args.recent + args.genuine_from
        rest = [p for p in rest[: 2 * (skip + args.genuine)] if usable(p)]
        mine = [p for p in first if usable(p)] + rest[: args.recent]
        stored_paths += mine
        replayed += mine[args.replays_from : args.replays_from + args.replays]
        genuine = rest[skip : skip + args.genuine]
        genuine_paths += genuine
        # With --genuine-from every clip neither stored nor genuine is a distractor (the
        # earlier genuine ones too); without it, as in the runs the README reports, the
        # unused clips of the prefix drawn from stay out.
        taken = set(first) | (set(mine + genuine) if args.genuine_from else set(rest))
        spare += [p for p in pool if p not in taken]
    return stored_paths, replayed, genuine_paths, spare


def build_fold(
    speakers: list[str],
    args: argparse.Namespace,
    setups: list[Setup] = SETUPS,
    crowd: tuple[list[str], int] | None = None,
) -> Fold:
    """A fold's lookups in each database of ``setups``; ``crowd``: the other voices'
    clips in order and how many fingerprints of them the :data:`OTHER` database stores."""
    stored_paths, replayed, genuine_paths, spare = fold_paths(speakers, args)
    prints = [fingerprint(load(p)) for p in stored_paths]
    progress(f"{', '.join(speakers)}: fingerprints and frames of the distractors")
    others, sources, frames = distractors(spare, args.distractors, args.seed)
    progress("looking for shared recorded audio (waveforms)")
    shared = confounds(genuine_paths, stored_paths, sources, frames, args.seed)
    clean = [p for i, p in enumerate(others) if i not in shared.distractors_shared]
    source_of: dict[bytes, Source] = {
        p.to_bytes(): ("stored", path, False) for p, path in zip(prints, stored_paths, strict=True)
    }
    for p, (path, rev) in zip(others, sources, strict=True):
        source_of.setdefault(p.to_bytes(), ("distractor", path, rev))
    crowded, crowd_sources = _crowd(crowd)
    for p, (path, rev) in zip(crowded, crowd_sources, strict=True):
        source_of.setdefault(p.to_bytes(), ("crowd", path, rev))
    clean_sources = [s for i, s in enumerate(sources) if i not in shared.distractors_shared]
    files = {
        OWN: stored_paths,
        SCALE: stored_paths + [path for path, _ in sources],
        CLEAN: stored_paths + [path for path, _ in clean_sources],
        OTHER: stored_paths + [path for path, _ in crowd_sources],
    }
    own = {p: prints[i] for i, p in enumerate(stored_paths)}
    # The suspect's stored prints: the fold's own stored clips of that voice (the crowd
    # holds none: it is the other fold's voices).
    voices = prints_by_voice(prints, stored_paths)
    if {speaker_of(path) for path, _ in crowd_sources} & set(speakers):
        raise SystemExit("the other-voice crowd holds a voice of the fold: the protocol forbids it")
    replay: dict[Setup, dict[str, list[float]]] = {
        setup: {name: [] for name in TRANSFORMS} for setup in setups
    }
    genuine: dict[Setup, list[float]] = {setup: [] for setup in setups}
    replay_margin = {setup: {name: [] for name in TRANSFORMS} for setup in setups}
    genuine_margin: dict[Setup, list[float]] = {setup: [] for setup in setups}
    matches: dict[Setup, list[Source | None]] = {s: [] for s in setups if s[0] != OWN}
    exact: dict[str, list[float]] = {name: [] for name in TRANSFORMS}
    losses: dict[Setup, list[Loss]] = {setup: [] for setup in setups}
    seconds = []
    progress("looking up replays and genuine clips")
    with (
        database(prints) as small,
        database(prints + others) as large,
        database(prints + clean) as cleaned,
        ExitStack() as stack,
    ):
        storages = {OWN: small, SCALE: large, CLEAN: cleaned}
        if crowd is not None:
            storages[OTHER] = stack.enter_context(database(prints + crowded))
        storages |= {db: storages[base] for db, base in LOOKS_IN.items()}
        storages |= {db: storages[base] for db, base in SUSPECT.items() if base in storages}
        for j, path in enumerate(replayed):
            x = load(path)
            seconds.append(x.size / RATE)
            for name, samples in copies(x, args.seed, j):
                copy = printed_of(samples)
                exact[name].append(exact_score(copy, own[path]))
                for db, rows in setups:
                    score, _, margin = _looked(db, storages[db], copy, rows, voices, path)
                    replay[db, rows][name].append(score)
                    replay_margin[db, rows][name].append(margin)
                    if name in ACCEPTANCE and score < MATCH_THRESHOLD:
                        why = loss_of(storages[db], copy, own[path], rows, exact[name][-1])
                        losses[db, rows].append(why)
        for path in genuine_paths:
            query = printed_of(load(path))
            for db, rows in setups:
                score, hit, margin = _looked(db, storages[db], query, rows, voices, path)
                genuine[db, rows].append(score)
                genuine_margin[db, rows].append(margin)
                if db != OWN:
                    matches[db, rows].append(None if hit is None else source_of.get(hit))
    return Fold(
        speakers,
        len(prints),
        len(others),
        {k: {n: np.array(v) for n, v in by.items()} for k, by in replay.items()},
        {k: np.array(v) for k, v in exact.items()},
        np.array(seconds),
        {k: np.array(v) for k, v in genuine.items()},
        shared,
        matches,
        genuine_paths,
        {k: {n: np.array(v) for n, v in by.items()} for k, by in replay_margin.items()},
        {k: np.array(v) for k, v in genuine_margin.items()},
        (len(prints), len(prints) + len(others), len(prints) + len(clean)),
        losses,
        files,
    )


def _looked(
    db: str,
    storage: Storage,
    printed: Printed,
    rows: int | None,
    voices: dict[str, list[Fingerprint]],
    path: str,
) -> tuple[float, bytes | None, float]:
    """:func:`matched` in ``db`` (the matched fingerprint as bytes); in a
    :data:`SUSPECT` database, the suspect-aware check, the suspect being the voice of
    ``path`` (the copied clip's, or the genuine clip's own)."""
    if db not in SUSPECT:
        score, hit, margin = matched(storage, printed, rows, share_of(db))
        return score, None if hit is None else hit.data, margin
    if printed is None:
        return 0.0, None, 0.0
    hits = voted_prints(storage, *printed, EPOCH, rows_per_key=rows, limit=CANDIDATES)
    score, best = best_of_union(
        [h.data for h in hits],
        [p.to_bytes() for p in voices.get(speaker_of(path), [])],
        lambda union: best_matches(printed[0], [Fingerprint.from_bytes(b) for b in union]),
    )
    return score, best, 0.0


def _crowd(crowd: tuple[list[str], int] | None) -> tuple[list[Fingerprint], list[tuple[str, bool]]]:
    """The other voices' fingerprints (:func:`_replay_crowd.crowd_prints`), none without a
    crowd."""
    if crowd is None:
        return [], []
    progress(f"fingerprints of the other voices' crowd (up to {crowd[1]})")
    return crowd_prints(crowd[0], crowd[1], lambda path, rev: _printed(load_as(path, rev)))


def _printed(samples: np.ndarray) -> Fingerprint | None:
    try:
        return fingerprint(samples)
    except AudioError:
        return None


def distractors(
    paths: list[str], most: int, seed: int
) -> tuple[list[Fingerprint], list[tuple[str, bool]], list[np.ndarray]]:
    """Up to ``most`` other stored clips: the fold's speakers' clips that are neither
    stored, replayed nor looked up as genuine, as they are and time-reversed (distinct
    audio with speech's spectra, never a copy of a query); for each, its file and
    whether it is reversed, and its frames for the shared-audio screen."""
    chosen = sorted(paths)
    random.Random(seed).shuffle(chosen)
    out: list[Fingerprint] = []
    sources: list[tuple[str, bool]] = []
    frames: list[np.ndarray] = []
    for path in chosen:
        x = load(path)
        for reversed_, samples in ((False, x), (True, x[::-1].copy())):
            try:
                out.append(fingerprint(samples))
            except AudioError:
                continue
            sources.append((path, reversed_))
            frames.append(spectra(samples))
        if len(out) >= most:
            break
    return out[:most], sources[:most], frames[:most]
