"""The parameters of ``segments``, with the defaults chosen on the tuning speakers.

The defaults were chosen with ``scripts/eval_segments.py --split tune`` (speakers
and conversations apart from those the README reports on).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["SegmentOptions"]


@dataclass(frozen=True, slots=True)
class SegmentOptions:
    """How a recording is cut into windows, and how windows are grouped into voices."""

    #: Seconds between the starts of consecutive windows (a multiple of 10 ms).
    hop_s: float = 0.5
    #: Seconds of audio handled at a time: memory is bounded by it, and the speech
    #: detector's levels are measured over it.
    block_s: float = 60.0
    #: Cosine between two windows' groups (average linkage) at which they are one voice.
    cluster_threshold: float = 0.84
    #: Cosine between a block's voice and one heard before at which they are one.
    link_threshold: float = 0.84
    #: Cosine between two voices named after no one at which they are one stranger.
    unknown_threshold: float = 0.75
    #: A window is embedded when at least this fraction of it is speech: windows that
    #: reach across a pause often hold two voices.
    min_speech: float = 0.8
    #: A voice heard in fewer windows than this is given to the nearest other voice.
    min_windows: int = 3

    def __post_init__(self) -> None:
        if not 0.01 <= self.hop_s <= 10 or round(self.hop_s * 100) != self.hop_s * 100:
            raise InputError(f"hop must be a multiple of 0.01 s in 0.01-10 s, got {self.hop_s}")
        if not 5.0 <= self.block_s <= 3600.0:
            raise InputError(f"block must be 5-3600 s, got {self.block_s}")
        for name in ("cluster_threshold", "link_threshold", "unknown_threshold"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} is a cosine in [-1, 1], got {getattr(self, name)}")
        if not 0.0 < self.min_speech <= 1.0 or self.min_windows < 1:
            raise InputError("min_speech must be in (0, 1] and min_windows at least 1")
