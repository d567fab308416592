"""Choosing thresholds from data that keep strangers out: identify's and verify's.

Identify and verify each get their own threshold, chosen so that at most a target
share of strangers (:data:`~speakerdb.decision._openset.DEFAULT_TARGET`, 1%, unless
``target_far`` says otherwise) is let in; :mod:`speakerdb.decision._openset` has the
rule, how the share of strangers named grows with the number N of enrolled
speakers, and what guarantee holds.

From enrollments (no extra audio needed), and from an imported cohort of outside
voices, which small sites calibrate on: stranger trials for identify, impostor
scores for verify, and leave-one-out genuine scores
(:mod:`speakerdb.decision._enrollment_trials`).

From a labelled trial list, the non-target trials are impostor scores; identify's
threshold then carries them to N by the independence model
(:func:`~speakerdb.decision._thresholds.calibrate_trials`).

Too little data gives thresholds that are mostly noise: calibration is refused below
:data:`MIN_SPEAKERS` speakers with 2+ clips and :data:`MIN_GENUINE` genuine scores.

The results and the checks shared by both sources are in
:mod:`speakerdb.decision._thresholds`; this module re-exports them, and
:func:`~speakerdb.decision._duration_slope.duration_slope`, for its callers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import InputError, SpeakerDBError
from ._asnorm import DEFAULT_TOP_N
from ._duration_slope import duration_slope
from ._enrollment_trials import (
    EnrollmentTrials,
    cohort_trials,
    enrollment_scores,
    enrollment_trials,
)
from ._openset import stranger_threshold
from ._population import Population
from ._ranking import population_scores
from ._scores import get_norm
from ._thresholds import (
    MIN_GENUINE,
    MIN_STRANGERS,
    Calibration,
    ThresholdChoice,
    calibrate_trials,
    ceiling,
    choose,
    require_genuine,
    require_impostor,
    target_share,
)

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
    "MIN_SPEAKERS",
    "MIN_STRANGERS",
    "MIN_VOICES",
    "Calibration",
    "EnrollmentTrials",
    "Scorer",
    "ThresholdChoice",
    "calibrate_database",
    "calibrate_population",
    "calibrate_trials",
    "cohort_trials",
    "duration_slope",
    "enrollment_scores",
    "enrollment_trials",
]

MIN_SPEAKERS = 3
#: Fewer stranger voices than this (enrolled speakers, each playing the stranger, plus
#: cohort voices) cannot bound the share of strangers let in: with 3 enrolled speakers
#: and no cohort, thresholds calibrated on the shared corpus let in 6% of strangers'
#: clips (scripts/eval_open_set.py), with 6 they held the target. Calibration then
#: keeps the measured default threshold, and says so.
MIN_VOICES = 6


def calibrate_population(
    population: Population,
    *,
    target_far: float | None = None,
    score_norm: str = "none",
    top_n: int = DEFAULT_TOP_N,
    cohort: np.ndarray | None = None,
    default: float | None = None,
    verify_default: float | None = None,
) -> Calibration:
    """Calibrate from a database's own enrollments and, if given, a cohort of outside
    voices' embeddings (see the module docstring).

    With fewer than :data:`MIN_VOICES` stranger voices, identify's threshold is
    ``default`` and verify's ``verify_default`` (else ``default``): the score's
    measured defaults, identify's at the population's size; their ``method`` says
    ``"default"``. Without a default, calibration is refused then. With enough voices,
    a threshold goes below its default only as far as the trials show the target
    share without a model (:func:`~speakerdb.decision._openset.stranger_threshold`):
    calibrating never makes a site more lenient than the measured default on less
    evidence than the default was measured on. Each enrolled speaker
    with 2 or more clips is a voice; so is each clip of a ``cohort`` given here, and
    each labelled voice of the database's own cohort (:attr:`Population.outside`).
    """
    target = target_share(target_far)
    usable = _usable_speakers(population, score_norm)
    trials = enrollment_trials(population, score_norm=score_norm, top_n=top_n)
    require_genuine(len(trials.genuine), "enrollments")
    outside, outside_voices = _outside(population, cohort)
    stranger, sizes, impostor = _stranger_scores(population, trials, outside, score_norm, top_n)
    source = "enrollments" + _cohort_source(outside_voices, len(outside))
    require_impostor(len(stranger), source)
    voices = usable + outside_voices
    fixed = None if voices >= MIN_VOICES else _too_few_voices(voices, default)
    fixed_verify = fixed if fixed is None or verify_default is None else verify_default
    verify_bar = default if verify_default is None else verify_default
    top = ceiling(score_norm)
    n = population.n_speakers
    identify = choose(
        "identify",
        stranger_threshold(stranger, sizes, n, target, fixed, top, default),
        trials.genuine_best,
        trials.genuine,
    )
    verify = choose(
        "verify",
        stranger_threshold(impostor, 1, 1, target, fixed_verify, top, verify_bar),
        None,
        trials.genuine,
    )
    return Calibration(
        identify, verify, len(trials.genuine), outside_voices, source, _score_name(score_norm)
    )


def _stranger_scores(
    population: Population,
    trials: EnrollmentTrials,
    outside: np.ndarray,
    score_norm: str,
    top_n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Identify's stranger trials (each one's best score, and how many speakers it was
    against) and verify's impostor scores: the enrollments' and the outside voices'."""
    cohort_best, cohort_claims = cohort_trials(
        population, outside, score_norm=score_norm, top_n=top_n
    )
    n = float(population.n_speakers)
    stranger = np.concatenate([trials.stranger, cohort_best])
    sizes = np.concatenate([trials.stranger_sizes, np.full(len(cohort_best), n)])
    impostor = np.concatenate([trials.impostor, cohort_claims])
    return stranger, sizes, impostor


def _cohort_source(voices: int, clips: int) -> str:
    """The cohort's part of a calibration's source: its voices, and its clips where a
    voice has more than one (the database's cohort counts a voice per label)."""
    if not clips:
        return ""
    return f" and {f'{clips} clips of ' if clips != voices else ''}{voices} cohort voices"


def _usable_speakers(population: Population, score_norm: str) -> int:
    """How many speakers have 2 or more clips; refused when too few, or when the score
    needs clip lengths the population lacks."""
    if get_norm(score_norm).needs_durations and population.durations_s is None:
        raise InputError(
            f"{score_norm} scores need each clip's duration: build the population "
            "with durations_s, or calibrate another score"
        )
    usable = int(np.sum(population.counts() >= 2))
    if usable < MIN_SPEAKERS:
        raise InputError(
            f"calibrating from enrollments needs at least {MIN_SPEAKERS} speakers with 2 or "
            f"more clips each, the database has {usable}; enroll more, or pass --trials "
            "(trials= in Python)"
        )
    return usable


def _outside(population: Population, cohort: np.ndarray | None) -> tuple[np.ndarray, int]:
    """The outside voices' embeddings: ``cohort`` if given, else the database's own
    (none: an empty matrix); and how many voices they are."""
    # A given cohort counts a voice per clip; the database's own by its labels.
    if cohort is None:  # the database's own cohort of outside voices, if it has one
        cohort, outside_voices = population.outside, population.outside_voices
    else:
        outside_voices = len(cohort)
    outside = np.zeros((0, population.embeddings.shape[1])) if cohort is None else cohort
    return outside, outside_voices


def _too_few_voices(voices: int, default: float | None) -> float:
    """The threshold kept when ``voices`` stranger voices are too few to calibrate."""
    if default is None:
        raise InputError(
            f"calibration needs at least {MIN_VOICES} stranger voices (enrolled speakers "
            f"and cohort voices), the database has {voices}; enroll more speakers, or "
            "import a cohort of outside voices (speakerdb cohort import CSV)"
        )
    log.warning(
        "%d stranger voices cannot bound the share of strangers let in (%d are needed): "
        "the measured default threshold %.4f is kept; to calibrate, enroll more speakers "
        "or import a cohort of outside voices (speakerdb cohort import CSV)",
        voices,
        MIN_VOICES,
        default,
    )
    return default


def _score_name(score_norm: str) -> str:
    return get_norm(score_norm).score_name


def calibrate_database(
    db: Scorer,
    *,
    target_far: float | None = None,
    trials: str | os.PathLike[str] | None = None,
    score_norm: str = "none",
    top_n: int = DEFAULT_TOP_N,
    cohort: np.ndarray | None = None,
    default: float | None = None,
    verify_default: float | None = None,
) -> Calibration:
    """Calibrate ``db`` from its enrollments (and ``cohort``; ``default`` and
    ``verify_default`` as for :func:`calibrate_population`), or from a labelled trial
    list on its speakers."""
    population = db.population()
    if trials is None:
        return calibrate_population(
            population,
            target_far=target_far,
            score_norm=score_norm,
            top_n=top_n,
            cohort=cohort,
            default=default,
            verify_default=verify_default,
        )
    genuine, impostor = _trial_scores(db, population, trials, score_norm, top_n)
    return calibrate_trials(
        genuine,
        impostor,
        n_speakers=population.n_speakers,
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
    durations = [c.spoken_s for c in clips]
    matrix = population_scores(score_norm, db.embed(clips), population, top_n, durations)[1]
    genuine: list[float] = []
    impostor: list[float] = []
    for speaker, path, target in rows:
        if path in usable:
            score = float(matrix[usable[path], population.names.index(speaker)])
            (genuine if target else impostor).append(score)
    return np.asarray(genuine), np.asarray(impostor)
