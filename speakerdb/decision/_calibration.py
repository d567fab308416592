"""Choosing thresholds from data that keep strangers out: identify's and verify's.

Identify and verify each get their own threshold, chosen so that at most a target
share of strangers (:data:`~speakerdb.decision._openset.DEFAULT_TARGET`, 1%, unless
``target_far`` says otherwise) is let in; :mod:`speakerdb.decision._openset` has the
rule, how the share of strangers named grows with the number N of enrolled
speakers, and what guarantee holds.

From enrollments (no extra audio needed):

- *stranger trials* (identify): each enrolled speaker in turn plays the stranger:
  each of their clips is scored against the others, with its own speaker not
  enrolled, and its best score is kept (the best of N - 1);
- *impostor scores* (verify): the same clips' scores against each other speaker;
- *genuine scores*: each clip against its own speaker's template computed without
  it (leave one out), so a speaker needs 2 or more clips; they give the share of
  genuine clips the thresholds turn away.

An imported cohort of outside voices (embeddings of people never enrolled) adds a
stranger trial per cohort voice, scored against all N, and its scores against each
speaker as impostor scores: small sites calibrate on it.

From a labelled trial list, the non-target trials are impostor scores; identify's
threshold then carries them to N by the independence model.

Too little data gives thresholds that are mostly noise: calibration is refused below
:data:`MIN_SPEAKERS` speakers with 2+ clips and :data:`MIN_GENUINE` genuine scores.
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
from ._asnorm import DEFAULT_TOP_N, Cohort
from ._openset import DEFAULT_TARGET, StrangerBound, stranger_threshold
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
MIN_GENUINE = 6
#: Fewer stranger (or impostor) scores than this give no threshold at all.
MIN_STRANGERS = 6
#: Fewer stranger voices than this (enrolled speakers, each playing the stranger, plus
#: cohort voices) cannot bound the share of strangers let in: with 3 enrolled speakers
#: and no cohort, thresholds calibrated on the shared corpus let in 6% of strangers'
#: clips (scripts/eval_open_set.py), with 6 they held the target. Calibration then
#: keeps the measured default threshold, and says so.
MIN_VOICES = 6
# Keeps the logistic regression's Newton steps finite when the classes separate.
_RIDGE = 1e-4


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """One operation's calibrated threshold and what holds at it.

    ``operation`` is ``"identify"`` (the bound is for ``n_speakers`` enrolled speakers)
    or ``"verify"`` (one claim, ``n_speakers`` 1). Of ``n_strangers`` stranger
    trials (identify) or impostor scores (verify), ``named`` reach ``threshold``;
    ``counted`` is their share, carried to ``n_speakers``; ``upper`` is its
    one-sided 95% upper limit, the share that holds without a model; ``modelled``
    is the normal model's share. ``frr`` is the share of genuine clips turned away
    (identify: not named, or named wrongly). ``method`` says which rule set the
    threshold (``"counted"``, ``"modelled"`` or ``"default"``, :mod:`speakerdb.decision._openset`).
    """

    operation: str
    threshold: float
    target: float
    n_speakers: int
    n_strangers: int
    named: int
    counted: float
    upper: float
    modelled: float
    frr: float
    method: str


@dataclass(frozen=True, slots=True)
class Calibration:
    """Identify's and verify's thresholds, chosen from scores of kind ``score``
    (``"cosine"``, ``"asnorm"``, ``"margin"`` or ``"margin-duration"``) taken from
    ``source``, with ``n_genuine`` genuine scores and ``n_cohort`` outside voices."""

    identify: ThresholdChoice
    verify: ThresholdChoice
    n_genuine: int
    n_cohort: int
    source: str
    score: str = "cosine"

    @property
    def target_far(self) -> float:
        """The share of strangers both thresholds aim at."""
        return self.identify.target

    @property
    def kept_defaults(self) -> bool:
        """True when too few voices kept the measured defaults: nothing is stored then."""
        return self.identify.method == "default"


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


def calibrate_trials(
    genuine: np.ndarray,
    impostor: np.ndarray,
    *,
    n_speakers: int,
    target_far: float | None = None,
    source: str = "scores",
    score: str = "cosine",
) -> Calibration:
    """Thresholds from labelled one-claim trials: verify's at ``target_far`` of the
    impostor scores; identify's at ``target_far`` of strangers among ``n_speakers``,
    each impostor score carried to N by the independence model."""
    target = _target(target_far)
    genuine, impostor = np.asarray(genuine, float), np.asarray(impostor, float)
    _require_genuine(len(genuine), source)
    _require_impostor(len(impostor), source)
    top = _ceiling(score)
    verify = _choice("verify", stranger_threshold(impostor, 1, 1, target, None, top), None, genuine)
    identify = _choice(
        "identify",
        stranger_threshold(impostor, 1, max(n_speakers, 1), target, None, top),
        None,
        genuine,
    )
    return Calibration(identify, verify, len(genuine), 0, source, score)


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
    ``"default"``. Without a default, calibration is refused then. Each enrolled speaker
    with 2 or more clips is a voice; so is each clip of a ``cohort`` given here, and
    each labelled voice of the database's own cohort (:attr:`Population.outside`).
    """
    target = _target(target_far)
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
    trials = enrollment_trials(population, score_norm=score_norm, top_n=top_n)
    _require_genuine(len(trials.genuine), "enrollments")
    # A given cohort counts a voice per clip; the database's own by its labels.
    outside_voices = None if cohort is None else len(cohort)
    if cohort is None:  # the database's own cohort of outside voices, if it has one
        cohort = population.outside
        outside_voices = population.outside_voices
    outside = np.zeros((0, population.embeddings.shape[1])) if cohort is None else cohort
    cohort_best, cohort_claims = cohort_trials(
        population, outside, score_norm=score_norm, top_n=top_n
    )
    n = population.n_speakers
    stranger = np.concatenate([trials.stranger, cohort_best])
    sizes = np.concatenate([trials.stranger_sizes, np.full(len(cohort_best), float(n))])
    impostor = np.concatenate([trials.impostor, cohort_claims])
    source = "enrollments" + (f" and {len(outside)} cohort voices" if len(outside) else "")
    _require_impostor(len(stranger), source)
    voices = usable + (outside_voices or 0)
    fixed = None if voices >= MIN_VOICES else _too_few_voices(voices, default)
    fixed_verify = fixed if fixed is None or verify_default is None else verify_default
    top = _ceiling(score_norm)
    identify = _choice(
        "identify",
        stranger_threshold(stranger, sizes, n, target, fixed, top),
        trials.genuine_best,
        trials.genuine,
    )
    verify = _choice(
        "verify",
        stranger_threshold(impostor, 1, 1, target, fixed_verify, top),
        None,
        trials.genuine,
    )
    return Calibration(
        identify, verify, len(trials.genuine), len(outside), source, _score_name(score_norm)
    )


def _too_few_voices(voices: int, default: float | None) -> float:
    """The threshold kept when ``voices`` stranger voices are too few to calibrate."""
    if default is None:
        raise InputError(
            f"calibration needs at least {MIN_VOICES} stranger voices (enrolled speakers "
            f"and cohort voices), the database has {voices}; enroll more speakers, or "
            "import a cohort of outside voices (speakerdb cohort import)"
        )
    log.warning(
        "%d stranger voices cannot bound the share of strangers let in (%d are needed): "
        "the measured default threshold %.4f is kept; import a cohort of outside voices "
        "to calibrate",
        voices,
        MIN_VOICES,
        default,
    )
    return default


def _choice(
    operation: str, bound: StrangerBound, best: np.ndarray | None, genuine: np.ndarray
) -> ThresholdChoice:
    """``bound`` as ``operation``'s choice, with the share of genuine clips it turns away
    (identify's also those whose own speaker did not score best, ``best``)."""
    kept = genuine >= bound.threshold
    if best is not None and operation == "identify":
        kept &= best
    frr = float(1.0 - kept.mean()) if genuine.size else float("nan")
    return ThresholdChoice(
        operation=operation,
        threshold=bound.threshold,
        target=bound.target,
        n_speakers=bound.n_speakers,
        n_strangers=bound.n,
        named=bound.named,
        counted=bound.counted,
        upper=bound.upper,
        modelled=bound.modelled,
        frr=frr,
        method=bound.method,
    )


def _ceiling(score: str) -> float:
    """The highest threshold a score can have: a cosine's is 1."""
    return 1.0 if score in ("cosine", "none") else math.inf


def _score_name(score_norm: str) -> str:
    return get_norm(score_norm).score_name


def _target(target_far: float | None) -> float:
    target = DEFAULT_TARGET if target_far is None else target_far
    if not 0.0 < target < 1.0:
        raise InputError(f"--target-far must be between 0 and 1, got {target_far}")
    return target


def _require_genuine(n_genuine: int, source: str) -> None:
    if n_genuine < MIN_GENUINE:
        raise InputError(
            f"calibration needs at least {MIN_GENUINE} genuine scores, {source} give "
            f"{n_genuine}; add clips (every clip of a speaker with 2 or more gives one)"
        )


def _require_impostor(n_impostor: int, source: str) -> None:
    if n_impostor < MIN_STRANGERS:
        raise InputError(
            f"calibration needs at least {MIN_STRANGERS} stranger scores, {source} give "
            f"{n_impostor}; enroll more speakers, or import a cohort of outside voices"
        )


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
