"""Adaptive symmetric score normalisation (AS-norm) with a top-N cohort.

A raw cosine ``s(e, t)`` between enrolled speaker ``e`` and test clip ``t`` is
turned into::

    s_norm = ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t) / 2

where ``mu_e, sigma_e`` are the mean and standard deviation of the ``top_n``
highest cosines of ``e``'s template against the cohort, and ``mu_t, sigma_t``
the same for ``t``. A voice that resembles many people (a high ``mu``) has to
score higher to be accepted; one that resembles nobody gets a lower bar.
Normalised scores are in units of standard deviations, not cosines, so they
have their own threshold (see :mod:`speakerdb.decision._calibration`).

The cohort is a set of unit embeddings, each with an *owner*: the index of the
enrolled speaker it belongs to, or ``-1`` for an imported cohort clip. Cohort
items owned by ``e`` never count when ``e`` is scored, on either side, so an
enrolled population can be its own cohort: the claim "this is ``e``" is
measured against everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import DEFAULT_TOP_N, MIN_COHORT_VOICES

__all__ = ["DEFAULT_TOP_N", "MIN_COHORT_VOICES", "Cohort", "as_norm", "cohort_stats"]

# A cohort whose top scores are all equal has no spread; this keeps the division finite.
_MIN_STD = 1e-3


@dataclass(frozen=True, slots=True, eq=False)
class Cohort:
    """Cohort embeddings ``(m, d)`` and their owners ``(m,)`` (-1: nobody enrolled)."""

    embeddings: np.ndarray
    owners: np.ndarray

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.owners):
            raise ValueError("cohort embeddings must be (m, d) with one owner per row")


def cohort_stats(
    vectors: np.ndarray, cohort: Cohort, exclude: np.ndarray, top_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each vector's ``top_n`` cohort scores, leaving out excluded owners.

    ``exclude`` is ``(n,)``, one owner per vector, giving ``(n,)`` results; or
    ``(n, k)``, giving ``(n, k)`` results where column ``j`` leaves out the
    cohort items owned by ``exclude[:, j]``.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    scores = np.asarray(vectors, dtype=np.float64) @ cohort.embeddings.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    owners = np.asarray(cohort.owners)[order]
    exclude = np.asarray(exclude)
    if exclude.ndim == 1:
        return _top_stats(ranked, owners != exclude[:, None], top_n)
    columns = [
        _top_stats(ranked, owners != exclude[:, [j]], top_n) for j in range(exclude.shape[1])
    ]
    return np.stack([c[0] for c in columns], axis=1), np.stack([c[1] for c in columns], axis=1)


def _top_stats(ranked: np.ndarray, usable: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the first ``top_n`` usable entries of each row of ``ranked``."""
    chosen = usable & (np.cumsum(usable, axis=1) <= top_n)
    count = np.maximum(chosen.sum(axis=1), 1)
    mean = np.where(chosen, ranked, 0.0).sum(axis=1) / count
    spread = np.where(chosen, (ranked - mean[:, None]) ** 2, 0.0).sum(axis=1) / count
    return mean, np.maximum(np.sqrt(spread), _MIN_STD)


def as_norm(
    raw: np.ndarray,
    queries: np.ndarray,
    templates: np.ndarray,
    cohort: Cohort,
    top_n: int = DEFAULT_TOP_N,
    speakers: np.ndarray | None = None,
) -> np.ndarray:
    """AS-norm scores ``(q, s)`` for raw cosines ``(q, s)`` of queries against templates.

    ``speakers`` gives the cohort owner index of each template column
    (default ``0..s-1``), so that the column's own cohort items are left out.
    """
    raw = np.asarray(raw, dtype=np.float64)
    ids = np.arange(raw.shape[1]) if speakers is None else np.asarray(speakers)
    if cohort.embeddings.shape[0] == 0:
        raise ValueError("the cohort is empty")
    e_mean, e_std = cohort_stats(templates, cohort, ids, top_n)
    test_mean, test_std = cohort_stats(queries, cohort, np.tile(ids, (len(raw), 1)), top_n)
    return 0.5 * ((raw - e_mean) / e_std + (raw - test_mean) / test_std)
