"""Synthetic conversations from the shared corpus, with reference RTTM, for ``segments``.

Each conversation has 2 to 4 speakers and lasts 1 to 3 minutes: turns of 1 to 8 s
(a speaker's clips, trimmed of their edge silences and joined with short gaps),
separated by pauses of 0.2 to 1.5 s, over a faint noise floor. In the overlap
condition about a third of the turns start 0.3 to 1.5 s before the previous one
ends. Speakers are split in two disjoint groups, ``tune`` (to choose parameters)
and ``report`` (to report on); in each, some speakers are enrolled from the
protocol's enrollment clips (never used in a conversation) and the others are
never enrolled. The corpus's ``silence__N`` clips (digital silence labelled as a
speaker) are left out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerdb.audio import load_clip, speech_mask
from speakerdb.errors import AudioError

RATE = 16_000
FRAME = 480
#: Disjoint groups of speakers: parameters are chosen on ``tune``, figures reported on
#: ``report``. Per group: (enrolled, never enrolled).
SPLITS = {
    "tune": (
        ["asterisk-ivrvoice-ru", "asterisk-june-frca", "asterisk-menardi-it", "fillets-cs-big"],
        ["asterisk-july-esco"],
    ),
    "report": (
        ["asterisk-allison", "asterisk-carlo-it", "fillets-cs-small", "fillets-nl-big"],
        ["asterisk-armelle-fr", "fillets-nl-small"],
    ),
}
#: Condition: (speaker counts, never-enrolled speakers in it, overlap).
CONDITIONS = {
    "2-3 spk": ((2, 3), 0, False),
    "2-3 spk + stranger": ((2, 3), 1, False),
    "4 spk + stranger": ((4,), 1, False),
    "2-3 spk, overlap": ((2, 3), 0, True),
}
NOISE_RMS = 10 ** (-60 / 20)


@dataclass
class Conversation:
    name: str
    condition: str
    speakers: list[str]
    turns: list[tuple[float, float, str]] = field(default_factory=list)
    duration: float = 0.0

    def rttm(self) -> str:
        return "".join(
            f"SPEAKER {self.name} 1 {start:.3f} {end - start:.3f} <NA> <NA> {who} <NA> <NA>\n"
            for start, end, who in self.turns
        )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def enrollment_clips(corpus: Path, speakers: list[str]) -> dict[str, list[str]]:
    """The protocol's enrollment clips of each speaker."""
    out: dict[str, list[str]] = {s: [] for s in speakers}
    for row in read_rows(corpus / "protocol" / "enroll.csv"):
        if row["speaker_id"] in out:
            out[row["speaker_id"]].append(row["path"])
    return out


def conversation_pools(corpus: Path, speakers: list[str]) -> dict[str, list[str]]:
    """Each speaker's clips that may appear in conversations: not enrollment clips, not
    the mislabelled digital-silence clips."""
    enrolled = {row["path"] for row in read_rows(corpus / "protocol" / "enroll.csv")}
    pools: dict[str, list[str]] = {s: [] for s in speakers}
    for row in read_rows(corpus / "manifest.csv"):
        path, who = row["path"], row["speaker_id"]
        if who in pools and path not in enrolled and "silence__" not in Path(path).name:
            pools[who].append(path)
    return pools


def trimmed(path: str) -> np.ndarray | None:
    """The clip without the silence at its edges, or None if it has no speech."""
    try:
        samples = load_clip(path).samples
    except AudioError:
        return None
    mask = speech_mask(samples)
    if not mask.any():
        return None
    first, last = np.flatnonzero(mask)[[0, -1]]
    return samples[first * FRAME : (last + 1) * FRAME]


class Builder:
    """Builds conversations from the pools, with a seeded random generator."""

    def __init__(self, pools: dict[str, list[str]], seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._pools = {s: list(p) for s, p in pools.items()}
        self._cache: dict[str, np.ndarray | None] = {}

    def _turn(self, speaker: str, seconds: float) -> np.ndarray:
        parts: list[np.ndarray] = []
        total = 0
        pool = self._pools[speaker]
        while total < seconds * RATE:
            path = pool[int(self._rng.integers(len(pool)))]
            if path not in self._cache:
                self._cache[path] = trimmed(path)
            clip = self._cache[path]
            if clip is None or len(clip) < RATE // 4:
                continue
            if parts:
                parts.append(np.zeros(int(self._rng.uniform(0.05, 0.2) * RATE), np.float32))
            parts.append(clip)
            total = sum(len(p) for p in parts)
        return np.concatenate(parts)[: int(seconds * RATE)]

    def build(
        self, name: str, condition: str, enrolled: list[str], strangers: list[str]
    ) -> tuple[Conversation, np.ndarray]:
        counts, n_strangers, overlap = CONDITIONS[condition]
        n = int(self._rng.choice(counts))
        chosen = list(self._rng.choice(strangers, n_strangers, replace=False))
        chosen += list(self._rng.choice(enrolled, n - len(chosen), replace=False))
        conv = Conversation(name, condition, [str(s) for s in chosen])
        target = self._rng.uniform(60.0, 180.0)
        pieces: list[tuple[int, np.ndarray]] = []
        t, previous, last_len = 0.5, None, 0.0
        ends: dict[str, float] = {}
        while t < target - 1.0:
            speaker = str(self._rng.choice([s for s in conv.speakers if s != previous]))
            t = max(t, ends.get(speaker, 0.0) + 0.2)  # overlap others, never oneself
            seconds = float(min(self._rng.uniform(1.0, 8.0), max(1.0, target - t)))
            audio = self._turn(speaker, seconds)
            pieces.append((int(t * RATE), audio))
            conv.turns.append((t, t + len(audio) / RATE, speaker))
            previous, last_len = speaker, len(audio) / RATE
            ends[speaker] = t + last_len
            if overlap and self._rng.random() < 0.35:
                gap = -min(self._rng.uniform(0.3, 1.5), last_len / 2)
            else:
                gap = self._rng.uniform(0.2, 1.5)
            t = t + last_len + gap
        conv.duration = max(start / RATE + len(a) / RATE for start, a in pieces) + 0.5
        mix = self._rng.normal(0.0, NOISE_RMS, int(conv.duration * RATE)).astype(np.float32)
        for start, audio in pieces:
            mix[start : start + len(audio)] += audio
        conv.turns = [(round(a, 3), round(b, 3), s) for a, b, s in conv.turns]
        return conv, np.clip(mix, -1.0, 1.0)


def build_set(
    corpus: Path, split: str, per_condition: int, out: Path, seed: int = 14
) -> list[Conversation]:
    """Write the conversations of ``split`` (wav and rttm) under ``out``; return them."""
    enrolled, strangers = SPLITS[split]
    builder = Builder(conversation_pools(corpus, enrolled + strangers), seed)
    out.mkdir(parents=True, exist_ok=True)
    conversations = []
    for c, condition in enumerate(CONDITIONS):
        for i in range(per_condition):
            name = f"{split}-{c}{i:02d}"
            conv, audio = builder.build(name, condition, enrolled, strangers)
            sf.write(out / f"{name}.wav", audio, RATE, subtype="PCM_16")
            (out / f"{name}.rttm").write_text(conv.rttm())
            conversations.append(conv)
    return conversations
