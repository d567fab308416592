"""Bulk enrollment from a CSV manifest.

A manifest is a CSV file with a header row holding a ``speaker`` column
(``speaker_id`` is accepted too) and a ``path`` column; other columns are
ignored. Relative paths are resolved against the manifest's folder.

A clip that cannot be enrolled is reported in :class:`BatchReport.failures`
with its reason and does not stop the others. Each speaker's usable clips are
enrolled in one transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .._names import clean_name
from ..audio._decode import Clip, load_clip
from ..errors import InputError, SpeakerDBError
from ..types import Enrollment

__all__ = [
    "BatchFailure",
    "BatchReport",
    "Decoder",
    "ManifestRow",
    "by_speaker",
    "collect",
    "enroll_batch",
    "read_manifest",
]

SPEAKER_COLUMNS = ("speaker", "speaker_id")


class Enroller(Protocol):
    """What a batch needs of a database: :class:`~speakerdb.SpeakerDB` is one."""

    def enroll_many(
        self,
        groups: Iterable[tuple[str, Sequence[Clip]]],
        *,
        force: bool = False,
        keep_audio: bool = False,
    ) -> Iterator[tuple[str, Enrollment | SpeakerDBError]]: ...

    def find_enrolled(self, clips: Sequence[Clip]) -> dict[str, str]: ...


class Finder(Protocol):
    """What a :class:`Decoder` needs of a database."""

    def find_enrolled(self, clips: Sequence[Clip]) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class ManifestRow:
    speaker: str
    path: str
    line: int


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """A clip that was not enrolled, and why."""

    speaker: str
    source: str
    reason: str
    #: The library error that refused the clip, if one did: a front end spells its fix
    #: (:meth:`~speakerdb.errors.SpeakerDBError.spelled`). Not part of the JSON document.
    error: SpeakerDBError | None = field(
        default=None, compare=False, repr=False, metadata={"json": False}
    )


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a bulk enrollment did. ``skipped`` holds clips that were enrolled already
    for the same speaker (running a manifest again is therefore harmless)."""

    enrollments: tuple[Enrollment, ...]
    failures: tuple[BatchFailure, ...]
    skipped: tuple[BatchFailure, ...] = ()

    @property
    def n_enrolled(self) -> int:
        return sum(len(e.added) for e in self.enrollments)


def read_manifest(
    path: str | Path, label_columns: Sequence[str] = SPEAKER_COLUMNS
) -> list[ManifestRow]:
    """Read ``speaker,path`` rows (the first of ``label_columns`` the header has names
    each row's speaker); raise :class:`InputError` naming what is wrong."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            column = _speaker_column(reader.fieldnames, path, label_columns)
            return [_row(r, column, path.parent, reader.line_num) for r in reader]
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV manifest ({exc})") from exc


def _speaker_column(fields: Iterable[str] | None, path: Path, wanted: Sequence[str]) -> str:
    names = list(fields or [])
    column = next((c for c in wanted if c in names), None)
    if column is None or "path" not in names:
        raise InputError(
            f"{path}: the header must name a {wanted[0]!r} and a 'path' column, got {names}"
        )
    return column


def _row(raw: dict[str, str], column: str, base: Path, line: int) -> ManifestRow:
    clip = (raw.get("path") or "").strip()
    resolved = str(base / clip) if clip and not Path(clip).is_absolute() else clip
    return ManifestRow(speaker=(raw.get(column) or ""), path=resolved, line=line)


def enroll_batch(
    db: Enroller,
    rows: Iterable[ManifestRow],
    progress: Callable[[int], None] | None = None,
    *,
    force: bool = False,
    keep_audio: bool = False,
) -> BatchReport:
    """Enroll every row; ``progress(n)`` is called as each ``n`` clips are done.

    The next speaker's clips are decoded in a background thread while the model
    embeds the current one's, and speakers are committed several at a time
    (:meth:`SpeakerDB.enroll_many`). ``force`` enrolls what the quality gates
    would refuse (see :mod:`speakerdb.services._quality`); ``keep_audio`` keeps the
    clips' audio, sealed (:mod:`speakerdb.services._sealing`).
    """
    advance = progress or (lambda n: None)
    decoder = Decoder(db, advance)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="speakerdb-decode") as pool:
        groups = _prefetched(pool, decoder, by_speaker(rows), advance)
        return collect(db.enroll_many(groups, force=force, keep_audio=keep_audio), decoder)


def collect(
    outcomes: Iterable[tuple[str, Enrollment | SpeakerDBError]], decoder: Decoder
) -> BatchReport:
    """The report of a batch: the ``outcomes`` of enrolling what ``decoder`` decoded."""
    enrollments: list[Enrollment] = []
    refused: list[BatchFailure] = []
    for speaker, outcome in outcomes:
        clips = decoder.clips.pop(speaker)
        if isinstance(outcome, SpeakerDBError):
            refused += [BatchFailure(speaker, c.source or "", str(outcome), outcome) for c in clips]
        else:
            enrollments.append(outcome)
    failures = (*decoder.failures, *refused)
    return BatchReport(tuple(enrollments), failures, tuple(decoder.skipped))


def by_speaker(rows: Iterable[ManifestRow]) -> dict[str, list[ManifestRow]]:
    """The rows grouped by speaker, in the order speakers first appear."""
    groups: dict[str, list[ManifestRow]] = {}
    for row in rows:
        groups.setdefault(row.speaker, []).append(row)
    return groups


def _prefetched(
    pool: ThreadPoolExecutor,
    decoder: Decoder,
    groups: dict[str, list[ManifestRow]],
    advance: Callable[[int], None],
) -> Iterator[tuple[str, list[Clip]]]:
    """Each speaker's decoded clips, the next speaker's decoding while this one is used.

    Decoding (soundfile, soxr) releases the GIL, so it overlaps the model's work. The
    consumer asks for the next speaker once this one's clips are embedded and checked,
    so that is when progress advances: commits come only every few dozen speakers, and
    a bar that waited for them sat at 0 % and then jumped to 100 %.
    """
    items = list(groups.items())
    ahead: Future[list[Clip]] | None = None
    for k, (speaker, group) in enumerate(items):
        clips = ahead.result() if ahead is not None else decoder(speaker, group)
        ahead = pool.submit(decoder, *items[k + 1]) if k + 1 < len(items) else None
        if clips:
            decoder.clips[speaker] = clips
            yield speaker, clips
            advance(len(clips))


class Decoder:
    """Decodes one speaker's rows at a time, keeping what failed or was skipped, and
    refusing audio that another row of the batch holds already. ``load`` decodes a
    row's file (default :func:`load_clip`; a Ray batch gives the clips its actors decoded)."""

    def __init__(
        self,
        db: Finder,
        advance: Callable[[int], None],
        load: Callable[[ManifestRow], Clip] | None = None,
    ) -> None:
        self._db = db
        self._advance = advance
        self._load_row = load or (lambda row: load_clip(row.path))
        self._seen: dict[str, ManifestRow] = {}  # audio hash -> the row that has it
        self.clips: dict[str, list[Clip]] = {}  # decoded, not yet reported
        self.failures: list[BatchFailure] = []
        self.skipped: list[BatchFailure] = []

    def __call__(self, speaker: str, group: list[ManifestRow]) -> list[Clip]:
        try:
            clean_name(speaker)
        except SpeakerDBError as exc:
            for row in group:
                self._fail(speaker, row.path, f"line {row.line}: {exc}")
            return []
        clips: dict[str, Clip] = {}
        for row in group:
            clip = self._load(speaker, row)
            if clip is not None:
                clips[clip.sha256] = clip
        return self._new_only(speaker, clips)

    def _load(self, speaker: str, row: ManifestRow) -> Clip | None:
        try:
            clip = self._load_row(row) if row.path else None
        except SpeakerDBError as exc:
            self._fail(speaker, row.path, str(exc))
            return None
        if clip is None:
            self._fail(speaker, row.path, f"line {row.line}: empty path")
            return None
        first = self._seen.setdefault(clip.sha256, row)
        if first is not row:
            self._fail(speaker, row.path, f"{row.path}: same audio as {first.path}")
            return None
        return clip

    def _new_only(self, speaker: str, clips: dict[str, Clip]) -> list[Clip]:
        owners = self._db.find_enrolled(list(clips.values()))
        for sha in [sha for sha in clips if sha in owners]:  # the manifest's order
            owner, clip = owners[sha], clips.pop(sha)
            source = clip.source or ""
            if owner == clean_name(speaker):
                self.skipped.append(
                    BatchFailure(speaker, source, f"enrolled already for {owner!r}")
                )
                self._advance(1)
            else:
                self._fail(speaker, source, f"{source}: enrolled already for {owner!r}")
        return list(clips.values())

    def _fail(self, speaker: str, source: str, reason: str) -> None:
        self.failures.append(BatchFailure(speaker, source, reason))
        self._advance(1)
