"""Who spoke when: the decision-free parts of ``segments``.

Windows of speech (:mod:`._windows`), their clustering into voices
(:mod:`._clustering`), the timeline of labelled segments that windows give
(:mod:`._timeline`), and RTTM (:mod:`._rttm`). Which voice is which enrolled
speaker is decided in :mod:`speakerdb.services._segments`, by the database's
decision policy; nothing here knows a threshold of a score.
"""

from ._clustering import Voices, agglomerate
from ._diarizer import Diarizer
from ._options import SegmentOptions
from ._rttm import rttm_lines, rttm_name
from ._timeline import Timeline
from ._windows import SpeechWindows

__all__ = [
    "Diarizer",
    "SegmentOptions",
    "SpeechWindows",
    "Timeline",
    "Voices",
    "agglomerate",
    "rttm_lines",
    "rttm_name",
]
