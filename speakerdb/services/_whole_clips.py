"""The warning that a database holds voiceprints of whole clips, logged once per process
and database on its first identify or verify.

An older speakerdb embedded whole clips; queries are now embedded from their words and
up to 0.5 s either side (:attr:`speakerdb.audio.Clip.spoken`). Where the enrollment clips
had silence around the words, the two no longer sound alike: on the shared corpus with 1 s
of silence either side of each enrollment clip, identify named the right speaker for 22%
of fold B's single clips at N = 10 instead of 44% (``scripts/eval_upgrade_mismatch.py``;
on trimmed clips it made no difference). Nothing else tells a user who does not run
``info``, so it is a warning; once per process, so a service logs it once and a command
line once per run, and never per query.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..storage._describe import whole_clip_notice

if TYPE_CHECKING:
    from ..storage import Storage
    from ..types import EncoderInfo

__all__ = ["WholeClipWarning"]

log = logging.getLogger(__name__)

_warned: set[str] = set()
_lock = threading.Lock()


class WholeClipWarning:
    """Logs :func:`~speakerdb.storage._describe.whole_clip_notice` once for a database."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._checked = False

    def check(self, encoder: EncoderInfo | None) -> None:
        """On the first call only (one read): warn if the database holds voiceprints of
        whole clips and no other object of this process has warned about it."""
        if self._checked:
            return
        self._checked = True
        where = str(self._storage.path)
        with _lock:
            if where in _warned:
                return
            _warned.add(where)
        with self._storage.read() as snapshot:
            notice = whole_clip_notice(snapshot.whole_clip_speakers(), encoder)
        if notice is not None:
            log.warning("%s: %s", where, notice)
