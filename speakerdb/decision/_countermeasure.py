"""The countermeasure slot: a pluggable scorer of presentation attacks (spoofs), fused into
identify and verify.

A speaker embedding says whose voice a clip sounds like, not whether a live person
is speaking: a recording, a synthetic voice or a voice conversion sound like the
person too. A countermeasure (for example a trained anti-spoofing model such as
AASIST, or a liveness check of the capture device) scores each query clip:

- :class:`Countermeasure` is the protocol: a ``name``, a ``threshold``, and
  ``score(clip) -> float``, higher meaning more likely *bona fide* (live speech).
  A score below the threshold is a spoof.
- :func:`register_countermeasure` makes one choosable by name (``SpeakerDB(countermeasure=NAME)``,
  ``SPEAKERDB_COUNTERMEASURE``, ``speakerdb countermeasure NAME``); an instance can be
  passed to :class:`~speakerdb.SpeakerDB` directly. None is used unless chosen.
- Fusion: each identify and verify clip is scored before its decision. A spoof is
  refused with ``outcome`` ``replay`` (a presentation attack, the outcome a replayed
  recording gets), the countermeasure named in the reason; nobody is named and no
  claim is accepted, whatever the voice scores. The countermeasure's name, score and
  verdict go with the result (:class:`~speakerdb.types.CountermeasureScore`) and into
  the audit log.

The one built in, ``bandwidth``, is a trivial real one: live speech captured at
16 kHz carries energy above 4 kHz (fricatives), a copy played through a telephone
line or resampled from 8 kHz carries none. Use it only where every microphone
captures the full band: the corpus's Asterisk prompts, telephone-band recordings
themselves, are 95% "spoofs" to it. It is an example of the slot, not a defence against
synthetic speech: that needs a trained model.

A voice should be one factor among two for access control: NIST SP 800-63B
(section 5.2.3) accepts a biometric only together with a physical authenticator,
never alone, and requires presentation attack detection with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from ..types import CountermeasureScore

if TYPE_CHECKING:
    from ..audio._decode import Clip

__all__ = [
    "BandwidthCountermeasure",
    "Countermeasure",
    "countermeasure_names",
    "get_countermeasure",
    "judge",
    "register_countermeasure",
]


@runtime_checkable
class Countermeasure(Protocol):
    """Scores how likely a clip is live speech (bona fide); below ``threshold``: a spoof.

    ``score`` takes a decoded 16 kHz mono :class:`~speakerdb.audio.Clip`, must be
    thread-safe, and returns a finite float. It should not raise for a clip that decoded.
    """

    name: str
    threshold: float

    def score(self, clip: Clip) -> float: ...


class BandwidthCountermeasure:
    """``bandwidth``: the share of the clip's power above 4 kHz, in dB; a clip with less
    than :attr:`threshold` there (nothing but the telephone band) is a spoof."""

    name = "bandwidth"
    #: dB of power above 4 kHz relative to the whole clip. Chosen on the shared corpus's
    #: fillets-cs-* speakers (3 dB above their telephone copies' highest, -69.7 dB) and
    #: reported on fillets-nl-* (scripts/eval_countermeasure.py): 1.3% of live clips
    #: flagged, 99.4% of telephone copies detected.
    threshold = -67.0
    _SPLIT_HZ = 4000.0

    def score(self, clip: Clip) -> float:
        x = np.asarray(clip.samples, np.float64)
        spectrum = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(x.size, 1 / 16000)
        total = float(spectrum.sum())
        if total <= 0:
            return -120.0
        high = float(spectrum[freqs >= self._SPLIT_HZ].sum())
        return max(10 * np.log10(max(high, 1e-30) / total), -120.0)


_REGISTRY: dict[str, Countermeasure] = {}


def register_countermeasure(countermeasure: Countermeasure) -> Countermeasure:
    """Make ``countermeasure`` choosable by its name (a later one of the name replaces it)."""
    if not isinstance(countermeasure, Countermeasure):
        raise InputError(f"{countermeasure!r} has no name, threshold and score(clip)")
    _REGISTRY[countermeasure.name] = countermeasure
    return countermeasure


def countermeasure_names() -> tuple[str, ...]:
    """Every registered countermeasure's name."""
    return tuple(_REGISTRY)


def get_countermeasure(name: str) -> Countermeasure:
    """The countermeasure called ``name``; :class:`InputError` naming the choices if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        choices = ", ".join(["none", *_REGISTRY])
        raise InputError(f"countermeasure must be one of {choices}, got {name!r}") from None


def judge(countermeasure: Countermeasure, clip: Clip) -> CountermeasureScore:
    """``countermeasure``'s score of ``clip`` and its verdict. A score that is not a finite
    number counts as a spoof: a broken countermeasure must not let a clip through."""
    try:
        value = float(countermeasure.score(clip))
    except (TypeError, ValueError):
        value = float("nan")
    spoof = not np.isfinite(value) or value < countermeasure.threshold
    return CountermeasureScore(countermeasure.name, value, float(countermeasure.threshold), spoof)


register_countermeasure(BandwidthCountermeasure())
