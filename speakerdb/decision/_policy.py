"""The decision policy of a query, resolved once from every source.

Which score decides, at which threshold, and where that threshold came from are
resolved by :func:`resolve_policy` for one operation (``identify`` or ``verify``:
each has its own threshold) from, in order of precedence (as
:mod:`speakerdb.config` writes down):

1. the query's own ``threshold`` and ``score_norm``;
2. the threshold the database was opened with (``threshold=``);
3. ``SPEAKERDB_THRESHOLD``;
4. the stored settings (``set-threshold``, ``score-norm``, ``calibrate``): the
   operation's own threshold of the score, else one stored for both operations;
5. the defaults of the model's encoder family (:mod:`speakerdb.encoders._registry`)
   and of the score (:mod:`speakerdb.decision._scores`). Identify's default may
   depend on the number N of enrolled speakers (a family's ``identify_curves``): a
   policy resolved before N is known takes the strictest value, and
   :func:`sized` sets it once the search has counted them. It may also fall with the
   query's duration (the curve's ``fall``, the policy's ``duration_fall``):
   :func:`for_duration` takes it at each query's duration.

Only the built-in default falls with duration: a threshold from 1 to 4 (given, set,
stored or calibrated) is one bar for every query, exactly the value set.

A threshold from 1 to 3 is the threshold of whichever score decides, for both
operations, and it is checked against that score's bounds wherever it comes from
(a bad one is an :class:`~speakerdb.errors.InputError` naming its source and the
fix; a bad stored one a :class:`~speakerdb.errors.DatabaseError`).

Which score decides: the query's choice, else the database's, else raw cosine
when any cosine threshold was stored or a threshold was given (1 to 3 above)
(databases from before normalised scores keep deciding as they did, and a bare
threshold is a cosine: the policy's ``notice`` then says so), else the family's
default. ``set-threshold`` always stores the score it sets a threshold of, so
the rule only matters for older databases and bare thresholds.

Nothing here imports numpy or SQLAlchemy: ``speakerdb info`` resolves it on
the fast read path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .._stored import StoredSettings
from ..config import DEFAULT_TOP_N, ENV_THRESHOLD, MIN_COHORT_VOICES
from ..encoders._registry import fallen, family_of
from ..errors import DatabaseError, InputError
from ..types import DecisionPolicy
from ._scores import Cosine, ScoreNorm, get_norm

__all__ = [
    "OPERATIONS",
    "DecisionPolicy",
    "PolicySources",
    "ResolvedThreshold",
    "check_operation",
    "cohort_fallback",
    "default_threshold",
    "for_duration",
    "resolve_policy",
    "sized",
    "voice_policy",
]

#: The operations with thresholds of their own.
OPERATIONS = ("identify", "verify")


def check_operation(operation: str) -> str:
    """``operation`` if it is ``identify`` or ``verify``; else InputError naming both."""
    if operation not in OPERATIONS:
        raise InputError(f"operation must be identify or verify, got {operation!r}")
    return operation


@dataclass(frozen=True)  # no slots, as PolicySources below
class ResolvedThreshold:
    """A threshold, where it came from (``source``: argument, environment, database or
    ``default for MODEL``), and whether it is the model's built-in default
    (:func:`default_threshold`), which identify sets at the database's N (:func:`sized`)."""

    value: float
    source: str
    builtin_default: bool = False
    duration_fall: float = 0.0


@dataclass(frozen=True)  # no slots: building the class twice costs info's start-up
class PolicySources:
    """Everything a policy is resolved from but the query's own options."""

    #: The model the database is used with (its family gives the defaults).
    model: str
    #: What the database stores, read in one transaction.
    stored: StoredSettings
    #: The threshold the database was opened with, if any (a finite number, checked
    #: against the deciding score's bounds when a policy is resolved).
    threshold_arg: float | None = None
    #: Where ``SPEAKERDB_THRESHOLD`` is read from (a test may pass its own).
    environ: Mapping[str, str] | None = None
    #: How many speakers are enrolled, when known (identify's default depends on it).
    n_speakers: int | None = None

    def env_threshold(self) -> str | None:
        environ = os.environ if self.environ is None else self.environ
        return environ.get(ENV_THRESHOLD) or None

    def threshold(self, norm: ScoreNorm, operation: str = "identify") -> tuple[float, str]:
        """The threshold of ``norm`` scores for ``operation`` and where it came from:
        argument, environment, database or ``default for MODEL``."""
        chosen = self.threshold_choice(norm, operation)
        return chosen.value, chosen.source

    def threshold_choice(self, norm: ScoreNorm, operation: str = "identify") -> ResolvedThreshold:
        """:meth:`threshold`, saying whether it is the built-in default."""
        if self.threshold_arg is not None:
            return ResolvedThreshold(
                norm.check_threshold(self.threshold_arg, "argument"), "argument"
            )
        env = self.env_threshold()
        if env:
            return ResolvedThreshold(norm.check_threshold(env, ENV_THRESHOLD), "environment")
        stored = self.stored.threshold_for(check_operation(operation), norm.name)
        if stored is not None:
            return ResolvedThreshold(_checked_stored(norm, stored, operation), "database")
        return _default_choice(norm, self.model, operation, self.n_speakers)

    def cosine_threshold(self) -> tuple[float, str]:
        """The cosine threshold of identify and where it came from."""
        return self.threshold(Cosine(), "identify")

    def cosine_choice(self) -> ResolvedThreshold:
        """:meth:`cosine_threshold`, saying whether it is the built-in default."""
        return self.threshold_choice(Cosine(), "identify")

    def score(self, override: str | None = None) -> tuple[str, int]:
        """The score that decides (see the module's docstring) and AS-norm's cohort size."""
        top_n = self.stored.asnorm_top_n or DEFAULT_TOP_N
        chosen = override or self.stored.score_norm
        if chosen:
            return get_norm(chosen).name, top_n
        if self.threshold_arg is not None or self.env_threshold():
            return Cosine.name, top_n
        return self.stored_score(), top_n

    def stored_score(self) -> str:
        """The score the database decides by, arguments and environment aside: the one
        it chose, else cosine if it stores a cosine threshold, else the family's default."""
        if self.stored.score_norm:
            return get_norm(self.stored.score_norm).name
        if self.stored.any_cosine_threshold():
            return Cosine.name
        return get_norm(family_of(self.model).default_score).name


def resolve_policy(
    sources: PolicySources,
    threshold: float | str | None = None,
    score_norm: str | None = None,
    operation: str = "identify",
) -> DecisionPolicy:
    """The policy of one ``operation`` query with its own ``threshold`` and ``score_norm``
    (either may be ``None``)."""
    if threshold is not None and score_norm is None and sources.stored.score_norm is None:
        score_norm = Cosine.name  # a bare query threshold is a cosine, as the constructor's is
    name, top_n = sources.score(score_norm)
    norm = get_norm(name)
    if threshold is not None:
        chosen = ResolvedThreshold(norm.check_threshold(threshold, "argument"), "argument")
    else:
        chosen = sources.threshold_choice(norm, operation)
    notice = _cosine_notice(sources, name)
    return _policy(name, chosen, top_n, notice)


def cohort_fallback(
    sources: PolicySources, policy: DecisionPolicy, operation: str, voices: int
) -> DecisionPolicy:
    """The policy that decides instead of ``policy`` (a population score, AS-norm) when
    its cohort has only ``voices`` voices, fewer than :data:`MIN_COHORT_VOICES`: the
    model's default score, else the cosine, at its stored or default threshold for
    ``operation`` (a threshold given for AS-norm is not one of these), with a notice."""
    default = get_norm(family_of(sources.model).default_score)
    norm = get_norm(Cosine.name) if default.needs_population else default
    stored = sources.stored.threshold_for(check_operation(operation), norm.name)
    if stored is not None:
        chosen = ResolvedThreshold(_checked_stored(norm, stored, operation), "database")
    else:
        chosen = _default_choice(norm, sources.model, operation, sources.n_speakers)
    notice = (
        f"{policy.score_norm} needs a cohort of at least {MIN_COHORT_VOICES} voices besides "
        f"the claimed speaker's, and this database has {voices}: {norm.name} decides instead "
        f"(threshold {chosen.value:.4f}, {chosen.source}); enroll more speakers, or the "
        "operator imports outside voices (`speakerdb cohort import`)"
    )
    return _policy(norm.name, chosen, policy.top_n, notice)


def default_threshold(
    norm: ScoreNorm, model: str, operation: str, n_speakers: int | None = None
) -> float:
    """The built-in threshold of ``norm`` scores for ``operation`` with ``model``: for
    identify, the family's curve at ``n_speakers`` where it has one for the score (the
    strictest when N is not known), else the score's fixed default; for identify that is
    the bar of a 0.5 s query where it falls with duration (:func:`default_fall`)."""
    family = family_of(model)
    curve = family.identify_curves.get(norm.name) if operation == "identify" else None
    if curve is None:
        return norm.default_threshold(family, model)
    return curve.at(n_speakers)


def default_fall(norm: ScoreNorm, model: str, operation: str) -> float:
    """How far ``norm``'s built-in ``operation`` threshold with ``model`` falls per
    ``ln(d / 0.5 s)`` of the query's duration (0: it does not)."""
    if operation != "identify":
        return 0.0
    curve = family_of(model).identify_curves.get(norm.name)
    return 0.0 if curve is None else curve.fall


def for_duration(policy: DecisionPolicy, duration_s: float | None) -> DecisionPolicy:
    """``policy`` for one query of ``duration_s`` seconds: a threshold that falls with
    duration (``duration_fall``) taken at it, with ``duration_s`` recorded; any other
    policy, or an unknown duration, as it is. Take it once per query, after :func:`sized`."""
    if not policy.duration_fall or duration_s is None:
        return policy
    threshold = fallen(policy.threshold, policy.duration_fall, duration_s)
    return replace(policy, threshold=threshold, duration_s=duration_s)


def sized(policy: DecisionPolicy, model: str, n_speakers: int) -> DecisionPolicy:
    """``policy`` for a database of ``n_speakers``: an identify policy at its model's
    built-in default threshold (:attr:`DecisionPolicy.builtin_default`) takes the default
    at that N (:func:`default_threshold`); any other policy is returned as it is,
    whatever its ``source`` says."""
    if not policy.builtin_default:
        return policy
    norm = get_norm(policy.score_norm)
    return replace(policy, threshold=default_threshold(norm, model, "identify", n_speakers))


def _default_choice(
    norm: ScoreNorm, model: str, operation: str, n_speakers: int | None
) -> ResolvedThreshold:
    """The built-in default (:func:`default_threshold`), the one place that names it so."""
    value = default_threshold(norm, model, operation, n_speakers)
    fall = default_fall(norm, model, operation)
    return ResolvedThreshold(value, f"default for {model}", True, fall)


def _policy(name: str, chosen: ResolvedThreshold, top_n: int, notice: str | None) -> DecisionPolicy:
    return DecisionPolicy(
        name,
        chosen.value,
        chosen.source,
        top_n,
        notice,
        builtin_default=chosen.builtin_default,
        duration_fall=chosen.duration_fall,
    )


def _cosine_notice(sources: PolicySources, name: str) -> str | None:
    """Why raw cosine decides on a database whose model decides by another score by default."""
    default = get_norm(family_of(sources.model).default_score).name
    if name != Cosine.name or default == Cosine.name or sources.stored.score_norm:
        return None
    return (
        f"raw cosine decides, not {default} (this model's default): a cosine threshold was "
        "given or stored and the database never chose a score; a score given with the "
        "threshold, or the operator's `speakerdb score-norm` for the database, chooses one"
    )


def _checked_stored(norm: ScoreNorm, value: float, operation: str) -> float:
    try:
        return norm.check_threshold(value, "the database")
    except InputError as exc:
        raise DatabaseError(
            f"{exc}; store it again with `speakerdb set-threshold T --score-norm {norm.name} "
            f"--for {operation}`"
        ) from None


#: The cosine at which ``segments`` names a voice, by encoder family: chosen on the
#: tuning speakers of ``scripts/eval_segments.py`` (GE2E: enrolled voices scored 0.82
#: and up, strangers 0.66 and below; 0.75 is between them). A family without one uses
#: its clip threshold.
VOICE_THRESHOLDS = {"resemblyzer": 0.75}


def voice_policy(
    sources: PolicySources, threshold: float | str | None = None, score_norm: str | None = None
) -> DecisionPolicy:
    """The policy that names a recording's voices (``segments``): the query's own options
    as :func:`resolve_policy` has them, else raw cosine at the family's voice threshold
    (:data:`VOICE_THRESHOLDS`).

    A voice is the mean of many windows, often a minute of speech: the thresholds of
    identify and verify, stored or default, were fitted to clips of a few seconds, and
    their normalised scores' duration terms too, so they do not carry over.
    """
    if threshold is not None or score_norm is not None:
        return resolve_policy(sources, threshold, score_norm)
    family = family_of(sources.model)
    value = VOICE_THRESHOLDS.get(family.name)
    if value is None:
        value = Cosine().default_threshold(family, sources.model)
    source = f"default for segments with {sources.model}"
    return DecisionPolicy(Cosine.name, value, source, sources.score()[1])
