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
otherwise by its model's default (its encoder family's ``default_score``). A cosine
threshold means a cosine, so databases from before margin-duration became the
GE2E default keep deciding as they did. :mod:`speakerdb.decision._policy`
applies these rules, once per query.

Defaults that depend on the model are declared by its encoder family
(:mod:`speakerdb.encoders._registry`: ``default_threshold``, ``normalize_model_name``),
those of each score by the score (:mod:`speakerdb.decision._scores`). This module is
the base layer: it imports neither.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import Fix, InputError

__all__ = [
    "BACKENDS",
    "DEFAULT_DB",
    "DEFAULT_MODEL",
    "DEFAULT_REPLAY_WINDOW_S",
    "DEFAULT_TOP_N",
    "DURATION_CAP_S",
    "DURATION_REFERENCE_S",
    "DURATION_SLOPE",
    "FALLBACK_THRESHOLD",
    "MIN_COHORT_VOICES",
    "MIN_QUERY_SPEECH_S",
    "cache_root",
    "database_location",
    "database_path",
    "env_flag",
    "is_server_url",
    "parse_replay_window",
    "parse_threshold",
    "resolve_backend",
    "resolve_replay_check",
    "resolve_replay_window",
    "resolve_speech_gate",
]

DEFAULT_DB = "speakers.db"
DEFAULT_MODEL = "microsoft/unispeech-sat-base-plus-sv"
# The cosine threshold of a model nobody measured: a deliberately cautious middle value.
FALLBACK_THRESHOLD = 0.7

ENV_DB = "SPEAKERDB_DB"
ENV_MODEL = "SPEAKERDB_MODEL"
ENV_THRESHOLD = "SPEAKERDB_THRESHOLD"
ENV_OFFLINE = "SPEAKERDB_OFFLINE"
ENV_BACKEND = "SPEAKERDB_BACKEND"
ENV_CACHE = "SPEAKERDB_CACHE_DIR"
ENV_REPLAY_WINDOW = "SPEAKERDB_REPLAY_WINDOW"
ENV_SPEECH_GATE = "SPEAKERDB_SPEECH_GATE"
ENV_REPLAY_CHECK = "SPEAKERDB_REPLAY_CHECK"
ENV_COUNTERMEASURE = "SPEAKERDB_COUNTERMEASURE"
#: The secret that encrypts kept enrollment audio (``enroll --keep-audio``, ``reembed``).
ENV_AUDIO_KEY = "SPEAKERDB_AUDIO_KEY"
_SWITCHES = {"1": True, "on": True, "true": True, "yes": True}
_SWITCHES |= {"0": False, "off": False, "false": False, "no": False}

#: How long (seconds) a decided query's fingerprint is kept: a clip matching one is a replay.
DEFAULT_REPLAY_WINDOW_S = 600
#: The longest replay window (a day): fingerprints of queries are not a log.
MAX_REPLAY_WINDOW_S = 86_400
_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600}
#: Threads of each ONNX Runtime session (default: one per core); Ray actors set it.
ENV_THREADS = "SPEAKERDB_THREADS"

#: How an x-vector model is run (``speakerdb/encoder.py`` documents each):
#: ``auto`` is ONNX Runtime where it can be had, else torch; ``onnx`` and ``torch``
#: insist on one; ``openvino-bf16`` is the opt-in fast path (OpenVINO in bfloat16,
#: the ``fast`` extra), ``torch-bf16`` the same precision with torch.
BACKENDS = ("auto", "onnx", "torch", "openvino-bf16", "torch-bf16")

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
# The least net speech (seconds, speakerdb.audio.net_speech_s) of an identify or verify
# clip for a secure decision; with less the outcome is not_enough_speech. Measured with
# the thresholds on 6 of the shared corpus's 11 speakers (fold A of
# scripts/eval_open_set.py): of the minimums 0.5, 0.75, 1, 1.25, 1.5 and 2 s, each with
# the margin-duration identify threshold that keeps 1% of strangers out at each N, 0.5 s
# identified the most enrolled speakers' clips correctly (69.8%; 54.4% at 2 s). No
# minimum is not a choice: strangers' clips under 0.5 s were named up to 4.8% of the time
# at N = 2 (clips over 1.25 s never), and a clip with almost no speech must get an honest
# not_enough_speech, not a guess.
MIN_QUERY_SPEECH_S = 0.5
#: AS-norm's cohort size for each side's statistics (fewer when the cohort is smaller).
DEFAULT_TOP_N = 50
#: The fewest cohort voices (the other enrolled speakers and the outside voices of
#: ``speakerdb cohort import``) a claim's AS-norm score is computed with; with fewer,
#: queries fall back to another score and say so (:mod:`speakerdb.decision._policy`),
#: and calibrating AS-norm is refused. Measured with GE2E on the shared corpus, speakers
#: left out (scripts/eval_asnorm_cohort.py): the threshold that lets in 1% of strangers'
#: single clips is 39 and 9.0 standard deviations with 1 and 2 cohort voices (tuning
#: fold A; 25 and 14 on fold B), and 1.7 to 3.4 from 3 voices on (2.1 to 4.6 on fold B):
#: below 3, the spread of a few top scores is noise and no fixed threshold holds.
MIN_COHORT_VOICES = 3


#: The URL schemes that name a PostgreSQL database; anything else is a file path.
SERVER_SCHEMES = ("postgresql://", "postgresql+psycopg://")


def is_server_url(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL database (a ``str`` starting with one of
    :data:`SERVER_SCHEMES`) rather than a file, which may hold ``?`` or ``%`` too."""
    return isinstance(location, str) and location.startswith(SERVER_SCHEMES)


def database_location(location: str | os.PathLike[str] | None) -> Path | str:
    """The database to use: ``location``, else ``SPEAKERDB_DB``, else ``./speakers.db``;
    a PostgreSQL URL as given, anything else as a file path."""
    chosen = location or os.environ.get(ENV_DB) or DEFAULT_DB
    if is_server_url(chosen):
        return str(chosen)
    return Path(chosen).expanduser()


def database_path(path: str | os.PathLike[str] | None) -> Path:
    """The database file to use: ``path``, else ``SPEAKERDB_DB``, else ``./speakers.db``."""
    return Path(path or os.environ.get(ENV_DB) or DEFAULT_DB).expanduser()


def parse_threshold(
    value: float | str,
    source: str,
    bounds: tuple[float, float] = (-1.0, 1.0),
    kind: str = "a cosine",
) -> float:
    """Check that a threshold is a finite number within ``bounds`` (a cosine in [-1, 1]
    unless the score says otherwise); the error names ``source`` and the fix."""
    low, high = bounds
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad_threshold(f"is not a number: {value!r}", source) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise _bad_threshold(f"must be {kind} in [{low:g}, {high:g}], got {value!r}", source)
    return number


def _bad_threshold(what: str, source: str) -> InputError:
    """The error for a threshold from ``source`` that ``what`` says is wrong, with the fix:
    one given as an argument is given again (:attr:`Fix.THRESHOLD`, spelled by the front
    end it came through)."""
    if source == "argument":
        return InputError(f"threshold given {what}", fix=Fix.THRESHOLD)
    return InputError(f"threshold from {source} {what}{_threshold_fix(source)}")


def parse_replay_window(value: int | str, source: str) -> int:
    """A replay window in whole seconds, from ``600``, ``"600s"``, ``"10m"`` or ``"1h"``;
    0 turns the window off. :class:`InputError` naming ``source`` for anything else."""
    text = str(value).strip().lower()
    unit = _WINDOW_UNITS.get(text[-1:], 0) if text else 0
    digits = text[:-1] if unit else text
    if isinstance(value, bool) or not digits.isdigit():
        raise InputError(
            f"replay window from {source} must be whole seconds or minutes "
            f"(600, 10m, 1h; 0 turns it off), got {value!r}"
        )
    seconds = int(digits) * (unit or 1)
    if seconds > MAX_REPLAY_WINDOW_S:
        raise InputError(
            f"replay window from {source} is {seconds} s; at most {MAX_REPLAY_WINDOW_S} s (24h)"
        )
    return seconds


def resolve_replay_window(arg: int | None, stored: int | None) -> tuple[int, str]:
    """The replay window (seconds) and its source: argument, ``SPEAKERDB_REPLAY_WINDOW``,
    the database (``speakerdb replay-window``), else the default."""
    if arg is not None:
        return arg, "argument"
    env = os.environ.get(ENV_REPLAY_WINDOW)
    if env:
        return parse_replay_window(env, ENV_REPLAY_WINDOW), "environment"
    if stored is not None:
        return stored, "database"
    return DEFAULT_REPLAY_WINDOW_S, "default"


def resolve_speech_gate(arg: bool | None) -> bool:
    """Whether enrollment refuses clips that are not speech (noise, hum, tones, music):
    the argument, else ``SPEAKERDB_SPEECH_GATE`` (``on``/``off``), else on."""
    return _switch(arg, ENV_SPEECH_GATE)


def resolve_replay_check(arg: bool | None) -> bool:
    """Whether identify and verify refuse replays (:mod:`speakerdb.services._replay`):
    the argument, else ``SPEAKERDB_REPLAY_CHECK`` (``on``/``off``), else on."""
    return _switch(arg, ENV_REPLAY_CHECK)


def _switch(arg: bool | None, name: str) -> bool:
    if arg is not None:
        return bool(arg)
    env = os.environ.get(name, "").strip().lower()
    if not env:
        return True
    if env not in _SWITCHES:
        raise InputError(f"{name} must be on or off, got {env!r}")
    return _SWITCHES[env]


def _threshold_fix(source: str) -> str:
    """How to fix a bad threshold from ``source``."""
    if source == ENV_THRESHOLD:
        return f"; set {ENV_THRESHOLD} to a valid threshold, or unset it"
    return ""


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
