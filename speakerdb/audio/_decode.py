"""Decode, downmix, resample and check clips.

Every clip becomes 16 kHz mono float32 before it reaches an encoder. Files are
decoded with soundfile (WAV, FLAC, OGG/Vorbis, and MP3 where the installed
libsndfile reads it) and resampled with soxr's high-quality filter. The bytes of
such a file (``bytes``, ``bytearray``, ``memoryview``, or a binary file object
read to its end) are decoded in memory the same way, with the same checks, and
refused unread beyond :data:`MAX_INPUT_BYTES`.

A clip is refused, with an :class:`~speakerdb.errors.AudioError` that names it,
when it is unreadable, empty, has NaN or infinite samples, is silent, is shorter
than :data:`MIN_DURATION_S` or longer than :data:`MAX_DURATION_S`.

Files are decoded in blocks of :data:`BLOCK_FRAMES` frames, each downmixed and
resampled as it arrives, so memory stays bounded whatever the file's rate,
channel count or header says: one block at the file's own rate and channels,
plus the 16 kHz mono result (at most 38 MB for :data:`MAX_DURATION_S`, twice
that for a moment while the blocks are joined: about 80 MB in all). The length
is checked from the header before decoding, and again while decoding, which
stops as soon as the cap is passed: a file whose header gives no length or
lies about it cannot decode without end.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, Union

import numpy as np

from ..errors import AudioError, DuplicateUtterance, InputError
from ._vad import SPOKEN_MARGIN_S, spoken_part

__all__ = [
    "MAX_DURATION_S",
    "MAX_INPUT_BYTES",
    "MIN_DURATION_S",
    "SAMPLE_RATE",
    "Clip",
    "ClipInput",
    "clip_from_array",
    "clip_from_bytes",
    "load_clip",
    "refuse_repeats",
    "to_clip",
]

SAMPLE_RATE = 16_000
#: Shortest clip accepted, in seconds of audio (after decoding, before any trimming).
MIN_DURATION_S = 0.5
#: Longest clip accepted. Checked from the header before decoding, so a file that
#: declares a huge length is refused without reading it, and while decoding, which
#: stops past it, for files whose header gives no length or a false one.
MAX_DURATION_S = 600.0
#: Frames decoded at a time: at most 8 MB of float32 at :data:`MAX_CHANNELS` channels.
BLOCK_FRAMES = 65_536
#: Lowest accepted sample rate: below this, no speech band is left.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32
#: Largest encoded clip accepted from memory or a file object, in bytes (128 MiB): a
#: 10-minute 48 kHz stereo 16-bit WAV (115 MB) fits. An HTTP service holds whole
#: request bodies, so this bounds what one clip may cost before any decoding.
MAX_INPUT_BYTES = 128 * 1024 * 1024
# A file object is read in chunks of this many bytes, so it is never read past the cap.
_READ_CHUNK = 1024 * 1024
# What errors call a clip given as bytes: it has no name of its own.
_BYTES_LABEL = "<bytes>"
# RMS below -60 dBFS: nothing but noise floor is left.
_SILENCE_RMS = 1e-3
# libsndfile's frame count for a file that does not say how long it is.
_UNKNOWN_LENGTH = 2**63 - 1


@dataclass(frozen=True, slots=True, eq=False)
class Clip:
    """A decoded, checked clip: 16 kHz mono float32 samples and their provenance."""

    samples: np.ndarray
    source: str | None
    sha256: str
    #: What messages call the clip when it has no ``source``: the name its caller gave
    #: it (a service's "the request body"). Unlike ``source``, it is never stored.
    called: str | None = None
    #: How much either side of the words the encoder hears (:attr:`spoken`), stored with
    #: an enrolled clip; ``None``: the whole clip, as speakerdb embedded every clip before
    #: it cut them to their words (an archive's clips of then: their vectors are so).
    spoken_margin_s: float | None = SPOKEN_MARGIN_S

    @property
    def label(self) -> str:
        """What messages call the clip: its source, else what it is called, else
        ``<array>``."""
        return self.source or self.called or "<array>"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def spoken(self) -> np.ndarray:
        """The samples an encoder hears: the words and up to 0.5 s either side
        (:func:`~speakerdb.audio.spoken_part`), without the silence a recorder adds
        around them; the whole clip when no speech is found, or when
        :attr:`spoken_margin_s` is ``None``."""
        if self.spoken_margin_s is None:
            return self.samples
        return self.samples[spoken_part(self.samples, self.spoken_margin_s)]

    @property
    def spoken_s(self) -> float:
        """The duration decisions take (margin-duration's d, identify's falling bar):
        the length of :attr:`spoken`."""
        return len(self.spoken) / SAMPLE_RATE


class BinaryReader(Protocol):
    """A binary file object: ``open(path, "rb")``, :class:`io.BytesIO`, a request body..."""

    def read(self, size: int, /) -> bytes: ...


#: Encoded audio in memory: the bytes of a WAV, FLAC, OGG or MP3 file.
EncodedAudio = Union[bytes, bytearray, memoryview]
#: A clip: a file path, encoded audio (:data:`EncodedAudio` or a :class:`BinaryReader`),
#: ``(samples, sample_rate)``, or an already decoded :class:`Clip`.
ClipInput = Union[str, "os.PathLike[str]", EncodedAudio, BinaryReader, tuple[np.ndarray, int], Clip]


def to_clip(item: ClipInput) -> Clip:
    """Decode a path, encoded audio or ``(samples, rate)`` pair; pass a :class:`Clip` through."""
    if isinstance(item, Clip):
        return item
    if isinstance(item, tuple):
        if len(item) != 2:
            raise InputError("an in-memory clip is a (samples, sample_rate) pair")
        return clip_from_array(item[0], int(item[1]))
    if isinstance(item, (str, os.PathLike)):
        return load_clip(item)
    if isinstance(item, (bytes, bytearray, memoryview)) or callable(getattr(item, "read", None)):
        return clip_from_bytes(item)
    raise InputError(
        f"cannot use {type(item).__name__} as a clip; pass a path, bytes, a binary file "
        "object or (samples, rate)"
    )


def refuse_repeats(clips: Iterable[Clip]) -> None:
    """Raise :class:`DuplicateUtterance` when the same audio is given twice."""
    seen: dict[str, str] = {}
    for clip in clips:
        label = clip.label
        if clip.sha256 in seen:
            raise DuplicateUtterance(f"{label}: same audio as {seen[clip.sha256]}; give it once")
        seen[clip.sha256] = label


def load_clip(path: str | os.PathLike[str]) -> Clip:
    """Decode the audio file at ``path`` into a checked 16 kHz mono :class:`Clip`."""
    path = Path(path)
    name = str(path)
    if not path.exists():
        if name == "-":  # the shell's spelling of stdin, which a pipe would be
            raise AudioError("-: standard input is not read (a pipe); save the audio first")
        raise AudioError(f"{name}: no such file")
    if path.is_dir():
        raise AudioError(f"{name}: is a directory, not an audio file")
    if not path.is_file():
        # A pipe or a device could block, or never end: only regular files are read.
        raise AudioError(f"{name}: not a regular file (a pipe or device); save the audio first")
    # As bytes, so that a file name that is not valid UTF-8 opens too.
    return _decode(os.fsencode(path), name, name)


def clip_from_bytes(data: EncodedAudio | BinaryReader, *, called: str | None = None) -> Clip:
    """Decode encoded audio held in memory, or read from a binary file object (from its
    position to its end), into a checked 16 kHz mono :class:`Clip`.

    The checks are those of :func:`load_clip`, and more than :data:`MAX_INPUT_BYTES`
    is refused before decoding (a file object is read no further). The clip's
    ``source`` is ``None``, as for an array; errors call it ``called`` (kept as
    :attr:`Clip.called` for later messages), else ``<bytes>``.
    """
    label = called or _BYTES_LABEL
    return replace(_decode(_in_memory(data, label), label, None), called=called)


class _Memory(io.BytesIO):
    """Encoded audio in memory, which seeks as a file does."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # libsndfile may seek before the start of a damaged file: lseek fails there and
        # keeps the position, where BytesIO raises, into a C callback that prints it.
        if whence == io.SEEK_SET and offset < 0:
            return self.tell()
        return super().seek(offset, whence)


def _in_memory(data: EncodedAudio | BinaryReader, label: str) -> io.BytesIO:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return _read_capped(data, label)
    if memoryview(data).nbytes > MAX_INPUT_BYTES:
        raise _too_large(label)
    try:
        return _Memory(data)
    except BufferError as exc:  # a strided memoryview: not one run of bytes
        raise InputError(f"{label}: pass the audio as one contiguous buffer") from exc


def _read_capped(reader: BinaryReader, label: str) -> io.BytesIO:
    """What ``reader`` has left, read in chunks and never past one byte over the cap."""
    if isinstance(reader, io.TextIOBase):  # it would fail to decode audio as UTF-8 text
        raise _text_mode(label)
    buffer = _Memory()
    while buffer.tell() <= MAX_INPUT_BYTES:
        try:
            chunk = reader.read(min(_READ_CHUNK, MAX_INPUT_BYTES + 1 - buffer.tell()))
        except (OSError, ValueError) as exc:  # a closed file, a dropped connection...
            raise AudioError(f"{label}: cannot read the file object ({exc})") from exc
        if isinstance(chunk, str):
            raise _text_mode(label)
        if not chunk:
            break
        buffer.write(chunk)
    if buffer.tell() > MAX_INPUT_BYTES:
        raise _too_large(label)
    buffer.seek(0)
    return buffer


def _text_mode(label: str) -> InputError:
    return InputError(f"{label}: a text file object; open the audio in binary mode ('rb')")


def _too_large(label: str) -> AudioError:
    return AudioError(
        f"{label}: more than {MAX_INPUT_BYTES // 2**20} MiB of encoded audio, which is "
        "all that is accepted; send a shorter clip, or a compressed one (FLAC, OGG)"
    )


def clip_from_array(samples: np.ndarray, sample_rate: int, source: str | None = None) -> Clip:
    """Check and convert in-memory audio into a :class:`Clip`.

    ``samples`` is 1-D (mono) or 2-D ``(frames, channels)`` as soundfile returns
    it. Float samples are taken as they are (full scale is 1.0); integer samples
    are scaled by their type's range.
    """
    label = source or "<array>"
    mono = _to_mono_float(np.asarray(samples), label)
    _check_rate(sample_rate, label)
    _check_samples(mono, sample_rate, label)
    return _clip(_resample(mono, sample_rate), source)


def _clip(samples: np.ndarray, source: str | None) -> Clip:
    digest = hashlib.sha256(samples.data).hexdigest()  # the buffer itself: no copy
    return Clip(samples=samples, source=source, sha256=digest)


def _decode(file: bytes | io.BytesIO, name: str, source: str | None) -> Clip:
    """Decode ``file`` (a path, or encoded audio in memory), calling it ``name`` in errors."""
    import soundfile as sf

    try:
        with open_for_reading(file) as audio:
            _check_header(audio.frames, audio.samplerate, audio.channels, name)
            _check_complete(audio.extra_info, name)
            return _read_blocks(audio, name, source)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise unreadable(name, exc) from exc
    except MemoryError as exc:
        raise AudioError(f"{name}: too large to decode") from exc


def open_for_reading(file: bytes | io.BytesIO) -> Any:
    """Open ``file`` with soundfile, to be read front to back in blocks and never sought.

    soundfile seeks a seekable file to where it already is after every read. For an
    MP3 that seek restarts libmpg123 mid-frame without the bit reservoir the next frames
    draw on: the 20-30 ms after a block boundary decoded wrong (by up to 0.58 of full
    scale in a 44.1 kHz speech file, at 38 of its 50 boundaries), and libmpg123 printed
    "part2_3_length too large" to stderr for some. Taken as not seekable, the file is
    read on without seeking, and still stops where libsndfile says it ends.
    """
    return _sequential_type()(file)


@functools.cache
def _sequential_type() -> type:
    import soundfile as sf

    class SequentialSoundFile(sf.SoundFile):
        def seekable(self) -> bool:
            return False

    return SequentialSoundFile


def _read_blocks(audio: Any, name: str, source: str | None) -> Clip:
    """Decode an open soundfile block by block, checking as it goes; stop past the cap."""
    rate = int(audio.samplerate)
    cap = int(MAX_DURATION_S * rate)
    resampler = _Resampler(rate)
    frames, energy = 0, 0.0
    while True:
        block = audio.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        if not len(block):
            break
        mono = _to_mono_float(block, name)
        if not np.all(np.isfinite(mono)):
            raise AudioError(f"{name}: has NaN or infinite samples")
        frames += len(mono)
        if frames > cap:
            raise AudioError(
                f"{name}: more than {MAX_DURATION_S:.0f} s long, at most {MAX_DURATION_S:.0f} s "
                "is accepted; cut it into shorter clips"
            )
        energy += float(np.square(mono, dtype=np.float64).sum())
        resampler.add(mono)
    _check_level(frames, energy, rate, name)
    return _clip(resampler.finish(), source)


class _Resampler:
    """Resamples to 16 kHz block by block; bit-identical to resampling all at once."""

    def __init__(self, rate: int) -> None:
        self._parts: list[np.ndarray] = []
        self._stream: Any = None
        if rate != SAMPLE_RATE:
            import soxr

            self._stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32", "HQ")

    def add(self, mono: np.ndarray) -> None:
        if self._stream is None:
            self._parts.append(mono)
        else:
            self._parts.append(self._stream.resample_chunk(np.ascontiguousarray(mono)))

    def finish(self) -> np.ndarray:
        if self._stream is not None:
            self._parts.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        joined = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        return np.ascontiguousarray(joined, dtype=np.float32)


def _check_header(frames: int, rate: int, channels: int, name: str) -> None:
    _check_rate(rate, name)
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels, at most {MAX_CHANNELS} are supported")
    # A file that does not say its length (a streamed FLAC) is checked while decoding.
    if frames != _UNKNOWN_LENGTH and frames / rate > MAX_DURATION_S:
        raise AudioError(
            f"{name}: {frames / rate:.0f} s long, at most {MAX_DURATION_S:.0f} s is accepted; "
            "cut it into shorter clips"
        )


_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
# Writers that stream (pipes) leave the size unset: such files are whole, not cut.
_STREAMING_SIZES = {0, 0xFFFFFFFF}


def _check_complete(extra_info: str, name: str) -> None:
    """Refuse a WAV file cut short: libsndfile would quietly decode what is left."""
    match = _WAV_DATA_SIZE.search(extra_info or "")
    if match is None:
        return
    declared, present = int(match.group(1)), int(match.group(2))
    if declared > present and declared not in _STREAMING_SIZES:
        raise AudioError(
            f"{name}: truncated ({present} of {declared} bytes of audio); use the complete file"
        )


def unreadable(name: str, exc: BaseException) -> AudioError:
    """The error for a file libsndfile cannot open: damaged, or not a format it reads."""
    return AudioError(
        f"{name}: not a readable audio file ({_reason(exc)}); it is damaged or not WAV, FLAC, "
        "OGG or MP3: convert it (`ffmpeg -i FILE clip.wav`, for instance)"
    )


def _reason(exc: BaseException) -> str:
    # libsndfile's own words, without soundfile's "Error opening <path>: " prefix.
    error_string = getattr(exc, "error_string", None)
    if isinstance(error_string, str) and error_string.strip():
        return error_string.strip()
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _to_mono_float(samples: np.ndarray, label: str) -> np.ndarray:
    if samples.ndim == 2:
        samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    elif samples.ndim != 1:
        raise AudioError(
            f"{label}: expected 1-D or (frames, channels) samples, got {samples.shape}"
        )
    if np.issubdtype(samples.dtype, np.integer):
        scale = float(np.iinfo(samples.dtype).max) + 1.0
        return (samples.astype(np.float64) / scale).astype(np.float32)
    if not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"{label}: samples must be numbers, got dtype {samples.dtype}")
    return samples.astype(np.float32, copy=False)


def _check_rate(rate: int, label: str) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{label}: sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )


def _check_samples(mono: np.ndarray, rate: int, label: str) -> None:
    if mono.size and not np.all(np.isfinite(mono)):
        raise AudioError(f"{label}: has NaN or infinite samples")
    _check_level(mono.size, float(np.square(mono, dtype=np.float64).sum()), rate, label)


def _check_level(frames: int, energy: float, rate: int, label: str) -> None:
    """Refuse ``frames`` samples with this sum of squares if empty, too short or long, silent."""
    if frames == 0:
        raise AudioError(f"{label}: has no samples")
    duration = frames / rate
    if duration < MIN_DURATION_S:
        shown = np.floor(duration * 100) / 100  # never "0.50 s long, at least 0.5 s"
        raise AudioError(
            f"{label}: clip is {shown:.2f} s long, at least {MIN_DURATION_S:.1f} s is needed; "
            "record a longer clip"
        )
    if duration > MAX_DURATION_S:
        raise AudioError(
            f"{label}: clip is {duration:.0f} s long, at most {MAX_DURATION_S:.0f} s is "
            "accepted; cut it into shorter clips"
        )
    rms = float(np.sqrt(energy / frames))
    if rms < _SILENCE_RMS:
        raise AudioError(
            f"{label}: clip is silent (level {_dbfs(rms)} dBFS); record closer to the mic"
        )


def _dbfs(rms: float) -> str:
    return "-inf" if rms <= 0 else f"{20 * np.log10(rms):.0f}"


def _resample(mono: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32)
    import soxr

    out = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)
