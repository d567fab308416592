#!/usr/bin/env python3
"""Build the fresh voices: real recordings of single words that no default was tuned on.

Debian's ``ktuberling-data`` (KDE's stamp toy) holds, per language, a volunteer's
recordings of the words of its playgrounds (/usr/share/ktuberling/sounds/<lang>/).
This script fetches the package without root (``apt-get download`` into the cache,
``dpkg-deb -x``; an installed package is used as it is), keeps the languages where one
speaker is credible (:data:`VOICES`, fixed before any figure was computed on them),
and converts their clips to 16 kHz mono 16-bit WAV under ``$SPEAKERDB_FRESH`` (default
~/.cache/speakerdb-fresh) with the shared corpus's converter, writing

- ``manifest.csv``: path,speaker_id,source,duration_s,lang, as the shared corpus's
  (speaker ``ktuberling-<lang>``; clips under 0.5 s and repeated audio dropped);
- ``voices.csv``: every language with 60 files or more, kept or not, why, and what
  its files' tags and formats say.

Which clips of a kept language: only the playgrounds every language has (the potato
head, Egypt, the moon, the pizzeria), named by the game's ``<lang>.soundtheme``. The
newer themes (TV, Christmas, robots, butterflies, Robin Hood Tux) were added years later
and may have been recorded by someone else, so they are left out: the shared corpus
builder's ``KT_NEW_THEMES`` is matched against both the file name and the theme's sound
name (French files are named in French: ``noel_*``, ``papillons_*``); files the theme
does not name are left out too. Of the rest, only the language's most common recording
format (sample rate, channels, encoding) is kept: a clip in another format was recorded
apart. The package's copyright file credits no recordings; the files' tags (artist,
date) are the only record of who spoke, and many languages have none.

    python scripts/fresh_voices.py           # build (idempotent), print the voices
    python scripts/fresh_voices.py --check   # exit 1 unless built
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from corpus import SHARED_DATA

FRESH = Path(os.environ.get("SPEAKERDB_FRESH", Path.home() / ".cache" / "speakerdb-fresh"))
PACKAGE = "ktuberling-data"
INSTALLED = Path("/usr/share/ktuberling/sounds")
FAMILY = "ktuberling"
MIN_DURATION_S = 0.5
#: Languages with fewer files recorded only a handful of words: not a voice.
MIN_FILES = 60
COLUMNS = ["path", "speaker_id", "source", "duration_s", "lang"]
HOW_TO_BUILD = "python scripts/fresh_voices.py (downloads Debian's ktuberling-data with apt-get)"

#: Each language with 60 files or more: kept as one voice, and why (fixed before any
#: figure was computed on these voices, from the package's files, tags and formats).
VOICES: dict[str, tuple[bool, str]] = {
    "da": (True, "old themes untagged, one format; the new themes are tagged Martha Schou"),
    "de": (True, "untagged, one format"),
    "en": (True, "untagged, one format"),
    "fr": (True, "untagged; potato words in 3 formats (8, 22 and 44 kHz): 44 kHz kept"),
    "gl": (True, "untagged, one format"),
    "lt": (True, "every file tagged Donatas Glodenis"),
    "ru": (True, "untagged; old themes dated 2010-11-24/25, the new ones 2010-12-08"),
    "sl": (True, "untagged; 3 stereo clips among mono ones left out"),
    "uk": (True, "untagged, one format"),
    "wa": (True, "every file tagged Djan Cayron"),
    "ca": (False, "tags name a different person per theme (Bernat Mas, Eudald Llado, ...)"),
    "el": (False, "every file tagged 'clavisound.gr and patty': two people, voice unsaid"),
    "nn": (False, "every file tagged with two names (Karl Ove Hufthammer / Oystein S.)"),
}


def _shared_builder() -> object:
    """The shared corpus's builder (its new-theme pattern and its converter)."""
    spec = importlib.util.spec_from_file_location("build_corpus", SHARED_DATA / "build_corpus.py")
    if spec is None or spec.loader is None:
        sys.exit(f"no corpus builder at {SHARED_DATA}; set SPEAKERDB_SHARED_DATA")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Sound:
    """One file a language's sound theme names, with the theme's name for it."""

    path: Path
    name: str


def theme_sounds(sounds: Path, lang: str) -> list[Sound]:
    """The files ``<lang>.soundtheme`` names (each once), in its order."""
    root = ET.parse(sounds / f"{lang}.soundtheme").getroot()
    seen: dict[str, Sound] = {}
    for node in root.iter("sound"):
        file, name = node.get("file", ""), node.get("name", "")
        if file and file not in seen and (sounds / file).is_file():
            seen[file] = Sound(sounds / file, name)
    return list(seen.values())


def is_new_theme(sound: Sound, pattern: str) -> bool:
    """A word of a newer playground: by its file name or by the theme's name for it."""
    return bool(re.search(pattern, sound.path.name) or re.search(pattern, sound.name + "."))


def audio_format(path: Path) -> tuple[int, int, str]:
    info = sf.info(str(path))
    return info.samplerate, info.channels, info.subtype


def majority(formats: list[tuple[int, int, str]]) -> tuple[int, int, str]:
    """The most common format (ties broken by the format itself, so the choice is fixed)."""
    counts = Counter(formats)
    return max(counts, key=lambda f: (counts[f], f))


def kept_sounds(sounds: Path, lang: str, pattern: str) -> list[Sound]:
    """A kept language's clips: old themes only, in the language's most common format."""
    old = [s for s in theme_sounds(sounds, lang) if not is_new_theme(s, pattern)]
    formats = [audio_format(s.path) for s in old]
    main = majority(formats)
    return [s for s, f in zip(old, formats) if f == main]


def tags(paths: list[Path]) -> str:
    """What the files' tags say of who recorded them and when, counted."""
    found: Counter[str] = Counter()
    for path in paths:
        with sf.SoundFile(str(path)) as fh:
            meta = fh.copy_metadata()
        for key in ("artist", "date"):
            if key in meta:
                found[f"{key}={meta[key]}"] += 1
    return "; ".join(f"{k} x{n}" for k, n in found.most_common()) or "none"


def package_sounds() -> Path:
    """The package's sounds folder: installed, or downloaded and unpacked into FRESH."""
    if INSTALLED.is_dir():
        return INSTALLED
    unpacked = FRESH / "package"
    sounds = unpacked / "usr" / "share" / "ktuberling" / "sounds"
    if sounds.is_dir():
        return sounds
    debs = FRESH / "deb"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{PACKAGE}_*.deb")):
        print(f"apt-get download {PACKAGE} into {debs}", file=sys.stderr, flush=True)
        got = subprocess.run(["apt-get", "download", PACKAGE], cwd=debs, check=False)
        if got.returncode:
            sys.exit(f"apt-get download {PACKAGE} failed; try apt-get update, or install it")
    deb = sorted(debs.glob(f"{PACKAGE}_*.deb"))[-1]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    return sounds


def languages(sounds: Path) -> list[str]:
    """Languages with a sound theme and at least MIN_FILES files."""
    return sorted(
        p.stem
        for p in sounds.glob("*.soundtheme")
        if (sounds / p.stem).is_dir() and len(list((sounds / p.stem).iterdir())) >= MIN_FILES
    )


def build() -> Path:
    """Convert the kept voices' clips; write manifest.csv and voices.csv; return FRESH."""
    builder = _shared_builder()
    pattern: str = builder.KT_NEW_THEMES  # type: ignore[attr-defined]
    sounds = package_sounds()
    rows, notes, seen = [], [], set()
    for lang in languages(sounds):
        keep, why = VOICES.get(lang, (False, "not judged before the protocol was fixed"))
        every = [s.path for s in theme_sounds(sounds, lang)]
        chosen = kept_sounds(sounds, lang, pattern) if keep else []
        speaker = f"{FAMILY}-{lang}"
        dropped: Counter[str] = Counter()
        for sound in chosen:
            dst = FRESH / "wav" / speaker / (sound.path.stem + ".wav")
            duration, digest = builder.convert((str(sound.path), str(dst)))  # type: ignore[attr-defined]
            if duration < MIN_DURATION_S or digest in seen:
                dropped["under 0.5 s" if duration < MIN_DURATION_S else "repeated"] += 1
                dst.unlink()
                continue
            seen.add(digest)
            rows.append([str(dst), speaker, PACKAGE, f"{duration:.3f}", lang])
        kept = sum(r[1] == speaker for r in rows)
        if dropped:
            why += " (dropped: " + ", ".join(f"{n} {k}" for k, n in dropped.items()) + ")"
        notes.append([lang, "kept" if keep else "left out", why, len(every), kept, tags(every)])
    rows.sort(key=lambda r: (r[1], r[0]))
    kept_paths = {r[0] for r in rows}
    for stale in (FRESH / "wav").glob("*/*.wav"):  # from an earlier choice of voices
        if str(stale) not in kept_paths:
            stale.unlink()
    _write(FRESH / "manifest.csv", COLUMNS, rows)
    _write(FRESH / "voices.csv", ["lang", "decision", "why", "files", "clips", "tags"], notes)
    for lang, decision, why, files, kept, tagged in notes:
        print(f"{lang:3s} {decision:9s} {kept:3d}/{files:3d} clips  {why}  [tags: {tagged}]")
    print(f"{len(rows)} clips of {len({r[1] for r in rows})} voices; manifest {FRESH}")
    return FRESH


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


def manifest() -> Path:
    """The built manifest, or exit 2 saying how to build it."""
    path = FRESH / "manifest.csv"
    if not path.is_file():
        print(f"no fresh voices at {FRESH}: build them first with {HOW_TO_BUILD}", file=sys.stderr)
        raise SystemExit(2)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 unless built")
    if parser.parse_args().check:
        sys.exit(0 if (FRESH / "manifest.csv").is_file() else 1)
    build()
