"""The trials calibration draws from an enrolled population, with no extra audio:

- *stranger trials* (identify): each enrolled speaker in turn plays the stranger:
  each of their clips is scored against the others, with its own speaker not
  enrolled, and its best score is kept (the best of N - 1);
- *impostor scores* (verify): the same clips' scores against each other speaker;
- *genuine scores*: each clip against its own speaker's template computed without
  it (leave one out), so a speaker needs 2 or more clips; they give the share of
  genuine clips the thresholds turn away.

An imported cohort of outside voices (embeddings of people never enrolled) adds a
stranger trial per cohort voice, scored against all N, and its scores against each
speaker as impostor scores (:func:`cohort_trials`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._vectors import template_of
from ._asnorm import DEFAULT_TOP_N, Cohort
from ._population import Population
from ._ranking import normalize, population_scores
from ._scores import get_norm

__all__ = ["EnrollmentTrials", "cohort_trials", "enrollment_scores", "enrollment_trials"]


@dataclass(frozen=True, slots=True, eq=False)
class EnrollmentTrials:
    """What an enrolled population gives calibration (see the module's docstring):
    genuine leave-one-out scores and whether each clip's own speaker scored best;
    each clip's best score as a stranger against the others and how many others
    that was; and one-claim impostor scores."""

    genuine: np.ndarray
    genuine_best: np.ndarray
    stranger: np.ndarray
    stranger_sizes: np.ndarray
    impostor: np.ndarray


def enrollment_scores(
    population: Population, *, score_norm: str = "none", top_n: int = DEFAULT_TOP_N
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out genuine and cross-speaker impostor scores of an enrolled population
    (:func:`enrollment_trials` has the rest)."""
    trials = enrollment_trials(population, score_norm=score_norm, top_n=top_n)
    return trials.genuine, trials.impostor


def enrollment_trials(
    population: Population, *, score_norm: str = "none", top_n: int = DEFAULT_TOP_N
) -> EnrollmentTrials:
    """Genuine, stranger and impostor trials of an enrolled population.

    Genuine: each clip against its own speaker's template computed without it.
    Impostor: each clip against every other speaker's template, scored as a
    stranger's clip would be, with its own speaker not enrolled; stranger: the best
    of those. For cosines leaving the speaker out changes nothing; for ``margin``,
    ``margin-duration`` and ``asnorm`` scores (:mod:`speakerdb.decision._norms`) it
    does: a stranger's best match is not held down by a better-matching true
    speaker. AS-norm's cohort never holds the scored clip.
    """
    counts = population.counts()
    templates = population.templates()
    genuine: list[float] = []
    best: list[bool] = []
    stranger: list[float] = []
    impostor: list[np.ndarray] = []
    for i, (vector, owner) in enumerate(zip(population.embeddings, population.owners, strict=True)):
        if counts[owner] < 2:
            continue
        own = template_of(np.delete(population.embeddings, i, axis=0)[_others_of(population, i)])
        row = templates.astype(np.float64) @ vector.astype(np.float64)
        row[owner] = float(np.dot(own, vector))
        others = np.delete(row, owner)
        if not get_norm(score_norm).decides_by_cosine:
            row = _normalized_row(population, i, row, templates, own, score_norm, top_n)
            others = _stranger_row(population, i, others, templates, score_norm, top_n)
        genuine.append(float(row[owner]))
        best.append(int(np.argmax(row)) == owner)
        if others.size:
            stranger.append(float(others.max()))
            impostor.append(others)
    n = population.n_speakers
    return EnrollmentTrials(
        genuine=np.asarray(genuine),
        genuine_best=np.asarray(best, bool),
        stranger=np.asarray(stranger),
        stranger_sizes=np.full(len(stranger), n - 1, np.float64),
        impostor=np.concatenate(impostor) if impostor else np.zeros(0),
    )


def _others_of(population: Population, i: int) -> np.ndarray:
    """Mask, over the population without utterance ``i``, of ``i``'s speaker's other clips."""
    return np.asarray(np.delete(population.owners, i) == population.owners[i])


def _normalized_row(
    population: Population,
    i: int,
    raw: np.ndarray,
    templates: np.ndarray,
    own: np.ndarray,
    score_norm: str,
    top_n: int,
) -> np.ndarray:
    """One utterance's normalised row, with the utterance itself out of the cohort."""
    keep = np.arange(len(population.owners)) != i
    cohort = Cohort(population.embeddings[keep], population.owners[keep])
    templates = templates.copy()
    templates[population.owners[i]] = own
    query = population.embeddings[i][None, :]
    lengths = _length(population, i)
    return normalize(score_norm, raw[None, :], query, templates, cohort, top_n, lengths)[0]


def _stranger_row(
    population: Population,
    i: int,
    raw_others: np.ndarray,
    templates: np.ndarray,
    score_norm: str,
    top_n: int,
) -> np.ndarray:
    """Utterance ``i``'s normalised scores against the others, its own speaker not enrolled."""
    owner = population.owners[i]
    keep = population.owners != owner
    owners = population.owners[keep]
    cohort = Cohort(population.embeddings[keep], owners - (owners > owner))  # columns shift left
    query = population.embeddings[i][None, :]
    others = np.delete(templates, owner, axis=0)
    lengths = _length(population, i)
    return normalize(score_norm, raw_others[None, :], query, others, cohort, top_n, lengths)[0]


def _length(population: Population, i: int) -> np.ndarray | None:
    """Utterance ``i``'s clip length as a one-query sequence, where the population has it."""
    known = population.durations_s
    return None if known is None else known[i : i + 1]


def cohort_trials(
    population: Population,
    cohort: np.ndarray,
    *,
    score_norm: str = "none",
    top_n: int = DEFAULT_TOP_N,
    durations_s: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Outside voices ``(m, d)`` as strangers: each one's best score against the whole
    population, and its scores against each speaker (one-claim impostor scores).

    Margin-duration scores need each voice's clip length; where the cohort has none,
    the enrolled clips' median length stands in.
    """
    cohort = np.atleast_2d(np.asarray(cohort, np.float32))
    if len(cohort) == 0 or population.n_speakers == 0:
        return np.zeros(0), np.zeros(0)
    if durations_s is None and population.durations_s is not None:
        durations_s = np.full(len(cohort), float(np.median(population.durations_s)))
    matrix = population_scores(score_norm, cohort, population, top_n, durations_s)[1]
    return matrix.max(axis=1), matrix.ravel()
