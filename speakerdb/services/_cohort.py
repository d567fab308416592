"""The cohort of outside voices: recordings of people who will never be enrolled.

It serves two things: AS-norm's cohort (:mod:`speakerdb.decision._asnorm`; each
voice's clips are cohort items owned by no one), and calibration's strangers, which
let a small site calibrate (:mod:`speakerdb.decision._calibration`). Each clip is
embedded with the database's encoder (recorded by the first import if nothing is
enrolled yet) and stored as its embedding, its voice's label, its length and the
hash of its audio, never the audio or the file's name. No search, identify or
verify ever answers with a cohort voice.

A clip enrolled as a speaker's, and a label that is an enrolled speaker's name, are
refused: a voice on both sides would be measured against itself. A clip the cohort
holds already is skipped, so importing a manifest again is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._names import clean_name
from .._vectors import l2_normalize
from ..audio._decode import Clip, ClipInput, load_clip, to_clip
from ..decision._population import CohortVoices
from ..errors import InputError, SpeakerDBError
from ..types import CohortVoice
from ._batch import BatchFailure, ManifestRow
from ._enroll_commit import record_encoder

if TYPE_CHECKING:
    from ..storage import Storage
    from ._model import ModelSlot

__all__ = ["COHORT_COLUMNS", "CohortReport", "CohortTools"]

log = logging.getLogger(__name__)

#: The manifest's label column (the first of these the header has), beside ``path``.
COHORT_COLUMNS = ("label", "speaker", "speaker_id")
# Clips embedded and committed together by an import.
_CHUNK = 32


@dataclass(frozen=True, slots=True)
class CohortReport:
    """What an import did: clips ``added``, clips ``skipped`` (in the cohort already),
    and ``failures`` (unreadable, enrolled as a speaker's, a label that is a speaker's)."""

    added: int
    skipped: tuple[BatchFailure, ...] = ()
    failures: tuple[BatchFailure, ...] = ()


class CohortTools:
    """The cohort of one database (``db.cohort``)."""

    def __init__(self, storage: Storage, slot: ModelSlot) -> None:
        self._storage = storage
        self._slot = slot

    def add(self, label: str, clips: Sequence[ClipInput]) -> int:
        """Add ``clips`` of one outside voice ``label``; return how many were new.
        Raises like an enrollment for a clip that cannot be used."""
        label = self._label(label)
        decoded = [to_clip(c) for c in clips]
        with self._storage.read() as snapshot:
            enrolled = snapshot.enrolled_hashes([c.sha256 for c in decoded])
        if enrolled:
            raise InputError(_enrolled_reason(next(iter(enrolled.values()))))
        return self._commit([(label, clip) for clip in decoded])

    def import_rows(
        self, rows: Iterable[ManifestRow], progress: Callable[[int], None] | None = None
    ) -> CohortReport:
        """Add the clips of a manifest (``read_manifest(path, COHORT_COLUMNS)``); a clip that
        fails is reported and the others go on. ``progress(n)`` as ``n`` clips are done."""
        advance = progress or (lambda n: None)
        rows = list(rows)
        added, skipped, failures = 0, [], []
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            ready, refused, known = self._decode(chunk)
            added += self._commit(ready) if ready else 0
            failures += refused
            skipped += known
            advance(len(chunk))
        log.info("cohort: +%d clip(s), %d skipped, %d failed", added, len(skipped), len(failures))
        return CohortReport(added, tuple(skipped), tuple(failures))

    def voices(self) -> list[CohortVoice]:
        """Each outside voice, by label, with how many clips of it are stored."""
        labels = self.embeddings().labels
        return [CohortVoice(label, labels.count(label)) for label in sorted(set(labels))]

    def embeddings(self) -> CohortVoices:
        """The cohort's embeddings with their labels and clip lengths (calibration, AS-norm)."""
        with self._storage.read() as snapshot:
            return snapshot.cohort()

    def clear(self) -> int:
        """Delete the whole cohort; return how many clips it held."""
        with self._storage.change() as change:
            removed = change.clear_cohort()
        log.info("cohort cleared: %d clip(s)", removed)
        return removed

    def _label(self, label: str) -> str:
        """The label, checked as a name is, and not an enrolled speaker's name."""
        label = clean_name(label)
        with self._storage.read() as snapshot:
            if label in snapshot.names():
                raise InputError(
                    f"{label!r} is an enrolled speaker: a cohort holds outside voices only; "
                    "give the voice another label"
                )
        return label

    def _decode(
        self, rows: Sequence[ManifestRow]
    ) -> tuple[list[tuple[str, Clip]], list[BatchFailure], list[BatchFailure]]:
        """The rows' decoded clips that can be added, those refused, and those known."""
        ready: list[tuple[str, Clip]] = []
        refused: list[BatchFailure] = []
        for row in rows:
            try:
                ready.append((self._label(row.speaker), load_clip(row.path)))
            except SpeakerDBError as exc:
                refused.append(BatchFailure(row.speaker, row.path, str(exc)))
        hashes = [clip.sha256 for _, clip in ready]
        with self._storage.read() as snapshot:
            enrolled = snapshot.enrolled_hashes(hashes)
            known = snapshot.cohort_hashes(hashes)
        refused += [
            BatchFailure(label, clip.source or "", _enrolled_reason(enrolled[clip.sha256]))
            for label, clip in ready
            if clip.sha256 in enrolled
        ]
        skipped = [
            BatchFailure(label, clip.source or "", "in the cohort already")
            for label, clip in ready
            if clip.sha256 in known and clip.sha256 not in enrolled
        ]
        new = [
            (label, c) for label, c in ready if c.sha256 not in enrolled and c.sha256 not in known
        ]
        return new, refused, skipped

    def _commit(self, clips: Sequence[tuple[str, Clip]]) -> int:
        """Embed and store ``(label, clip)`` pairs in one transaction; return how many
        were new."""
        embeddings = l2_normalize(self._slot.embed([clip for _, clip in clips]))
        encoder = self._slot.encoder()
        by_label: dict[str, list[int]] = {}
        for i, (label, _) in enumerate(clips):
            by_label.setdefault(label, []).append(i)
        with self._storage.change() as change:
            recorded = record_encoder(self._storage, change, encoder.info)
            added = sum(
                change.add_cohort(label, [clips[i][1] for i in rows], embeddings[rows])
                for label, rows in by_label.items()
            )
        if recorded is not None:
            self._slot.stored = recorded
        return added


def _enrolled_reason(speaker: str) -> str:
    return f"enrolled as {speaker!r}'s clip: a cohort holds outside voices only"
