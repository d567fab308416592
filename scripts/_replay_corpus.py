"""The shared real-speech corpus as ``scripts/eval_replay.py`` reads it (evaluation only):
where it is, its sample rate, the two fixed folds of speakers, which clips are usable,
and the run's progress lines on stderr."""

from __future__ import annotations

import csv
import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerdb.audio import fingerprint
from speakerdb.errors import AudioError

CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", Path.home() / ".cache" / "speakerdb-corpus"))


RATE = 16_000


#: The two fixed folds of speakers (one tunes, the other is reported, then the reverse).
FOLDS = {
    "A": [
        "asterisk-allison",
        "asterisk-carlo-it",
        "asterisk-july-esco",
        "asterisk-menardi-it",
        "fillets-cs-small",
        "fillets-nl-small",
    ],
    "B": [
        "asterisk-armelle-fr",
        "asterisk-ivrvoice-ru",
        "asterisk-june-frca",
        "fillets-cs-big",
        "fillets-nl-big",
    ],
}


def load(path: str) -> np.ndarray:
    return sf.read(path, dtype="float64")[0]


def is_silence_prompt(path: str) -> bool:
    """The corpus's digital-silence clips, filed under a speaker but holding no speech."""
    return "silence__" in Path(path).name


def clips_by_speaker() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """All usable clips per speaker (no silence prompts, none under 0.5 s), and the
    enrollment clips per speaker."""
    every: dict[str, list[str]] = {}
    with open(CORPUS / "manifest.csv") as fh:
        for row in csv.DictReader(fh):
            if float(row["duration_s"]) >= 0.5 and not is_silence_prompt(row["path"]):
                every.setdefault(row["speaker_id"], []).append(row["path"])
    enrolled: dict[str, list[str]] = {}
    with open(CORPUS / "protocol" / "enroll.csv") as fh:
        for row in csv.DictReader(fh):
            if not is_silence_prompt(row["path"]):
                enrolled.setdefault(row["speaker_id"], []).append(row["path"])
    return every, enrolled


def usable(path: str) -> bool:
    try:
        fingerprint(load(path))
    except AudioError:
        return False
    return True


def progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_as(path: str, reversed_: bool) -> np.ndarray:
    x = load(path)
    return x[::-1].copy() if reversed_ else x


def short_path(path: str) -> str:
    return "/".join(Path(path).parts[-2:])
