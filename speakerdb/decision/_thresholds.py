"""Calibration's results, identify's and verify's chosen thresholds and what holds at
each, and the choice made from labelled one-claim trial scores
(:func:`calibrate_trials`). The rule that bounds the share of strangers let in is
:mod:`speakerdb.decision._openset`'s; the data it is given is
:mod:`speakerdb.decision._calibration`'s business.

Too little data gives thresholds that are mostly noise: calibration is refused below
:data:`MIN_GENUINE` genuine scores and :data:`MIN_STRANGERS` stranger scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..types import ClearedThreshold
from ._openset import DEFAULT_TARGET, StrangerBound, stranger_threshold

__all__ = [
    "MIN_GENUINE",
    "MIN_STRANGERS",
    "Calibration",
    "OverriddenDefault",
    "ThresholdChoice",
    "calibrate_trials",
    "ceiling",
    "choose",
    "require_genuine",
    "require_impostor",
    "target_share",
]


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
class OverriddenDefault:
    """A default that calibration kept for ``operation`` but that does not decide it.

    Calibration removes the operation's stored threshold of the score when it keeps a
    default (:attr:`Calibration.cleared`), but a threshold that outranks the database
    still decides: ``threshold``, of ``score`` scores, in ``SPEAKERDB_THRESHOLD``
    (``source`` ``"environment"``) or given when the database was opened
    (``"argument"``), not the kept ``default`` (or ``"database"``: a stored one).
    """

    operation: str
    score: str
    default: float
    threshold: float
    source: str

    @property
    def notice(self) -> str:
        """The sentence that says so, naming the fix."""
        why = _OUTRANKS.get(
            self.source,
            "a stored threshold still decides; `speakerdb set-threshold --clear` removes it",
        )
        return (
            f"{self.operation}'s {self.score} threshold stays {self.threshold:.4f} "
            f"({self.source}), not the default {self.default:.4f} kept here: {why}"
        )


#: Why a threshold of each source outranks the default calibrate kept, and the fix.
_OUTRANKS = {
    "environment": "SPEAKERDB_THRESHOLD outranks the database; unset it to let the default decide",
    "argument": "the threshold the database was opened with outranks the database; open it "
    "without one to let the default decide",
}


@dataclass(frozen=True, slots=True)
class Calibration:
    """Identify's and verify's thresholds, chosen from scores of kind ``score``
    (``"cosine"``, ``"asnorm"``, ``"margin"`` or ``"margin-duration"``) taken from
    ``source``, with ``n_genuine`` genuine scores and ``n_cohort`` outside voices.

    ``overridden`` lists each default kept (``method`` ``"default"``) that a
    threshold given (``SPEAKERDB_THRESHOLD``, or when the database was opened) still
    overrides: a database's
    :meth:`~speakerdb.SpeakerDB.calibrate` fills it, so that "kept the default" is
    never read as in force when it is not. Empty when every kept default decides.

    ``cleared`` lists the stored thresholds that calibration removed because it kept
    the default of their operation and score (with ``apply`` false: would remove; a
    database's :meth:`~speakerdb.SpeakerDB.calibrate` fills it too), so that after a
    plain calibrate the database decides by what it calibrated or by the default it
    kept, never by a threshold stored earlier.
    """

    identify: ThresholdChoice
    verify: ThresholdChoice
    n_genuine: int
    n_cohort: int
    source: str
    score: str = "cosine"
    overridden: tuple[OverriddenDefault, ...] = ()
    cleared: tuple[ClearedThreshold, ...] = ()

    @property
    def target_far(self) -> float:
        """The share of strangers both thresholds aim at."""
        return self.identify.target

    @property
    def kept_defaults(self) -> bool:
        """True when both operations kept their measured defaults (too few voices, or
        trials that could not show a lower threshold): no threshold is stored then (those
        stored before are removed: :attr:`cleared`)."""
        return all(c.method == "default" for c in (self.identify, self.verify))


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
    target = target_share(target_far)
    genuine, impostor = np.asarray(genuine, float), np.asarray(impostor, float)
    require_genuine(len(genuine), source)
    require_impostor(len(impostor), source)
    top = ceiling(score)
    verify = choose("verify", stranger_threshold(impostor, 1, 1, target, None, top), None, genuine)
    identify = choose(
        "identify",
        stranger_threshold(impostor, 1, max(n_speakers, 1), target, None, top),
        None,
        genuine,
    )
    return Calibration(identify, verify, len(genuine), 0, source, score)


def choose(
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
        frr=frr,
        counted=bound.counted,
        upper=bound.upper,
        modelled=bound.modelled,
        method=bound.method,
    )


def ceiling(score: str) -> float:
    """The highest threshold a score can have: a cosine's is 1."""
    return 1.0 if score in ("cosine", "none") else math.inf


def target_share(target_far: float | None) -> float:
    """The share of strangers to aim at: ``target_far``, else the default; checked."""
    target = DEFAULT_TARGET if target_far is None else target_far
    if not 0.0 < target < 1.0:
        raise InputError(f"--target-far must be between 0 and 1, got {target_far}")
    return target


MIN_GENUINE = 6
#: Fewer stranger (or impostor) scores than this give no threshold at all.
MIN_STRANGERS = 6


def require_genuine(n_genuine: int, source: str) -> None:
    if n_genuine < MIN_GENUINE:
        raise InputError(
            f"calibration needs at least {MIN_GENUINE} genuine scores, {source} give "
            f"{n_genuine}; add clips (every clip of a speaker with 2 or more gives one)"
        )


def require_impostor(n_impostor: int, source: str) -> None:
    if n_impostor < MIN_STRANGERS:
        raise InputError(
            f"calibration needs at least {MIN_STRANGERS} stranger scores, {source} give "
            f"{n_impostor}; enroll more speakers, or import a cohort of outside voices "
            "(speakerdb cohort import CSV)"
        )
