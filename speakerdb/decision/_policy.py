"""The decision policy of a query, resolved once from every source.

Which score decides, at which threshold, and where that threshold came from are
resolved by :func:`resolve_policy` from, in order of precedence (as
:mod:`speakerdb.config` writes down):

1. the query's own ``threshold`` and ``score_norm``;
2. the threshold the database was opened with (a cosine; ``threshold=``, ``--threshold``);
3. ``SPEAKERDB_THRESHOLD`` (a cosine);
4. the stored settings (``set-threshold``, ``score-norm``, ``calibrate``);
5. the defaults of the model's encoder family (:mod:`speakerdb.encoders._registry`)
   and of the score (:mod:`speakerdb.decision._scores`).

Which score decides: the query's choice, else the database's, else raw cosine
when any cosine threshold was given (1 to 4 above: a cosine threshold means a
cosine, so databases from before normalised scores keep deciding as they did),
else the family's default. A query threshold without a score, on a database
that never chose one, is a cosine too. A normalised score's threshold comes
from the query, else the database, else its default: a cosine threshold from
2 or 3 is not one.

Nothing here imports numpy or SQLAlchemy: ``speakerdb info`` resolves it on
the fast read path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._stored import StoredSettings
from ..config import DEFAULT_TOP_N, ENV_THRESHOLD, parse_threshold
from ..encoders._registry import family_of
from ..types import DecisionPolicy
from ._scores import Cosine, get_norm

__all__ = ["DecisionPolicy", "PolicySources", "resolve_policy", "voice_policy"]


@dataclass(frozen=True)  # no slots: building the class twice costs info's start-up
class PolicySources:
    """Everything a policy is resolved from but the query's own options."""

    #: The model the database is used with (its family gives the defaults).
    model: str
    #: What the database stores, read in one transaction.
    stored: StoredSettings
    #: The threshold the database was opened with, if any (a checked cosine).
    threshold_arg: float | None = None
    #: Where ``SPEAKERDB_THRESHOLD`` is read from (a test may pass its own).
    environ: Mapping[str, str] | None = None

    def env_threshold(self) -> str | None:
        environ = os.environ if self.environ is None else self.environ
        return environ.get(ENV_THRESHOLD) or None

    def cosine_threshold(self) -> tuple[float, str]:
        """The cosine threshold and where it came from: argument, environment, database
        or ``default for MODEL``."""
        if self.threshold_arg is not None:
            return self.threshold_arg, "argument"
        env = self.env_threshold()
        if env:
            return parse_threshold(env, ENV_THRESHOLD), "environment"
        if self.stored.threshold is not None:
            return self.stored.threshold, "database"
        family = family_of(self.model)
        return Cosine().default_threshold(family, self.model), f"default for {self.model}"

    def score(self, override: str | None = None) -> tuple[str, int]:
        """The score that decides (see the module's docstring) and AS-norm's cohort size."""
        top_n = self.stored.asnorm_top_n or DEFAULT_TOP_N
        chosen = override or self.stored.score_norm
        if chosen:
            return get_norm(chosen).name, top_n
        if (
            self.stored.threshold is not None
            or self.threshold_arg is not None
            or self.env_threshold()
        ):
            return Cosine.name, top_n
        return get_norm(family_of(self.model).default_score).name, top_n


def resolve_policy(
    sources: PolicySources, threshold: float | str | None = None, score_norm: str | None = None
) -> DecisionPolicy:
    """The policy of one query with its own ``threshold`` and ``score_norm`` (either may
    be ``None``)."""
    if threshold is not None and score_norm is None and sources.stored.score_norm is None:
        score_norm = Cosine.name  # a bare query threshold is a cosine, as the constructor's is
    name, top_n = sources.score(score_norm)
    norm = get_norm(name)
    if threshold is not None:
        value, source = norm.check_threshold(threshold, "argument"), "argument"
    elif norm.decides_by_cosine:
        value, source = sources.cosine_threshold()
    else:
        value, source = _stored_or_default(sources, name)
    return DecisionPolicy(name, value, source, top_n)


def _stored_or_default(sources: PolicySources, name: str) -> tuple[float, str]:
    stored = sources.stored.norm_threshold(name)
    if stored is not None:
        return stored, "database"
    model = sources.model
    return get_norm(name).default_threshold(family_of(model), model), f"default for {model}"


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
