"""The open-set evaluation's data: per speaker, enrollment clips and test items, embedded
once with the offline GE2E encoder and cached (scripts/eval_open_set.py uses it).

Per speaker of the shared corpus, in its main language:

- 3 enrollment clips: the protocol's (``protocol/enroll.csv``), or, for the
  protocol's never-enrolled speakers, 3 seeded clips of at least 1 s;
- single clips: up to ``singles`` seeded clips of the rest;
- items of 3 s or more: further clips of the rest, concatenated in turn until they
  reach 3 s (as the corpus's ``concat3s`` items are made), up to ``items`` of them.

The corpus labels 60 clips ``silence__N.wav`` (digital silence) as speakers; they are
left out, and so is every clip speakerdb refuses to decode (too short or silent).
Embeddings (of each clip's spoken part, as the library embeds it) and net speech
(:func:`speakerdb.audio.net_speech_s`) are cached under ``~/.cache/speakerdb-openset/``,
keyed by the audio's SHA-256, the spoken part's bounds and the encoder revision.
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speakerdb.audio import Clip, clip_from_array, load_clip, net_speech_s, spoken_part
from speakerdb.errors import AudioError

CACHE_DIR = Path.home() / ".cache" / "speakerdb-openset"
CONCAT_MIN_S = 3.0
N_ENROLL = 3


@dataclass(frozen=True)
class Items:
    """Embedded clips of one speaker: ``(n, d)`` vectors, durations, net speech and
    lengths (s). ``durations`` are what the library's decisions take, each clip's
    spoken length (:attr:`speakerdb.audio.Clip.spoken_s`)."""

    vectors: np.ndarray
    durations: np.ndarray
    speech: np.ndarray
    lengths: np.ndarray


@dataclass(frozen=True)
class Speaker:
    name: str
    enroll: Items
    singles: Items
    long: Items


def is_silence_label(path: str) -> bool:
    """The corpus's digital-silence clips, labelled as speakers: never speech."""
    return re.search(r"(^|__)silence__\d+\.wav$", Path(path).name) is not None


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


class Embedder:
    """GE2E embeddings and net speech by audio hash, cached in one npz file under
    ``cache_dir``. Called with ``whole``, of each whole clip, timed by its length: as
    speakerdb embedded and stored clips before it cut them to their spoken part (the
    voiceprints of a database enrolled then)."""

    def __init__(self, cache_dir: Path = CACHE_DIR) -> None:
        from speakerdb.encoders._ge2e import GE2EEncoder

        self.encoder = GE2EEncoder.load()
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / f"ge2e-{self.encoder.info.revision}.npz"
        self.store: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path) as data:
                self.store = {k: data[k] for k in data.files}
        self.computed = 0

    def __call__(self, clips: list[Clip], whole: bool = False) -> Items:
        vectors, speech = [], []
        for clip in clips:
            key = clip.sha256 if whole else spoken_key(clip)
            if key not in self.store:
                vector = self.encoder.encode([clip.samples if whole else clip.spoken])[0]
                self.store[key] = np.append(vector, net_speech_s(clip.samples))
                self.computed += 1
                if self.computed % 200 == 0:
                    self.save()
            row = self.store[key]
            vectors.append(row[:-1])
            speech.append(row[-1])
        return Items(
            np.asarray(vectors, np.float32).reshape(len(clips), -1),
            np.array([c.duration_s if whole else c.spoken_s for c in clips]),
            np.array(speech),
            np.array([c.duration_s for c in clips]),
        )

    def save(self) -> None:
        if self.computed:
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, **self.store)
            tmp.replace(self.path)


def spoken_key(clip: Clip) -> str:
    """The cache key of what the library embeds of ``clip`` (:attr:`Clip.spoken`): the
    audio's hash, and where the spoken part lies when it is not the whole clip."""
    part = spoken_part(clip.samples)
    whole = part.start == 0 and part.stop == len(clip.samples)
    return clip.sha256 if whole else f"{clip.sha256}:{part.start}:{part.stop}"


def padded(clip: Clip, seconds: float) -> Clip:
    """``clip`` with ``seconds`` of digital silence either side (itself for 0)."""
    if not seconds:
        return clip
    silence = np.zeros(round(seconds * 16_000), np.float32)
    return clip_from_array(np.concatenate([silence, clip.samples, silence]), 16_000, clip.source)


def _usable(paths: list[str]) -> list[Clip]:
    clips = []
    for path in paths:
        try:
            clips.append(load_clip(path))
        except AudioError:
            continue
    return clips


def _concatenated(clips: list[Clip], most: int) -> list[Clip]:
    """Consecutive clips joined until each item reaches 3 s."""
    items: list[Clip] = []
    parts: list[np.ndarray] = []
    for clip in clips:
        parts.append(clip.samples)
        if sum(p.size for p in parts) >= CONCAT_MIN_S * 16_000:
            items.append(clip_from_array(np.concatenate(parts), 16_000, "concat"))
            parts = []
            if len(items) == most:
                break
    return items


def load_speakers(
    corpus: Path,
    singles: int,
    items: int,
    seed: int,
    *,
    whole_enroll: bool = False,
    enroll_pad_s: float = 0.0,
) -> tuple[list[Speaker], int]:
    """Every speaker's embedded clips, and how many silence-labelled clips were left out;
    with ``whole_enroll``, the enrollment clips embedded whole (an old database's), and
    with ``enroll_pad_s``, padded first with that much digital silence either side."""
    manifest = _rows(corpus / "manifest.csv")
    silent = sum(is_silence_label(r["path"]) for r in manifest)
    manifest = [r for r in manifest if not is_silence_label(r["path"])]
    protocol: dict[str, list[str]] = {}
    for r in _rows(corpus / "protocol" / "enroll.csv"):
        protocol.setdefault(r["speaker_id"], []).append(r["path"])
    embed = Embedder()
    speakers = []
    for name in sorted({r["speaker_id"] for r in manifest}):
        mine = [r for r in manifest if r["speaker_id"] == name]
        lang = Counter(r["lang"] for r in mine).most_common(1)[0][0]
        pool = sorted(r["path"] for r in mine if r["lang"] == lang)
        rng = random.Random(f"{seed}|{name}")
        longer = [r["path"] for r in mine if r["lang"] == lang and float(r["duration_s"]) >= 1]
        first = protocol.get(name) or rng.sample(sorted(longer), N_ENROLL)
        rest = [p for p in pool if p not in first]
        rng.shuffle(rest)
        single_clips = _usable(rest[: singles + singles // 5])[:singles]
        used = singles + singles // 5
        long_clips = _concatenated(_usable(rest[used:]), items)
        speakers.append(
            Speaker(
                name,
                embed([padded(c, enroll_pad_s) for c in _usable(first)], whole_enroll),
                embed(single_clips),
                embed(long_clips),
            )
        )
    embed.save()
    return speakers, silent
