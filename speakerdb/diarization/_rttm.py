"""RTTM, the diarization field's file format: one ``SPEAKER`` line per segment.

``SPEAKER <file> 1 <start> <duration> <NA> <NA> <label> <NA> <NA>``, with times
in seconds to the millisecond. RTTM fields are separated by spaces, so a label
or file name writes a space as ``%20`` (and ``%`` as ``%25``, so that it reads back).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..types import Segment

__all__ = ["rttm_lines", "rttm_name"]


def rttm_name(text: str) -> str:
    """``text`` as one RTTM field: ``%`` and whitespace percent-encoded."""
    out = text.replace("%", "%25")
    for char in (" ", "\t", "\n", "\r"):
        out = out.replace(char, f"%{ord(char):02X}")
    return out or "NA"


def rttm_lines(segments: Iterable[Segment], file_id: str) -> Iterator[str]:
    """The RTTM line of each segment of recording ``file_id`` (its file stem)."""
    name = rttm_name(file_id)
    for segment in segments:
        duration = segment.end - segment.start
        yield (
            f"SPEAKER {name} 1 {segment.start:.3f} {duration:.3f} <NA> <NA> "
            f"{rttm_name(segment.label)} <NA> <NA>"
        )
