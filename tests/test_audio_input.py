"""Audio given in memory: the bytes of an audio file, or a binary file object.

Through the public API, as a service would pass a request body: the same clip as
from a path, the same refusals (the hostile-input cases of
``test_hostile_input``), and a size cap checked before anything is decoded.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FakeEncoder, voice
from test_hostile_input import cases

from speakerdb import AudioError, InputError, SpeakerDB
from speakerdb.audio import MAX_DURATION_S, MAX_INPUT_BYTES, load_clip, to_clip
from speakerdb.audio import _decode as audio

RATE = 16_000


def encoded(samples: np.ndarray, rate: int = RATE, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def db(tmp_path: Path) -> SpeakerDB:
    database = SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())
    database.enroll("bob", [(voice(210, seed=3), RATE)])
    return database


def test_enroll_from_bytes_then_identify_from_a_file_object(db: SpeakerDB, tmp_path: Path) -> None:
    wav = encoded(voice(120, seed=1))
    flac = encoded(voice(121, seed=2), fmt="FLAC")
    enrolled = db.enroll("alice", [wav, bytearray(flac)])
    assert [u.source for u in enrolled.added] == [None, None]  # nothing names them
    path = tmp_path / "alice.wav"
    path.write_bytes(wav)
    by_path = db.identify(path)
    found = db.identify(io.BytesIO(wav))
    assert found.speaker == "alice" and found.source is None
    assert found.matches == by_path.matches  # the same clip as from the file
    with path.open("rb") as file:
        assert db.verify("alice", file).accepted
    assert db.identify(memoryview(wav)).matches == by_path.matches
    db.close()


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, io.BytesIO, "open"])
def test_every_kind_of_encoded_input_decodes_as_the_file(kind: object, tmp_path: Path) -> None:
    path = tmp_path / "clip.ogg"
    path.write_bytes(encoded(voice(150, 2.5), 44100, "OGG"))
    expected = load_clip(path).sha256
    if kind == "open":
        with path.open("rb") as file:
            assert to_clip(file).sha256 == expected
    else:
        assert callable(kind)
        assert to_clip(kind(path.read_bytes())).sha256 == expected


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (encoded(voice(120))[:40_000], "truncated (39956 of 64000 bytes"),
        (b"RIFF garbage, not audio" * 50, "not a readable audio file"),
        (b"", "not a readable audio file"),
        (encoded(np.zeros(RATE * 2, np.float32)), "silent"),
        (encoded(voice(120, 0.3)), "at least 0.5 s"),
    ],
    ids=["truncated", "garbage", "empty", "silent", "short"],
)
def test_unusable_bytes_are_an_audio_error_and_change_nothing(
    db: SpeakerDB, data: bytes, fragment: str
) -> None:
    for call in (lambda: db.enroll("carol", [data]), lambda: db.identify(io.BytesIO(data))):
        with pytest.raises(AudioError, match=r"^<bytes>: ") as caught:
            call()
        assert fragment in str(caught.value)
    assert [s.name for s in db.speakers()] == ["bob"]
    db.close()


def test_the_length_cap_holds_for_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked from the header, and while decoding when the header does not say."""
    long_flac = encoded(voice(120, MAX_DURATION_S + 1, rate=4000), 4000, "FLAC")
    with pytest.raises(AudioError, match=f"601 s long, at most {MAX_DURATION_S:.0f} s"):
        to_clip(long_flac)
    monkeypatch.setattr(audio, "_check_header", lambda *args: None)  # as if it said nothing
    with pytest.raises(AudioError, match=f"more than {MAX_DURATION_S:.0f} s long"):
        to_clip(long_flac)


class Endless:
    """A file object that never ends, counting what was read of it."""

    def __init__(self) -> None:
        self.given = 0

    def read(self, size: int) -> bytes:
        self.given += size
        return b"\0" * size


def test_more_than_the_size_cap_is_refused_before_decoding(
    db: SpeakerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded despite the size cap")

    monkeypatch.setattr(sf, "SoundFile", never)
    huge = np.zeros(MAX_INPUT_BYTES + 1, np.uint8).data  # a memoryview; pages never touched
    with pytest.raises(AudioError, match=r"more than 128 MiB of encoded audio"):
        db.identify(huge)
    stream = Endless()
    with pytest.raises(AudioError, match=r"more than 128 MiB of encoded audio"):
        db.enroll("carol", [stream])
    assert stream.given == MAX_INPUT_BYTES + 1  # read no further than the cap
    assert [s.name for s in db.speakers()] == ["bob"]
    db.close()


def test_what_is_not_audio_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(encoded(voice(120)))
    with path.open() as text, pytest.raises(InputError, match=r"binary mode \('rb'\)"):
        to_clip(text)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="pass a path, bytes, a binary file object"):
        to_clip(42)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_hostile_bytes_are_refused_whenever_their_file_is(tmp_path: Path) -> None:
    """Every hostile file of ``test_hostile_input``, given as bytes: refused if the file
    is, else the same audio or refused (bytes have no name: ``x.raw`` is not audio)."""
    problems = []
    for case in cases():
        if case.make is not None:  # pipes and devices: no bytes to give
            continue
        path = case.write(tmp_path)
        try:
            from_file: str | None = load_clip(path).sha256
        except AudioError:
            from_file = None
        try:
            from_bytes: str | None = to_clip(case.data).sha256
        except AudioError:
            from_bytes = None
        if from_bytes is not None and from_bytes != from_file:
            problems.append(case.name)
    assert not problems, problems
