#!/usr/bin/env python3
"""Build the unseen voices: real single-speaker speech that no default, and no earlier
check, has used (scripts/eval_long_queries.py tests identify's long-query bar on them).

Two Debian packages, fetched without root as scripts/fresh_voices.py fetches
``ktuberling-data`` (``apt-get download``, ``dpkg-deb -x``), converted to 16 kHz mono
16-bit WAV under ``$SPEAKERDB_UNSEEN`` (default ~/.cache/speakerdb-unseen) with the
shared corpus's converter; ``manifest.csv`` as the shared corpus's (clips under 0.5 s
and repeated audio dropped) and ``voices.csv`` (every candidate, kept or not, and why).

Which voices (fixed before any figure was computed on them, from the packages' files,
tags and credits only; :data:`KLETTRES` and :data:`CATALAN`):

- ``klettres-data`` (KDE's alphabet tutor: letters and syllables, /usr/share/klettres/
  <lang>/alpha and syllab): a language is kept when one person is credited for its
  sounds, by the KLettres handbook's "Credits and License" (English edition) or by
  every file's artist tag; languages credited to two people (pt_BR, nds, es; nb's tags
  name "Johnstad/Gabor") or to no one (ar, en_GB, hu, ml, tn, uk) are left out.
- ``ktuberling-data``'s Catalan words, which fresh_voices.py left out because their
  tags name a different person per playground: one voice per exact artist tag with at
  least :data:`MIN_CLIPS` clips (Otger Mas, Orestes, Jaume Lladó). "Bernat" and
  "Bernat Mas" are left out: a first name alone may be Bernat Mas, and one person split
  in two would count as a stranger let in. Martí Mas and Eudald Lladó have 14 files.

Per voice, only its most common recording format (sample rate, channels) is kept, as
fresh_voices.py does, and a voice needs :data:`MIN_CLIPS` clips after conversion.

The ten ktuberling voices fresh_voices.py keeps may share people with these (KLettres'
French sounds are credited to a KDE translator, and the ktuberling fr voice is
untagged): the test never puts them in one population.

    python scripts/unseen_voices.py           # build (idempotent), print the voices
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from fresh_voices import _shared_builder, _write, audio_format, majority, package_sounds

UNSEEN = Path(os.environ.get("SPEAKERDB_UNSEEN", Path.home() / ".cache" / "speakerdb-unseen"))
MIN_DURATION_S = 0.5
#: A voice needs this many clips (3 enroll, the rest queries and items of 3 s or more).
MIN_CLIPS = 20
COLUMNS = ["path", "speaker_id", "source", "duration_s", "lang"]
HOW_TO_BUILD = "python scripts/unseen_voices.py (downloads klettres-data and ktuberling-data)"

#: KLettres languages: kept as one voice, and who (or why not).
KLETTRES: dict[str, tuple[bool, str]] = {
    "cs": (True, "handbook credits Eva Mikulčíková"),
    "da": (True, "handbook credits Erik Kjaer Pedersen"),
    "de": (True, "handbook credits Helmut Kriege"),
    "en": (True, "handbook credits Robert Wadley"),
    "fr": (True, "handbook credits Ludovic Grossard"),
    "he": (True, "handbook credits Assaf Gorgon"),
    "it": (True, "handbook credits Pietro Pasotti"),
    "nl": (True, "handbook credits Geert Stams"),
    "lt": (True, "every file tagged Liudas Ališauskas"),
    "ru": (True, "every file tagged Dashk0"),
    "pt_BR": (False, "handbook credits a father and his son"),
    "nds": (False, "handbook credits two people"),
    "es": (False, "handbook credits two people"),
    "nb": (False, "tags name Johnstad/Gabor: two people"),
    "ar": (False, "no credit, no tags"),
    "en_GB": (False, "no credit, no tags"),
    "hu": (False, "no credit, no tags"),
    "ml": (False, "no credit, no tags"),
    "tn": (False, "no credit, no tags"),
    "uk": (False, "no credit, no tags"),
}
#: ktuberling's Catalan artist tags: kept as one voice each, and why (or why not).
CATALAN: dict[str, tuple[bool, str]] = {
    "Otger Mas": (True, "exact artist tag"),
    "Orestes": (True, "exact artist tag"),
    "Jaume Lladó": (True, "exact artist tag"),
    "Bernat": (False, "a first name alone: may be Bernat Mas"),
    "Bernat Mas": (False, "may be the same person as 'Bernat'"),
    "Martí Mas": (False, "14 files"),
    "Eudald Lladó": (False, "14 files"),
}


@dataclass(frozen=True)
class Voice:
    """One candidate voice: its id, package, language, source files and why."""

    speaker: str
    package: str
    lang: str
    files: list[Path]
    keep: bool
    why: str


def unpacked(package: str, cache: Path = UNSEEN) -> Path:
    """The package's files, downloaded and unpacked under ``cache``/package/<package>."""
    root = cache / "package" / package
    if root.is_dir():
        return root
    debs = cache / "deb"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        print(f"apt-get download {package} into {debs}", file=sys.stderr, flush=True)
        if subprocess.run(["apt-get", "download", package], cwd=debs, check=False).returncode:
            sys.exit(f"apt-get download {package} failed; try apt-get update")
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    partial = root.with_name(root.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
    partial.replace(root)  # whole or not at all
    return root


def klettres_voices() -> list[Voice]:
    base = unpacked("klettres-data") / "usr" / "share" / "klettres"
    voices = []
    for lang, (keep, why) in sorted(KLETTRES.items()):
        files = sorted((base / lang).glob("**/*.ogg"))
        voices.append(Voice(f"klettres-{lang}", "klettres-data", lang, files, keep, why))
    return voices


def artist(path: Path) -> str:
    with sf.SoundFile(str(path)) as fh:
        return str(fh.copy_metadata().get("artist", ""))


def catalan_voices() -> list[Voice]:
    sounds = package_sounds() / "ca"
    by_artist: dict[str, list[Path]] = {}
    for path in sorted(p for p in sounds.iterdir() if p.is_file()):
        by_artist.setdefault(artist(path), []).append(path)
    voices = []
    for name, (keep, why) in sorted(CATALAN.items()):
        slug = name.lower().replace(" ", "-").replace("ó", "o").replace("í", "i")
        files = by_artist.get(name, [])
        voices.append(Voice(f"ktuberling-ca-{slug}", "ktuberling-data", "ca", files, keep, why))
    return voices


def build() -> Path:
    """Convert the kept voices' clips; write manifest.csv and voices.csv; return UNSEEN."""
    return build_voices([*klettres_voices(), *catalan_voices()], UNSEEN)


def build_voices(voices: list[Voice], cache: Path) -> Path:
    """Convert the kept ``voices``' clips under ``cache``/wav (each voice's most common
    format; clips under 0.5 s and audio seen before dropped; a voice left with fewer than
    MIN_CLIPS clips is left out); write manifest.csv and voices.csv there; return it."""
    builder = _shared_builder()
    rows, notes, seen = [], [], set()
    for voice in voices:
        kept_rows = []
        if voice.keep and voice.files:
            formats = [audio_format(p) for p in voice.files]
            main = majority(formats)
            for path in (p for p, f in zip(voice.files, formats) if f == main):
                dst = cache / "wav" / voice.speaker / (path.stem + ".wav")
                duration, digest = builder.convert((str(path), str(dst)))  # type: ignore[attr-defined]
                if duration < MIN_DURATION_S or digest in seen:
                    dst.unlink()
                    continue
                seen.add(digest)
                kept_rows.append(
                    [str(dst), voice.speaker, voice.package, f"{duration:.3f}", voice.lang]
                )
        why = voice.why
        if voice.keep and len(kept_rows) < MIN_CLIPS:
            why += f"; left out: {len(kept_rows)} clips, fewer than {MIN_CLIPS}"
            kept_rows = []
        rows.extend(kept_rows)
        decision = "kept" if kept_rows else "left out"
        notes.append([voice.speaker, decision, why, len(voice.files), len(kept_rows)])
    rows.sort(key=lambda r: (r[1], r[0]))
    _write(cache / "manifest.csv", COLUMNS, rows)
    _write(cache / "voices.csv", ["voice", "decision", "why", "files", "clips"], notes)
    for speaker, decision, why, files, kept in notes:
        print(f"{speaker:28s} {decision:9s} {kept:3d}/{files:3d} clips  {why}")
    print(f"{len(rows)} clips of {len({r[1] for r in rows})} voices; manifest {cache}")
    return cache


def manifest_rows(cache: Path = UNSEEN, how: str = HOW_TO_BUILD) -> dict[str, list[dict[str, str]]]:
    """The built voices' clips in ``cache``, per voice; exit 2 saying ``how`` to build them."""
    path = cache / "manifest.csv"
    if not path.is_file():
        print(f"no voices at {cache}: build them with {how}", file=sys.stderr)
        raise SystemExit(2)
    by_voice: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_voice.setdefault(row["speaker_id"], []).append(row)
    return by_voice


if __name__ == "__main__":
    build()
