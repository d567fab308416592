"""Whether two clips share recorded audio, decided from their waveforms alone.

scripts/eval_replay.py needs to know which "genuine new" clips of the shared corpus
really are new recordings: the corpus's telephone prompts reuse recordings (one digit
or word spliced into several prompts), so some genuine clips hold a stretch of a stored
clip's audio, and flagging them as replays is right. This module decides that without
speakerdb's fingerprint (deciding by the score under test would be circular):

- **The decision** (:func:`shared_stretch`): the highest normalised cross-correlation
  of the 16 kHz samples of a :data:`WINDOW_S` (0.5 s) stretch of one clip with any
  stretch of the other, over every alignment (both loud enough: digital silence is not
  a shared recording). The same recording, cut, padded or at another gain, gives
  about 1; two recordings of the same word by the same voice do not line up sample by
  sample and give far less (their phase differs). At least :data:`SAME` (0.9) is the
  same recording. Polarity is ignored (an inverted copy is the same recording).
- **The screen** (:class:`Screen`): deciding every pair of a fold (about 250,000)
  exhaustively would take hours, so a cheap look at short-time log spectra picks the
  pairs worth deciding: the mean cosine of 64 ms frames' log spectra (their fine
  structure) along a diagonal of 0.5 s, at 25 frames a second. It only needs recall:
  eval_replay checks each run that it passes spliced copies, and decides the
  highest-scoring pairs it rejected (none should be the same recording).

A time-reversed clip is compared as it is stored (reversed): it shares no recording
with natural speech, and the screen and decision see it that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft
from scipy.ndimage import uniform_filter1d

RATE = 16_000
#: Length of the stretch two clips must share, in seconds.
WINDOW_S = 0.5
#: Correlation from which a shared stretch is the same recording.
SAME = 0.9
#: How far from the screen's alignment the decision of a screened pair looks (seconds).
NEAR_S = 0.15
_HALF_FRAME = 320
# Chunks of the shorter clip start every 50 ms, so any shared stretch of WINDOW_S + 50 ms
# holds a whole chunk (and one of WINDOW_S all but 50 ms of one).
_CHUNK_HOP = RATE // 20
# A window counts when it is loud: within 30 dB of the clip's loudest windows and above
# -60 dBFS (two stretches of digital silence or hiss are not a shared recording).
_FLOOR_DB = 30.0
_ABS_FLOOR = 1e-3
# The screen's frames: 64 ms, every 40 ms, log power from 80 Hz to 4 kHz (the telephone
# voices' band), 0.5 s diagonals tested at 4 taps.
_FRAME, _SCREEN_HOP = 1024, 640
_BINS = slice(5, 257)
_DIAG = 12
_TAPS = (0, 4, 8, 11)


def shared_stretch(
    x: np.ndarray, y: np.ndarray, near: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """The best correlation of a :data:`WINDOW_S` stretch of ``x`` with ``y`` over every
    alignment, and where it is: ``(correlation, start in x, start in y)`` in seconds
    (``0.0, 0.0, 0.0`` when either clip has no loud stretch that long). ``near``, a
    start in each clip (seconds), searches only within :data:`NEAR_S` of it in both."""
    if near is None and x.size > y.size:  # chunks of the shorter clip, in the longer
        corr, y_at, x_at = shared_stretch(y, x)
        return corr, x_at, y_at
    w = int(WINDOW_S * RATE)
    if x.size < w or y.size < w:
        return 0.0, 0.0, 0.0
    x_energy = _window_energy(x, w)
    hop = _CHUNK_HOP
    offset = 0
    if near is not None:
        reach = int(NEAR_S * RATE)
        x_start = min(max(int(near[0] * RATE), 0), x.size - w)
        offset = min(max(int(near[1] * RATE) - reach, 0), y.size - w)
        y = y[offset : offset + w + 2 * reach]
        # The screen's frames are 40 ms apart: chunks within a frame of its start, every
        # 20 ms, each searched over every lag within NEAR_S.
        starts = np.arange(x_start - 2 * _HALF_FRAME, x_start + 2 * _HALF_FRAME + 1, _HALF_FRAME)
        starts = starts[(starts >= 0) & (starts <= x.size - w)]
    else:
        starts = np.arange(0, x.size - w + 1, hop)
    starts = starts[_loud(x_energy[starts], x_energy)]
    y_energy = _window_energy(y, w)
    y_ok = _loud(y_energy, y_energy)
    if not starts.size or not y_ok.any():
        return 0.0, 0.0, 0.0
    n = next_fast_len(y.size + w)
    y_spectrum = rfft(y, n)
    best = (0.0, 0.0, 0.0)
    block = max(1, (1 << 23) // n)
    for b0 in range(0, starts.size, block):
        chunk_starts = starts[b0 : b0 + block]
        chunks = np.stack([x[s : s + w] for s in chunk_starts])
        # Cross-correlation of each chunk with y at every lag k (chunk at y[k : k + w]).
        corr = irfft(np.conj(rfft(chunks, n, axis=1)) * y_spectrum, n, axis=1)
        corr = corr[:, : y.size - w + 1]
        norm = np.sqrt(x_energy[chunk_starts][:, None] * y_energy[None, :])
        ncc = np.where(y_ok[None, :], np.abs(corr) / np.maximum(norm, 1e-20), 0.0)
        i, k = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
        if ncc[i, k] > best[0]:
            best = (float(ncc[i, k]), chunk_starts[i] / RATE, (k + offset) / RATE)
    return best


def same_recording(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``x`` and ``y`` share :data:`WINDOW_S` of recorded audio (correlation at
    least :data:`SAME`)."""
    return shared_stretch(x, y)[0] >= SAME


def _window_energy(x: np.ndarray, w: int) -> np.ndarray:
    """Sum of squares of ``x[k : k + w]`` for every ``k``."""
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    return np.maximum(c[w:] - c[:-w], 0.0)


def _loud(energy: np.ndarray, of_clip: np.ndarray) -> np.ndarray:
    top = float(np.percentile(of_clip, 95)) if of_clip.size else 0.0
    floor = max(top * 10 ** (-_FLOOR_DB / 10), _ABS_FLOOR**2 * int(WINDOW_S * RATE))
    return np.asarray(energy >= floor)


def spectra(x: np.ndarray) -> np.ndarray:
    """The screen's frames of ``x``: log power spectra less their envelope (a moving
    mean over 15 bins, 234 Hz), the harmonics' fine structure, each of unit length (quiet
    frames, 40 dB under the clip's loud frames, are zero), float32 ``(frames, bins)``."""
    if x.size < _FRAME:
        x = np.pad(x, (0, _FRAME - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, _FRAME)[::_SCREEN_HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(_FRAME), axis=1)[:, _BINS]) ** 2
    energy = power.sum(axis=1)
    logs = np.log(power + 1e-12)
    # Without the envelope (the spectral tilt and formants, alike in all speech) chance
    # diagonals of unrelated speech scored up to 0.82, as high as spliced copies.
    logs -= uniform_filter1d(logs, 15, axis=1)
    norms = np.linalg.norm(logs, axis=1, keepdims=True)
    out = logs / np.maximum(norms, 1e-9)
    quiet = energy < max(float(np.percentile(energy, 95)) * 1e-4, 1e-8)
    out[quiet] = 0.0
    return out.astype(np.float32)


@dataclass
class Screen:
    """The screen's view of many clips (say, a fold's stored distractors): their frames
    laid end to end, with gaps so that no diagonal spans two clips."""

    frames: np.ndarray
    owner: np.ndarray  # per frame: the clip's index, -1 in the gaps
    starts: np.ndarray  # per clip: its first frame

    @classmethod
    def of(cls, clips: list[np.ndarray]) -> Screen:
        parts, owners = [], []
        for i, f in enumerate(clips):
            parts += [f, np.zeros((_DIAG, f.shape[1]), np.float32)]
            owners += [np.full(len(f), i), np.full(_DIAG, -1)]
        starts = np.cumsum([0] + [len(f) + _DIAG for f in clips[:-1]])
        return cls(np.concatenate(parts), np.concatenate(owners), np.asarray(starts, np.int64))

    def best(self, query: np.ndarray, clips: int) -> np.ndarray:
        """For each of the ``clips`` clips, the best 0.5 s diagonal mean cosine of the
        frames ``query`` (:func:`spectra`) with it: float ``(clips,)``."""
        return self.best_at(query, clips)[0]

    def best_at(self, query: np.ndarray, clips: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`best`, and where each clip's best diagonal starts, in seconds into the
        query and into the clip: float ``(clips, 2)``."""
        if len(query) < _DIAG:
            query = np.pad(query, ((0, _DIAG - len(query)), (0, 0)))
        m = len(self.frames) - _DIAG + 1
        col_best = np.full(m, -np.inf)
        col_row = np.zeros(m, np.int64)
        # A block of the query's frames at a time (overlapping by a diagonal), so that
        # a long query's similarities stay within about 100 MB.
        block = max(4 * _DIAG, (1 << 25) // len(self.frames))
        for q0 in range(0, len(query) - _DIAG + 1, block - _DIAG + 1):
            sims = query[q0 : q0 + block] @ self.frames.T
            n = sims.shape[0] - _DIAG + 1
            diag = sum(sims[t : t + n, t : t + m] for t in _TAPS) / len(_TAPS)
            rows = diag.argmax(axis=0)
            values = diag[rows, np.arange(m)]
            better = values > col_best
            col_best[better], col_row[better] = values[better], rows[better] + q0
        owners = self.owner[:m]
        cols = np.flatnonzero(owners >= 0)
        # Each clip's best column: the last of its run once sorted by (clip, value).
        cols = cols[np.lexsort((col_best[cols], owners[cols]))]
        last = cols[np.r_[owners[cols][1:] != owners[cols][:-1], True]]
        scores, where = np.zeros(clips), np.zeros((clips, 2))
        scores[owners[last]] = np.maximum(col_best[last], 0.0)
        where[owners[last], 0] = _seconds(col_row[last])
        where[owners[last], 1] = _seconds(last - self.starts[owners[last]])
        return scores, where


#: Screen score from which a pair is decided (:func:`shared_stretch`). On fold B of
#: eval_replay.py, 60 spliced 0.6 s copies scored 0.51-0.90 (2% under 0.52) and the best
#: of 15,000 unrelated pairs 0.47; eval_replay prints the splices' recall each run.
SCREEN = 0.45


@dataclass(frozen=True)
class Pair:
    """A screened pair of a query clip and another clip: the screen's score, and the
    decision's correlation and where (seconds into each)."""

    query: int
    other: int
    screen: float
    corr: float
    query_at: float
    other_at: float

    @property
    def same(self) -> bool:
        return self.corr >= SAME


def screened_pairs(
    queries: list[np.ndarray], others: list[np.ndarray], screen: float = SCREEN
) -> tuple[list[Pair], np.ndarray]:
    """Every pair of a query clip and another clip whose screen score is at least
    ``screen``, decided; and the screen scores of every pair, ``(queries, others)``."""
    view = Screen.of([spectra(o) for o in others])
    found = [view.best_at(spectra(q), len(others)) for q in queries]
    scores = np.stack([score for score, _ in found])
    pairs = []
    for qi, oi in zip(*np.nonzero(scores >= screen), strict=True):
        near = found[qi][1][oi]
        corr, q_at, o_at = shared_stretch(queries[qi], others[oi], near=(near[0], near[1]))
        pairs.append(Pair(int(qi), int(oi), float(scores[qi, oi]), corr, q_at, o_at))
    return pairs, scores


def decide(
    x: np.ndarray, y: np.ndarray, x_frames: np.ndarray, y_frames: np.ndarray
) -> tuple[float, float, float]:
    """:func:`shared_stretch` of a pair, searched near the screen's best diagonal
    (:func:`locate`) and no further: what a screened pair's decision stands for."""
    return shared_stretch(x, y, near=locate(x_frames, y_frames))


def locate(x_frames: np.ndarray, y_frames: np.ndarray) -> tuple[float, float]:
    """Where the screen's best 0.5 s diagonal of two clips starts in each (seconds)."""
    if len(x_frames) < _DIAG:
        x_frames = np.pad(x_frames, ((0, _DIAG - len(x_frames)), (0, 0)))
    if len(y_frames) < _DIAG:
        y_frames = np.pad(y_frames, ((0, _DIAG - len(y_frames)), (0, 0)))
    sims = x_frames @ y_frames.T
    n, m = sims.shape[0] - _DIAG + 1, sims.shape[1] - _DIAG + 1
    diag = sum(sims[t : t + n, t : t + m] for t in _TAPS)
    i, j = np.unravel_index(int(np.argmax(diag)), diag.shape)
    return _seconds(i), _seconds(j)


def _seconds(frame: np.ndarray | int) -> np.ndarray:
    """Where a screen frame looks, in seconds: frame k covers samples k * hop ..
    k * hop + _FRAME, its centre at half of what it does not share with the next."""
    return (np.asarray(frame) * _SCREEN_HOP + (_FRAME - _SCREEN_HOP) / 2) / RATE


def spliced(
    clips: list[np.ndarray], hosts: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A known shared recording: a loud 0.6 s stretch (at least the clip's median 0.6 s
    energy) of a random clip, at a random gain of +-6 dB, spliced into a random host
    clip at a random sample; returns the clip and the host with the splice."""
    w = int(0.6 * RATE)
    long_enough = [c for c in clips if c.size >= w]
    while True:
        clip = long_enough[rng.integers(len(long_enough))]
        energy = _window_energy(clip, w)
        start = int(rng.integers(clip.size - w + 1))
        if energy[start] >= np.median(energy):
            break
    host = hosts[rng.integers(len(hosts))]
    at = int(rng.integers(host.size + 1))
    piece = clip[start : start + w] * 10 ** (rng.uniform(-6, 6) / 20)
    return clip, np.concatenate([host[:at], piece, host[at:]])
