"""Defaults and the one place where option precedence is decided.

Precedence, for every option that has several sources:

1. an explicit argument (a CLI flag, or a keyword of :class:`~speakerdb.SpeakerDB`);
2. the environment variable (``SPEAKERDB_DB``, ``SPEAKERDB_MODEL``, ``SPEAKERDB_THRESHOLD``);
3. the value stored in the database (the model it was built with, ``set-threshold``);
4. the default below.

The score that decides (``score_norm``) follows the same order, with one rule
more: a database that never chose a score normalisation decides by raw cosine
whenever a cosine threshold was given (with the query, as an argument, in
``SPEAKERDB_THRESHOLD`` or stored by ``set-threshold`` or ``calibrate``), and
otherwise by its model's default (:data:`DEFAULT_SCORE_NORMS`). A cosine
threshold means a cosine, so databases from before margin-duration became the
GE2E default keep deciding as they did.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import InputError

__all__ = [
    "BACKENDS",
    "DEFAULT_ASNORM_THRESHOLD",
    "DEFAULT_DB",
    "DEFAULT_MARGIN_DURATION_THRESHOLDS",
    "DEFAULT_MARGIN_THRESHOLDS",
    "DEFAULT_MODEL",
    "DEFAULT_SCORE_NORMS",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TOP_N",
    "DURATION_CAP_S",
    "DURATION_REFERENCE_S",
    "DURATION_SLOPE",
    "FALLBACK_THRESHOLD",
    "SCORE_MEANINGS",
    "SCORE_NORMS",
    "cache_root",
    "database_path",
    "default_norm_threshold",
    "default_score_norm",
    "default_threshold",
    "env_flag",
    "normalize_model_name",
    "parse_threshold",
    "resolve_backend",
]

DEFAULT_DB = "speakers.db"
DEFAULT_MODEL = "microsoft/unispeech-sat-base-plus-sv"

ENV_DB = "SPEAKERDB_DB"
ENV_MODEL = "SPEAKERDB_MODEL"
ENV_THRESHOLD = "SPEAKERDB_THRESHOLD"
ENV_OFFLINE = "SPEAKERDB_OFFLINE"
ENV_BACKEND = "SPEAKERDB_BACKEND"
ENV_CACHE = "SPEAKERDB_CACHE_DIR"

#: How an x-vector model is run (``speakerdb/encoder.py`` documents each):
#: ``auto`` is ONNX Runtime where it can be had, else torch; ``onnx`` and ``torch``
#: insist on one; ``openvino-bf16`` is the opt-in fast path (OpenVINO in bfloat16,
#: the ``fast`` extra), ``torch-bf16`` the same precision with torch.
BACKENDS = ("auto", "onnx", "torch", "openvino-bf16", "torch-bf16")

# Where each default comes from:
# - unispeech-sat-base-plus-sv: 0.89 is the threshold its model card suggests
#   (and calls dataset-dependent).
# - resemblyzer (GE2E): between the equal-error-rate thresholds measured on the
#   shared real-speech corpus with 3-clip templates: 0.70 for single clips and
#   0.76 for items of 3 s or more (scripts/eval_accuracy.py).
DEFAULT_THRESHOLDS: dict[str, float] = {
    DEFAULT_MODEL: 0.89,
    "resemblyzer": 0.75,
}
# For a model we know nothing about: a deliberately cautious middle value.
FALLBACK_THRESHOLD = 0.7

#: Score normalisations a database or a query can use ("none": raw cosine);
#: see speakerdb/scorenorm.py.
SCORE_NORMS = ("none", "asnorm", "margin", "margin-duration")
# The duration term of margin-duration scores, ``DURATION_SLOPE * ln(d / DURATION_REFERENCE_S)``
# for a clip of d seconds, d clamped to [DURATION_REFERENCE_S, DURATION_CAP_S]. Longer clips
# score higher against everyone, strangers included (GE2E on the shared corpus: strangers'
# best margin score 0.72 under 1 s of speech, 0.78 over 3.5 s), so the bar rises with the
# clip's length. The slope is a logistic-regression fit of "genuine and correctly
# identified" against "stranger" on (margin score, ln duration) of the corpus's single clips:
# 0.057; 0.054 to 0.060 with each speaker left out in turn (scripts/eval_table.py --fit).
# The floor keeps the shortest clips from any bonus, the cap from extrapolating beyond
# the measured lengths (30 s is also where long audio goes into windows).
DURATION_SLOPE = 0.057
DURATION_REFERENCE_S = 0.5
DURATION_CAP_S = 30.0
#: What each score is, in the words ``info`` and ``score-norm`` use.
SCORE_MEANINGS: dict[str, str] = {
    "none": "raw cosine",
    "asnorm": "AS-norm, in standard deviations of the enrolled cohort's scores",
    "margin": "cosine plus its lead over the best other speaker",
    "margin-duration": "cosine plus its lead over the best other speaker, minus "
    f"{DURATION_SLOPE:g} x ln(clip seconds / {DURATION_REFERENCE_S:g}): longer clips must "
    "score higher",
}
# The score normalisation of a database that never chose one, per model. Only
# where the evaluation table (scripts/eval_table.py) measured it: for GE2E,
# margin-duration beats raw cosine on every column and more than halves the
# strangers let in. A model without measurements keeps raw cosine and the
# threshold its model card gives.
DEFAULT_SCORE_NORMS: dict[str, str] = {"resemblyzer": "margin-duration"}
# AS-norm scores are in standard deviations, whatever the model: between the
# equal-error-rate thresholds on the shared corpus with the offline encoder
# (1.22 for single clips, 1.49 for items of 3 s or more; scripts/eval_table.py).
DEFAULT_ASNORM_THRESHOLD = 1.35
#: AS-norm's cohort size for each side's statistics (fewer when the cohort is smaller).
DEFAULT_TOP_N = 50
# Margin scores are on the cosine's scale, but a best match's is raised by its lead.
# resemblyzer: between the open-set identification thresholds where as many
# strangers are accepted as genuine speakers missed on the shared corpus (0.79
# single clips, 0.84 items of 3 s or more; the cosine's are 0.74 and 0.80). For
# other models: the cosine default.
DEFAULT_MARGIN_THRESHOLDS: dict[str, float] = {"resemblyzer": 0.82}
# The same measurement for margin-duration scores: 0.725 for single clips and
# 0.712 for items of 3 s or more. That the two now nearly agree is the point of
# the duration term: one threshold suits short and long clips.
DEFAULT_MARGIN_DURATION_THRESHOLDS: dict[str, float] = {"resemblyzer": 0.72}


def default_score_norm(model: str) -> str:
    """The score normalisation of a database on ``model`` that never chose one."""
    return DEFAULT_SCORE_NORMS.get(model, "none")


def default_norm_threshold(norm: str, model: str) -> float:
    """The built-in threshold of ``norm`` scores with ``model`` (``"none"``: the cosine's)."""
    if norm == "asnorm":
        return DEFAULT_ASNORM_THRESHOLD
    if norm == "margin":
        return DEFAULT_MARGIN_THRESHOLDS.get(model, default_threshold(model))
    if norm == "margin-duration":
        return DEFAULT_MARGIN_DURATION_THRESHOLDS.get(model, default_threshold(model))
    return default_threshold(model)


def database_path(path: str | os.PathLike[str] | None) -> Path:
    """The database file to use: ``path``, else ``SPEAKERDB_DB``, else ``./speakers.db``."""
    return Path(path or os.environ.get(ENV_DB) or DEFAULT_DB).expanduser()


def normalize_model_name(model: str) -> str:
    """Return the name under which a model is recorded: local directories become absolute."""
    if model == "resemblyzer":
        return model
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return model


def default_threshold(model: str) -> float:
    """The built-in threshold for ``model``: the model's known value or the fallback."""
    return DEFAULT_THRESHOLDS.get(model, FALLBACK_THRESHOLD)


def parse_threshold(value: float | str, source: str) -> float:
    """Check that a threshold is a finite cosine value in [-1, 1]."""
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"threshold from {source} is not a number: {value!r}") from None
    if not math.isfinite(number) or not -1.0 <= number <= 1.0:
        raise InputError(f"threshold from {source} must be a cosine in [-1, 1], got {value!r}")
    return number


def env_flag(name: str) -> bool:
    """True when environment variable ``name`` is set to a true-ish value."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_backend(backend: str | None) -> str:
    """The backend asked for: the argument, else ``SPEAKERDB_BACKEND``, else ``auto``."""
    chosen = (backend or os.environ.get(ENV_BACKEND) or "auto").strip().lower()
    if chosen not in BACKENDS:
        source = "argument" if backend else ENV_BACKEND
        raise InputError(f"backend from {source} must be one of {', '.join(BACKENDS)}: {chosen!r}")
    return chosen


def cache_root() -> Path:
    """Where speakerdb keeps what it derives from a model (ONNX exports, weight hashes):
    ``SPEAKERDB_CACHE_DIR``, else ``$XDG_CACHE_HOME/speakerdb``, else ``~/.cache/speakerdb``.
    """
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "speakerdb"
