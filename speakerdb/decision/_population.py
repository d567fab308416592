"""The enrolled population: every utterance embedding with its speaker.

Calibration, score normalisation and the enrollment quality gates all need
more than the templates in the index; they read this snapshot instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._vectors import template_of

if TYPE_CHECKING:
    from ._asnorm import Cohort

__all__ = ["CohortVoices", "Population"]


@dataclass(frozen=True, slots=True, eq=False)
class CohortVoices:
    """A cohort of outside voices (``speakerdb cohort import``): clip embeddings
    ``(m, d)`` of people never enrolled, each with its voice's ``labels[i]`` and clip
    length ``durations_s[i]``. Never identified or verified against: AS-norm's cohort
    and calibration's strangers."""

    labels: tuple[str, ...]
    embeddings: np.ndarray
    durations_s: np.ndarray
    #: Each clip's audio SHA-256 (export carries it, so an import skips what it holds).
    hashes: tuple[str, ...] = ()

    @classmethod
    def empty(cls, dim: int = 0) -> CohortVoices:
        return cls((), np.zeros((0, dim), np.float32), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_voices(self) -> int:
        """How many different voices (labels) the cohort holds."""
        return len(set(self.labels))


@dataclass(frozen=True, slots=True, eq=False)
class Population:
    """Utterance embeddings ``(n, d)``, each owned by ``names[owners[i]]``; names sorted.

    ``durations_s`` holds each utterance's clip length, where known (calibrating
    margin-duration scores needs it). ``outside`` holds the embeddings of a cohort of
    outside voices (:class:`CohortVoices`), owned by no one, if the database has one.
    """

    names: tuple[str, ...]
    embeddings: np.ndarray
    owners: np.ndarray
    durations_s: np.ndarray | None = None
    outside: np.ndarray | None = None
    #: How many different voices :attr:`outside` holds.
    outside_voices: int = 0

    def with_outside(self, cohort: CohortVoices) -> Population:
        """This population with ``cohort``'s embeddings as :attr:`outside` voices."""
        outside = cohort.embeddings if len(cohort) else None
        return Population(
            self.names, self.embeddings, self.owners, self.durations_s, outside, cohort.n_voices
        )

    @property
    def cohort_voices(self) -> int:
        """The fewest cohort voices any claim is scored with: every other enrolled speaker
        and every outside voice."""
        return max(self.n_speakers - 1, 0) + self.outside_voices

    def cohort(self) -> Cohort:
        """AS-norm's cohort: every utterance, owned by its speaker, and every outside
        voice, owned by no one (-1)."""
        from ._asnorm import Cohort

        if self.outside is None or not len(self.outside):
            return Cohort(self.embeddings, self.owners)
        outside = np.asarray(self.outside, np.float32)
        return Cohort(
            np.concatenate([self.embeddings, outside]),
            np.concatenate([self.owners, np.full(len(outside), -1, np.int64)]),
        )

    @classmethod
    def from_groups(
        cls, groups: dict[str, np.ndarray], durations_s: dict[str, np.ndarray] | None = None
    ) -> Population:
        """Build one from ``{speaker: (n_i, d) embeddings}`` and optionally
        ``{speaker: (n_i,) clip lengths}``."""
        names = tuple(sorted(groups))
        vectors = [np.atleast_2d(np.asarray(groups[n], dtype=np.float32)) for n in names]
        dim = vectors[0].shape[1] if vectors else 0
        if not vectors:
            return cls((), np.zeros((0, dim), np.float32), np.zeros(0, np.int64))
        owners = np.concatenate([np.full(len(v), i, np.int64) for i, v in enumerate(vectors)])
        lengths = None
        if durations_s is not None:
            lengths = np.concatenate([np.asarray(durations_s[n], np.float64) for n in names])
        return cls(names, np.concatenate(vectors), owners, lengths)

    @property
    def n_speakers(self) -> int:
        return len(self.names)

    def counts(self) -> np.ndarray:
        """Utterances per speaker, in :attr:`names` order."""
        return np.bincount(self.owners, minlength=len(self.names))

    def of(self, name: str) -> np.ndarray:
        """The utterance embeddings of ``name`` (empty when not enrolled)."""
        if name not in self.names:
            return np.zeros((0, self.embeddings.shape[1]), np.float32)
        return self.embeddings[self.owners == self.names.index(name)]

    def templates(self) -> np.ndarray:
        """Each speaker's template ``(s, d)``, by the enrollment rule, in :attr:`names` order."""
        if not self.names:
            return np.zeros((0, self.embeddings.shape[1]), np.float32)
        return np.stack(
            [template_of(self.embeddings[self.owners == i]) for i in range(len(self.names))]
        )
