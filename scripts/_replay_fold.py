"""A fold of ``scripts/eval_replay.py`` (evaluation only): which clips its databases
store and which it looks up (:func:`fold_paths`), the distractors, and every lookup of
its copies and genuine clips in each database of a run's setups (:func:`build_fold`),
kept as a :class:`Fold`."""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
    held = _held(stored_paths, prints, others, sources, shared, crowd)
    if {speaker_of(path) for path, _ in held.crowd_sources} & set(speakers):
        raise SystemExit("the other-voice crowd holds a voice of the fold: the protocol forbids it")
    own = dict(zip(stored_paths, prints))
    source_of = held.source_of()
    progress("looking up replays and genuine clips")
    with _databases(held, crowd is not None) as storages:
        # The suspect's stored prints: the fold's own stored clips of that voice (the
        # crowd holds none: it is the other fold's voices).
        looked = _Lookups(setups, storages, prints_by_voice(prints, stored_paths))
        for j, path in enumerate(replayed):
            looked.copies_of(path, j, args.seed, own[path])
        for path in genuine_paths:
            looked.genuine_clip(path, source_of)
    return looked.fold(speakers, held, shared, genuine_paths)


@dataclass
class _Held:
    """What a fold's databases store: its own stored clips (their files and fingerprints),
    the distractors (each one's file and whether it is time-reversed), those of them that
    share no recorded audio with a genuine clip (the clean database's), and the other
    voices' crowd (none without one)."""

    stored_paths: list[str]
    prints: list[Fingerprint]
    others: list[Fingerprint]
    sources: list[tuple[str, bool]]
    clean: list[Fingerprint]
    clean_sources: list[tuple[str, bool]]
    crowded: list[Fingerprint]
    crowd_sources: list[tuple[str, bool]]

    def source_of(self) -> dict[bytes, Source]:
        """Each stored fingerprint's :data:`Source` (a fingerprint stored twice: the
        first one's)."""
        source_of: dict[bytes, Source] = {
            p.to_bytes(): ("stored", path, False)
            for p, path in zip(self.prints, self.stored_paths, strict=True)
        }
        for p, (path, rev) in zip(self.others, self.sources, strict=True):
            source_of.setdefault(p.to_bytes(), ("distractor", path, rev))
        for p, (path, rev) in zip(self.crowded, self.crowd_sources, strict=True):
            source_of.setdefault(p.to_bytes(), ("crowd", path, rev))
        return source_of

    def files(self) -> dict[str, list[str]]:
        """Per database, the file of each stored fingerprint."""
        return {
            OWN: self.stored_paths,
            SCALE: self.stored_paths + [path for path, _ in self.sources],
            CLEAN: self.stored_paths + [path for path, _ in self.clean_sources],
            OTHER: self.stored_paths + [path for path, _ in self.crowd_sources],
        }


def _held(
    stored_paths: list[str],
    prints: list[Fingerprint],
    others: list[Fingerprint],
    sources: list[tuple[str, bool]],
    shared: Confounds,
    crowd: tuple[list[str], int] | None,
) -> _Held:
    """What the fold's databases store: the clean ones are the distractors that share no
    recorded audio with a genuine clip; the crowd is fingerprinted here."""
    clean = [p for i, p in enumerate(others) if i not in shared.distractors_shared]
    crowded, crowd_sources = _crowd(crowd)
    clean_sources = [s for i, s in enumerate(sources) if i not in shared.distractors_shared]
    return _Held(
        stored_paths, prints, others, sources, clean, clean_sources, crowded, crowd_sources
    )


@contextmanager
def _databases(held: _Held, with_crowd: bool) -> Iterator[dict[str, Storage]]:
    """The fold's databases, open, by name: :data:`OWN`, :data:`SCALE`, :data:`CLEAN`,
    :data:`OTHER` (``with_crowd``), and the names that look in one of them."""
    prints = held.prints
    with (
        database(prints) as small,
        database(prints + held.others) as large,
        database(prints + held.clean) as cleaned,
        ExitStack() as stack,
    ):
        storages = {OWN: small, SCALE: large, CLEAN: cleaned}
        if with_crowd:
            storages[OTHER] = stack.enter_context(database(prints + held.crowded))
        storages |= {db: storages[base] for db, base in LOOKS_IN.items()}
        storages |= {db: storages[base] for db, base in SUSPECT.items() if base in storages}
        yield storages


class _Lookups:
    """A fold's lookups in each database of ``setups`` (open, by name), their scores
    collected as they come: :meth:`fold` keeps them as a :class:`Fold`. ``voices``: each
    speaker's stored fingerprints, the suspect's prints of a :data:`SUSPECT` database."""

    def __init__(
        self,
        setups: list[Setup],
        storages: dict[str, Storage],
        voices: dict[str, list[Fingerprint]],
    ) -> None:
        self.setups, self.storages, self.voices = setups, storages, voices
        self.replay: dict[Setup, dict[str, list[float]]] = {
            setup: {name: [] for name in TRANSFORMS} for setup in setups
        }
        self.genuine: dict[Setup, list[float]] = {setup: [] for setup in setups}
        self.replay_margin: dict[Setup, dict[str, list[float]]] = {
            setup: {name: [] for name in TRANSFORMS} for setup in setups
        }
        self.genuine_margin: dict[Setup, list[float]] = {setup: [] for setup in setups}
        self.matches: dict[Setup, list[Source | None]] = {s: [] for s in setups if s[0] != OWN}
        self.exact: dict[str, list[float]] = {name: [] for name in TRANSFORMS}
        self.losses: dict[Setup, list[Loss]] = {setup: [] for setup in setups}
        self.seconds: list[float] = []

    def copies_of(self, path: str, j: int, seed: int, source: Fingerprint) -> None:
        """Looks up every copy of ``path``, the ``j``-th clip replayed (``source``: its
        stored fingerprint), in each setup; why each copy of the issue's list missed was
        missed."""
        x = load(path)
        self.seconds.append(x.size / RATE)
        for name, samples in copies(x, seed, j):
            copy = printed_of(samples)
            self.exact[name].append(exact_score(copy, source))
            for db, rows in self.setups:
                score, _, margin = self._looked(db, copy, rows, path)
                self.replay[db, rows][name].append(score)
                self.replay_margin[db, rows][name].append(margin)
                if name in ACCEPTANCE and score < MATCH_THRESHOLD:
                    why = loss_of(self.storages[db], copy, source, rows, self.exact[name][-1])
                    self.losses[db, rows].append(why)

    def genuine_clip(self, path: str, source_of: dict[bytes, Source]) -> None:
        """Looks up the genuine clip ``path`` in each setup, and what it matched in the
        databases with other clips than the fold's own."""
        query = printed_of(load(path))
        for db, rows in self.setups:
            score, hit, margin = self._looked(db, query, rows, path)
            self.genuine[db, rows].append(score)
            self.genuine_margin[db, rows].append(margin)
            if db != OWN:
                self.matches[db, rows].append(None if hit is None else source_of.get(hit))

    def _looked(
        self, db: str, printed: Printed, rows: int | None, path: str
    ) -> tuple[float, bytes | None, float]:
        return _looked(db, self.storages[db], printed, rows, self.voices, path)

    def fold(
        self, speakers: list[str], held: _Held, shared: Confounds, genuine_paths: list[str]
    ) -> Fold:
        """The lookups' scores, as arrays, with what the databases held."""
        stored, others, clean = len(held.prints), len(held.others), len(held.clean)
        return Fold(
            speakers,
            stored,
            others,
            {k: {n: np.array(v) for n, v in by.items()} for k, by in self.replay.items()},
            {k: np.array(v) for k, v in self.exact.items()},
            np.array(self.seconds),
            {k: np.array(v) for k, v in self.genuine.items()},
            shared,
            self.matches,
            genuine_paths,
            {k: {n: np.array(v) for n, v in by.items()} for k, by in self.replay_margin.items()},
            {k: np.array(v) for k, v in self.genuine_margin.items()},
            (stored, stored + others, stored + clean),
            self.losses,
            held.files(),
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
