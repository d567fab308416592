"""The speech-amount rule (``outcome`` ``not_enough_speech``): a slot of
:mod:`speakerdb.services._checks`.

A clip with less net speech (:func:`speakerdb.audio.net_speech_s`) than
:data:`speakerdb.config.MIN_QUERY_SPEECH_S` is answered ``not_enough_speech``: it is
neither given a name nor rejected, and the caller asks for a longer clip. Short
clips are where strangers get in (their embeddings scatter), so a secure decision
needs some speech; how much was measured on tuning speakers only
(``scripts/eval_open_set.py``; the value's provenance is in :mod:`speakerdb.config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..audio._vad import net_speech_s
from ..config import MIN_QUERY_SPEECH_S
from ..types import Outcome
from ._checks import Verdict

if TYPE_CHECKING:
    from ..storage import Storage
    from ._checks import Query, QueryCheck
    from ._settings import Settings

__all__ = ["SpeechAmount", "speech_checks"]


@dataclass(frozen=True, slots=True)
class SpeechAmount:
    """``not_enough_speech`` for a clip with under ``minimum_s`` seconds of net speech."""

    minimum_s: float = MIN_QUERY_SPEECH_S

    def check(self, query: Query) -> Verdict | None:
        speech = net_speech_s(query.clip.samples)
        if speech >= self.minimum_s:
            return None
        return Verdict(
            Outcome.NOT_ENOUGH_SPEECH,
            f"the clip holds {speech:.2f} s of speech, at least {self.minimum_s:g} s is "
            "needed for a secure decision; record the person speaking for longer",
        )

    def decided(self, query: Query, outcome: Outcome) -> None:
        """Nothing to remember: the rule looks at each clip alone."""


def speech_checks(storage: Storage, settings: Settings) -> tuple[QueryCheck, ...]:
    """The speech-amount check of a database (the same for every database)."""
    return (SpeechAmount(),)
