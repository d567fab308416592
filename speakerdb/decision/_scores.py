"""The scores a decision can be made by: each score normalisation is a strategy
in a registry.

A database chooses one (``speakerdb score-norm``), or a query does; one that
never chose decides by its encoder family's default
(:attr:`speakerdb.encoders._registry.EncoderFamily.default_score`). Raw cosines
are always kept in :attr:`~speakerdb.types.Match.score`; a normalised score goes
in ``normalized`` and decides. Each score has its own threshold.

A new normalisation is one :class:`ScoreNorm` subclass and one :func:`register`
call. It declares its name, what it means (``info`` and ``score-norm`` show
it), its default threshold, and how it scores: either from each query's nearest
speakers in the index (:meth:`ScoreNorm.rescore`, :meth:`ScoreNorm.claim`), or,
with ``needs_population``, from the whole enrolled population
(:meth:`ScoreNorm.matrix`). :mod:`speakerdb.decision._ranking` drives both.

Importing this module imports no numpy: the fast read path (``info``) resolves
the decision policy too. The strategies import their maths when they score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..config import DURATION_CAP_S, DURATION_REFERENCE_S, DURATION_SLOPE, parse_threshold
from ..errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from ..encoders._registry import EncoderFamily
    from ..types import Match
    from ._asnorm import Cohort

__all__ = [
    "AsNorm",
    "Cosine",
    "Cosines",
    "Margin",
    "MarginDuration",
    "ScoreNorm",
    "get_norm",
    "norm_names",
    "register",
]


@dataclass(frozen=True)  # no slots: building the class twice costs info's start-up
class Cosines:
    """Raw cosines ``(q, s)`` of queries against every enrolled template, with what a
    normalisation may need besides: the cohort (every enrolled embedding with its
    owner, whose owners index the template columns), AS-norm's cohort size, and each
    query clip's duration."""

    raw: np.ndarray
    queries: np.ndarray
    templates: np.ndarray
    cohort: Cohort
    top_n: int
    durations_s: Sequence[float] | np.ndarray | None = None


class ScoreNorm:
    """One kind of decision score. Subclasses set the class attributes and the scoring
    hooks their kind uses (see the module's docstring)."""

    #: The name a database, a query and the CLI choose it by.
    name: ClassVar[str]
    #: What the score is, in the words ``info`` and ``score-norm`` use.
    meaning: ClassVar[str]
    #: Scored against the whole enrolled population, not the index's nearest speakers.
    needs_population: ClassVar[bool] = False
    #: Needs each query clip's duration (calibration refuses a population without them).
    needs_durations: ClassVar[bool] = False

    @property
    def decides_by_cosine(self) -> bool:
        """True for the raw cosine itself: results then carry no normalised score."""
        return False

    @property
    def score_name(self) -> str:
        """What calibration and evaluation call these scores."""
        return self.name

    @property
    def label(self) -> str:
        """How identify's text output names the score."""
        return self.name

    def default_threshold(self, family: EncoderFamily, model: str) -> float:
        """The built-in threshold of these scores for ``model`` of ``family``: the family's
        own value for this score, else the model's cosine threshold (the scores are on
        the cosine's scale unless a subclass says otherwise)."""
        return family.score_thresholds.get(self.name, family.threshold(model))

    @property
    def threshold_bounds(self) -> tuple[float, float]:
        """The thresholds that mean something for these scores: beyond them every score
        or none reaches the threshold. Scores on the cosine's scale plus a margin lie in
        [-3, 3] (a cosine and its lead over another, each at most 2)."""
        return (-3.0, 3.0)

    @property
    def threshold_kind(self) -> str:
        """How a threshold of these scores is named in an error."""
        return f"a {self.score_name} threshold"

    def check_threshold(self, value: float | str, source: str) -> float:
        """``value`` as a threshold of these scores, from ``source`` (named by the error,
        with the fix): a finite number within :attr:`threshold_bounds`."""
        return parse_threshold(value, source, self.threshold_bounds, self.threshold_kind)

    def search_k(self, top_k: int) -> int:
        """How many nearest speakers a query needs from the index for ``top_k`` results."""
        return top_k

    def rescore(self, matches: tuple[Match, ...], duration_s: float | None) -> tuple[Match, ...]:
        """A query's nearest speakers (raw cosine, best first) with their scores."""
        raise NotImplementedError(f"{self.name} scores need the population")

    def claim(
        self, name: str, score: float, nearest: tuple[Match, ...], duration_s: float | None
    ) -> float | None:
        """The score of the claim that a query (cosine ``score`` to ``name``, ``nearest``
        its nearest speakers) is ``name``; ``None`` when the cosine itself decides."""
        raise NotImplementedError(f"{self.name} scores need the population")

    def matrix(self, cosines: Cosines) -> np.ndarray:
        """Scores ``(q, s)`` from the raw cosines of queries against every template."""
        raise NotImplementedError


class Cosine(ScoreNorm):
    """``none``: the raw cosine between the query and the template."""

    name = "none"
    meaning = "raw cosine"

    @property
    def decides_by_cosine(self) -> bool:
        return True

    @property
    def score_name(self) -> str:
        return "cosine"

    @property
    def label(self) -> str:
        return "score"

    def default_threshold(self, family: EncoderFamily, model: str) -> float:
        """The family's measured decision default for cosines, else the model's cosine
        threshold (:meth:`EncoderFamily.threshold`)."""
        return family.score_thresholds.get(self.name, family.threshold(model))

    @property
    def threshold_bounds(self) -> tuple[float, float]:
        return (-1.0, 1.0)

    @property
    def threshold_kind(self) -> str:
        return "a cosine"

    def rescore(self, matches: tuple[Match, ...], duration_s: float | None) -> tuple[Match, ...]:
        return matches

    def claim(
        self, name: str, score: float, nearest: tuple[Match, ...], duration_s: float | None
    ) -> float | None:
        return None

    def matrix(self, cosines: Cosines) -> np.ndarray:
        import numpy as np

        return np.asarray(cosines.raw, dtype=np.float64)


class Margin(ScoreNorm):
    """``margin``: the cosine plus its lead over the best *other* enrolled speaker
    (:func:`speakerdb.decision._norms.margin_scores`). A stranger's voice matches
    someone mostly by being close to several people at once; this penalises exactly
    that. It ranks speakers as the cosine does."""

    name = "margin"
    meaning = "cosine plus its lead over the best other speaker"

    def penalties(self, durations_s: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
        """What is subtracted from each of ``n`` queries' scores: nothing for the plain
        margin."""
        import numpy as np

        return np.zeros(n)

    def penalty(self, duration_s: float | None) -> float:
        """What is subtracted from every score of one query of ``duration_s`` seconds."""
        return float(self.penalties(None if duration_s is None else [duration_s], 1)[0])

    def search_k(self, top_k: int) -> int:
        # A margin needs the best other speaker: the top 2 hold it for every candidate.
        return max(top_k, 2)

    def rescore(self, matches: tuple[Match, ...], duration_s: float | None) -> tuple[Match, ...]:
        from ._norms import margin_matches

        return margin_matches(matches, penalty=self.penalty(duration_s))

    def claim(
        self, name: str, score: float, nearest: tuple[Match, ...], duration_s: float | None
    ) -> float | None:
        import numpy as np

        from ._norms import margin_scores

        others = [m.score for m in nearest if m.speaker != name][:1]
        margin = margin_scores(np.array([[score, *others]]))[0, 0]
        return float(margin - self.penalty(duration_s))

    def matrix(self, cosines: Cosines) -> np.ndarray:

        from ._norms import margin_scores

        penalties = self.penalties(cosines.durations_s, len(cosines.raw))
        return margin_scores(cosines.raw) - penalties[:, None]


class MarginDuration(Margin):
    """``margin-duration``: the margin minus a term that grows with the clip's length
    (:func:`speakerdb.decision._norms.duration_penalty`). A longer clip's embedding is
    cleaner and scores higher against everyone, strangers included, so a fixed bar
    lets long strangers in while it turns short genuine clips away; the term raises
    the bar with the length, as the quality-measure functions of speaker-verification
    calibration do. It depends on the query only, so it never changes the ranking."""

    name = "margin-duration"
    meaning = (
        "cosine plus its lead over the best other speaker, minus "
        f"{DURATION_SLOPE:g} x ln(clip seconds / {DURATION_REFERENCE_S:g}): longer clips must "
        "score higher"
    )
    needs_durations = True

    @property
    def threshold_bounds(self) -> tuple[float, float]:
        # The duration term takes at most SLOPE x ln(cap / reference) off a margin score.
        return (-3.0 - DURATION_SLOPE * math.log(DURATION_CAP_S / DURATION_REFERENCE_S), 3.0)

    def penalties(self, durations_s: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
        from ._norms import duration_penalty

        if durations_s is None or len(durations_s) != n:
            raise ValueError("margin-duration scores need one duration per query")
        return duration_penalty(durations_s)


class AsNorm(ScoreNorm):
    """``asnorm``: adaptive symmetric normalisation with the enrolled population as
    cohort (:mod:`speakerdb.decision._asnorm`)."""

    name = "asnorm"
    meaning = "AS-norm, in standard deviations of the enrolled cohort's scores"
    needs_population = True
    # In standard deviations, for a family that measured none: the equal-error-rate
    # thresholds on the shared corpus with the offline encoder were 1.22 for single
    # clips and 1.49 for items of 3 s or more (scripts/eval_table.py), but at 1.35
    # every stranger was let in (issue 11); the GE2E family's measured default is
    # in speakerdb.encoders._registry.
    DEFAULT_THRESHOLD: ClassVar[float] = 1.35

    @property
    def label(self) -> str:
        return "as-norm"

    @property
    def threshold_bounds(self) -> tuple[float, float]:
        # In standard deviations of cohort scores: a threshold of 50 (a score 50 spreads
        # above both cohort means) is one no genuine trial reaches.
        return (-50.0, 50.0)

    @property
    def threshold_kind(self) -> str:
        return "an AS-norm threshold (standard deviations)"

    def default_threshold(self, family: EncoderFamily, model: str) -> float:
        return family.score_thresholds.get(self.name, self.DEFAULT_THRESHOLD)

    def matrix(self, cosines: Cosines) -> np.ndarray:
        from ._asnorm import as_norm

        c = cosines
        return as_norm(c.raw, c.queries, c.templates, c.cohort, c.top_n)


_REGISTRY: dict[str, ScoreNorm] = {}


def register(norm: ScoreNorm) -> ScoreNorm:
    """Make ``norm`` choosable by its name (a later one of the same name replaces it)."""
    _REGISTRY[norm.name] = norm
    return norm


def norm_names() -> tuple[str, ...]:
    """Every registered score's name, in registration order."""
    return tuple(_REGISTRY)


def get_norm(name: str) -> ScoreNorm:
    """The score called ``name``; :class:`~speakerdb.errors.InputError` naming the choices
    when there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        choices = ", ".join(_REGISTRY)
        raise InputError(f"score normalisation must be one of {choices}, got {name!r}") from None


for _norm in (Cosine(), AsNorm(), Margin(), MarginDuration()):
    register(_norm)
