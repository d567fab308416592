"""Is an enrollment clip someone speaking? Refuse noise, hum, tones and music-like clips.

An encoder embeds whatever it is given, so 3 s of white noise or a 50 Hz hum
would be enrolled as a person. :func:`assess_speech` measures cues that speech
has and those sounds lack, on 40 ms frames (every 20 ms) of a 16 kHz mono
clip, and refuses by the first rule that fails, in this order:

1. silence: the loud frames (95th percentile) are under :data:`MIN_LEVEL_DBFS`;
2. mains hum: over :data:`MAX_HUM_SHARE` of the clip's power lies on the lines
   of 50 or 60 Hz and their multiples (one high-resolution spectrum of the
   whole clip: a voice's harmonics glide through those lines, hum stays on them);
3. steady: the active frames' level varies by under :data:`MIN_ENERGY_SPREAD_DB`
   (10th to 90th percentile); speech rises and falls with every syllable. A pure
   tone or sweep is told from steady noise by ``peak_share`` (wording only);
4. noise: under :data:`MIN_VOICED_SHARE` of the active frames are voiced *and*
   the spectrum's shape changes by under :data:`MIN_SPECTRAL_FLUX_DB` 60 ms apart.
   A frame is voiced when its whitened autocorrelation peaks at
   :data:`VOICED_CORRELATION` or more, at a pitch of 60-420 Hz continuous over
   :data:`MIN_VOICED_RUN` frames; speech with few vowels ("six", "pssst") still
   moves from hiss to vowel, which steady or gated noise never does. A clip
   with no voiced frame at all is refused here too;
5. drums: the voiced frames are single sinusoids (their median ``voiced_peak_share``
   over :data:`MAX_PEAK_SHARE`) and the others broadband bursts (``peak_share``
   under :data:`DRUM_PEAK_SHARE`): a kick drum and a snare;
6. music or a repeated sound: the spectrum's shape hardly changes (under
   :data:`MIN_SPECTRAL_FLUX_ALONE_DB`), as in chords, a melody of one timbre,
   dial tones or clicks;
7. held notes: over :data:`MAX_STEADY_PITCH_SHARE_ALONE` of the voiced steps
   keep their pitch within :data:`STEADY_PITCH_CHANGE`, or over
   :data:`MAX_STEADY_PITCH_SHARE` do and one note lasts over
   :data:`MAX_HELD_PITCH_S`. A voice's pitch glides; an instrument holds it.

Every cue is returned in :class:`SpeechAssessment`, so a refusal can be
explained and the limits audited. They were set on the tuning speakers of the
shared corpus and checked on the held-out ones, and against generated
non-speech, by ``scripts/eval_speech_gate.py``; it prints each rule's margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpeechAssessment", "assess_speech"]

SAMPLE_RATE = 16_000
FRAME = 640  # 40 ms: two periods of the lowest pitch searched (60 Hz)
HOP = 320  # 20 ms
_NFFT = 2 * FRAME  # zero-padded to twice the frame, so the autocorrelation is not circular
_BIN_HZ = SAMPLE_RATE / _NFFT

#: Seconds of a clip that are assessed (the start): plenty to tell speech, and bounded memory.
MAX_ANALYSIS_S = 30.0
#: Loud frames quieter than this (dBFS) are silence, whatever else they hold.
MIN_LEVEL_DBFS = -55.0
#: Frames within this many dB of the loud frames are the clip's active part.
ACTIVE_RANGE_DB = 30.0
#: Share of power on mains multiples above which the clip is hum.
MAX_HUM_SHARE = 0.8
#: Median share of a voiced frame's power near its strongest bin above which it is a single
#: sinusoid (a tone burst, a kick drum), not a voice's harmonics.
MAX_PEAK_SHARE = 0.998
#: ... when the active frames' median share is under this (the rest broadband bursts): drums.
DRUM_PEAK_SHARE = 0.45
#: The same share above which a steady clip is called a tone rather than noise (wording only).
TONE_PEAK_SHARE = 0.9
#: Energy range (dB) of the active frames below which the clip is steady.
MIN_ENERGY_SPREAD_DB = 2.0
#: Normalised autocorrelation at which a frame counts as voiced.
VOICED_CORRELATION = 0.6
#: The largest relative pitch change between neighbouring voiced frames (a vowel's contour).
PITCH_JUMP = 0.2
#: Whitening raises no band by more than this fraction's inverse below the frame's loudest.
WHITEN_FLOOR = 1e-3
#: The fewest frames in a row with a continuous pitch that count as voiced (60 ms).
MIN_VOICED_RUN = 3
#: Share of voiced frames, among the active ones, below which a clip whose spectrum
#: changes less than MIN_SPECTRAL_FLUX_DB is noise-like (one with no voiced frame always is).
MIN_VOICED_SHARE = 0.12
#: Spectral change (dB, see _spectral_flux) that a mostly unvoiced clip needs to be speech.
MIN_SPECTRAL_FLUX_DB = 3.8
#: Spectral change (dB) below which a clip is refused whatever else it shows: every sound
#: of the shared corpus changes by more, noise by about 3 dB, chords and clicks by less.
MIN_SPECTRAL_FLUX_ALONE_DB = 2.5
#: A relative pitch change per hop smaller than this holds the pitch (0.3 %, 5 cents).
STEADY_PITCH_CHANGE = 0.003
#: Share of steady-pitch steps above which, with a note held MAX_HELD_PITCH_S, it is music.
MAX_STEADY_PITCH_SHARE = 0.4
#: Share of steady-pitch steps above which the clip is held notes whatever their length.
MAX_STEADY_PITCH_SHARE_ALONE = 0.8
#: A pitch held this long (s) within STEADY_PITCH_CHANGE is a note; with a steady share, music.
MAX_HELD_PITCH_S = 0.2

_PITCH_HZ = (60.0, 420.0)
_BAND_HZ = (60.0, 1000.0)  # where pitch is sought: the strong low harmonics
_FORCE = " (--force enrolls anyway)"
_FIX = "record the person speaking" + _FORCE


@dataclass(frozen=True)
class SpeechAssessment:
    """Whether a clip sounds like speech, why not, and the measured cues.

    ``reason`` is None for speech; otherwise it says what the clip sounds like and
    how to fix it. The cues are described in :mod:`speakerdb.audio._speechness`.
    """

    is_speech: bool
    reason: str | None
    level_dbfs: float
    hum_share: float
    peak_share: float
    energy_spread_db: float
    spectral_flux_db: float
    voiced_share: float
    voiced_peak_share: float
    steady_pitch_share: float
    held_pitch_s: float


def assess_speech(samples: np.ndarray) -> SpeechAssessment:
    """Assess a 16 kHz mono clip (any float or int dtype; any length, even empty).

    Only the first :data:`MAX_ANALYSIS_S` seconds are assessed, which bounds the
    memory (about 60 MB) for the longest clip speakerdb decodes.
    """
    raw = np.asarray(samples)[: int(MAX_ANALYSIS_S * SAMPLE_RATE)]
    wav = raw.astype(np.float64).ravel()
    if np.issubdtype(raw.dtype, np.integer):
        wav = wav / float(np.iinfo(raw.dtype).max)
    wav = wav - wav.mean() if wav.size else wav
    power = _frame_power(wav)
    energy_db = _frame_energy_db(wav)
    level = float(np.percentile(energy_db, 95)) if energy_db.size else -120.0
    active = energy_db >= max(level - ACTIVE_RANGE_DB, MIN_LEVEL_DBFS)
    pitch = _pitch(power[active])
    cues = {
        "level_dbfs": level,
        "hum_share": _hum_share(wav),
        "peak_share": _peak_share(power[active]),
        "energy_spread_db": _spread(energy_db[active]),
        "spectral_flux_db": _spectral_flux(power[active]),
        "voiced_share": float(np.mean(pitch > 0)) if pitch.size else 0.0,
        "voiced_peak_share": _peak_share(power[active][pitch > 0]),
    }
    cues["steady_pitch_share"], cues["held_pitch_s"] = _steadiness(pitch)
    reason = _reason(cues)
    return SpeechAssessment(reason is None, reason, **cues)


def _reason(c: dict[str, float]) -> str | None:
    """The first cue on the wrong side of its limit, as a sentence; None for speech."""
    if c["level_dbfs"] < MIN_LEVEL_DBFS:
        return (
            f"looks like silence (loudest frames at {c['level_dbfs']:.0f} dBFS): record "
            "the person speaking, close to the microphone" + _FORCE
        )
    if c["hum_share"] > MAX_HUM_SHARE:
        return (
            f"looks like mains hum ({c['hum_share']:.0%} of the power on multiples of 50 or "
            "60 Hz), not speech: record the person speaking, away from power cables" + _FORCE
        )
    if c["energy_spread_db"] < MIN_ENERGY_SPREAD_DB:
        # Only the wording depends on the peak: a steady level alone refuses.
        what = "a pure tone or a sweep" if c["peak_share"] > TONE_PEAK_SHARE else "steady noise"
        return (
            f"looks like {what} (its level varies by only {c['energy_spread_db']:.1f} dB), "
            "not speech: " + _FIX
        )
    if c["voiced_share"] == 0 or (
        c["voiced_share"] < MIN_VOICED_SHARE and c["spectral_flux_db"] < MIN_SPECTRAL_FLUX_DB
    ):
        return (
            f"looks like noise, clicks or percussion (only {c['voiced_share']:.0%} of it is "
            "voiced), not speech: " + _FIX
        )
    if c["voiced_peak_share"] > MAX_PEAK_SHARE and c["peak_share"] < DRUM_PEAK_SHARE:
        return "looks like drums (single sinusoids between broadband bursts), not speech: " + _FIX
    if c["spectral_flux_db"] < MIN_SPECTRAL_FLUX_ALONE_DB:
        return (
            f"looks like music or a repeated sound (its spectrum changes by only "
            f"{c['spectral_flux_db']:.1f} dB), not speech: " + _FIX
        )
    if _music_like(c["steady_pitch_share"], c["held_pitch_s"]):
        return (
            f"looks like music or held tones ({c['steady_pitch_share']:.0%} of its pitch is "
            f"steady, a note held {c['held_pitch_s']:.2f} s), not speech: record the person "
            "speaking, without music" + _FORCE
        )
    return None


def _music_like(steady_share: float, held_s: float) -> bool:
    """Held notes: nearly all of the pitch steady, or much of it with one long note.

    Some real voices (processed game characters) hold half of their pitch steps
    for up to 0.16 s, so a half-steady clip needs a longer note as well.
    """
    if steady_share > MAX_STEADY_PITCH_SHARE_ALONE:
        return True
    return steady_share > MAX_STEADY_PITCH_SHARE and held_s > MAX_HELD_PITCH_S


def _frames(wav: np.ndarray) -> np.ndarray:
    """40 ms frames every 20 ms (a view); a clip shorter than a frame is padded to one."""
    if wav.size < FRAME:
        wav = np.pad(wav, (0, FRAME - wav.size))
    n = 1 + (wav.size - FRAME) // HOP
    return np.lib.stride_tricks.sliding_window_view(wav, FRAME)[::HOP][:n]


def _frame_power(wav: np.ndarray) -> np.ndarray:
    """Power spectrum of each Hann-windowed frame: (frames, bins)."""
    spectrum = np.fft.rfft(_frames(wav) * np.hanning(FRAME), n=_NFFT, axis=1)
    return np.asarray(np.square(np.abs(spectrum)) / FRAME)


def _frame_energy_db(wav: np.ndarray) -> np.ndarray:
    """Mean square of each frame, in dB relative to full scale."""
    return np.asarray(10.0 * np.log10(np.mean(np.square(_frames(wav)), axis=1) + 1e-12))


def _hum_share(wav: np.ndarray) -> float:
    """Share of the clip's power within 1.5 Hz of the multiples of 50 or 60 Hz up to 1 kHz.

    One spectrum of the whole clip, so its bins are narrow enough (1/duration Hz)
    to tell a steady mains line from a voice's gliding harmonics.
    """
    if wav.size < FRAME:
        return 0.0
    total = np.square(np.abs(np.fft.rfft(wav * np.hanning(wav.size))))
    whole = float(total.sum())
    if whole <= 0:
        return 0.0
    bin_hz = SAMPLE_RATE / wav.size
    freqs = np.arange(total.size) * bin_hz
    best = 0.0
    for mains in (50.0, 60.0):
        harmonic = np.abs(freqs - mains * np.round(freqs / mains)) <= 1.0 + bin_hz
        on = harmonic & (freqs >= mains / 2) & (freqs <= 1000.0)
        best = max(best, float(total[on].sum()) / whole)
    return best


def _peak_share(power: np.ndarray) -> float:
    """Median share of a frame's power within 50 Hz of its strongest bin.

    Near 1 for a single sinusoid (a pure tone, a sweep, a kick drum); a voice
    spreads its power over several harmonics and formants.
    """
    if power.shape[0] == 0:
        return 0.0
    peak = np.argmax(power, axis=1)
    cumulative = np.cumsum(np.pad(power, ((0, 0), (1, 0))), axis=1)
    rows = np.arange(power.shape[0])
    # 4 bins either side: the main lobe of a Hann window zero-padded to twice its length.
    hi = np.minimum(peak + 5, power.shape[1])
    near = cumulative[rows, hi] - cumulative[rows, np.maximum(peak - 4, 0)]
    return float(np.median(near / (cumulative[:, -1] + 1e-20)))


def _spectral_flux(power: np.ndarray) -> float:
    """Median change (dB RMS over 16 bands, level removed) of the spectrum's shape 60 ms apart.

    Speech moves from one sound to the next (hiss, vowel, nasal) several times a
    second; noise keeps its colour, even when it is switched on and off, and
    only its chance fluctuations (about 3 dB here) show.
    """
    lag = 3
    if power.shape[0] <= lag:
        return 0.0
    freqs = np.arange(power.shape[1]) * _BIN_HZ
    edges = np.geomspace(100.0, 7800.0, 17)
    band = np.digitize(freqs, edges) - 1  # -1 and 16 lie outside the bands
    bands = np.stack([power[:, band == k].sum(axis=1) for k in range(16)], axis=1)
    # The floor keeps empty bands (above 4 kHz in telephone audio) from adding noise.
    shape = 10.0 * np.log10(bands + 1e-10 * bands.max() + 1e-30)
    shape -= shape.mean(axis=1, keepdims=True)
    change = np.sqrt(np.mean(np.square(shape[lag:] - shape[:-lag]), axis=1))
    return float(np.median(change))


def _spread(energy_db: np.ndarray) -> float:
    if energy_db.size < 2:
        return 0.0
    low, high = np.percentile(energy_db, [10, 90])
    return float(high - low)


def _pitch(power: np.ndarray) -> np.ndarray:
    """Pitch (Hz) of each frame, 0 where it is not voiced; from the band-limited autocorrelation."""
    if power.shape[0] == 0:
        return np.zeros(0)
    freqs = np.arange(power.shape[1]) * _BIN_HZ
    inside = (freqs >= _BAND_HZ[0]) & (freqs <= _BAND_HZ[1])
    band = _whiten(power, inside) * inside
    acf = np.fft.irfft(band, n=_NFFT, axis=1)[:, :FRAME]
    # Dividing by the window's own autocorrelation undoes the taper's bias to short lags.
    window = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(FRAME), n=_NFFT)) ** 2)[:FRAME]
    lo, hi = int(SAMPLE_RATE / _PITCH_HZ[1]), int(SAMPLE_RATE / _PITCH_HZ[0])
    norm = acf[:, lo : hi + 1] / window[lo : hi + 1] * window[0] / (acf[:, :1] + 1e-20)
    best = np.argmax(norm, axis=1)
    peak = norm[np.arange(norm.shape[0]), best]
    pitch = SAMPLE_RATE / (lo + best + _parabolic(norm, best))
    return np.where((peak >= VOICED_CORRELATION) & _continuous(pitch), pitch, 0.0)


def _continuous(pitch: np.ndarray) -> np.ndarray:
    """Frames in a run of at least :data:`MIN_VOICED_RUN` whose pitch moves by under PITCH_JUMP.

    A vowel holds a pitch contour over several frames; the chance peaks of noise
    land on a random lag each frame.
    """
    near = np.abs(np.diff(np.log(pitch))) < np.log1p(PITCH_JUMP)
    keep = np.zeros(pitch.size, dtype=bool)
    for start, stop in _runs(near):
        if stop - start + 1 >= MIN_VOICED_RUN:
            keep[start : stop + 1] = True
    return keep


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of true values, stop exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], flags, [False]]).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _whiten(power: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Each frame's spectrum divided by its own smooth envelope (a 500 Hz moving average).

    Harmonics stay peaks while a sloping noise spectrum (pink, brown) becomes
    flat, so lowpass noise no longer looks periodic to the autocorrelation.
    """
    width = round(500.0 / _BIN_HZ) | 1
    padded = np.pad(power, ((0, 0), (width // 2, width // 2)), mode="edge")
    sums = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    envelope = (sums[:, width:] - sums[:, :-width]) / width
    # The floor keeps an empty band (below 300 Hz in telephone audio) from being
    # raised to the level of the harmonics, where its noise would hide them.
    # The floor follows the band's loudest part, not a brown noise's rumble below it.
    floor = WHITEN_FLOOR * envelope[:, inside].max(axis=1, keepdims=True) + 1e-20
    return np.asarray(power / np.maximum(envelope, floor))


def _parabolic(values: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Sub-sample offset of each row's peak, so a gliding pitch is not read as steps."""
    rows = np.arange(values.shape[0])
    inner = (best > 0) & (best < values.shape[1] - 1)
    left = values[rows, np.clip(best - 1, 0, None)]
    mid = values[rows, best]
    right = values[rows, np.clip(best + 1, None, values.shape[1] - 1)]
    denom = left - 2 * mid + right
    offset = np.where(inner & (denom < 0), 0.5 * (left - right) / np.where(denom < 0, denom, -1), 0)
    return np.asarray(offset)


def _steadiness(pitch: np.ndarray) -> tuple[float, float]:
    """Share of consecutive voiced steps whose pitch moves by under STEADY_PITCH_CHANGE,
    and the longest such run of steps, in seconds (the longest held note)."""
    both = (pitch[1:] > 0) & (pitch[:-1] > 0)
    if not both.any():
        return 0.0, 0.0
    change = np.abs(np.log(np.where(both, pitch[1:], 1.0) / np.where(both, pitch[:-1], 1.0)))
    steady = both & (change < STEADY_PITCH_CHANGE)
    longest = max((stop - start for start, stop in _runs(steady)), default=0)
    return float(steady.sum() / both.sum()), longest * HOP / SAMPLE_RATE
