"""Enrollment quality gates: reasons not to trust a clip, or a new speaker.

Checked at enroll time, on the decoded clips and their embeddings:

- ``not_speech``: a clip that is not someone speaking (noise, mains hum, tones, music,
  silence: :func:`speakerdb.audio.assess_speech`) is refused, with what it sounds like
  and the fix. On unless the database was opened with ``speech_gate=False`` (or
  ``SPEAKERDB_SPEECH_GATE=off``); ``scripts/eval_speech_gate.py`` shows it accepts every
  clip of the shared corpus and refuses generated non-speech;
- ``speech``: net speech (:mod:`speakerdb.audio._vad`) under :data:`WARN_SPEECH_S` warns,
  under :data:`MIN_SPEECH_S` refuses;
- ``clipping``: a share of samples at full scale over :data:`WARN_CLIPPED` warns,
  over :data:`MAX_CLIPPED` refuses;
- ``outlier``: a clip's cosine to the template of the speaker's other clips
  (enrolled before, or given with it) under ``threshold - 0.1`` warns, under
  ``threshold - 0.2`` refuses;
- ``near_duplicate``: a new speaker whose template's cosine to an enrolled
  speaker's is at least ``threshold + 0.2 * (1 - threshold)`` warns, at least
  ``threshold + 0.5 * (1 - threshold)`` refuses.

``threshold`` is the database's cosine threshold, so the similarity limits
follow the model's scale. For the offline GE2E encoder (threshold 0.75) they
are 0.65 / 0.55 for outliers and 0.80 / 0.875 for near-duplicates: on the
shared corpus, 5 % / 1 % of genuine leave-one-out scores fall below the
outlier limits, and 5 % / under 1 % of different speakers' 3-clip templates
lie above the duplicate limits (``scripts/eval_table.py --gates``).

A refusal stops the enrollment unless ``force`` is given; warnings are
returned with the enrollment. The similarity checks refuse only for models
whose default threshold was measured (:data:`~speakerdb.config.DEFAULT_THRESHOLDS`)
or databases whose threshold was set; for any other model they only warn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .._vectors import template_of
from ..audio._decode import Clip
from ..audio._speechness import assess_speech
from ..audio._vad import net_speech_s
from ..decision._population import Population
from ..types import QualityIssue

__all__ = [
    "MAX_CLIPPED",
    "MIN_SPEECH_S",
    "WARN_CLIPPED",
    "WARN_SPEECH_S",
    "check_enrollment",
]

#: Net speech (seconds, by :mod:`speakerdb.audio._vad`) below which a clip is refused.
MIN_SPEECH_S = 0.5
#: Net speech below which a clip is accepted with a warning.
WARN_SPEECH_S = 1.0
#: Share of samples at full scale above which a clip is refused as clipped.
MAX_CLIPPED = 0.01
#: Share of samples at full scale above which a clip gets a warning.
WARN_CLIPPED = 0.001
# Resampling smears a clipped plateau a little below full scale.
_FULL_SCALE = 0.97


def check_enrollment(
    name: str,
    clips: Sequence[Clip],
    embeddings: np.ndarray,
    population: Population,
    threshold: float,
    *,
    similarity_refuses: bool = True,
    speech_gate: bool = True,
) -> list[QualityIssue]:
    """Every issue with enrolling ``clips`` (embedded as ``embeddings``) for ``name``.

    With ``similarity_refuses=False`` the outlier and near-duplicate checks only
    warn: their limits follow the threshold, which means little for a model
    whose threshold was never measured. ``speech_gate=False`` skips ``not_speech``.
    """
    issues: list[QualityIssue] = []
    for clip in clips:
        issues += (_not_speech(clip) if speech_gate else []) + _speech(clip) + _clipping(clip)
    similar = _outliers(name, clips, embeddings, population, threshold)
    if name not in population.names:
        similar += _near_duplicate(name, embeddings, population, threshold)
    if not similarity_refuses:
        similar = [replace(i, refused=False) for i in similar]
    return issues + similar


def _not_speech(clip: Clip) -> list[QualityIssue]:
    found = assess_speech(clip.samples)
    if found.is_speech:
        return []
    # The command's own advice (--force) is added once for every refusal of the call.
    reason = (found.reason or "not speech").removesuffix(" (--force enrolls anyway)")
    return [QualityIssue("not_speech", True, clip.source, f"{clip.label}: {reason}")]


def _speech(clip: Clip) -> list[QualityIssue]:
    speech = net_speech_s(clip.samples)
    if speech >= WARN_SPEECH_S:
        return []
    refused = speech < MIN_SPEECH_S
    need = MIN_SPEECH_S if refused else WARN_SPEECH_S
    return [
        QualityIssue(
            "speech",
            refused,
            clip.source,
            f"{clip.label}: {speech:.2f} s of speech, at least {need:.1f} s is needed"
            + ("" if refused else " for a steady template")
            + "; record a longer clip",
        )
    ]


def _clipping(clip: Clip) -> list[QualityIssue]:
    share = float(np.mean(np.abs(clip.samples) >= _FULL_SCALE))
    if share <= WARN_CLIPPED:
        return []
    refused = share > MAX_CLIPPED
    return [
        QualityIssue(
            "clipping",
            refused,
            clip.source,
            f"{clip.label}: {share:.1%} of samples are at full scale (clipped); "
            "record with a lower input gain",
        )
    ]


def _outliers(
    name: str,
    clips: Sequence[Clip],
    embeddings: np.ndarray,
    population: Population,
    threshold: float,
) -> list[QualityIssue]:
    new = np.asarray(embeddings, np.float32)
    old = population.of(name) if population.n_speakers else new[:0]
    every = np.concatenate([old, new])
    n_old = len(every) - len(clips)
    if len(every) < 2:
        return []
    warn, refuse = threshold - 0.1, threshold - 0.2
    issues = []
    for k, clip in enumerate(clips):
        i = n_old + k
        score = float(np.dot(template_of(np.delete(every, i, axis=0)), every[i]))
        if score < warn:
            refused = score < refuse
            limit = refuse if refused else warn
            issues.append(
                QualityIssue(
                    "outlier",
                    refused,
                    clip.source,
                    f"{clip.label}: does not sound like the other clips of {name!r} (cosine "
                    f"{score:.3f} < {limit:.3f}); check that it is the same person",
                )
            )
    return issues


def _near_duplicate(
    name: str, embeddings: np.ndarray, population: Population, threshold: float
) -> list[QualityIssue]:
    if population.n_speakers == 0 or len(embeddings) == 0:
        return []
    scores = population.templates().astype(np.float64) @ template_of(embeddings).astype(np.float64)
    best = int(np.argmax(scores))
    score = float(scores[best])
    warn = threshold + 0.2 * (1 - threshold)
    refuse = threshold + 0.5 * (1 - threshold)
    if score < warn:
        return []
    refused = score >= refuse
    other = population.names[best]
    return [
        QualityIssue(
            "near_duplicate",
            refused,
            None,
            f"new speaker {name!r} sounds nearly identical to {other!r} (cosine {score:.3f}"
            f" >= {refuse if refused else warn:.3f}); if it is the same person, enroll "
            f"the clips as {other!r}",
        )
    ]
