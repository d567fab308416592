"""The copies of a stored clip that ``scripts/eval_replay.py`` replays (evaluation only):
the issue's list of transforms (the exact file, white and pink noise, gain, resampling,
the 8 kHz mu-law telephone band) and the extra checks (cut, padded, a sub-segment)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import soxr
from _replay_corpus import RATE

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def noisy(snr_db: float, pink: bool) -> Transform:
    """Adds white or pink noise at ``snr_db`` below the clip's mean power."""

    def add(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(x.size)
        if pink:  # 1/f power: scale the spectrum by 1/sqrt(f)
            spectrum = np.fft.rfft(noise)
            f = np.arange(spectrum.size, dtype=float)
            f[0] = 1.0
            noise = np.fft.irfft(spectrum / np.sqrt(f), n=x.size)
        power = np.mean(x**2) / 10 ** (snr_db / 10)
        return x + noise * np.sqrt(power / np.mean(noise**2))

    return add


def resampled(rate: int) -> Transform:
    return lambda x, _: soxr.resample(soxr.resample(x, RATE, rate), rate, RATE)


def telephone(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
    """300-3400 Hz band-pass, 8 kHz, 8-bit mu-law, back to 16 kHz."""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1 / RATE)
    spectrum[(f < 300) | (f > 3400)] = 0
    y = np.clip(soxr.resample(np.fft.irfft(spectrum, n=x.size), RATE, 8000), -1, 1)
    mu = 255.0
    code = np.round(np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) * 127) / 127
    return soxr.resample(np.sign(code) * ((1 + mu) ** np.abs(code) - 1) / mu, 8000, RATE)


def middle(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
    """The middle 60% of the clip, at least 0.5 s (speakerdb's shortest clip)."""
    n = min(x.size, max(int(0.6 * x.size), RATE // 2))
    start = (x.size - n) // 2
    return x[start : start + n]


TRANSFORMS: dict[str, Transform] = {
    "exact file": lambda x, _: x,
    "white noise 20 dB": noisy(20, pink=False),
    "white noise 10 dB": noisy(10, pink=False),
    "white noise 5 dB": noisy(5, pink=False),
    "pink noise 20 dB": noisy(20, pink=True),
    "pink noise 10 dB": noisy(10, pink=True),
    "pink noise 5 dB": noisy(5, pink=True),
    "gain +12 dB": lambda x, _: x * 10 ** (12 / 20),
    "gain -12 dB": lambda x, _: x * 10 ** (-12 / 20),
    "resampled via 8 kHz": resampled(8000),
    "resampled via 22.05 kHz": resampled(22050),
    "telephone mu-law 8 kHz": telephone,
    "first 0.25 s cut": lambda x, _: x[RATE // 4 :],
    "0.5 s silence padded": lambda x, _: np.concatenate([np.zeros(RATE // 2), x]),
    "middle 60% (sub-segment)": middle,
}


#: The copies the issue's acceptance lists; the others are extra checks.
ACCEPTANCE = [name for name in TRANSFORMS if not name.startswith(("first", "0.5 s", "middle"))]


def copies(
    x: np.ndarray, seed: int, j: int, names: Iterable[str] = TRANSFORMS
) -> Iterator[tuple[str, np.ndarray]]:
    """Each transform's copy of ``x``, the ``j``-th clip replayed, in :data:`TRANSFORMS`'
    order (``names``: which): its noise is seeded by ``seed``, ``j`` and the transform's
    place in :data:`TRANSFORMS`, so a copy is the same whichever others are made."""
    for t, (name, transform) in enumerate(TRANSFORMS.items()):
        if name in names:
            yield name, transform(x, np.random.default_rng([seed, j, t]))
