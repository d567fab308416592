"""``speakerdb evaluate``: measure accuracy on the user's own labelled audio.

The enrollment CSV is enrolled into a throw-away in-memory database (the
user's is never opened for writing), every test clip is embedded once, and the figures of
:mod:`speakerdb.evaluation._trials` are computed from the scores:

- verification on trials (given, or balanced ones generated as
  :func:`~speakerdb.evaluation._trials.balanced_trials` does): EER and minDCF;
- closed-set identification: top-1 and top-5;
- open-set identification at the database's threshold and at the one that
  ``speakerdb calibrate`` would set from these enrollments: correct
  identifications, wrong ones, and impostors accepted;
- the margin between the best and second-best score.

CSV files have a header row naming ``path`` and ``speaker`` (or ``speaker_id``);
relative paths are relative to the CSV's folder. Test rows whose speaker is not
enrolled are impostors. A trial list names ``enroll_speaker`` (or ``speaker``),
``test_path`` (or ``path``) and ``target`` (1 or 0).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._names import clean_name
from ..audio._decode import Clip, load_clip
from ..decision import _metrics as metrics
from ..decision._asnorm import DEFAULT_TOP_N
from ..decision._calibration import Calibration, calibrate_population
from ..decision._population import Population
from ..decision._ranking import population_scores
from ..decision._scores import get_norm
from ..decision._trial_list import read_trial_rows
from ..encoders._base import Encoder
from ..errors import InputError, SpeakerDBError
from ..services._batch import ManifestRow, read_manifest
from . import _trials as scoring

if TYPE_CHECKING:
    from .._facade import SpeakerDB

__all__ = [
    "EvaluationReport",
    "OpenSetAt",
    "Skipped",
    "evaluate",
    "read_trial_rows",
    "read_trials",
]

log = logging.getLogger(__name__)

_EMBED_CHUNK = 32


@dataclass(frozen=True, slots=True)
class Skipped:
    """A clip left out of the evaluation, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class OpenSetAt:
    """Open-set identification at a named threshold (``database`` or ``calibrated``)."""

    name: str
    result: metrics.OpenSetResult


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Everything ``speakerdb evaluate`` measured. Scores are ``score`` (cosine or asnorm)."""

    model: str
    score: str
    n_speakers: int
    n_enroll_clips: int
    n_test_items: int
    n_impostor_items: int
    verification: scoring.VerificationResult
    top1: float
    top5: float
    open_set: tuple[OpenSetAt, ...]
    margins: scoring.Margins
    calibration: Calibration | None
    calibration_note: str | None
    skipped: tuple[Skipped, ...]
    det_plot: str | None


@dataclass(frozen=True, slots=True, eq=False)
class _Scored:
    names: tuple[str, ...]
    matrix: np.ndarray
    truth: np.ndarray
    paths: tuple[str, ...]
    durations_s: tuple[float, ...]


def evaluate(
    enroll_csv: str | Path,
    test_csv: str | Path,
    trials_csv: str | Path | None = None,
    *,
    model: str | None = None,
    encoder: Encoder | None = None,
    threshold: float | None = None,
    score_norm: str | None = None,
    top_n: int = DEFAULT_TOP_N,
    det_plot: str | Path | None = None,
    local_files_only: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvaluationReport:
    """Evaluate enrollment and test CSVs in a throw-away in-memory database; see the
    module docstring.

    ``threshold`` is the database threshold to report open-set results at
    (default: the model's default for ``score_norm``). ``score_norm`` is
    ``"none"``, ``"asnorm"`` (cohort: the enrolled population, ``top_n``),
    ``"margin"`` or ``"margin-duration"`` (default: the model's, its encoder family's
    ``default_score``); see :mod:`speakerdb.decision._scores`.
    """
    if det_plot is not None:
        from ._plot import require_matplotlib

        require_matplotlib()
    enroll_rows, test_rows = read_manifest(enroll_csv), read_manifest(test_csv)
    measured = _measure(
        enroll_csv,
        enroll_rows,
        test_rows,
        model=model,
        encoder=encoder,
        local_files_only=local_files_only,
        threshold=threshold,
        score_norm=score_norm,
        top_n=top_n,
        advance=progress or (lambda n: None),
    )
    scored = measured.scored
    trials = (
        read_trials(trials_csv, scored)
        if trials_csv is not None
        else scoring.balanced_trials(scored.truth, len(scored.names))
    )
    return _report(measured, trials, top_n, det_plot)


@dataclass(frozen=True, slots=True, eq=False)
class _Measured:
    """What the throw-away database measured: the test clips' scores, the enrolled
    population, the database's bar (threshold, and its fall with duration), the score
    decided by, the model, and the clips left out."""

    scored: _Scored
    population: Population
    bar: tuple[float, float]
    score_norm: str
    model: str
    skipped: tuple[Skipped, ...]


def _measure(
    enroll_csv: str | Path,
    enroll_rows: Sequence[ManifestRow],
    test_rows: Sequence[ManifestRow],
    *,
    model: str | None,
    encoder: Encoder | None,
    local_files_only: bool | None,
    threshold: float | None,
    score_norm: str | None,
    top_n: int,
    advance: Callable[[int], None],
) -> _Measured:
    """Enroll ``enroll_rows`` into a throw-away in-memory database and score ``test_rows``
    against it."""
    from .._facade import SpeakerDB
    from ..storage import MemoryStorage

    storage = MemoryStorage()
    # No replay window: the evaluation's queries are not an attack on each other.
    with SpeakerDB(
        storage=storage,
        model=model,
        encoder=encoder,
        local_files_only=local_files_only,
        replay_window=0,
    ) as db:
        skipped = _enroll(db, enroll_rows, advance)
        norm = db.policy(threshold, score_norm).score_norm  # as identify decides
        with storage.read() as snapshot:
            population = snapshot.population()
        if population.n_speakers == 0:
            raise InputError(f"{enroll_csv}: no clip could be enrolled{_first(skipped)}")
        scored, test_skipped = _score_tests(db, population, test_rows, norm, top_n, advance)
        # The database's own bar, as identify takes it: a built-in default may fall with
        # each clip's duration; a threshold given here is one bar for every clip.
        policy = db.policy(threshold, norm)
        bar = (policy.threshold, policy.duration_fall)
        return _Measured(scored, population, bar, norm, db.model, tuple(skipped + test_skipped))


def _first(skipped: Sequence[Skipped]) -> str:
    """The first clip left out and why, to say in an error: `` (PATH: REASON)``."""
    return f" ({skipped[0].path}: {skipped[0].reason})" if skipped else ""


def _enroll(
    db: SpeakerDB, rows: Sequence[ManifestRow], advance: Callable[[int], None]
) -> list[Skipped]:
    # Measure the data as it is: the quality gates' refusals do not apply here.
    report = db.enroll_batch(rows, advance, force=True)
    return [Skipped(f.source, f.reason) for f in report.failures]


def _score_tests(
    db: SpeakerDB,
    population: Population,
    rows: Sequence[ManifestRow],
    score_norm: str,
    top_n: int,
    advance: Callable[[int], None],
) -> tuple[_Scored, list[Skipped]]:
    clips, kept, skipped = _load_all(rows, advance)
    if not clips:
        raise InputError(f"no test clip could be read{_first(skipped)}")
    vectors = np.concatenate(
        [db.embed(clips[k : k + _EMBED_CHUNK]) for k in range(0, len(clips), _EMBED_CHUNK)]
    )
    advance(len(clips))
    durations = [c.spoken_s for c in clips]
    matrix = population_scores(score_norm, vectors, population, top_n, durations)[1]
    names = population.names
    speakers = [_canonical(r.speaker) for r in kept]
    truth = np.array([names.index(s) if s in names else -1 for s in speakers], dtype=int)
    scored = _Scored(names, matrix, truth, tuple(r.path for r in kept), tuple(durations))
    return scored, skipped


def _canonical(name: str) -> str:
    """The name as enrollment stores it, so that test rows match their speaker."""
    try:
        return clean_name(name)
    except SpeakerDBError:
        return name


def _load_all(
    rows: Sequence[ManifestRow], advance: Callable[[int], None]
) -> tuple[list[Clip], list[ManifestRow], list[Skipped]]:
    clips, kept, skipped = [], [], []
    for row in rows:
        try:
            clips.append(load_clip(row.path))
        except SpeakerDBError as exc:
            skipped.append(Skipped(row.path, str(exc)))
            advance(1)
            continue
        kept.append(row)
    return clips, kept, skipped


def read_trials(path: str | Path, scored: _Scored) -> scoring.Trials:
    """Read a trial list and map it onto the scored items and speakers.

    Trials on a clip that could not be used, or on a speaker who could not be
    enrolled, are left out (those clips are reported as skipped).
    """
    row_of = {p: i for i, p in enumerate(scored.paths)}
    items, speakers, target = [], [], []
    for speaker, test_path, is_target in read_trial_rows(path):
        speaker = _canonical(speaker)
        if speaker in scored.names and test_path in row_of:
            items.append(row_of[test_path])
            speakers.append(scored.names.index(speaker))
            target.append(is_target)
    trials = scoring.Trials(np.array(items, int), np.array(speakers, int), np.array(target, bool))
    if not trials.target.any() or trials.target.all():
        raise InputError(
            f"{path}: needs both target and non-target trials on usable clips of enrolled speakers"
        )
    return trials


def _report(
    measured: _Measured, trials: scoring.Trials, top_n: int, det_plot: str | Path | None
) -> EvaluationReport:
    scored, population = measured.scored, measured.population
    target, nontarget = trials.scores(scored.matrix)
    calibration, note = _calibrate(population, measured.score_norm, top_n)
    open_sets = _open_sets(scored, measured.bar, calibration)
    genuine = scored.truth >= 0
    if det_plot is not None:
        from ._plot import write_det_plot

        curve = metrics.det_curve(target, nontarget)
        write_det_plot({"all trials": curve}, det_plot, measured.bar[0])
    return EvaluationReport(
        model=measured.model,
        score=get_norm(measured.score_norm).score_name,
        n_speakers=len(scored.names),
        n_enroll_clips=len(population.owners),
        n_test_items=len(scored.truth),
        n_impostor_items=int((~genuine).sum()),
        verification=scoring.verification(target, nontarget),
        top1=metrics.top_k_accuracy(scored.matrix, scored.truth, 1)
        if genuine.any()
        else float("nan"),
        top5=metrics.top_k_accuracy(scored.matrix, scored.truth, 5)
        if genuine.any()
        else float("nan"),
        open_set=open_sets,
        margins=scoring.margins(scored.matrix, scored.truth),
        calibration=calibration,
        calibration_note=note,
        skipped=measured.skipped,
        det_plot=None if det_plot is None else str(det_plot),
    )


def _open_sets(
    scored: _Scored, bar: tuple[float, float], calibration: Calibration | None
) -> tuple[OpenSetAt, ...]:
    """Open-set identification at the database's bar, and at the calibrated threshold."""
    threshold, fall = bar
    at_database = metrics.open_set(scored.matrix, scored.truth, threshold, fall, scored.durations_s)
    open_sets = [OpenSetAt("database", at_database)]
    if calibration is not None:
        chosen = calibration.identify
        # A kept default is not stored: identify's bar then still falls with duration.
        kept = fall if chosen.method == "default" else 0.0
        result = metrics.open_set(
            scored.matrix, scored.truth, chosen.threshold, kept, scored.durations_s
        )
        open_sets.append(OpenSetAt("calibrated", result))
    return tuple(open_sets)


def _calibrate(
    population: Population, score_norm: str, top_n: int
) -> tuple[Calibration | None, str | None]:
    try:
        return calibrate_population(population, score_norm=score_norm, top_n=top_n), None
    except InputError as exc:
        return None, str(exc)
