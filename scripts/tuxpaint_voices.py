#!/usr/bin/env python3
"""Build the Tux Paint voices: real single-speaker speech, hundreds of clips a voice, that
no default and no earlier check has used (scripts/eval_open_set_tuxpaint.py runs the
shipped open-set defaults on them).

Why Tux Paint. The voices were meant to come from Debian's ``gcompris-qt-data``, but it
holds none: its 186 Qt resource files (3.1-2) carry 136 audio files, 763 s in all, of
sound effects, instruments, music and animals, and no per-language voices (GCompris-Qt
downloads those at run time from its own server, which no package ships). Debian's
``tuxpaint-stamps-default`` (2022.06.04-1) does hold spoken voices: the stamps'
"descriptive sounds", a word or short phrase naming each picture,
``<stamp>_desc_<lang>.ogg``, recorded per language by volunteers whom the package's
changelog (CHANGES.txt) credits by name.

Which voices (fixed before any figure was computed on them, from the package's files,
tags and changelog only; :data:`LANGUAGES`): a language is kept when the changelog
credits its descriptive sounds to one person, and left out when it credits two (fr:
Jacques Chion, and PaulK for Google Code-In) or no one (en, the default descriptions,
and nl: about 66 animal names each, a few of them at 8 kHz), or when too few clips are
left (lt, ml). The changelog names no one else for a kept language's descriptive sounds,
though stamps were added for years after the credits (it is the only record; no file
is tagged with a kept language's narrator). Of a kept language, only:

- the picture stamps: files under ``stamps/symbols/`` (letters, numbers, signs, money)
  are left out for every language, since the changelog credits letters and numbers
  apart (Schoolsplay's numbers for bg, ro, ru and others; Lithuanian letters to Andrius
  Jurkus; British English ones to John Arundel), so they may be someone else's voice;
- files whose artist tag is empty or names the credited person (one Danish file is
  tagged "Joe Hansen", the changelog credits Joe Dalton: that file is left out);
- the language's most common recording format (sample rate, channels), as
  scripts/fresh_voices.py keeps (Catalan is mono with 13 stereo and 5 8 kHz files).

Converted to 16 kHz mono 16-bit WAV under ``$SPEAKERDB_TUXPAINT`` (default
~/.cache/speakerdb-tuxpaint) with the shared corpus's converter, clips under 0.5 s and
audio seen before dropped, a voice needing MIN_CLIPS (20) clips
(scripts/unseen_voices.build_voices); ``manifest.csv`` as the shared corpus's
(path,speaker_id,source,duration_s,lang; speaker ``tuxpaint-<lang>``) and ``voices.csv``
(every language, kept or not, and why). The package is fetched without root
(``apt-get download``, ``dpkg-deb -x``) as scripts/unseen_voices.py fetches its own.

Other voices of these languages may be the same people: ktuberling's untagged da and ru
voices (scripts/fresh_voices.py) name no one, so they never share a population with
these. The unseen voices (scripts/unseen_voices.py: KLettres, each language credited to
one person, and ktuberling's Catalan artists by tag) name other people than these.

    python scripts/tuxpaint_voices.py           # build (idempotent), print the voices
    python scripts/tuxpaint_voices.py --check   # exit 1 unless built
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from unseen_voices import Voice, artist, build_voices, manifest_rows, unpacked

TUXPAINT = Path(os.environ.get("SPEAKERDB_TUXPAINT", Path.home() / ".cache" / "speakerdb-tuxpaint"))
PACKAGE = "tuxpaint-stamps-default"
HOW_TO_BUILD = f"python scripts/tuxpaint_voices.py (downloads Debian's {PACKAGE})"
#: Stamp categories left out for every language (letters, numbers: credited apart).
LEFT_OUT_CATEGORIES = ("symbols",)

#: Each language with descriptive sounds: kept as one voice, the person the changelog
#: credits for them, and why (fixed before any figure was computed on these voices).
LANGUAGES: dict[str, tuple[bool, str, str]] = {
    "be": (True, "Kseniya Buraya", "descriptive sounds credited to Kseniya Buraya (GCI)"),
    "bg": (True, "Krasimir Petkov", "descriptive sounds credited to Krasimir Petkov"),
    "ca": (True, "Pere Pujal Carabantes", "spoken stamps credited to Pere Pujal Carabantes"),
    "da": (True, "Joe Dalton", "descriptive sounds credited to Joe Dalton"),
    "el": (True, "Kiriaki Serafeim", "descriptive sounds credited to Kiriaki Serafeim"),
    "es": (True, "Estefanía Ortiz", "descriptive sounds credited to Estefanía Ortiz"),
    "ro": (True, "Tabbytha", "descriptive sounds credited to Tabbytha (GCI)"),
    "ru": (True, "Edwin Veber", "descriptive sounds credited to Edwin Veber (GCI)"),
    "fr": (False, "", "credited to two people (Jacques Chion; PaulK, GCI)"),
    "en": (False, "", "credited to no one (animal names)"),
    "nl": (False, "", "credited to no one (animal names)"),
    "lt": (False, "", "letters only (symbols/, left out)"),
    "ml": (False, "", "6 files"),
}


def stamps() -> Path:
    """The package's stamps folder, downloaded and unpacked under TUXPAINT."""
    return unpacked(PACKAGE, TUXPAINT) / "usr" / "share" / "tuxpaint" / "stamps"


def candidate_files(root: Path, lang: str, narrator: str) -> tuple[list[Path], int]:
    """A language's descriptive sounds outside the left-out categories whose artist tag
    is empty or ``narrator``, sorted; and how many were left out for their tag."""
    pattern = re.compile(rf"_desc_{re.escape(lang)}\.ogg$")
    files, tagged = [], 0
    for path in sorted(root.glob(f"**/*_desc_{lang}.ogg")):
        if not pattern.search(path.name):
            continue
        if path.relative_to(root).parts[0] in LEFT_OUT_CATEGORIES:
            continue
        if artist(path) not in ("", narrator):
            tagged += 1
            continue
        files.append(path)
    return files, tagged


def voices() -> list[Voice]:
    root = stamps()
    found = []
    for lang, (keep, narrator, why) in sorted(LANGUAGES.items()):
        files, tagged = candidate_files(root, lang, narrator)
        if tagged:
            why += f"; {tagged} file(s) tagged with another name left out"
        found.append(Voice(f"tuxpaint-{lang}", PACKAGE, lang, files, keep, why))
    return found


def manifest() -> dict[str, list[dict[str, str]]]:
    """The built voices' clips, per voice; exit 2 saying how to build them."""
    return manifest_rows(TUXPAINT, HOW_TO_BUILD)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 unless built")
    if parser.parse_args().check:
        sys.exit(0 if (TUXPAINT / "manifest.csv").is_file() else 1)
    build_voices(voices(), TUXPAINT)
