"""Generated non-speech clips (16 kHz mono float32) that an enrollment must refuse.

Shared by ``scripts/eval_speech_gate.py`` and ``tests/test_speechness.py``. Every
generator takes a length in seconds and a numpy Generator, and returns samples
at an arbitrary level; :func:`make` scales them to an RMS level in dBFS.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RATE = 16_000


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * RATE)) / RATE


def white(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(int(seconds * RATE))


def _coloured(seconds: float, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (1: pink, 2: brown)."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum /= np.maximum(freqs, 5.0) ** (exponent / 2)
    return np.fft.irfft(spectrum, n=n)


def pink(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return _coloured(seconds, rng, 1.0)


def brown(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return _coloured(seconds, rng, 2.0)


def _hum(seconds: float, rng: np.random.Generator, mains: float) -> np.ndarray:
    t = _t(seconds)
    weights = rng.uniform(0.05, 1.0, 8) / np.arange(1, 9)
    wave = sum(
        w * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3))
        for k, w in enumerate(weights, 1)
    )
    return wave + 0.01 * rng.standard_normal(t.size)


def hum50(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return _hum(seconds, rng, 50.0)


def hum60(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return _hum(seconds, rng, 60.0)


def tone(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return np.sin(2 * np.pi * rng.uniform(100, 4000) * _t(seconds))


def multitone(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Dial, busy and DTMF-like tones: 2-4 sines, on and off in a cadence."""
    t = _t(seconds)
    wave = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(300, 1800, rng.integers(2, 5)))
    period = rng.uniform(0.3, 1.5)
    gate = (t % period) < period * rng.uniform(0.4, 1.0)
    return wave * gate


def sweep(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A logarithmic chirp, up or down, repeated 1-3 times."""
    repeats = int(rng.integers(1, 4))
    f0, f1 = sorted(rng.uniform(80, 7000, 2))
    if rng.random() < 0.5:
        f0, f1 = f1, f0
    span = seconds / repeats
    t = _t(seconds) % span
    k = np.log(f1 / f0) / span
    return np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)


def clicks(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Irregular impulses, 2-30 a second, over a faint noise floor."""
    n = int(seconds * RATE)
    wave = 1e-3 * rng.standard_normal(n)
    count = int(rng.uniform(2, 30) * seconds)
    at = rng.integers(0, n, count)
    wave[at] = rng.choice([-1.0, 1.0], count) * rng.uniform(0.5, 1.0, count)
    return wave


def chords(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic chords: 3 notes with harmonics, a new chord every 0.3-1 s, each decaying."""
    t = _t(seconds)
    wave = np.zeros(t.size)
    step = rng.uniform(0.3, 1.0)
    for start in np.arange(0, seconds, step):
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        on = (t >= start) & (t < start + step)
        local = t[on] - start
        for semis in (0, 4, 7):
            f = root * 2 ** (semis / 12)
            note = sum(np.sin(2 * np.pi * f * k * local) / k for k in range(1, 6))
            wave[on] += note * np.exp(-local * rng.uniform(1, 6))
    return wave


def melody(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A single synthetic instrument: harmonic notes of steady pitch, 0.15-0.5 s each."""
    t = _t(seconds)
    wave = np.zeros(t.size)
    start = 0.0
    while start < seconds:
        length = rng.uniform(0.15, 0.5)
        f = 196 * 2 ** (rng.integers(0, 19) / 12)
        on = (t >= start) & (t < start + length)
        local = t[on] - start
        note = sum(np.sin(2 * np.pi * f * k * local) * 0.7**k for k in range(1, 8))
        wave[on] = note * np.minimum(1, local * 50) * np.exp(-local * 3)
        start += length
    return wave


def drums(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A drum-like pattern: kicks (a falling low sine) and snares/hi-hats (noise bursts)."""
    n = int(seconds * RATE)
    wave = 1e-3 * rng.standard_normal(n)
    beat = 60 / rng.uniform(90, 160) / 2
    for i, start in enumerate(np.arange(0, seconds, beat)):
        s = int(start * RATE)
        local = np.arange(min(int(0.3 * RATE), n - s)) / RATE
        if i % 4 == 0:
            hit = np.sin(2 * np.pi * (50 * local + 100 * (1 - np.exp(-local * 30)) / 30))
            hit *= np.exp(-local * 12)
        else:
            hit = rng.standard_normal(local.size) * np.exp(-local * rng.uniform(20, 60))
        wave[s : s + local.size] += hit
    return wave


def gated_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Pink noise switched on and off at a syllable-like 3-6 Hz: the hardest for energy cues."""
    t = _t(seconds)
    gate = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
    return pink(seconds, rng) * gate**2


def faint_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Silence with a little noise: the level is set by ``make`` (see SILENCE_LEVELS)."""
    return white(seconds, rng)


#: Every kind, by name. ``faint_noise`` is made at :data:`SILENCE_LEVELS`, the others at
#: :data:`LEVELS`.
KINDS: dict[str, Callable[[float, np.random.Generator], np.ndarray]] = {
    "white": white,
    "pink": pink,
    "brown": brown,
    "hum50": hum50,
    "hum60": hum60,
    "tone": tone,
    "multitone": multitone,
    "sweep": sweep,
    "clicks": clicks,
    "chords": chords,
    "melody": melody,
    "drums": drums,
    "gated_noise": gated_noise,
    "faint_noise": faint_noise,
}
LEVELS = (-40.0, -26.0, -12.0)
SILENCE_LEVELS = (-80.0, -70.0, -62.0)


def make(kind: str, seconds: float, level_dbfs: float, seed: int) -> np.ndarray:
    """``seconds`` of ``kind`` at an RMS level of ``level_dbfs``, peak-limited below full scale."""
    wave = KINDS[kind](seconds, np.random.default_rng(seed))
    rms = float(np.sqrt(np.mean(np.square(wave)))) or 1.0
    wave = wave * (10 ** (level_dbfs / 20) / rms)
    peak = float(np.max(np.abs(wave)))
    if peak > 0.99:
        wave = wave * (0.99 / peak)
    return wave.astype(np.float32)
