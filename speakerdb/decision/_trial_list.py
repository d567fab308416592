"""Reading a labelled trial list: ``speaker, path, target`` rows of a CSV file.

Used by ``speakerdb calibrate --trials`` and ``speakerdb evaluate``; it depends
on nothing but the standard library and :mod:`speakerdb.errors`, so that
calibration, which needs it, never imports the evaluation driver above it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError

__all__ = ["read_trial_rows"]


def read_trial_rows(path: str | Path) -> list[tuple[str, str, bool]]:
    """``(speaker, test path, target)`` of each trial; relative paths resolved."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            speaker, clip, target = _trial_columns(reader.fieldnames, path)
            rows = []
            for raw in reader:
                label = (raw.get(target) or "").strip()
                if label not in {"0", "1"}:
                    raise InputError(
                        f"{path}, line {reader.line_num}: target must be 1 or 0, got {label!r}"
                    )
                test = _resolve((raw.get(clip) or "").strip(), path.parent)
                rows.append(((raw.get(speaker) or "").strip(), test, label == "1"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such trial list") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV trial list ({exc})") from exc
    return rows


def _trial_columns(fields: Sequence[str] | None, path: Path) -> tuple[str, str, str]:
    names = list(fields or [])
    speaker = next((c for c in ("enroll_speaker", "speaker", "speaker_id") if c in names), None)
    clip = next((c for c in ("test_path", "path") if c in names), None)
    if speaker is None or clip is None or "target" not in names:
        raise InputError(
            f"{path}: a trial list's header names 'enroll_speaker', 'test_path' and 'target', "
            f"got {names}"
        )
    return speaker, clip, "target"


def _resolve(clip: str, base: Path) -> str:
    return str(base / clip) if clip and not Path(clip).is_absolute() else clip
