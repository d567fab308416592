"""Acoustic fingerprints that recognise a replayed recording.

A replay is the *same recording* played again: the exact file, or a copy that
went through noise, a gain change, resampling, a telephone channel, or was cut
or padded. A new utterance of the same speaker is not a replay, even of the
same words. Speaker embeddings cannot tell the two apart (a telephone copy of
an enrolled clip scored cosine 0.94 against its template, genuine 3 s queries
about 0.87), so this module compares the signal itself.

Method: sub-band energy-difference bits (Haitsma and Kalker, "A highly robust
audio fingerprinting system", ISMIR 2002), matched by bit error rate over all
time alignments. Each step of the clip gives one word: the signs of the energy
differences between adjacent bands (log-spaced over 300-3400 Hz), differenced
again over time. Why this and not landmark hashes:

- Signs of energy differences do not change with gain, and a band plan inside
  300-3400 Hz survives the telephone band, mu-law and resampling.
- The clips are short (median 1.3-3 s of speech, 0.5 s at least). Landmark
  hashes need many spectral peaks to vote; bits give dozens of comparisons every
  step, so a 0.5 s sub-segment still gives thousands.
- Matching a query against every alignment of a stored clip finds cut, padded
  or shifted copies and sub-segments with no extra machinery.

Only loud bits are compared: a bit is kept when its four cells are within the
version's ``loud_db`` of the clip's loud cells (a second word, the mask, per step).
Noise added to a copy flips the bits of quiet cells first, silence has no bits
worth keeping, and padding with silence must not count.

**Versions** (:data:`VERSIONS`; each print says its own, and only prints of one version
compare). Version 1: 128 ms frames, 16 ms steps, 33 bands (32 bits), bits within 30 dB
of the loud cells. Version 2 (:data:`VERSION`, what :func:`fingerprint` makes): 64 ms
frames, 8 ms steps, 49 bands (48 bits, in 64-bit words), bits within 20 dB. Under 1 s,
version 1's bits were too few and too easily flipped to tell a copy drowned in noise from
another short word: on clips no figure had used, at the threshold flagging 0.5% of
genuine clips, version 1 found 94.9% of copies (75% at 5 dB SNR) and version 2 99.6%
(97.7%) (``scripts/eval_fingerprint_v2.py``, where it was chosen). Most of the gain is
the loudness kept: noise flips the bits of cells 20-30 dB below the loudest first.
Version-1 prints stay readable and matched, since the audio to redo them is not kept.

The score of an alignment is a z-score over the ``N`` loud bits of the
smaller clip (the one with fewer loud bits): of them ``n`` are loud in both
clips at that alignment, ``e`` of these differ, and the ``N - n`` left
uncovered count as differing, ``(n - 2e - (N - n)) / sqrt(N)``. A pair's
score is the best over all alignments. A plain bit error rate could not serve
one threshold: a 0.5 s overlap of unrelated speech often agrees by chance as
well as a 10 s copy at 5 dB SNR does; the z-score weighs agreement by how
much of it there is. Counting uncovered bits matters because a replay, cut,
padded or a sub-segment, covers all of the shorter clip, while two recordings
of similar speech (one voice saying "twenty-two" and "twenty-eight") agree
best on a partial overlap: scored over the overlap alone (``(n - 2e) /
sqrt(n)``, the first version), they reached scores of 10-18, which 5 dB copies
of short clips do not (fold A of ``scripts/eval_replay.py``).

The contract:

- :func:`fingerprint` takes 16 kHz mono float samples and returns a
  :class:`Fingerprint` of :data:`VERSION` (or of an older version when asked: 16
  bytes per 8 ms step, about 2,000 bytes a second; version 1, 500). It raises
  :class:`~speakerdb.errors.AudioError` for input that is not 1-D, is empty, has
  NaN or infinite samples, is silent (below -90 dBFS RMS), is shorter than
  :data:`MIN_SECONDS`, or has under 0.13 s of loud steps.
- :meth:`Fingerprint.to_bytes` / :meth:`Fingerprint.from_bytes` round-trip it
  exactly (a versioned little-endian layout; bad bytes raise ``ValueError``).
- :func:`similarity` is that score (symmetric): below the version's threshold
  (:func:`threshold_of`) for different recordings, tens to hundreds for the same
  one. :func:`matches` compares it with that threshold: version 1's was chosen on
  one fold of the shared corpus's speakers and measured on the other
  (``scripts/eval_replay.py``); version 2's on ktuberling clips no figure had used
  and measured on the shared corpus (``scripts/eval_fingerprint_v2.py``).
- :func:`best_matches` scores one query against many stored fingerprints at
  once (the replay check against enrolled clips and recent queries).

Cost: a version-2 fingerprint is one 1024-point FFT per 8 ms step (about 10-40 ms
for 3 s of audio). Matching costs an AND, a XOR and two popcounts per (loud query step, stored
step), all in numpy: four times version 1's steps, which took 0.6 s for a 3 s query
against 1,000 stored 3 s clips on a loaded shared core, linear in the stored audio
(``scripts/eval_replay.py --bench``); the replay check scores only a few candidates the
index finds (:mod:`speakerdb.audio._fpindex`). The chance of a false match grows with
the number of stored clips a query meets, as for any best-of-N score.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AudioError

__all__ = [
    "DEFAULT_THRESHOLD",
    "MIN_SECONDS",
    "VERSION",
    "VERSIONS",
    "Fingerprint",
    "best_matches",
    "fingerprint",
    "matches",
    "similarity",
    "threshold_of",
]

SAMPLE_RATE = 16_000
_BLOCK_FRAMES = 1024  # frames windowed and transformed at once (16 MB)
_LOW_HZ, _HIGH_HZ = 300.0, 3400.0  # the telephone band
#: Shortest input accepted, in seconds.
MIN_SECONDS = 0.25
#: Least sound above silence a clip needs for a fingerprint, in seconds (8 steps of 16 ms).
_MIN_HEARD_S = 0.128
# Below -90 dBFS RMS (under 16-bit dither) there is no signal at all: the
# relative loudness test would otherwise keep the bits of digital silence.
_SILENT_RMS = 10 ** (-90 / 20)


@dataclass(frozen=True)
class _Plan:
    """How one version of the fingerprint cuts audio into steps and bits."""

    frame: int  # FFT frame, samples
    hop: int  # one step, samples
    bands: int  # log-spaced over the telephone band: bands - 1 bits a step
    #: Bits from cells more than this many dB below the clip's loud cells are not compared.
    loud_db: float
    #: Similarity from which :func:`matches` says "same recording".
    threshold: float

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        return np.uint32 if self.bands <= 33 else np.uint64

    @property
    def bits(self) -> int:
        return self.bands - 1

    @property
    def min_bits(self) -> int:
        """Fewest loud bits an alignment must compare to be scored: half of 0.16 s's."""
        return round(0.16 * SAMPLE_RATE / self.hop) * self.bits // 2


#: Version 1: 128 ms frames, 16 ms steps, 32 bits (fold A of eval_replay.py chose 7.45).
#: Version 2: 64 ms frames, 8 ms steps, 48 bits: chosen on clips no replay figure had used
#: (``scripts/eval_fingerprint_v2.py``). Prints of both versions are read and matched.
_PLANS = {
    1: _Plan(frame=2048, hop=256, bands=33, loud_db=30.0, threshold=7.5),
    2: _Plan(frame=1024, hop=128, bands=49, loud_db=20.0, threshold=6.9),
}
#: The version :func:`fingerprint` makes unless told otherwise.
VERSION = 2
#: Every version :meth:`Fingerprint.from_bytes` reads.
VERSIONS = tuple(_PLANS)
#: Similarity from which :func:`matches` says "same recording", for :data:`VERSION`.
DEFAULT_THRESHOLD = _PLANS[VERSION].threshold

_MAGIC = b"SDFP"
_HEADER = struct.Struct("<4sBI")  # magic, version, number of steps


def _plan_bits(version: int) -> int:
    """How many bits a step of ``version`` has (the index selects among them)."""
    return _PLANS[version].bits


def threshold_of(version: int) -> float:
    """The similarity from which two fingerprints of ``version`` are the same recording."""
    return _PLANS[version].threshold


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """The fingerprint of one clip: two words per step of its version's plan.

    ``bits`` (unsigned, shape ``(n,)``: uint32 for version 1, uint64 for version 2)
    are the energy-difference signs; ``mask`` (same dtype and shape) marks the bits
    loud enough to survive noise, the only ones compared. A step whose mask is 0 is
    silence. Only fingerprints of one version can be compared.
    """

    bits: np.ndarray
    mask: np.ndarray
    version: int = VERSION

    def __len__(self) -> int:
        return int(self.bits.size)

    def to_bytes(self) -> bytes:
        """A compact, versioned encoding: :meth:`from_bytes` gives it back exactly."""
        word = np.dtype(_PLANS[self.version].dtype).newbyteorder("<")
        header = _HEADER.pack(_MAGIC, self.version, len(self))
        return header + self.bits.astype(word).tobytes() + self.mask.astype(word).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Decode :meth:`to_bytes`' output, of any version in :data:`VERSIONS`;
        ``ValueError`` when it is not that."""
        if len(data) < _HEADER.size:
            raise ValueError("not a speakerdb fingerprint: too short")
        magic, version, n = _HEADER.unpack_from(data)
        if magic != _MAGIC or version not in _PLANS:
            raise ValueError(
                f"not a speakerdb fingerprint of version {', '.join(map(str, VERSIONS))}"
            )
        dtype = _PLANS[version].dtype
        word = np.dtype(dtype).newbyteorder("<")
        if len(data) != _HEADER.size + 2 * word.itemsize * n:
            raise ValueError("speakerdb fingerprint: length does not match its header")
        words = np.frombuffer(data, dtype=word, count=2 * n, offset=_HEADER.size)
        return cls(bits=words[:n].astype(dtype), mask=words[n:].astype(dtype), version=version)


def fingerprint(samples: np.ndarray, version: int = VERSION) -> Fingerprint:
    """The fingerprint of 16 kHz mono audio (float, full scale 1.0), of ``version``.

    Raises :class:`AudioError` when the input is not 1-D, is empty, has NaN or
    infinite samples, is shorter than :data:`MIN_SECONDS`, or has fewer than
    :data:`_MIN_HEARD_S` of sound above silence (nothing to match).
    """
    return fingerprint_with_margins(samples, version)[0]


def fingerprint_with_margins(
    samples: np.ndarray, version: int = VERSION
) -> tuple[Fingerprint, np.ndarray]:
    """:func:`fingerprint`, and how far each bit's energy difference is from flipping:
    float ``(steps, bits)``, small for the bits noise flips first (the index's probes,
    :mod:`speakerdb.audio._fpindex`)."""
    plan = _PLANS[version]
    x = _checked(samples)
    # Log energies: a difference of logs is a ratio, which gain does not change,
    # and it keeps quiet bands from being swamped by the loudest one.
    log_e = np.log(_band_energies(x, plan) + 1e-10)
    across = log_e[:, :-1] - log_e[:, 1:]
    over_time = across[1:] - across[:-1]
    weights = np.left_shift(plan.dtype(1), np.arange(plan.bits, dtype=plan.dtype))
    bits = (over_time > 0).astype(plan.dtype) @ weights
    mask = _loud_bits(log_e, plan.loud_db).astype(plan.dtype) @ weights
    heard = np.count_nonzero(mask) * plan.hop / SAMPLE_RATE
    if heard < _MIN_HEARD_S:
        raise AudioError(
            f"clip has {heard:.2f} s of non-silent audio, at least {_MIN_HEARD_S:.2f} s "
            "is needed for a fingerprint"
        )
    printed = Fingerprint(
        bits=bits.astype(plan.dtype), mask=mask.astype(plan.dtype), version=version
    )
    return printed, np.abs(over_time)


def _loud_bits(log_e: np.ndarray, loud_db: float) -> np.ndarray:
    """Which bits come from cells loud enough to survive noise, ``(frames - 1, bands - 1)``.

    A bit compares four cells (two bands, two frames); it is kept when their mean
    level is within ``loud_db`` of the clip's loud cells. Noise added to a
    copy flips the quiet cells' bits first, and silence has no bits worth keeping.
    """
    level = (log_e[1:, :-1] + log_e[1:, 1:] + log_e[:-1, :-1] + log_e[:-1, 1:]) / 4
    loud = np.percentile(log_e, 95)
    return level >= loud - loud_db * np.log(10) / 10


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """How far above chance the best alignment of ``a`` and ``b`` agrees (symmetric).

    At each alignment, over the ``N`` loud bits of the clip with fewer, of
    which ``n`` are loud in both and ``e`` of these differ, the score is
    ``(n - 2e - (N - n)) / sqrt(N)``: the z-score of the agreement were the
    bits independent coin flips, with the bits the alignment leaves uncovered
    counted as disagreeing. It is below about 8 for different recordings and
    tens to hundreds for the same one, growing with the length they share. 0
    when no alignment shares the plan's ``min_bits`` bits (and never negative).
    Both must be of one version (``ValueError`` otherwise).
    """
    return float(best_matches(a, [b])[0])


def matches(a: Fingerprint, b: Fingerprint, threshold: float | None = None) -> bool:
    """Whether ``a`` and ``b`` are the same recording: similarity at least ``threshold``
    (by default their version's, :func:`threshold_of`)."""
    return similarity(a, b) >= (threshold_of(a.version) if threshold is None else threshold)


def best_matches(query: Fingerprint, stored: Sequence[Fingerprint]) -> np.ndarray:
    """The :func:`similarity` of ``query`` with each of ``stored``: float64 ``(len(stored),)``.

    The stored fingerprints are laid end to end in one row, with gaps of
    silent steps as long as the query so that no alignment spans two of them,
    and each loud query step is compared with the whole row at once: the cost
    is an AND, XOR and two popcounts per (loud query step, stored step).
    ``ValueError`` when a stored fingerprint is not of the query's version.
    """
    if not stored:
        return np.zeros(0)
    if any(fp.version != query.version for fp in stored):
        raise ValueError(f"only fingerprints of one version compare (the query's: {query.version})")
    gap = len(query)
    row_bits, row_mask, starts = _lay_out(stored, gap)
    errors, compared = _count_over_lags(query, row_bits, row_mask)
    # Lag k puts query step 0 at row step k. Stored clip j is seen by lags
    # starts[j] - gap + 1 .. starts[j] + len - 1; the gaps keep these apart, and
    # the lags in between see only silence and score 0.
    first_lags = np.asarray(starts) - gap + 1
    owner = np.maximum(np.searchsorted(first_lags, np.arange(compared.size), "right") - 1, 0)
    smaller = np.minimum(_loud_bits_of(query), [_loud_bits_of(fp) for fp in stored])[owner]
    z = _covered_z(errors, compared, smaller)
    z[compared < _PLANS[query.version].min_bits] = 0.0
    return np.maximum(np.maximum.reduceat(z, first_lags), 0.0)


def _covered_z(errors: np.ndarray, compared: np.ndarray, smaller: np.ndarray) -> np.ndarray:
    """The agreement's z-score over the smaller clip's loud bits, those left uncovered
    by the alignment counted as disagreeing.

    A copy covers every loud bit of the shorter of the two (a cut, padded or
    noisy copy, a sub-segment, or an enrolled clip inside a longer query); two
    different recordings of similar speech (one speaker saying "twenty-two" and
    "twenty-eight") agree best on a partial overlap, which the plain z-score
    ``(n - 2e) / sqrt(n)`` rewarded as much as a copy drowned in noise.
    """
    uncovered = smaller - compared
    return (compared - 2 * errors - uncovered) / np.sqrt(np.maximum(smaller, 1))


def _loud_bits_of(printed: Fingerprint) -> int:
    return int(_popcount(printed.mask).sum(dtype=np.int64))


def _checked(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise AudioError(f"a fingerprint takes mono audio (1-D samples), got shape {x.shape}")
    if x.size == 0:
        raise AudioError("empty clip: no audio to fingerprint")
    if not np.issubdtype(x.dtype, np.number):
        raise AudioError(f"samples must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise AudioError("clip has NaN or infinite samples")
    if np.sqrt(np.mean(x**2)) < _SILENT_RMS:
        raise AudioError("clip is silent: nothing to fingerprint")
    if x.size < MIN_SECONDS * SAMPLE_RATE:
        raise AudioError(
            f"clip is {x.size / SAMPLE_RATE:.2f} s, at least {MIN_SECONDS} s is needed "
            "for a fingerprint"
        )
    return x


def _band_energies(x: np.ndarray, plan: _Plan) -> np.ndarray:
    """Energy per (frame, band), shape ``(frames, plan.bands)``."""
    if x.size < plan.frame:
        x = np.pad(x, (0, plan.frame - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, plan.frame)[:: plan.hop]
    matrix = _band_matrix(plan.frame, plan.bands)
    used = np.flatnonzero(matrix.any(axis=1))
    low, high = used[0], used[-1] + 1
    window = np.hanning(plan.frame)
    energies = np.empty((len(frames), plan.bands))
    # A block of frames at a time: windowing every frame of a 600 s clip at once held
    # 600 MB and took seconds; only the bins inside the bands are squared and summed.
    for start in range(0, len(frames), _BLOCK_FRAMES):
        spectrum = np.fft.rfft(frames[start : start + _BLOCK_FRAMES] * window, axis=1)
        spectrum = spectrum[:, low:high]
        power = spectrum.real**2 + spectrum.imag**2
        energies[start : start + _BLOCK_FRAMES] = power @ matrix[low:high]
    return energies


def _band_matrix(frame: int, bands: int) -> np.ndarray:
    """``(bins, bands)`` 0/1 matrix summing FFT bins into log-spaced bands."""
    edges = np.geomspace(_LOW_HZ, _HIGH_HZ, bands + 1)
    freqs = np.fft.rfftfreq(frame, 1 / SAMPLE_RATE)
    band = np.searchsorted(edges, freqs, side="right") - 1
    matrix = np.zeros((freqs.size, bands))
    inside = (band >= 0) & (band < bands)
    matrix[np.nonzero(inside)[0], band[inside]] = 1.0
    return matrix


def _lay_out(stored: Sequence[Fingerprint], gap: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """All stored fingerprints in one row, each preceded by ``gap`` silent steps."""
    starts, pos = [], gap
    for fp in stored:
        starts.append(pos)
        pos += len(fp) + gap
    bits = np.zeros(pos, dtype=stored[0].bits.dtype)
    mask = np.zeros(pos, dtype=stored[0].bits.dtype)
    for start, fp in zip(starts, stored, strict=True):
        bits[start : start + len(fp)] = fp.bits
        mask[start : start + len(fp)] = fp.mask
    return bits, mask, starts


def _count_over_lags(
    query: Fingerprint, row_bits: np.ndarray, row_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bit errors and bits compared for each lag ``k`` (query step 0 at row step ``k``)."""
    n_lags = row_bits.size - len(query) + 1
    steps = np.flatnonzero(query.mask)  # silent query steps add nothing
    errors = np.zeros(n_lags, dtype=np.int64)
    compared = np.zeros(n_lags, dtype=np.int64)
    # row[i + k] for every query step i and lag k, as a view; taken a block of
    # query steps at a time so the copies stay near 16 MB.
    bits_at = np.lib.stride_tricks.sliding_window_view(row_bits, n_lags)
    mask_at = np.lib.stride_tricks.sliding_window_view(row_mask, n_lags)
    block = max(1, (1 << 22) // n_lags)
    for b0 in range(0, steps.size, block):
        rows = steps[b0 : b0 + block]
        both = mask_at[rows] & query.mask[rows, None]
        wrong = (bits_at[rows] ^ query.bits[rows, None]) & both
        errors += _popcount(wrong).sum(axis=0, dtype=np.int64)
        compared += _popcount(both).sum(axis=0, dtype=np.int64)
    return errors, compared


def _popcount(words: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy 2
        return np.bitwise_count(words)
    width = words.dtype.itemsize
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(*words.shape, width)
    return _BYTE_COUNTS[as_bytes].sum(axis=-1, dtype=np.uint8)


_BYTE_COUNTS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
