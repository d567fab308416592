"""Hostile input: generated malformed clips never crash, hang, bloat memory or write.

:func:`cases` builds, from a fixed seed, more than a thousand files: random bytes
behind audio extensions, real WAV/FLAC/OGG/MP3/AIFF files cut short or with bytes
overwritten, headers that lie about sizes, rates and channels (WAV, AIFF, FLAC,
OGG, MP3), NaN and infinite samples, empty and one-sample files, rates from 1 kHz
to 384 kHz, up to 33 channels, files longer than ``audio.MAX_DURATION_S`` (some
whose header hides it), pipes and devices behind audio names.

Each is decoded with ``audio.load_clip`` under tracemalloc (at most
:data:`CASE_PEAK_BYTES`), then goes through ``SpeakerDB.identify`` and
``SpeakerDB.enroll`` (library, fake encoder). It must raise :class:`AudioError`
naming the file, or succeed legitimately, within :data:`CASE_SECONDS`; a clip
that is not enrolled leaves the database and its index untouched, and every
stored vector stays a finite unit vector. A sample goes through the real
command line too.
"""

from __future__ import annotations

import gc
import io
import math
import os
import resource
import sqlite3
import struct
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice

from speakerdb import AudioError, SpeakerDB, SpeakerDBError
from speakerdb.audio import _decode as audio
from speakerdb.storage.sql import from_blob

SEED = 20261125
#: Most CPU time (this process's, all threads) a clip may take through identify and
#: enroll together: a hang or a quadratic blow-up guard. CPU time, not wall time, so a
#: busy shared machine does not fail it; but CPU time too grows under contention (a
#: long clip took 5.2 s on a loaded 2-core machine, against a bound of 5 s), so the
#: bound leaves room for load and stays far below a hang or a blow-up.
CASE_SECONDS = 15.0
#: Most memory that decoding one clip may allocate (traced by tracemalloc): a whole
#: ``MAX_DURATION_S`` clip at 16 kHz is 38 MB, held twice while its blocks are joined.
CASE_PEAK_BYTES = 96 * 2**20
#: How much the test process may grow in all (ru_maxrss, which also sees C allocations).
TOTAL_GROWTH_BYTES = 1 * 2**30

ERROR, OK, EITHER = "error", "ok", "either"

#: suffix -> (soundfile format, subtype) for the formats a clip is written in.
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_16"),
}
FLOAT_FORMATS = ["WAV", "AIFF", "AU", "CAF", "W64", "RF64"]
EXTENSIONS = ["wav", "flac", "ogg", "mp3", "aiff", "aif", "opus", "m4a", "caf", "w64", "txt", ""]
# libsndfile reads these as headerless audio by their name alone: random bytes are "audio".
HEADERLESS = ["au", "snd", "vox", "gsm", "raw"]
MP3_RATES = [8000, 16000, 22050, 44100, 48000]


@dataclass(frozen=True)
class Case:
    """One hostile file: its name (unique, saying what it is), content and expected outcome.

    ``fragment``, when given, must be in the message of a refusal.
    """

    name: str
    data: bytes = b""
    expect: str = EITHER
    fragment: str = ""
    make: Callable[[Path], None] | None = field(default=None, compare=False)

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if self.make is not None:
            self.make(path)
        else:
            path.write_bytes(self.data)
        return path


# -- building blocks ---------------------------------------------------------


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    # Written in blocks: libsndfile's Vorbis encoder crashes on one very large write.
    with sf.SoundFile(buffer, "w", rate, _channels(samples), subtype, format=fmt) as out:
        for start in range(0, len(samples), 16384):
            out.write(samples[start : start + 16384])
    return buffer.getvalue()


def _channels(samples: np.ndarray) -> int:
    return 1 if samples.ndim == 1 else samples.shape[1]


def sound(rng: np.random.Generator, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    pitch, seed = float(rng.uniform(90, 300)), int(rng.integers(1 << 16))
    # Long clips repeat a 2-second voice: synthesising ten minutes is slow.
    mono = np.resize(voice(pitch, min(seconds, 2.0), rate, seed), int(seconds * rate))
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def wav_bytes(
    payload: bytes,
    *,
    tag: int = 1,
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    data_size: int | None = None,
    riff_size: int | None = None,
) -> bytes:
    """A RIFF/WAVE file written by hand, so that every header field can lie."""
    align = channels * bits // 8
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align & 0xFFFF, bits
    )
    size = len(payload) if data_size is None else data_size
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size)
    body += payload
    riff = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", riff) + body


def extended(value: float) -> bytes:
    """An 80-bit IEEE extended float, as AIFF stores its sample rate."""
    if value == 0:
        return bytes(10)
    if math.isinf(value):
        return struct.pack(">HQ", 0x7FFF, 1 << 63)
    if math.isnan(value):
        return struct.pack(">HQ", 0x7FFF, 3 << 62)
    mantissa, exponent = math.frexp(abs(value))
    sign = 0x8000 if value < 0 else 0
    return struct.pack(">HQ", sign | (exponent - 1 + 16383), int(mantissa * 2**64))


def aiff_bytes(payload: bytes, *, channels: int, frames: int, bits: int, rate: bytes) -> bytes:
    comm = struct.pack(">hIh", channels, frames, bits) + rate
    ssnd = struct.pack(">II", 0, 0) + payload
    chunks = b"COMM" + struct.pack(">I", len(comm)) + comm
    chunks += b"SSND" + struct.pack(">I", len(ssnd)) + ssnd
    return b"FORM" + struct.pack(">I", len(chunks) + 4) + b"AIFF" + chunks


def patch_flac(data: bytes, **fields: int) -> bytes:
    """Rewrite STREAMINFO fields: rate (20 bits), channels, bits (stored minus one), total."""
    block = bytearray(data)
    packed = int.from_bytes(block[18:26], "big")
    rate, channels = packed >> 44, ((packed >> 41) & 7) + 1
    bits, total = ((packed >> 36) & 31) + 1, packed & ((1 << 36) - 1)
    rate = fields.get("rate", rate) & 0xFFFFF
    channels = (fields.get("channels", channels) - 1) & 7
    bits = (fields.get("bits", bits) - 1) & 31
    total = fields.get("total", total) & ((1 << 36) - 1)
    packed = rate << 44 | channels << 41 | bits << 36 | total
    block[18:26] = packed.to_bytes(8, "big")
    return bytes(block)


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def patch_ogg_granule(data: bytes, granule: int) -> bytes:
    """Set the last page's granule position (the stream length) and fix the page CRC."""
    pages = bytearray(data)
    start = pages.rfind(b"OggS")
    pages[start + 6 : start + 14] = struct.pack("<q", granule)
    pages[start + 22 : start + 26] = bytes(4)
    crc = 0
    for byte in pages[start:]:
        crc = ((crc << 8) ^ _OGG_CRC[((crc >> 24) ^ byte) & 0xFF]) & 0xFFFFFFFF
    pages[start + 22 : start + 26] = struct.pack("<I", crc)
    return bytes(pages)


def patch_mp3_frames(data: bytes, frames: int) -> bytes:
    """Rewrite the frame count of the Xing/Info tag that says how long an MP3 is."""
    block = bytearray(data)
    at = max(block.find(b"Xing"), block.find(b"Info"))
    if at < 0:
        return bytes(block)
    block[at + 8 : at + 12] = struct.pack(">I", frames & 0xFFFFFFFF)
    return bytes(block)


# -- the cases ---------------------------------------------------------------


def random_bytes(rng: np.random.Generator) -> Iterator[Case]:
    sizes = [0, 1, 2, 3, 4, 8, 12, 16, 44, 58, 64, 128, 512, 1024, 4096, 65536]
    for i in range(220):
        size = sizes[i] if i < len(sizes) else int(rng.integers(0, 50_000))
        headerless = i % 10 == 9
        pool = HEADERLESS if headerless else EXTENSIONS
        suffix = pool[int(rng.integers(len(pool)))] if i % 7 else _random_suffix(rng)
        expect = EITHER if headerless or suffix in ("mp3", "raw") else ERROR
        yield Case(f"{i:04d}-random.{suffix}".rstrip("."), rng.bytes(size), expect)


def _random_suffix(rng: np.random.Generator) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(letters[int(k)] for k in rng.integers(0, len(letters), int(rng.integers(1, 6))))


MAGICS = [
    b"RIFF\xff\xff\xff\xffWAVE",
    b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
    b"RF64\xff\xff\xff\xffWAVEds64",
    b"fLaC",
    b"fLaC\x00\x00\x00\x22",
    b"OggS\x00\x02",
    b"ID3\x03\x00\x00\x00\x00\x00\x00",
    b"\xff\xfb\x90\x64",
    b"FORM\x00\x00\x10\x00AIFF",
    b"FORM\x00\x00\x10\x00AIFC",
    b".snd\x00\x00\x00\x18\xff\xff\xff\xff\x00\x00\x00\x03",
    b"caff\x00\x01\x00\x00",
    b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00",
]


def magic_garbage(rng: np.random.Generator) -> Iterator[Case]:
    suffixes = ["wav", "wav", "wav", "flac", "flac", "ogg", "mp3", "mp3", "aiff", "aiff", "au"]
    suffixes += ["caf", "w64"]
    for i in range(130):
        k = i % len(MAGICS)
        size = int(rng.choice([0, 4, 16, 64, 1000, 50_000]))
        yield Case(f"{i:04d}-magic.{suffixes[k]}", MAGICS[k] + rng.bytes(size))


def base_files(rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    """Valid clips of every format, to be damaged."""
    for suffix, (fmt, subtype) in FORMATS.items():
        for variant in range(6):
            rates = MP3_RATES if suffix == "mp3" else [16000, 22050, 44100, 8000, 48000, 32000]
            rate = rates[variant % len(rates)]
            channels = 1 + variant % 2
            clip = sound(rng, float(rng.uniform(0.6, 1.6)), rate, channels)
            data = encode(clip, rate, fmt, subtype)
            yield f"{suffix}{variant}.{suffix}", data
    for fmt in ("WAV", "AIFF"):
        data = encode(sound(rng, 1.0, 16000), 16000, fmt, "FLOAT")
        yield f"float.{fmt.lower()}", data


def _cut_header(rng: np.random.Generator, data: bytes) -> bytes:
    return data[: int(rng.integers(0, min(len(data), 96)))]


def _cut_body(rng: np.random.Generator, data: bytes) -> bytes:
    return data[: int(rng.integers(len(data) // 4, len(data)))]


def _flip_header(rng: np.random.Generator, data: bytes) -> bytes:
    block = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        block[int(rng.integers(0, min(len(block), 128)))] = int(rng.integers(256))
    return bytes(block)


def _flip_anywhere(rng: np.random.Generator, data: bytes) -> bytes:
    block = bytearray(data)
    for _ in range(int(rng.integers(1, 33))):
        block[int(rng.integers(0, len(block)))] = int(rng.integers(256))
    return bytes(block)


def _splice(rng: np.random.Generator, data: bytes) -> bytes:
    start = int(rng.integers(0, len(data)))
    span = int(rng.integers(1, 256))
    filler = rng.bytes(span) if rng.random() < 0.5 else b"\xff" * span
    return data[:start] + filler + data[start + span :]


def _append(rng: np.random.Generator, data: bytes) -> bytes:
    return data + rng.bytes(int(rng.integers(1, 4096)))


def _max_sizes(rng: np.random.Generator, data: bytes) -> bytes:
    """Every aligned 32-bit word that looks like a size in the header set to the maximum."""
    block = bytearray(data)
    for at in range(4, min(len(block) - 4, 64), 4):
        if rng.random() < 0.3:
            block[at : at + 4] = b"\xff\xff\xff\x7f" if rng.random() < 0.5 else b"\xff" * 4
    return bytes(block)


MUTATIONS = [_cut_header, _cut_body, _flip_header, _flip_anywhere, _splice, _append, _max_sizes]


def damaged(rng: np.random.Generator) -> Iterator[Case]:
    n = 0
    for base_name, data in base_files(rng):
        for mutate in MUTATIONS:
            for _ in range(2):
                stem, suffix = base_name.rsplit(".", 1)
                name = f"{n:04d}-{stem}{mutate.__name__.replace('_', '-')}.{suffix}"
                yield Case(name, mutate(rng, data))
                n += 1


def lying_wavs(rng: np.random.Generator) -> Iterator[Case]:
    tags = [1, 1, 1, 3, 0xFFFE, 0, 2, 6, 7, 0x55, 0x1234]
    channels = [0, 1, 1, 2, 8, 33, 255, 65535]
    rates = [0, 1, 1000, 3999, 16000, 16000, 44100, 384000, 384001, 0x7FFFFFFF, 0xFFFFFFFF]
    bits = [0, 1, 8, 16, 16, 24, 32, 64, 65535]
    sizes = [None, None, 0, 1, 0x7FFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF, 1 << 20]
    for i in range(160):
        payload = rng.integers(-3000, 3000, int(rng.integers(0, 40_000)), np.int16).tobytes()
        yield Case(
            f"{i:04d}-lying.wav",
            wav_bytes(
                payload,
                tag=int(rng.choice(tags)),
                channels=int(rng.choice(channels)),
                rate=int(rng.choice(rates)),
                bits=int(rng.choice(bits)),
                data_size=sizes[int(rng.integers(len(sizes)))],
                riff_size=sizes[int(rng.integers(len(sizes)))],
            ),
        )


def lying_aiffs(rng: np.random.Generator) -> Iterator[Case]:
    rates = [0.0, 1.0, 1000.0, 16000.0, 384000.0, 1e30, math.inf, math.nan, 5e-324, -16000.0]
    for i in range(70):
        payload = rng.integers(-3000, 3000, int(rng.integers(0, 40_000)), np.int16).byteswap()
        yield Case(
            f"{i:04d}-lying.aiff",
            aiff_bytes(
                payload.tobytes(),
                channels=int(rng.choice([0, 1, 2, 8, 33, -1, 32767])),
                frames=int(rng.choice([0, 1, 16000, 2**31 - 1, 2**32 - 1, 599 * 384000])),
                bits=int(rng.choice([0, 8, 16, 24, 32, 99, -16])),
                rate=extended(float(rng.choice(rates))),
            ),
        )


def lying_flacs(rng: np.random.Generator) -> Iterator[Case]:
    base = encode(sound(rng, 0.8, 16000), 16000, "FLAC")
    fields: list[dict[str, int]] = [
        {"total": 0},
        {"total": (1 << 36) - 1},
        {"total": 599 * 16000},
        {"total": 1},
        {"rate": 0},
        {"rate": 1},
        {"rate": 1000},
        {"rate": 384000, "channels": 8, "total": 599 * 384000},
        {"rate": 0xFFFFF},
        {"channels": 8},
        {"bits": 1},
        {"bits": 32},
    ]
    for i in range(72):
        changes = dict(fields[i % len(fields)])
        if i >= len(fields):
            changes["total"] = int(rng.integers(0, 1 << 36))
        yield Case(f"{i:04d}-lying.flac", patch_flac(base, **changes))


def lying_oggs(rng: np.random.Generator) -> Iterator[Case]:
    base = encode(sound(rng, 1.0, 16000), 16000, "OGG")
    granules = [0, 1, 8000, 16000, 600 * 16000 + 1, (1 << 62), -1, -(1 << 40)]
    for i, granule in enumerate([*granules, *rng.integers(0, 1 << 40, 12).tolist()]):
        yield Case(f"{i:04d}-lying.ogg", patch_ogg_granule(base, int(granule)))


def lying_mp3s(rng: np.random.Generator) -> Iterator[Case]:
    base = encode(sound(rng, 1.0, 16000), 16000, "MP3")
    for i, frames in enumerate([0, 1, 2, 1 << 20, 0x7FFFFFFF, 0xFFFFFFFF, *range(3, 9)]):
        yield Case(f"{i:04d}-lying.mp3", patch_mp3_frames(base, frames))


def bad_samples(rng: np.random.Generator) -> Iterator[Case]:
    def nan_all(x: np.ndarray) -> None:
        x[:] = np.nan

    def nan_one(x: np.ndarray) -> None:
        x[len(x) // 2] = np.nan

    def inf_first(x: np.ndarray) -> None:
        x[0] = np.inf

    def minus_inf_last(x: np.ndarray) -> None:
        x[-1] = -np.inf

    def nan_late(x: np.ndarray) -> None:
        x[-100:] = np.nan

    def tiny(x: np.ndarray) -> None:
        x[:] = 1e-40  # denormal: silent

    patterns = [nan_all, nan_one, inf_first, minus_inf_last, nan_late, tiny]
    n = 0
    for fmt in FLOAT_FORMATS:
        for subtype in ("FLOAT", "DOUBLE"):
            for pattern in patterns:
                samples = sound(rng, 1.0, 16000).astype(np.float64)
                pattern(samples)
                data = encode(samples, 16000, fmt, subtype)
                fragment = "silent" if pattern is tiny else "NaN or infinite"
                yield Case(f"{n:04d}-{pattern.__name__}.{fmt.lower()}", data, ERROR, fragment)
                n += 1
            huge = sound(rng, 1.0, 16000).astype(np.float64) * 1e30  # finite, far beyond full scale
            yield Case(f"{n:04d}-huge.{fmt.lower()}", encode(huge, 16000, fmt, subtype))
            n += 1


def tiny_files(rng: np.random.Generator) -> Iterator[Case]:
    formats = [*FORMATS.values(), ("AU", "PCM_16"), ("CAF", "PCM_16"), ("W64", "PCM_16")]
    formats += [("RF64", "PCM_16")]
    n = 0
    for fmt, subtype in formats:
        for frames in (0, 1, 2, 7999):
            if frames == 0 and fmt in ("FLAC", "MP3"):
                continue  # libsndfile cannot write these empty
            samples = voice(150, 1.0, 16000)[:frames]
            data = encode(samples, 16000, fmt, subtype)
            fragment = "no samples" if frames == 0 else "at least"
            yield Case(f"{n:04d}-{frames}-frames.{fmt.lower()}", data, ERROR, fragment)
            n += 1


def rates_and_channels(rng: np.random.Generator) -> Iterator[Case]:
    table = [
        ("WAV", 1000, 1, ERROR),
        ("WAV", 3999, 1, ERROR),
        ("WAV", 4000, 1, OK),
        ("WAV", 384000, 1, OK),
        ("WAV", 384001, 1, ERROR),
        ("WAV", 16000, 8, OK),
        ("WAV", 48000, 32, OK),
        ("WAV", 16000, 33, ERROR),
        ("FLAC", 1000, 1, ERROR),
        ("FLAC", 384000, 8, OK),
        ("AIFF", 1000, 1, ERROR),
        ("AIFF", 384000, 2, OK),
        ("OGG", 1000, 1, ERROR),
        ("OGG", 192000, 1, OK),
        ("OGG", 48000, 8, OK),
        ("MP3", 8000, 1, OK),
        ("MP3", 48000, 2, OK),
    ]
    for i, (fmt, rate, channels, expect) in enumerate(table):
        data = encode(sound(rng, 0.7, rate, channels), rate, fmt)
        name = f"{i:04d}-{rate}hz-{channels}ch.{fmt.lower()}"
        yield Case(name, data, expect, "sample rate" if channels == 1 else "channels")


def long_files(rng: np.random.Generator) -> Iterator[Case]:
    over = audio.MAX_DURATION_S + 1
    yield Case("0000-long.wav", encode(sound(rng, over, 4000), 4000, "WAV", "PCM_U8"), ERROR)
    flac = encode(sound(rng, over, 4000), 4000, "FLAC")
    yield Case("0001-long.flac", flac, ERROR)
    # A streamed FLAC says nothing of its length: the cap applies while decoding.
    yield Case("0002-long-no-length.flac", patch_flac(flac, total=0), ERROR)
    short = encode(sound(rng, 2.0, 16000), 16000, "FLAC")
    # soundfile seeks after every read, which libsndfile cannot do in such a FLAC.
    yield Case("0003-no-length.flac", patch_flac(short, total=0))
    ogg = encode(sound(rng, over, 8000), 8000, "OGG")
    yield Case("0004-long.ogg", ogg, ERROR)
    yield Case("0005-long-says-1s.ogg", patch_ogg_granule(ogg, 8000))
    yield Case("0006-long-says-unknown.ogg", patch_ogg_granule(ogg, -1))
    mp3 = encode(sound(rng, over, 8000), 8000, "MP3")
    yield Case("0007-long.mp3", mp3, ERROR)
    yield Case("0008-long-says-1s.mp3", patch_mp3_frames(mp3, 8))
    opener = encode(sound(rng, 1.0, 8000), 8000, "MP3")
    yield Case("0009-short-then-long.mp3", opener + mp3)
    pcm = (sound(rng, over, 4000) * 32767).astype(np.int16).tobytes()
    yield Case("0010-long-streamed.wav", wav_bytes(pcm, rate=4000, data_size=0xFFFFFFFF), ERROR)
    yield Case("0011-long-says-1s.wav", wav_bytes(pcm, rate=4000, data_size=8000))
    # Headers that claim nearly MAX_DURATION_S at 384 kHz and many channels, with little data.
    claim = int((audio.MAX_DURATION_S - 1) * 384000)
    wide = encode(sound(rng, 0.6, 384000, 8), 384000, "FLAC")
    yield Case("0012-claims-huge.flac", patch_flac(wide, total=claim))
    few = rng.integers(-3000, 3000, 30_000, np.int16).byteswap().tobytes()
    yield Case(
        "0013-claims-huge.aiff",
        aiff_bytes(few, channels=32, frames=claim, bits=16, rate=extended(384000.0)),
    )
    yield Case(
        "0014-claims-huge.wav",
        wav_bytes(few, channels=32, rate=384000, bits=8, data_size=0xFFFFFFF0),
    )


def renamed(rng: np.random.Generator) -> Iterator[Case]:
    """Valid audio behind another format's extension: decoded by content, not by name."""
    pairs = [("flac", "wav"), ("ogg", "mp3"), ("wav", "ogg"), ("aiff", "txt"), ("wav", "")]
    pairs += [("flac", "aiff"), ("ogg", "flac"), ("aiff", "wav"), ("wav", "mp3"), ("mp3", "wav")]
    for i, (real, shown) in enumerate(pairs):
        fmt, subtype = FORMATS[real]
        rate = 16000
        data = encode(sound(rng, 1.0, rate), rate, fmt, subtype)
        expect = EITHER if real == "mp3" else OK
        yield Case(f"{i:04d}-{real}-named.{shown}".rstrip("."), data, expect)


def special_files(rng: np.random.Generator) -> Iterator[Case]:
    """Pipes, devices and folders behind audio names: refused before anything is read."""

    def fifo(path: Path) -> None:
        os.mkfifo(path)  # nothing ever writes to it: opening it for reading would block

    def link_to(target: str) -> Callable[[Path], None]:
        return lambda path: path.symlink_to(target)

    device = "not a regular file"
    yield Case("0000-pipe.wav", expect=ERROR, fragment=device, make=fifo)
    yield Case("0001-zeros.wav", expect=ERROR, fragment=device, make=link_to("/dev/zero"))
    yield Case("0002-urandom.flac", expect=ERROR, fragment=device, make=link_to("/dev/urandom"))
    yield Case("0003-folder.wav", expect=ERROR, fragment="directory", make=Path.mkdir)
    missing = "no such file"
    yield Case("0004-dangling.wav", expect=ERROR, fragment=missing, make=link_to("nothing.wav"))
    yield Case("0005-loop.wav", expect=ERROR, fragment=missing, make=link_to("0005-loop.wav"))


GENERATORS = [
    random_bytes,
    magic_garbage,
    damaged,
    lying_wavs,
    lying_aiffs,
    lying_flacs,
    lying_oggs,
    lying_mp3s,
    bad_samples,
    tiny_files,
    rates_and_channels,
    long_files,
    renamed,
    special_files,
]


@cache
def cases() -> tuple[Case, ...]:
    """Every case, the same on every run."""
    rng = np.random.default_rng(SEED)
    found: list[Case] = []
    for generate in GENERATORS:
        group = generate.__name__.replace("_", "-")
        found += [
            Case(f"{group}-{c.name}", c.data, c.expect, c.fragment, c.make) for c in generate(rng)
        ]
    return tuple(found)


# -- running them ------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Case, Path]]:
    folder = tmp_path_factory.mktemp("hostile")
    return [(case, case.write(folder)) for case in cases()]


def new_database(path: Path) -> SpeakerDB:
    db = SpeakerDB(path, encoder=FakeEncoder())
    db.enroll("alice", [(voice(110, 1.5, 16000, 1), 16000), (voice(112, 1.5, 16000, 2), 16000)])
    return db


def rows(path: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class Watch:
    """Sees any commit to the database (``PRAGMA data_version``) and any index rewrite."""

    def __init__(self, db: SpeakerDB) -> None:
        self._con = sqlite3.connect(db.path)
        self._index = db.index.path
        self.state = self._now()

    def _now(self) -> tuple[int, bytes]:
        (version,) = self._con.execute("PRAGMA data_version").fetchone()
        return version, self._index.read_bytes()

    def changed(self) -> bool:
        before, self.state = self.state, self._now()
        return before != self.state

    def close(self) -> None:
        self._con.close()


def decode_traced(path: Path) -> tuple[int, str | None]:
    """The peak of memory allocated while decoding the file, and the refusal, if any."""
    tracemalloc.start()
    try:
        audio.load_clip(path)
    except AudioError as exc:
        return tracemalloc.get_traced_memory()[1], str(exc)
    else:
        return tracemalloc.get_traced_memory()[1], None
    finally:
        tracemalloc.stop()


def try_clip(db: SpeakerDB, path: Path, name: str) -> tuple[str, str | None]:
    """``("refused", message)``, ``("enrolled", None)`` or ``("not enrolled", None)``.

    identify and enroll must agree on whether the clip is usable. A usable clip may
    still not be enrolled: the same audio as an earlier case, or a quality gate.
    """
    try:
        result = db.identify(path)
    except AudioError as exc:
        identified: str | None = str(exc)
    else:
        assert all(math.isfinite(m.score) for m in result.matches), result
        identified = None
    try:
        db.enroll(name, [path])
    except AudioError as exc:
        enrolled: str | None = str(exc)
    except SpeakerDBError as exc:
        assert identified is None, f"identify: {identified!r}; enroll: {exc!r}"
        return "not enrolled", None
    else:
        enrolled = None
    assert identified == enrolled, f"identify: {identified!r}; enroll: {enrolled!r}"
    return ("refused", identified) if identified is not None else ("enrolled", None)


def test_at_least_a_thousand_cases() -> None:
    all_cases = cases()
    assert len(all_cases) >= 1000
    assert len({c.name for c in all_cases}) == len(all_cases)
    suffixes = Counter(c.name.rsplit(".", 1)[-1] for c in all_cases)
    for suffix in FORMATS:
        assert suffixes[suffix] >= 50, suffixes


# The fake encoder overflows on clips far beyond full scale; speakerdb refuses those.
@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_hostile_clips_are_refused_or_decoded_within_bounds(
    clips: list[tuple[Case, Path]], tmp_path: Path
) -> None:
    db = new_database(tmp_path / "speakers.db")
    kept = rows(db.path, "SELECT * FROM speakers ORDER BY id")
    kept_utterances = rows(db.path, "SELECT * FROM utterances ORDER BY id")
    watch = Watch(db)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    problems: list[str] = []
    accepted: list[str] = []
    # A full garbage collection scans every object the process holds, so one that falls
    # inside a case timed that case by what earlier tests left (torch and transformers
    # loaded: 9.4 s of CPU for a clip refused from its header, once in CI). Frozen, those
    # objects are not scanned; what a case itself allocates still is.
    gc.collect()
    gc.freeze()
    try:
        for i, (case, path) in enumerate(clips):
            name = f"case-{i:04d}"
            start = time.process_time()
            try:
                peak, decoded = decode_traced(path)
                outcome, message = try_clip(db, path, name)
                # What decoding refuses, identify refuses alike (the encoder may refuse more).
                assert decoded in (None, message), f"load_clip: {decoded!r}; identify: {message!r}"
            except Exception as exc:  # anything but AudioError is a bug: collect them all
                problems.append(f"{case.name}: {type(exc).__name__}: {exc}")
                watch.changed()
                continue
            elapsed = time.process_time() - start
            changed = watch.changed()
            if outcome == "enrolled":
                accepted.append(name)
            problems += _check(case, path, outcome, message, elapsed, peak, changed)
    finally:
        gc.unfreeze()
        watch.close()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert not problems, f"{len(problems)} of {len(clips)} cases went wrong:\n" + "\n".join(
        problems
    )
    assert growth < TOTAL_GROWTH_BYTES, f"the process grew by {growth / 2**20:.0f} MiB"
    # Only accepted clips were written, and what was there before is untouched.
    assert {s.name for s in db.speakers()} == {"alice", *accepted}
    assert rows(db.path, "SELECT * FROM speakers WHERE name = 'alice'") == kept
    assert rows(db.path, "SELECT * FROM utterances ORDER BY id")[: len(kept_utterances)] == (
        kept_utterances
    )
    # Whatever was accepted, every stored vector is a finite unit vector.
    vectors = rows(
        db.path, "SELECT template FROM speakers UNION ALL SELECT embedding FROM utterances"
    )
    norms = np.linalg.norm(np.stack([from_blob(blob) for (blob,) in vectors]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5), norms[~np.isclose(norms, 1.0, atol=1e-5)]
    db.close()


def _check(
    case: Case,
    path: Path,
    outcome: str,
    message: str | None,
    elapsed: float,
    peak: int,
    changed: bool,
) -> list[str]:
    problems = []
    if case.expect == ERROR and outcome != "refused":
        problems.append(f"{case.name}: {outcome}, but it must be refused")
    if case.expect == OK and outcome == "refused":
        problems.append(f"{case.name}: refused ({message}), but it is valid audio")
    if message is not None and case.name not in message:
        problems.append(f"{case.name}: the message does not name the file: {message}")
    if message is not None and case.fragment not in message:
        problems.append(f"{case.name}: the message does not say {case.fragment!r}: {message}")
    if outcome != "enrolled" and changed:
        problems.append(f"{case.name}: {outcome}, but the database or its index changed")
    if elapsed > CASE_SECONDS:
        problems.append(f"{case.name}: took {elapsed:.1f} s of CPU time")
    if peak > CASE_PEAK_BYTES:
        problems.append(f"{case.name}: allocated {peak / 2**20:.0f} MiB")
    return problems


def test_a_sample_through_the_command_line(clips: list[tuple[Case, Path]], tmp_path: Path) -> None:
    """The real CLI: a one-line error per refused clip, exit 2, no traceback, nothing written."""
    db = new_database(tmp_path / "speakers.db")
    db.close()
    refused = [(c, p) for c, p in clips if c.expect == ERROR]
    sample = refused[:: max(1, len(refused) // 60)]
    before = _snapshot(tmp_path / "speakers.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEAKERDB_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")
    # The session's switches for synthetic voices (conftest._test_switches) stay.
    env.update(SPEAKERDB_REPLAY_WINDOW="0", SPEAKERDB_SPEECH_GATE="off")
    env.update(SPEAKERDB_REPLAY_CHECK="off")

    def speakerdb(*args: object) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "speakerdb", *map(str, args), "--db", "speakers.db"]
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    proc = speakerdb("identify", *(p for _, p in sample))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    # libmpg123 writes its own notes about damaged MP3 frames straight to stderr.
    lines = [line for line in proc.stderr.splitlines() if line.startswith("speakerdb: ")]
    assert len(lines) == len(sample), proc.stderr
    for (case, _), line in zip(sample, lines):
        assert line.startswith("speakerdb: error: ") and case.name in line, line
        assert "unexpected" not in line and "Traceback" not in line, line
    for case, path in sample[:: max(1, len(sample) // 6)]:
        for args in (("enroll", "carol", path), ("verify", "alice", path)):
            proc = speakerdb(*args)
            assert proc.returncode == 2, proc.stderr
            assert "Traceback" not in proc.stderr
            (line,) = [line for line in proc.stderr.splitlines() if line.startswith("speakerdb")]
            assert line.startswith("speakerdb: error: ") and case.name in line, line
            assert "unexpected" not in line, line
    assert _snapshot(tmp_path / "speakers.db") == before


def _snapshot(path: Path) -> dict[str, object]:
    tables = [t for (t,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    state: dict[str, object] = {t: rows(path, f'SELECT * FROM "{t}"') for t in tables}
    index = path.with_name(path.name + ".faiss")
    state["<index>"] = index.read_bytes()
    return state


# -- the decoder's own bounds ------------------------------------------------


def test_decoding_stops_past_the_cap_when_the_header_says_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header without a length (or a false one) is caught while decoding, in bounded memory."""
    rate = 8000
    path = tmp_path / "endless.flac"
    seconds = audio.MAX_DURATION_S + 60
    path.write_bytes(encode(sound(np.random.default_rng(1), seconds, rate), rate, "FLAC"))
    monkeypatch.setattr(audio, "_check_header", lambda *args: None)  # as if it said nothing
    read = []
    real_read = sf.SoundFile.read

    def counting_read(self: sf.SoundFile, *args: object, **kwargs: object) -> np.ndarray:
        block = real_read(self, *args, **kwargs)
        read.append(len(block))
        return block

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match=f"more than {audio.MAX_DURATION_S:.0f} s") as caught:
            audio.load_clip(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(caught.value)
    assert sum(read) <= audio.MAX_DURATION_S * rate + audio.BLOCK_FRAMES  # stopped at the cap
    assert peak < CASE_PEAK_BYTES


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (22050, 1), (48000, 8)])
def test_decoding_in_blocks_equals_decoding_at_once(
    tmp_path: Path, rate: int, channels: int
) -> None:
    """Block-wise downmixing and resampling give the very samples (and hash) of one pass."""
    seconds = 3 * audio.BLOCK_FRAMES / rate + 0.3  # several blocks and a partial one
    samples = sound(np.random.default_rng(rate), seconds, rate, channels)
    path = tmp_path / "clip.flac"
    path.write_bytes(encode(samples, rate, "FLAC", "PCM_24"))
    whole, whole_rate = sf.read(path, dtype="float32", always_2d=True)
    at_once = audio.clip_from_array(whole, whole_rate, source=str(path))
    in_blocks = audio.load_clip(path)
    np.testing.assert_array_equal(in_blocks.samples, at_once.samples)
    assert in_blocks.sha256 == at_once.sha256
