"""Long recordings, read as a stream of 16 kHz mono blocks in bounded memory.

A clip (:mod:`._decode`) is decoded whole and capped at 600 s. A recording that
``segments`` reads may last hours, so it is decoded block by block and never
held whole: :func:`recording_blocks` yields consecutive 16 kHz mono float32
blocks of about ``block_s`` seconds, downmixed and resampled as they arrive
(soxr's stream, bit-identical to resampling at once). Memory is one block at
the file's own rate and channels plus one block at 16 kHz, whatever the length.

The checks are those of a clip where they apply (readable, finite samples, a
sample rate and channel count in range, a WAV not cut short) and a length cap of
``max_duration_s`` (default :data:`MAX_RECORDING_S`, 4 hours), checked from the
header before decoding and again while decoding. A silent recording is not an
error here: it has no speakers, so no segments.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioError, InputError
from ._decode import (
    _BYTES_LABEL,
    _UNKNOWN_LENGTH,
    BLOCK_FRAMES,
    SAMPLE_RATE,
    Clip,
    ClipInput,
    _check_complete,
    _check_rate,
    _in_memory,
    _reason,
    _to_mono_float,
    open_for_reading,
    unreadable,
)

__all__ = [
    "MAX_RECORDING_S",
    "BlockFeed",
    "chunk_blocks",
    "recording_blocks",
    "recording_name",
]

#: Longest recording ``segments`` accepts by default: 4 hours.
MAX_RECORDING_S = 4 * 3600.0
_MAX_CHANNELS = 32


def recording_name(item: ClipInput) -> str:
    """What errors and RTTM call a recording: its path, else ``<bytes>`` or ``<array>``."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, Clip):
        return item.label
    return "<array>" if isinstance(item, tuple) else _BYTES_LABEL


def recording_blocks(
    item: ClipInput, block_s: float, max_duration_s: float = MAX_RECORDING_S
) -> Iterator[np.ndarray]:
    """Consecutive 16 kHz mono float32 blocks of about ``block_s`` seconds of ``item``
    (a path, encoded audio, a binary file object, ``(samples, rate)`` or a Clip).

    Raises :class:`AudioError` naming the recording when it is unreadable, has
    NaN or infinite samples, or lasts more than ``max_duration_s`` seconds.
    """
    if max_duration_s <= 0:
        raise InputError(f"the longest recording must be positive, got {max_duration_s}")
    name = recording_name(item)
    if isinstance(item, Clip):
        return _capped(_rechunk([item.samples], block_s), SAMPLE_RATE, max_duration_s, name)
    if isinstance(item, tuple):
        if len(item) != 2:
            raise InputError("an in-memory recording is a (samples, sample_rate) pair")
        samples, rate = item
        _check_rate(int(rate), name)
        mono = _to_mono_float(np.asarray(samples), name)
        return chunk_blocks([mono], int(rate), block_s, max_duration_s, name)
    return _file_blocks(_opened(item, name), name, block_s, max_duration_s)


def chunk_blocks(
    chunks: Iterable[np.ndarray],
    sample_rate: int,
    block_s: float,
    max_duration_s: float = MAX_RECORDING_S,
    name: str = "<stream>",
) -> Iterator[np.ndarray]:
    """16 kHz mono blocks of about ``block_s`` seconds from chunks of samples at
    ``sample_rate`` (1-D, or ``(frames, channels)``; floats at full scale 1.0 or integers)."""
    feed = BlockFeed(sample_rate, block_s, max_duration_s, name)
    for chunk in chunks:
        yield from feed.push(chunk)
    yield from feed.end()


class BlockFeed:
    """Chunks of samples pushed in, 16 kHz mono blocks of about ``block_s`` seconds out
    (for live audio, whose chunks arrive when they will)."""

    def __init__(
        self,
        sample_rate: int,
        block_s: float,
        max_duration_s: float = MAX_RECORDING_S,
        name: str = "<stream>",
    ) -> None:
        _check_rate(int(sample_rate), name)
        self._rate, self._name, self._limit = int(sample_rate), name, max_duration_s
        self._size = max(1, round(block_s * SAMPLE_RATE))
        self._stream: Any = None
        if self._rate != SAMPLE_RATE:
            import soxr

            self._stream = soxr.ResampleStream(self._rate, SAMPLE_RATE, 1, "float32", "HQ")
        self._pending = np.zeros(0, dtype=np.float32)
        self._seen = 0

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Take one chunk; return the blocks it completes (often none)."""
        mono = _to_mono_float(np.asarray(chunk), self._name)
        if not np.all(np.isfinite(mono)):
            raise AudioError(f"{self._name}: has NaN or infinite samples")
        self._seen += len(mono)
        if self._seen > self._limit * self._rate:
            raise _too_long(self._name, self._limit)
        if self._stream is not None:
            mono = self._stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32))
        return self._blocks(mono, last=False)

    def end(self) -> list[np.ndarray]:
        """The audio has ended: the blocks left, the last one shorter."""
        tail = np.zeros(0, dtype=np.float32)
        if self._stream is not None:
            tail = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        return self._blocks(tail, last=True)

    def _blocks(self, samples: np.ndarray, last: bool) -> list[np.ndarray]:
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        out = []
        while len(self._pending) >= self._size:
            out.append(self._pending[: self._size])
            self._pending = self._pending[self._size :]
        if last and len(self._pending):
            out.append(self._pending)
            self._pending = np.zeros(0, dtype=np.float32)
        return out


def _opened(item: Any, name: str) -> bytes | io.BytesIO:
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            what = "no such file" if not path.exists() else "not a regular file"
            raise AudioError(f"{name}: {what}")
        return os.fsencode(path)
    if isinstance(item, (bytes, bytearray, memoryview)) or callable(getattr(item, "read", None)):
        return _in_memory(item, name)
    raise InputError(
        f"cannot use {type(item).__name__} as a recording; pass a path, bytes, a binary file "
        "object or (samples, rate)"
    )


def _file_blocks(
    file: bytes | io.BytesIO, name: str, block_s: float, max_duration_s: float
) -> Iterator[np.ndarray]:
    import soundfile as sf

    try:
        audio = open_for_reading(file)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise unreadable(name, exc) from exc
    with audio:
        rate, frames = int(audio.samplerate), int(audio.frames)
        _check_rate(rate, name)
        if not 1 <= audio.channels <= _MAX_CHANNELS:
            raise AudioError(f"{name}: {audio.channels} channels, at most {_MAX_CHANNELS}")
        if frames != _UNKNOWN_LENGTH and frames / rate > max_duration_s:
            raise _too_long(name, max_duration_s)
        _check_complete(audio.extra_info, name)
        mono = (_to_mono_float(block, name) for block in _read(audio, name))
        resampled = _resampled(_finite(mono, name), rate)
        yield from _capped(_rechunk(resampled, block_s), SAMPLE_RATE, max_duration_s, name)


def _read(audio: Any, name: str) -> Iterator[np.ndarray]:
    import soundfile as sf

    while True:
        try:
            block = audio.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioError(f"{name}: cannot decode ({_reason(exc)})") from exc
        if not len(block):
            return
        yield block


def _finite(blocks: Iterable[np.ndarray], name: str) -> Iterator[np.ndarray]:
    for block in blocks:
        if not np.all(np.isfinite(block)):
            raise AudioError(f"{name}: has NaN or infinite samples")
        yield block


def _resampled(blocks: Iterable[np.ndarray], rate: int) -> Iterator[np.ndarray]:
    if rate == SAMPLE_RATE:
        yield from blocks
        return
    import soxr

    stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32", "HQ")
    for block in blocks:
        yield stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))
    yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def _rechunk(parts: Iterable[np.ndarray], block_s: float) -> Iterator[np.ndarray]:
    """The samples of ``parts`` again, in blocks of ``block_s`` seconds (the last shorter)."""
    size = max(1, round(block_s * SAMPLE_RATE))
    pending: list[np.ndarray] = []
    held = 0
    for part in parts:
        pending.append(np.asarray(part, dtype=np.float32))
        held += len(part)
        while held >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            rest = joined[size:]
            pending, held = [rest], len(rest)
    if held:
        yield np.concatenate(pending)


def _capped(
    blocks: Iterable[np.ndarray], rate: int, max_duration_s: float, name: str
) -> Iterator[np.ndarray]:
    cap, seen = int(max_duration_s * rate), 0
    for block in blocks:
        seen += len(block)
        if seen > cap:
            raise _too_long(name, max_duration_s)
        yield block


def _too_long(name: str, max_duration_s: float) -> AudioError:
    return AudioError(
        f"{name}: longer than {max_duration_s:.0f} s, the longest recording accepted; "
        "raise --max-duration (max_duration_s) or cut the recording"
    )
