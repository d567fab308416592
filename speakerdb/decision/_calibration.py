"""Choosing a threshold from data: the database's own enrollments, or labelled trials.

From enrollments (no extra audio needed):

- *genuine* scores: each utterance against its own speaker's template
  computed without it (leave one out), so a speaker needs 2 or more clips;
- *impostor* scores: each utterance against every other speaker's template.

The threshold is then set at the equal error rate of these scores, or at the
lowest threshold whose false-accept rate is at most ``target_far``; the
false-reject rate that implies is reported with it.

Too little data gives a threshold that is mostly noise, so calibration is
refused below :data:`MIN_SPEAKERS` speakers with 2+ clips,
:data:`MIN_GENUINE` genuine scores, or ``ceil(1 / target_far)`` impostor
scores (fewer cannot show a rate of ``target_far`` at all; for the EER,
:data:`MIN_IMPOSTOR`). The message says how much more is needed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .._vectors import template_of
from ..errors import InputError, SpeakerDBError
from . import _metrics as metrics
from ._asnorm import DEFAULT_TOP_N, Cohort
from ._population import Population
from ._ranking import normalize, population_scores
from ._scores import get_norm

if TYPE_CHECKING:
    from ..audio._decode import ClipInput

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """What calibrating a database needs of it (a ``SpeakerDB`` is one): typed by this
    much, the scoring layer never imports the facade above it."""

    def population(self) -> Population: ...

    def embed(self, clips: Sequence[ClipInput]) -> np.ndarray: ...


__all__ = [
    "MIN_GENUINE",
    "MIN_IMPOSTOR",
    "MIN_SPEAKERS",
    "Calibration",
    "Scorer",
    "calibrate_database",
    "calibrate_population",
    "calibrate_scores",
    "duration_slope",
    "enrollment_scores",
]

MIN_SPEAKERS = 3
MIN_GENUINE = 10
MIN_IMPOSTOR = 30
# Keeps the logistic regression's Newton steps finite when the classes separate.
_RIDGE = 1e-4


@dataclass(frozen=True, slots=True)
class Calibration:
    """A threshold chosen from scores, and what it implies on those scores.

    ``method`` is ``"eer"`` or ``"far"``; ``far`` and ``frr`` are the measured
    rates at ``threshold``. ``score`` is ``"cosine"``, ``"asnorm"``,
    ``"margin"`` or ``"margin-duration"``: the kind of score the threshold applies to.
    """

    threshold: float
    method: str
    target_far: float | None
    far: float
    frr: float
    eer: float
    eer_threshold: float
    n_genuine: int
    n_impostor: int
    source: str
    score: str = "cosine"


def enrollment_scores(
    population: Population, *, score_norm: str = "none", top_n: int = DEFAULT_TOP_N
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out genuine and cross-speaker impostor scores of an enrolled population.

    Genuine: each clip against its own speaker's template computed without it.
    Impostor: each clip against every other speaker's template, scored as a
    stranger's clip would be, with its own speaker not enrolled. For cosines
    that changes nothing; for ``margin``, ``margin-duration`` and ``asnorm`` scores
    (:mod:`speakerdb.decision._norms`) it does: a stranger's best match is not
    held down by a better-matching true speaker. AS-norm's cohort never holds
    the scored clip.
    """
    counts = population.counts()
    templates = population.templates()
    genuine: list[float] = []
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
        impostor.append(others)
    impostor_scores = np.concatenate(impostor) if impostor else np.zeros(0)
    return np.asarray(genuine), impostor_scores


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


def calibrate_scores(
    genuine: np.ndarray,
    impostor: np.ndarray,
    *,
    target_far: float | None = None,
    source: str = "scores",
    score: str = "cosine",
    n_speakers: int | None = None,
) -> Calibration:
    """Pick a threshold at the EER, or at ``target_far``; refuse when the data is too thin."""
    genuine, impostor = np.asarray(genuine, float), np.asarray(impostor, float)
    _require_enough(len(genuine), len(impostor), target_far, source, n_speakers)
    rate, at_eer = metrics.eer(genuine, impostor)
    if target_far is None:
        threshold, method = at_eer, "eer"
    else:
        threshold = metrics.threshold_for_far(genuine, impostor, target_far)
        method = "far"
    return Calibration(
        threshold=threshold,
        method=method,
        target_far=target_far,
        far=metrics.far_at(impostor, threshold),
        frr=metrics.frr_at(genuine, threshold),
        eer=rate,
        eer_threshold=at_eer,
        n_genuine=len(genuine),
        n_impostor=len(impostor),
        source=source,
        score=score,
    )


def calibrate_population(
    population: Population,
    *,
    target_far: float | None = None,
    score_norm: str = "none",
    top_n: int = DEFAULT_TOP_N,
) -> Calibration:
    """Calibrate from a database's own enrollments (see the module docstring)."""
    if get_norm(score_norm).needs_durations and population.durations_s is None:
        raise InputError(
            f"{score_norm} scores need each clip's duration: build the population "
            "with durations_s, or calibrate another score"
        )
    usable = int(np.sum(population.counts() >= 2))
    if usable < MIN_SPEAKERS:
        raise InputError(
            f"calibrating from enrollments needs at least {MIN_SPEAKERS} speakers with 2 or "
            f"more clips each, the database has {usable}; enroll more, or pass --trials"
        )
    genuine, impostor = enrollment_scores(population, score_norm=score_norm, top_n=top_n)
    return calibrate_scores(
        genuine,
        impostor,
        target_far=target_far,
        source="enrollments",
        score=_score_name(score_norm),
        n_speakers=population.n_speakers,
    )


def _score_name(score_norm: str) -> str:
    return get_norm(score_norm).score_name


def _require_enough(
    n_genuine: int,
    n_impostor: int,
    target_far: float | None,
    source: str,
    n_speakers: int | None,
) -> None:
    if target_far is not None and not 0.0 < target_far < 1.0:
        raise InputError(f"--target-far must be between 0 and 1, got {target_far}")
    if n_genuine < MIN_GENUINE:
        raise InputError(
            f"calibration needs at least {MIN_GENUINE} genuine scores, {source} give "
            f"{n_genuine}; add clips (every clip of a speaker with 2 or more gives one)"
        )
    needed = MIN_IMPOSTOR if target_far is None else max(MIN_IMPOSTOR, math.ceil(1 / target_far))
    if n_impostor < needed:
        what = "an EER" if target_far is None else f"a false-accept rate of {target_far:g}"
        more = (
            f" (each clip is scored against the {n_speakers - 1} other speakers)"
            if n_speakers
            else ""
        )
        raise InputError(
            f"measuring {what} needs at least {needed} impostor scores, {source} give "
            f"{n_impostor}{more}; enroll more speakers, use a larger --target-far, "
            "or pass a labelled --trials list"
        )


def calibrate_database(
    db: Scorer,
    *,
    target_far: float | None = None,
    trials: str | os.PathLike[str] | None = None,
    score_norm: str = "none",
    top_n: int = DEFAULT_TOP_N,
) -> Calibration:
    """Calibrate ``db`` from its enrollments, or from a labelled trial list on its speakers."""
    population = db.population()
    if trials is None:
        return calibrate_population(
            population, target_far=target_far, score_norm=score_norm, top_n=top_n
        )
    genuine, impostor = _trial_scores(db, population, trials, score_norm, top_n)
    return calibrate_scores(
        genuine,
        impostor,
        target_far=target_far,
        source=f"trials {os.fspath(trials)}",
        score=_score_name(score_norm),
    )


def _listing(names: list[str], most: int = 10) -> str:
    """Up to ``most`` names, quoted, and how many more there are."""
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _trial_scores(
    db: Scorer,
    population: Population,
    trials: str | os.PathLike[str],
    score_norm: str,
    top_n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the trials whose speaker is enrolled and whose clip is usable."""
    from ..audio._decode import load_clip
    from ._trial_list import read_trial_rows

    every_row = read_trial_rows(os.fspath(trials))
    rows = [r for r in every_row if r[0] in population.names]
    unknown = sorted({r[0] for r in every_row} - set(population.names))
    if unknown:
        log.warning("trials of speakers not enrolled left out: %s", _listing(unknown))
    paths = sorted({r[1] for r in rows})
    clips = []
    usable: dict[str, int] = {}
    for path in paths:
        try:
            clips.append(load_clip(path))
        except SpeakerDBError as exc:
            log.warning("trial clip left out: %s", exc)
            continue
        usable[path] = len(usable)
    if not clips:
        missing = f" (not enrolled: {_listing(unknown)})" if unknown else ""
        raise InputError(f"{os.fspath(trials)}: no usable trial on an enrolled speaker{missing}")
    durations = [c.duration_s for c in clips]
    matrix = population_scores(score_norm, db.embed(clips), population, top_n, durations)[1]
    genuine: list[float] = []
    impostor: list[float] = []
    for speaker, path, target in rows:
        if path in usable:
            score = float(matrix[usable[path], population.names.index(speaker)])
            (genuine if target else impostor).append(score)
    return np.asarray(genuine), np.asarray(impostor)


def duration_slope(scores: np.ndarray, durations_s: np.ndarray, genuine: np.ndarray) -> float:
    """The slope of margin-duration's duration term that ``scores`` call for.

    A quality-measure function, as in speaker-verification calibration: the
    class-balanced logistic regression of ``genuine`` (true for right answers,
    false for strangers) on ``(score, ln(d / 0.5 s))``, with ``d`` clamped as
    :func:`speakerdb.decision._norms.duration_penalty` clamps it, models the log-odds
    as ``a * score + b * ln(d / 0.5 s) + c``. Accepting where those reach a
    constant is accepting where ``score - slope * ln(d / 0.5 s)`` does, with
    ``slope = -b / a``; that is returned. Weighing both classes equally keeps
    the slope independent of how many strangers were sampled.
    """
    from ._norms import duration_penalty

    x = np.column_stack([scores, duration_penalty(durations_s, 1.0), np.ones(len(scores))])
    y = np.asarray(genuine, dtype=np.float64)
    if not 0 < y.sum() < len(y):
        raise InputError("fitting a duration slope needs both right answers and strangers")
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w = np.zeros(3)
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (weight * (p - y)) + _RIDGE * w
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + _RIDGE * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(-w[1] / w[0])
