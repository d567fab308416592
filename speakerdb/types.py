"""Typed, frozen results returned by the library.

Scores are raw cosine similarities in [-1, 1]; speakerdb never rescales them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "DatabaseInfo",
    "EncoderInfo",
    "Enrollment",
    "Identification",
    "Match",
    "Speaker",
    "Utterance",
    "Verification",
]


@dataclass(frozen=True, slots=True)
class EncoderInfo:
    """The identity of a speaker encoder: what a database's embeddings came from.

    ``model`` is a Hugging Face hub id, an absolute local directory, or
    ``"resemblyzer"``. ``revision`` is the resolved commit or weights hash where
    known. ``dim`` is the embedding size and ``sample_rate`` the audio rate the
    encoder consumes.
    """

    model: str
    revision: str | None
    dim: int
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Speaker:
    """An enrolled speaker."""

    id: int
    name: str
    n_utterances: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Utterance:
    """One enrolled clip: where it came from and a hash of its decoded audio."""

    id: int
    speaker: str
    source: str | None
    audio_sha256: str
    duration_s: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Enrollment:
    """The outcome of one enroll call: the speaker after it, and the clips it added."""

    speaker: Speaker
    added: tuple[Utterance, ...]
    created: bool


@dataclass(frozen=True, slots=True)
class Match:
    """A candidate speaker and the raw cosine score of the query against its template."""

    speaker: str
    score: float


@dataclass(frozen=True, slots=True)
class Identification:
    """Open-set identification of one clip.

    ``matches`` are the top-k candidates, best first. ``accepted`` is true when
    the best score reaches ``threshold``; otherwise the answer is "unknown" and
    :attr:`speaker` is ``None``.
    """

    source: str | None
    matches: tuple[Match, ...]
    threshold: float

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None

    @property
    def accepted(self) -> bool:
        best = self.best
        return best is not None and best.score >= self.threshold

    @property
    def speaker(self) -> str | None:
        """The identified speaker, or ``None`` for "unknown"."""
        best = self.best
        return best.speaker if best is not None and self.accepted else None


@dataclass(frozen=True, slots=True)
class Verification:
    """A 1:1 decision: does the clip come from ``speaker``?"""

    speaker: str
    source: str | None
    score: float
    threshold: float

    @property
    def accepted(self) -> bool:
        return self.score >= self.threshold


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """What ``speakerdb info`` shows."""

    path: str
    encoder: EncoderInfo | None
    threshold: float
    threshold_source: str
    n_speakers: int
    n_utterances: int
    schema_revision: str | None
    index_path: str
    index_state: str
