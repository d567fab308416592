"""Encoder families: what speakerdb knows about each kind of speaker encoder.

Everything that depends on which encoder made a database's embeddings is
declared by its family, here, instead of being checked by model name where it
is used: the threshold that was measured for it, the score a database on it
decides by when it never chose one, the default thresholds of normalised
scores, whether long audio goes to it in windows (:mod:`speakerdb.encoders._frontend`),
how a model name is recorded, and how the model is loaded.

A new family is one :class:`EncoderFamily` subclass and one entry in
:data:`FAMILIES`, before the x-vector family, which claims every model no
other family does. Nothing heavy is imported here: ``speakerdb list`` and
``info`` ask for defaults too.
A family names its loader as ``"module:function"``, imported only when a model
is loaded: the implementations import ``config`` themselves, and the registry
must not depend on them.
An export folder (:mod:`speakerdb.encoders._exportfile`) is no family of its own:
it is its original model, recorded and defaulted as that model.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..config import DEFAULT_MODEL, DURATION_CAP_S, DURATION_REFERENCE_S, FALLBACK_THRESHOLD
from ._exportfile import exported_identity

if TYPE_CHECKING:
    from ._protocol import Encoder

__all__ = [
    "FAMILIES",
    "EncoderFamily",
    "GE2EFamily",
    "ThresholdCurve",
    "XVectorFamily",
    "default_threshold",
    "fallen",
    "family_of",
    "normalize_model_name",
]

#: Longest stretch of audio given at once to a family that windows long audio, in s.
WINDOW_S = 30.0

_EMPTY: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ThresholdCurve:
    """An identify threshold that depends on the number N of enrolled speakers,
    ``a + b / N``, with N held within [``low``, ``high``].

    A stranger's identify score is the best of N; under a margin score it falls as N
    grows (more speakers leave a smaller lead over the best other), so a fixed bar
    that keeps strangers out of a 3-person database turns away most enrolled people
    of a 10-person one. ``high`` is the largest N the curve was reported on, for
    voices it was not chosen on: beyond it the threshold stays at its value there
    (calibrate a larger database, :mod:`speakerdb.decision._calibration`).
    """

    a: float
    b: float
    low: int = 2
    high: int = 10
    #: How far the threshold falls per unit of ``ln(d / 0.5 s)`` for a query of ``d``
    #: seconds (clamped as margin-duration's duration term is, to [0.5 s, 30 s]); 0: one
    #: bar for every duration. At most the score's own duration slope, so that padding a
    #: clip with silence never lowers the bar it must reach.
    fall: float = 0.0

    def at(self, n_speakers: int | None, duration_s: float | None = None) -> float:
        """The threshold at ``n_speakers`` enrolled speakers for a query of
        ``duration_s`` seconds; when N is not known, the strictest over [``low``,
        ``high``]; when the duration is not known, the bar of the shortest (0.5 s)."""
        if n_speakers is None:
            base = max(self._value(self.low), self._value(self.high))
        else:
            base = self._value(min(max(n_speakers, self.low), self.high))
        return fallen(base, self.fall, duration_s)

    def _value(self, n: int) -> float:
        # Rounded as info shows it, so the threshold shown is the one that decides.
        return round(self.a + self.b / n, 4)


def fallen(threshold: float, fall: float, duration_s: float | None) -> float:
    """``threshold`` (the bar of a 0.5 s query) for a query of ``duration_s`` seconds when
    it falls by ``fall x ln(d / 0.5 s)``, ``d`` clamped to [0.5 s, 30 s] as
    margin-duration's duration term is; ``threshold`` itself without a fall or a duration."""
    if duration_s is None or not fall:
        return threshold
    seconds = min(max(duration_s, DURATION_REFERENCE_S), DURATION_CAP_S)
    # Rounded as info shows it, so the threshold shown is the one that decides.
    return round(threshold - fall * math.log(seconds / DURATION_REFERENCE_S), 4)


class EncoderFamily:
    """The defaults and loader of one kind of encoder. Subclasses set the class
    attributes and :meth:`claims` and :meth:`load`."""

    #: A short name for messages and tests.
    name: str = ""
    #: Cosine thresholds measured for models of this family, by recorded model name.
    measured_thresholds: Mapping[str, float] = _EMPTY
    #: The score a database on this family decides by when it never chose one.
    default_score: str = "none"
    #: Default thresholds of normalised scores, by score name (the others fall back
    #: to the score's own default; see :mod:`speakerdb.decision._scores`).
    score_thresholds: Mapping[str, float] = _EMPTY
    #: Identify's default thresholds that depend on the population size, by score name
    #: (they take precedence over :attr:`score_thresholds` for identify; verify, one
    #: claim, keeps the fixed one).
    identify_curves: Mapping[str, ThresholdCurve] = MappingProxyType({})
    #: Long audio is embedded in windows of at most this many seconds; ``None``: the
    #: encoder bounds its memory itself and gets the whole clip.
    window_s: float | None = WINDOW_S
    #: ``"module:function"`` that loads a model: ``function(model, backend, **options)``.
    loader: str = ""

    def claims(self, model: str) -> bool:
        """Whether ``model`` (as given or as recorded) belongs to this family."""
        raise NotImplementedError

    def normalize(self, model: str) -> str:
        """The name under which ``model`` is recorded in a database."""
        return model

    def load(self, model: str, *, backend: str, **options: object) -> Encoder:
        """Load ``model`` on the resolved ``backend`` with the loader ``options``
        (``revision``, ``local_files_only``, ``cache_dir``) by :attr:`loader`."""
        module, _, function = self.loader.partition(":")
        load = getattr(importlib.import_module(module), function)
        encoder: Encoder = load(model, backend, **options)
        return encoder

    def measured_threshold(self, model: str) -> float | None:
        """The cosine threshold measured for ``model``, if one was."""
        return self.measured_thresholds.get(model)

    def threshold(self, model: str) -> float:
        """The built-in cosine threshold of ``model``: measured, else the fallback."""
        measured = self.measured_threshold(model)
        return FALLBACK_THRESHOLD if measured is None else measured


class GE2EFamily(EncoderFamily):
    """The offline GE2E encoder shipped in the ``resemblyzer`` wheel
    (:mod:`speakerdb.encoders._ge2e`)."""

    name = "resemblyzer"
    # The cosine scale of the enrollment quality gates (services/_quality.py): between
    # the equal-error-rate thresholds measured on the shared real-speech corpus with
    # 3-clip templates, 0.70 for single clips and 0.76 for items of 3 s or more
    # (scripts/eval_accuracy.py). Deciding by cosine uses score_thresholds["none"].
    measured_thresholds = MappingProxyType({"resemblyzer": 0.75})
    # The evaluation table (scripts/eval_table.py) measured it: margin-duration
    # beats raw cosine on every column and more than halves the strangers let in.
    default_score = "margin-duration"
    # Every decision default keeps strangers out: each is the lowest threshold at which
    # at most 1% of strangers' single clips and 1% of their items of 3 s or more are
    # named, at every population size of 2 to 5 enrolled speakers and carried to 10,
    # with clips of under 0.5 s of net speech answered not_enough_speech, chosen on 6
    # of the shared corpus's 11 speakers (fold A of scripts/eval_open_set.py). These
    # are verify's, and identify's for every score but margin-duration (whose identify
    # default follows N: identify_curves below). AS-norm decides only with a cohort of at least
    # MIN_COHORT_VOICES other voices (speakerdb.config); its 3.35 (standard deviations)
    # lets in at most 1% of fold A's strangers' single clips at every such cohort size
    # (verify claims, scripts/eval_asnorm_cohort.py); reported on fold B, it lets in
    # 0.0-2.7% of strangers' single clips and 0.0-3.5% of their items of 3 s or more at
    # 3 to 9 cohort voices, and turns away 37-49% of genuine single clips.
    # Margin-duration's 0.896 was chosen again so (0.8958) when clips came to be
    # embedded from their words and up to 0.5 s either side (scripts/eval_speech_span.py).
    score_thresholds = MappingProxyType(
        {"none": 0.813, "margin": 0.998, "margin-duration": 0.896, "asnorm": 3.35}
    )
    # Identify's margin-duration threshold depends on N and falls with the query's
    # duration d: a + b / N - fall x ln(d / 0.5 s) (scripts/eval_open_set.py
    # --duration-aware, on fold A). For each fall of 0-0.057 (the score's own slope:
    # padding a clip with silence never lowers its bar) and each speech minimum: at
    # each N of 2 to 5, the lowest threshold naming at most 1% of strangers' single
    # clips and 1% of their items of 3 s or more (their scores raised by the fall's
    # term); a + b / N fitted to them by least squares and raised to lie on or above
    # each; the pair that identifies most of fold A's items correctly. Held from N = 10,
    # the largest N reported on voices it was not chosen on. A fall was first chosen on
    # whole clips (0.9016 + 0.0031 / N, fall 0.01) and passed a pre-registered test on
    # 13 unseen voices (scripts/eval_long_queries.py); these values are the same rule's
    # after clips came to be embedded and timed from their words and up to 0.5 s either
    # side (fall 0.01, per-N 0.890, 0.904, 0.896, 0.886; scripts/eval_speech_span.py,
    # whose pre-registered test they passed: queries padded with 0.5-3 s of silence,
    # strangers, fold B, each speaker left out). The README's "Choosing a threshold" has
    # the figures and caveats.
    identify_curves = MappingProxyType(
        {"margin-duration": ThresholdCurve(0.9029, 0.0037, fall=0.01)}
    )
    # It bounds its memory itself (1.6 s partials, 64 at a time); windows would only
    # change its long-clip embeddings a little (cosine 0.9995 to whole-clip ones).
    window_s = None
    loader = "speakerdb.encoders._ge2e:load_ge2e"

    def claims(self, model: str) -> bool:
        return model == "resemblyzer"


class XVectorFamily(EncoderFamily):
    """Transformers x-vector models, from the hub or a local folder; it claims every
    model no other family claims. Without measurements a model keeps raw cosine and
    its model card's threshold."""

    name = "x-vector"
    # 0.89 is the threshold the default model's card suggests (and calls dataset-dependent).
    measured_thresholds = MappingProxyType({DEFAULT_MODEL: 0.89})
    loader = "speakerdb.encoders._backends:load_xvector"

    def claims(self, model: str) -> bool:
        return True

    def normalize(self, model: str) -> str:
        # A local folder is recorded by its absolute path, so that it names one model
        # wherever the command runs.
        path = Path(model).expanduser()
        return str(path.resolve()) if path.is_dir() else model


#: Every family, the first that claims a model wins; the x-vector family comes last.
FAMILIES: tuple[EncoderFamily, ...] = (GE2EFamily(), XVectorFamily())


def family_of(model: str) -> EncoderFamily:
    """The family of ``model`` (as given or as recorded); an export folder's is its
    original model's."""
    identity = exported_identity(model)
    if identity is not None:
        model = identity.model
    return next(family for family in FAMILIES if family.claims(model))


def normalize_model_name(model: str) -> str:
    """The name under which ``model`` is recorded (an x-vector model's local directory
    becomes absolute; an export folder is recorded as the model it was exported from)."""
    identity = exported_identity(model)
    if identity is not None:
        return identity.model
    return family_of(model).normalize(model)


def default_threshold(model: str) -> float:
    """The built-in cosine threshold for ``model``: the model's known value or the fallback."""
    return family_of(model).threshold(model)
