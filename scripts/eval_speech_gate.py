#!/usr/bin/env python3
"""How well the speech gate (speakerdb.audio._speechness) tells speech from non-speech.

Prints, on the shared real-speech corpus (every clip of manifest.csv):
- the share of each speaker's clips accepted as speech (target: all of them),
  with every refused clip named and its reason;
- the refusal rate of each kind of generated non-speech (``_nonspeech.py``) at
  several lengths, levels and seeds (target: all of them);
- acceptance of held-out speech with white or pink noise or hum added;
- each refusal rule's margin on the tuning and the held-out speakers' speech
  (1.00 is the limit), so a near miss is visible before it becomes a refusal.

The limits in _speechness.py were chosen on the TUNING speakers (every other
speaker of each family, in sorted order); the HELD-OUT speakers are reported
as an out-of-sample check. Clips named ``silence__N`` are the corpus's own
silence prompts (digital silence, not speech): they are counted apart, and the
gate should refuse them.

    python scripts/eval_speech_gate.py [--limit N]   # N clips per speaker, for a quick look
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _nonspeech import KINDS, LEVELS, SILENCE_LEVELS, make

from speakerdb.audio import SpeechAssessment, assess_speech
from speakerdb.audio import _speechness as gate

CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", Path.home() / ".cache" / "speakerdb-corpus"))
LENGTHS_S = (1.0, 2.0, 5.0, 10.0)
SEEDS = range(8)


def _over(value: float, limit: float) -> float:
    """How far a cue that speech keeps high is on the speech side: >= 1 passes."""
    return value / limit


def _under(value: float, limit: float) -> float:
    """The same for a cue that speech keeps low."""
    return limit / max(value, 1e-9)


#: Each refusal rule as a margin, >= 1 on the speech side (an OR of two cues: the larger).
RULES = {
    "silence: level_dbfs": lambda a: _under(-a.level_dbfs, -gate.MIN_LEVEL_DBFS),
    "hum: hum_share": lambda a: _under(a.hum_share, gate.MAX_HUM_SHARE),
    "steady: energy_spread_db": lambda a: _over(a.energy_spread_db, gate.MIN_ENERGY_SPREAD_DB),
    "noise: voiced_share | spectral_flux_db": lambda a: max(
        _over(a.voiced_share, gate.MIN_VOICED_SHARE),
        _over(a.spectral_flux_db, gate.MIN_SPECTRAL_FLUX_DB),
    ),
    "drums: voiced_peak_share | peak_share": lambda a: max(
        _under(a.voiced_peak_share, gate.MAX_PEAK_SHARE),
        _over(a.peak_share, gate.DRUM_PEAK_SHARE),
    ),
    "music: spectral_flux_db": lambda a: _over(a.spectral_flux_db, gate.MIN_SPECTRAL_FLUX_ALONE_DB),
    "music: steady_pitch_share & held_pitch_s": lambda a: min(
        _under(a.steady_pitch_share, gate.MAX_STEADY_PITCH_SHARE_ALONE),
        max(
            _under(a.steady_pitch_share, gate.MAX_STEADY_PITCH_SHARE),
            _under(a.held_pitch_s, gate.MAX_HELD_PITCH_S),
        ),
    ),
}


def split(speakers: list[str]) -> dict[str, str]:
    """Every other speaker of each family (asterisk, fillets), in sorted order, tunes."""
    role = {}
    for family in sorted({s.split("-")[0] for s in speakers}):
        members = sorted(s for s in speakers if s.split("-")[0] == family)
        for i, speaker in enumerate(members):
            role[speaker] = "tuning" if i % 2 == 0 else "held-out"
    return role


def corpus_rows(limit: int | None) -> list[dict[str, str]]:
    with (CORPUS / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if limit is None:
        return rows
    taken: dict[str, int] = defaultdict(int)
    kept = []
    for row in rows:
        if taken[row["speaker_id"]] < limit:
            taken[row["speaker_id"]] += 1
            kept.append(row)
    return kept


def assess_corpus(rows: list[dict[str, str]]) -> list[tuple[dict[str, str], SpeechAssessment]]:
    out = []
    for row in rows:
        samples, rate = sf.read(row["path"], dtype="float32")
        assert rate == 16_000, row["path"]
        out.append((row, assess_speech(samples)))
    return out


def report_corpus(results: list[tuple[dict[str, str], SpeechAssessment]]) -> None:
    role = split(sorted({r["speaker_id"] for r, _ in results}))
    print("Corpus clips accepted as speech (silence__N prompts apart):")
    print(f"  {'speaker':24s} {'split':9s} {'accepted':>14s}  silence prompts refused")
    refused = []
    for speaker in sorted(role):
        mine = [(r, a) for r, a in results if r["speaker_id"] == speaker]
        speech = [(r, a) for r, a in mine if not _is_silence_prompt(r)]
        silence = [a for r, a in mine if _is_silence_prompt(r)]
        ok = sum(a.is_speech for _, a in speech)
        refused += [(r, a) for r, a in speech if not a.is_speech]
        quiet = f"{sum(not a.is_speech for a in silence)}/{len(silence)}" if silence else "-"
        print(
            f"  {speaker:24s} {role[speaker]:9s} {ok:5d}/{len(speech):<5d}"
            f"{ok / max(len(speech), 1):7.2%}  {quiet}"
        )
    for part in ("tuning", "held-out"):
        speech = [a for r, a in results if role[r["speaker_id"]] == part]
        speech = [
            a for (r, a) in results if role[r["speaker_id"]] == part and not _is_silence_prompt(r)
        ]
        ok = sum(a.is_speech for a in speech)
        print(f"  {'all ' + part:34s} {ok:5d}/{len(speech):<5d}{ok / max(len(speech), 1):7.2%}")
    for row, a in refused:
        print(f"  REFUSED {row['path']}: {a.reason}")


def _is_silence_prompt(row: dict[str, str]) -> bool:
    return "silence__" in Path(row["path"]).name


def assess_nonspeech() -> dict[str, list[SpeechAssessment]]:
    out: dict[str, list[SpeechAssessment]] = {}
    for kind in KINDS:
        levels = SILENCE_LEVELS if kind == "faint_noise" else LEVELS
        out[kind] = [
            assess_speech(make(kind, seconds, level, seed))
            for seconds in LENGTHS_S
            for level in levels
            for seed in SEEDS
        ]
    return out


def report_nonspeech(results: dict[str, list[SpeechAssessment]]) -> None:
    print(
        f"\nGenerated non-speech refused ({len(LENGTHS_S)} lengths {LENGTHS_S} s x 3 levels "
        f"{LEVELS} dBFS RMS (faint_noise: {SILENCE_LEVELS}) x {len(SEEDS)} seeds):"
    )
    for kind, assessed in results.items():
        refused = [a for a in assessed if not a.is_speech]
        reasons = sorted({(a.reason or "").split(" (")[0].split(",")[0] for a in refused})
        share = len(refused) / len(assessed)
        print(
            f"  {kind:12s} {len(refused):3d}/{len(assessed):<3d} {share:7.1%}  {'; '.join(reasons)}"
        )
    every = [a for assessed in results.values() for a in assessed]
    total = sum(not a.is_speech for a in every)
    print(f"  {'all':12s} {total:3d}/{len(every):<3d} {total / len(every):7.1%}")


def report_noisy_speech(rows: list[dict[str, str]]) -> None:
    """Held-out speakers' clips of 1 s or more, with noise or hum added: still speech?"""
    role = split(sorted({r["speaker_id"] for r in rows}))
    taken: dict[str, int] = defaultdict(int)
    clips = []
    for row in rows:
        speaker = row["speaker_id"]
        wanted = role[speaker] == "held-out" and float(row["duration_s"]) >= 1.0
        if wanted and taken[speaker] < 40 and not _is_silence_prompt(row):
            taken[speaker] += 1
            clips.append(sf.read(row["path"], dtype="float32")[0])
    print(f"\nHeld-out speech with interference added ({len(clips)} clips of 1 s or more):")
    for name, add in NOISY.items():
        kept = 0
        for i, clip in enumerate(clips):
            rms = float(np.sqrt(np.mean(np.square(clip))))
            kept += assess_speech(clip + add(clip.size, rms, i)).is_speech
        print(f"  {name:28s} {kept:4d}/{len(clips):<4d} accepted {kept / len(clips):7.1%}")


def _noise_at(snr_db: float, kind: str = "white") -> Callable[[int, float, int], np.ndarray]:
    def add(n: int, rms: float, seed: int) -> np.ndarray:
        noise = make(kind, n / 16_000 + 0.01, -20.0, seed)[:n]
        noise /= float(np.sqrt(np.mean(np.square(noise)))) or 1.0
        return (noise * rms * 10 ** (-snr_db / 20)).astype(np.float32)

    return add


#: Interference at a level relative to the speech clip's RMS.
NOISY = {
    "white noise, SNR 20 dB": _noise_at(20.0),
    "white noise, SNR 10 dB": _noise_at(10.0),
    "white noise, SNR 5 dB": _noise_at(5.0),
    "pink noise, SNR 10 dB": _noise_at(10.0, "pink"),
    "50 Hz hum, SNR 10 dB": _noise_at(10.0, "hum50"),
    "50 Hz hum, SNR 0 dB": _noise_at(0.0, "hum50"),
}


def report_margins(corpus: list[tuple[dict[str, str], SpeechAssessment]]) -> None:
    """Each rule's smallest margin on speech, per split (1.00 is the limit)."""
    role = split(sorted({r["speaker_id"] for r, _ in corpus}))
    print("\nRule margins on speech (>= 1 passes; 0.1st percentile / smallest), per split:")
    for name, margin in RULES.items():
        cells = []
        for part in ("tuning", "held-out"):
            values = [
                margin(a)
                for r, a in corpus
                if role[r["speaker_id"]] == part and not _is_silence_prompt(r)
            ]
            if values:
                cells.append(f"{part} {np.percentile(values, 0.1):5.2f} / {min(values):5.2f}")
        print(f"  {name:42s} {'   '.join(cells)}")
    print("\nSmallest margin per speaker (a limit fitted without that speaker moves only")
    print("if that speaker is the smallest of its rule):")
    speakers = sorted(role)
    print(f"  {'rule':42s} " + " ".join(f"{s.split('-', 1)[1][:9]:>9s}" for s in speakers))
    for name, margin in RULES.items():
        worst = [
            min(margin(a) for r, a in corpus if r["speaker_id"] == s and not _is_silence_prompt(r))
            for s in speakers
        ]
        print(f"  {name:42s} " + " ".join(f"{w:9.2f}" for w in worst))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, help="clips per speaker (default: all)")
    args = parser.parse_args()
    if not (CORPUS / "manifest.csv").is_file():
        sys.exit(f"no corpus at {CORPUS}: run ../shared/data/build_corpus.py first")
    start = time.perf_counter()
    corpus = assess_corpus(corpus_rows(args.limit))
    report_corpus(corpus)
    nonspeech = assess_nonspeech()
    report_nonspeech(nonspeech)
    report_margins(corpus)
    if args.limit is None:
        report_noisy_speech([r for r, _ in corpus])
    from conftest import voice

    synthetic = [assess_speech(voice(pitch, 2.0)) for pitch in (100.0, 150.0, 220.0, 300.0)]
    accepted = sum(a.is_speech for a in synthetic)
    print(f"\ntests' synthetic voice(): {accepted}/4 accepted; {synthetic[0].reason}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
