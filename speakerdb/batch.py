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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .audio import Clip, load_clip
from .errors import InputError, SpeakerDBError
from .names import clean_name
from .types import Enrollment

if TYPE_CHECKING:
    from .service import SpeakerDB

__all__ = ["BatchFailure", "BatchReport", "ManifestRow", "enroll_batch", "read_manifest"]

SPEAKER_COLUMNS = ("speaker", "speaker_id")


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


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a bulk enrollment did."""

    enrollments: tuple[Enrollment, ...]
    failures: tuple[BatchFailure, ...]

    @property
    def n_enrolled(self) -> int:
        return sum(len(e.added) for e in self.enrollments)


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read ``speaker,path`` rows; raise :class:`InputError` naming what is wrong."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            column = _speaker_column(reader.fieldnames, path)
            return [_row(r, column, path.parent, reader.line_num) for r in reader]
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV manifest ({exc})") from exc


def _speaker_column(fields: Iterable[str] | None, path: Path) -> str:
    names = list(fields or [])
    column = next((c for c in SPEAKER_COLUMNS if c in names), None)
    if column is None or "path" not in names:
        raise InputError(
            f"{path}: the header must name a 'speaker' and a 'path' column, got {names}"
        )
    return column


def _row(raw: dict[str, str], column: str, base: Path, line: int) -> ManifestRow:
    clip = (raw.get("path") or "").strip()
    resolved = str(base / clip) if clip and not Path(clip).is_absolute() else clip
    return ManifestRow(speaker=(raw.get(column) or ""), path=resolved, line=line)


def enroll_batch(
    db: SpeakerDB,
    rows: Iterable[ManifestRow],
    progress: Callable[[int], None] | None = None,
    *,
    force: bool = False,
) -> BatchReport:
    """Enroll every row; ``progress(n)`` is called as each ``n`` clips are done.

    ``force`` enrolls what the quality gates would refuse (see :mod:`speakerdb.quality`).
    """
    advance = progress or (lambda n: None)
    failures: list[BatchFailure] = []
    enrollments: list[Enrollment] = []
    for speaker, group in _by_speaker(rows).items():
        clips = _decode_group(db, speaker, group, failures, advance)
        if not clips:
            continue
        try:
            enrollments.append(db.enroll(speaker, clips, force=force))
        except SpeakerDBError as exc:
            failures += [BatchFailure(speaker, c.source or "", str(exc)) for c in clips]
        advance(len(clips))
    return BatchReport(tuple(enrollments), tuple(failures))


def _by_speaker(rows: Iterable[ManifestRow]) -> dict[str, list[ManifestRow]]:
    groups: dict[str, list[ManifestRow]] = {}
    for row in rows:
        groups.setdefault(row.speaker, []).append(row)
    return groups


def _decode_group(
    db: SpeakerDB,
    speaker: str,
    group: list[ManifestRow],
    failures: list[BatchFailure],
    advance: Callable[[int], None],
) -> list[Clip]:
    def fail(row: ManifestRow, reason: str) -> None:
        failures.append(BatchFailure(speaker, row.path, reason))
        advance(1)

    try:
        clean_name(speaker)
    except SpeakerDBError as exc:
        for row in group:
            fail(row, f"line {row.line}: {exc}")
        return []
    clips: dict[str, Clip] = {}
    for row in group:
        try:
            clip = load_clip(row.path) if row.path else None
        except SpeakerDBError as exc:
            fail(row, str(exc))
            continue
        if clip is None:
            fail(row, f"line {row.line}: empty path")
        elif clip.sha256 in clips:
            fail(row, f"{row.path}: same audio as {clips[clip.sha256].source}")
        else:
            clips[clip.sha256] = clip
    enrolled = db.find_enrolled(list(clips.values()))
    for sha, owner in enrolled.items():
        clip = clips.pop(sha)
        fail(
            ManifestRow(speaker, clip.source or "", 0),
            f"{clip.source}: enrolled already for {owner!r}",
        )
    return list(clips.values())
