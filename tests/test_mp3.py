"""MP3 clips of real speech: decoded as libsndfile decodes them in one read, with nothing
printed to stderr, through the library (a clip, and a recording that ``segments`` reads
block by block) and the CLI.

The clips are made here from the corpus with libsndfile's MP3 encoder (LAME): long
enough to span many of the decoder's blocks, at the two rates where a seek after each
block garbled them (the bit reservoir lost at 44.1 kHz; libmpg123's "part2_3_length too
large" on stderr at 16 kHz).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import test_cli
from conftest import FakeEncoder
from test_cli import run_speakerdb

from speakerdb import Segment, SegmentOptions, SpeakerDB
from speakerdb.audio import SAMPLE_RATE, ClipInput, load_clip
from speakerdb.audio._decode import BLOCK_FRAMES

base_home, home = test_cli.base_home, test_cli.home

#: The corpus speaker whose first clips, joined, make the MP3s (74 s of speech).
SPEAKER, CLIPS = "asterisk-allison", 20


def _mp3_supported() -> bool:
    return "MP3" in sf.available_formats()


pytestmark = pytest.mark.skipif(not _mp3_supported(), reason="libsndfile without MP3")


@pytest.fixture(scope="module")
def speech(corpus: Path) -> np.ndarray:
    paths = sorted((corpus / "wav" / SPEAKER).glob("*.wav"))[:CLIPS]
    return np.concatenate([sf.read(p, dtype="float32")[0] for p in paths])


def write_mp3(path: Path, speech: np.ndarray, rate: int) -> Path:
    samples = speech if rate == SAMPLE_RATE else soxr.resample(speech, SAMPLE_RATE, rate)
    sf.write(path, samples, rate, format="MP3")
    assert sf.info(path).frames > 10 * BLOCK_FRAMES  # many of the decoder's blocks
    return path


def decoded_at_once(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32")
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return np.asarray(samples, dtype=np.float32)


class Listening(FakeEncoder):
    """The fake encoder, keeping every window of audio it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[np.ndarray] = []

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        self.heard += [np.array(clip, dtype=np.float32) for clip in clips]
        return super().encode(clips)


def segmented(
    path: Path, speech: np.ndarray, recording: ClipInput
) -> tuple[list[Segment], list[np.ndarray]]:
    """``segments`` of ``recording`` (read in 5 s blocks) in a new database at ``path``
    that enrolled the speech's first 5 s, and the windows of the recording it embedded."""
    ear = Listening()
    with SpeakerDB(path, encoder=ear) as db:
        db.enroll(SPEAKER, [(speech[: 5 * SAMPLE_RATE], SAMPLE_RATE)])
        ear.heard.clear()
        found = db.segments(recording, options=SegmentOptions(block_s=5.0))
    return found, ear.heard


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_an_mp3_decodes_as_in_one_read(tmp_path: Path, speech: np.ndarray, rate: int) -> None:
    path = write_mp3(tmp_path / "speech.mp3", speech, rate)
    expected = decoded_at_once(path)
    clip = load_clip(path)
    assert clip.samples.shape == expected.shape
    np.testing.assert_allclose(clip.samples, expected, atol=1e-6)
    # A recording (``segments``) is read block by block too: its windows are those of the
    # samples decoded in one read, and so are the segments found.
    found, heard = segmented(tmp_path / "file.db", speech, path)
    found_once, heard_once = segmented(tmp_path / "once.db", speech, (expected, SAMPLE_RATE))
    assert len(heard) == len(heard_once) > 0
    for window, window_once in zip(heard, heard_once, strict=True):
        np.testing.assert_allclose(window, window_once, atol=1e-6)
    assert found == found_once


def test_the_cli_prints_nothing_of_the_decoders_for_a_good_mp3(
    home: Path, speech: np.ndarray
) -> None:
    mp3 = write_mp3(home / "speech.mp3", speech, SAMPLE_RATE)
    proc = run_speakerdb("identify", mp3.name, cwd=home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("speech.mp3: ")
    assert proc.stderr == ""
